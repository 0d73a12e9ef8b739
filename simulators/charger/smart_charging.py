"""Charging profiles of a simulated charger and the composite schedule computed from them.

Pure (no I/O, the clock is always passed in). Profiles are kept as received on the wire (the
camelCase OCPP structures of 1.6 ``csChargingProfiles`` or 2.0.1 ``chargingProfile``) and parsed
into ``ChargingProfile``; "unit" below means a 1.6 connector or a 2.0.1 EVSE, 0 being the
whole charger.

Composite schedule (``composite_schedule``), per instant of the requested window:

* per purpose, the active profile with the highest ``stackLevel`` is chosen (a tie goes to the
  profile installed on the unit itself rather than on unit 0); a ``TxProfile`` replaces the
  ``TxDefaultProfile``;
* the limit is the minimum of the chosen profiles' limits (the Tx/TxDefault one, the charger
  maximum and, in 2.0.1, the external constraints), converted to one unit;
* where no profile is active, the charger's physical maximum (``max_power_w``) applies.

Periods are merged when consecutive limits are equal; limits are rounded down to one decimal.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from simulators.charger.common import format_timestamp

TX_PROFILE = "TxProfile"
TX_DEFAULT_PROFILE = "TxDefaultProfile"
MAX_PROFILES = frozenset({"ChargePointMaxProfile", "ChargingStationMaxProfile"})
EXTERNAL_PROFILE = "ChargingStationExternalConstraints"
RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}

VOLTAGE_V = Decimal(230)
DEFAULT_PHASES = 3
DEFAULT_MAX_POWER_W = Decimal(22000)
ONE_DECIMAL = Decimal("0.1")


def parse_datetime(text: str) -> datetime:
    """An OCPP date-time (``Z`` or an offset; none means UTC) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _optional_datetime(value: Any) -> datetime | None:
    return None if value is None else parse_datetime(str(value))


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class SchedulePeriod:
    start: int  # seconds from the start of the schedule
    limit: Decimal
    number_phases: int | None = None


@dataclass(frozen=True)
class Schedule:
    unit: str  # "A" (per phase) or "W"
    periods: tuple[SchedulePeriod, ...]
    duration: int | None = None  # seconds; None = the last period never ends
    start: datetime | None = None  # startSchedule

    @classmethod
    def from_ocpp(cls, raw: dict[str, Any]) -> Schedule:
        periods = sorted(
            (
                SchedulePeriod(
                    int(p["startPeriod"]),
                    _decimal(p["limit"]),
                    None if p.get("numberPhases") is None else int(p["numberPhases"]),
                )
                for p in raw["chargingSchedulePeriod"]
            ),
            key=lambda period: period.start,
        )
        duration = raw.get("duration")
        return cls(
            unit=str(raw["chargingRateUnit"]),
            periods=tuple(periods),
            duration=None if duration is None else int(duration),
            start=_optional_datetime(raw.get("startSchedule")),
        )


