"""OCPI 2.2.1 objects of the tariffs module (reference sections 1.5 and 3.4).

The CPO owns and sends Tariffs, so they are strict on construction: unknown enum values,
negative prices, malformed times and dates, over-long strings, naive datetimes and the cross-field
rules below are refused with the field named. ``model_dump_json(exclude_none=True)`` is OCPI
JSON (spec field names and order, enums by value, DateTime as ``...000Z``, numbers as JSON
numbers). The engine that prices a session with a Tariff is ``bridge.mapping.tariffs``.

Resolved ambiguities of the specification:

- ``step_size`` is a JSON integer >= 0 (``1.0`` or ``"1"`` are refused). ``0`` is accepted (the
  spec's free-of-charge example uses it) and means "no rounding", like ``1``.
- ``vat`` is a non-negative percentage; omitted means "no VAT applicable", which differs from
  ``0`` (the engine then bills ``incl_vat = excl_vat``).
- ``start_time``/``end_time`` are ``HH:MM`` (``00:00``-``23:59``); ``end_time`` ``00:00`` means
  the end of the day, an ``end_time`` before ``start_time`` wraps past midnight. Equal start and
  end times are refused (empty or whole day: ambiguous), except ``00:00``-``00:00`` (whole day).
- ``start_date``/``end_date`` are real calendar dates (``2023-02-30`` is refused); ``end_date``
  (exclusive) must be after ``start_date``.
- Every min/max pair (kWh, current, power, duration) must satisfy min < max: an element whose
  restrictions can never match is a mistake, not a tariff.
- ``day_of_week`` may not repeat a day; an empty list restricts nothing (same as omitted).
- A TariffElement names each dimension at most once (the spec does not say which of two
  ``TIME`` components would apply), and an element with a ``reservation`` restriction may only
  have ``FLAT`` and ``TIME`` components.
- ``min_price``/``max_price`` are non-negative, their ``incl_vat`` (when given) is not below
  their ``excl_vat``, and ``min_price`` does not exceed ``max_price`` (excl and incl compared
  separately).
- ``end_date_time`` must be after ``start_date_time``.
- ``currency`` is an ISO 4217 alphabetic code: three upper-case letters (not checked against
  the ISO list).
- ``last_updated`` is required, also in a PUT body: OCPI pushes full objects (reference 1.7),
  so the spec's ``tariff_put_example.json``, which lacks it, is refused.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from bridge.ocpi.locations import CiString36, DisplayText, EnergyMix, OcpiDateTime
from bridge.ocpi.models import CountryCode, OcpiModel, PartyId, Url
from bridge.ocpi.numbers import CurrencyCode, NonNegativeNumber, Price

__all__ = [
    "DayOfWeek",
    "PriceComponent",
    "ReservationRestrictionType",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffRestrictions",
    "TariffType",
]

# --- Enums ----------------------------------------------------------------------------------


class TariffDimensionType(StrEnum):
    """Unit of a price: ``ENERGY`` per kWh (step 1 Wh), ``FLAT`` per session, ``PARKING_TIME``
    and ``TIME`` per hour (step 1 s); ``TIME`` in a reservation element prices reserved time."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class TariffType(StrEnum):
    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


