"""The tariff engine: prices one charging session with an OCPI 2.2.1 Tariff (reference 3.4,
4.4 and 4.5). Pure: no I/O, no database, no clock; money, energy and time are ``Decimal``
(computed in a private decimal context of 34 digits, so the caller's context does not matter)
and only the final figures are rounded, on request (``Costing.rounded``).

How a session is priced:

1. Periods (reference 4.4) start at the session start, every state change and every instant a
   restriction of the tariff can flip: local ``start_time``/``end_time`` and local midnight in
   the Location's time zone, every UTC-offset change (DST), ``min_kwh``/``max_kwh`` reached on
   the interpolated energy curve, power and current thresholds crossed, and ``min_duration``/
   ``max_duration``. Restrictions are evaluated at each period's midpoint, so cutting a period
   further never changes a result.
2. Per period and dimension the first element of the list that has a component of that
   dimension and whose restrictions all hold is active; none means that dimension is free
   (reference 3.4, 4.5 item 3). ``TIME`` prices CHARGING periods, ``PARKING_TIME`` PARKING
   periods; RESERVED periods are priced only by elements with a ``reservation`` restriction,
   which never price anything else (``RESERVATION_EXPIRES`` elements only when the reservation
   expired unused).
3. ``step_size`` is applied once per session on totals, rounding up (reference 4.5 item 4).
4. ``FLAT`` components are charged once per session each (reference 4.5 item 5).
5. VAT per component; ``min_price``/``max_price`` clamp ``total_cost`` (reference 4.5 items
   6-7).

Resolved ambiguities (design section 5 and reference section 7):

- States: ``CHARGING`` (the vehicle takes or requests energy; OCPP SuspendedEVSE counts here)
  bills ``TIME``; ``PARKING`` (the vehicle requests no power) bills ``PARKING_TIME``;
  ``RESERVED`` bills ``RESERVATION_TIME``. State changes must be in chronological order; at
  equal instants the later one in the tuple wins.
- Energy: ``energy_wh`` is relative to the session start: a meter point at ``start`` must read
  0 and negative readings are refused; a reading below an earlier one is clamped to it. Points
  outside ``[start, end]`` are ignored (reference 4.4). Points at the same instant merge
  (highest energy, highest power, highest current). Energy is linear between points and flat
  after the last one.
- Power: when any point carries ``power_w``, power is linear between those points and held
  before the first and after the last; otherwise it is the average between consecutive meter
  points (energy delta / time delta), 0 after the last point. Current is linear between
  points carrying ``current_a`` (held at the ends) and unknown without any: a ``min_current``/
  ``max_current`` restriction never holds while the current is unknown.
- Local time (reference 1.5, 3.4): restrictions read the Location's wall clock. A time of day
  that does not exist (spring forward) starts or ends its window at the DST change; a time that
  occurs twice (fall back) is crossed twice, so a window such as 02:00-03:00 applies to both
  occurrences. ``start_time``/``end_time`` and ``day_of_week`` are AND-ed at the same moment:
  the part after midnight of a window wrapping midnight belongs to the next day's weekday.
- A session of zero duration has one zero-length period evaluated at its start (so start fees
  apply).
- ``step_size``: ENERGY (Wh) is rounded on the total energy of the periods with an active
  ENERGY component, with the step of the last of them, and the difference is billed in that
  last period at its price. Charging and parking time: when both ``TIME`` and
  ``PARKING_TIME`` components are active somewhere in the session, only the total parking time
  is rounded, otherwise the one that is used; reserved time is rounded on its own total.
  ``step_size`` 0 means no rounding. Billed volumes are reported next to the measured ones;
  CdrDimensions carry the measured volumes.
- ``FLAT``: each distinct component (element index, component index) that is active in any
  period is charged once. A FLAT in an element with a ``reservation`` restriction is
  reservation cost; in an element that prices ``PARKING_TIME`` but neither ``ENERGY`` nor
  ``TIME`` it is parking cost; otherwise fixed cost. FLAT selection does not look at the
  state otherwise (the spec ties it to restrictions only).
- VAT: ``incl = excl * (1 + vat / 100)`` per component; ``vat`` omitted: ``incl = excl``.
- ``min_price``/``max_price`` clamp only ``total_cost`` (excl and incl separately); the
  category totals stay unclamped, so after clamping they no longer add up to ``total_cost``.
  A bound without ``incl_vat`` is turned into one at the session's own VAT ratio
  (``incl / excl``, 1 when ``excl`` is 0).
- Money is ``Money`` (this module's frozen excl/incl pair, both always present); ``to_price``
  converts to ``bridge.ocpi.numbers.Price`` for a CDR.
- Resolution: interpolated instants (threshold crossings) are placed on a microsecond grid,
  interpolated energy on a micro-Wh grid (the energy at a ``min_kwh``/``max_kwh`` boundary is
  the threshold itself) and power/current on a 1e-9 grid. Amounts are kept as exact
  numerators and divided once per reported figure, so a total that is exactly on a half cent
  rounds as it should and describing the same curve with more meter points changes nothing.
- A consequence of the spec's step_size rule, kept as is: when elements of one dimension
  differ in step_size or price, a longer session or more energy can cost less (the rounding
  moves to the last element used, or parking appearing stops the charging time from being
  rounded).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo

from bridge.ocpi.numbers import Price
from bridge.ocpi.sessions import CdrDimension, CdrDimensionType
from bridge.ocpi.tariffs import (
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffRestrictions,
    TariffType,
)

__all__ = [
    "ActiveComponent",
    "ChargeState",
    "Costing",
    "MeterPoint",
    "Money",
    "PricedPeriod",
    "SessionUsage",
    "StateChange",
    "TariffEngineError",
    "minor_unit",
    "price_session",
    "round_money",
    "select_tariff",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_THOUSAND = Decimal(1000)
_SECONDS_PER_HOUR = Decimal(3600)
_MICRO = Decimal(1_000_000)
_PRECISION = 34
# Interpolated values are snapped to fixed grids so that volumes are exact decimals and the
# same curve gives the same figures whichever meter points describe it.
_TIME_GRID = Decimal("0.000001")  # s: an interpolated instant, to the microsecond
_ENERGY_GRID = Decimal("0.000001")  # Wh
_SIGNAL_GRID = Decimal("0.000000001")  # W or A


def _snap(value: Decimal, grid: Decimal) -> Decimal:
    return value.quantize(grid, rounding=ROUND_HALF_EVEN)


class TariffEngineError(ValueError):
    """The usage or the request given to the engine is invalid (the message says which)."""


# --- Input ----------------------------------------------------------------------------------


class ChargeState(StrEnum):
    CHARGING = "charging"  # takes/requests energy (1.6 and 2.0.1 Charging, SuspendedEVSE): TIME
    PARKING = "parking"  # requests no power (SuspendedEV, EVConnected after charging)
    RESERVED = "reserved"  # reserved, not yet in use: RESERVATION_TIME


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterPoint:
    at: datetime  # aware
    energy_wh: int  # cumulative session energy at ``at`` (>= 0; regressions are clamped)
    power_w: Decimal | None = None  # measured active import power, if reported
    current_a: Decimal | None = None  # measured import current, summed over phases


@dataclass(frozen=True, kw_only=True, slots=True)
class StateChange:
    at: datetime
    state: ChargeState


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionUsage:
    start: datetime
    end: datetime  # for a running session: "now"
    states: tuple[StateChange, ...]  # first at (or before) start; later ones change the state
    meter: tuple[MeterPoint, ...] = ()  # any order; energy at start is 0; linear in between
    reservation_expired: bool = False  # the reservation ended unused


# --- Output ---------------------------------------------------------------------------------

_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND"}
    | {"VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_FOUR_DECIMAL_CURRENCIES = frozenset({"CLF", "UYW"})


def minor_unit(currency: str) -> int:
    """Decimals of the currency's minor unit (ISO 4217): 0 for JPY, KRW...; 3 for BHD, KWD,
    OMR, JOD, TND...; 4 for CLF, UYW; 2 otherwise."""
    code = currency.upper()
    if code in _ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in _THREE_DECIMAL_CURRENCIES:
        return 3
    if code in _FOUR_DECIMAL_CURRENCIES:
        return 4
    return 2


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, kw_only=True, slots=True)
class Money:
    """An amount excluding and including VAT (both always known to the engine)."""

    excl_vat: Decimal
    incl_vat: Decimal

    @classmethod
    def zero(cls) -> Money:
        return cls(excl_vat=_ZERO, incl_vat=_ZERO)

    def __add__(self, other: Money) -> Money:
        return Money(
            excl_vat=self.excl_vat + other.excl_vat, incl_vat=self.incl_vat + other.incl_vat
        )

    def rounded(self, currency: str) -> Money:
        return Money(
            excl_vat=round_money(self.excl_vat, currency),
            incl_vat=round_money(self.incl_vat, currency),
        )

    def to_price(self) -> Price:
        return Price(excl_vat=self.excl_vat, incl_vat=self.incl_vat)


@dataclass(frozen=True, kw_only=True, slots=True)
class ActiveComponent:
    """The price component chosen for a dimension: its element and position in the tariff."""

    element_index: int
    component_index: int
    component: PriceComponent


@dataclass(frozen=True, kw_only=True, slots=True)
class PricedPeriod:
    """One period of constant state and constant active elements. ``components`` maps each
    priced dimension (``TIME`` also for reserved time) to the component chosen. Measured
    volumes are ``energy_kwh``/``duration_h``; ``billed_*`` include the step_size rounding
    difference when it lands in this period. ``time_cost`` is TIME, PARKING_TIME or
    reservation TIME cost according to ``state``; ``flat_cost`` is the FLAT components first
    active in this period."""

    start: datetime
    end: datetime
    state: ChargeState
    energy_kwh: Decimal
    duration_h: Decimal
    min_power_kw: Decimal | None
    max_power_kw: Decimal | None
    min_current_a: Decimal | None
    max_current_a: Decimal | None
    tariff_id: str
    dimensions: tuple[CdrDimension, ...]
    components: Mapping[TariffDimensionType, ActiveComponent]
    billed_energy_kwh: Decimal
    billed_duration_h: Decimal
    energy_cost: Money
    time_cost: Money
    flat_cost: Money


@dataclass(frozen=True, kw_only=True, slots=True)
class Costing:
    """Exact (unrounded) result of ``price_session``; ``rounded()`` gives the billable figures.
    Volumes are measured (``total_*``) or billed after step_size (``billed_*``). ``total_cost``
    is the sum of the five category costs clamped to ``min_price``/``max_price``; the categories
    themselves are never clamped."""

    tariff_id: str
    currency: str
    periods: tuple[PricedPeriod, ...]
    total_energy_kwh: Decimal
    total_time_h: Decimal
    total_charging_time_h: Decimal
    total_parking_time_h: Decimal
    total_reservation_time_h: Decimal
    billed_energy_kwh: Decimal
    billed_charging_time_h: Decimal
    billed_parking_time_h: Decimal
    billed_reservation_time_h: Decimal
    total_fixed_cost: Money
    total_energy_cost: Money
    total_time_cost: Money
    total_parking_cost: Money
    total_reservation_cost: Money
    total_cost: Money

    def rounded(self) -> Costing:
        """A copy with every ``Money`` (totals and periods) rounded half up to the currency's
        minor unit, each from its exact value (rounded parts may not add up to the rounded
        total). Volumes are left exact."""
        money = {
            item.name: getattr(self, item.name).rounded(self.currency)
            for item in fields(self)
            if isinstance(getattr(self, item.name), Money)
        }
        periods = tuple(
            replace(
                period,
                energy_cost=period.energy_cost.rounded(self.currency),
                time_cost=period.time_cost.rounded(self.currency),
                flat_cost=period.flat_cost.rounded(self.currency),
            )
            for period in self.periods
        )
        return replace(self, periods=periods, **money)


# --- Tariff selection -----------------------------------------------------------------------

_PROFILE_TARIFFS = {
    "CHEAP": TariffType.PROFILE_CHEAP,
    "FAST": TariffType.PROFILE_FAST,
    "GREEN": TariffType.PROFILE_GREEN,
}
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _type_precedence(profile_type: str | None, ad_hoc: bool) -> list[TariffType | None]:
    if ad_hoc:
        return [TariffType.AD_HOC_PAYMENT, None]
    if profile_type is None or profile_type == "REGULAR":
        return [TariffType.REGULAR, None]
    if profile_type not in _PROFILE_TARIFFS:
        raise TariffEngineError(
            f"unknown profile_type {profile_type!r} (expected CHEAP, FAST, GREEN or REGULAR)"
        )
    return [_PROFILE_TARIFFS[profile_type], TariffType.REGULAR, None]


def select_tariff(
    tariffs: Sequence[Tariff],
    *,
    at: datetime,
    profile_type: str | None = None,
    ad_hoc: bool = False,
) -> Tariff | None:
    """The tariff of a session starting ``at`` among a connector's tariffs (reference 4.5 item
    1), or None.

    Only tariffs valid at ``at`` count (``start_date_time`` inclusive, ``end_date_time``
    exclusive). Precedence by ``type``: ad hoc payment: ``AD_HOC_PAYMENT``, then untyped;
    charging preference ``CHEAP``/``FAST``/``GREEN``: the matching ``PROFILE_*``, then
    ``REGULAR``, then untyped; otherwise (no preference or ``REGULAR``): ``REGULAR``, then
    untyped. ``ad_hoc`` wins over ``profile_type``. Within one rank the latest
    ``start_date_time`` wins (a replacement announced in advance), then list order."""
    moment = _utc(at, "at")
    ranks = _type_precedence(profile_type, ad_hoc)
    valid = [tariff for tariff in tariffs if tariff.valid_at(moment)]
    for wanted in ranks:
        candidates = [tariff for tariff in valid if tariff.type == wanted]
        if candidates:
            return max(candidates, key=lambda tariff: tariff.start_date_time or _EARLIEST)
    return None


# --- Validation and time axis ---------------------------------------------------------------


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TariffEngineError(f"{what} is a naive datetime ({value.isoformat()}): use aware UTC")
    return value.astimezone(UTC)


def _seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86400 + delta.seconds)
    return whole + Decimal(delta.microseconds) / _MICRO


def _instant(start: datetime, offset: Decimal) -> datetime:
    """``start`` + ``offset`` seconds, rounded to the microsecond."""
    micros = int((offset * _MICRO).to_integral_value(rounding=ROUND_HALF_EVEN))
    return start + timedelta(microseconds=micros)


def _floor_instant(start: datetime, offset: Decimal) -> datetime:
    """``start`` + ``offset`` seconds, floored to the microsecond: a moment strictly before a
    whole-microsecond boundary stays before it."""
    return start + timedelta(microseconds=int((offset * _MICRO) // 1))


@dataclass(frozen=True, slots=True)
class _Timeline:
    start: datetime
    end: datetime
    length: Decimal  # seconds
    states: tuple[tuple[Decimal, ChargeState], ...]  # (offset, state), first at 0

    def state_at(self, offset: Decimal) -> ChargeState:
        state = self.states[0][1]
        for at, changed in self.states:
            if at > offset:
                break
            state = changed
        return state


def _state(value: str) -> ChargeState:
    try:
        return ChargeState(value)
    except ValueError:
        raise TariffEngineError(f"unknown charge state {value!r}") from None


def _timeline(usage: SessionUsage) -> _Timeline:
    start = _utc(usage.start, "start")
    end = _utc(usage.end, "end")
    if end < start:
        raise TariffEngineError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if not usage.states:
        raise TariffEngineError("states is empty: the state at the session start is needed")
    changes = [(_utc(change.at, "state change"), _state(change.state)) for change in usage.states]
    if changes[0][0] > start:
        raise TariffEngineError(
            f"the first state is at {changes[0][0].isoformat()}, after start {start.isoformat()}"
        )
    for (before, _), (after, _) in pairwise(changes):
        if after < before:
            raise TariffEngineError("state changes are not in chronological order")
    length = _seconds(end - start)
    initial = changes[0][1]
    inner: list[tuple[Decimal, ChargeState]] = []
    for at, state in changes:
        offset = _seconds(at - start)
        if offset <= 0:
            initial = state
        elif offset < length:
            if inner and inner[-1][0] == offset:
                inner.pop()
            inner.append((offset, state))
    states = [(_ZERO, initial), *inner]
    return _Timeline(start=start, end=end, length=length, states=tuple(states))


# --- Meter: energy, power and current over time ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reading:
    offset: Decimal
    energy_wh: Decimal
    power_w: Decimal | None
    current_a: Decimal | None


def _measured(value: Decimal | None, what: str) -> Decimal | None:
    if value is None:
        return None
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise TariffEngineError(f"{what} must be a finite, non-negative Decimal, not {value!r}")
    return value


def _highest(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _readings(meter: Iterable[MeterPoint], timeline: _Timeline) -> list[_Reading]:
    merged: dict[Decimal, _Reading] = {}
    for point in meter:
        at = _utc(point.at, "meter point")
        if isinstance(point.energy_wh, bool) or not isinstance(point.energy_wh, int):
            raise TariffEngineError(f"energy_wh must be an int, not {point.energy_wh!r}")
        if point.energy_wh < 0:
            raise TariffEngineError(f"energy_wh {point.energy_wh} at {at.isoformat()} is negative")
        power = _measured(point.power_w, "power_w")
        current = _measured(point.current_a, "current_a")
        if at < timeline.start or at > timeline.end:
            continue
        offset = _seconds(at - timeline.start)
        if offset == 0 and point.energy_wh != 0:
            raise TariffEngineError(
                f"energy_wh is {point.energy_wh} at the session start: it must be relative to "
                "the start (0 there)"
            )
        reading = _Reading(offset, Decimal(point.energy_wh), power, current)
        known = merged.get(offset)
        if known is not None:
            reading = _Reading(
                offset,
                max(known.energy_wh, reading.energy_wh),
                _highest(known.power_w, power),
                _highest(known.current_a, current),
            )
        merged[offset] = reading
    return [merged[offset] for offset in sorted(merged)]


@dataclass(frozen=True, slots=True)
class _EnergyCurve:
    """Cumulative Wh, linear between points (first point (0, 0)), flat after the last."""

    times: tuple[Decimal, ...]
    energy: tuple[Decimal, ...]

    def at(self, offset: Decimal) -> Decimal:
        index = bisect_right(self.times, offset) - 1
        if index >= len(self.times) - 1:
            return self.energy[-1]
        t0, t1 = self.times[index], self.times[index + 1]
        e0, e1 = self.energy[index], self.energy[index + 1]
        return _snap(e0 + (e1 - e0) * (offset - t0) / (t1 - t0), _ENERGY_GRID)

    def first_reaching(self, level: Decimal) -> Decimal | None:
        """First offset where the energy is at least ``level`` Wh (``level`` > 0)."""
        for index in range(1, len(self.times)):
            e0, e1 = self.energy[index - 1], self.energy[index]
            if e1 >= level:
                t0, t1 = self.times[index - 1], self.times[index]
                return t0 + (level - e0) * (t1 - t0) / (e1 - e0)
        return None


def _energy_curve(readings: Sequence[_Reading]) -> _EnergyCurve:
    times, energy = [_ZERO], [_ZERO]
    for reading in readings:
        level = max(reading.energy_wh, energy[-1])  # clamp regressions
        if reading.offset == 0:
            continue
        times.append(reading.offset)
        energy.append(level)
    return _EnergyCurve(tuple(times), tuple(energy))


class _Signal(Protocol):
    """A quantity over the session (W or A), defined at every offset."""

    def value(self, offset: Decimal) -> Decimal: ...

    def extremes(self, begin: Decimal, end: Decimal) -> tuple[Decimal, Decimal]: ...

    def flips(self, level: Decimal) -> Iterator[Decimal]:
        """Offsets where ``value >= level`` may change."""
        ...


@dataclass(frozen=True, slots=True)
class _Steps:
    """Piecewise constant: ``values[i]`` from ``starts[i]`` until the next start."""

    starts: tuple[Decimal, ...]
    values: tuple[Decimal, ...]

    def _index(self, offset: Decimal) -> int:
        return max(bisect_right(self.starts, offset) - 1, 0)

    def value(self, offset: Decimal) -> Decimal:
        return self.values[self._index(offset)]

    def extremes(self, begin: Decimal, end: Decimal) -> tuple[Decimal, Decimal]:
        first = self._index(begin)
        last = first if end <= begin else max(bisect_left(self.starts, end) - 1, first)
        chosen = self.values[first : last + 1]
        return min(chosen), max(chosen)

    def flips(self, level: Decimal) -> Iterator[Decimal]:
        for index in range(1, len(self.starts)):
            if (self.values[index - 1] >= level) != (self.values[index] >= level):
                yield self.starts[index]


@dataclass(frozen=True, slots=True)
class _Linear:
    """Linear between samples, held before the first and after the last."""

    times: tuple[Decimal, ...]
    values: tuple[Decimal, ...]

    def value(self, offset: Decimal) -> Decimal:
        index = bisect_right(self.times, offset) - 1
        if index < 0:
            return self.values[0]
        if index >= len(self.times) - 1:
            return self.values[-1]
        t0, t1 = self.times[index], self.times[index + 1]
        v0, v1 = self.values[index], self.values[index + 1]
        return _snap(v0 + (v1 - v0) * (offset - t0) / (t1 - t0), _SIGNAL_GRID)

    def extremes(self, begin: Decimal, end: Decimal) -> tuple[Decimal, Decimal]:
        inside = [v for t, v in zip(self.times, self.values, strict=True) if begin < t < end]
        chosen = [self.value(begin), self.value(end), *inside]
        return min(chosen), max(chosen)

    def flips(self, level: Decimal) -> Iterator[Decimal]:
        samples = list(zip(self.times, self.values, strict=True))
        for (t0, v0), (t1, v1) in pairwise(samples):
            if v0 == level:
                yield t0
            elif (v0 - level) * (v1 - level) < 0:
                yield t0 + (level - v0) * (t1 - t0) / (v1 - v0)
        if samples[-1][1] == level:
            yield samples[-1][0]


def _average_power(curve: _EnergyCurve) -> _Steps:
    values = [
        _snap((e1 - e0) * _SECONDS_PER_HOUR / (t1 - t0), _SIGNAL_GRID)
        for t0, t1, e0, e1 in zip(
            curve.times, curve.times[1:], curve.energy, curve.energy[1:], strict=False
        )
    ]
    return _Steps(curve.times, (*values, _ZERO))


def _linear(samples: Sequence[tuple[Decimal, Decimal]]) -> _Linear | None:
    if not samples:
        return None
    return _Linear(tuple(t for t, _ in samples), tuple(v for _, v in samples))


@dataclass(frozen=True, slots=True)
class _Meter:
    energy: _EnergyCurve
    power_w: _Signal
    current_a: _Signal | None


def _meter(usage: SessionUsage, timeline: _Timeline) -> _Meter:
    readings = _readings(usage.meter, timeline)
    curve = _energy_curve(readings)
    measured_power = _linear([(r.offset, r.power_w) for r in readings if r.power_w is not None])
    current = _linear([(r.offset, r.current_a) for r in readings if r.current_a is not None])
    power: _Signal = measured_power if measured_power is not None else _average_power(curve)
    return _Meter(energy=curve, power_w=power, current_a=current)


# --- Restrictions -----------------------------------------------------------------------------


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class _Rules:
    """One element's restrictions in engine units (Wh, W, A, seconds)."""

    start_time: time | None
    end_time: time | None  # None: end of day (omitted or "00:00")
    start_date: date | None
    end_date: date | None
    weekdays: frozenset[int] | None
    min_wh: Decimal | None
    max_wh: Decimal | None
    min_w: Decimal | None
    max_w: Decimal | None
    min_a: Decimal | None
    max_a: Decimal | None
    min_s: Decimal | None
    max_s: Decimal | None
    reservation: ReservationRestrictionType | None


