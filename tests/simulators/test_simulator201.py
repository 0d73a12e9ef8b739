"""OCPP 2.0.1 charger simulator against a minimal in-process central system on real sockets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from simulators.charger.__main__ import build_parser
from simulators.charger.__main__ import main as cli_main
from simulators.charger.__main__ import run as cli_run
from simulators.charger.common import format_timestamp
from simulators.charger.scenario_common import SessionPlan
from simulators.charger.scenarios201 import SCENARIOS_201
from simulators.charger.v201 import (
    CallErrorReceived,
    ChargerSimulator201,
    EvseSpec,
    SimulatorConfig201,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOW = "2025-01-01T00:00:00.000Z"
START = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
ID_TOKEN = {"idToken": "SIMTAG01", "type": "ISO14443"}


class MiniCentral201(ChargePoint):  # type: ignore[misc]
    """One station connection; records received Calls (raw) and handler kwargs (snake_case)."""

    def __init__(self, cp_id: str, ws: ServerConnection, csms: MiniCsms201) -> None:
        super().__init__(cp_id, ws, response_timeout=0.3)
        self.csms = csms
        self.frames: list[tuple[int, str]] = []  # (message type, action or unique id)
        self.kwargs: dict[str, list[dict[str, Any]]] = {}

    async def route_message(self, raw_msg: str) -> None:
        message: Any = None
        with contextlib.suppress(ValueError):
            message = json.loads(raw_msg)
        if isinstance(message, list) and message[:1] in ([3], [4]):
            self.frames.append((message[0], message[1]))
        if isinstance(message, list) and message[:1] == [2] and len(message) > 3:
            self.frames.append((2, message[2]))
            self.csms.calls.setdefault(self.id, []).append((message[2], message[3]))
            if message[2] in self.csms.error_codes:
                code = self.csms.error_codes[message[2]]
                await self._send(json.dumps([4, message[1], code, "nope", {"why": "test"}]))
                return
        await super().route_message(raw_msg)

    def _seen(self, action: str, kwargs: dict[str, Any]) -> None:
        self.kwargs.setdefault(action, []).append(kwargs)

    @on(Action.boot_notification)
    def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(current_time=NOW, interval=60, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(current_time=NOW)

    @on(Action.status_notification)
    def on_status(self, **_: Any) -> Any:
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **_: Any) -> Any:
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on(Action.transaction_event)
    def on_transaction_event(self, **kwargs: Any) -> Any:
        self._seen("TransactionEvent", kwargs)
        if "id_token" in kwargs:
            return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result.TransactionEvent()

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> Any:
        return call_result.MeterValues()

    @on(Action.notify_event)
    def on_notify_event(self, **_: Any) -> Any:
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    def on_security_event(self, **_: Any) -> Any:
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_: Any) -> Any:
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, **_: Any) -> Any:
        return call_result.LogStatusNotification()

    @on(Action.reservation_status_update)
    def on_reservation_status(self, **_: Any) -> Any:
        return call_result.ReservationStatusUpdate()

    @on(Action.notify_charging_limit)
    def on_notify_charging_limit(self, **_: Any) -> Any:
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    def on_cleared_charging_limit(self, **_: Any) -> Any:
        return call_result.ClearedChargingLimit()

    @on(Action.notify_report)
    def on_notify_report(self, **_: Any) -> Any:
        return call_result.NotifyReport()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        if vendor_id == "broken":
            raise InternalError(description="data transfer is broken")
        self._seen("DataTransfer", kwargs)
        return call_result.DataTransfer(status="Accepted", data={"echo": kwargs.get("data")})


class MiniCsms201:
    def __init__(self) -> None:
        self.url = ""
        self.calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.centrals: dict[str, MiniCentral201] = {}
        self.error_codes: dict[str, str] = {}  # action -> CallError code to answer with
        self.connected = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        central = MiniCentral201(cp_id, ws, self)
        self.centrals[cp_id] = central
        self.connected.set()
        with contextlib.suppress(ConnectionClosed):
            await central.start()

    def actions(self, cp_id: str = "CP1") -> list[str]:
        return [action for action, _ in self.calls.get(cp_id, [])]

    def payloads(self, action: str, cp_id: str = "CP1") -> list[dict[str, Any]]:
        return [payload for name, payload in self.calls.get(cp_id, []) if name == action]


@pytest.fixture
async def csms() -> AsyncIterator[MiniCsms201]:
    central_system = MiniCsms201()
    async with serve(
        central_system.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("ocpp2.0.1")],
        compression=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        central_system.url = f"ws://127.0.0.1:{port}/ocpp"
        yield central_system


TWO_EVSES = (EvseSpec(1, ("cType2", "cCCS2")), EvseSpec(2, max_power_w=None, supply_phases=1))


@pytest.fixture
async def sim(csms: MiniCsms201) -> AsyncIterator[ChargerSimulator201]:
    config = SimulatorConfig201(
        url=csms.url, charger_id="CP1", evses=TWO_EVSES, response_timeout=2, report_page_size=3
    )
    async with ChargerSimulator201(config) as simulator:
        await asyncio.wait_for(csms.connected.wait(), 1)
        yield simulator


# ---------------------------------------------------------------------- station -> CSMS


async def test_round_trip_returns_raw_payloads_when_csms_accepts(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    assert sim.connected
    assert sim.subprotocol == "ocpp2.0.1"

    assert await sim.boot() == {"currentTime": NOW, "interval": 60, "status": "Accepted"}
    assert await sim.heartbeat() == {"currentTime": NOW}
    assert await sim.status(1, 2, "Occupied") == {}
    assert await sim.authorize("TAG", "eMAID") == {"idTokenInfo": {"status": "Accepted"}}
    assert await sim.meter_values(1, [_energy_meter(START, 10)]) == {}

    assert csms.actions() == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "MeterValues",
    ]
    station = {"model": "SIM-201", "vendorName": "ocpi-bridge-sim", "firmwareVersion": "1.0.0"}
    assert csms.payloads("BootNotification")[0] == {"chargingStation": station, "reason": "PowerUp"}
    status = csms.payloads("StatusNotification")[0]
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (
        1,
        2,
        "Occupied",
    )
    assert TIMESTAMP.match(status["timestamp"])
    assert csms.payloads("Authorize")[0] == {"idToken": {"idToken": "TAG", "type": "eMAID"}}
    assert csms.payloads("MeterValues")[0] == {
        "evseId": 1,
        "meterValue": [_energy_meter(START, 10)],
    }
    assert sim.variables[("OCPPCommCtrlr", "HeartbeatInterval")] == "60"


async def test_transaction_event_sends_every_field_when_all_given(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    response = await sim.transaction_event(
        "Started",
        "tx-1",
        "RemoteStart",
        seq_no=7,
        timestamp=START,
        evse=(2, 1),
        id_token=("TAG", "Central"),
        charging_state="EVConnected",
        stopped_reason="Other",
        remote_start_id=42,
        time_spent_charging=0,
        meter_value=[_energy_meter(START, 5)],
        offline=False,
        reservation_id=9,
        number_of_phases_used=3,
    )

    assert response == {"idTokenInfo": {"status": "Accepted"}}
    assert csms.payloads("TransactionEvent")[0] == {
        "eventType": "Started",
        "timestamp": format_timestamp(START),
        "triggerReason": "RemoteStart",
        "seqNo": 7,
        "transactionInfo": {
            "transactionId": "tx-1",
            "chargingState": "EVConnected",
            "timeSpentCharging": 0,
            "stoppedReason": "Other",
            "remoteStartId": 42,
        },
        "meterValue": [_energy_meter(START, 5)],
        "offline": False,
        "numberOfPhasesUsed": 3,
        "reservationId": 9,
        "evse": {"id": 2, "connectorId": 1},
        "idToken": {"idToken": "TAG", "type": "Central"},
    }
    # What a CSMS handler built on the ocpp library receives: every key snake_cased, nested too.
    kwargs = csms.centrals["CP1"].kwargs["TransactionEvent"][0]
    assert kwargs["transaction_info"]["transaction_id"] == "tx-1"
    assert kwargs["evse"] == {"id": 2, "connector_id": 1}
    assert kwargs["id_token"] == {"id_token": "TAG", "type": "Central"}
    assert kwargs["meter_value"][0]["sampled_value"][0]["unit_of_measure"] == {"unit": "Wh"}
    assert sim.active_transactions == {"tx-1": 2}


async def test_transaction_event_numbers_seq_no_per_transaction_when_not_given(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await sim.transaction_event("Started", "a", "Authorized", evse=(1, None))
    await sim.transaction_event("Started", "b", "Authorized", evse=(2, 1))
    await sim.transaction_event("Updated", "a", "MeterValuePeriodic")
    await sim.transaction_event("Updated", "a", "MeterValuePeriodic", seq_no=10)
    await sim.transaction_event("Ended", "a", "StopAuthorized")

    events = csms.payloads("TransactionEvent")
    assert [(e["transactionInfo"]["transactionId"], e["seqNo"]) for e in events] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("a", 10),
        ("a", 11),
    ]
    assert events[0]["evse"] == {"id": 1}
    assert "offline" not in events[0]
    assert sim.active_transactions == {"b": 2}


async def test_other_station_messages_round_trip_when_csms_accepts(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    event = {
        "eventId": 1,
        "timestamp": NOW,
        "trigger": "Alerting",
        "actualValue": "Faulted",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
        "variable": {"name": "AvailabilityState"},
    }
    schedule = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }
    generated = datetime(2025, 1, 1, tzinfo=UTC)

    assert await sim.notify_event([event], seq_no=2, tbc=True, generated_at=generated) == {}
    assert await sim.security_event("FirmwareUpdated", tech_info="v2") == {}
    assert await sim.firmware_status("Installed", request_id=5) == {}
    assert await sim.log_status("Idle") == {}
    assert await sim.reservation_status(3, "Expired") == {}
    assert await sim.notify_charging_limit("EMS", evse_id=1, schedule=[schedule]) == {}
    assert await sim.cleared_charging_limit("SO", evse_id=2) == {}

    assert csms.payloads("NotifyEvent") == [
        {"generatedAt": NOW, "seqNo": 2, "eventData": [event], "tbc": True}
    ]
    security = csms.payloads("SecurityEventNotification")[0]
    assert (security["type"], security["techInfo"]) == ("FirmwareUpdated", "v2")
    assert TIMESTAMP.match(security["timestamp"])
    assert csms.payloads("FirmwareStatusNotification") == [{"status": "Installed", "requestId": 5}]
    assert csms.payloads("LogStatusNotification") == [{"status": "Idle"}]
    assert csms.payloads("ReservationStatusUpdate") == [
        {"reservationId": 3, "reservationUpdateStatus": "Expired"}
    ]
    assert csms.payloads("NotifyChargingLimit") == [
        {"chargingLimit": {"chargingLimitSource": "EMS"}, "chargingSchedule": [schedule]}
        | {"evseId": 1}
    ]
    assert csms.payloads("ClearedChargingLimit") == [{"chargingLimitSource": "SO", "evseId": 2}]


async def test_data_transfer_returns_raw_reply_and_library_recases_data_keys(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    response = await sim.data_transfer("vendor", "msg", {"someKey": 1, "snake_key": 2})

    # The library camelCases dict keys inside "data" on the way out ...
    assert csms.payloads("DataTransfer")[0]["data"] == {"someKey": 1, "snakeKey": 2}
    # ... a CSMS handler built on it receives them snake_cased ...
    assert csms.centrals["CP1"].kwargs["DataTransfer"][0]["data"] == {"some_key": 1, "snake_key": 2}
    # ... and its answer's "data" is camelCased again.
    assert response == {"status": "Accepted", "data": {"echo": {"someKey": 1, "snakeKey": 2}}}


@pytest.mark.expect_errors("Error while handling request")
async def test_call_error_received_raised_when_csms_handler_fails(sim: ChargerSimulator201) -> None:
    with pytest.raises(CallErrorReceived) as caught:
        await sim.data_transfer("broken")
    assert (caught.value.code, caught.value.description) == (
        "InternalError",
        "data transfer is broken",
    )
    assert sim.connected


async def test_call_error_received_raised_when_csms_uses_non_standard_code(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    csms.error_codes["Heartbeat"] = "SecurityError"

    with pytest.raises(CallErrorReceived) as caught:
        await sim.heartbeat()
    assert (caught.value.code, caught.value.details) == ("SecurityError", {"why": "test"})


@pytest.mark.expect_errors("Error while handling request")
async def test_recv_raw_returns_csms_answer_when_frame_sent_raw(sim: ChargerSimulator201) -> None:
    await sim.send_raw('[2,"raw-1","Heartbeat",{}]')
    assert json.loads(await sim.recv_raw(timeout=1)) == [3, "raw-1", {"currentTime": NOW}]

    await sim.send_raw('[2,"raw-2","StatusNotification",{"evseId":"x"}]')
    answer = json.loads(await sim.recv_raw(timeout=1))
    assert answer[:2] == [4, "raw-2"]


# ---------------------------------------------------------------------- offline queue


async def test_offline_replay_sets_offline_true_when_back_online(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await sim.boot()
    sim.go_offline()
    await sim.disconnect()
    assert await sim.transaction_event("Started", "tx", "Authorized", evse=(1, 1)) == {}
    assert await sim.meter_values(1, [_energy_meter(START, 1)]) == {}
    assert await sim.transaction_event("Updated", "tx", "Trigger", offline=False) == {}
    assert await sim.transaction_event("Ended", "tx", "EVDeparted", id_token=("T", "Local")) == {}
    assert sim.queued_actions == [
        "TransactionEvent",
        "MeterValues",
        "TransactionEvent",
        "TransactionEvent",
    ]
    assert csms.actions() == ["BootNotification"]

    responses = await sim.come_online()

    assert responses == [{}, {}, {}, {"idTokenInfo": {"status": "Accepted"}}]
    assert sim.connected
    assert not sim.offline
    assert sim.queued_actions == []
    assert csms.actions()[1:] == [
        "TransactionEvent",
        "MeterValues",
        "TransactionEvent",
        "TransactionEvent",
    ]
    events = csms.payloads("TransactionEvent")
    assert [(e["seqNo"], e.get("offline")) for e in events] == [(0, True), (1, False), (2, True)]


async def test_offline_scenario_reconnects_and_replays_when_run(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    result = await SCENARIOS_201["offline-session"](sim, samples=2, transaction_id="tx-off")

    assert result.transaction_ids == ["tx-off"]
    assert csms.actions() == [
        "BootNotification",
        "StatusNotification",
        *["TransactionEvent"] * 5,
    ]
    events = csms.payloads("TransactionEvent")
    assert [e["seqNo"] for e in events] == [0, 1, 2, 3, 4]
    assert all(e["offline"] is True for e in events)
    assert [e["eventType"] for e in events] == ["Started", "Updated", "Updated", "Updated", "Ended"]
    assert [a for a, _ in result.responses][-5:] == ["TransactionEvent"] * 5
    assert sim.connected


# ---------------------------------------------------------------------- scenarios


async def test_boot_scenario_reports_every_connector_available_when_accepted(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    result = await SCENARIOS_201["boot"](sim)

    assert [a for a, _ in result.responses] == ["BootNotification", *["StatusNotification"] * 3]
    statuses = csms.payloads("StatusNotification")
    assert [(s["evseId"], s["connectorId"], s["connectorStatus"]) for s in statuses] == [
        (1, 1, "Available"),
        (1, 2, "Available"),
        (2, 1, "Available"),
    ]


async def test_session_scenario_sends_ordered_transaction_events_when_run(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    responses: list[str] = []
    result = await SCENARIOS_201["session"](
        sim,
        samples=2,
        meter_start_wh=2000,
        transaction_id="tx-42",
        on_response=lambda action, _: responses.append(action),
    )

    expected = [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "StatusNotification",
        "TransactionEvent",
        "TransactionEvent",
        "TransactionEvent",
        "TransactionEvent",
        "StatusNotification",
    ]
    assert csms.actions() == expected
    assert [action for action, _ in result.responses] == expected == responses
    assert result.transaction_ids == ["tx-42"]
    statuses = [p["connectorStatus"] for p in csms.payloads("StatusNotification")]
    assert statuses == ["Available", "Occupied", "Available"]
    events = csms.payloads("TransactionEvent")
    assert [e["seqNo"] for e in events] == [0, 1, 2, 3, 4]
    assert [(e["eventType"], e["triggerReason"]) for e in events] == [
        ("Started", "Authorized"),
        ("Updated", "ChargingStateChanged"),
        ("Updated", "MeterValuePeriodic"),
        ("Updated", "MeterValuePeriodic"),
        ("Ended", "StopAuthorized"),
    ]
    assert all(e["transactionInfo"]["transactionId"] == "tx-42" for e in events)
    started, charging, *periodic, ended = events
    assert started["idToken"] == ID_TOKEN
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert _energy(started) == [(2000, "Wh", "Transaction.Begin")]
    assert charging["transactionInfo"]["chargingState"] == "Charging"
    assert [_energy(e) for e in periodic] == [
        [(2500, "Wh", "Sample.Periodic")],
        [(3000, "Wh", "Sample.Periodic")],
    ]
    sampled = periodic[0]["meterValue"][0]["sampledValue"]
    assert {(s["measurand"], s.get("phase")) for s in sampled} == {
        ("Energy.Active.Import.Register", None),
        ("Power.Active.Import", None),
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
        ("SoC", None),
    }
    assert all(isinstance(s["value"], int | float) for s in sampled)
    assert ended["transactionInfo"]["stoppedReason"] == "Local"
    assert _energy(ended) == [(3000, "Wh", "Transaction.End")]
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)
    assert not sim.active_transactions


async def test_cable_first_scenario_authorizes_after_start_when_run(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await SCENARIOS_201["session-cable-first"](sim, samples=1, id_token="CABLE", token_type="eMAID")

    assert csms.actions()[:7] == [
        "BootNotification",
        "StatusNotification",
        "TransactionEvent",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "TransactionEvent",
    ]
    started, authorized, charging, *_ = csms.payloads("TransactionEvent")
    assert started["triggerReason"] == "CablePluggedIn"
    assert "idToken" not in started
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert (authorized["eventType"], authorized["triggerReason"]) == ("Updated", "Authorized")
    assert authorized["idToken"] == {"idToken": "CABLE", "type": "eMAID"}
    assert csms.payloads("Authorize") == [{"idToken": authorized["idToken"]}]
    assert charging["triggerReason"] == "ChargingStateChanged"
    seq_nos = [e["seqNo"] for e in csms.payloads("TransactionEvent")]
    assert seq_nos == list(range(len(seq_nos)))


async def test_kwh_scenario_reports_kwh_numbers_when_run(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await SCENARIOS_201["session-kwh"](sim, samples=2, meter_start_wh=1000, step_wh=250)

    energies = [_energy(e) for e in csms.payloads("TransactionEvent")]
    assert [reading for readings in energies for reading in readings] == [
        (1.0, "kWh", "Transaction.Begin"),
        (1.25, "kWh", "Sample.Periodic"),
        (1.5, "kWh", "Sample.Periodic"),
        (1.5, "kWh", "Transaction.End"),
    ]


async def test_repeated_ended_sends_identical_ended_events_when_run(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    result = await SCENARIOS_201["repeated-ended"](sim, samples=1)

    ended = [e for e in csms.payloads("TransactionEvent") if e["eventType"] == "Ended"]
    assert len(ended) == 2
    assert ended[0] == ended[1]
    assert ended[0]["seqNo"] == 3
    assert [a for a, _ in result.responses].count("TransactionEvent") == 5


async def test_session_energy_matches_v16_session_plan_when_options_equal(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    options: dict[str, Any] = {"samples": 3, "meter_start_wh": 1234, "step_wh": 321}
    await SCENARIOS_201["session"](sim, start_time=START, **options)
    plan = SessionPlan.from_options({**options, "start_time": START})

    readings = [
        (meter["timestamp"], _number(sampled["value"]))
        for event in csms.payloads("TransactionEvent")
        for meter in event.get("meterValue", [])
        for sampled in meter["sampledValue"]
        if sampled["measurand"] == "Energy.Active.Import.Register"
    ]
    plan_readings = [
        (data["timestamp"], _number(data["sampledValue"][0]["value"]))
        for data in plan.transaction_data()
    ]
    plan_readings[1:1] = [
        (format_timestamp(plan.at(n)), _number(plan.periodic(n)[0]["value"]))
        for n in range(1, plan.samples + 1)
    ]
    assert readings == plan_readings
    assert readings[-1] == (format_timestamp(plan.stop_time), plan.meter_stop_wh)
    periodic = [_number(s["value"]) for s in _sampled(csms, "Sample.Periodic")]
    expected = [_number(s["value"]) for n in range(1, 4) for s in plan.periodic(n)]
    assert periodic == expected


async def test_session_start_time_defaults_like_v16_when_not_given(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    before = datetime.now(UTC)
    await SCENARIOS_201["session"](sim, samples=2)

    started = csms.payloads("TransactionEvent")[0]
    start = datetime.strptime(started["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    expected = before - timedelta(minutes=3)
    assert abs((start - expected).total_seconds()) < 2


# ---------------------------------------------------------------------- CSMS -> station


async def test_get_base_report_answers_then_sends_paginated_reports(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    central = csms.centrals["CP1"]

    answer = await central.call(call.GetBaseReport(request_id=17, report_base="FullInventory"))
    await sim.wait_background()

    assert answer.status == "Accepted"
    reports = csms.payloads("NotifyReport")
    assert reports == sim.reports_sent
    # 2 station + EVSE 1 (3) + 2 connectors (2 each) + EVSE 2 (2) + 1 connector (2) = 13 items
    assert [len(r["reportData"]) for r in reports] == [3, 3, 3, 3, 1]
    assert [r["seqNo"] for r in reports] == [0, 1, 2, 3, 4]
    assert [r["tbc"] for r in reports] == [True, True, True, True, False]
    assert {r["requestId"] for r in reports} == {17}
    assert len({r["generatedAt"] for r in reports}) == 1
    answered = central.frames.index((3, _last_call_id(central)))
    assert answered < central.frames.index((2, "NotifyReport"))
    items = [item for r in reports for item in r["reportData"]]
    found = {
        (
            item["component"]["name"],
            json.dumps(item["component"].get("evse")),
            item["variable"]["name"],
        ): item
        for item in items
    }
    assert len(found) == len(items) == 13
    assert found["ChargingStation", "null", "Model"]["variableAttribute"][0]["value"] == "SIM-201"
    power = found["EVSE", '{"id": 1}', "Power"]
    assert [(a["type"], a["value"]) for a in power["variableAttribute"]] == [
        ("MaxSet", "22000"),
        ("Actual", "22000"),
    ]
    assert found["EVSE", '{"id": 1}', "Available"]["variableAttribute"][0]["value"] == "true"
    assert ("EVSE", '{"id": 2}', "Power") not in found
    connectors = {
        (item["component"]["evse"]["id"], item["component"]["evse"]["connectorId"]): item
        for item in items
        if item["variable"]["name"] == "ConnectorType"
    }
    assert {k: v["variableAttribute"][0]["value"] for k, v in connectors.items()} == {
        (1, 1): "cType2",
        (1, 2): "cCCS2",
        (2, 1): "cType2",
    }
    phases = found["Connector", '{"id": 2, "connectorId": 1}', "SupplyPhases"]
    assert phases["variableAttribute"][0]["value"] == "1"
    assert phases["variableCharacteristics"] == {"dataType": "integer", "supportsMonitoring": False}


async def test_get_base_report_single_page_has_tbc_false(csms: MiniCsms201) -> None:
    config = SimulatorConfig201(url=csms.url, charger_id="CP2", report_page_size=100)
    async with ChargerSimulator201(config) as simulator:
        await asyncio.wait_for(csms.connected.wait(), 1)
        await csms.centrals["CP2"].call(call.GetBaseReport(1, "ConfigurationInventory"))
        await simulator.wait_background()

    (report,) = simulator.reports_sent
    assert (report["seqNo"], report["tbc"], len(report["reportData"])) == (0, False, 7)
    assert simulator.background_errors == []


async def test_get_variables_answers_known_and_unknown_when_asked(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    central = csms.centrals["CP1"]
    interval = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    set_result = await central.call(
        call.SetVariables(set_variable_data=[{**interval, "attribute_value": "30"}])
    )
    assert set_result.set_variable_result == [{**interval, "attribute_status": "Accepted"}]

    result = await central.call(
        call.GetVariables(
            get_variable_data=[
                interval,
                {"component": {"name": "Foo", "evse": {"id": 1, "connectorId": 1}}}
                | {"variable": {"name": "Bar"}},
                {**interval, "attributeType": "Target"},
            ]
        )
    )

    assert result.get_variable_result == [
        {**interval, "attribute_status": "Accepted", "attribute_value": "30"},
        {
            "component": {"name": "Foo", "evse": {"id": 1, "connector_id": 1}},
            "variable": {"name": "Bar"},
            "attribute_status": "UnknownVariable",
        },
        {**interval, "attribute_status": "NotSupportedAttributeType", "attribute_type": "Target"},
    ]
    assert sim.received_calls[1][1]["getVariableData"][2]["attributeType"] == "Target"


async def test_request_start_returns_running_transaction_when_evse_busy(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    central = csms.centrals["CP1"]
    await sim.transaction_event("Started", "tx-9", "CablePluggedIn", evse=(2, 1))

    busy = await central.call(call.RequestStartTransaction(ID_TOKEN, 1, evse_id=2))
    free = await central.call(call.RequestStartTransaction(ID_TOKEN, 2, evse_id=1))

    assert (busy.status, busy.transaction_id) == ("Accepted", "tx-9")
    assert (free.status, free.transaction_id) == ("Accepted", None)


@pytest.mark.parametrize(
    ("request_payload", "expected"),
    [
        (call.Reset(type="Immediate"), {"status": "Accepted"}),
        (call.ChangeAvailability(operational_status="Inoperative"), {"status": "Accepted"}),
        (call.RequestStopTransaction(transaction_id="tx"), {"status": "Rejected"}),
        (call.TriggerMessage(requested_message="Heartbeat"), {"status": "Accepted"}),
        (call.UnlockConnector(evse_id=1, connector_id=1), {"status": "Unlocked"}),
        (call.ReserveNow(1, NOW, ID_TOKEN), {"status": "Rejected"}),  # expired already
        (call.CancelReservation(reservation_id=1), {"status": "Rejected"}),
        (
            call.SetChargingProfile(
                evse_id=1,
                charging_profile={
                    "id": 1,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Absolute",
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                        }
                    ],
                },
            ),
            {"status": "Accepted"},
        ),
        (call.ClearChargingProfile(charging_profile_id=1), {"status": "Unknown"}),
        (call.GetCompositeSchedule(duration=60, evse_id=1), {"status": "Rejected"}),
        (call.DataTransfer(vendor_id="x"), {"status": "UnknownVendorId"}),
        (call.ClearCache(), {"status": "Accepted"}),
        (call.SendLocalList(version_number=1, update_type="Full"), {"status": "Accepted"}),
        (call.GetLocalListVersion(), {"version_number": 0}),
    ],
)
async def test_default_answer_returned_when_csms_calls(
    sim: ChargerSimulator201, csms: MiniCsms201, request_payload: Any, expected: dict[str, Any]
) -> None:
    response = await csms.centrals["CP1"].call(request_payload, suppress=False)

    assert {k: v for k, v in vars(response).items() if v is not None} == expected
    action = type(request_payload).__name__
    assert sim.received_calls[0][0] == action


async def test_csms_call_times_out_when_action_is_silent(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    sim.silent_actions.add("Reset")

    with pytest.raises(TimeoutError):
        await csms.centrals["CP1"].call(call.Reset(type="OnIdle"))
    assert sim.received_calls == [("Reset", {"type": "OnIdle"})]


async def test_csms_receives_call_error_when_action_configured_to_fail(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    sim.call_error_actions["GetBaseReport"] = "InternalError"

    with pytest.raises(InternalError):
        await csms.centrals["CP1"].call(call.GetBaseReport(1, "FullInventory"), suppress=False)
    await sim.wait_background()
    assert sim.reports_sent == []


async def test_csms_gets_override_when_answer_configured(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    sim.answers["Reset"] = {"status": "Rejected"}
    central = csms.centrals["CP1"]

    assert (await central.call(call.Reset(type="Immediate"))).status == "Rejected"
    assert (await central.call(call.ChangeAvailability("Operative", {"id": 1}))).status == (
        "Accepted"
    )
    assert await sim.wait_for_call("ChangeAvailability", timeout=1) == {
        "operationalStatus": "Operative",
        "evse": {"id": 1},
    }
    with pytest.raises(TimeoutError):
        await sim.wait_for_call("ChangeAvailability", timeout=0.05)


async def test_disconnect_cancels_report_when_still_sending(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    sim.start_report(5)
    await sim.disconnect()

    assert not sim.connected
    assert len(sim.reports_sent) <= 1
    assert sim.background_errors == []


# ---------------------------------------------------------------------- CLI


async def test_cli_runs_201_boot_scenario_when_evses_given(
    csms: MiniCsms201, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--ocpp", "2.0.1", "--url", csms.url, "--id", "CP7", "--scenario", "boot"]
    code = await cli_run(_parse([*argv, "--evses", "2", "--connectors", "2"]))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["action"] for line in lines] == ["BootNotification", *["StatusNotification"] * 4]
    statuses = csms.payloads("StatusNotification", "CP7")
    assert [(s["evseId"], s["connectorId"]) for s in statuses] == [(1, 1), (1, 2), (2, 1), (2, 2)]


async def test_cli_runs_201_session_when_id_tag_given(
    csms: MiniCsms201, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--ocpp", "2.0.1", "--url", csms.url, "--id", "CP8", "--scenario", "session"]
    code = await cli_run(_parse([*argv, "--id-tag", "TAG-8", "--samples", "1"]))

    assert code == 0
    assert csms.payloads("Authorize", "CP8") == [
        {"idToken": {"idToken": "TAG-8", "type": "ISO14443"}}
    ]
    assert len(capsys.readouterr().out.splitlines()) == 9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ocpp", "1.6", "--scenario", "session-cable-first"], "not available for OCPP 1.6"),
        (["--ocpp", "2.0.1", "--scenario", "repeated-stop"], "not available for OCPP 2.0.1"),
        (["--ocpp", "1.6", "--evses", "2"], "only available for OCPP 2.0.1"),
    ],
)
def test_cli_exits_2_when_option_does_not_fit_version(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli_main([*argv, "--url", "ws://127.0.0.1:9/ocpp", "--id", "CP1"])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------- helpers


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _energy_meter(at: datetime, wh: int) -> dict[str, Any]:
    unit = {"unit": "Wh"}
    sampled = {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": unit}
    return {"timestamp": format_timestamp(at), "sampledValue": [sampled]}


def _energy(event: dict[str, Any]) -> list[tuple[float, str, str]]:
    return [
        (s["value"], s["unitOfMeasure"]["unit"], s["context"])
        for meter in event.get("meterValue", [])
        for s in meter["sampledValue"]
        if s["measurand"] == "Energy.Active.Import.Register"
    ]


def _sampled(csms: MiniCsms201, context: str) -> list[dict[str, Any]]:
    return [
        s
        for event in csms.payloads("TransactionEvent")
        for meter in event.get("meterValue", [])
        for s in meter["sampledValue"]
        if s["context"] == context
    ]


def _number(value: str | float) -> float:
    return float(value)


def _last_call_id(central: MiniCentral201) -> str:
    (unique_id,) = [uid for kind, uid in central.frames if kind == 3]
    return unique_id
