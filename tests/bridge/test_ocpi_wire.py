"""OCPI wire primitives: DateTime, the Authorization token value, the envelope."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.ocpi.models import Credentials, Version
from bridge.ocpi.wire import (
    authorization_value,
    envelope_json,
    format_datetime,
    parse_datetime,
    token_candidates,
)

EXAMPLES = Path(__file__).parent.parent / "data" / "ocpi-examples"


def test_datetime_is_utc_with_z_and_fits_string25_when_formatted() -> None:
    value = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=10)))
    text = format_datetime(value)
    assert text == "2026-03-01T02:30:05.123Z"
    assert len(text) <= 25


def test_naive_datetime_is_refused_when_formatted() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-06-29T20:39:09Z", datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)),
        ("2016-12-29T17:45:09.2Z", datetime(2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC)),
        ("2018-01-01T01:08:01.123", datetime(2018, 1, 1, 1, 8, 1, 123000, tzinfo=UTC)),
        ("2018-01-01T03:08:01+02:00", datetime(2018, 1, 1, 1, 8, 1, tzinfo=UTC)),
    ],
)
def test_datetime_is_read_as_utc_when_parsed(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2015-13-01T00:00:00Z"])
def test_datetime_parse_fails_when_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_datetime(text)


@given(st.datetimes(timezones=st.just(UTC)))
def test_datetime_round_trips_to_the_millisecond(value: datetime) -> None:
    parsed = parse_datetime(format_datetime(value))
    assert parsed == value.replace(microsecond=value.microsecond // 1000 * 1000)


def test_token_is_sent_base64_without_trailing_newline() -> None:
    # The spec's own example encodes "example-token\n"; the right value has no newline.
    assert authorization_value("example-token") == "Token ZXhhbXBsZS10b2tlbg=="
    assert authorization_value("example-token", encode=False) == "Token example-token"


def test_header_yields_raw_then_decoded_token_when_base64() -> None:
    encoded = base64.b64encode(b"example-token").decode()
    assert token_candidates(f"Token {encoded}") == [encoded, "example-token"]
    assert token_candidates("token example-token") == ["example-token"]


@pytest.mark.parametrize("header", [None, "", "Token", "Token ", "Bearer abc", "Basic dXNlcjpw"])
def test_header_yields_no_token_when_not_token_scheme(header: str | None) -> None:
    assert token_candidates(header) == []


def test_header_keeps_only_raw_value_when_base64_decodes_to_binary() -> None:
    junk = base64.b64encode(bytes([0, 159, 255])).decode()
    assert token_candidates(f"Token {junk}") == [junk]


def test_envelope_omits_data_and_none_fields() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = json.loads(envelope_json(2001, message="bad", timestamp=now))
    assert body == {
        "status_code": 2001,
        "status_message": "bad",
        "timestamp": "2026-01-02T03:04:05.000Z",
    }
    listed = json.loads(
        envelope_json(1000, data=[Version(version="2.2.1", url="https://x/2.2.1")], timestamp=now)
    )
    assert listed["data"] == [{"version": "2.2.1", "url": "https://x/2.2.1"}]


@pytest.mark.parametrize("name", ["", "2", "3", "4"])
def test_spec_credentials_examples_are_valid(name: str) -> None:
    with open(f"{EXAMPLES}/credentials/credentials_example{name}.json") as f:
        credentials = Credentials.model_validate(json.load(f))
    assert credentials.roles


@pytest.mark.parametrize(
    "change",
    [
        {"token": "has space"},
        {"token": "x" * 65},
        {"token": "tokén"},
        {"roles": []},
        {"url": ""},
    ],
)
def test_credentials_are_refused_when_fields_are_wrong(change: dict[str, object]) -> None:
    with open(f"{EXAMPLES}/credentials/credentials_example.json") as f:
        body = json.load(f) | change
    with pytest.raises(ValueError):  # noqa: PT011
        Credentials.model_validate(body)


@pytest.mark.parametrize(
    "role_change", [{"country_code": "NLD"}, {"party_id": "TOOLONG"}, {"role": "DRIVER"}]
)
def test_credentials_are_refused_when_a_role_is_wrong(role_change: dict[str, str]) -> None:
    with open(f"{EXAMPLES}/credentials/credentials_example.json") as f:
        body = json.load(f)
    body["roles"][0].update(role_change)
    with pytest.raises(ValueError):  # noqa: PT011
        Credentials.model_validate(body)
