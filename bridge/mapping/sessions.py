"""Pure mapping from what chargers report to OCPI Sessions and CDRs (reference 4.3-4.5).

- A session's timeline (``Usage``) is what the tariff engine needs: charging-state changes and
  meter points (energy since the session start in Wh, power in W, current summed over phases
  in A), plus the signed meter values for the CDR's ``signed_data``.
- Charging vs parking (design.md section 5): OCPP 1.6 ``Charging`` and ``SuspendedEVSE`` and
  2.0.1 ``Charging`` and ``SuspendedEVSE`` are charging (TIME); 1.6 ``SuspendedEV`` and 2.0.1
  ``SuspendedEV``, ``EVConnected`` and ``Idle`` are parking (PARKING_TIME: the vehicle requests
  no power). A session starts charging until told otherwise.
- Without a tariff a session still gets periods (energy and time), no ``tariff_id`` and no
  ``total_cost`` (omitted is not free).
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bridge.mapping.tariffs import (
    ChargeState,
    Costing,
    MeterPoint,
    SessionUsage,
    StateChange,
    price_session,
)
from bridge.ocpi.cdrs import Cdr, CdrLocation, SignedData, SignedValue
from bridge.ocpi.numbers import Price
from bridge.ocpi.sessions import (
    AuthMethod,
    CdrDimension,
    CdrDimensionType,
    CdrToken,
    ChargingPeriod,
    Session,
    SessionStatus,
)
from bridge.ocpi.tariffs import Tariff
from csms.domain.energy import to_wh
from csms.domain.model import (
    ENERGY_IMPORT_REGISTER,
    ChargingState,
    ConnectorStatus,
    MeterReading,
    ReadingContext,
)

POWER_IMPORT = "Power.Active.Import"
CURRENT_IMPORT = "Current.Import"

_STATUS_STATES = {
    ConnectorStatus.CHARGING: ChargeState.CHARGING,
    ConnectorStatus.SUSPENDED_EVSE: ChargeState.CHARGING,
    ConnectorStatus.SUSPENDED_EV: ChargeState.PARKING,
}
_CHARGING_STATES = {
    ChargingState.CHARGING: ChargeState.CHARGING,
    ChargingState.SUSPENDED_EVSE: ChargeState.CHARGING,
    ChargingState.SUSPENDED_EV: ChargeState.PARKING,
    ChargingState.EV_CONNECTED: ChargeState.PARKING,
    ChargingState.IDLE: ChargeState.PARKING,
}
_NATURE = {
    ReadingContext.TRANSACTION_BEGIN: "Start",
    ReadingContext.TRANSACTION_END: "End",
}
_FREE = Tariff.model_validate(
    {
        "country_code": "ZZ",
        "party_id": "ZZZ",
        "id": "none",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "FLAT", "price": 0, "step_size": 0}]}],
        "last_updated": "2000-01-01T00:00:00Z",
    }
)
"""Stands in for a missing tariff so that the engine cuts the periods; never shown."""


def state_of_status(status: ConnectorStatus) -> ChargeState | None:
    """The charging state an OCPP 1.6 connector status shows during a transaction (None: the
    status says nothing about it)."""
    return _STATUS_STATES.get(status)


def state_of_charging_state(state: ChargingState) -> ChargeState:
    return _CHARGING_STATES[state]


# --- meter readings --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Sample:
    """What one instant of meter readings says (None: not reported)."""

    at: datetime
    register_wh: int | None = None
    power_w: Decimal | None = None
    current_a: Decimal | None = None


def samples_of(readings: Iterable[MeterReading]) -> list[Sample]:
    """Group readings by their timestamp: the energy import register (phase-less preferred,
    else the sum of the phases), the active import power likewise, the import current summed
    over phases (both clamped at 0). Readings of the inlet (not the outlet) are ignored."""
    by_time: dict[datetime, list[MeterReading]] = {}
    for reading in readings:
        if reading.location == "Outlet" and reading.value is not None:
            by_time.setdefault(reading.sampled_at, []).append(reading)
    samples = []
    for at in sorted(by_time):
        group = by_time[at]
        register = _overall(group, ENERGY_IMPORT_REGISTER, "Wh")
        sample = Sample(
            at=at,
            register_wh=to_wh(register) if register is not None else None,
            power_w=_not_negative(_overall(group, POWER_IMPORT, "W")),
            current_a=_not_negative(_summed(group, CURRENT_IMPORT, "A")),
        )
        if sample != Sample(at=at):
            samples.append(sample)
    return samples


def _not_negative(value: Decimal | None) -> Decimal | None:
    """Import power and current are never negative; a noisy reading below 0 counts as 0."""
    return None if value is None else max(value, Decimal(0))


def _overall(group: Sequence[MeterReading], measurand: str, unit: str) -> Decimal | None:
    values = [r for r in group if r.measurand == measurand and r.unit == unit]
    overall = [r.value for r in values if r.phase is None and r.value is not None]
    if overall:
        return overall[-1]
    return _summed(group, measurand, unit)


def _summed(group: Sequence[MeterReading], measurand: str, unit: str) -> Decimal | None:
    phases = {
        r.phase: r.value
        for r in group
        if r.measurand == measurand and r.unit == unit and r.value is not None
    }
    if None in phases and len(phases) == 1:
        return phases[None]
    per_phase = [v for p, v in phases.items() if p is not None and v is not None]
    return sum(per_phase, Decimal(0)) if per_phase else None


def signed_values_of(readings: Iterable[MeterReading]) -> list[dict[str, Any]]:
    """The signed meter values among ``readings``, as stored for the CDR's ``signed_data``."""
    found = []
    for reading in readings:
        if reading.signed is None:
            continue
        found.append(
            {
                "at": reading.sampled_at.isoformat(),
                "nature": _NATURE.get(reading.context, "Intermediate"),
                "signed_data": reading.signed.data,
                "encoding_method": reading.signed.encoding_method,
                "signing_method": reading.signed.signing_method,
                "public_key": reading.signed.public_key,
                "plain_data": str(reading.value) if reading.value is not None else None,
            }
        )
    return found


