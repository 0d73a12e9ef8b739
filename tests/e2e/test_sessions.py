"""Sessions, CDRs and Tariffs end to end over real sockets, for both OCPP versions: a charging
session with a known meter curve under a tariff with a start fee, energy, charging time and
parking time. The eMSP simulator receives the Session PUT, PATCHes with growing ``kwh``, the
final PUT and exactly one CDR whose totals match the hand computation to the cent; a repeated
stop, a bridge restart mid-session and an eMSP that is down when the CDR is made change
nothing of that.

The session (T0 = a fixed instant in the past, as a charger delivers offline data):

    T0        start, meter 10 000 Wh, charging
    T0+10min  13 000 Wh
    T0+20min  16 000 Wh
    T0+30min  19 000 Wh, the vehicle stops requesting power (parking)
    T0+45min  stop, meter 19 000 Wh

Tariff T1 (EUR): FLAT 0.50 (VAT 20 %); ENERGY 0.25/kWh and TIME 2.00/h (VAT 10 %); PARKING_TIME
6.00/h (VAT 10 %), every step_size 1.

    start fee      0.50          incl 0.60
    energy   9 kWh x 0.25 = 2.25 incl 2.475
    time   0.5 h  x 2.00 = 1.00 incl 1.10
    parking 0.25 h x 6.00 = 1.50 incl 1.65
    total                  5.25 incl 5.825 -> 5.83 (rounded once, at the end)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.main import BridgeApp
from bridge.ocpi.cdrs import Cdr
from bridge.ocpi.sessions import Session
from bridge.store.tables import CdrRow, SessionRow
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import RecordedRequest
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_location_status import (
    CPO,
    FAST,
    LOC16,
    LOC201,
    charger16,
    site_toml,
    station201,
    until,
)
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TOKEN = "MONEY-1"

TARIFF = """
[[tariffs]]
id = "T1"
currency = "EUR"
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "FLAT"
    price = 0.50
    vat = 20.0
    step_size = 1
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "ENERGY"
    price = 0.25
    vat = 10.0
    step_size = 1
    [[tariffs.elements.price_components]]
    type = "TIME"
    price = 2.00
    vat = 10.0
    step_size = 1
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "PARKING_TIME"
    price = 6.00
    vat = 10.0
    step_size = 1
"""

EXPECTED_CDR_TOTALS = {
    "total_energy": 9,
    "total_time": 0.75,
    "total_parking_time": 0.25,
    "total_fixed_cost": {"excl_vat": 0.5, "incl_vat": 0.6},
    "total_energy_cost": {"excl_vat": 2.25, "incl_vat": 2.48},
    "total_time_cost": {"excl_vat": 1, "incl_vat": 1.1},
    "total_parking_cost": {"excl_vat": 1.5, "incl_vat": 1.65},
    "total_cost": {"excl_vat": 5.25, "incl_vat": 5.83},
}


def site_text() -> str:
    text = site_toml(["CP16", "CS201"], [LOC16, LOC201])
    text = text.replace("max_amperage = 16 }", 'max_amperage = 16, tariff_ids = ["T1"] }')
    return text + TARIFF


@asynccontextmanager
async def money_world(
    tmp_path: Path, *, site_file: str | None = None, **settings: Any
) -> AsyncIterator[tuple[BridgeApp, EmspSimulator, AsyncExitStack]]:
    site = tmp_path / "site.toml"
    site.write_text(site_file or site_text(), encoding="utf-8")
    async with AsyncExitStack() as stack:
        emsp = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="EMS")
        )
        app = await stack.enter_async_context(
            running_bridge(
                tmp_path,
                site_file=str(site),
                session_patch_interval=0,
                **CPO,
                **{**FAST, **settings},
            )
        )
        await emsp_registers(app, emsp)
        _, result = await emsp.driver.publish_token(TOKEN, whitelist="ALLOWED")
        assert result is not None
        assert result.ok, result.describe()
        yield app, emsp, stack


def register(wh: int, context: str = "Sample.Periodic") -> dict[str, Any]:
    return {
        "value": str(wh),
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
        "context": context,
    }


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def session_16(app: BridgeApp, stack: AsyncExitStack) -> Any:
    sim = charger16(app, "CP16")
    await sim.connect()
    stack.push_async_callback(sim.disconnect)
    await sim.boot()
    started = await sim.start_transaction(1, TOKEN, 10_000, timestamp=at(0))
    tx = started["transactionId"]
    await sim.status(1, "Charging", timestamp=at(0))
    for minutes, wh in ((10, 13_000), (20, 16_000), (30, 19_000)):
        await sim.meter_values(1, [register(wh)], transaction_id=tx, timestamp=at(minutes))
    await sim.status(1, "SuspendedEV", timestamp=at(30))
    return sim, tx


async def stop_16(sim: Any, tx: int) -> None:
    await sim.stop_transaction(tx, 19_000, timestamp=at(45), reason="EVDisconnected")


def sampled_201(wh: int, minutes: int, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    return [
        {
            "timestamp": at(minutes).isoformat().replace("+00:00", "Z"),
            "sampledValue": [
                {
                    "value": wh,
                    "measurand": "Energy.Active.Import.Register",
                    "context": context,
                    "unitOfMeasure": {"unit": "Wh"},
                }
            ],
        }
    ]


async def session_201(app: BridgeApp, stack: AsyncExitStack) -> Any:
    sim = station201(app, "CS201")
    await sim.connect()
    stack.push_async_callback(sim.disconnect)
    await sim.boot()
    await events_201(sim)
    return sim, "TX-MONEY"


async def events_201(sim: Any) -> None:
    """The session's TransactionEvents up to the parking (the stop is ``stop_201``)."""
    await sim.transaction_event(
        "Started",
        "TX-MONEY",
        "Authorized",
        timestamp=at(0),
        evse=(1, 1),
        id_token=(TOKEN, "ISO14443"),
        charging_state="Charging",
        meter_value=sampled_201(10_000, 0, "Transaction.Begin"),
    )
    for minutes, wh in ((10, 13_000), (20, 16_000), (30, 19_000)):
        await sim.transaction_event(
            "Updated",
            "TX-MONEY",
            "MeterValuePeriodic",
            timestamp=at(minutes),
            meter_value=sampled_201(wh, minutes),
        )
    await sim.transaction_event(
        "Updated",
        "TX-MONEY",
        "ChargingStateChanged",
        timestamp=at(30),
        charging_state="SuspendedEV",
    )


