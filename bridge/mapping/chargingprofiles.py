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
- What the CPO PUTs to the eMSP when the active profile of its session changes
  (``to_active_update``): the composite schedule as above; when the charger has none any more
  (``Rejected``, ``Unknown`` or no period) ``NoActiveProfile``, and the EVSE maximum is sent
  instead (``to_evse_maximum``: the connector's ``max_electric_power``, else
  ``max_voltage`` x ``max_amperage`` x phases, in W, one period from now, no end); a charger
  offline, silent or failing ``Unknowable(retry=True)``, one that cannot do it (NotSupported)
  or answers nonsense ``Unknowable(retry=False)``.
- Rate limit (``retry_after_s``): an eMSP request of one kind (PUT, GET, DELETE) for one
  session within ``min_interval_s`` of the previous accepted one of that kind is ``TOO_OFTEN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

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
from bridge.ocpi.locations import Connector, PowerType
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
    "NoActiveProfile",
    "Unknowable",
    "retry_after_s",
    "to_active_profile",
    "to_active_result",
    "to_active_update",
    "to_charging_limit",
    "to_clear_result",
    "to_evse_maximum",
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


# --- ActiveChargingProfile updates to the eMSP ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NoActiveProfile:
    """The charger limits the EVSE by no profile any more: the EVSE maximum applies."""

    detail: str


@dataclass(frozen=True, kw_only=True)
class Unknowable:
    """The charger did not say what it allows; ``retry`` when asking again may help."""

    detail: str
    retry: bool


_RETRY = frozenset({CommandStatus.OFFLINE, CommandStatus.TIMEOUT, CommandStatus.FAILED})


def to_active_update(
    answer: CommandAnswer,
) -> ActiveChargingProfile | NoActiveProfile | Unknowable:
    """What to tell the eMSP after asking the charger its composite schedule."""
    detail = f"{answer.status.value}: {answer.detail}" if answer.detail else answer.status.value
    match answer.status:
        case CommandStatus.ACCEPTED:
            if answer.schedule is None:
                return Unknowable(detail="accepted without a composite schedule", retry=False)
            if not answer.schedule.schedule.periods:
                return NoActiveProfile(detail="composite schedule without periods")
            try:
                return to_active_profile(answer.schedule)
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"]
                return Unknowable(
                    detail=f"composite schedule is not a valid OCPI profile: {problem}",
                    retry=False,
                )
        case CommandStatus.REJECTED | CommandStatus.UNKNOWN:
            return NoActiveProfile(detail=detail)
        case status if status in _RETRY:
            return Unknowable(detail=detail, retry=True)
        case _:
            return Unknowable(detail=detail, retry=False)


_PHASES = {
    PowerType.AC_1_PHASE: 1,
    PowerType.AC_2_PHASE: 2,
    PowerType.AC_2_PHASE_SPLIT: 2,
    PowerType.AC_3_PHASE: 3,
    PowerType.DC: 1,
}


def to_evse_maximum(connector: Connector, at: datetime) -> ActiveChargingProfile:
    """The connector's maximum power as an ActiveChargingProfile computed ``at``: one period
    without end, in W (``max_electric_power``, else volts x amperes x phases; OCPI gives
    ``max_voltage`` line to neutral for AC_3_PHASE)."""
    if connector.max_electric_power is not None:
        power_w = Decimal(connector.max_electric_power)
    else:
        phases = _PHASES[connector.power_type]
        power_w = Decimal(connector.max_voltage) * Decimal(connector.max_amperage) * phases
    return ActiveChargingProfile(
        start_date_time=at,
        charging_profile=ChargingProfile(
            charging_rate_unit=ChargingRateUnit.W,
            charging_profile_period=[ChargingProfilePeriod(start_period=0, limit=power_w)],
        ),
    )


def retry_after_s(
    last_accepted_at: datetime | None, now: datetime, min_interval_s: float
) -> float | None:
    """Seconds before a new request of the same kind for the same session may be accepted,
    ``None`` when it may be now (no previous one, the interval is 0 or has passed). A
    previous request "in the future" (the clock went back) counts from now."""
    if last_accepted_at is None or min_interval_s <= 0:
        return None
    elapsed = max(0.0, (now - last_accepted_at).total_seconds())
    if elapsed >= min_interval_s:
        return None
    return min_interval_s - elapsed
