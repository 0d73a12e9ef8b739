"""OCPP 2.0.1 simulator: stateful answers to remote control, reservations and smart charging,
against the minimal central system of ``test_simulator201`` on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from ocpp.v201 import call
from websockets.asyncio.server import serve
from websockets.typing import Subprotocol

from simulators.charger.common import format_timestamp, utc_now
from simulators.charger.v201 import ChargerSimulator201, EvseSpec, SimulatorConfig201
from tests.simulators.test_simulator201 import MiniCentral201, MiniCsms201

TOKEN = {"idToken": "TAG", "type": "ISO14443"}
OTHER = {"idToken": "OTHER", "type": "ISO14443"}
EVSES = (EvseSpec(1, ("cType2", "cCCS2")), EvseSpec(2, max_power_w=11000))


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


@pytest.fixture
async def sim(csms: MiniCsms201) -> AsyncIterator[ChargerSimulator201]:
    config = SimulatorConfig201(
        url=csms.url,
        charger_id="CP1",
        evses=EVSES,
        response_timeout=2,
        auto_start=True,
        auto_stop=True,
    )
    async with ChargerSimulator201(config) as simulator:
        await asyncio.wait_for(csms.connected.wait(), 1)
        yield simulator


def central(csms: MiniCsms201) -> MiniCentral201:
    """The CSMS side of the connection, waiting up to 2 s for the simulator's answers."""
    connection = csms.centrals["CP1"]
    connection._response_timeout = 2  # the shared fake's 0.3 s is tight on a loaded machine
    return connection


def statuses(csms: MiniCsms201) -> list[tuple[int, int, str]]:
    return [
        (p["evseId"], p["connectorId"], p["connectorStatus"])
        for p in csms.payloads("StatusNotification")
    ]


def in_minutes(minutes: float) -> str:
    return format_timestamp(utc_now() + timedelta(minutes=minutes))


async def request_start(
    csms: MiniCsms201, token: dict[str, str], remote_start_id: int, evse_id: int | None = None
) -> tuple[str, str | None]:
    answer = await central(csms).call(
        call.RequestStartTransaction(token, remote_start_id, evse_id=evse_id)
    )
    return str(answer.status), answer.transaction_id


async def reserve(csms: MiniCsms201, reservation_id: int, **options: Any) -> str:
    expiry = options.pop("expiry", None) or in_minutes(10)
    token = options.pop("token", TOKEN)
    answer = await central(csms).call(call.ReserveNow(reservation_id, expiry, token, **options))
    return str(answer.status)


def tx_profile(profile_id: int, limit: float, transaction_id: str | None = None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            }
        ],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


# ---------------------------------------------------------------------- remote start / stop


