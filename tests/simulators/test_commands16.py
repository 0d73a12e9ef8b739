"""OCPP 1.6 simulator: stateful answers to remote control, reservations and smart charging,
against the minimal central system of ``test_simulator16`` on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call
from websockets.asyncio.server import serve
from websockets.typing import Subprotocol

from simulators.charger.common import format_timestamp, utc_now
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from tests.simulators.test_simulator16 import MiniCentral, MiniCsms


@pytest.fixture
async def csms() -> AsyncIterator[MiniCsms]:
    central_system = MiniCsms()
    async with serve(
        central_system.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        central_system.url = f"ws://127.0.0.1:{port}/ocpp"
        yield central_system


@pytest.fixture
async def sim(csms: MiniCsms) -> AsyncIterator[ChargerSimulator16]:
    config = SimulatorConfig16(
        url=csms.url,
        charger_id="CP1",
        connectors=2,
        response_timeout=2,
        auto_start=True,
        auto_stop=True,
    )
    async with ChargerSimulator16(config) as simulator:
        await asyncio.wait_for(csms.connected.wait(), 1)
        yield simulator


def central(csms: MiniCsms) -> MiniCentral:
    """The CSMS side of the connection, waiting up to 2 s for the simulator's answers."""
    connection = csms.centrals["CP1"]
    connection._response_timeout = 2  # the shared fake's 0.3 s is tight on a loaded machine
    return connection


def statuses(csms: MiniCsms) -> list[tuple[int, str]]:
    return [(p["connectorId"], p["status"]) for p in csms.payloads("CP1", "StatusNotification")]


def in_minutes(minutes: float) -> str:
    return format_timestamp(utc_now() + timedelta(minutes=minutes))


async def remote_start(csms: MiniCsms, id_tag: str, connector_id: int | None = None) -> str:
    answer = await central(csms).call(
        call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id)
    )
    return str(answer.status)


async def started(sim: ChargerSimulator16, connector_id: int, id_tag: str = "TAG") -> int:
    response = await sim.start_transaction(connector_id, id_tag, 0)
    return int(response["transactionId"])


TX_DEFAULT = {
    "chargingProfileId": 1,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": {
        "startSchedule": "2025-01-01T00:00:00Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.7}],
    },
}


def tx_profile(profile_id: int, limit: float, transaction_id: int | None = None) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


# ---------------------------------------------------------------------- remote start / stop