@dataclass(frozen=True)
class ChargingProfile:
    """One installed profile, parsed; ``raw`` is the structure as received."""

    profile_id: int
    unit_id: int
    stack_level: int
    purpose: str
    kind: str  # Absolute, Recurring or Relative
    schedule: Schedule
    raw: dict[str, Any] = field(compare=False)
    installed_at: datetime
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | str | None = None

    @classmethod
    def from_ocpp16(cls, raw: dict[str, Any], connector_id: int, now: datetime) -> ChargingProfile:
        """A 1.6 ``csChargingProfiles`` installed on ``connector_id``."""
        return cls._parse(
            raw, int(raw["chargingProfileId"]), connector_id, now, raw["chargingSchedule"]
        )

    @classmethod
    def from_ocpp201(cls, raw: dict[str, Any], evse_id: int, now: datetime) -> ChargingProfile:
        """A 2.0.1 ``chargingProfile`` installed on ``evse_id`` (its first schedule is used)."""
        return cls._parse(raw, int(raw["id"]), evse_id, now, raw["chargingSchedule"][0])

    @classmethod
    def _parse(
        cls,
        raw: dict[str, Any],
        profile_id: int,
        unit_id: int,
        now: datetime,
        schedule: dict[str, Any],
    ) -> ChargingProfile:
        return cls(
            profile_id=profile_id,
            unit_id=unit_id,
            stack_level=int(raw["stackLevel"]),
            purpose=str(raw["chargingProfilePurpose"]),
            kind=str(raw["chargingProfileKind"]),
            schedule=Schedule.from_ocpp(schedule),
            raw=raw,
            installed_at=now,
            recurrency=raw.get("recurrencyKind"),
            valid_from=_optional_datetime(raw.get("validFrom")),
            valid_to=_optional_datetime(raw.get("validTo")),
            transaction_id=raw.get("transactionId"),
        )

    def with_transaction(self, transaction_id: int | str) -> ChargingProfile:
        """This profile bound to ``transaction_id`` (a remote start's TxProfile)."""
        return dataclasses.replace(self, transaction_id=transaction_id)

    # --- evaluation ----------------------------------------------------------------------

    def schedule_start(self, at: datetime, tx_start: datetime | None) -> datetime | None:
        """When the schedule (or its current recurrence) started, as seen at ``at``; a Relative
        schedule starts with the transaction (``tx_start``), None without one."""
        if self.kind == "Relative":
            return tx_start
        if self.kind == "Recurring":
            base = self.schedule.start or self.valid_from
            if base is None or at < base:
                return None
            period = RECURRENCE.get(self.recurrency or "Daily", RECURRENCE["Daily"])
            return base + period * ((at - base) // period)
        return self.schedule.start or self.valid_from or self.installed_at

    def limit_at(
        self, at: datetime, tx_start: datetime | None
    ) -> tuple[Decimal, int | None] | None:
        """(limit, numberPhases) in force at ``at``, or None when the profile is inactive."""
        if (self.valid_from is not None and at < self.valid_from) or (
            self.valid_to is not None and at >= self.valid_to
        ):
            return None
        start = self.schedule_start(at, tx_start)
        if start is None or at < start:
            return None
        elapsed = (at - start).total_seconds()
        if self.schedule.duration is not None and elapsed >= self.schedule.duration:
            return None
        current = None
        for period in self.schedule.periods:
            if period.start <= elapsed:
                current = period
        return None if current is None else (current.limit, current.number_phases)

    def boundaries(
        self, window_start: datetime, window_end: datetime, tx_start: datetime | None
    ) -> list[datetime]:
        """Instants inside the window at which this profile's limit may change."""
        points = [p for p in (self.valid_from, self.valid_to) if p is not None]
        starts: list[datetime] = []
        if self.kind == "Recurring":
            base = self.schedule.start or self.valid_from
            period = RECURRENCE.get(self.recurrency or "Daily", RECURRENCE["Daily"])
            if base is not None:
                first = max(0, (window_start - base) // period)
                last = (window_end - base) // period
                starts = [base + period * k for k in range(first, last + 1)]
        else:
            fixed = self.schedule_start(window_start, tx_start)
            starts = [] if fixed is None else [fixed]
        for start in starts:
            points.extend(start + timedelta(seconds=p.start) for p in self.schedule.periods)
            if self.schedule.duration is not None:
                points.append(start + timedelta(seconds=self.schedule.duration))
        return [p for p in points if window_start <= p < window_end]


EXTERNAL_SOURCES = ("EMS", "Other", "SO", "CSO")  # 2.0.1 ChargingLimitSourceEnumType


def external_level(source: str) -> int:
    """The ``stackLevel`` of an external limit of ``source`` (one per source)."""
    return EXTERNAL_SOURCES.index(source) if source in EXTERNAL_SOURCES else len(EXTERNAL_SOURCES)


def external_constraint(
    schedule: dict[str, Any], *, unit_id: int, source: str, now: datetime
) -> ChargingProfile:
    """An external limit the station reports (2.0.1 NotifyChargingLimit: ``schedule`` is a
    camelCase ChargingScheduleType) as a ``ChargingStationExternalConstraints`` profile on
    ``unit_id``: one per unit and source (its id and ``stackLevel`` follow from them, so a new
    limit of the same source replaces the previous one), Absolute from ``startSchedule`` or
    ``now`` (whole seconds). ``raw`` also keeps the ``chargingLimitSource``."""
    level = external_level(source)
    raw = {
        "id": -(unit_id * (len(EXTERNAL_SOURCES) + 1) + level + 1),
        "stackLevel": level,
        "chargingProfilePurpose": EXTERNAL_PROFILE,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [schedule],
        "chargingLimitSource": source,
    }
    return ChargingProfile.from_ocpp201(raw, unit_id, now.replace(microsecond=0))


class ProfileStore:
    """Installed profiles, by id (an id is unique on the whole charger)."""

    def __init__(self) -> None:
        self._profiles: dict[int, ChargingProfile] = {}

    def __len__(self) -> int:
        return len(self._profiles)

    @property
    def profiles(self) -> list[ChargingProfile]:
        return list(self._profiles.values())

    def install(self, profile: ChargingProfile) -> list[ChargingProfile]:
        """Add ``profile``; a profile with the same id, or with the same unit, purpose and
        stackLevel, is replaced. Returns the replaced profiles."""
        replaced = [
            p
            for p in self._profiles.values()
            if p.profile_id == profile.profile_id
            or (
                p.unit_id == profile.unit_id
                and p.purpose == profile.purpose
                and p.stack_level == profile.stack_level
            )
        ]
        for old in replaced:
            del self._profiles[old.profile_id]
        self._profiles[profile.profile_id] = profile
        return replaced

    def clear(
        self,
        *,
        profile_id: int | None = None,
        unit_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> list[ChargingProfile]:
        """Remove the profile ``profile_id`` (other criteria ignored) or every profile matching
        all given criteria (none given: all). Returns the removed profiles."""
        if profile_id is not None:
            removed = self._profiles.pop(profile_id, None)
            return [] if removed is None else [removed]
        matching = [
            p
            for p in self._profiles.values()
            if (unit_id is None or p.unit_id == unit_id)
            and (purpose is None or p.purpose == purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        for profile in matching:
            del self._profiles[profile.profile_id]
        return matching

    def transaction_ended(self, unit_id: int | None, transaction_id: int | str) -> None:
        """Drop the TxProfiles of an ended transaction (bound to it, or unbound on its unit)."""
        for profile in list(self._profiles.values()):
            if profile.purpose != TX_PROFILE:
                continue
            bound = profile.transaction_id
            if bound == transaction_id or (bound is None and profile.unit_id == unit_id):
                del self._profiles[profile.profile_id]

    def applicable(self, unit_id: int, transaction_id: int | str | None) -> list[ChargingProfile]:
        """Profiles that limit ``unit_id``: its own and those of unit 0; a TxProfile only while
        its transaction (``transaction_id``, the one running on the unit) runs."""
        result = []
        for profile in self._profiles.values():
            if profile.unit_id not in (0, unit_id):
                continue
            if profile.purpose == TX_PROFILE:
                if unit_id == 0 or transaction_id is None or profile.unit_id != unit_id:
                    continue
                if profile.transaction_id not in (None, transaction_id):
                    continue
            elif unit_id == 0 and profile.unit_id != 0:
                continue
            result.append(profile)
        return result

    def by_unit(self) -> dict[int, dict[int, dict[str, Any]]]:
        """{unit id: {profile id: profile as received}}."""
        units: dict[int, dict[int, dict[str, Any]]] = {}
        for profile in self._profiles.values():
            units.setdefault(profile.unit_id, {})[profile.profile_id] = profile.raw
        return units


@dataclass(frozen=True)
class CompositeSchedule:
    start: datetime
    duration: int
    unit: str
    periods: tuple[tuple[int, Decimal], ...]  # (startPeriod, limit)

    def _periods(self) -> list[dict[str, Any]]:
        # Floats with one decimal: what the ocpp library's Decimal-aware 1.6 validation expects.
        return [{"startPeriod": start, "limit": float(limit)} for start, limit in self.periods]

    def to_ocpp16(self, connector_id: int) -> dict[str, Any]:
        """Payload of an accepted 1.6 GetCompositeSchedule.conf."""
        start = format_timestamp(self.start)
        return {
            "status": "Accepted",
            "connectorId": connector_id,
            "scheduleStart": start,
            "chargingSchedule": {
                "duration": self.duration,
                "startSchedule": start,
                "chargingRateUnit": self.unit,
                "chargingSchedulePeriod": self._periods(),
            },
        }

    def to_ocpp201(self, evse_id: int) -> dict[str, Any]:
        """The ``schedule`` (CompositeScheduleType) of a 2.0.1 GetCompositeScheduleResponse."""
        return {
            "evseId": evse_id,
            "duration": self.duration,
            "scheduleStart": format_timestamp(self.start),
            "chargingRateUnit": self.unit,
            "chargingSchedulePeriod": self._periods(),
        }


def _convert(limit: Decimal, unit: str, phases: int | None, target: str) -> Decimal:
    if unit == target:
        return limit
    factor = VOLTAGE_V * (phases or DEFAULT_PHASES)
    return limit * factor if target == "W" else limit / factor


Choice = tuple[ChargingProfile, Decimal, int | None]


def _chosen(
    profiles: Iterable[ChargingProfile], at: datetime, tx_start: datetime | None
) -> list[Choice]:
    """The winning profile of each purpose group at ``at``, Tx/TxDefault first."""
    best: dict[str, Choice] = {}
    for profile in profiles:
        found = profile.limit_at(at, tx_start)
        if found is None:
            continue
        group = "tx" if profile.purpose in (TX_PROFILE, TX_DEFAULT_PROFILE) else profile.purpose
        rank = (
            profile.purpose == TX_PROFILE,
            profile.stack_level,
            profile.unit_id != 0,
        )
        current = best.get(group)
        if current is None or rank > (
            current[0].purpose == TX_PROFILE,
            current[0].stack_level,
            current[0].unit_id != 0,
        ):
            best[group] = (profile, *found)
    return sorted(
        best.values(), key=lambda choice: choice[0].purpose not in (TX_PROFILE, TX_DEFAULT_PROFILE)
    )


def composite_schedule(
    profiles: list[ChargingProfile],
    *,
    start: datetime,
    duration: int,
    unit: str | None = None,
    tx_start: datetime | None = None,
    max_power_w: Decimal = DEFAULT_MAX_POWER_W,
) -> CompositeSchedule | None:
    """The composite schedule of ``profiles`` (those applicable to one unit) over
    ``[start, start + duration)``, in ``unit`` (default: the unit of the winning Tx/TxDefault
    profile, else of the first profile that applies); None when no profile is active in the
    window. ``tx_start`` anchors Relative profiles (default: ``start``); it is taken in whole
    seconds, like OCPP's schedule periods."""
    tx_start = start if tx_start is None else tx_start.replace(microsecond=0)
    end = start + timedelta(seconds=duration)
    offsets = {0}
    for profile in profiles:
        for moment in profile.boundaries(start, end, tx_start):
            offsets.add(math.ceil((moment - start).total_seconds()))
    points = [
        (offset, _chosen(profiles, start + timedelta(seconds=offset), tx_start))
        for offset in sorted(o for o in offsets if 0 <= o < max(duration, 1))
    ]
    first = next((choices[0][0] for _, choices in points if choices), None)
    if first is None:
        return None
    target = unit or first.schedule.unit
    fallback = _convert(max_power_w, "W", DEFAULT_PHASES, target)
    periods: list[tuple[int, Decimal]] = []
    for offset, choices in points:
        limits = [_convert(limit, p.schedule.unit, phases, target) for p, limit, phases in choices]
        limit = (min(limits) if limits else fallback).quantize(ONE_DECIMAL, rounding=ROUND_DOWN)
        if not periods or periods[-1][1] != limit:
            periods.append((offset, limit))
    return CompositeSchedule(start=start, duration=duration, unit=target, periods=tuple(periods))