async def stop_201(sim: Any, tx: str) -> None:
    await sim.transaction_event(
        "Ended",
        tx,
        "EVDeparted",
        timestamp=at(45),
        stopped_reason="EVDisconnected",
        meter_value=sampled_201(19_000, 45, "Transaction.End"),
    )


FLOWS = {"1.6": (session_16, stop_16), "2.0.1": (session_201, stop_201)}


def session_requests(emsp: EmspSimulator) -> list[RecordedRequest]:
    return [
        r
        for r in emsp.state.received
        if r.module == "sessions" and r.status_code == 1000 and r.fault is None
    ]


def cdr_posts(emsp: EmspSimulator) -> list[RecordedRequest]:
    return [r for r in emsp.state.received if r.module == "cdrs" and r.method == "POST"]


def money(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in EXPECTED_CDR_TOTALS}


def as_json_numbers(value: Any) -> Any:
    """The simulator parses fractions as Decimal: compare as plain JSON numbers."""
    if isinstance(value, dict):
        return {k: as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json_numbers(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_session_gives_puts_patches_and_one_cdr_right_to_the_cent(
    tmp_path: Path, version: str
) -> None:
    start, stop = FLOWS[version]
    async with money_world(tmp_path) as (app, emsp, stack):
        # A second eMSP, registered too, must see nothing of another eMSP's driver.
        other = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="OTH")
        )
        _, token_a = await token_a_for(app, "OTH")
        assert (await other.driver.register(versions_url(app), token_a)).ok
        sim, tx = await start(app, stack)
        await emsp.state.wait_for(lambda: len(session_requests(emsp)) >= 4)
        await stop(sim, tx)
        await emsp.state.wait_for(lambda: len(cdr_posts(emsp)) == 1)

        requests = session_requests(emsp)
        methods = [r.method for r in requests]
        assert methods[0] == "PUT"
        assert methods[-1] == "PUT"
        first, last = requests[0].body, requests[-1].body
        assert first["status"] == "ACTIVE"
        assert as_json_numbers(first["kwh"]) == 0
        assert first["start_date_time"] == "2026-11-20T09:00:00.000Z"
        assert first["cdr_token"]["uid"] == TOKEN
        assert first["auth_method"] == "WHITELIST"
        assert (first["location_id"], first["currency"]) == (
            "LOC-16" if version == "1.6" else "LOC-201",
            "EUR",
        )
        patches = [as_json_numbers(r.body["kwh"]) for r in requests if r.method == "PATCH"]
        assert patches[:3] == [3, 6, 9]
        assert last["status"] == "COMPLETED"
        assert as_json_numbers(last["kwh"]) == 9
        assert last["end_date_time"] == "2026-11-20T09:45:00.000Z"
        assert as_json_numbers(last["total_cost"]) == {"excl_vat": 5.25, "incl_vat": 5.83}
        for request in requests:
            if request.method == "PUT":
                Session.model_validate(as_json_numbers(request.body))

        (post,) = cdr_posts(emsp)
        cdr = as_json_numbers(post.body)
        Cdr.model_validate(cdr)
        assert money(cdr) == EXPECTED_CDR_TOTALS
        assert cdr["id"] == last["id"] == cdr["session_id"]
        assert cdr["tariffs"][0]["id"] == "T1"
        assert cdr["cdr_location"]["id"] == last["location_id"]
        assert cdr["remark"] == "EVDisconnected"
        kinds = [{d["type"] for d in period["dimensions"]} for period in cdr["charging_periods"]]
        assert {"ENERGY", "TIME"} <= kinds[0]
        assert "PARKING_TIME" in kinds[-1]

        # The eMSP's Location header is kept.
        async def kept() -> str | None:
            (row,) = await all_rows(app, CdrRow)
            return row.location_url

        assert (await until(kept)).endswith(f"/cdrs/{cdr['id']}")

        # A repeated stop changes nothing: still one CDR.
        await stop(sim, tx)
        assert len(await all_rows(app, CdrRow)) == 1
        assert len(cdr_posts(emsp)) == 1

        # The Sender interfaces show the eMSP its session and CDR.
        got = await emsp.driver.call(
            "sessions", "GET", "", params={"date_from": "2026-01-01T00:00:00Z"}
        )
        assert got.ok, got.describe()
        assert [s["id"] for s in got.data] == [cdr["id"]]
        assert (await emsp.driver.call("sessions", "GET", "")).http_status == 400
        cdrs = await emsp.driver.call("cdrs", "GET", "")
        assert [c["id"] for c in cdrs.data] == [cdr["id"]]
        tariffs = await emsp.driver.call("tariffs", "GET", "")
        assert [t["id"] for t in tariffs.data] == ["T1"]

        # Charging preferences: the EVSE does not take them; an unknown session is not found.
        preferences = {"profile_type": "CHEAP"}
        for path in (f"/{cdr['id']}/charging_preferences", "/NOPE/charging_preferences"):
            answer = await emsp.driver.call("sessions", "PUT", path, body=preferences)
            assert (answer.http_status, answer.status_code) == (404, 2001), answer.describe()
        bad = await emsp.driver.call(
            "sessions", "PUT", f"/{cdr['id']}/charging_preferences", body={"profile_type": "X"}
        )
        assert bad.status_code == 2001

        # Nothing of it went to the other eMSP, nor does it see it.
        assert session_requests(other) == []
        assert cdr_posts(other) == []
        theirs = await other.driver.call(
            "sessions", "GET", "", params={"date_from": "2026-01-01T00:00:00Z"}
        )
        assert theirs.ok
        assert theirs.data == []
        assert (await other.driver.call("cdrs", "GET", "")).data == []


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_restart_mid_session_and_emsp_down_at_the_end_still_one_cdr(
    tmp_path: Path, version: str
) -> None:
    start, stop = FLOWS[version]
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    settings: dict[str, Any] = {"session_patch_interval": 0, **CPO, **FAST}
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp:
        async with running_bridge(tmp_path, site_file=str(site), **settings) as app:
            await emsp_registers(app, emsp)
            _, result = await emsp.driver.publish_token(TOKEN, whitelist="ALLOWED")
            assert result is not None
            assert result.ok
            async with AsyncExitStack() as chargers:
                _, tx = await start(app, chargers)
                await emsp.state.wait_for(lambda: len(session_requests(emsp)) >= 4)
        # The same database, a new process; the eMSP is down when the charger stops.
        await emsp.go_down()
        async with (
            running_bridge(tmp_path, site_file=str(site), **settings) as app2,
            AsyncExitStack() as chargers,
        ):
            sim2: Any = charger16(app2, "CP16") if version == "1.6" else station201(app2, "CS201")
            if version == "2.0.1":
                sim2.seq_nos[tx] = 10
            await sim2.connect()
            chargers.push_async_callback(sim2.disconnect)
            await sim2.boot()
            await stop(sim2, tx)

            async def cdr_made() -> list[CdrRow] | None:
                return await all_rows(app2, CdrRow) or None

            (row,) = await until(cdr_made)
            await emsp.come_back()
            await emsp.state.wait_for(lambda: len(cdr_posts(emsp)) == 1, 10)
            cdr = as_json_numbers(cdr_posts(emsp)[0].body)
            assert cdr["id"] == row.id
            assert money(cdr) == EXPECTED_CDR_TOTALS
            (session,) = await all_rows(app2, SessionRow)
            assert session.status == "COMPLETED"