async def test_remote_start_only_answers_when_auto_start_is_off(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.auto_start = False

    assert await remote_start(csms, "TAG", 1) == "Accepted"
    await sim.wait_background()
    assert "StartTransaction" not in csms.actions("CP1")
    assert await remote_start(csms, "TAG", 0) == "Rejected"
    assert await remote_start(csms, "TAG", 3) == "Rejected"


async def test_remote_start_starts_a_transaction_when_auto_start_is_on(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    assert await remote_start(csms, "TAG", 2) == "Accepted"
    assert await remote_start(csms, "OTHER", 2) == "Rejected"  # being started
    await sim.wait_background()

    assert csms.actions("CP1") == ["StatusNotification", "StartTransaction", "StatusNotification"]
    assert statuses(csms) == [(2, "Preparing"), (2, "Charging")]
    start = csms.payloads("CP1", "StartTransaction")[0]
    assert (start["connectorId"], start["idTag"], start["meterStart"]) == (2, "TAG", 0)
    assert "reservationId" not in start
    assert list(sim.transactions) == [100]
    assert await remote_start(csms, "OTHER", 2) == "Rejected"  # running
    assert await remote_start(csms, "OTHER") == "Accepted"  # connector omitted: the free one
    await sim.wait_background()
    assert csms.payloads("CP1", "StartTransaction")[1]["connectorId"] == 1
    assert await remote_start(csms, "THIRD") == "Rejected"  # none left


async def test_remote_start_is_rejected_when_the_connector_is_unavailable(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await sim.status(1, "Unavailable")
    await sim.status(2, "Faulted", "GroundFailure")

    assert await remote_start(csms, "TAG", 1) == "Rejected"
    assert await remote_start(csms, "TAG") == "Rejected"
    await sim.status(2, "Preparing")  # cable plugged in: a remote start is expected now
    assert await remote_start(csms, "TAG", 2) == "Accepted"
    await sim.wait_background()
    assert statuses(csms)[-1] == (2, "Charging")  # no second Preparing
    assert statuses(csms).count((2, "Preparing")) == 1


async def test_remote_start_authorizes_first_when_configured(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.configuration["AuthorizeRemoteTxRequests"] = "true"
    assert await remote_start(csms, "TAG", 1) == "Accepted"
    await sim.wait_background()
    assert csms.actions("CP1")[:2] == ["Authorize", "StatusNotification"]


async def test_remote_start_installs_its_tx_profile_for_the_new_transaction(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    profile = tx_profile(5, 10.0)
    answer = await central(csms).call(
        call.RemoteStartTransaction(id_tag="TAG", connector_id=1, charging_profile=profile)
    )
    assert answer.status == "Accepted"
    await sim.wait_background()

    assert sim.charging_profiles == {1: {5: profile}}
    assert sim.profiles.applicable(1, 100)[0].transaction_id == 100


async def test_remote_stop_stops_a_running_transaction_only(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    transaction_id = await started(sim, 1)
    csms.calls.clear()

    unknown = await central(csms).call(call.RemoteStopTransaction(transaction_id=999))
    known = await central(csms).call(call.RemoteStopTransaction(transaction_id=transaction_id))
    again = await central(csms).call(call.RemoteStopTransaction(transaction_id=transaction_id))
    await sim.wait_background()

    assert (unknown.status, known.status) == ("Rejected", "Accepted")
    assert again.status in ("Accepted", "Rejected")  # Rejected once the stop went through
    assert csms.actions("CP1") == ["StopTransaction", "StatusNotification", "StatusNotification"]
    stop = csms.payloads("CP1", "StopTransaction")[0]
    assert (stop["transactionId"], stop["reason"], stop["meterStop"]) == (100, "Remote", 1000)
    assert stop["idTag"] == "TAG"
    assert statuses(csms) == [(1, "Finishing"), (1, "Available")]
    assert sim.transactions == {}
    stopped = await central(csms).call(call.RemoteStopTransaction(transaction_id=100))
    assert stopped.status == "Rejected"


async def test_fault_knobs_come_before_the_stateful_answers(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    sim.answers["RemoteStartTransaction"] = {"status": "Rejected"}
    sim.silent_actions.add("ReserveNow")

    assert await remote_start(csms, "TAG", 1) == "Rejected"
    connection = central(csms)
    connection._response_timeout = 0.3
    with pytest.raises(TimeoutError):
        await connection.call(call.ReserveNow(1, in_minutes(5), "TAG", 1))
    await sim.wait_background()
    assert csms.actions("CP1") == []
    assert sim.reservations == {}


# ---------------------------------------------------------------------- reservations


async def test_reserve_now_answers_per_connector_state(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    expiry = in_minutes(10)
    reserve = central(csms).call

    assert (await reserve(call.ReserveNow(1, expiry, "TAG", 1))).status == "Accepted"
    assert (await reserve(call.ReserveNow(1, expiry, "TAG", 2))).status == "Occupied"
    assert (await reserve(call.ReserveNow(0, expiry, "TAG", 3))).status == "Rejected"
    assert (await reserve(call.ReserveNow(3, expiry, "TAG", 3))).status == "Rejected"
    past = format_timestamp(utc_now() - timedelta(seconds=1))
    assert (await reserve(call.ReserveNow(2, past, "TAG", 3))).status == "Rejected"
    await sim.wait_background()
    await started(sim, 2, "X")
    assert (await reserve(call.ReserveNow(2, expiry, "TAG", 3))).status == "Occupied"
    await sim.stop_transaction(100, 10)
    await sim.status(2, "Faulted", "GroundFailure")
    assert (await reserve(call.ReserveNow(2, expiry, "TAG", 3))).status == "Faulted"
    await sim.status(2, "Unavailable")
    assert (await reserve(call.ReserveNow(2, expiry, "TAG", 3))).status == "Unavailable"

    assert statuses(csms)[0] == (1, "Reserved")
    assert list(sim.reservations) == [1]
    reservation = sim.reservations[1]
    assert (reservation.unit_id, reservation.id_tag) == (1, "TAG")


async def test_same_reservation_id_moves_the_reservation(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    reserve = central(csms).call
    assert (await reserve(call.ReserveNow(1, in_minutes(5), "TAG", 7))).status == "Accepted"
    assert (await reserve(call.ReserveNow(2, in_minutes(5), "TAG", 7))).status == "Accepted"
    await sim.wait_background()

    assert statuses(csms) == [(1, "Reserved"), (1, "Available"), (2, "Reserved")]
    assert sim.reservations[7].unit_id == 2


async def test_reserved_connector_starts_only_for_its_tag_and_sends_the_reservation_id(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await central(csms).call(call.ReserveNow(1, in_minutes(5), "TAG", 7))
    await sim.wait_background()

    assert await remote_start(csms, "OTHER", 1) == "Rejected"
    assert await remote_start(csms, "tag", 1) == "Accepted"
    await sim.wait_background()

    start = csms.payloads("CP1", "StartTransaction")[0]
    assert (start["idTag"], start["reservationId"]) == ("tag", 7)
    assert sim.reservations == {}
    assert statuses(csms)[1:] == [(1, "Preparing"), (1, "Charging")]


async def test_cancel_reservation_frees_the_connector_when_known(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await central(csms).call(call.ReserveNow(2, in_minutes(5), "TAG", 7))

    unknown = await central(csms).call(call.CancelReservation(reservation_id=8))
    known = await central(csms).call(call.CancelReservation(reservation_id=7))
    await sim.wait_background()

    assert (unknown.status, known.status) == ("Rejected", "Accepted")
    assert statuses(csms) == [(2, "Reserved"), (2, "Available")]
    assert sim.reservations == {}


async def test_reservation_expires_by_itself_or_when_told(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    soon = format_timestamp(utc_now() + timedelta(seconds=0.3))
    await central(csms).call(call.ReserveNow(1, soon, "TAG", 1))
    await central(csms).call(call.ReserveNow(2, in_minutes(5), "TAG", 2))

    async with asyncio.timeout(3):
        while 1 in sim.reservations:
            await asyncio.sleep(0.05)
    assert await sim.expire_reservation(2)
    assert not await sim.remove_reservation(2)
    await asyncio.sleep(0.05)

    assert sorted(statuses(csms)) == [
        (1, "Available"),
        (1, "Reserved"),
        (2, "Available"),
        (2, "Reserved"),
    ]
    assert sim.background_errors == []


# ---------------------------------------------------------------------- unlock


async def test_unlock_connector_answers_unlocked_or_not_supported(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    assert (await central(csms).call(call.UnlockConnector(connector_id=2))).status == "Unlocked"
    assert (await central(csms).call(call.UnlockConnector(connector_id=3))).status == (
        "NotSupported"
    )


# ---------------------------------------------------------------------- smart charging


async def test_tx_profile_needs_its_transaction_running(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    async def set_profile(connector_id: int, profile: dict[str, Any]) -> str:
        answer = await central(csms).call(
            call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
        )
        return str(answer.status)

    assert await set_profile(1, tx_profile(5, 10.0)) == "Rejected"
    transaction_id = await started(sim, 1)
    assert await set_profile(1, tx_profile(5, 10.0, transaction_id + 1)) == "Rejected"
    assert await set_profile(0, tx_profile(5, 10.0)) == "Rejected"
    assert await set_profile(2, tx_profile(5, 10.0)) == "Rejected"
    assert await set_profile(1, tx_profile(5, 10.0, transaction_id)) == "Accepted"
    assert await set_profile(1, TX_DEFAULT) == "Accepted"
    max_profile = {
        **TX_DEFAULT,
        "chargingProfileId": 2,
        "chargingProfilePurpose": "ChargePointMaxProfile",
    }
    assert await set_profile(1, max_profile) == "Rejected"
    assert await set_profile(0, max_profile) == "Accepted"
    assert await set_profile(3, TX_DEFAULT) == "Rejected"

    assert sim.charging_profiles == {
        1: {5: tx_profile(5, 10.0, transaction_id), 1: TX_DEFAULT},
        0: {2: max_profile},
    }
    await sim.stop_transaction(transaction_id, 10)
    assert set(sim.charging_profiles[1]) == {1}  # the TxProfile ended with its transaction


async def test_clear_charging_profile_answers_unknown_when_nothing_matches(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    await central(csms).call(
        call.SetChargingProfile(connector_id=2, cs_charging_profiles=TX_DEFAULT)
    )
    clear = central(csms).call

    assert (await clear(call.ClearChargingProfile(id=9))).status == "Unknown"
    assert (await clear(call.ClearChargingProfile(connector_id=1))).status == "Unknown"
    by_criteria = call.ClearChargingProfile(
        connector_id=2, charging_profile_purpose="TxDefaultProfile", stack_level=0
    )
    assert (await clear(by_criteria)).status == "Accepted"
    assert sim.charging_profiles == {}
    await central(csms).call(
        call.SetChargingProfile(connector_id=2, cs_charging_profiles=TX_DEFAULT)
    )
    assert (await clear(call.ClearChargingProfile(id=1))).status == "Accepted"
    assert (await clear(call.ClearChargingProfile(id=1))).status == "Unknown"


async def test_composite_schedule_combines_the_applicable_profiles(
    sim: ChargerSimulator16, csms: MiniCsms
) -> None:
    get = central(csms).call
    assert (await get(call.GetCompositeSchedule(connector_id=1, duration=600))).status == (
        "Rejected"
    )
    await get(call.SetChargingProfile(connector_id=0, cs_charging_profiles=TX_DEFAULT))
    transaction_id = await started(sim, 1)
    await get(call.SetChargingProfile(1, tx_profile(5, 6.7, transaction_id)))

    composite = await get(call.GetCompositeSchedule(connector_id=1, duration=600))
    in_watts = await get(
        call.GetCompositeSchedule(connector_id=2, duration=60, charging_rate_unit="W")
    )
    unknown = await get(call.GetCompositeSchedule(connector_id=3, duration=60))

    assert composite.status == "Accepted"
    assert composite.connector_id == 1
    assert composite.charging_schedule["duration"] == 600
    assert composite.charging_schedule["charging_rate_unit"] == "A"
    assert composite.charging_schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": Decimal("6.7")}  # the library reads 1.6 limits as Decimal
    ]
    assert composite.charging_schedule["start_schedule"] == composite.schedule_start
    assert in_watts.charging_schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": Decimal("11523.0")}  # 16.7 A x 3 x 230 V
    ]
    assert unknown.status == "Rejected"


def test_cli_auto_flag_turns_on_auto_start_and_stop() -> None:
    from simulators.charger.__main__ import build_parser, build_simulator

    for version in ("1.6", "2.0.1"):
        args = build_parser().parse_args(["--ocpp", version, "--url", "ws://x", "--id", "CP"])
        assert not build_simulator(args).auto_start
        args = build_parser().parse_args(
            ["--ocpp", version, "--url", "ws://x", "--id", "CP", "--auto"]
        )
        simulator = build_simulator(args)
        assert (simulator.auto_start, simulator.auto_stop) == (True, True)
