"""OCPI Commands end to end over real sockets, both OCPP versions: the eMSP simulator sends
START_SESSION, STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION and UNLOCK_CONNECTOR to the
bridge, which calls the simulated chargers; the synchronous CommandResponse and the
asynchronous CommandResult are checked for success, a charger that rejects, answers a CallError
NotSupported, never answers, is offline, an occupied EVSE, and unknown locations and sessions.
A remotely started transaction becomes a Session with the command's token and
``authorization_reference`` (AuthMethod COMMAND), without asking the eMSP again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.main import BridgeApp
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import SentCommand
from tests.conftest import running_bridge
from tests.e2e.test_location_status import CPO, FAST, charger16, station201
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url
from tests.e2e.test_sessions import money_world, session_requests, site_text

APP_UID = "0f6a3c1e-9d4b-4c7a-8e2f-5b1d7a9c3e64"  # 36 characters: too long for a 1.6 idTag
FAST_CALLS = {"ocpp_call_timeout": 1.0, "command_result_margin": 1.0}
CHARGERS = {"1.6": ("CP16", "LOC-16", "CP16-1"), "2.0.1": ("CS201", "LOC-201", "CS201-1")}
START_ACTION = {"1.6": "RemoteStartTransaction", "2.0.1": "RequestStartTransaction"}
STOP_ACTION = {"1.6": "RemoteStopTransaction", "2.0.1": "RequestStopTransaction"}


def app_token(uid: str = APP_UID, party: str = "EMS") -> dict[str, Any]:
    return {
        "country_code": "DE",
        "party_id": party,
        "uid": uid,
        "type": "APP_USER",
        "contract_id": f"DE-{party}-C00001",
        "issuer": "eMSP simulator",
        "valid": True,
        "whitelist": "ALLOWED",
        "last_updated": "2026-11-21T08:00:00Z",
    }


def in_minutes(minutes: int) -> str:
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@asynccontextmanager
async def command_world(
    tmp_path: Path, version: str, **settings: Any
) -> AsyncIterator[tuple[BridgeApp, EmspSimulator, Any, AsyncExitStack]]:
    """A bridge with the sessions site, a registered eMSP and one connected charger of
    ``version`` that starts and stops transactions when asked to."""
    async with money_world(tmp_path, **settings) as (app, emsp, stack):
        charger_id = CHARGERS[version][0]
        sim = charger16(app, charger_id) if version == "1.6" else station201(app, charger_id)
        sim.auto_start = True
        sim.auto_stop = True
        await sim.connect()
        stack.push_async_callback(sim.disconnect)
        await sim.boot()
        yield app, emsp, sim, stack


async def send(emsp: EmspSimulator, command: str, body: dict[str, Any]) -> SentCommand:
    sent = await emsp.driver.send_command(command, body)
    assert sent.response is not None
    return sent


def response_of(sent: SentCommand) -> tuple[int, int, str]:
    """(HTTP status, OCPI status code, CommandResponse result) of the synchronous answer."""
    reply = sent.response
    return reply.http_status, reply.status_code, reply.data["result"]


async def result_of(emsp: EmspSimulator, sent: SentCommand, timeout: float = 8.0) -> str:
    result = await emsp.state.wait_for_command_result(sent.command_id, timeout=timeout)
    return str(result.result)


def start_body(version: str, **overrides: Any) -> dict[str, Any]:
    _, location, evse = CHARGERS[version]
    body = {
        "token": app_token(),
        "location_id": location,
        "evse_uid": evse,
        "authorization_reference": "AUTH-REF-0001",
    }
    return {**body, **overrides}


# --- START_SESSION / STOP_SESSION ------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_start_and_stop_session_from_the_emsp_app(tmp_path: Path, version: str) -> None:
    async with command_world(tmp_path, version) as (app, emsp, sim, _stack):
        sent = await send(emsp, "START_SESSION", start_body(version))
        status, code, result = response_of(sent)
        assert (status, code, result) == (200, 1000, "ACCEPTED")
        settings = app.settings
        assert sent.response.data["timeout"] == int(
            settings.ocpp_call_timeout + settings.command_result_margin
        )
        call = await sim.wait_for_call(START_ACTION[version])
        if version == "1.6":
            # The 36-character app uid travels as a stable 20-character alias.
            assert len(call["idTag"]) == 20
            assert call["connectorId"] == 1
        else:
            assert call["evseId"] == 1
            assert isinstance(call["remoteStartId"], int)
        assert await result_of(emsp, sent) == "ACCEPTED"

        # The transaction the charger starts is this command's: accepted without asking the
        # eMSP (the token is unknown to the Tokens module) and pushed with its reference. (The
        # simulated charger starts at once: whether the PENDING session made on the charger's
        # acceptance comes first depends on timing; it has the same id.)
        def active_put() -> dict[str, Any] | None:
            puts = [r.body for r in session_requests(emsp) if r.method == "PUT"]
            active = [p for p in puts if p["status"] == "ACTIVE"]
            return active[0] if active else None

        session = await emsp.state.wait_for(active_put, timeout=8)
        puts = [r.body for r in session_requests(emsp) if r.method == "PUT"]
        assert {p["id"] for p in puts} == {session["id"]}
        assert [p["status"] for p in puts] in (["ACTIVE"], ["PENDING", "ACTIVE"])
        assert session["auth_method"] == "COMMAND"
        assert session["authorization_reference"] == "AUTH-REF-0001"
        assert session["cdr_token"]["uid"] == APP_UID
        assert session["cdr_token"]["type"] == "APP_USER"
        assert session["location_id"] == CHARGERS[version][1]

        stop = await send(emsp, "STOP_SESSION", {"session_id": session["id"]})
        assert response_of(stop) == (200, 1000, "ACCEPTED")
        await sim.wait_for_call(STOP_ACTION[version])
        assert await result_of(emsp, stop) == "ACCEPTED"
        await emsp.state.wait_for(
            lambda: any(r.module == "cdrs" for r in emsp.state.received), timeout=8
        )
        (cdr,) = [r.body for r in emsp.state.received if r.module == "cdrs"]
        assert (cdr["auth_method"], cdr["authorization_reference"]) == ("COMMAND", "AUTH-REF-0001")

        # Stopping it again: the session is over.
        again = await send(emsp, "STOP_SESSION", {"session_id": session["id"]})
        assert response_of(again) == (200, 1000, "REJECTED")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("reject", "REJECTED"),
        ("not_supported", "NOT_SUPPORTED"),
        ("internal_error", "FAILED"),
        ("silent", "TIMEOUT"),
    ],
)
async def test_start_session_results_follow_the_chargers_answer(
    tmp_path: Path, version: str, fault: str, expected: str
) -> None:
    action = START_ACTION[version]
    async with command_world(tmp_path, version, **FAST_CALLS) as (_app, emsp, sim, _stack):
        match fault:
            case "reject":
                sim.answers[action] = {"status": "Rejected"}
            case "not_supported":
                sim.call_error_actions[action] = "NotSupported"
            case "internal_error":
                sim.call_error_actions[action] = "InternalError"
            case "silent":
                sim.silent_actions.add(action)
        sent = await send(emsp, "START_SESSION", start_body(version))
        assert response_of(sent) == (200, 1000, "ACCEPTED")
        assert sent.response.data["timeout"] == 2
        assert await result_of(emsp, sent) == expected


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_session_that_starts_after_a_timeout_is_still_pushed(
    tmp_path: Path, version: str
) -> None:
    action = START_ACTION[version]
    async with command_world(tmp_path, version, **FAST_CALLS) as (_app, emsp, sim, _stack):
        sim.silent_actions.add(action)
        sent = await send(emsp, "START_SESSION", start_body(version))
        assert await result_of(emsp, sent) == "TIMEOUT"
        call = await sim.wait_for_call(action)
        # The charger did act on it, late: the driver plugs in and charging starts.
        if version == "1.6":
            await sim.start_transaction(1, call["idTag"], 1_000)
        else:
            await sim.transaction_event(
                "Started",
                "TX-LATE",
                "RemoteStart",
                evse=(1, 1),
                id_token=(call["idToken"]["idToken"], call["idToken"]["type"]),
                remote_start_id=call["remoteStartId"],
                charging_state="Charging",
            )
        session = await emsp.state.wait_for(
            lambda: next((r.body for r in session_requests(emsp) if r.method == "PUT"), None)
        )
        assert (session["auth_method"], session["cdr_token"]["uid"]) == ("COMMAND", APP_UID)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_start_session_refusals(tmp_path: Path, version: str) -> None:
    async with command_world(tmp_path, version) as (app, emsp, sim, _stack):
        unknown_location = await send(emsp, "START_SESSION", start_body(version, location_id="X"))
        assert response_of(unknown_location) == (404, 2003, "REJECTED")
        unknown_evse = await send(emsp, "START_SESSION", start_body(version, evse_uid="NOPE"))
        assert response_of(unknown_evse) == (404, 2003, "REJECTED")
        someone_elses = await send(
            emsp, "START_SESSION", start_body(version, token=app_token(party="OTH"))
        )
        assert response_of(someone_elses) == (200, 1000, "REJECTED")
        invalid = await send(emsp, "START_SESSION", {"location_id": "LOC-16"})
        assert invalid.response.status_code == 2001

        # The EVSE is charging already: EVSE_OCCUPIED, and the charger is not asked.
        await occupy(sim, version)
        _, location, evse = CHARGERS[version]
        await until_status(emsp, location, evse, "CHARGING")
        occupied = await send(emsp, "START_SESSION", start_body(version))
        assert response_of(occupied) == (200, 1000, "ACCEPTED")
        assert await result_of(emsp, occupied) == "EVSE_OCCUPIED"
        assert START_ACTION[version] not in [name for name, _ in sim.received_calls]

        # Offline: REJECTED at once.
        await sim.disconnect()
        await until_offline(app, CHARGERS[version][0])
        offline = await send(emsp, "START_SESSION", start_body(version))
        assert response_of(offline) == (200, 1000, "REJECTED")


async def occupy(sim: Any, version: str) -> None:
    if version == "1.6":
        await sim.status(1, "Charging")
    else:
        await sim.status(1, 1, "Occupied")


async def until_status(emsp: EmspSimulator, location: str, evse: str, status: str) -> None:
    def seen() -> bool:
        stored = emsp.state.locations.get(("NL", "CPO", location.upper()))
        if stored is None:
            return False
        return any(e.uid.upper() == evse.upper() and e.status == status for e in stored.evses)

    await emsp.state.wait_for(seen, timeout=8)


async def until_offline(app: BridgeApp, charger_id: str) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while app.registry.is_connected(charger_id):
        assert datetime.now(UTC) < deadline, f"{charger_id} still connected"
        await asyncio.sleep(0.02)


async def test_stop_session_of_an_unknown_or_another_emsps_session(tmp_path: Path) -> None:
    async with command_world(tmp_path, "1.6") as (app, emsp, sim, stack):
        unknown = await send(emsp, "STOP_SESSION", {"session_id": "NO-SUCH-SESSION"})
        assert response_of(unknown) == (200, 1000, "UNKNOWN_SESSION")
        started = await send(emsp, "START_SESSION", start_body("1.6"))
        assert await result_of(emsp, started) == "ACCEPTED"
        session = await emsp.state.wait_for(
            lambda: next((r.body for r in session_requests(emsp) if r.method == "PUT"), None)
        )
        other = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="OTH")
        )
        _, token_a = await token_a_for(app, "OTH")
        assert (await other.driver.register(versions_url(app), token_a)).ok
        theirs = await send(other, "STOP_SESSION", {"session_id": session["id"]})
        assert response_of(theirs) == (200, 1000, "REJECTED")
        assert STOP_ACTION["1.6"] not in [name for name, _ in sim.received_calls]


# --- RESERVE_NOW / CANCEL_RESERVATION ------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_reserve_replace_and_cancel(tmp_path: Path, version: str) -> None:
    _, location, evse = CHARGERS[version]
    reserve = {
        "token": app_token(),
        "expiry_date": in_minutes(30),
        "reservation_id": "RES-1",
        "location_id": location,
        "evse_uid": evse,
    }
    async with command_world(tmp_path, version) as (_app, emsp, sim, _stack):
        first = await send(emsp, "RESERVE_NOW", reserve)
        assert response_of(first) == (200, 1000, "ACCEPTED")
        assert await result_of(emsp, first) == "ACCEPTED"
        call = await sim.wait_for_call("ReserveNow")
        ocpp_id = call["reservationId"] if version == "1.6" else call["id"]
        assert isinstance(ocpp_id, int)
        # The same reservation id at the same location replaces it: same OCPP id.
        again = await send(emsp, "RESERVE_NOW", {**reserve, "expiry_date": in_minutes(40)})
        assert await result_of(emsp, again) == "ACCEPTED"
        replaced = await sim.wait_for_call("ReserveNow")
        assert (replaced["reservationId"] if version == "1.6" else replaced["id"]) == ocpp_id

        cancel = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert response_of(cancel) == (200, 1000, "ACCEPTED")
        assert await result_of(emsp, cancel) == "ACCEPTED"
        assert (await sim.wait_for_call("CancelReservation"))["reservationId"] == ocpp_id
        # Cancelled: unknown from now on, the charger is not asked.
        twice = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert await result_of(emsp, twice) == "UNKNOWN_RESERVATION"
        never = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "NEVER"})
        assert await result_of(emsp, never) == "UNKNOWN_RESERVATION"
        assert [name for name, _ in sim.received_calls].count("CancelReservation") == 1

        # The charger refuses a reservation: its answer, mapped.
        sim.answers["ReserveNow"] = {"status": "Occupied"}
        busy = await send(emsp, "RESERVE_NOW", {**reserve, "reservation_id": "RES-2"})
        assert await result_of(emsp, busy) == "EVSE_OCCUPIED"
        sim.answers["ReserveNow"] = {"status": "Faulted"}
        faulted = await send(emsp, "RESERVE_NOW", {**reserve, "reservation_id": "RES-3"})
        assert await result_of(emsp, faulted) == "EVSE_INOPERATIVE"
        past = await send(emsp, "RESERVE_NOW", {**reserve, "expiry_date": in_minutes(-5)})
        assert past.response.status_code == 2001


# --- UNLOCK_CONNECTOR ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_unlock_connector(tmp_path: Path, version: str) -> None:
    _, location, evse = CHARGERS[version]
    unlock = {"location_id": location, "evse_uid": evse, "connector_id": "1"}
    async with command_world(tmp_path, version) as (_app, emsp, sim, _stack):
        done = await send(emsp, "UNLOCK_CONNECTOR", unlock)
        assert response_of(done) == (200, 1000, "ACCEPTED")
        assert await result_of(emsp, done) == "ACCEPTED"
        call = await sim.wait_for_call("UnlockConnector")
        assert call == ({"connectorId": 1} if version == "1.6" else {"evseId": 1, "connectorId": 1})
        sim.answers["UnlockConnector"] = {"status": "UnlockFailed"}
        failed = await send(emsp, "UNLOCK_CONNECTOR", unlock)
        assert await result_of(emsp, failed) == "FAILED"
        if version == "1.6":
            sim.answers["UnlockConnector"] = {"status": "NotSupported"}
            unsupported = await send(emsp, "UNLOCK_CONNECTOR", unlock)
            assert await result_of(emsp, unsupported) == "NOT_SUPPORTED"
        else:
            sim.answers["UnlockConnector"] = {"status": "OngoingAuthorizedTransaction"}
            ongoing = await send(emsp, "UNLOCK_CONNECTOR", unlock)
            assert await result_of(emsp, ongoing) == "REJECTED"
        missing = await send(emsp, "UNLOCK_CONNECTOR", {**unlock, "connector_id": "9"})
        assert response_of(missing) == (404, 2003, "REJECTED")


# --- nothing is lost -----------------------------------------------------------------------


async def test_a_command_left_unanswered_by_a_stopped_bridge_times_out_after_restart(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    settings: dict[str, Any] = {
        **CPO,
        **FAST,
        "ocpp_call_timeout": 2.0,
        "command_result_margin": 0.5,
    }
    unlock = {"location_id": "LOC-16", "evse_uid": "CP16-1", "connector_id": "1"}
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp:
        async with running_bridge(tmp_path, site_file=str(site), **settings) as app:
            await emsp_registers(app, emsp)
            sim = charger16(app, "CP16")
            await sim.connect()
            await sim.boot()
            sim.silent_actions.add("UnlockConnector")
            sent = await send(emsp, "UNLOCK_CONNECTOR", unlock)
            assert response_of(sent) == (200, 1000, "ACCEPTED")
            await sim.wait_for_call("UnlockConnector")
        # The process ended while the charger had not answered; the next one answers TIMEOUT.
        await sim.disconnect()
        async with running_bridge(tmp_path, site_file=str(site), **settings):
            assert await result_of(emsp, sent, timeout=10) == "TIMEOUT"
