"""End to end over real sockets: the 2.0.1 simulator against a running bridge, and the parity
of 1.6 and 2.0.1 on the same charging scenario."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.main import BridgeApp
from csms.store.tables import (
    ChargerRow,
    ConnectorRow,
    EventRow,
    InventoryRow,
    MeterValueRow,
    TransactionRow,
)
from simulators.charger.scenarios import SCENARIOS
from simulators.charger.scenarios201 import SCENARIOS_201
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from simulators.charger.v201 import ChargerSimulator201, EvseSpec, SimulatorConfig201
from tests.conftest import PASSWORD, add_charger, all_rows, event_types, ocpp_url, running_bridge

EVSES = (EvseSpec(1, ("sType2",), 22000, 3), EvseSpec(2, ("cCCS2", "cG105"), 150000, None))


def _sim201(app: BridgeApp, charger_id: str = "CS1") -> ChargerSimulator201:
    return ChargerSimulator201(
        SimulatorConfig201(
            url=ocpp_url(app),
            charger_id=charger_id,
            password=PASSWORD,
            evses=EVSES,
            vendor="Acme",
            model="DC-150",
            serial_number="SN-201",
            response_timeout=5,
        )
    )


@pytest.fixture
async def sim(bridge: BridgeApp) -> AsyncIterator[ChargerSimulator201]:
    await add_charger(bridge, "CS1")
    await bridge.authorizer.put_token("SIMTAG01")
    simulator = _sim201(bridge)
    await simulator.connect()
    try:
        yield simulator
    finally:
        await simulator.disconnect()


async def _until_event(app: BridgeApp, charger_id: str, event_type: str) -> None:
    async with asyncio.timeout(5):
        while event_type not in await event_types(app, charger_id):
            await asyncio.sleep(0.02)


async def test_boot_fetches_the_inventory_and_statuses_are_stored(bridge, sim):
    result = await SCENARIOS_201["boot"](sim)
    assert result.responses[0][1]["status"] == "Accepted"
    await _until_event(bridge, "CS1", "InventoryReported")
    assert any(action == "GetBaseReport" for action, _ in sim.received_calls)
    rows = await all_rows(bridge, InventoryRow)
    table = sorted((r.ocpp_evse_id, r.connector_id, r.connector_type, r.max_power_w) for r in rows)
    assert table == [
        (1, 0, None, 22000),
        (1, 1, "sType2", None),
        (2, 0, None, 150000),
        (2, 1, "cCCS2", None),
        (2, 2, "cG105", None),
    ]
    statuses = await all_rows(bridge, ConnectorRow)
    assert sorted((c.ocpp_evse_id, c.connector_id, c.status) for c in statuses) == [
        (1, 1, "Available"),
        (2, 1, "Available"),
        (2, 2, "Available"),
    ]
    (charger,) = await all_rows(bridge, ChargerRow)
    assert (charger.ocpp_version, charger.model) == ("2.0.1", "DC-150")


async def test_session_is_persisted_with_energy_in_wh(bridge, sim):
    result = await SCENARIOS_201["session"](sim, samples=3, step_wh=500, meter_start_wh=1000)
    (tx_id,) = result.transaction_ids
    (tx,) = await all_rows(bridge, TransactionRow)
    assert tx.transaction_ref == tx_id
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1000, 2500, 1500)
    assert tx.id_token == "SIMTAG01"
    assert tx.ended_at is not None
    started = dict(result.responses)
    assert started["TransactionEvent"]["idTokenInfo"]["status"] == "Accepted"


async def test_cable_first_session_gets_its_token_later(bridge, sim):
    await SCENARIOS_201["session-cable-first"](sim)
    (tx,) = await all_rows(bridge, TransactionRow)
    assert tx.id_token == "SIMTAG01"
    types = await event_types(bridge, "CS1")
    assert types.index("TransactionStarted") < types.index("TransactionAuthorized")
    started = json.loads(
        (await all_rows(bridge, EventRow, EventRow.type == "TransactionStarted"))[0].payload
    )
    assert started["id_token"] is None


async def test_kwh_session_is_stored_in_wh(bridge, sim):
    await SCENARIOS_201["session-kwh"](sim, samples=2, step_wh=750, meter_start_wh=12_000)
    (tx,) = await all_rows(bridge, TransactionRow)
    assert (tx.meter_start_wh, tx.energy_wh) == (12_000, 1500)


async def test_repeated_ended_creates_nothing_new(bridge, sim):
    await SCENARIOS_201["repeated-ended"](sim)
    assert len(await all_rows(bridge, TransactionRow)) == 1
    assert (await event_types(bridge, "CS1")).count("TransactionEnded") == 1


async def test_offline_session_is_replayed_with_the_offline_flag(bridge, sim):
    start = datetime.now(UTC) - timedelta(hours=3)
    await SCENARIOS_201["offline-session"](sim, start_time=start)
    (tx,) = await all_rows(bridge, TransactionRow)
    assert tx.offline
    assert abs(tx.started_at - start) < timedelta(milliseconds=1)
    assert tx.ended_at is not None


# --- parity -----------------------------------------------------------------------------

_TX_EVENTS = {"TransactionStarted", "MeterValuesSampled", "TransactionEnded"}
# Ids differ by nature; the readings a start or an end carries differ by version (a 1.6
# StartTransaction has none), while the stored meter data is compared in full below.
_IDS = {"charger_id", "transaction_ref", "authorization_ref", "readings"}


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in _IDS}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


async def _transaction_trace(app: BridgeApp, charger_id: str) -> dict[str, Any]:
    events = await all_rows(app, EventRow, EventRow.charger_id == charger_id, order_by=EventRow.id)
    (tx,) = await all_rows(app, TransactionRow, TransactionRow.charger_id == charger_id)
    meter = await all_rows(app, MeterValueRow, MeterValueRow.transaction_id == tx.id)
    stored = tx.model_dump(
        include={
            "ocpp_evse_id",
            "connector_id",
            "id_token",
            "id_token_kind",
            "meter_start_wh",
            "meter_stop_wh",
            "last_meter_wh",
            "started_at",
            "ended_at",
            "stop_reason",
            "stop_id_token",
            "authorization_status",
        }
    )
    return {
        "events": [
            (e.type, _without_ids(json.loads(e.payload))) for e in events if e.type in _TX_EVENTS
        ],
        "transaction": stored | {"energy_wh": tx.energy_wh},
        "meter": sorted(
            (m.sampled_at, m.measurand, m.phase, m.unit, m.context, m.value, m.location)
            for m in meter
        ),
    }


async def test_same_session_over_16_and_201_gives_equal_events_and_data(tmp_path: Path):
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    options = {"samples": 4, "step_wh": 650, "meter_start_wh": 4321, "start_time": start}
    async with running_bridge(tmp_path, base_report="") as app:
        await add_charger(app, "CP16")
        await add_charger(app, "CS201")
        await app.authorizer.put_token("SIMTAG01")
        sim16 = ChargerSimulator16(
            SimulatorConfig16(url=ocpp_url(app), charger_id="CP16", password=PASSWORD)
        )
        sim201 = _sim201(app, "CS201")
        async with sim16, sim201:
            await SCENARIOS["session"](sim16, **options)
            await SCENARIOS_201["session"](sim201, **options)
        trace16 = await _transaction_trace(app, "CP16")
        trace201 = await _transaction_trace(app, "CS201")
    assert [t for t, _ in trace16["events"]] == [
        "TransactionStarted",
        *["MeterValuesSampled"] * 4,
        "TransactionEnded",
    ]
    assert trace16["events"] == trace201["events"]
    assert trace16["transaction"] == trace201["transaction"]
    assert trace16["transaction"]["energy_wh"] == 4 * 650
    # 4 samples of energy, power, 3 phase currents and SoC, plus the begin and end registers.
    assert len(trace16["meter"]) == 4 * 6 + 2
    assert trace16["meter"] == trace201["meter"]


@pytest.mark.parametrize(
    ("knob", "value"),
    [("answers", {"status": "NotSupported"}), ("call_error_actions", "NotImplemented")],
)
async def test_refused_base_report_is_logged_and_changes_nothing(bridge, sim, knob, value, caplog):
    getattr(sim, knob)["GetBaseReport"] = value
    await sim.boot()
    await sim.wait_for_call("GetBaseReport")
    async with asyncio.timeout(5):
        while "did not accept GetBaseReport" not in caplog.text:
            await asyncio.sleep(0.02)
    assert await all_rows(bridge, InventoryRow) == []
    assert (await sim.heartbeat())["currentTime"]