# --- offline: the same messages delivered after a reconnect give the same Session and CDR ------


async def messages_16(sim: Any) -> None:
    """A 1.6 charger queues only transaction messages while offline (no StatusNotification),
    so this session has no parking: the vehicle charges until the stop."""
    started = await sim.start_transaction(1, TOKEN, 10_000, timestamp=at(0))
    tx = started["transactionId"]
    for minutes, wh in ((10, 13_000), (20, 16_000), (30, 19_000)):
        await sim.meter_values(1, [register(wh)], transaction_id=tx, timestamp=at(minutes))
    await stop_16(sim, tx)


async def messages_201(sim: Any) -> None:
    await events_201(sim)
    await stop_201(sim, "TX-MONEY")


OFFLINE_FLOWS = {
    "1.6": (charger16, "CP16", messages_16),
    "2.0.1": (station201, "CS201", messages_201),
}


async def delivered(tmp_path: Path, version: str, *, offline: bool) -> tuple[dict[str, Any], ...]:
    """The final Session PUT and the CDR the eMSP got for the flow, sent live or queued while
    disconnected and replayed after the reconnect."""
    make, charger_id, messages = OFFLINE_FLOWS[version]
    os.makedirs(tmp_path)
    async with money_world(tmp_path) as (app, emsp, stack):
        sim = make(app, charger_id)
        await sim.connect()
        stack.push_async_callback(sim.disconnect)
        await sim.boot()
        if offline:
            sim.go_offline()
            await sim.disconnect()
        await messages(sim)
        if offline:
            assert sim.queued_actions
            assert session_requests(emsp) == []
            await sim.come_online()
        await emsp.state.wait_for(lambda: len(cdr_posts(emsp)) == 1)
        final = session_requests(emsp)[-1]
        assert (final.method, final.body["status"]) == ("PUT", "COMPLETED")
        (cdr,) = cdr_posts(emsp)
        return tuple(without_stamps(as_json_numbers(body)) for body in (final.body, cdr.body))


