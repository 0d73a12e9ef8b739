"""OCPI 2.2.1 objects of the cdrs module (reference sections 1.5 and 3.3).

A CDR is the final, immutable record of a session that the CPO POSTs to the eMSP owning the
``cdr_token``. Construction is strict: unknown enum values, over-long strings, naive
datetimes, negative totals and the cross-field rules below are refused with the field named.
``model_dump_json(exclude_none=True)`` is OCPI JSON (spec field names and order, enums by
value, DateTime as ``...000Z``, numbers as JSON numbers).

Resolved ambiguities of the specification:

- ``CdrLocation.address`` is still string(45) and ``state`` string(20) in 2.2.1 while the
  Location's became string(255)/string(45) (reference section 7 item 8).
  ``CdrLocation.from_location`` copies a Location and shortens over-long text with
  ``truncate_for_cdr_location`` (see there for the exact rule).
- ``CdrLocation.evse_id`` is any CiString(48), not only an eMI3 EVSE ID, because ``#NA`` is
  allowed for reservation-only CDRs; ``from_location`` writes ``#NA`` for an EVSE without
  ``evse_id``. The connector enums must still hold a real value.
- ``id`` and ``credit_reference_id`` are CiString(39); the advice to keep normal CDR ids to 36
  characters (3 reserved for a credit suffix) is not enforced.
- ``credit_reference_id`` is required when ``credit`` is true, refused otherwise, and must differ
  (case-insensitively) from ``id``. The sign of a credit CDR's amounts is not checked.
- ``end_date_time`` may equal ``start_date_time`` but not precede it; ``total_parking_time``
  (hours not charging) is at most ``total_time``. ``total_time`` is not checked against the
  start/end difference (rounding, and the ``1970-01-01`` placeholders of reference section
  3.3).
- ChargingPeriods: at least one, in strictly ascending order, and without the Session-only
  dimensions (``SESSION_ONLY_DIMENSIONS``). A period's ``tariff_id`` is not checked against
  ``tariffs``.
- The CDR example of the specification has latitude and longitude swapped; both values are
  within range of the other axis, so it is accepted (a swap is not detectable in general).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import (
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from bridge.ocpi.locations import (
    CiString36,
    ConnectorFormat,
    ConnectorType,
    GeoLocation,
    Location,
    OcpiDateTime,
    PowerType,
)
from bridge.ocpi.models import CountryCode, OcpiModel, PartyId
from bridge.ocpi.numbers import NonNegativeNumber, Price
from bridge.ocpi.sessions import (
    SESSION_ONLY_DIMENSIONS,
    AuthMethod,
    CdrToken,
    ChargingPeriod,
    CurrencyCode,
    check_not_before_start,
    check_period_order,
)
from bridge.ocpi.tariffs import Tariff

__all__ = [
    "CDR_LOCATION_LIMITS",
    "Cdr",
    "CdrLocation",
    "SignedData",
    "SignedValue",
    "truncate_for_cdr_location",
]

_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"

_CiString32 = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=_PRINTABLE_ASCII)
]
_CiString39 = Annotated[
    str, StringConstraints(min_length=1, max_length=39, pattern=_PRINTABLE_ASCII)
]
_CiString48 = Annotated[
    str, StringConstraints(min_length=1, max_length=48, pattern=_PRINTABLE_ASCII)
]
_Alpha3 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 3166-1 alpha-3
_String10 = Annotated[str, StringConstraints(min_length=1, max_length=10)]
_String20 = Annotated[str, StringConstraints(min_length=1, max_length=20)]
_String45 = Annotated[str, StringConstraints(min_length=1, max_length=45)]
_String255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]
_String512 = Annotated[str, StringConstraints(min_length=1, max_length=512)]
_String5000 = Annotated[str, StringConstraints(min_length=1, max_length=5000)]

CDR_LOCATION_LIMITS: dict[str, int] = {
    "name": 255,
    "address": 45,
    "city": 45,
    "postal_code": 10,
    "state": 20,
}
"""Maximum lengths of the CdrLocation text fields copied from a Location."""

NOT_AVAILABLE = "#NA"

# --- Truncation -----------------------------------------------------------------------------


def truncate_for_cdr_location(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` characters for a CdrLocation field.

    Text that already fits is returned unchanged (the CDR freezes the Location's data). Longer
    text has its whitespace runs (spaces, tabs, line breaks) collapsed to single spaces and its
    ends stripped; if it still does not fit it is cut at ``limit``. When the cut falls inside a
    word it moves back to the previous space, provided that keeps at least half of ``limit``
    (otherwise the word is cut, never leaving a combining mark without its base character).
    Trailing spaces, commas and semicolons are dropped. No ellipsis is added.

    Raises ``ValueError`` when ``limit`` is below 1 or ``text`` is empty or only whitespace
    while too long.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if 0 < len(text) <= limit:
        return text
    compact = " ".join(text.split())
    if not compact:
        raise ValueError("nothing to keep: the text is empty or only whitespace")
    if len(compact) <= limit:
        return compact
    end = limit
    if compact[end] != " ":  # the cut falls inside a word
        space = compact.rfind(" ", 0, end)
        if space >= limit // 2:
            end = space
        else:
            while end > 1 and unicodedata.combining(compact[end]):
                end -= 1
    kept = compact[:end].rstrip(" ,;")
    return kept or compact[:end].rstrip()


# --- Classes --------------------------------------------------------------------------------


class CdrLocation(OcpiModel):
    """The Location, EVSE and Connector of the session, frozen as at the session start."""

    id: CiString36
    name: _String255 | None = None
    address: _String45
    city: _String45
    postal_code: _String10 | None = None
    state: _String20 | None = None
    country: _Alpha3
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: _CiString48
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType

    @classmethod
    def from_location(cls, location: Location, evse_uid: str, connector_id: str) -> Self:
        """The CdrLocation of ``location``'s EVSE ``evse_uid`` and its Connector
        ``connector_id`` (both matched case-insensitively, as CiStrings).

        ``name``, ``address``, ``city`` and ``state`` are shortened to the CDR limits with
        ``truncate_for_cdr_location``; an EVSE without ``evse_id`` gives ``#NA``. Raises
        ``LookupError`` when the EVSE or the Connector is not in the Location.
        """
        evse = next(
            (e for e in location.evses or [] if e.uid.upper() == evse_uid.upper()),
            None,
        )
        if evse is None:
            raise LookupError(f"Location {location.id!r} has no EVSE {evse_uid!r}")
        connector = next(
            (c for c in evse.connectors if c.id.upper() == connector_id.upper()),
            None,
        )
        if connector is None:
            raise LookupError(f"EVSE {evse.uid!r} has no connector {connector_id!r}")

        def shortened(field: str, value: str) -> str:
            return truncate_for_cdr_location(value, CDR_LOCATION_LIMITS[field])

        return cls(
            id=location.id,
            name=None if location.name is None else shortened("name", location.name),
            address=shortened("address", location.address),
            city=shortened("city", location.city),
            postal_code=location.postal_code,
            state=None if location.state is None else shortened("state", location.state),
            country=location.country,
            coordinates=location.coordinates,
            evse_uid=evse.uid,
            evse_id=evse.evse_id or NOT_AVAILABLE,
            connector_id=connector.id,
            connector_standard=connector.standard,
            connector_format=connector.format,
            connector_power_type=connector.power_type,
        )


class SignedValue(OcpiModel):
    """One signed meter value; ``nature`` is e.g. ``Start``, ``End`` or ``Intermediate``."""

    nature: _CiString32
    plain_data: _String5000
    signed_data: _String5000  # base64


class SignedData(OcpiModel):
    """Calibration-law data: ``encoding_method`` e.g. ``OCMF`` or ``Alfen Eichrecht``."""

    encoding_method: CiString36
    encoding_method_version: Annotated[int, Field(strict=True)] | None = None
    public_key: _String512 | None = None
    signed_values: list[SignedValue] = Field(min_length=1)
    url: _String512 | None = None


class Cdr(OcpiModel):
    """Charge Detail Record of the CPO (``country_code``/``party_id``). Fields in spec order,
    which is also the JSON order. Times are in hours, energy in kWh."""

    country_code: CountryCode
    party_id: PartyId
    id: _CiString39
    start_date_time: OcpiDateTime
    end_date_time: OcpiDateTime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: _String255 | None = None
    currency: CurrencyCode
    tariffs: list[Tariff] = Field(default_factory=list)
    charging_periods: list[ChargingPeriod] = Field(min_length=1)
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: NonNegativeNumber
    total_energy_cost: Price | None = None
    total_time: NonNegativeNumber
    total_time_cost: Price | None = None
    total_parking_time: NonNegativeNumber | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: _String255 | None = None
    invoice_reference_id: _CiString39 | None = None
    credit: StrictBool | None = None
    credit_reference_id: _CiString39 | None = Field(default=None, validate_default=True)
    home_charging_compensation: StrictBool | None = None
    last_updated: OcpiDateTime

    @field_validator("end_date_time")
    @classmethod
    def _end_not_before_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        check_not_before_start(value, info)
        return value

    @field_validator("charging_periods")
    @classmethod
    def _cdr_periods(cls, value: list[ChargingPeriod]) -> list[ChargingPeriod]:
        for period in value:
            for dimension in period.dimensions:
                if dimension.type in SESSION_ONLY_DIMENSIONS:
                    raise ValueError(
                        f"{dimension.type.value} is a Session-only dimension, not allowed in a CDR"
                    )
        return check_period_order(value)

    @field_validator("total_parking_time")
    @classmethod
    def _parking_within_total_time(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        total_time = info.data.get("total_time")
        if value is not None and isinstance(total_time, Decimal) and value > total_time:
            raise ValueError(f"must not exceed total_time ({total_time} h)")
        return value

    @field_validator("credit_reference_id")
    @classmethod
    def _credit_reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "credit" not in info.data:  # credit itself was refused
            return value
        credit = info.data["credit"]
        if credit is True and value is None:
            raise ValueError("required when credit is true")
        if credit is not True and value is not None:
            raise ValueError("only allowed when credit is true")
        own_id = info.data.get("id")
        if value is not None and isinstance(own_id, str) and value.upper() == own_id.upper():
            raise ValueError("must name another CDR than this one")
        return value
