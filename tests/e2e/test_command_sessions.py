"""The Sessions that eMSP commands make, end to end over real sockets, both OCPP versions
(reference 4.3, 4.7): an accepted START_SESSION is a PENDING Session until the transaction its
token starts takes it over (same id, ACTIVE), or INVALID when none follows; an accepted
RESERVE_NOW is a RESERVATION Session that the reserving driver's transaction takes over, or
that ends COMPLETED when the reservation expires (billed by the tariff's reservation elements)
or is cancelled, or INVALID (with CANCELED_RESERVATION to the eMSP) when the charger removes it.

Tariff T1 of ``test_sessions`` plus two reservation elements: FLAT 1.00 (VAT 20 %) when a
reservation expires unused, and reserved time at 0.60/h (VAT 10 %), which over the few seconds
of a test rounds to nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bridge.main import BridgeApp
from bridge.ocpi.cdrs import Cdr
from bridge.ocpi.sessions import Session
from bridge.store.tables import ReservationRow, SessionRow
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import SentCommand
from tests.e2e.test_commands import (
    APP_UID,
    CHARGERS,
    FAST_CALLS,
    app_token,
    command_world,
    in_minutes,
    result_of,
    send,
    start_body,
)
from tests.e2e.test_sessions import session_requests, site_text

RESERVATION_ELEMENTS = """
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "FLAT"
    price = 1.00
    vat = 20.0
    step_size = 1
    [tariffs.elements.restrictions]
    reservation = "RESERVATION_EXPIRES"
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "TIME"
    price = 0.60
    vat = 10.0
    step_size = 1
    [tariffs.elements.restrictions]
    reservation = "RESERVATION"
"""


EXPIRY_FEE = {"excl_vat": 1, "incl_vat": Decimal("1.2")}


def reservation_site() -> str:
    return site_text() + RESERVATION_ELEMENTS


def puts(emsp: EmspSimulator) -> list[dict[str, Any]]:
    return [r.body for r in session_requests(emsp) if r.method == "PUT"]


async def put_with(emsp: EmspSimulator, status: str, count: int = 1) -> dict[str, Any]:
    """The ``count``-th Session PUT with ``status`` (waited for)."""

    def found() -> dict[str, Any] | None:
        matching = [p for p in puts(emsp) if p["status"] == status]
        return matching[count - 1] if len(matching) >= count else None

    put = await emsp.state.wait_for(found, timeout=8)
    Session.model_validate(put)
    return put


def cdrs(emsp: EmspSimulator) -> list[dict[str, Any]]:
    return [r.body for r in emsp.state.received if r.module == "cdrs"]


def command_results(emsp: EmspSimulator, command_id: str) -> list[str]:
    return [str(r.result) for r in emsp.state.command_results.get(command_id, [])]


def meter(wh: int, context: str) -> list[dict[str, Any]]:
    """A 2.0.1 meterValue with the energy register at ``wh``, now."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    value = {
        "value": wh,
        "measurand": "Energy.Active.Import.Register",
        "context": context,
        "unitOfMeasure": {"unit": "Wh"},
    }
    return [{"timestamp": now, "sampledValue": [value]}]


def only_transaction(sim: Any) -> int:
    (transaction,) = sim.transactions
    return int(transaction)


async def start_by_hand(sim: Any, version: str, call: dict[str, Any]) -> None:
    """The driver plugs in after the charger accepted the remote start."""
    if version == "1.6":
        await sim.start_transaction(1, call["idTag"], 10_000)
    else:
        await sim.transaction_event(
            "Started",
            "TX-REMOTE",
            "RemoteStart",
            evse=(1, 1),
            id_token=(call["idToken"]["idToken"], call["idToken"]["type"]),
            remote_start_id=call["remoteStartId"],
            charging_state="Charging",
            meter_value=meter(10_000, "Transaction.Begin"),
        )


async def stop_by_hand(sim: Any, version: str) -> None:
    if version == "1.6":
        await sim.stop_transaction(only_transaction(sim), 12_000, reason="Remote")
    else:
        await sim.transaction_event(
            "Ended",
            "TX-REMOTE",
            "RemoteStop",
            stopped_reason="Remote",
            meter_value=meter(12_000, "Transaction.End"),
        )


