"""OCPI 2.2.1 objects of the locations module (reference sections 1.5 and 3.1).

The CPO builds these objects from operator input and sends them, so they are strict on
construction: unknown enum values, over-long strings, malformed coordinates, naive datetimes,
unknown time zones and the spec's cross-field rules are refused with the field named.
``model_dump_json(exclude_none=True)`` is OCPI JSON (spec field names, enums by value,
DateTime as ``...Z``).

Resolved ambiguities of the specification:

- ``Location.address`` is string(255) and ``state`` string(45) (2.2.1 bugfix errata).
- GeoLocation: the regexes allow 7 decimals but ``latitude`` is string(10) and ``longitude``
  string(11); both limits are enforced (so e.g. ``-33.1234567`` is refused: use 6 decimals).
- Numbers of the energy mix (``percentage``, ``amount``) are JSON numbers held as ``float``
  (no money here); ``percentage`` is 0-100 and ``amount`` non-negative.
- RegularHours: ``period_end`` must be later than ``period_begin`` on the same weekday
  (``HH:MM`` up to ``23:59``; a period crossing midnight is split over two weekdays).
- ExceptionalPeriod and StatusSchedule: an end, when given, is after the begin.
- DateTimes are normalized to UTC and truncated to the millisecond on construction, so an
  object equals the one read back from its JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.ocpi.models import BusinessDetails, CountryCode, Image, OcpiModel, PartyId, Url
from bridge.ocpi.wire import format_datetime, parse_datetime

# --- DateTime -------------------------------------------------------------------------------


def _read_datetime(value: object) -> datetime:
    if isinstance(value, str):
        return parse_datetime(value)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: a time zone is required")
        return value
    raise ValueError("expected an RFC 3339 string or an aware datetime")


def _normalize_datetime(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


OcpiDateTime = Annotated[
    datetime,
    BeforeValidator(_read_datetime),
    AfterValidator(_normalize_datetime),
    PlainSerializer(format_datetime, return_type=str, when_used="json"),
]
"""OCPI DateTime: an aware ``datetime`` (UTC, millisecond precision) read from RFC 3339 text
(a missing zone means UTC) and written as ``2015-06-29T20:39:09.000Z``."""

# --- Strings --------------------------------------------------------------------------------

_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"

CiString36 = Annotated[
    str, StringConstraints(min_length=1, max_length=36, pattern=_PRINTABLE_ASCII)
]
"""CiString(36): printable ASCII, 1 to 36 characters (object ids, tariff ids)."""

# eMI3 EVSE ID (ISO form ``CC*PPP*E...`` with optional ``*``, or the older DIN form), read
# case-insensitively as a CiString.
_EVSE_ID = (
    r"^(?:[A-Za-z]{2}\*?[A-Za-z0-9]{3}\*?[Ee][A-Za-z0-9*]{1,30}"
    r"|\+?[0-9]{1,3}\*[0-9]{3}\*[0-9*]{1,32})$"
)
_EvseId = Annotated[str, StringConstraints(max_length=48, pattern=_EVSE_ID)]
_Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]  # ISO 639-1
_Alpha3 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 3166-1 alpha-3
_HourMinute = Annotated[str, StringConstraints(pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
_String4 = Annotated[str, StringConstraints(min_length=1, max_length=4)]
_String10 = Annotated[str, StringConstraints(min_length=1, max_length=10)]
_String16 = Annotated[str, StringConstraints(min_length=1, max_length=16)]
_String45 = Annotated[str, StringConstraints(min_length=1, max_length=45)]
_String64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_String255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]
_String512 = Annotated[str, StringConstraints(min_length=1, max_length=512)]

_PositiveInt = Annotated[int, Field(strict=True, gt=0)]

# --- Enums ----------------------------------------------------------------------------------


class Status(StrEnum):
    """Status of an EVSE (connectors have none)."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class Capability(StrEnum):
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ConnectorFormat(StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class ConnectorType(StrEnum):
    """Plug/socket standard. Note the spec's lowercase ``single``/``three`` spelling."""

    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class ParkingType(StrEnum):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class ParkingRestriction(StrEnum):
    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class Facility(StrEnum):
    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class EnergySourceCategory(StrEnum):
    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnvironmentalImpactCategory(StrEnum):
    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class TokenType(StrEnum):
    """Token types (tokens module), used here by PublishTokenType."""

    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


# --- Classes --------------------------------------------------------------------------------


def _within(value: str, limit: int) -> str:
    if not -limit <= float(value) <= limit:
        raise ValueError(f"{value} is outside -{limit}..{limit} degrees")
    return value


def _latitude_range(value: str) -> str:
    return _within(value, 90)


def _longitude_range(value: str) -> str:
    return _within(value, 180)


class GeoLocation(OcpiModel):
    """WGS84 point as decimal-degree strings with 5 to 7 decimals."""

    latitude: Annotated[
        str,
        StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$"),
        AfterValidator(_latitude_range),
    ]
    longitude: Annotated[
        str,
        StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$"),
        AfterValidator(_longitude_range),
    ]


class DisplayText(OcpiModel):
    language: _Language
    text: _String512


class AdditionalGeoLocation(GeoLocation):
    name: DisplayText | None = None


class RegularHours(OcpiModel):
    """Weekday 1 (Monday) to 7 (Sunday); begin and end are ``HH:MM`` in the Location's local
    time."""

    weekday: Annotated[int, Field(strict=True, ge=1, le=7)]
    period_begin: _HourMinute
    period_end: _HourMinute

    @field_validator("period_end")
    @classmethod
    def _end_after_begin(cls, value: str, info: ValidationInfo) -> str:
        begin = info.data.get("period_begin")
        if begin is not None and value <= begin:
            raise ValueError(f"must be later than period_begin ({begin})")
        return value


def _after_begin(value: datetime, info: ValidationInfo) -> datetime:
    begin = info.data.get("period_begin")
    if isinstance(begin, datetime) and value <= begin:
        raise ValueError(f"must be later than period_begin ({format_datetime(begin)})")
    return value


class ExceptionalPeriod(OcpiModel):
    period_begin: OcpiDateTime
    period_end: OcpiDateTime

    @field_validator("period_end")
    @classmethod
    def _end_after_begin(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _after_begin(value, info)


class Hours(OcpiModel):
    """Opening times: either ``twentyfourseven`` true (no ``regular_hours``) or false with at
    least one RegularHours."""

    twentyfourseven: StrictBool
    regular_hours: list[RegularHours] | None = Field(default=None, validate_default=True)
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None

    @field_validator("regular_hours")
    @classmethod
    def _regular_hours_xor_twentyfourseven(
        cls, value: list[RegularHours] | None, info: ValidationInfo
    ) -> list[RegularHours] | None:
        twentyfourseven = info.data.get("twentyfourseven")
        if twentyfourseven is True and value:
            raise ValueError("must be empty when twentyfourseven is true")
        if twentyfourseven is False and not value:
            raise ValueError("at least one RegularHours is required when twentyfourseven is false")
        return value


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategory
    amount: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]  # g/kWh


class EnergyMix(OcpiModel):
    is_green_energy: StrictBool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: _String64 | None = None
    energy_product_name: _String64 | None = None


class PublishTokenType(OcpiModel):
    """Who may see an unpublished Location: at least one of ``uid``, ``visual_number`` or
    ``group_id``; ``uid`` requires ``type`` and ``visual_number`` requires ``issuer``."""

    uid: CiString36 | None = None
    type: TokenType | None = None
    visual_number: _String64 | None = None
    issuer: _String64 | None = None
    group_id: CiString36 | None = None

    @model_validator(mode="after")
    def _identifies_tokens(self) -> Self:
        if self.uid is None and self.visual_number is None and self.group_id is None:
            raise ValueError("one of uid, visual_number or group_id is required")
        if self.uid is not None and self.type is None:
            raise ValueError("type is required when uid is set")
        if self.visual_number is not None and self.issuer is None:
            raise ValueError("issuer is required when visual_number is set")
        return self


class StatusSchedule(OcpiModel):
    """Planned status period (informational; the EVSE ``status`` is what counts)."""

    period_begin: OcpiDateTime
    period_end: OcpiDateTime | None = None
    status: Status

    @field_validator("period_end")
    @classmethod
    def _end_after_begin(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else _after_begin(value, info)


class Connector(OcpiModel):
    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: _PositiveInt  # V, line to neutral for AC_3_PHASE
    max_amperage: _PositiveInt  # A
    max_electric_power: _PositiveInt | None = None  # W, when lower than V x A
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: Url | None = None
    last_updated: OcpiDateTime


class EVSE(OcpiModel):
    uid: CiString36
    evse_id: _EvseId | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: list[Connector] = Field(min_length=1)
    floor_level: _String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: _String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: OcpiDateTime

    @field_validator("connectors")
    @classmethod
    def _unique_connector_ids(cls, value: list[Connector]) -> list[Connector]:
        _require_unique([c.id for c in value], "connector id")
        return value


def _require_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for item in ids:
        key = item.upper()  # CiString: case-insensitive
        if key in seen:
            raise ValueError(f"duplicate {what} {item!r}")
        seen.add(key)


def _known_time_zone(value: str) -> str:
    # ZoneInfo also loads host-specific files that are not IANA zone names.
    if value in {"localtime", "posixrules", "Factory"} or value.startswith(("posix/", "right/")):
        raise ValueError(f"{value!r} is not an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


class Location(OcpiModel):
    """A site owned by the CPO (``country_code``/``party_id``) grouping EVSEs. Fields in spec
    order, which is also the JSON order."""

    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    publish: StrictBool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: _String255 | None = None
    address: _String255
    city: _String45
    postal_code: _String10 | None = None
    state: _String45 | None = None
    country: _Alpha3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: Annotated[_String255, AfterValidator(_known_time_zone)]
    opening_times: Hours | None = None
    charging_when_closed: StrictBool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime

    @field_validator("publish_allowed_to")
    @classmethod
    def _only_when_unpublished(
        cls, value: list[PublishTokenType] | None, info: ValidationInfo
    ) -> list[PublishTokenType] | None:
        if value and info.data.get("publish") is True:
            raise ValueError("only allowed when publish is false")
        return value

    @field_validator("evses")
    @classmethod
    def _unique_evse_uids(cls, value: list[EVSE] | None) -> list[EVSE] | None:
        if value:
            _require_unique([e.uid for e in value], "EVSE uid")
        return value


# --- PATCH bodies ---------------------------------------------------------------------------


def evse_status_patch(status: Status, last_updated: datetime) -> dict[str, str]:
    """Body of the EVSE status PATCH pushed to eMSP receivers (``last_updated`` is mandatory in
    every PATCH)."""
    return {"status": Status(status).value, "last_updated": format_datetime(last_updated)}
