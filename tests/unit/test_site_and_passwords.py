from __future__ import annotations

from pathlib import Path

import pytest

from bridge.site import SiteFileError, load_site, parse_site
from csms.passwords import generate_password, hash_password, verify_password

EXAMPLE = Path(__file__).parents[2] / "examples" / "site.toml"


def test_example_site_file_is_valid():
    site = load_site(EXAMPLE)
    assert [c.charger_id for c in site.chargers] == ["EXAMPLE-CP-1", "EXAMPLE-CP-2"]
    assert site.chargers[1].allow_no_auth
    assert {t.id_tag for t in site.tokens} == {"DEMO-TAG-01", "DEMO-TAG-BLOCKED"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"chargers": [{"id": "A"}, {"id": "A"}]}, "chargers[1].id: duplicate"),
        ({"chargers": [{}]}, "chargers[0].id: required"),
        ({"chargers": [{"id": "A", "boot_status": "Maybe"}]}, "chargers[0].boot_status"),
        ({"chargers": [{"id": "A", "password": "short"}]}, "chargers[0].password"),
        ({"tokens": [{"id_tag": "T" * 21}]}, "tokens[0].id_tag: at most 20"),
        ({"tokens": [{"id_tag": "T", "status": "Nice"}]}, "tokens[0].status"),
    ],
)
def test_bad_site_file_names_file_object_and_field(data, message):
    with pytest.raises(SiteFileError) as exc:
        parse_site(data, "site.toml")
    assert str(exc.value).startswith("site.toml: ")
    assert message in str(exc.value)


def test_unreadable_site_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[chargers]\n")
    with pytest.raises(SiteFileError, match=r"bad\.toml"):
        load_site(bad)


def test_password_hash_verifies_only_the_right_password():
    encoded = hash_password("correct horse battery")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("wrong horse battery", encoded)
    assert not verify_password("x", "garbage")
    assert hash_password("same") != hash_password("same")


def test_generated_password_fits_ocpp_limits():
    password = generate_password()
    assert 16 <= len(password) <= 40
