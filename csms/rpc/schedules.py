"""OCPP ``ChargingSchedule`` JSON, spelled the same in 1.6 and 2.0.1 (``chargingRateUnit``,
``chargingSchedulePeriod`` of ``startPeriod``/``limit``/``numberPhases``, ``duration``,
``startSchedule``, ``minChargingRate``). Limits carry one decimal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from csms.clock import format_ocpp_datetime
from csms.domain.commands import RateUnit, Schedule, SchedulePeriod, tenths

Payload = dict[str, Any]


def schedule_payload(schedule: Schedule) -> Payload:
    out: Payload = {
        "chargingRateUnit": schedule.rate_unit.value,
        "chargingSchedulePeriod": [
            {
                "startPeriod": p.start_s,
                "limit": float(tenths(p.limit)),
                **({"numberPhases": p.phases} if p.phases is not None else {}),
            }
            for p in schedule.periods
        ],
    }
    if schedule.duration_s is not None:
        out["duration"] = schedule.duration_s
    if schedule.starts_at is not None:
        out["startSchedule"] = format_ocpp_datetime(schedule.starts_at)
    if schedule.min_rate is not None:
        out["minChargingRate"] = float(tenths(schedule.min_rate))
    return out


def read_schedule(raw: Payload) -> Schedule:
    """A schema-valid schedule as the domain's (limits rounded to one decimal)."""
    min_rate = raw.get("minChargingRate")
    duration = raw.get("duration")
    return Schedule(
        rate_unit=RateUnit(raw["chargingRateUnit"]),
        periods=tuple(
            SchedulePeriod(
                start_s=int(p["startPeriod"]),
                limit=tenths(Decimal(str(p["limit"]))),
                phases=p.get("numberPhases"),
            )
            for p in raw["chargingSchedulePeriod"]
        ),
        duration_s=int(duration) if duration is not None else None,
        min_rate=tenths(Decimal(str(min_rate))) if min_rate is not None else None,
    )
