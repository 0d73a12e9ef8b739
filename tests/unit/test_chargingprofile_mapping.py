"""Pure tests of the OCPI ChargingProfile objects and their mapping to and from the central
system's charging limits (reference 3.7, 4.8)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.mapping.chargingprofiles import (
    to_active_profile,
    to_active_result,
    to_charging_limit,
    to_clear_result,
    to_ocpi_profile,
    to_schedule,
    to_set_result,
)
from bridge.ocpi.chargingprofiles import (
    ActiveChargingProfileResult,
    ChargingProfile,
    ChargingProfileResultType,
    SetChargingProfile,
)
from csms.domain.commands import (
    CommandAnswer,
    CommandStatus,
    CompositeSchedule,
    RateUnit,
    Schedule,
    SchedulePeriod,
)

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def a_profile(**overrides: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "charging_rate_unit": "A",
        "charging_profile_period": [
            {"start_period": 0, "limit": 16.7},
            {"start_period": 1800, "limit": 8},
        ],
    }
    profile.update(overrides)
    return profile


def answer(status: CommandStatus, schedule: CompositeSchedule | None = None) -> CommandAnswer:
    return CommandAnswer(status=status, detail="test", schedule=schedule)


# --- received profiles --------------------------------------------------------------------


def test_a_profile_in_amperes_becomes_a_relative_schedule_in_amperes() -> None:
    schedule = to_schedule(ChargingProfile.model_validate(a_profile()))
    assert schedule == Schedule(
        rate_unit=RateUnit.A,
        periods=(
            SchedulePeriod(start_s=0, limit=Decimal("16.7")),
            SchedulePeriod(start_s=1800, limit=Decimal("8.0")),
        ),
    )
    assert schedule.starts_at is None


def test_a_profile_in_watts_keeps_watts_start_duration_and_minimum_rate() -> None:
    profile = ChargingProfile.model_validate(
        a_profile(
            charging_rate_unit="W",
            start_date_time="2026-11-20T10:00:00+01:00",
            duration=3600,
            min_charging_rate=1380.04,
            charging_profile_period=[{"start_period": 0, "limit": 11000.05}],
        )
    )
    schedule = to_schedule(profile)
    assert schedule.rate_unit is RateUnit.W
    assert schedule.starts_at == START
    assert schedule.duration_s == 3600
    assert schedule.min_rate == Decimal("1380.0")
    assert schedule.periods == (SchedulePeriod(start_s=0, limit=Decimal("11000.1")),)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (16.7, "16.7"),
        (16.65, "16.7"),
        (16.64, "16.6"),
        ("16.75", "16.8"),
        (11000.05, "11000.1"),
        (11000.04, "11000.0"),
        (32, "32"),
        (0, "0"),
    ],
)
def test_limits_are_rounded_half_up_to_one_decimal(given: Any, expected: str) -> None:
    profile = ChargingProfile.model_validate(
        a_profile(charging_profile_period=[{"start_period": 0, "limit": given}])
    )
    (period,) = to_schedule(profile).periods
    assert period.limit == Decimal(expected)
    assert str(period.limit) == str(Decimal(expected).quantize(Decimal("0.1")))


def test_a_limit_is_sent_back_as_a_json_number_with_its_decimal() -> None:
    profile = ChargingProfile.model_validate(
        a_profile(charging_profile_period=[{"start_period": 0, "limit": 16.65}])
    )
    dumped = json.loads(profile.model_dump_json(exclude_none=True))
    assert dumped["charging_profile_period"] == [{"start_period": 0, "limit": 16.7}]


def test_the_session_limit_carries_our_profile_id_stack_level_and_transaction() -> None:
    limit = to_charging_limit(
        ChargingProfile.model_validate(a_profile()),
        profile_id=7,
        stack_level=50,
        transaction_ref="42",
    )
    assert (limit.profile_id, limit.stack_level, limit.transaction_ref) == (7, 50, "42")
    assert limit.schedule.periods[0].limit == Decimal("16.7")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"charging_rate_unit": "kW"}, "charging_rate_unit"),
        ({"charging_rate_unit": None}, "charging_rate_unit"),
        ({"charging_profile_period": []}, "charging_profile_period"),
        ({"charging_profile_period": None}, "charging_profile_period"),
        (
            {"charging_profile_period": [{"start_period": 60, "limit": 16}]},
            "start_period 0",
        ),
        (
            {
                "charging_profile_period": [
                    {"start_period": 0, "limit": 16},
                    {"start_period": 0, "limit": 8},
                ]
            },
            "increase",
        ),
        ({"charging_profile_period": [{"start_period": -1, "limit": 16}]}, "start_period"),
        ({"charging_profile_period": [{"start_period": "0", "limit": 16}]}, "start_period"),
        ({"charging_profile_period": [{"start_period": 0.5, "limit": 16}]}, "start_period"),
        ({"charging_profile_period": [{"start_period": 0, "limit": -1}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0, "limit": "lots"}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0, "limit": True}]}, "limit"),
        ({"charging_profile_period": [{"start_period": 0}]}, "limit"),
        ({"min_charging_rate": -6}, "min_charging_rate"),
        ({"duration": -1}, "duration"),
        ({"duration": "3600"}, "duration"),
        ({"start_date_time": "tomorrow"}, "start_date_time"),
    ],
)
def test_invalid_profiles_are_refused_with_the_field_named(
    overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ChargingProfile.model_validate(a_profile(**overrides))
    assert problem in str(raised.value)


def test_too_many_periods_are_refused() -> None:
    periods = [{"start_period": i * 60, "limit": 16} for i in range(1025)]
    with pytest.raises(ValidationError):
        ChargingProfile.model_validate(a_profile(charging_profile_period=periods))


def test_set_charging_profile_needs_an_absolute_response_url() -> None:
    SetChargingProfile.model_validate(
        {"charging_profile": a_profile(), "response_url": "https://emsp.example/r/1"}
    )
    for url in ("/relative", "ftp://emsp.example/r", ""):
        with pytest.raises(ValidationError):
            SetChargingProfile.model_validate(
                {"charging_profile": a_profile(), "response_url": url}
            )
    with pytest.raises(ValidationError):
        SetChargingProfile.model_validate({"charging_profile": a_profile()})


# --- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CommandStatus.ACCEPTED, ChargingProfileResultType.ACCEPTED),
        (CommandStatus.REJECTED, ChargingProfileResultType.REJECTED),
        (CommandStatus.NOT_SUPPORTED, ChargingProfileResultType.REJECTED),
        (CommandStatus.FAILED, ChargingProfileResultType.REJECTED),
        (CommandStatus.TIMEOUT, ChargingProfileResultType.REJECTED),
        (CommandStatus.OFFLINE, ChargingProfileResultType.REJECTED),
        (CommandStatus.UNKNOWN, ChargingProfileResultType.REJECTED),
    ],
)
def test_set_results(status: CommandStatus, expected: ChargingProfileResultType) -> None:
    assert to_set_result(answer(status)).result is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CommandStatus.ACCEPTED, ChargingProfileResultType.ACCEPTED),
        (CommandStatus.UNKNOWN, ChargingProfileResultType.UNKNOWN),
        (CommandStatus.REJECTED, ChargingProfileResultType.REJECTED),
        (CommandStatus.NOT_SUPPORTED, ChargingProfileResultType.REJECTED),
        (CommandStatus.FAILED, ChargingProfileResultType.REJECTED),
        (CommandStatus.TIMEOUT, ChargingProfileResultType.REJECTED),
        (CommandStatus.OFFLINE, ChargingProfileResultType.REJECTED),
    ],
)
def test_clear_results(status: CommandStatus, expected: ChargingProfileResultType) -> None:
    assert to_clear_result(answer(status)).result is expected


def a_composite(unit: RateUnit = RateUnit.W, first_start: int = 0) -> CompositeSchedule:
    return CompositeSchedule(
        evse_id=1,
        starts_at=START,
        schedule=Schedule(
            rate_unit=unit,
            periods=(
                SchedulePeriod(start_s=first_start, limit=Decimal("11000.0"), phases=3),
                SchedulePeriod(start_s=first_start + 900, limit=Decimal("7400.5")),
            ),
            duration_s=3600,
        ),
    )


def test_a_composite_schedule_becomes_the_active_profile_from_its_start() -> None:
    active = to_active_profile(a_composite())
    assert active.start_date_time == START
    dumped = json.loads(active.model_dump_json(exclude_none=True))
    assert dumped == {
        "start_date_time": "2026-11-20T09:00:00.000Z",
        "charging_profile": {
            "duration": 3600,
            "charging_rate_unit": "W",
            "charging_profile_period": [
                {"start_period": 0, "limit": 11000},
                {"start_period": 900, "limit": 7400.5},
            ],
        },
    }


def test_a_composite_schedule_in_amperes_stays_in_amperes() -> None:
    active = to_active_profile(a_composite(RateUnit.A))
    assert active.charging_profile.charging_rate_unit.value == "A"


def test_an_accepted_schedule_is_the_active_profile_result() -> None:
    result, problem = to_active_result(answer(CommandStatus.ACCEPTED, a_composite()))
    assert problem is None
    assert result.result is ChargingProfileResultType.ACCEPTED
    assert result.profile == to_active_profile(a_composite())


@pytest.mark.parametrize(
    "status",
    [CommandStatus.REJECTED, CommandStatus.TIMEOUT, CommandStatus.NOT_SUPPORTED],
)
def test_other_answers_are_rejected_without_a_profile(status: CommandStatus) -> None:
    result, problem = to_active_result(answer(status))
    assert problem is None
    assert result == ActiveChargingProfileResult(result=ChargingProfileResultType.REJECTED)
    assert json.loads(result.model_dump_json(exclude_none=True)) == {"result": "REJECTED"}


def test_an_accepted_answer_without_a_usable_schedule_is_rejected_with_a_reason() -> None:
    result, problem = to_active_result(answer(CommandStatus.ACCEPTED))
    assert result.result is ChargingProfileResultType.REJECTED
    assert problem is not None
    result, problem = to_active_result(answer(CommandStatus.ACCEPTED, a_composite(first_start=60)))
    assert result.result is ChargingProfileResultType.REJECTED
    assert problem is not None
    assert "start_period 0" in problem


def test_an_ocpi_profile_round_trips_through_the_domain_schedule() -> None:
    profile = ChargingProfile.model_validate(
        a_profile(start_date_time="2026-11-20T09:00:00Z", duration=600, min_charging_rate=6)
    )
    assert to_ocpi_profile(to_schedule(profile)) == profile