# --- progress PATCHes -----------------------------------------------------------------------

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PHASES = 1 << 16


def patch_due(session_id: str, last_push_at: datetime, at: datetime, interval: timedelta) -> bool:
    """Whether a progress PATCH of a session last pushed at ``last_push_at`` is due at ``at``
    (charger time): once per window of ``interval``, each session's windows shifted by a
    phase of its own (from its id). Sessions that start together (a depot's fleet plugged
    in at once, chargers back after a power cut) would otherwise be priced and PATCHed in the
    same moment, every interval; with the phases their PATCHes spread evenly over it. At
    most one PATCH per window, so on average one per interval; the first after the PUT comes
    within one interval."""
    if interval <= timedelta(0):
        return True
    phase = interval * (zlib.crc32(session_id.encode()) % _PHASES) / _PHASES
    return (at - _EPOCH - phase) // interval > (last_push_at - _EPOCH - phase) // interval


# --- the timeline ----------------------------------------------------------------------------


Point = tuple[datetime, int, Decimal | None, Decimal | None]
"""A meter point: when, energy since the session's start (Wh), power (W), current (A)."""


@dataclass(kw_only=True)
class Usage:
    """A session's timeline. Its meter points are stored apart from the rest (one row each,
    appended: see ``SessionPointRow``); ``to_json`` is the rest, with the count of points,
    and ``take_unstored`` the points added since the timeline was loaded or last stored."""

    states: list[tuple[datetime, ChargeState]] = field(default_factory=list)
    meter: list[Point] = field(default_factory=list)
    signed: list[dict[str, Any]] = field(default_factory=list)
    reservation_expired: bool = False
    """The session is a reservation that ended unused when it expired (reference 3.4:
    ``RESERVATION_EXPIRES`` elements apply)."""

    _unstored: list[Point] = field(default_factory=list, init=False, repr=False, compare=False)
    _signed_parts: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    """``signed`` entries encoded once each (a running session is stored again after every
    meter value): ``to_json`` joins them. They are encoded again whenever their count no
    longer matches the list's."""

    def to_json(self) -> str:
        """The timeline but its meter points, which it counts (stored with their rows)."""
        states = json.dumps(
            [[at.isoformat(), state.value] for at, state in self.states], separators=_COMPACT
        )
        signed = ",".join(_parts(self.signed, self._signed_parts, _signed_entry))
        expired = ',"reservation_expired":true' if self.reservation_expired else ""
        points = len(self.meter)
        return f'{{"states":{states},"points":{points},"signed":[{signed}]{expired}}}'

    @staticmethod
    def stored_points(text: str) -> int:
        """How many meter points the session whose ``usage`` is ``text`` has stored as
        rows (to load them only when there are some)."""
        return int(json.loads(text or "{}").get("points", 0))

    @classmethod
    def from_json(cls, text: str, points: Iterable[Point] = ()) -> Usage:
        """The timeline of ``text`` (a session's ``usage``) and its stored ``points`` (in time
        order). Points in the text itself (``meter``: where sessions stored before
        ``SessionPointRow`` kept them) are taken as not stored yet: storing the timeline
        moves them into rows."""
        data = json.loads(text or "{}")
        usage = cls(
            states=[
                (datetime.fromisoformat(at), ChargeState(state))
                for at, state in data.get("states", [])
            ],
            meter=list(points),
            signed=list(data.get("signed", [])),
            reservation_expired=bool(data.get("reservation_expired", False)),
        )
        for at, wh, power, current in data.get("meter", []):
            usage.add_point(
                datetime.fromisoformat(at),
                int(wh),
                decimal_or_none(power),
                decimal_or_none(current),
            )
        return usage

    def take_unstored(self) -> list[Point]:
        """The points added since the timeline was loaded or this was last called: to store
        (as rows) with ``to_json``'s text."""
        unstored, self._unstored = self._unstored, []
        return unstored

    def change_state(self, at: datetime, state: ChargeState) -> bool:
        """Note a state change (ignored when it is the state already in force at ``at``)."""
        before = [s for t, s in sorted(self.states, key=_at) if t <= at]
        if before and before[-1] is state:
            return False
        self.states.append((at, state))
        self.states.sort(key=_at)
        return True

    def add_point(
        self, at: datetime, energy_wh: int, power_w: Decimal | None, current_a: Decimal | None
    ) -> None:
        point = (at, max(0, energy_wh), power_w, current_a)
        self._unstored.append(point)
        if not self.meter or self.meter[-1][0] <= at:
            self.meter.append(point)
            return
        # Late point (a charger sending queued values): in time order, after equal times (as
        # its row, stored later, is read back: by time, then by row id).
        bisect.insort_right(self.meter, point, key=_at)

    def add_signed(self, values: Iterable[dict[str, Any]]) -> None:
        """Append signed meter values (what the CDR's ``signed_data`` is made of)."""
        for value in values:
            self.signed.append(value)
            if len(self._signed_parts) == len(self.signed) - 1:
                self._signed_parts.append(_signed_entry(value))

    def energy_wh(self, until: datetime | None = None) -> int:
        """Energy at ``until`` (the latest point not after it; all points when None)."""
        points = [wh for at, wh, _, _ in self.meter if until is None or at <= until]
        return max(points, default=0)

    def engine_usage(self, start: datetime, end: datetime) -> SessionUsage:
        """The engine's view from ``start`` (which may be later than the first point: a 2.0.1
        session starts when its token is authorized) to ``end``: energy counted from
        ``start``."""
        states = [(at, state) for at, state in self.states if at <= start]
        first = states[-1][1] if states else ChargeState.CHARGING
        changes = [StateChange(at=start, state=first)] + [
            StateChange(at=at, state=state) for at, state in self.states if start < at <= end
        ]
        base = self.energy_wh(until=start)
        meter = [MeterPoint(at=start, energy_wh=0)] + [
            MeterPoint(at=at, energy_wh=max(0, wh - base), power_w=power, current_a=current)
            for at, wh, power, current in self.meter
            if start < at <= end
        ]
        return SessionUsage(
            start=start,
            end=end,
            states=tuple(changes),
            meter=tuple(meter),
            reservation_expired=self.reservation_expired,
        )

    def energy_since(self, start: datetime) -> int:
        return max(0, self.energy_wh() - self.energy_wh(until=start))


