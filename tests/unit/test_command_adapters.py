"""Commands as OCPP 1.6 and 2.0.1 calls (schema-valid), the chargers' answers as
``CommandAnswer`` values, and their OCPI CommandResult (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from bridge.mapping.commands import command_result, refused_by_status
from bridge.ocpi.commands import CommandResultType, CommandType
from bridge.ocpi.locations import Status
from csms.domain import commands as c
from csms.domain.model import IdToken, IdTokenKind, OcppVersion
from csms.domain.outcomes import CallAnswered, CallFailed, CallInvalid, CallTimedOut
from csms.ocpp16 import commands as v16
from csms.ocpp201 import commands as v201
from csms.rpc.schemas import REQUEST, RESPONSE, validate

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LIMIT = c.ChargingLimit(
    profile_id=7,
    stack_level=50,
    transaction_ref="12",
    schedule=c.Schedule(
        rate_unit=c.RateUnit.A,
        periods=(
            c.SchedulePeriod(start_s=0, limit=Decimal("16.66")),
            c.SchedulePeriod(start_s=900, limit=Decimal("6"), phases=3),
        ),
        duration_s=3600,
        min_rate=Decimal("6.04"),
    ),
)
COMMANDS: list[c.ChargerCommand] = [
    c.StartCharging(id_token=IdToken(value="RFID-1"), remote_start_id=41, evse_id=1),
    c.StartCharging(id_token=IdToken(value="APP", kind=IdTokenKind.CENTRAL), remote_start_id=42),
    c.StopCharging(transaction_ref="12"),
    c.Reserve(reservation_id=3, expires_at=AT, id_token=IdToken(value="RFID-1"), evse_id=2),
    c.Reserve(reservation_id=4, expires_at=AT, id_token=IdToken(value="R"), group_id="GROUP"),
    c.CancelReservation(reservation_id=3),
    c.Unlock(evse_id=1, connector_id=1),
    c.SetChargingLimit(evse_id=1, limit=LIMIT),
    c.GetCompositeSchedule(evse_id=1, duration_s=600, rate_unit=c.RateUnit.W),
    c.ClearChargingLimit(profile_id=7),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda x: type(x).__name__)
@pytest.mark.parametrize(
    ("adapter", "version"), [(v16, OcppVersion.V16), (v201, OcppVersion.V201)], ids=["16", "201"]
)
def test_every_command_is_a_schema_valid_call(
    command: c.ChargerCommand, adapter: Any, version: OcppVersion
) -> None:
    action, payload = adapter.build_command(command)
    validate(REQUEST, action, payload, version)


def test_limits_carry_one_decimal_and_the_profile_is_a_tx_profile() -> None:
    _, p16 = v16.build_command(c.SetChargingLimit(evse_id=1, limit=LIMIT))
    profile = p16["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == 12
    assert profile["chargingProfileKind"] == "Relative"
    assert [p["limit"] for p in profile["chargingSchedule"]["chargingSchedulePeriod"]] == [16.7, 6]
    assert profile["chargingSchedule"]["minChargingRate"] == 6.0
    _, p201 = v201.build_command(c.SetChargingLimit(evse_id=1, limit=LIMIT))
    assert p201["chargingProfile"]["transactionId"] == "12"
    assert p201["chargingProfile"]["chargingSchedule"][0]["id"] == 7


@pytest.mark.parametrize(
    "command",
    [
        c.StopCharging(transaction_ref="TX-201"),
        c.StartCharging(id_token=IdToken(value="X" * 21), remote_start_id=1),
    ],
)
def test_what_16_cannot_say_is_unbuildable(command: c.ChargerCommand) -> None:
    with pytest.raises(c.Unbuildable):
        v16.build_command(command)


@pytest.mark.parametrize(
    ("adapter", "command", "payload", "status"),
    [
        (v16, COMMANDS[0], {"status": "Accepted"}, c.CommandStatus.ACCEPTED),
        (v16, COMMANDS[0], {"status": "Rejected"}, c.CommandStatus.REJECTED),
        (v16, COMMANDS[3], {"status": "Occupied"}, c.CommandStatus.OCCUPIED),
        (v16, COMMANDS[5], {"status": "Rejected"}, c.CommandStatus.UNKNOWN),
        (v16, COMMANDS[6], {"status": "NotSupported"}, c.CommandStatus.NOT_SUPPORTED),
        (v16, COMMANDS[6], {"status": "UnlockFailed"}, c.CommandStatus.UNLOCK_FAILED),
        (v16, COMMANDS[8], {"status": "Accepted"}, c.CommandStatus.FAILED),  # no schedule
        (v201, COMMANDS[5], {"status": "Rejected"}, c.CommandStatus.UNKNOWN),
        (v201, COMMANDS[6], {"status": "UnknownConnector"}, c.CommandStatus.UNKNOWN),
        (
            v201,
            COMMANDS[6],
            {"status": "OngoingAuthorizedTransaction"},
            c.CommandStatus.ONGOING_TRANSACTION,
        ),
        (v201, COMMANDS[9], {"status": "Unknown"}, c.CommandStatus.UNKNOWN),
    ],
)
def test_answers(
    adapter: Any, command: c.ChargerCommand, payload: dict[str, Any], status: c.CommandStatus
) -> None:
    assert adapter.parse_answer(command, payload).status is status


def test_a_composite_schedule_is_read_in_both_versions() -> None:
    answer16 = {
        "status": "Accepted",
        "connectorId": 1,
        "scheduleStart": "2026-11-21T12:00:00Z",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "duration": 600,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
        },
    }
    validate(RESPONSE, "GetCompositeSchedule", answer16, OcppVersion.V16)
    got16 = v16.parse_answer(COMMANDS[8], answer16)
    answer201 = {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 600,
            "scheduleStart": "2026-11-21T12:00:00Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
        },
    }
    validate(RESPONSE, "GetCompositeSchedule", answer201, OcppVersion.V201)
    got201 = v201.parse_answer(COMMANDS[8], answer201)
    assert got16.schedule == got201.schedule
    assert got16.schedule is not None
    assert got16.schedule.starts_at == AT
    assert got16.schedule.schedule.periods[0].limit == Decimal("11000.0")


def test_2_0_1_start_reports_the_running_transaction() -> None:
    answer = v201.parse_answer(COMMANDS[1], {"status": "Accepted", "transactionId": "TX-9"})
    assert answer.transaction_ref == "TX-9"


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (CallTimedOut(timeout_s=5), c.CommandStatus.TIMEOUT),
        (CallFailed(error_code="NotImplemented"), c.CommandStatus.NOT_SUPPORTED),
        (CallFailed(error_code="NotSupported"), c.CommandStatus.NOT_SUPPORTED),
        (CallFailed(error_code="InternalError"), c.CommandStatus.FAILED),
        (CallInvalid(reason="response: status"), c.CommandStatus.FAILED),
    ],
)
def test_calls_that_fail_are_answers_too(outcome: Any, status: c.CommandStatus) -> None:
    answer = c.answer_to_failure(outcome)
    assert answer is not None
    assert answer.status is status
    assert c.answer_to_failure(CallAnswered(payload={})) is None


@pytest.mark.parametrize(
    ("command", "status", "result"),
    [
        (CommandType.START_SESSION, c.CommandStatus.ACCEPTED, CommandResultType.ACCEPTED),
        (CommandType.START_SESSION, c.CommandStatus.TIMEOUT, CommandResultType.TIMEOUT),
        (CommandType.START_SESSION, c.CommandStatus.OFFLINE, CommandResultType.FAILED),
        (CommandType.RESERVE_NOW, c.CommandStatus.OCCUPIED, CommandResultType.EVSE_OCCUPIED),
        (CommandType.RESERVE_NOW, c.CommandStatus.UNAVAILABLE, CommandResultType.EVSE_INOPERATIVE),
        (
            CommandType.CANCEL_RESERVATION,
            c.CommandStatus.UNKNOWN,
            CommandResultType.UNKNOWN_RESERVATION,
        ),
        (CommandType.UNLOCK_CONNECTOR, c.CommandStatus.UNKNOWN, CommandResultType.FAILED),
        (CommandType.UNLOCK_CONNECTOR, c.CommandStatus.UNLOCK_FAILED, CommandResultType.FAILED),
        (
            CommandType.UNLOCK_CONNECTOR,
            c.CommandStatus.ONGOING_TRANSACTION,
            CommandResultType.REJECTED,
        ),
        (CommandType.STOP_SESSION, c.CommandStatus.NOT_SUPPORTED, CommandResultType.NOT_SUPPORTED),
    ],
)
def test_command_results(
    command: CommandType, status: c.CommandStatus, result: CommandResultType
) -> None:
    assert command_result(command, status) is result


def test_evse_states_that_refuse_a_start_before_the_charger_is_asked() -> None:
    start = CommandType.START_SESSION
    assert refused_by_status(start, Status.CHARGING) is CommandResultType.EVSE_OCCUPIED
    assert refused_by_status(start, Status.OUTOFORDER) is CommandResultType.EVSE_INOPERATIVE
    assert refused_by_status(start, Status.RESERVED) is None  # maybe this driver's
    assert refused_by_status(start, Status.AVAILABLE) is None
    assert refused_by_status(CommandType.UNLOCK_CONNECTOR, Status.CHARGING) is None
