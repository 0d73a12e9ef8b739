"""OCPI charging profiles <-> the central system's charging limits (reference 4.8). Pure.

- A received ``ChargingProfile`` becomes the ``Schedule`` of a ``TxProfile``
  (``to_schedule``): ``start_date_time`` -> absolute start (else relative to the transaction),
  ``W``/``A`` kept as they are (``A`` is per phase, ``W`` the total), limits with one decimal.
- The charger's answer becomes the OCPI result posted to the eMSP's ``response_url``:

  ============================================  ===========  =============  ============
  charger answer (``CommandStatus``)            PUT (set)    GET (active)   DELETE (clear)
  ============================================  ===========  =============  ============
  ``Accepted``                                  ACCEPTED     ACCEPTED +     ACCEPTED
                                                             profile
  ``Unknown`` (no such profile)                 REJECTED     REJECTED       UNKNOWN
  ``Rejected``, ``NotSupported`` (answer or     REJECTED     REJECTED       REJECTED
  CallError), ``Failed`` (other CallError or
  unusable answer), ``Timeout``, ``Offline``
  ============================================  ===========  =============  ============

  OCPI has no TIMEOUT or NOT_SUPPORTED result in this module: a charger that does not answer
  in time, cannot do it or went away did not apply the request, so it is REJECTED.
- A composite schedule becomes the ``ActiveChargingProfile`` (``to_active_profile``):
  ``start_date_time`` <- ``scheduleStart``, periods, unit, duration and minimum rate copied.
"""

from __future__ import annotations

from pydantic import ValidationError

from bridge.ocpi.chargingprofiles import (
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    ChargingProfile,
    ChargingProfilePeriod,
    ChargingProfileResult,
    ChargingProfileResultType,
    ChargingRateUnit,
    ClearProfileResult,
    one_decimal,
)
from csms.domain.commands import (
    ChargingLimit,
    CommandAnswer,
    CommandStatus,
    CompositeSchedule,
    RateUnit,
    Schedule,
    SchedulePeriod,
)

__all__ = [
    "to_active_profile",
    "to_active_result",
    "to_charging_limit",
    "to_clear_result",
    "to_ocpi_profile",
    "to_rate_unit",
    "to_schedule",
    "to_set_result",
]


def to_rate_unit(unit: ChargingRateUnit) -> RateUnit:
    return RateUnit(unit.value)


def to_schedule(profile: ChargingProfile) -> Schedule:
    """The OCPP schedule of an OCPI profile (limits rounded half up to one decimal)."""
    return Schedule(
        rate_unit=to_rate_unit(profile.charging_rate_unit),
        periods=tuple(
            SchedulePeriod(start_s=p.start_period, limit=one_decimal(p.limit))
            for p in profile.charging_profile_period
        ),
        starts_at=profile.start_date_time,
        duration_s=profile.duration,
        min_rate=(
            one_decimal(profile.min_charging_rate)
            if profile.min_charging_rate is not None
            else None
        ),
    )


def to_charging_limit(
    profile: ChargingProfile, *, profile_id: int, stack_level: int, transaction_ref: str
) -> ChargingLimit:
    """The session's ``TxProfile``: our profile id for the session, our stack level."""
    return ChargingLimit(
        profile_id=profile_id,
        stack_level=stack_level,
        transaction_ref=transaction_ref,
        schedule=to_schedule(profile),
    )


def to_ocpi_profile(schedule: Schedule) -> ChargingProfile:
    """An OCPP schedule as an OCPI profile (``ValidationError`` if it cannot be one, e.g. its
    first period does not start at 0)."""
    return ChargingProfile(
        start_date_time=schedule.starts_at,
        duration=schedule.duration_s,
        charging_rate_unit=ChargingRateUnit(schedule.rate_unit.value),
        min_charging_rate=schedule.min_rate,
        charging_profile_period=[
            ChargingProfilePeriod(start_period=p.start_s, limit=p.limit) for p in schedule.periods
        ],
    )


def to_active_profile(composite: CompositeSchedule) -> ActiveChargingProfile:
    """What the charger will allow from ``scheduleStart`` on; periods relative to it."""
    schedule = composite.schedule
    return ActiveChargingProfile(
        start_date_time=composite.starts_at,
        charging_profile=ChargingProfile(
            duration=schedule.duration_s,
            charging_rate_unit=ChargingRateUnit(schedule.rate_unit.value),
            min_charging_rate=schedule.min_rate,
            charging_profile_period=[
                ChargingProfilePeriod(start_period=p.start_s, limit=p.limit)
                for p in schedule.periods
            ],
        ),
    )


def to_set_result(answer: CommandAnswer) -> ChargingProfileResult:
    accepted = answer.status is CommandStatus.ACCEPTED
    return ChargingProfileResult(
        result=ChargingProfileResultType.ACCEPTED
        if accepted
        else ChargingProfileResultType.REJECTED
    )


def to_clear_result(answer: CommandAnswer) -> ClearProfileResult:
    match answer.status:
        case CommandStatus.ACCEPTED:
            result = ChargingProfileResultType.ACCEPTED
        case CommandStatus.UNKNOWN:
            result = ChargingProfileResultType.UNKNOWN
        case _:
            result = ChargingProfileResultType.REJECTED
    return ClearProfileResult(result=result)


def to_active_result(answer: CommandAnswer) -> tuple[ActiveChargingProfileResult, str | None]:
    """The result, and why an ``Accepted`` answer is still REJECTED (no schedule, or one OCPI
    cannot carry), else ``None``."""
    rejected = ActiveChargingProfileResult(result=ChargingProfileResultType.REJECTED)
    if answer.status is not CommandStatus.ACCEPTED:
        return rejected, None
    if answer.schedule is None:
        return rejected, "charger accepted without a composite schedule"
    try:
        profile = to_active_profile(answer.schedule)
    except ValidationError as exc:
        return rejected, f"composite schedule is not a valid OCPI profile: {exc.errors()[0]['msg']}"
    return ActiveChargingProfileResult(
        result=ChargingProfileResultType.ACCEPTED, profile=profile
    ), None