_COMPACT = (",", ":")
_E = TypeVar("_E")


def _at(entry: tuple[datetime, Any] | tuple[datetime, Any, Any, Any]) -> datetime:
    return entry[0]


def _signed_entry(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=_COMPACT)


def _parts(entries: Sequence[_E], parts: list[str], encode: Callable[[_E], str]) -> list[str]:
    """``parts``, encoded again from ``entries`` unless it has one part per entry."""
    if len(parts) != len(entries):
        parts[:] = [encode(entry) for entry in entries]
    return parts


def decimal_or_none(value: str | None) -> Decimal | None:
    """A decimal stored as text (a meter point's power or current), or None."""
    return Decimal(value) if value is not None else None


# --- pricing and OCPI objects ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionFacts:
    """Everything an OCPI Session or CDR of one session is made of."""

    country_code: str
    party_id: str
    session_id: str
    status: SessionStatus
    start: datetime
    end: datetime | None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: str | None
    location_id: str
    evse_uid: str
    connector_id: str
    currency: str
    tariff: Tariff | None
    time_zone: ZoneInfo
    usage: Usage
    meter_id: str | None = None


def costing(facts: SessionFacts, now: datetime) -> Costing:
    """Periods and costs of the session up to its end, or ``now`` while it runs; rounded."""
    end = facts.end if facts.end is not None else max(now, facts.start)
    usage = facts.usage.engine_usage(facts.start, end)
    return price_session(facts.tariff or _FREE, usage, time_zone=facts.time_zone).rounded()