def _scaled(value: Decimal | int | None, factor: Decimal = _ONE) -> Decimal | None:
    return None if value is None else Decimal(value) * factor


def _rules(restrictions: TariffRestrictions | None) -> _Rules:
    r = restrictions or TariffRestrictions()
    return _Rules(
        start_time=_clock(r.start_time) if r.start_time else None,
        end_time=_clock(r.end_time) if r.end_time and r.end_time != "00:00" else None,
        start_date=date.fromisoformat(r.start_date) if r.start_date else None,
        end_date=date.fromisoformat(r.end_date) if r.end_date else None,
        weekdays=frozenset(day.iso_index for day in r.day_of_week) if r.day_of_week else None,
        min_wh=_scaled(r.min_kwh, _THOUSAND),
        max_wh=_scaled(r.max_kwh, _THOUSAND),
        min_w=_scaled(r.min_power, _THOUSAND),
        max_w=_scaled(r.max_power, _THOUSAND),
        min_a=_scaled(r.min_current),
        max_a=_scaled(r.max_current),
        min_s=_scaled(r.min_duration),
        max_s=_scaled(r.max_duration),
        reservation=r.reservation,
    )


@dataclass(frozen=True, slots=True)
class _Moment:
    """What the restrictions look at, at one instant of the session."""

    local: datetime  # wall clock of the Location
    elapsed_s: Decimal
    energy_wh: Decimal
    power_w: Decimal
    current_a: Decimal | None


