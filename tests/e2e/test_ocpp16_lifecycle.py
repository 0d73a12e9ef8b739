"""End to end over real sockets: the 1.6 simulator against a running bridge, asserting what
was persisted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from bridge.main import BridgeApp
from csms.clock import utc_now
from csms.domain.model import AuthorizationStatus
from csms.domain.outcomes import (
    CallAnswered,
    CallFailed,
    CallInvalid,
    CallTimedOut,
    ChargerOffline,
)
from csms.store.tables import ChargerRow, ConnectorRow, EventRow, MeterValueRow, TransactionRow
from simulators.charger.scenarios import SCENARIOS
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from tests.conftest import PASSWORD, add_charger, all_rows, event_types, ocpp_url


@pytest.fixture
async def sim(bridge: BridgeApp) -> AsyncIterator[ChargerSimulator16]:
    await add_charger(bridge, "CP1")
    await bridge.authorizer.put_token("SIMTAG01")
    simulator = ChargerSimulator16(
        SimulatorConfig16(
            url=ocpp_url(bridge),
            charger_id="CP1",
            password=PASSWORD,
            connectors=2,
            vendor="Acme",
            model="Wallbox-7",
            serial_number="SN-001",
            meter_serial_number="MTR-42",
            response_timeout=5,
        )
    )
    await simulator.connect()
    try:
        yield simulator
    finally:
        await simulator.disconnect()


async def _transactions(app: BridgeApp) -> list[TransactionRow]:
    return await all_rows(app, TransactionRow, order_by=TransactionRow.id)


async def test_boot_and_status_are_persisted_when_charger_boots(bridge, sim):
    result = await SCENARIOS["boot"](sim)
    assert result.responses[0][1]["status"] == "Accepted"
    assert result.responses[0][1]["interval"] == 60
    (charger,) = await all_rows(bridge, ChargerRow)
    assert (charger.vendor, charger.model, charger.serial_number) == ("Acme", "Wallbox-7", "SN-001")
    assert charger.meter_serial_number == "MTR-42"
    assert charger.ocpp_version == "1.6"
    assert charger.connected
    connectors = await all_rows(bridge, ConnectorRow, order_by=ConnectorRow.ocpp_evse_id)
    assert [(c.ocpp_evse_id, c.connector_id, c.status) for c in connectors] == [
        (0, 0, "Available"),
        (1, 1, "Available"),
        (2, 1, "Available"),
    ]
    # The NumberOfConnectors query runs after the boot reply, alongside the statuses.
    async with asyncio.timeout(5):
        while "InventoryReported" not in (types := await event_types(bridge, "CP1")):
            await asyncio.sleep(0.02)
    types.remove("InventoryReported")
    assert types == [
        "ChargerConnected",
        "ChargerBooted",
        "ConnectorStatusChanged",
        "ConnectorStatusChanged",
        "ConnectorStatusChanged",
    ]


async def test_status_with_error_code_is_kept_when_charger_reports_fault(bridge, sim):
    await sim.boot()
    await sim.status(1, "Faulted", "GroundFailure", info="RCD tripped", vendor_error_code="E42")
    await sim.status(0, "Unavailable")
    rows = await all_rows(bridge, ConnectorRow, order_by=ConnectorRow.ocpp_evse_id)
    assert [(r.ocpp_evse_id, r.status, r.error_code) for r in rows] == [
        (0, "Unavailable", None),
        (1, "Faulted", "GroundFailure"),
    ]
    assert (rows[1].info, rows[1].vendor_error_code) == ("RCD tripped", "E42")


async def test_repeated_status_changes_nothing_when_nothing_changed(bridge, sim):
    await sim.boot()
    await sim.status(1, "Available")
    await sim.status(1, "Available")
    assert (await event_types(bridge, "CP1")).count("ConnectorStatusChanged") == 1


async def test_full_session_is_persisted_with_energy_in_wh(bridge, sim):
    result = await SCENARIOS["session"](sim, samples=3, step_wh=500, meter_start_wh=1000)
    (tx_id,) = result.transaction_ids
    (tx,) = await _transactions(bridge)
    assert tx.id == tx_id
    assert tx.transaction_ref == str(tx_id)
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1000, 2500, 1500)
    assert (tx.ocpp_evse_id, tx.connector_id, tx.id_token) == (1, 1, "SIMTAG01")
    assert tx.authorization_status == "Accepted"
    assert tx.stop_reason == "Local"
    assert tx.started_at < tx.ended_at
    assert tx.started_at.tzinfo is not None
    authorize = dict(result.responses)["Authorize"]
    assert authorize["idTagInfo"]["status"] == "Accepted"

    meter = await all_rows(bridge, MeterValueRow, MeterValueRow.transaction_id == tx_id)
    energy = sorted(
        (m.sampled_at, Decimal(m.value))
        for m in meter
        if m.measurand == "Energy.Active.Import.Register"
    )
    assert [v for _, v in energy] == [1000, 1500, 2000, 2500, 2500]
    measurands = {(m.measurand, m.phase, m.unit) for m in meter}
    assert ("Current.Import", "L2", "A") in measurands
    assert ("Power.Active.Import", None, "W") in measurands
    assert ("SoC", None, "Percent") in measurands

    types = await event_types(bridge, "CP1")
    assert types.count("TransactionStarted") == 1
    assert types.count("MeterValuesSampled") == 3
    assert types.count("TransactionEnded") == 1
    assert types.index("TransactionStarted") < types.index("MeterValuesSampled")
    assert types.index("MeterValuesSampled") < types.index("TransactionEnded")
    statuses = [
        c.status for c in await all_rows(bridge, ConnectorRow, ConnectorRow.ocpp_evse_id == 1)
    ]
    assert statuses == ["Available"]


async def test_kwh_labelled_meter_values_are_stored_in_wh(bridge, sim):
    await SCENARIOS["session-kwh"](sim, samples=2, step_wh=750, meter_start_wh=12_000)
    (tx,) = await _transactions(bridge)
    assert tx.energy_wh == 1500
    meter = await all_rows(bridge, MeterValueRow, MeterValueRow.transaction_id == tx.id)
    registers = sorted(
        Decimal(m.value) for m in meter if m.measurand == "Energy.Active.Import.Register"
    )
    assert registers[0] == Decimal(12_000)
    assert all(m.unit == "Wh" for m in meter if m.measurand.startswith("Energy"))


async def test_repeated_stop_is_acknowledged_and_changes_nothing(bridge, sim):
    result = await SCENARIOS["repeated-stop"](sim)
    stops = [response for action, response in result.responses if action == "StopTransaction"]
    assert len(stops) == 2
    assert stops[0] == stops[1]
    (tx,) = await _transactions(bridge)
    types = await event_types(bridge, "CP1")
    assert types.count("TransactionEnded") == 1
    ended_before = tx.ended_at
    meter_rows = len(await all_rows(bridge, MeterValueRow))
    await sim.stop_transaction(tx.id, 99_999, reason="Remote")
    (tx,) = await _transactions(bridge)
    assert (tx.ended_at, tx.meter_stop_wh, tx.stop_reason) == (ended_before, 2500, "Local")
    assert len(await all_rows(bridge, MeterValueRow)) == meter_rows


async def test_offline_transactions_are_stored_when_delivered_after_reconnect(bridge, sim):
    start = utc_now() - timedelta(hours=2)
    result = await SCENARIOS["offline-session"](sim, start_time=start, samples=2)
    (tx_id,) = result.transaction_ids
    (tx,) = await _transactions(bridge)
    assert tx.id == tx_id
    assert abs(tx.started_at - start) < timedelta(milliseconds=1)
    assert tx.ended_at is not None
    assert tx.ended_at < utc_now() - timedelta(hours=1)
    assert tx.energy_wh == 1000
    assert len(await all_rows(bridge, MeterValueRow, MeterValueRow.transaction_id == tx_id)) > 0


async def test_repeated_start_gets_the_same_transaction_id(bridge, sim):
    await sim.boot()
    at = utc_now() - timedelta(minutes=1)
    first = await sim.start_transaction(1, "SIMTAG01", 500, timestamp=at)
    again = await sim.start_transaction(1, "SIMTAG01", 500, timestamp=at)
    other = await sim.start_transaction(2, "SIMTAG01", 700, timestamp=at)
    assert first["transactionId"] == again["transactionId"] != other["transactionId"]
    assert len(await _transactions(bridge)) == 2


async def test_stop_of_unknown_transaction_is_acknowledged_and_not_billed(bridge, sim):
    await sim.boot()
    response = await sim.stop_transaction(-1, 4000, reason="PowerLoss")
    assert response == {}
    assert await _transactions(bridge) == []
    (event,) = await all_rows(bridge, EventRow, EventRow.type == "UnknownTransactionStopped")
    assert '"transaction_ref":"-1"' in event.payload


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Invalid"),
        (AuthorizationStatus.BLOCKED, "Blocked"),
        (AuthorizationStatus.EXPIRED, "Expired"),
        (AuthorizationStatus.NO_CREDIT, "Invalid"),
    ],
)
async def test_authorize_answers_the_token_status(bridge, sim, status, expected):
    await sim.boot()
    if status is not None:
        await bridge.authorizer.put_token("TAG-X", status=status)
    response = await sim.authorize("TAG-X")
    assert response["idTagInfo"]["status"] == expected


async def test_expired_token_is_refused_when_past_its_expiry(bridge, sim):
    await sim.boot()
    await bridge.authorizer.put_token("OLD", expires_at=utc_now() - timedelta(days=1))
    assert (await sim.authorize("OLD"))["idTagInfo"]["status"] == "Expired"


async def test_start_with_refused_token_is_recorded_with_its_status(bridge, sim):
    await sim.boot()
    response = await sim.start_transaction(1, "NOBODY", 0)
    assert response["idTagInfo"]["status"] == "Invalid"
    (tx,) = await _transactions(bridge)
    assert tx.authorization_status == "Unknown"
    assert response["transactionId"] == tx.id


async def test_phase_only_energy_registers_are_summed(bridge, sim):
    await sim.boot()
    started = await sim.start_transaction(1, "SIMTAG01", 0)
    tx_id = started["transactionId"]
    sampled = [
        {"value": str(v), "measurand": "Energy.Active.Import.Register", "phase": p, "unit": "Wh"}
        for p, v in (("L1", 100), ("L2", 110), ("L3", 120))
    ]
    await sim.meter_values(1, sampled, transaction_id=tx_id)
    (tx,) = await _transactions(bridge)
    assert tx.last_meter_wh == 330


async def test_meter_values_for_unknown_transaction_are_kept_without_guessing(bridge, sim):
    await sim.boot()
    await sim.meter_values(1, [{"value": "10"}], transaction_id=777)
    (row,) = await all_rows(bridge, MeterValueRow)
    assert row.transaction_id is None
    assert await _transactions(bridge) == []


async def test_energy_register_going_back_is_ignored(bridge, sim):
    await sim.boot()
    tx_id = (await sim.start_transaction(1, "SIMTAG01", 1000))["transactionId"]
    await sim.meter_values(1, [{"value": "1800"}], transaction_id=tx_id)
    await sim.meter_values(1, [{"value": "1200"}], transaction_id=tx_id)
    (tx,) = await _transactions(bridge)
    assert tx.last_meter_wh == 1800


async def test_firmware_and_diagnostics_status_are_recorded(bridge, sim):
    await sim.boot()
    await sim.firmware_status("Installing")
    await sim.diagnostics_status("Uploaded")
    (charger,) = await all_rows(bridge, ChargerRow)
    assert (charger.firmware_status, charger.diagnostics_status) == ("Installing", "Uploaded")
    assert (await event_types(bridge, "CP1")).count("ChargerNotified") == 2


async def test_heartbeat_answers_current_time(bridge, sim):
    await sim.boot()
    response = await sim.heartbeat()
    assert response["currentTime"].endswith("Z")


# --- outgoing calls ---------------------------------------------------------------------


async def test_outgoing_call_is_answered_when_charger_replies(bridge, sim):
    await sim.boot()
    outcome = await bridge.registry.call("CP1", "GetConfiguration", {"key": ["NumberOfConnectors"]})
    assert isinstance(outcome, CallAnswered)
    assert outcome.payload["configurationKey"][0]["value"] == "2"
    assert sim.received_calls[-1][0] == "GetConfiguration"


async def test_outgoing_call_error_is_an_outcome_not_swallowed(bridge, sim):
    await sim.boot()
    sim.call_error_actions["Reset"] = "InternalError"
    outcome = await bridge.registry.call("CP1", "Reset", {"type": "Soft"})
    assert isinstance(outcome, CallFailed)
    assert outcome.error_code == "InternalError"


async def test_outgoing_call_times_out_when_charger_is_silent(bridge, sim):
    await sim.boot()
    sim.silent_actions.add("Reset")
    outcome = await bridge.registry.call("CP1", "Reset", {"type": "Hard"}, timeout_s=0.3)
    assert outcome == CallTimedOut(timeout_s=0.3)
    # The connection keeps working after a timed-out call.
    assert isinstance(await bridge.registry.call("CP1", "ClearCache", {}), CallAnswered)


async def test_outgoing_call_to_offline_charger_is_an_outcome(bridge):
    assert await bridge.registry.call("NOPE", "Reset", {"type": "Hard"}) == ChargerOffline(
        charger_id="NOPE"
    )


async def test_outgoing_call_with_invalid_payload_is_refused_before_sending(bridge, sim):
    await sim.boot()
    outcome = await bridge.registry.call("CP1", "Reset", {"type": "Sideways"})
    assert isinstance(outcome, CallInvalid)
    assert not any(action == "Reset" for action, _ in sim.received_calls)


async def test_outgoing_call_with_invalid_answer_is_an_outcome(bridge, sim):
    await sim.boot()
    sim.answers["Reset"] = {"status": "Maybe"}
    outcome = await bridge.registry.call("CP1", "Reset", {"type": "Soft"})
    assert isinstance(outcome, CallInvalid)


async def test_outgoing_call_ends_offline_when_charger_disconnects_while_waiting(bridge, sim):
    await sim.boot()
    sim.silent_actions.add("Reset")
    pending = asyncio.create_task(
        bridge.registry.call("CP1", "Reset", {"type": "Hard"}, timeout_s=5)
    )
    await sim.wait_for_call("Reset")
    await sim.disconnect()
    assert await pending == ChargerOffline(charger_id="CP1")