def charging_periods(facts: SessionFacts, priced: Costing) -> list[ChargingPeriod]:
    periods = []
    for period in priced.periods:
        dimensions = list(period.dimensions) or [
            CdrDimension(type=CdrDimensionType.ENERGY, volume=Decimal(0))
        ]
        periods.append(
            ChargingPeriod(
                start_date_time=period.start,
                dimensions=dimensions,
                tariff_id=facts.tariff.id if facts.tariff is not None else None,
            )
        )
    return periods


def kwh(facts: SessionFacts) -> Decimal:
    return Decimal(facts.usage.energy_since(facts.start)) / 1000


def session_object(facts: SessionFacts, priced: Costing, last_updated: datetime) -> Session:
    return _session(
        facts,
        last_updated,
        kwh=kwh(facts),
        periods=charging_periods(facts, priced),
        total_cost=priced.total_cost.to_price() if facts.tariff is not None else None,
    )


def waiting_object(facts: SessionFacts, last_updated: datetime) -> Session:
    """A session no transaction has begun yet (PENDING after an accepted START_SESSION, or
    INVALID when none followed): nothing used, nothing charged."""
    return _session(facts, last_updated, kwh=Decimal(0), periods=[], total_cost=None)


def _session(
    facts: SessionFacts,
    last_updated: datetime,
    *,
    kwh: Decimal,
    periods: list[ChargingPeriod],
    total_cost: Price | None,
) -> Session:
    return Session(
        country_code=facts.country_code,
        party_id=facts.party_id,
        id=facts.session_id,
        start_date_time=facts.start,
        end_date_time=facts.end,
        kwh=kwh,
        cdr_token=facts.cdr_token,
        auth_method=facts.auth_method,
        authorization_reference=facts.authorization_reference,
        location_id=facts.location_id,
        evse_uid=facts.evse_uid,
        connector_id=facts.connector_id,
        meter_id=facts.meter_id,
        currency=facts.currency,
        charging_periods=periods,
        total_cost=total_cost,
        status=facts.status,
        last_updated=last_updated,
    )


def cdr_object(
    facts: SessionFacts,
    priced: Costing,
    *,
    cdr_location: CdrLocation,
    remark: str | None,
    created_at: datetime,
) -> Cdr:
    """The CDR of a completed session (``end`` set). Without a tariff all costs are 0 (the
    CPO charges nothing it has no tariff for) and ``tariffs`` is empty."""
    assert facts.end is not None
    priced_tariff = facts.tariff is not None
    return Cdr(
        country_code=facts.country_code,
        party_id=facts.party_id,
        id=facts.session_id,
        start_date_time=facts.start,
        end_date_time=facts.end,
        session_id=facts.session_id,
        cdr_token=facts.cdr_token,
        auth_method=facts.auth_method,
        authorization_reference=facts.authorization_reference,
        cdr_location=cdr_location,
        meter_id=facts.meter_id,
        currency=facts.currency,
        tariffs=[facts.tariff] if facts.tariff is not None else [],
        charging_periods=charging_periods(facts, priced),
        signed_data=signed_data(facts.usage.signed),
        total_cost=priced.total_cost.to_price(),
        total_fixed_cost=priced.total_fixed_cost.to_price() if priced_tariff else None,
        total_energy=priced.total_energy_kwh,
        total_energy_cost=priced.total_energy_cost.to_price() if priced_tariff else None,
        total_time=priced.total_time_h,
        total_time_cost=priced.total_time_cost.to_price() if priced_tariff else None,
        total_parking_time=priced.total_parking_time_h,
        total_parking_cost=priced.total_parking_cost.to_price() if priced_tariff else None,
        total_reservation_cost=(
            priced.total_reservation_cost.to_price() if priced_tariff else None
        ),
        remark=remark,
        last_updated=created_at,
    )


def signed_data(signed: Sequence[dict[str, Any]]) -> SignedData | None:
    """OCPI SignedData from the signed meter values of a session (reference 4.5 item 9):
    the encoding method and public key of the first value that names them."""
    if not signed:
        return None
    encoding = next((s["encoding_method"] for s in signed if s.get("encoding_method")), None)
    public_key = next((s["public_key"] for s in signed if s.get("public_key")), None)
    values = [
        SignedValue(
            nature=s["nature"],
            plain_data=(s.get("plain_data") or s["signed_data"])[:5000],
            signed_data=s["signed_data"][:5000],
        )
        for s in signed
    ]
    signing = next((s["signing_method"] for s in signed if s.get("signing_method")), None)
    if encoding is None and all(s["signed_data"].startswith("OCMF|") for s in signed):
        encoding = "OCMF"  # 1.6 SignedData names no format; an OCMF record names itself
    return SignedData(
        encoding_method=(encoding or signing or "UNKNOWN")[:36],
        public_key=public_key[:512] if public_key else None,
        signed_values=values,
    )