async def sweep(app: BridgeApp) -> None:
    await app.expire_waiting_sessions()


# --- START_SESSION: PENDING ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_accepted_start_session_is_pending_until_its_transaction_takes_it_over(
    tmp_path: Path, version: str
) -> None:
    async with command_world(tmp_path, version) as (_app, emsp, sim, _stack):
        sim.auto_start = False
        sent = await send(emsp, "START_SESSION", start_body(version))
        assert await result_of(emsp, sent) == "ACCEPTED"
        pending = await put_with(emsp, "PENDING")
        _, location, evse = CHARGERS[version]
        assert (pending["location_id"], pending["evse_uid"]) == (location, evse)
        assert (pending["auth_method"], pending["authorization_reference"]) == (
            "COMMAND",
            "AUTH-REF-0001",
        )
        assert pending["cdr_token"]["uid"] == APP_UID
        # Nothing used, nothing charged while the driver has not plugged in.
        assert pending["kwh"] == 0
        assert pending["charging_periods"] == []
        assert "total_cost" not in pending

        call = dict(sim.received_calls)[
            "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction"
        ]
        await start_by_hand(sim, version, call)
        active = await put_with(emsp, "ACTIVE")
        assert active["id"] == pending["id"]
        assert active["start_date_time"] >= pending["start_date_time"]
        assert active["auth_method"] == "COMMAND"

        await stop_by_hand(sim, version)
        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == pending["id"]
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        (cdr,) = cdrs(emsp)
        Cdr.model_validate(cdr)
        assert (cdr["id"], cdr["session_id"]) == (pending["id"], pending["id"])
        assert cdr["total_energy"] == 2
        assert [p["status"] for p in puts(emsp)] == ["PENDING", "ACTIVE", "COMPLETED"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_pending_session_no_transaction_follows_becomes_invalid(
    tmp_path: Path, version: str
) -> None:
    async with command_world(tmp_path, version, command_grant_window=0.5) as (
        app,
        emsp,
        sim,
        _stack,
    ):
        sim.auto_start = False
        sent = await send(emsp, "START_SESSION", start_body(version))
        assert await result_of(emsp, sent) == "ACCEPTED"
        pending = await put_with(emsp, "PENDING")
        await sweep(app)  # too early: still waiting
        await asyncio.sleep(0.6)
        await sweep(app)
        invalid = await put_with(emsp, "INVALID")
        assert invalid["id"] == pending["id"]
        assert invalid["end_date_time"] is not None
        assert invalid["kwh"] == 0
        await sweep(app)  # once
        assert [p["status"] for p in puts(emsp)] == ["PENDING", "INVALID"]
        assert cdrs(emsp) == []


async def test_a_start_on_a_transaction_already_running_makes_no_pending_session(
    tmp_path: Path,
) -> None:
    """2.0.1 cable first: the station answers with the running transactionId, whose session
    becomes ACTIVE when the command's token authorizes it; no PENDING session is made."""
    async with command_world(tmp_path, "2.0.1") as (_app, emsp, sim, _stack):
        await sim.transaction_event(
            "Started", "TX-CABLE", "CablePluggedIn", evse=(1, 1), charging_state="EVConnected"
        )
        sent = await send(emsp, "START_SESSION", start_body("2.0.1"))
        assert await result_of(emsp, sent) == "ACCEPTED"
        active = await put_with(emsp, "ACTIVE")
        assert active["auth_method"] == "COMMAND"
        assert [p["status"] for p in puts(emsp)] == ["ACTIVE"]


async def test_stop_session_of_a_pending_session_is_rejected(tmp_path: Path) -> None:
    async with command_world(tmp_path, "1.6") as (_app, emsp, sim, _stack):
        sim.auto_start = False
        sent = await send(emsp, "START_SESSION", start_body("1.6"))
        assert await result_of(emsp, sent) == "ACCEPTED"
        pending = await put_with(emsp, "PENDING")
        stop = await send(emsp, "STOP_SESSION", {"session_id": pending["id"]})
        assert stop.response.data["result"] == "REJECTED"
        assert "RemoteStopTransaction" not in [name for name, _ in sim.received_calls]


# --- RESERVE_NOW: RESERVATION ----------------------------------------------------------------


def reserve_body(
    version: str, *, expiry: str | None = None, at_evse: bool = True
) -> dict[str, Any]:
    _, location, evse = CHARGERS[version]
    body = {
        "token": app_token(),
        "expiry_date": expiry or in_minutes(30),
        "reservation_id": "RES-1",
        "location_id": location,
        "authorization_reference": "RES-REF-1",
    }
    return {**body, "evse_uid": evse} if at_evse else body


@asynccontextmanager
async def reservation_world(
    tmp_path: Path, version: str, **settings: Any
) -> AsyncIterator[tuple[BridgeApp, EmspSimulator, Any]]:
    """``command_world`` on the site whose tariff prices reservations."""
    async with command_world(tmp_path, version, site_file=reservation_site(), **settings) as (
        app,
        emsp,
        sim,
        _stack,
    ):
        yield app, emsp, sim


async def reserve(emsp: EmspSimulator, body: dict[str, Any]) -> tuple[SentCommand, dict[str, Any]]:
    """RESERVE_NOW accepted by the charger, and the RESERVATION Session it made."""
    sent = await send(emsp, "RESERVE_NOW", body)
    assert await result_of(emsp, sent) == "ACCEPTED"
    return sent, await put_with(emsp, "RESERVATION")


def ocpp_reservation_id(version: str, call: dict[str, Any]) -> int:
    return int(call["reservationId"] if version == "1.6" else call["id"])


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_reserving_drivers_transaction_takes_the_reservation_session_over(
    tmp_path: Path, version: str
) -> None:
    async with reservation_world(tmp_path, version) as (_app, emsp, sim):
        _sent, reserved = await reserve(emsp, reserve_body(version))
        _, location, evse = CHARGERS[version]
        assert (reserved["location_id"], reserved["evse_uid"]) == (location, evse)
        assert reserved["authorization_reference"] == "RES-REF-1"
        assert reserved["cdr_token"]["uid"] == APP_UID

        # The driver arrives: the charger starts with the reservation (1.6 reservationId,
        # 2.0.1 reservationId of the station's transaction event).
        call = await sim.wait_for_call("ReserveNow")
        id_tag = call["idTag"] if version == "1.6" else call["idToken"]["idToken"]
        if version == "1.6":
            await sim.start_transaction(1, id_tag, 10_000)
        else:
            await sim.transaction_event(
                "Started",
                "TX-RES",
                "Authorized",
                evse=(1, 1),
                id_token=(id_tag, call["idToken"]["type"]),
                charging_state="Charging",
                meter_value=meter(10_000, "Transaction.Begin"),
            )
        active = await put_with(emsp, "ACTIVE")
        assert active["id"] == reserved["id"]
        # The reserved minutes stay in the session: its first period is reservation time.
        assert active["start_date_time"] == reserved["start_date_time"]
        first = active["charging_periods"][0]
        assert [d["type"] for d in first["dimensions"]] == ["RESERVATION_TIME"]

        if version == "1.6":
            await sim.stop_transaction(only_transaction(sim), 13_000, reason="Local")
        else:
            await sim.transaction_event(
                "Ended",
                "TX-RES",
                "StopAuthorized",
                stopped_reason="Local",
                meter_value=meter(13_000, "Transaction.End"),
            )
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        (cdr,) = cdrs(emsp)
        assert cdr["id"] == reserved["id"]
        assert cdr["total_energy"] == 3
        # Used, not expired: the RESERVATION_EXPIRES fee does not apply.
        assert cdr["total_reservation_cost"]["excl_vat"] == 0

        # Used: the reservation is no longer held.
        again = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert await result_of(emsp, again) == "UNKNOWN_RESERVATION"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_expired_reservation_is_completed_and_billed(tmp_path: Path, version: str) -> None:
    # 1.6 reports no expiry: the EVSE going back to Available at the expiry tells it.
    expiry = datetime.now(UTC) + timedelta(seconds=40)
    expiry_text = expiry.isoformat(timespec="seconds").replace("+00:00", "Z")
    async with reservation_world(tmp_path, version) as (_app, emsp, sim):
        _sent, reserved = await reserve(emsp, reserve_body(version, expiry=expiry_text))
        call = await sim.wait_for_call("ReserveNow")
        assert await sim.expire_reservation(ocpp_reservation_id(version, call))

        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == reserved["id"]
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        (cdr,) = cdrs(emsp)
        Cdr.model_validate(cdr)
        assert (cdr["id"], cdr["total_energy"]) == (reserved["id"], 0)
        assert cdr["total_reservation_cost"] == EXPIRY_FEE
        assert cdr["total_cost"] == EXPIRY_FEE
        assert cdr["remark"] == "ReservationExpired"
        _, location, evse = CHARGERS[version]
        assert (cdr["cdr_location"]["id"], cdr["cdr_location"]["evse_uid"]) == (location, evse)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_cancelled_reservation_is_completed_without_a_cdr(
    tmp_path: Path, version: str
) -> None:
    async with reservation_world(tmp_path, version) as (_app, emsp, _sim):
        _sent, reserved = await reserve(emsp, reserve_body(version))
        cancel = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert await result_of(emsp, cancel) == "ACCEPTED"
        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == reserved["id"]
        assert completed["end_date_time"] is not None
        # Reserved for seconds at 0.60/h, no expiry fee: nothing to bill, no CDR.
        await asyncio.sleep(0.3)
        assert cdrs(emsp) == []
        assert [p["status"] for p in puts(emsp)] == ["RESERVATION", "COMPLETED"]


async def test_a_reservation_the_station_removes_is_invalid_and_the_emsp_told(
    tmp_path: Path,
) -> None:
    async with reservation_world(tmp_path, "2.0.1") as (_app, emsp, sim):
        sent, reserved = await reserve(emsp, reserve_body("2.0.1"))
        call = await sim.wait_for_call("ReserveNow")
        assert await sim.remove_reservation(call["id"])

        invalid = await put_with(emsp, "INVALID")
        assert invalid["id"] == reserved["id"]
        await emsp.state.wait_for(
            lambda: "CANCELED_RESERVATION" in command_results(emsp, sent.command_id), timeout=8
        )
        assert command_results(emsp, sent.command_id) == ["ACCEPTED", "CANCELED_RESERVATION"]
        assert cdrs(emsp) == []
        # No longer held: a cancel finds nothing.
        cancel = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert await result_of(emsp, cancel) == "UNKNOWN_RESERVATION"


async def test_a_reservation_of_the_location_has_no_evse(tmp_path: Path) -> None:
    """2.0.1 reserves a station without an EVSE (1.6 connector 0 needs an optional feature)."""
    async with reservation_world(tmp_path, "2.0.1") as (_app, emsp, sim):
        _sent, reserved = await reserve(emsp, reserve_body("2.0.1", at_evse=False))
        assert (reserved["location_id"], reserved["evse_uid"], reserved["connector_id"]) == (
            CHARGERS["2.0.1"][1],
            "#NA",
            "#NA",
        )
        call = await sim.wait_for_call("ReserveNow")
        assert "evseId" not in call
        assert await sim.expire_reservation(call["id"])
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        (cdr,) = cdrs(emsp)
        Cdr.model_validate(cdr)
        place = cdr["cdr_location"]
        assert (place["id"], place["evse_uid"], place["evse_id"], place["connector_id"]) == (
            CHARGERS["2.0.1"][1],
            "#NA",
            "#NA",
            "#NA",
        )
        assert cdr["total_reservation_cost"] == EXPIRY_FEE


async def test_a_refused_replacement_keeps_the_reservation(tmp_path: Path) -> None:
    async with reservation_world(tmp_path, "1.6") as (_app, emsp, sim):
        _sent, reserved = await reserve(emsp, reserve_body("1.6"))
        sim.answers["ReserveNow"] = {"status": "Rejected"}
        replace = await send(emsp, "RESERVE_NOW", reserve_body("1.6", expiry=in_minutes(50)))
        assert await result_of(emsp, replace) == "REJECTED"
        # The charger still holds the first one: it can be cancelled, and its session ends.
        cancel = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        assert await result_of(emsp, cancel) == "ACCEPTED"
        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == reserved["id"]


async def test_a_reservation_nobody_reports_on_ends_at_its_expiry(tmp_path: Path) -> None:
    """The charger says nothing (it is offline, or lost the reservation): the sweep ends the
    reservation's session past its expiry, billed like an expiry."""
    async with reservation_world(tmp_path, "2.0.1") as (app, emsp, _sim):
        _sent, reserved = await reserve(emsp, reserve_body("2.0.1"))
        await sweep(app)  # not expired yet
        async with app.db.transaction() as uow:
            (reservation,) = (await uow.session.exec(select(ReservationRow))).all()
            reservation.expires_at = datetime.now(UTC) - timedelta(minutes=5)
            uow.session.add(reservation)
        await sweep(app)
        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == reserved["id"]
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        assert cdrs(emsp)[0]["total_reservation_cost"] == EXPIRY_FEE
        async with app.db.read() as session:
            (row,) = (await session.exec(select(SessionRow))).all()
        assert (row.status, row.stop_reason) == ("COMPLETED", "ReservationExpired")


async def test_cable_first_then_the_reserving_token_takes_the_reservation_over(
    tmp_path: Path,
) -> None:
    """2.0.1: the driver plugs in (a transaction without a token, never shown), then presents
    the reserving token: the transaction moves into the reservation's session."""
    async with reservation_world(tmp_path, "2.0.1") as (_app, emsp, sim):
        _sent, reserved = await reserve(emsp, reserve_body("2.0.1"))
        call = await sim.wait_for_call("ReserveNow")
        await sim.transaction_event(
            "Started",
            "TX-CABLE",
            "CablePluggedIn",
            evse=(1, 1),
            charging_state="EVConnected",
            meter_value=meter(20_000, "Transaction.Begin"),
        )
        await sim.transaction_event(
            "Updated",
            "TX-CABLE",
            "Authorized",
            id_token=(call["idToken"]["idToken"], call["idToken"]["type"]),
            charging_state="Charging",
        )
        active = await put_with(emsp, "ACTIVE")
        assert active["id"] == reserved["id"]
        assert active["start_date_time"] == reserved["start_date_time"]
        await sim.transaction_event(
            "Ended",
            "TX-CABLE",
            "EVCommunicationLost",
            stopped_reason="EVDisconnected",
            meter_value=meter(21_500, "Transaction.End"),
        )
        await emsp.state.wait_for(lambda: len(cdrs(emsp)) == 1, timeout=8)
        (cdr,) = cdrs(emsp)
        assert (cdr["id"], cdr["total_energy"]) == (reserved["id"], Decimal("1.5"))
        assert [p["status"] for p in puts(emsp)] == ["RESERVATION", "ACTIVE", "COMPLETED"]


async def test_a_removal_reported_while_the_emsp_cancels_is_the_emsps_cancel(
    tmp_path: Path,
) -> None:
    """The station reports ``Removed`` before its answer to our CancelReservation (here: it
    never answers): no CANCELED_RESERVATION, the session ends COMPLETED as cancelled."""
    async with reservation_world(tmp_path, "2.0.1", **FAST_CALLS) as (_app, emsp, sim):
        sent, reserved = await reserve(emsp, reserve_body("2.0.1"))
        call = await sim.wait_for_call("ReserveNow")
        sim.silent_actions.add("CancelReservation")
        cancel = await send(emsp, "CANCEL_RESERVATION", {"reservation_id": "RES-1"})
        await sim.wait_for_call("CancelReservation")
        assert await sim.remove_reservation(call["id"])
        completed = await put_with(emsp, "COMPLETED")
        assert completed["id"] == reserved["id"]
        assert await result_of(emsp, cancel) == "TIMEOUT"
        assert command_results(emsp, sent.command_id) == ["ACCEPTED"]
        assert [p["status"] for p in puts(emsp)] == ["RESERVATION", "COMPLETED"]
