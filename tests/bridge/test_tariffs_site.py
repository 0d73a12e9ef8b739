"""The operator's Tariffs from the site file: parsed strictly, referenced by connectors, stored
with a ``last_updated`` that moves only on change, served by the tariffs SENDER and PUT to every
partner with a tariffs RECEIVER (all of them when it registers, changed ones on reload)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.site import parse_site
from bridge.tariffs import TariffError, parse_tariffs
from simulators.emsp.server import EmspSimulator
from tests.conftest import running_bridge
from tests.e2e.test_location_status import CPO, FAST
from tests.e2e.test_ocpi_registration import emsp_registers
from tests.e2e.test_sessions import site_text

NOW = datetime(2026, 11, 21, tzinfo=UTC)
FREE = {
    "id": "FREE",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "FLAT", "price": 0, "step_size": 1}]}],
}


def test_a_tariff_gets_the_cpo_party_and_last_updated() -> None:
    (tariff,) = parse_tariffs([FREE], "site.toml", country_code="NL", party_id="CPO", now=NOW)
    assert (tariff.country_code, tariff.party_id, tariff.last_updated) == ("NL", "CPO", NOW)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**FREE, "last_updated": "2026-01-01T00:00:00Z"}, "set by the bridge"),
        ({**FREE, "country_code": "DE"}, "set by the bridge"),
        ({**FREE, "currency": "euro"}, "currency"),
        ({**FREE, "elements": []}, "elements"),
        (
            {
                **FREE,
                "elements": [{"price_components": [{"type": "BEER", "price": 1, "step_size": 1}]}],
            },
            "type",
        ),
        ({"currency": "EUR", "elements": FREE["elements"]}, "id"),
    ],
)
def test_invalid_tariffs_are_refused_with_their_place(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(TariffError) as caught:
        parse_tariffs([entry], "site.toml", country_code="NL", party_id="CPO", now=NOW)
    (problem,) = caught.value.problems
    assert problem.startswith("site.toml: tariffs[0]")
    assert message in problem


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(TariffError, match="duplicate tariff id"):
        parse_tariffs(
            [FREE, {**FREE, "id": "free"}], "s", country_code="NL", party_id="CPO", now=NOW
        )


async def test_tariffs_are_applied_served_and_pushed(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp,
        running_bridge(tmp_path, site_file=str(site), **CPO, **FAST) as app,
    ):
        await emsp_registers(app, emsp)
        await emsp.state.wait_for(lambda: ("NL", "CPO", "T1") in emsp.state.tariffs)
        (stored,) = await app.tariffs.all_tariffs()
        first = stored.last_updated
        # An unchanged reload keeps last_updated and pushes nothing.
        report = await app.sites.reload(site)
        assert report is not None
        assert (await app.tariffs.all_tariffs())[0].last_updated == first
        puts = [r for r in emsp.state.received if r.module == "tariffs" and r.method == "PUT"]
        assert len(puts) == 1
        # A changed price is stored with a new last_updated and pushed again.
        site.write_text(site_text().replace("price = 0.25", "price = 0.30"), encoding="utf-8")
        await app.sites.reload(site)
        (changed,) = await app.tariffs.all_tariffs()
        assert changed.last_updated > first
        await emsp.state.wait_for(
            lambda: len([r for r in emsp.state.received if r.module == "tariffs"]) == 2
        )


async def test_a_connector_naming_an_unknown_tariff_refuses_the_site(tmp_path: Path) -> None:
    text = site_text().replace('tariff_ids = ["T1"]', 'tariff_ids = ["T9"]')
    async with running_bridge(tmp_path, **CPO) as app:
        with pytest.raises(TariffError) as caught:
            await app.sites.apply(parse_site(tomllib.loads(text), "site.toml"))
        assert all("unknown tariff 'T9'" in p for p in caught.value.problems)
        assert await app.tariffs.all_tariffs() == []
        assert await app.sites.locations() == []