def without_stamps(value: Any) -> Any:
    """``value`` without its ``last_updated`` fields (the CDR's copied tariffs have one too:
    when each bridge stored the site's tariff)."""
    if isinstance(value, dict):
        return {k: without_stamps(v) for k, v in value.items() if k != "last_updated"}
    if isinstance(value, list):
        return [without_stamps(v) for v in value]
    return value


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_offline_session_gives_the_same_session_and_cdr_as_a_live_one(
    tmp_path: Path, version: str
) -> None:
    live_session, live_cdr = await delivered(tmp_path / "live", version, offline=False)
    late_session, late_cdr = await delivered(tmp_path / "offline", version, offline=True)
    assert late_session == live_session
    assert late_cdr == live_cdr
    if version == "2.0.1":
        assert money(late_cdr) == EXPECTED_CDR_TOTALS
    else:  # no parking: 45 min charging
        assert late_cdr["total_time"] == 0.75
        assert late_cdr["total_parking_time"] == 0
        assert late_cdr["total_cost"] == {"excl_vat": 4.25, "incl_vat": 4.73}


# --- signed meter values: the CDR's signed_data -------------------------------------------

OCMF_START = 'OCMF|{"RD":[{"RV":"10.000","RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SD":"30450220"}'
OCMF_END = 'OCMF|{"RD":[{"RV":"19.000","RI":"1-b:1.8.0","RU":"kWh","ST":"G"}]}|{"SD":"30460221"}'


def signed_16(blob: str, context: str) -> dict[str, Any]:
    return {
        "value": blob,
        "format": "SignedData",
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unit": "Wh",
    }