async def test_request_start_only_answers_when_auto_start_is_off(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    sim.auto_start = False

    assert await request_start(csms, TOKEN, 1, 1) == ("Accepted", None)
    assert await request_start(csms, TOKEN, 2, 3) == ("Rejected", None)
    await sim.wait_background()
    assert csms.actions() == []


async def test_request_start_starts_a_transaction_when_auto_start_is_on(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    assert await request_start(csms, TOKEN, 41, 1) == ("Accepted", None)
    await sim.wait_background()

    assert csms.actions() == ["TransactionEvent", "StatusNotification"]
    started = csms.payloads("TransactionEvent")[0]
    assert (started["eventType"], started["triggerReason"]) == ("Started", "RemoteStart")
    assert started["transactionInfo"]["remoteStartId"] == 41
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert started["idToken"] == TOKEN
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert "reservationId" not in started
    reading = started["meterValue"][0]["sampledValue"][0]
    assert (reading["value"], reading["context"]) == (0, "Transaction.Begin")
    assert statuses(csms) == [(1, 1, "Occupied")]
    transaction_id = started["transactionInfo"]["transactionId"]
    assert sim.active_transactions == {transaction_id: 1}

    assert await request_start(csms, {**TOKEN, "idToken": "tag"}, 42, 1) == (
        "Accepted",
        transaction_id,
    )
    assert await request_start(csms, OTHER, 43, 1) == ("Rejected", None)
    assert await request_start(csms, OTHER, 44) == ("Accepted", None)  # EVSE 2
    assert await request_start(csms, OTHER, 45) == ("Rejected", None)  # none left
    await sim.wait_background()
    assert csms.payloads("TransactionEvent")[1]["evse"] == {"id": 2, "connectorId": 1}


async def test_request_start_authorizes_a_cable_first_transaction(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await sim.transaction_event("Started", "tx-9", "CablePluggedIn", evse=(2, 1))

    assert await request_start(csms, TOKEN, 7, 2) == ("Accepted", "tx-9")
    await sim.wait_background()

    updated = csms.payloads("TransactionEvent")[-1]
    assert (updated["eventType"], updated["triggerReason"]) == ("Updated", "RemoteStart")
    assert updated["idToken"] == TOKEN
    assert updated["transactionInfo"] == {"transactionId": "tx-9", "remoteStartId": 7}
    assert await request_start(csms, OTHER, 8, 2) == ("Rejected", None)


async def test_request_start_is_rejected_when_the_evse_is_out_of_order(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await sim.status(1, 1, "Faulted")
    assert await request_start(csms, TOKEN, 1, 1) == ("Accepted", None)  # connector 2 works
    await sim.wait_background()
    await sim.status(2, 1, "Unavailable")
    assert await request_start(csms, TOKEN, 2, 2) == ("Rejected", None)


async def test_request_stop_ends_a_running_transaction_only(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await request_start(csms, TOKEN, 1, 2)
    await sim.wait_background()
    transaction_id = next(iter(sim.active_transactions))

    unknown = await central(csms).call(call.RequestStopTransaction(transaction_id="nope"))
    known = await central(csms).call(call.RequestStopTransaction(transaction_id=transaction_id))
    await sim.wait_background()

    assert (unknown.status, known.status) == ("Rejected", "Accepted")
    ended = csms.payloads("TransactionEvent")[-1]
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "RemoteStop")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert ended["meterValue"][0]["sampledValue"][0]["value"] == 1000
    assert statuses(csms)[-1] == (2, 1, "Available")
    assert sim.active_transactions == {}


# ---------------------------------------------------------------------- reservations


async def test_reserve_now_reserves_every_connector_of_the_evse(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    assert await reserve(csms, 1, evse_id=1) == "Accepted"
    await sim.wait_background()

    assert statuses(csms) == [(1, 1, "Reserved"), (1, 2, "Reserved")]
    assert await reserve(csms, 2, evse_id=1) == "Occupied"
    assert await reserve(csms, 2, evse_id=3) == "Rejected"
    assert await reserve(csms, 2, evse_id=2, connector_type="cCCS2") == "Rejected"
    past = format_timestamp(utc_now() - timedelta(seconds=1))
    assert await reserve(csms, 2, evse_id=2, expiry=past) == "Rejected"
    await sim.status(2, 1, "Faulted")
    assert await reserve(csms, 2, evse_id=2) == "Faulted"
    await sim.status(2, 1, "Unavailable")
    assert await reserve(csms, 2, evse_id=2) == "Unavailable"
    assert await reserve(csms, 2) == "Occupied"  # station-wide: no EVSE left


async def test_station_wide_reservation_keeps_an_evse_for_its_token(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    assert await reserve(csms, 5, connector_type="cCCS2") == "Accepted"  # only EVSE 1 has it
    assert await reserve(csms, 6, connector_type="cCCS2", token=OTHER) == "Occupied"
    await sim.wait_background()
    assert statuses(csms) == []  # no EVSE is Reserved for a station-wide reservation

    assert await request_start(csms, OTHER, 1, 1) == ("Accepted", None)
    await sim.wait_background()
    assert await request_start(csms, TOKEN, 2, 2) == ("Accepted", None)
    await sim.wait_background()
    started = csms.payloads("TransactionEvent")[-1]
    assert started["reservationId"] == 5
    assert sim.reservations == {}


async def test_reserved_evse_starts_only_for_its_token_with_the_reservation_id(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await reserve(csms, 3, evse_id=2)

    assert await request_start(csms, OTHER, 1, 2) == ("Rejected", None)
    assert await request_start(csms, TOKEN, 2, 2) == ("Accepted", None)
    await sim.wait_background()

    assert csms.payloads("TransactionEvent")[0]["reservationId"] == 3
    assert sim.reservations == {}


async def test_cancel_reservation_frees_the_evse_when_known(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    await reserve(csms, 3, evse_id=2)
    unknown = await central(csms).call(call.CancelReservation(reservation_id=4))
    known = await central(csms).call(call.CancelReservation(reservation_id=3))
    await sim.wait_background()

    assert (unknown.status, known.status) == ("Rejected", "Accepted")
    assert statuses(csms) == [(2, 1, "Reserved"), (2, 1, "Available")]
    assert "ReservationStatusUpdate" not in csms.actions()


async def test_reservation_expiry_and_removal_are_reported(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    soon = format_timestamp(utc_now() + timedelta(seconds=0.3))
    await reserve(csms, 1, evse_id=2, expiry=soon)
    await reserve(csms, 2, evse_id=1)
    async with asyncio.timeout(3):
        while 1 in sim.reservations:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    assert await sim.remove_reservation(2)
    assert not await sim.expire_reservation(2)

    updates = csms.payloads("ReservationStatusUpdate")
    assert [(u["reservationId"], u["reservationUpdateStatus"]) for u in updates] == [
        (1, "Expired"),
        (2, "Removed"),
    ]
    assert statuses(csms)[-2:] == [(1, 1, "Available"), (1, 2, "Available")]
    assert (2, 1, "Available") in statuses(csms)
    assert sim.background_errors == []


# ---------------------------------------------------------------------- unlock


@pytest.mark.parametrize(
    ("evse_id", "connector_id", "expected"),
    [
        (1, 2, "Unlocked"),
        (2, 1, "Unlocked"),
        (2, 2, "UnknownConnector"),
        (3, 1, "UnknownConnector"),
    ],
)
async def test_unlock_connector_knows_the_connectors(
    sim: ChargerSimulator201, csms: MiniCsms201, evse_id: int, connector_id: int, expected: str
) -> None:
    answer = await central(csms).call(call.UnlockConnector(evse_id, connector_id))
    assert answer.status == expected


# ---------------------------------------------------------------------- smart charging


async def test_set_charging_profile_checks_purpose_evse_and_transaction(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    async def set_profile(evse_id: int, profile: dict[str, Any]) -> str:
        answer = await central(csms).call(
            call.SetChargingProfile(evse_id=evse_id, charging_profile=profile)
        )
        return str(answer.status)

    assert await set_profile(1, tx_profile(1, 7400)) == "Rejected"
    await sim.transaction_event("Started", "tx-1", "Authorized", evse=(1, 1))
    assert await set_profile(1, tx_profile(1, 7400, "tx-2")) == "Rejected"
    assert await set_profile(0, tx_profile(1, 7400)) == "Rejected"
    assert await set_profile(1, tx_profile(1, 7400, "tx-1")) == "Accepted"
    maximum = {**tx_profile(2, 11000), "chargingProfilePurpose": "ChargingStationMaxProfile"}
    maximum["chargingProfileKind"] = "Absolute"
    maximum["chargingSchedule"][0]["startSchedule"] = "2025-01-01T00:00:00Z"
    assert await set_profile(1, maximum) == "Rejected"
    assert await set_profile(0, maximum) == "Accepted"
    external = {**maximum, "id": 3, "chargingProfilePurpose": "ChargingStationExternalConstraints"}
    assert await set_profile(0, external) == "Rejected"
    assert await set_profile(3, {**maximum, "chargingProfilePurpose": "TxDefaultProfile"}) == (
        "Rejected"
    )

    assert sim.charging_profiles == {1: {1: tx_profile(1, 7400, "tx-1")}, 0: {2: maximum}}
    composite = await central(csms).call(call.GetCompositeSchedule(duration=300, evse_id=1))
    assert composite.status == "Accepted"
    schedule = composite.schedule
    assert (schedule["evse_id"], schedule["duration"]) == (1, 300)
    assert schedule["charging_rate_unit"] == "W"
    assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 7400.0}]
    assert schedule["schedule_start"].endswith("Z")

    await sim.transaction_event("Ended", "tx-1", "StopAuthorized")
    assert sim.charging_profiles == {0: {2: maximum}}
    composite = await central(csms).call(
        call.GetCompositeSchedule(duration=60, evse_id=2, charging_rate_unit="A")
    )
    assert composite.schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": 15.9}  # 11000 W / (3 x 230 V)
    ]


async def test_clear_and_composite_answer_unknown_and_rejected_without_profiles(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    get = central(csms).call
    assert (await get(call.GetCompositeSchedule(duration=60, evse_id=1))).status == "Rejected"
    assert (await get(call.GetCompositeSchedule(duration=60, evse_id=9))).status == "Rejected"
    default = {**tx_profile(4, 3680), "chargingProfilePurpose": "TxDefaultProfile"}
    assert (
        await get(call.SetChargingProfile(evse_id=2, charging_profile=default))
    ).status == "Accepted"

    missing = call.ClearChargingProfile(charging_profile_criteria={"evseId": 1})
    assert (await get(missing)).status == "Unknown"
    matching = call.ClearChargingProfile(
        charging_profile_criteria={"evseId": 2, "chargingProfilePurpose": "TxDefaultProfile"}
    )
    assert (await get(matching)).status == "Accepted"
    assert (await get(call.ClearChargingProfile(charging_profile_id=4))).status == "Unknown"
    assert sim.charging_profiles == {}
