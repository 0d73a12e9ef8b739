"""Pure tests of the simulators' charging profile store and composite schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from simulators.charger.smart_charging import (
    ChargingProfile,
    ProfileStore,
    composite_schedule,
    parse_datetime,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def raw16(
    profile_id: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    stack: int = 0,
    unit: str = "A",
    kind: str = "Absolute",
    start: str | None = "2025-01-01T12:00:00Z",
    duration: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": lim} for s, lim in periods],
    }
    if start is not None:
        schedule["startSchedule"] = start
    if duration is not None:
        schedule["duration"] = duration
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


def p16(connector: int, *args: Any, **kwargs: Any) -> ChargingProfile:
    return ChargingProfile.from_ocpp16(raw16(*args, **kwargs), connector, NOW)


def limits(periods: tuple[tuple[int, Decimal], ...]) -> list[tuple[int, str]]:
    return [(start, str(limit)) for start, limit in periods]


def test_composite_takes_the_minimum_of_the_highest_stack_level_per_period() -> None:
    default = p16(1, 1, "TxDefaultProfile", [(0, 16), (600, 10)])
    higher = p16(  # 12:05 to 12:10
        1, 2, "TxDefaultProfile", [(0, 8)], stack=1, start="2025-01-01T12:05:00Z", duration=300
    )
    maximum = p16(0, 3, "ChargePointMaxProfile", [(0, 12.5)], start="2025-01-01T11:00:00Z")

    composite = composite_schedule([default, higher, maximum], start=NOW, duration=1800)

    assert composite is not None
    assert (composite.unit, composite.duration, composite.start) == ("A", 1800, NOW)
    assert limits(composite.periods) == [(0, "12.5"), (300, "8.0"), (600, "10.0")]


def test_composite_converts_to_the_requested_unit_with_230_v_and_the_phases() -> None:
    amps = p16(1, 1, "TxDefaultProfile", [(0, 16)])
    watts = p16(0, 2, "ChargePointMaxProfile", [(0, 7000)], unit="W")

    in_watts = composite_schedule([amps, watts], start=NOW, duration=60, unit="W")
    in_amps = composite_schedule([amps, watts], start=NOW, duration=60, unit="A")

    assert in_watts is not None
    assert in_amps is not None
    assert limits(in_watts.periods) == [(0, "7000.0")]  # 16 A x 3 x 230 V = 11040 W
    assert limits(in_amps.periods) == [(0, "10.1")]  # 7000 / 690 = 10.14 rounded down


def test_composite_tx_profile_replaces_the_default_and_is_relative_to_the_transaction() -> None:
    default = p16(1, 1, "TxDefaultProfile", [(0, 16)], stack=5)
    tx = p16(1, 2, "TxProfile", [(0, 6.7), (60, 7)], kind="Relative", start=None)

    composite = composite_schedule(
        [default, tx], start=NOW, duration=300, tx_start=NOW - timedelta(seconds=30)
    )

    assert composite is not None
    assert limits(composite.periods) == [(0, "6.7"), (30, "7.0")]
    assert composite.to_ocpp16(1)["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6.7},
        {"startPeriod": 30, "limit": 7.0},
    ]


def test_composite_repeats_a_daily_profile_and_fills_gaps_with_the_maximum_power() -> None:
    daily = p16(
        1,
        1,
        "TxDefaultProfile",
        [(0, 10), (3600, 20)],
        kind="Recurring",
        recurrencyKind="Daily",
        start="2024-12-01T11:30:00Z",
        duration=7200,
    )

    composite = composite_schedule([daily], start=NOW, duration=86400)

    assert composite is not None
    # 22 kW over 3 x 230 V = 31.88 A outside the daily window
    assert limits(composite.periods) == [
        (0, "10.0"),
        (1800, "20.0"),
        (5400, "31.8"),
        (84600, "10.0"),
    ]


def test_composite_is_none_when_no_profile_is_active_in_the_window() -> None:
    later = p16(1, 1, "TxDefaultProfile", [(0, 16)], start="2025-01-02T00:00:00Z")
    expired = p16(1, 2, "TxDefaultProfile", [(0, 16)], validTo="2025-01-01T11:00:00Z")

    assert composite_schedule([later, expired], start=NOW, duration=3600) is None
    assert composite_schedule([], start=NOW, duration=3600) is None


def test_composite_201_schedule_has_every_required_field() -> None:
    raw = {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2025-01-01T11:00:00+01:00",
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}],
            }
        ],
    }
    profile = ChargingProfile.from_ocpp201(raw, 2, NOW)

    composite = composite_schedule([profile], start=NOW, duration=900)

    assert composite is not None
    assert composite.to_ocpp201(2) == {
        "evseId": 2,
        "duration": 900,
        "scheduleStart": "2025-01-01T12:00:00.000Z",
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }


def test_store_replaces_same_id_and_same_stack_level_and_purpose() -> None:
    store = ProfileStore()
    store.install(p16(1, 1, "TxDefaultProfile", [(0, 16)]))
    replaced = store.install(p16(1, 2, "TxDefaultProfile", [(0, 10)]))  # same stack/purpose
    assert [p.profile_id for p in replaced] == [1]
    store.install(p16(2, 2, "TxDefaultProfile", [(0, 8)]))  # same id, other connector

    assert store.by_unit() == {2: {2: raw16(2, "TxDefaultProfile", [(0, 8)])}}


def test_store_clears_by_id_or_by_criteria() -> None:
    store = ProfileStore()
    store.install(p16(0, 1, "ChargePointMaxProfile", [(0, 32)]))
    store.install(p16(1, 2, "TxDefaultProfile", [(0, 16)], stack=1))
    store.install(p16(2, 3, "TxDefaultProfile", [(0, 16)], stack=2))

    assert store.clear(profile_id=9) == []
    assert [p.profile_id for p in store.clear(profile_id=1)] == [1]
    assert [p.profile_id for p in store.clear(purpose="TxDefaultProfile", stack_level=2)] == [3]
    assert store.clear(unit_id=2) == []
    assert [p.profile_id for p in store.clear()] == [2]
    assert len(store) == 0


def test_store_applies_tx_profiles_only_to_their_running_transaction() -> None:
    store = ProfileStore()
    store.install(p16(0, 1, "ChargePointMaxProfile", [(0, 32)]))
    store.install(p16(0, 2, "TxDefaultProfile", [(0, 16)]))
    store.install(p16(1, 3, "TxProfile", [(0, 10)], transactionId=100))
    store.install(p16(2, 4, "TxDefaultProfile", [(0, 12)]))

    def ids(unit: int, tx: int | None) -> list[int]:
        return sorted(p.profile_id for p in store.applicable(unit, tx))

    assert ids(1, 100) == [1, 2, 3]
    assert ids(1, 101) == [1, 2]
    assert ids(1, None) == [1, 2]
    assert ids(2, None) == [1, 2, 4]
    assert ids(0, None) == [1, 2]

    store.transaction_ended(1, 100)
    assert ids(1, 100) == [1, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01T12:00:00Z", NOW),
        ("2025-01-01T12:00:00.5Z", NOW + timedelta(milliseconds=500)),
        ("2025-01-01T13:00:00+01:00", NOW),
        ("2025-01-01T12:00:00", NOW),
    ],
)
def test_ocpp_datetimes_are_read_as_utc(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected
