"""Pure tests of what the CPO PUTs to an eMSP as a session's ActiveChargingProfile when it
changes, and of the TOO_OFTEN rate limit of chargingprofiles requests (reference 3.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bridge.mapping.chargingprofiles import (
    NoActiveProfile,
    Unknowable,
    retry_after_s,
    to_active_update,
    to_evse_maximum,
)
from bridge.ocpi.chargingprofiles import ActiveChargingProfile, ChargingRateUnit
from bridge.ocpi.locations import Connector
from csms.domain.commands import (
    CommandAnswer,
    CommandStatus,
    CompositeSchedule,
    RateUnit,
    Schedule,
    SchedulePeriod,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def composite(*periods: tuple[int, str], unit: RateUnit = RateUnit.W) -> CompositeSchedule:
    return CompositeSchedule(
        evse_id=1,
        starts_at=NOW,
        schedule=Schedule(
            rate_unit=unit,
            periods=tuple(SchedulePeriod(start_s=s, limit=Decimal(v)) for s, v in periods),
            duration_s=900,
        ),
    )


def answer(status: CommandStatus, schedule: CompositeSchedule | None = None) -> CommandAnswer:
    return CommandAnswer(status=status, detail="test", schedule=schedule)


def a_connector(**overrides: Any) -> Connector:
    values: dict[str, Any] = {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "2026-11-21T09:00:00Z",
    }
    values.update(overrides)
    return Connector.model_validate(values)


# --- the charger's composite schedule -> the update ------------------------------------------


def test_an_accepted_composite_schedule_becomes_the_active_profile() -> None:
    update = to_active_update(answer(CommandStatus.ACCEPTED, composite((0, "4000"), (600, "7400"))))
    assert isinstance(update, ActiveChargingProfile)
    assert update.start_date_time == NOW
    profile = update.charging_profile
    assert profile.charging_rate_unit is ChargingRateUnit.W
    assert profile.duration == 900
    assert [(p.start_period, p.limit) for p in profile.charging_profile_period] == [
        (0, Decimal(4000)),
        (600, Decimal(7400)),
    ]


@pytest.mark.parametrize("status", [CommandStatus.REJECTED, CommandStatus.UNKNOWN])
def test_no_profile_is_active_when_the_charger_has_no_composite_schedule(
    status: CommandStatus,
) -> None:
    update = to_active_update(answer(status))
    assert isinstance(update, NoActiveProfile)
    assert update.detail.startswith(status.value)


def test_no_profile_is_active_when_the_composite_schedule_has_no_period() -> None:
    update = to_active_update(answer(CommandStatus.ACCEPTED, composite()))
    assert isinstance(update, NoActiveProfile)


@pytest.mark.parametrize(
    "status", [CommandStatus.OFFLINE, CommandStatus.TIMEOUT, CommandStatus.FAILED]
)
def test_the_update_is_retried_when_the_charger_could_not_answer(status: CommandStatus) -> None:
    expected = Unknowable(detail=f"{status.value}: test", retry=True)
    assert to_active_update(answer(status)) == expected


def test_the_update_is_given_up_when_the_charger_cannot_or_answers_nonsense() -> None:
    assert to_active_update(answer(CommandStatus.NOT_SUPPORTED)) == Unknowable(
        detail="NotSupported: test", retry=False
    )
    without = to_active_update(answer(CommandStatus.ACCEPTED))
    assert isinstance(without, Unknowable)
    assert not without.retry
    # A first period that does not start at 0 is no OCPI profile.
    late = to_active_update(answer(CommandStatus.ACCEPTED, composite((60, "4000"))))
    assert isinstance(late, Unknowable)
    assert not late.retry
    assert "not a valid OCPI profile" in late.detail


# --- the EVSE maximum --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "power_w"),
    [
        ({}, Decimal(11040)),  # 3 x 230 V x 16 A
        ({"power_type": "AC_1_PHASE", "max_amperage": 32}, Decimal(7360)),
        ({"power_type": "AC_2_PHASE_SPLIT", "max_voltage": 120, "max_amperage": 40}, Decimal(9600)),
        ({"power_type": "DC", "max_voltage": 920, "max_amperage": 200}, Decimal(184000)),
        ({"max_electric_power": 11000}, Decimal(11000)),  # given: it wins
    ],
)
def test_the_evse_maximum_is_the_connector_power_in_watts(
    overrides: dict[str, Any], power_w: Decimal
) -> None:
    maximum = to_evse_maximum(a_connector(**overrides), NOW)
    assert maximum.start_date_time == NOW
    profile = maximum.charging_profile
    assert profile.charging_rate_unit is ChargingRateUnit.W
    assert profile.duration is None  # no end
    assert profile.start_date_time is None
    assert [(p.start_period, p.limit) for p in profile.charging_profile_period] == [(0, power_w)]
    body = maximum.model_dump(mode="json", exclude_none=True)
    assert body["charging_profile"]["charging_profile_period"] == [
        {"start_period": 0, "limit": float(power_w)}
    ]


# --- TOO_OFTEN -----------------------------------------------------------------------------------


def test_a_first_request_is_never_too_often() -> None:
    assert retry_after_s(None, NOW, 10) is None


def test_a_request_inside_the_interval_waits_for_the_rest_of_it() -> None:
    assert retry_after_s(NOW - timedelta(seconds=4), NOW, 10) == pytest.approx(6)
    assert retry_after_s(NOW - timedelta(milliseconds=1), NOW, 10) == pytest.approx(9.999)


def test_a_request_at_or_after_the_interval_is_accepted() -> None:
    assert retry_after_s(NOW - timedelta(seconds=10), NOW, 10) is None
    assert retry_after_s(NOW - timedelta(hours=1), NOW, 10) is None


def test_an_interval_of_zero_disables_the_limit() -> None:
    assert retry_after_s(NOW, NOW, 0) is None


def test_a_previous_request_in_the_future_counts_from_now() -> None:
    assert retry_after_s(NOW + timedelta(seconds=30), NOW, 10) == pytest.approx(10)