def _in_window(now: time, begin: time | None, end: time | None) -> bool:
    low = begin or time(0)
    if end is None:
        return now >= low
    if low < end:
        return low <= now < end
    return now >= low or now < end  # wraps midnight


def _in_range(value: Decimal | None, low: Decimal | None, high: Decimal | None) -> bool:
    """``low`` <= value < ``high``; an unknown value satisfies no bound."""
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value < high)


def _calendar_matches(rules: _Rules, local: datetime) -> bool:
    day = local.date()
    if rules.start_date is not None and day < rules.start_date:
        return False
    if rules.end_date is not None and day >= rules.end_date:
        return False
    if rules.weekdays is not None and day.weekday() not in rules.weekdays:
        return False
    if rules.start_time is None and rules.end_time is None:
        return True
    return _in_window(local.time(), rules.start_time, rules.end_time)


def _matches(rules: _Rules, moment: _Moment) -> bool:
    return (
        _calendar_matches(rules, moment.local)
        and _in_range(moment.energy_wh, rules.min_wh, rules.max_wh)
        and _in_range(moment.power_w, rules.min_w, rules.max_w)
        and _in_range(moment.current_a, rules.min_a, rules.max_a)
        and _in_range(moment.elapsed_s, rules.min_s, rules.max_s)
    )


