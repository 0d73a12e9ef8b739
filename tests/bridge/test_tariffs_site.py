"""The operator's Tariffs from the site file: parsed strictly, referenced by connectors, stored
with a ``last_updated`` that moves only on change, served by the tariffs SENDER and PUT to every
partner with a tariffs RECEIVER (all of them when it registers, changed ones on reload)."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bridge.cli import app as cli
from bridge.main import BridgeApp
from bridge.site import parse_site
from bridge.tariffs import TariffError, parse_tariffs
from simulators.emsp.server import EmspSimulator
from tests.bridge.conftest import ADMIN_TOKEN, base_url
from tests.bridge.test_outbox_worker import run_cli
from tests.conftest import add_charger, running_bridge
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


# --- tariffs put and deleted by the operator (admin API, CLI, site reload) -----------------

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PARKING = {
    "id": "PARK",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "PARKING_TIME", "price": 3, "step_size": 60}]}],
}


def tariff_requests(emsp: EmspSimulator) -> list[tuple[str, str]]:
    """(method, tariff id) of every tariffs request the eMSP accepted, in arrival order."""
    return [
        (r.method, r.path.rsplit("/", 1)[1])
        for r in emsp.state.received
        if r.module == "tariffs" and r.status_code == 1000
    ]


@asynccontextmanager
async def tariff_world(tmp_path: Path) -> AsyncIterator[tuple[BridgeApp, EmspSimulator, Path]]:
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp,
        running_bridge(
            tmp_path, site_file=str(site), admin_token=ADMIN_TOKEN, **CPO, **FAST
        ) as app,
    ):
        await emsp_registers(app, emsp)
        await emsp.state.wait_for(lambda: tariff_requests(emsp) == [("PUT", "T1")])
        yield app, emsp, site


async def test_the_admin_api_puts_lists_and_deletes_tariffs_and_partners_follow(
    tmp_path: Path,
) -> None:
    async with (
        tariff_world(tmp_path) as (app, emsp, _site),
        httpx.AsyncClient(base_url=f"{base_url(app)}/admin", headers=ADMIN) as admin,
    ):
        created = await admin.put("/tariffs/PARK", json=PARKING)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["created"] == ["PARK"]
        again = await admin.put("/tariffs/park", json=PARKING)
        assert again.json()["data"]["unchanged"] == ["PARK"]
        listed = (await admin.get("/tariffs")).json()["data"]
        assert [(t["origin"], t["tariff"]["id"]) for t in listed] == [
            ("api", "PARK"),
            ("site", "T1"),
        ]
        # T1 is used by connectors: refused, every user named, nothing changed.
        refused = await admin.delete("/tariffs/T1")
        assert refused.status_code == 400
        assert refused.json()["status_code"] == 2001
        assert (
            "still used by location LOC-16 EVSE CP16-1 connector 1"
            in refused.json()["status_message"]
        )
        deleted = await admin.delete("/tariffs/park")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["data"]["removed"] == ["PARK"]
        await emsp.state.wait_for(lambda: ("DELETE", "PARK") in tariff_requests(emsp))
        assert tariff_requests(emsp) == [("PUT", "T1"), ("PUT", "PARK"), ("DELETE", "PARK")]
        assert ("NL", "CPO", "PARK") not in emsp.state.tariffs
        sender = await emsp.driver.pull("tariffs")
        assert [t["id"] for t in sender.objects] == ["T1"]
        missing = await admin.delete("/tariffs/PARK")
        assert (missing.status_code, missing.json()["status_code"]) == (404, 2000)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/tariffs/X", [PARKING], "expected a JSON object"),
        ("/tariffs/X", PARKING, "differs from the URL"),
        ("/tariffs/PARK", {**PARKING, "currency": "euro"}, "currency"),
        ("/tariffs/PARK", {**PARKING, "party_id": "ABC"}, "set by the bridge"),
    ],
)
async def test_the_admin_api_refuses_bad_tariffs_whole(
    tmp_path: Path, path: str, body: Any, message: str
) -> None:
    async with (
        tariff_world(tmp_path) as (app, _emsp, _site),
        httpx.AsyncClient(base_url=f"{base_url(app)}/admin", headers=ADMIN) as admin,
    ):
        answer = await admin.put(path, json=body)
        assert (answer.status_code, answer.json()["status_code"]) == (400, 2001)
        assert message in answer.json()["status_message"]
        assert [t.id for t in await app.tariffs.all_tariffs()] == ["T1"]


async def test_a_location_put_through_the_admin_api_must_name_known_tariffs(
    tmp_path: Path,
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        await add_charger(app, "CP16")
        entry = tomllib.loads(site_text())["locations"][0]
        with pytest.raises(TariffError, match="unknown tariff 'T1'"):
            await app.sites.put_location(entry, entry["id"])
        assert await app.sites.locations() == []


async def test_a_site_reload_deletes_the_tariffs_the_file_dropped_once_unused(
    tmp_path: Path,
) -> None:
    async with tariff_world(tmp_path) as (app, emsp, site):
        await app.sites.put_tariff(PARKING, "PARK")
        without_t1 = site_text().split("[[tariffs]]")[0]
        # Connectors still name T1: the whole reload is refused.
        site.write_text(without_t1, encoding="utf-8")
        with pytest.raises(TariffError, match="'T1' is no longer in the file but location"):
            await app.sites.reload(site)
        assert sorted(t.id for t in await app.tariffs.all_tariffs()) == ["PARK", "T1"]
        # Connectors no longer name it: T1 goes (a DELETE pushed); PARK, put through the admin
        # API, stays.
        site.write_text(without_t1.replace(', tariff_ids = ["T1"]', ""), encoding="utf-8")
        report = await app.sites.reload(site)
        assert report.tariffs is not None
        assert report.tariffs.removed == ["T1"]
        assert [t.id for t in await app.tariffs.all_tariffs()] == ["PARK"]
        await emsp.state.wait_for(lambda: ("DELETE", "T1") in tariff_requests(emsp))
        assert ("NL", "CPO", "T1") not in emsp.state.tariffs


async def test_the_tariffs_cli_puts_shows_lists_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tariff_world(tmp_path) as (app, emsp, _site):
        as_toml = tmp_path / "park.toml"
        as_toml.write_text(
            '[[tariffs]]\nid = "PARK"\ncurrency = "EUR"\n[[tariffs.elements]]\n'
            '[[tariffs.elements.price_components]]\ntype = "PARKING_TIME"\nprice = 3\n'
            "step_size = 60\n",
            encoding="utf-8",
        )
        put = await run_cli(app, monkeypatch, "tariffs", "put", str(as_toml))
        assert "created: PARK" in put
        as_json = tmp_path / "park.json"
        as_json.write_text(json.dumps({**PARKING, "currency": "CHF"}), encoding="utf-8")
        assert "updated: PARK" in await run_cli(app, monkeypatch, "tariffs", "put", str(as_json))
        listing = await run_cli(app, monkeypatch, "tariffs", "list")
        assert listing.splitlines()[1].startswith("PARK\tapi\tCHF\t1\t")
        shown = json.loads(await run_cli(app, monkeypatch, "tariffs", "show", "park"))
        assert (shown["id"], shown["currency"], shown["party_id"]) == ("PARK", "CHF", "CPO")
        assert "removed: PARK" in await run_cli(app, monkeypatch, "tariffs", "delete", "PARK")
        await emsp.state.wait_for(lambda: ("DELETE", "PARK") in tariff_requests(emsp))
        refused = await cli_fails(app, monkeypatch, "tariffs", "delete", "T1")
        assert "still used by location" in refused
        assert "unknown tariff" in await cli_fails(app, monkeypatch, "tariffs", "show", "NOPE")


async def cli_fails(app: BridgeApp, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("OCPI_BRIDGE_DATABASE_URL", app.settings.database_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    assert result.exit_code == 1, result.output
    return result.output
