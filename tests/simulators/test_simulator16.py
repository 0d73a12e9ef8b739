"""OCPP 1.6 charger simulator against a minimal in-process central system on real sockets."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from simulators.charger.__main__ import build_parser
from simulators.charger.__main__ import run as cli_run
from simulators.charger.common import format_timestamp
from simulators.charger.scenarios import SCENARIOS
from simulators.charger.v16 import CallErrorReceived, ChargerSimulator16, SimulatorConfig16

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOW = "2025-01-01T00:00:00.000Z"


class MiniCentral(ChargePoint):  # type: ignore[misc]
    """One charger connection; records every received Call as (action, raw payload)."""

    def __init__(self, cp_id: str, ws: ServerConnection, csms: MiniCsms) -> None:
        super().__init__(cp_id, ws, response_timeout=0.3)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        message: Any = None
        with contextlib.suppress(ValueError):
            message = json.loads(raw_msg)
        if isinstance(message, list) and message[:1] == [2] and len(message) > 3:
            self.csms.calls.setdefault(self.id, []).append((message[2], message[3]))
            if self.csms.mute:
                return
            if message[2] in self.csms.error_codes:
                code = self.csms.error_codes[message[2]]
                await self._send(json.dumps([4, message[1], code, "nope", {"why": "test"}]))
                return
        await super().route_message(raw_msg)

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        return call_result.BootNotification(current_time=NOW, interval=60, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> Any:
        return call_result.Heartbeat(current_time=NOW)

    @on("StatusNotification")
    def on_status(self, **_: Any) -> Any:
        return call_result.StatusNotification()

    @on("Authorize")
    def on_authorize(self, **_: Any) -> Any:
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def on_start(self, **_: Any) -> Any:
        transaction_id = next(self.csms.transaction_ids)
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info={"status": "Accepted"}
        )

    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> Any:
        return call_result.MeterValues()

    @on("StopTransaction")
    def on_stop(self, **_: Any) -> Any:
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> Any:
        raise InternalError(description="data transfer is broken")


class MiniCsms:
    def __init__(self) -> None:
        self.url = ""
        self.calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.centrals: dict[str, MiniCentral] = {}
        self.authorization: dict[str, str | None] = {}
        self.passwords: dict[str, str] = {}
        self.transaction_ids = itertools.count(100)
        self.mute = False
        self.error_codes: dict[str, str] = {}  # action -> CallError code to answer with
        self.connected = asyncio.Event()

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        cp_id = request.path.rsplit("/", 1)[-1]
        header = request.headers.get("Authorization")
        self.authorization[cp_id] = header
        password = self.passwords.get(cp_id)
        if password is not None and header != basic(cp_id, password):
            return ws.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        central = MiniCentral(cp_id, ws, self)
        self.centrals[cp_id] = central
        self.connected.set()
        with contextlib.suppress(ConnectionClosed):
            await central.start()

    def actions(self, cp_id: str) -> list[str]:
        return [action for action, _ in self.calls.get(cp_id, [])]

    def payloads(self, cp_id: str, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.calls.get(cp_id, []) if name == action]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def csms() -> AsyncIterator[MiniCsms]:
    central_system = MiniCsms()
    async with serve(
        central_system.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("ocpp1.6")],
        process_request=central_system.process_request,
        compression=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        central_system.url = f"ws://127.0.0.1:{port}/ocpp"
        yield central_system


@pytest.fixture
async def sim(csms: MiniCsms) -> AsyncIterator[ChargerSimulator16]:
    config = SimulatorConfig16(url=csms.url, charger_id="CP1", connectors=2, response_timeout=2)
    async with ChargerSimulator16(config) as simulator:
        await asyncio.wait_for(csms.connected.wait(), 1)
        yield simulator


async def test_round_trip_returns_raw_payloads_when_csms_accepts(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    assert sim.connected
    assert sim.subprotocol == "ocpp1.6"

    assert await sim.boot() == {"currentTime": NOW, "interval": 60, "status": "Accepted"}
    assert await sim.heartbeat() == {"currentTime": NOW}
    assert await sim.status(1, "Available", info="ok") == {}
    assert await sim.authorize("TAG") == {"idTagInfo": {"status": "Accepted"}}

    assert csms.actions("CP1") == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
    ]
    boot = csms.payloads("CP1", "BootNotification")[0]
    assert boot == {"chargePointModel": "SIM-16", "chargePointVendor": "ocpi-bridge-sim"}
    status = csms.payloads("CP1", "StatusNotification")[0]
    assert status["connectorId"] == 1
    assert status["errorCode"] == "NoError"
    assert status["info"] == "ok"
    assert TIMESTAMP.match(status["timestamp"])
    assert sim.configuration["HeartbeatInterval"] == "60"


@pytest.mark.expect_errors("Error while handling request")
async def test_call_error_received_raised_when_csms_answers_call_error(
    sim: ChargerSimulator16,
) -> None:
    with pytest.raises(CallErrorReceived) as caught:
        await sim.data_transfer("vendor", "msg", "data")
    assert caught.value.code == "InternalError"
    assert caught.value.description == "data transfer is broken"
    assert sim.connected


async def test_call_error_received_raised_when_csms_uses_non_standard_code(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    csms.error_codes["Heartbeat"] = "NotAuthorized"

    with pytest.raises(CallErrorReceived) as caught:
        await sim.heartbeat()
    assert (caught.value.code, caught.value.details) == ("NotAuthorized", {"why": "test"})


async def test_session_scenario_sends_ordered_session_when_run(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    result = await SCENARIOS["session"](sim, samples=2, meter_start_wh=2000)

    assert result.transaction_ids == [100]
    expected = [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "StatusNotification",
        "StartTransaction",
        "StatusNotification",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
        "StatusNotification",
        "StatusNotification",
    ]
    assert csms.actions("CP1") == expected
    assert [action for action, _ in result.responses] == expected
    statuses = [p["status"] for p in csms.payloads("CP1", "StatusNotification")]
    assert statuses == ["Available", "Preparing", "Charging", "Finishing", "Available"]

    start = csms.payloads("CP1", "StartTransaction")[0]
    assert start["meterStart"] == 2000
    assert start["idTag"] == "SIMTAG01"
    meters = csms.payloads("CP1", "MeterValues")
    assert all(m["transactionId"] == 100 for m in meters)
    times = [start["timestamp"]] + [m["meterValue"][0]["timestamp"] for m in meters]
    stop = csms.payloads("CP1", "StopTransaction")[0]
    times.append(stop["timestamp"])
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    registers = [_energy(m["meterValue"][0]["sampledValue"]) for m in meters]
    assert registers == [("2500", "Wh"), ("3000", "Wh")]
    measurands = {
        (s["measurand"], s.get("phase")) for s in meters[0]["meterValue"][0]["sampledValue"]
    }
    assert measurands >= {
        ("Power.Active.Import", None),
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
        ("SoC", None),
    }
    assert stop["meterStop"] == 3000
    assert stop["reason"] == "Local"
    assert stop["transactionId"] == 100
    contexts = [d["sampledValue"][0]["context"] for d in stop["transactionData"]]
    assert "Transaction.End" in contexts


async def test_kwh_scenario_reports_consistent_kwh_registers_when_run(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await SCENARIOS["session-kwh"](sim, samples=3, meter_start_wh=1000, step_wh=250)

    meters = csms.payloads("CP1", "MeterValues")
    registers = [_energy(m["meterValue"][0]["sampledValue"]) for m in meters]
    assert registers == [("1.250", "kWh"), ("1.500", "kWh"), ("1.750", "kWh")]
    stop = csms.payloads("CP1", "StopTransaction")[0]
    assert stop["meterStop"] == 1750
    end = stop["transactionData"][-1]["sampledValue"][0]
    assert (end["context"], end["value"], end["unit"]) == ("Transaction.End", "1.750", "kWh")


async def test_repeated_stop_records_both_responses_when_run(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    result = await SCENARIOS["repeated-stop"](sim, samples=1)

    stops = csms.payloads("CP1", "StopTransaction")
    assert len(stops) == 2
    assert stops[0] == stops[1]
    assert [a for a, _ in result.responses].count("StopTransaction") == 2


async def test_offline_replay_rewrites_placeholder_id_when_back_online(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await sim.boot()
    sim.go_offline()
    started = await sim.start_transaction(1, "TAG", 10)
    assert started == {"transactionId": -1}
    sampled = [{"value": "20", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    assert await sim.meter_values(1, sampled, transaction_id=-1) == {}
    assert await sim.stop_transaction(-1, 30) == {}
    assert csms.actions("CP1") == ["BootNotification"]
    assert sim.queued_actions == ["StartTransaction", "MeterValues", "StopTransaction"]

    responses = await sim.come_online()

    assert responses[0]["transactionId"] == 100
    assert responses[1:] == [{}, {"idTagInfo": {"status": "Accepted"}}]
    assert sim.transaction_id_map == {-1: 100}
    assert not sim.offline
    assert csms.payloads("CP1", "MeterValues")[0]["transactionId"] == 100
    assert csms.payloads("CP1", "StopTransaction")[0]["transactionId"] == 100


async def test_offline_scenario_reconnects_and_replays_when_run(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    result = await SCENARIOS["offline-session"](sim, samples=2)

    assert result.transaction_ids == [100]
    assert csms.actions("CP1")[-4:] == [
        "StartTransaction",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
    ]
    assert [a for a, _ in result.responses][-4:] == csms.actions("CP1")[-4:]
    assert sim.connected


async def test_csms_call_times_out_when_action_is_silent(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.silent_actions.add("Reset")

    with pytest.raises(TimeoutError):
        await csms.centrals["CP1"].call(call.Reset(type="Hard"))
    assert sim.received_calls == [("Reset", {"type": "Hard"})]


async def test_csms_receives_call_error_when_action_configured_to_fail(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.call_error_actions["Reset"] = "InternalError"

    with pytest.raises(InternalError):
        await csms.centrals["CP1"].call(call.Reset(type="Soft"), suppress=False)


async def test_csms_gets_override_when_answer_configured(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.answers["Reset"] = {"status": "Rejected"}
    central = csms.centrals["CP1"]

    assert (await central.call(call.Reset(type="Hard"))).status == "Rejected"
    assert (await central.call(call.ChangeAvailability(1, "Inoperative"))).status == "Accepted"
    assert await sim.wait_for_call("ChangeAvailability", timeout=1) == {
        "connectorId": 1,
        "type": "Inoperative",
    }


async def test_get_configuration_lists_unknown_keys_when_asked(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    central = csms.centrals["CP1"]
    changed = await central.call(
        call.ChangeConfiguration(key="MeterValueSampleInterval", value="5")
    )
    assert changed.status == "Accepted"

    result = await central.call(
        call.GetConfiguration(key=["NumberOfConnectors", "MeterValueSampleInterval", "Nope"])
    )

    assert result.configuration_key == [
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "5"},
    ]
    assert result.unknown_key == ["Nope"]


@pytest.mark.expect_errors("Error while handling request")
async def test_recv_raw_returns_csms_answer_when_frame_sent_raw(
    sim: ChargerSimulator16,
) -> None:
    await sim.send_raw('[2,"raw-1","Heartbeat",{}]')
    assert json.loads(await sim.recv_raw(timeout=1)) == [3, "raw-1", {"currentTime": NOW}]

    await sim.send_raw('[2,"raw-2","StatusNotification",{"connectorId":"x"}]')
    answer = json.loads(await sim.recv_raw(timeout=1))
    assert answer[:3] == [4, "raw-2", "TypeConstraintViolation"]


async def test_pending_call_fails_fast_when_csms_closes_connection(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    csms.mute = True
    heartbeat = asyncio.create_task(sim.heartbeat())
    await asyncio.sleep(0.05)
    await csms.centrals["CP1"]._connection.close()

    with pytest.raises(ConnectionError):
        await asyncio.wait_for(heartbeat, 1)
    assert not sim.connected


async def test_basic_auth_header_sent_when_password_set(csms: MiniCsms) -> None:
    csms.passwords["CP9"] = "s3cret"
    config = SimulatorConfig16(url=csms.url, charger_id="CP9", password="s3cret")

    async with ChargerSimulator16(config) as simulator:
        assert simulator.connected

    assert csms.authorization["CP9"] == basic("CP9", "s3cret")
    assert simulator.receive_error is None


async def test_no_auth_header_sent_when_password_unset(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    assert csms.authorization["CP1"] is None


async def test_connect_raises_401_when_password_wrong(csms: MiniCsms) -> None:
    csms.passwords["CP9"] = "s3cret"
    simulator = ChargerSimulator16(SimulatorConfig16(url=csms.url, charger_id="CP9", password="x"))

    with pytest.raises(InvalidStatus) as caught:
        await simulator.connect()
    assert caught.value.response.status_code == 401


async def test_cli_prints_json_lines_when_boot_scenario_runs(
    csms: MiniCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--url", csms.url, "--id", "CP5", "--scenario", "boot", "--connectors", "1"]
    code = await cli_run(_parse(args))

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["action"] for line in lines] == ["BootNotification", *["StatusNotification"] * 2]


async def test_cli_reports_http_status_when_password_wrong(
    csms: MiniCsms, capsys: pytest.CaptureFixture[str]
) -> None:
    csms.passwords["CP5"] = "right"
    code = await cli_run(_parse(["--url", csms.url, "--id", "CP5", "--password", "wrong"]))

    assert code == 1
    assert capsys.readouterr().err.strip() == "connection refused: HTTP 401"


def test_naive_timestamp_rejected_when_formatting() -> None:
    assert format_timestamp(datetime(2025, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)) == (
        "2025-01-02T03:04:05.678Z"
    )
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2025, 1, 2))


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _energy(sampled: list[dict[str, Any]]) -> tuple[str, str]:
    (energy,) = [s for s in sampled if s["measurand"] == "Energy.Active.Import.Register"]
    return energy["value"], energy["unit"]