async def signed_session_16(app: BridgeApp, stack: AsyncExitStack) -> None:
    sim = charger16(app, "CP16")
    await sim.connect()
    stack.push_async_callback(sim.disconnect)
    await sim.boot()
    tx = (await sim.start_transaction(1, TOKEN, 10_000, timestamp=at(0)))["transactionId"]
    begin = [register(10_000, "Transaction.Begin"), signed_16(OCMF_START, "Transaction.Begin")]
    await sim.meter_values(1, begin, transaction_id=tx, timestamp=at(0))
    end = [register(19_000, "Transaction.End"), signed_16(OCMF_END, "Transaction.End")]
    stamp = at(45).isoformat().replace("+00:00", "Z")
    await sim.stop_transaction(
        tx, 19_000, timestamp=at(45), transaction_data=[{"timestamp": stamp, "sampledValue": end}]
    )


def signed_201(wh: int, minutes: int, context: str, blob: str) -> list[dict[str, Any]]:
    (meter_value,) = sampled_201(wh, minutes, context)
    meter_value["sampledValue"][0]["signedMeterValue"] = {
        "signedMeterData": blob,
        "signingMethod": "ECDSA-secp256r1-SHA256",
        "encodingMethod": "OCMF",
        "publicKey": "3059301306072A8648CE3D0201",
    }
    return [meter_value]


async def signed_session_201(app: BridgeApp, stack: AsyncExitStack) -> None:
    sim = station201(app, "CS201")
    await sim.connect()
    stack.push_async_callback(sim.disconnect)
    await sim.boot()
    await sim.transaction_event(
        "Started",
        "TX-SIGNED",
        "Authorized",
        timestamp=at(0),
        evse=(1, 1),
        id_token=(TOKEN, "ISO14443"),
        charging_state="Charging",
        meter_value=signed_201(10_000, 0, "Transaction.Begin", OCMF_START),
    )
    await sim.transaction_event(
        "Ended",
        "TX-SIGNED",
        "EVDeparted",
        timestamp=at(45),
        stopped_reason="EVDisconnected",
        meter_value=signed_201(19_000, 45, "Transaction.End", OCMF_END),
    )


@pytest.mark.parametrize(
    ("version", "public_key"),
    [("1.6", None), ("2.0.1", "3059301306072A8648CE3D0201")],
)
async def test_signed_meter_values_reach_the_cdr_as_signed_data(
    tmp_path: Path, version: str, public_key: str | None
) -> None:
    flow = signed_session_16 if version == "1.6" else signed_session_201
    async with money_world(tmp_path) as (_app, emsp, stack):
        await flow(_app, stack)
        await emsp.state.wait_for(lambda: len(cdr_posts(emsp)) == 1)
    cdr = as_json_numbers(cdr_posts(emsp)[0].body)
    assert cdr["total_energy"] == 9
    signed = cdr["signed_data"]
    assert signed["encoding_method"] == "OCMF"
    assert signed.get("public_key") == public_key
    assert [(v["nature"], v["signed_data"]) for v in signed["signed_values"]] == [
        ("Start", OCMF_START),
        ("End", OCMF_END),
    ]
    if version == "2.0.1":  # the reading itself is the plain data
        assert [v["plain_data"] for v in signed["signed_values"]] == ["10000", "19000"]


async def test_charging_preferences_on_a_capable_evse_are_answered_not_possible(
    tmp_path: Path,
) -> None:
    async with money_world(tmp_path) as (app, emsp, stack):
        site = tmp_path / "site.toml"
        site.write_text(
            site_text().replace(
                'uid = "CP16-1"',
                'uid = "CP16-1"\n  capabilities = ["CHARGING_PREFERENCES_CAPABLE"]',
            ),
            encoding="utf-8",
        )
        assert (await app.sites.reload(site)).updated == ["LOC-16"]
        sim, tx = await session_16(app, stack)
        await emsp.state.wait_for(lambda: len(session_requests(emsp)) >= 1)
        session_id = session_requests(emsp)[0].body["id"]
        path = f"/{session_id}/charging_preferences"
        preferences = {"profile_type": "FAST", "departure_time": "2026-11-20T18:00:00Z"}
        answer = await emsp.driver.call("sessions", "PUT", path, body=preferences)
        assert (answer.http_status, answer.status_code) == (200, 1000), answer.describe()
        assert answer.data == "NOT_POSSIBLE"
        await stop_16(sim, tx)
