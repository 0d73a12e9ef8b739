"""OCPI 2.2.1 objects of the sessions module (reference sections 1.5 and 3.2), and the
CdrToken, ChargingPeriod and CdrDimension shared with the cdrs module (section 3.3).

The CPO builds these objects from OCPP transactions and sends them, so they are strict on
construction: unknown enum values, over-long strings, naive datetimes, negative energy and
the cross-field rules below are refused with the field named. ``model_dump_json(
exclude_none=True)`` is OCPI JSON (spec field names and order, enums by value, DateTime as
``...000Z``, numbers as JSON numbers).

Resolved ambiguities of the specification:

- ``currency`` is an ISO 4217 alphabetic code: exactly three upper-case letters (the code is
  not checked against the ISO list).
- ``kwh`` and ``ChargingPreferences.energy_need`` are non-negative. A CdrDimension ``volume``
  may be negative only for ``ENERGY`` (net export, V2G) and other dimensions without a
  defined sign; the time dimensions (``TIME``, ``PARKING_TIME``, ``RESERVATION_TIME``) are
  non-negative and ``STATE_OF_CHARGE`` is 0-100.
- Volumes are not checked against ``kwh``: the spec's own session examples give ``ENERGY`` in
  Wh while the text says kWh (reference section 7 item 1; we follow kWh), and a Session's
  periods may be incomplete while it runs.
- ChargingPeriods are listed in strictly ascending ``start_date_time`` order (a period ends
  where the next starts) and a period names each dimension type at most once.
- A Session's ``end_date_time``, when given, is not before its ``start_date_time``.
- ``charging_periods`` defaults to an empty list and is written as ``[]``: in a PUT, an omitted
  or empty list both clear the periods, so nothing is lost by being explicit.
- ``evse_uid``/``connector_id`` may be ``#NA`` (reservation without EVSE): any CiString(36)
  is accepted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import (
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from bridge.ocpi.locations import CiString36, OcpiDateTime, TokenType
from bridge.ocpi.models import CountryCode, OcpiModel, PartyId
from bridge.ocpi.numbers import CurrencyCode, NonNegativeNumber, OcpiNumber, Price
from bridge.ocpi.tokens import ProfileType
from bridge.ocpi.wire import format_datetime

__all__ = [
    "SESSION_ONLY_DIMENSIONS",
    "AuthMethod",
    "CdrDimension",
    "CdrDimensionType",
    "CdrToken",
    "ChargingPeriod",
    "ChargingPreferences",
    "ChargingPreferencesResponse",
    "CurrencyCode",
    "ProfileType",
    "Session",
    "SessionStatus",
    "check_not_before_start",
    "check_period_order",
]

"""ISO 4217 alphabetic currency code, e.g. ``EUR``."""

_String255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]

# --- Enums ----------------------------------------------------------------------------------


class SessionStatus(StrEnum):
    """``COMPLETED`` and ``INVALID`` are final. A reservation's Session is ``RESERVATION`` (the
    spec's prose also says ``RESERVED``; the enum value is ``RESERVATION``)."""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrDimensionType(StrEnum):
    """Units: currents in A (MIN/MAX summed over phases), energies in kWh, powers in kW,
    times in hours, state of charge in percent."""

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


SESSION_ONLY_DIMENSIONS: frozenset[CdrDimensionType] = frozenset(
    {
        CdrDimensionType.CURRENT,
        CdrDimensionType.ENERGY_EXPORT,
        CdrDimensionType.ENERGY_IMPORT,
        CdrDimensionType.POWER,
        CdrDimensionType.STATE_OF_CHARGE,
    }
)
"""Dimension types allowed in a Session's ChargingPeriods but not in a CDR's."""

_TIME_DIMENSIONS = frozenset(
    {
        CdrDimensionType.TIME,
        CdrDimensionType.PARKING_TIME,
        CdrDimensionType.RESERVATION_TIME,
    }
)


class ChargingPreferencesResponse(StrEnum):
    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"


# --- Classes --------------------------------------------------------------------------------


class CdrToken(OcpiModel):
    """The Token used, owned by the eMSP ``country_code``/``party_id``."""

    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: OcpiNumber

    @field_validator("volume")
    @classmethod
    def _volume_in_range(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        kind = info.data.get("type")
        if kind in _TIME_DIMENSIONS and value < 0:
            raise ValueError(f"must not be negative for {kind} (hours)")
        if kind is CdrDimensionType.STATE_OF_CHARGE and not 0 <= value <= 100:
            raise ValueError("must be 0-100 (percent) for STATE_OF_CHARGE")
        return value


class ChargingPeriod(OcpiModel):
    """Starts at ``start_date_time`` and ends where the next period starts (the last one at
    the end of the session). No ``tariff_id`` means no tariff is relevant."""

    start_date_time: OcpiDateTime
    dimensions: list[CdrDimension] = Field(min_length=1)
    tariff_id: CiString36 | None = None

    @field_validator("dimensions")
    @classmethod
    def _one_volume_per_type(cls, value: list[CdrDimension]) -> list[CdrDimension]:
        seen: set[CdrDimensionType] = set()
        for dimension in value:
            if dimension.type in seen:
                raise ValueError(f"dimension {dimension.type.value} is listed twice")
            seen.add(dimension.type)
        return value


def check_period_order(periods: list[ChargingPeriod]) -> list[ChargingPeriod]:
    """Refuse ChargingPeriods that are not in strictly ascending ``start_date_time`` order."""
    for earlier, later in pairwise(periods):
        if later.start_date_time <= earlier.start_date_time:
            raise ValueError(
                "charging periods must be in ascending start_date_time order: "
                f"{format_datetime(later.start_date_time)} follows "
                f"{format_datetime(earlier.start_date_time)}"
            )
    return periods


def check_not_before_start(end: datetime, info: ValidationInfo) -> None:
    """Refuse an ``end_date_time`` earlier than the already validated ``start_date_time``."""
    start = info.data.get("start_date_time")
    if isinstance(start, datetime) and end < start:
        raise ValueError(f"must not be before start_date_time ({format_datetime(start)})")


class Session(OcpiModel):
    """A charging session of the CPO (``country_code``/``party_id``). Fields in spec order,
    which is also the JSON order."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    start_date_time: OcpiDateTime
    end_date_time: OcpiDateTime | None = None
    kwh: NonNegativeNumber
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: _String255 | None = None
    currency: CurrencyCode
    charging_periods: list[ChargingPeriod] = Field(default_factory=list)
    total_cost: Price | None = None  # omitted: not known; excl_vat 0: free
    status: SessionStatus
    last_updated: OcpiDateTime

    @field_validator("end_date_time")
    @classmethod
    def _end_not_before_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None:
            check_not_before_start(value, info)
        return value

    @field_validator("charging_periods")
    @classmethod
    def _periods_in_order(cls, value: list[ChargingPeriod]) -> list[ChargingPeriod]:
        return check_period_order(value)


class ChargingPreferences(OcpiModel):
    """Body of ``PUT {sessions_url}/{session_id}/charging_preferences`` (from the eMSP).
    ``energy_need`` is in kWh; an omitted ``discharge_allowed`` means false."""

    profile_type: ProfileType
    departure_time: OcpiDateTime | None = None
    energy_need: NonNegativeNumber | None = None
    discharge_allowed: StrictBool | None = None