class DayOfWeek(StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def iso_index(self) -> int:
        """0 for Monday to 6 for Sunday, as ``date.weekday()``."""
        return list(DayOfWeek).index(self)


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


# --- Field types ----------------------------------------------------------------------------

HourMinute = Annotated[str, StringConstraints(pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
"""``HH:MM`` local time of day, 24-hour clock with leading zeros."""


def _real_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None
    return value


LocalDate = Annotated[
    str,
    StringConstraints(pattern=r"^[12][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])$"),
    AfterValidator(_real_date),
]
"""``YYYY-MM-DD`` local calendar date (kept as text so it is written back unchanged)."""

StepSize = Annotated[int, Field(strict=True, ge=0)]
Seconds = Annotated[int, Field(strict=True, ge=0)]

# --- Classes --------------------------------------------------------------------------------


class PriceComponent(OcpiModel):
    """``price`` per unit excluding VAT; ``vat`` in percent (omitted: no VAT applicable);
    ``step_size`` in Wh (ENERGY) or seconds (TIME, PARKING_TIME), unused for FLAT."""

    type: TariffDimensionType
    price: NonNegativeNumber
    vat: NonNegativeNumber | None = None
    step_size: StepSize


def _check_range(low: Decimal | int | None, high: Decimal | int | None, name: str) -> None:
    if low is not None and high is not None and low >= high:
        raise ValueError(f"min_{name} ({low}) must be lower than max_{name} ({high})")


class TariffRestrictions(OcpiModel):
    """When an element is active, evaluated at each moment of the session (all set fields must
    hold): local time of day and date of the Location's ``time_zone`` (start inclusive, end
    exclusive), energy so far in kWh, current in A summed over phases, power in kW, session
    duration in seconds (min inclusive, max exclusive), weekday, and reservation."""

    start_time: HourMinute | None = None
    end_time: HourMinute | None = None
    start_date: LocalDate | None = None
    end_date: LocalDate | None = None
    min_kwh: NonNegativeNumber | None = None
    max_kwh: NonNegativeNumber | None = None
    min_current: NonNegativeNumber | None = None
    max_current: NonNegativeNumber | None = None
    min_power: NonNegativeNumber | None = None
    max_power: NonNegativeNumber | None = None
    min_duration: Seconds | None = None
    max_duration: Seconds | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None

    @field_validator("day_of_week")
    @classmethod
    def _distinct_days(cls, value: list[DayOfWeek] | None) -> list[DayOfWeek] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a day may be listed only once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (
            self.start_time is not None
            and self.start_time == self.end_time
            and self.end_time != "00:00"
        ):
            raise ValueError(f"start_time and end_time are both {self.start_time}")
        dates = (self.start_date, self.end_date)
        if dates[0] is not None and dates[1] is not None and dates[1] <= dates[0]:
            raise ValueError("end_date (exclusive) must be after start_date")  # ISO text order
        _check_range(self.min_kwh, self.max_kwh, "kwh")
        _check_range(self.min_current, self.max_current, "current")
        _check_range(self.min_power, self.max_power, "power")
        _check_range(self.min_duration, self.max_duration, "duration")
        return self


_RESERVATION_DIMENSIONS = frozenset({TariffDimensionType.FLAT, TariffDimensionType.TIME})


class TariffElement(OcpiModel):
    price_components: list[PriceComponent] = Field(min_length=1)
    restrictions: TariffRestrictions | None = None

    @model_validator(mode="after")
    def _components_fit(self) -> Self:
        kinds = [component.type for component in self.price_components]
        for kind in set(kinds):
            if kinds.count(kind) > 1:
                raise ValueError(f"more than one {kind} price component in one element")
        if self.restrictions is not None and self.restrictions.reservation is not None:
            other = sorted(set(kinds) - _RESERVATION_DIMENSIONS)
            if other:
                raise ValueError(
                    "an element with a reservation restriction may only have FLAT and TIME "
                    f"components, not {', '.join(other)}"
                )
        return self


def _tariff_bound(value: Price | None) -> Price | None:
    if value is None:
        return None
    if value.excl_vat < 0 or (value.incl_vat is not None and value.incl_vat < 0):
        raise ValueError("must not be negative")
    if value.incl_vat is not None and value.incl_vat < value.excl_vat:
        raise ValueError("incl_vat must not be lower than excl_vat")
    return value


TariffBound = Annotated[Price, AfterValidator(_tariff_bound)]


class Tariff(OcpiModel):
    """Prices of the CPO ``country_code``/``party_id``. Fields in spec order, which is also the
    JSON order. ``type`` omitted: valid for all sessions."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    currency: CurrencyCode
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: Url | None = None
    min_price: TariffBound | None = None
    max_price: TariffBound | None = None
    elements: list[TariffElement] = Field(min_length=1)
    start_date_time: OcpiDateTime | None = None
    end_date_time: OcpiDateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_validity(self.start_date_time, self.end_date_time)
        low, high = self.min_price, self.max_price
        if low is not None and high is not None:
            if low.excl_vat > high.excl_vat:
                raise ValueError("min_price.excl_vat exceeds max_price.excl_vat")
            if (
                low.incl_vat is not None
                and high.incl_vat is not None
                and low.incl_vat > high.incl_vat
            ):
                raise ValueError("min_price.incl_vat exceeds max_price.incl_vat")
        return self

    def valid_at(self, moment: datetime) -> bool:
        """``start_date_time`` (inclusive) <= ``moment`` < ``end_date_time`` (exclusive)."""
        if self.start_date_time is not None and moment < self.start_date_time:
            return False
        return self.end_date_time is None or moment < self.end_date_time


def _check_validity(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValueError("end_date_time must be after start_date_time")