def _eligible(rules: _Rules, state: ChargeState, reservation_expired: bool) -> bool:
    """Reservation elements price RESERVED periods only, and only they do (reference 3.4)."""
    if state is not ChargeState.RESERVED:
        return rules.reservation is None
    if rules.reservation is ReservationRestrictionType.RESERVATION_EXPIRES:
        return reservation_expired
    return rules.reservation is ReservationRestrictionType.RESERVATION


# --- Period boundaries ------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCAN_STEP = 3600  # seconds; UTC offsets do not change twice within an hour


def _utc_offset(zone: ZoneInfo, epoch_second: int) -> timedelta:
    moment = _EPOCH + timedelta(seconds=epoch_second)
    return moment.astimezone(zone).utcoffset() or timedelta(0)


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """Instants in [start, end] where the zone's UTC offset changes (to the second)."""
    first = (start - _EPOCH) // timedelta(seconds=1)
    last = -((_EPOCH - end) // timedelta(seconds=1))
    low = first
    while low < last:
        high = min(low + _SCAN_STEP, last)
        before = _utc_offset(zone, low)
        if _utc_offset(zone, high) != before:
            a, b = low, high
            while b - a > 1:
                middle = (a + b) // 2
                if _utc_offset(zone, middle) == before:
                    a = middle
                else:
                    b = middle
            yield _EPOCH + timedelta(seconds=b)
        low = high


def _wall_clock_instants(zone: ZoneInfo, day: date, clock: time) -> Iterator[datetime]:
    """The UTC instants at which the wall clock shows ``clock`` on ``day``: none in a skipped
    hour, two in a repeated hour."""
    for fold in (0, 1):
        local = datetime.combine(day, clock, tzinfo=zone).replace(fold=fold)
        instant = local.astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
            yield instant


def _uses_calendar(rule: _Rules) -> bool:
    calendar = (rule.start_time, rule.end_time, rule.start_date, rule.end_date, rule.weekdays)
    return any(value is not None for value in calendar)


def _calendar_boundaries(
    rules: Sequence[_Rules], zone: ZoneInfo, start: datetime, end: datetime
) -> set[datetime]:
    """Local midnights, local start/end times and UTC-offset changes around the session."""
    if not any(_uses_calendar(rule) for rule in rules):
        return set()
    clocks = {time(0)} | {
        clock for rule in rules for clock in (rule.start_time, rule.end_time) if clock is not None
    }
    instants = set(_offset_changes(zone, start, end))
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for clock in clocks:
            instants.update(_wall_clock_instants(zone, day, clock))
        day += timedelta(days=1)
    return instants


def _energy_pins(rules: Sequence[_Rules], meter: _Meter, length: Decimal) -> dict[Decimal, Decimal]:
    """Where the energy reaches a ``min_kwh``/``max_kwh`` threshold inside the session: the
    instant (on the microsecond grid) and the threshold itself, used as the energy at that
    boundary so that the energy on either side of it is exact."""
    pins: dict[Decimal, Decimal] = {}
    levels = {level for rule in rules for level in (rule.min_wh, rule.max_wh) if level is not None}
    for level in sorted(levels):
        reached = meter.energy.first_reaching(level) if level > 0 else None
        offset = None if reached is None else _snap(reached, _TIME_GRID)
        if offset is not None and 0 < offset < length:
            pins[offset] = level  # the higher of two levels on one microsecond wins
    return pins


def _threshold_boundaries(rules: Sequence[_Rules], meter: _Meter) -> Iterator[Decimal]:
    for rule in rules:
        for level in (rule.min_w, rule.max_w):
            if level is not None:
                yield from meter.power_w.flips(level)
        for level in (rule.min_a, rule.max_a):
            if level is not None and meter.current_a is not None:
                yield from meter.current_a.flips(level)
        for duration in (rule.min_s, rule.max_s):
            if duration is not None:
                yield duration


def _boundaries(
    rules: Sequence[_Rules],
    timeline: _Timeline,
    meter: _Meter,
    zone: ZoneInfo,
    pins: Mapping[Decimal, Decimal],
) -> list[Decimal]:
    candidates: set[Decimal] = {offset for offset, _ in timeline.states} | set(pins)
    candidates.update(_threshold_boundaries(rules, meter))
    for instant in _calendar_boundaries(rules, zone, timeline.start, timeline.end):
        candidates.add(_seconds(instant - timeline.start))
    snapped = {_snap(candidate, _TIME_GRID) for candidate in candidates}
    inner = sorted(c for c in snapped if 0 < c < timeline.length)
    return [_ZERO, *inner, timeline.length]


# --- Choosing components per period -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Span:
    begin: Decimal
    end: Decimal
    state: ChargeState
    energy_wh: Decimal
    energy: ActiveComponent | None
    time: ActiveComponent | None  # TIME (charging or reserved) or PARKING_TIME (parking)
    flat: ActiveComponent | None

    @property
    def seconds(self) -> Decimal:
        return self.end - self.begin


def _time_dimension(state: ChargeState) -> TariffDimensionType:
    if state is ChargeState.PARKING:
        return TariffDimensionType.PARKING_TIME
    return TariffDimensionType.TIME


@dataclass(frozen=True, slots=True)
class _Pricing:
    tariff: Tariff
    rules: tuple[_Rules, ...]
    zone: ZoneInfo
    reservation_expired: bool

    def choose(
        self, dimension: TariffDimensionType, state: ChargeState, moment: _Moment
    ) -> ActiveComponent | None:
        """The first eligible element with a ``dimension`` component whose restrictions hold."""
        for index, (element, rules) in enumerate(
            zip(self.tariff.elements, self.rules, strict=True)
        ):
            position = _component_index(element, dimension)
            if position is None or not _eligible(rules, state, self.reservation_expired):
                continue
            if _matches(rules, moment):
                return ActiveComponent(
                    element_index=index,
                    component_index=position,
                    component=element.price_components[position],
                )
        return None


def _component_index(element: TariffElement, dimension: TariffDimensionType) -> int | None:
    for index, component in enumerate(element.price_components):
        if component.type is dimension:
            return index
    return None


def _moment(timeline: _Timeline, meter: _Meter, zone: ZoneInfo, offset: Decimal) -> _Moment:
    return _Moment(
        local=_floor_instant(timeline.start, offset).astimezone(zone),
        elapsed_s=offset,
        energy_wh=meter.energy.at(offset),
        power_w=meter.power_w.value(offset),
        current_a=None if meter.current_a is None else meter.current_a.value(offset),
    )


def _spans(
    pricing: _Pricing,
    timeline: _Timeline,
    meter: _Meter,
    boundaries: Sequence[Decimal],
    pins: Mapping[Decimal, Decimal],
) -> list[_Span]:
    pairs = list(pairwise(boundaries))
    if timeline.length == 0:
        pairs = [(_ZERO, _ZERO)]

    def energy_at(offset: Decimal) -> Decimal:
        return pins.get(offset, meter.energy.at(offset))

    spans = []
    for begin, end in pairs:
        state = timeline.state_at(begin)
        moment = _moment(timeline, meter, pricing.zone, (begin + end) / 2)
        spans.append(
            _Span(
                begin=begin,
                end=end,
                state=state,
                energy_wh=energy_at(end) - energy_at(begin),
                energy=pricing.choose(TariffDimensionType.ENERGY, state, moment),
                time=pricing.choose(_time_dimension(state), state, moment),
                flat=pricing.choose(TariffDimensionType.FLAT, state, moment),
            )
        )
    return spans


# --- step_size ------------------------------------------------------------------------------


def _round_up(amount: Decimal, step: int) -> Decimal:
    if step <= 0 or amount <= 0:
        return amount
    quotient, remainder = divmod(amount, Decimal(step))
    return (quotient + (1 if remainder > 0 else 0)) * step


def _step_extra(items: Sequence[tuple[int, Decimal, ActiveComponent]]) -> dict[int, Decimal]:
    """The rounding difference of the total of ``items`` (span index, amount, component), put
    on the last of them with the step_size of its component."""
    if not items:
        return {}
    total = sum((amount for _, amount, _ in items), _ZERO)
    last, _, active = items[-1]
    return {last: _round_up(total, active.component.step_size) - total}


def _billing_extras(spans: Sequence[_Span]) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """Extra Wh and extra seconds per span index from step_size (reference 4.5 item 4)."""
    energy = [(i, s.energy_wh, s.energy) for i, s in enumerate(spans) if s.energy is not None]
    timed = {
        state: [
            (i, s.seconds, s.time)
            for i, s in enumerate(spans)
            if s.state is state and s.time is not None
        ]
        for state in ChargeState
    }
    extra_time = _step_extra(timed[ChargeState.PARKING] or timed[ChargeState.CHARGING])
    extra_time.update(_step_extra(timed[ChargeState.RESERVED]))
    return _step_extra(energy), extra_time


# --- Money ----------------------------------------------------------------------------------


# Every amount is kept as exact numerators over one denominator (per hour or kWh, and per
# hundred for VAT); a figure is divided once, when it is reported, so sums stay exact and a
# result that is exactly on a half cent is never rounded the wrong way.
_PER_HOUR_AND_KWH = _SECONDS_PER_HOUR * _THOUSAND
_DENOMINATOR = _PER_HOUR_AND_KWH * _HUNDRED


@dataclass(frozen=True, slots=True)
class _Exact:
    excl: Decimal  # numerators over _DENOMINATOR
    incl: Decimal

    def __add__(self, other: _Exact) -> _Exact:
        return _Exact(self.excl + other.excl, self.incl + other.incl)

    def money(self) -> Money:
        return Money(excl_vat=self.excl / _DENOMINATOR, incl_vat=self.incl / _DENOMINATOR)


_NOTHING = _Exact(_ZERO, _ZERO)


def _sum(amounts: Iterable[_Exact]) -> _Exact:
    result = _NOTHING
    for amount in amounts:
        result = result + amount
    return result


def _cost(component: PriceComponent, quantity: Decimal, unit: Decimal = _ONE) -> _Exact:
    """``price * quantity / unit`` (unit: 1000 Wh, 3600 s, or 1 for FLAT); VAT per component,
    none when ``vat`` is omitted."""
    base = component.price * quantity * (_PER_HOUR_AND_KWH / unit)
    excl = base * _HUNDRED
    return _Exact(excl, excl if component.vat is None else base * (_HUNDRED + component.vat))


class _FlatKind(StrEnum):
    FIXED = "fixed"
    PARKING = "parking"
    RESERVATION = "reservation"


def _flat_kind(element: TariffElement) -> _FlatKind:
    if element.restrictions is not None and element.restrictions.reservation is not None:
        return _FlatKind.RESERVATION
    kinds = {component.type for component in element.price_components}
    if TariffDimensionType.PARKING_TIME in kinds and not kinds & {
        TariffDimensionType.ENERGY,
        TariffDimensionType.TIME,
    }:
        return _FlatKind.PARKING
    return _FlatKind.FIXED


def _bound_incl(bound: Price, total: Money) -> Decimal:
    if bound.incl_vat is not None:
        return bound.incl_vat
    if total.excl_vat == 0:
        return bound.excl_vat
    return bound.excl_vat * total.incl_vat / total.excl_vat


def _clamp(total: Money, low: Price | None, high: Price | None) -> Money:
    """``min_price``/``max_price`` applied to excl and incl VAT separately (reference 3.4)."""
    excl, incl = total.excl_vat, total.incl_vat
    if low is not None:
        excl = max(excl, low.excl_vat)
        incl = max(incl, _bound_incl(low, total))
    if high is not None:
        excl = min(excl, high.excl_vat)
        incl = min(incl, _bound_incl(high, total))
    return Money(excl_vat=excl, incl_vat=incl)


# --- Periods out ----------------------------------------------------------------------------

_TIME_VOLUME = {
    ChargeState.CHARGING: CdrDimensionType.TIME,
    ChargeState.PARKING: CdrDimensionType.PARKING_TIME,
    ChargeState.RESERVED: CdrDimensionType.RESERVATION_TIME,
}


def _dimensions(
    span: _Span,
    power: tuple[Decimal, Decimal],
    current: tuple[Decimal, Decimal] | None,
    rules: Sequence[_Rules],
) -> tuple[CdrDimension, ...]:
    kwh = span.energy_wh / _THOUSAND
    items: list[tuple[CdrDimensionType, Decimal]] = []
    if span.state is not ChargeState.RESERVED or kwh != 0:
        items.append((CdrDimensionType.ENERGY, kwh))
    items.append((_TIME_VOLUME[span.state], span.seconds / _SECONDS_PER_HOUR))
    if any(r.min_w is not None or r.max_w is not None for r in rules):
        items.append((CdrDimensionType.MIN_POWER, power[0] / _THOUSAND))
        items.append((CdrDimensionType.MAX_POWER, power[1] / _THOUSAND))
    if current is not None and any(r.min_a is not None or r.max_a is not None for r in rules):
        items.append((CdrDimensionType.MIN_CURRENT, current[0]))
        items.append((CdrDimensionType.MAX_CURRENT, current[1]))
    return tuple(CdrDimension(type=kind, volume=volume) for kind, volume in items)


def _components(span: _Span) -> Mapping[TariffDimensionType, ActiveComponent]:
    chosen: dict[TariffDimensionType, ActiveComponent] = {}
    if span.energy is not None:
        chosen[TariffDimensionType.ENERGY] = span.energy
    if span.time is not None:
        chosen[_time_dimension(span.state)] = span.time
    if span.flat is not None:
        chosen[TariffDimensionType.FLAT] = span.flat
    return MappingProxyType(chosen)


@dataclass(frozen=True, slots=True)
class _Context:
    pricing: _Pricing
    timeline: _Timeline
    meter: _Meter


@dataclass(frozen=True, slots=True)
class _SpanCost:
    billed_wh: Decimal
    billed_s: Decimal
    energy: _Exact
    time: _Exact
    flat: _Exact


def _span_cost(span: _Span, extra_wh: Decimal, extra_s: Decimal, flat: _Exact) -> _SpanCost:
    billed_wh = span.energy_wh + extra_wh if span.energy is not None else _ZERO
    billed_s = span.seconds + extra_s if span.time is not None else _ZERO
    energy = _NOTHING if span.energy is None else _cost(span.energy.component, billed_wh, _THOUSAND)
    time = (
        _NOTHING if span.time is None else _cost(span.time.component, billed_s, _SECONDS_PER_HOUR)
    )
    return _SpanCost(billed_wh, billed_s, energy, time, flat)


def _period(ctx: _Context, span: _Span, cost: _SpanCost) -> PricedPeriod:
    power = ctx.meter.power_w.extremes(span.begin, span.end)
    current = (
        None if ctx.meter.current_a is None else ctx.meter.current_a.extremes(span.begin, span.end)
    )
    return PricedPeriod(
        start=_instant(ctx.timeline.start, span.begin),
        end=_instant(ctx.timeline.start, span.end),
        state=span.state,
        energy_kwh=span.energy_wh / _THOUSAND,
        duration_h=span.seconds / _SECONDS_PER_HOUR,
        min_power_kw=power[0] / _THOUSAND,
        max_power_kw=power[1] / _THOUSAND,
        min_current_a=None if current is None else current[0],
        max_current_a=None if current is None else current[1],
        tariff_id=ctx.pricing.tariff.id,
        dimensions=_dimensions(span, power, current, ctx.pricing.rules),
        components=_components(span),
        billed_energy_kwh=cost.billed_wh / _THOUSAND,
        billed_duration_h=cost.billed_s / _SECONDS_PER_HOUR,
        energy_cost=cost.energy.money(),
        time_cost=cost.time.money(),
        flat_cost=cost.flat.money(),
    )


def _flats(
    pricing: _Pricing, spans: Sequence[_Span]
) -> tuple[list[_Exact], dict[_FlatKind, _Exact]]:
    """FLAT cost first charged in each span, and FLAT totals per kind: each component once."""
    seen: set[tuple[int, int]] = set()
    per_span: list[_Exact] = []
    per_kind = dict.fromkeys(_FlatKind, _NOTHING)
    for span in spans:
        charged = _NOTHING
        flat = span.flat
        if flat is not None and (flat.element_index, flat.component_index) not in seen:
            seen.add((flat.element_index, flat.component_index))
            charged = _cost(flat.component, _ONE)
            kind = _flat_kind(pricing.tariff.elements[flat.element_index])
            per_kind[kind] = per_kind[kind] + charged
        per_span.append(charged)
    return per_span, per_kind


# --- Entry point ----------------------------------------------------------------------------


def price_session(tariff: Tariff, usage: SessionUsage, *, time_zone: ZoneInfo) -> Costing:
    """Price ``usage`` with ``tariff``; ``time_zone`` is the Location's IANA zone. Raises
    ``TariffEngineError`` on invalid usage (naive datetimes, end before start, no state at
    the start, unordered states, negative or non-zero-at-start energy)."""
    with localcontext() as context:
        context.prec = _PRECISION
        context.rounding = ROUND_HALF_EVEN
        return _price(tariff, usage, time_zone)


def _price(tariff: Tariff, usage: SessionUsage, zone: ZoneInfo) -> Costing:
    timeline = _timeline(usage)
    meter = _meter(usage, timeline)
    rules = tuple(_rules(element.restrictions) for element in tariff.elements)
    pricing = _Pricing(tariff, rules, zone, usage.reservation_expired)
    pins = _energy_pins(rules, meter, timeline.length)
    boundaries = _boundaries(rules, timeline, meter, zone, pins)
    spans = _spans(pricing, timeline, meter, boundaries, pins)
    extra_wh, extra_s = _billing_extras(spans)
    flat_costs, flat_kinds = _flats(pricing, spans)
    costs = [
        _span_cost(span, extra_wh.get(i, _ZERO), extra_s.get(i, _ZERO), flat_costs[i])
        for i, span in enumerate(spans)
    ]
    ctx = _Context(pricing, timeline, meter)
    periods = tuple(_period(ctx, span, cost) for span, cost in zip(spans, costs, strict=True))
    return _costing(tariff, ctx, spans, costs, periods, flat_kinds)


def _hours(spans: Sequence[_Span], state: ChargeState) -> Decimal:
    return sum((s.seconds for s in spans if s.state is state), _ZERO) / _SECONDS_PER_HOUR


def _billed_hours(
    spans: Sequence[_Span], costs: Sequence[_SpanCost], state: ChargeState
) -> Decimal:
    billed = (c.billed_s for s, c in zip(spans, costs, strict=True) if s.state is state)
    return sum(billed, _ZERO) / _SECONDS_PER_HOUR


def _costing(
    tariff: Tariff,
    ctx: _Context,
    spans: Sequence[_Span],
    costs: Sequence[_SpanCost],
    periods: tuple[PricedPeriod, ...],
    flat_kinds: Mapping[_FlatKind, _Exact],
) -> Costing:
    def time_costs(state: ChargeState) -> _Exact:
        return _sum(c.time for s, c in zip(spans, costs, strict=True) if s.state is state)

    energy = _sum(c.energy for c in costs)
    charging = time_costs(ChargeState.CHARGING)
    parking = time_costs(ChargeState.PARKING) + flat_kinds[_FlatKind.PARKING]
    reservation = time_costs(ChargeState.RESERVED) + flat_kinds[_FlatKind.RESERVATION]
    fixed = flat_kinds[_FlatKind.FIXED]
    total = _sum((fixed, energy, charging, parking, reservation)).money()
    timeline = ctx.timeline
    return Costing(
        tariff_id=tariff.id,
        currency=tariff.currency,
        periods=periods,
        total_energy_kwh=ctx.meter.energy.at(timeline.length) / _THOUSAND,
        total_time_h=timeline.length / _SECONDS_PER_HOUR,
        total_charging_time_h=_hours(spans, ChargeState.CHARGING),
        total_parking_time_h=_hours(spans, ChargeState.PARKING),
        total_reservation_time_h=_hours(spans, ChargeState.RESERVED),
        billed_energy_kwh=sum((c.billed_wh for c in costs), _ZERO) / _THOUSAND,
        billed_charging_time_h=_billed_hours(spans, costs, ChargeState.CHARGING),
        billed_parking_time_h=_billed_hours(spans, costs, ChargeState.PARKING),
        billed_reservation_time_h=_billed_hours(spans, costs, ChargeState.RESERVED),
        total_fixed_cost=fixed.money(),
        total_energy_cost=energy.money(),
        total_time_cost=charging.money(),
        total_parking_cost=parking.money(),
        total_reservation_cost=reservation.money(),
        total_cost=_clamp(total, tariff.min_price, tariff.max_price),
    )
