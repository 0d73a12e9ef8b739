"""OCPI 2.2.1 objects the eMSP simulator receives, serves or sends, written from the spec
(never shared with the bridge, whose schema bugs the simulator exists to catch).

Validation is strict: unknown fields are refused, strings are length- and charset-checked
(``CiString(n)`` printable ASCII, ``string(n)`` printable UTF-8), integers and booleans are
not coerced from strings, numbers must be JSON numbers (kept as ``Decimal``), DateTimes must be
UTC (``Z`` or no zone, at most 25 characters). Optional fields accept JSON ``null``.

Serialize with ``dump(model)`` (JSON-ready: DateTime as ``...Z`` text, numbers as JSON numbers,
fields the sender left out stay out).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    Strict,
    StringConstraints,
    model_validator,
)

from simulators.emsp.wire import InterfaceRole, format_datetime, parse_datetime

# --- Types -----------------------------------------------------------------------------------


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime")
        return value
    if not isinstance(value, str):
        raise ValueError("DateTime must be a string")
    return parse_datetime(value)


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number")
    return value


def _one_decimal(value: Any) -> Any:
    """A JSON number with at most one decimal (OCPI charging limits and rates)."""
    exact = Decimal(str(_number(value)))
    if not exact.is_finite() or exact != exact.quantize(Decimal("0.1")):
        raise ValueError("must be a number with at most one decimal")
    return value


DateTime = Annotated[
    datetime, PlainValidator(_datetime), PlainSerializer(format_datetime, when_used="json")
]
Number = Annotated[Decimal, BeforeValidator(_number), PlainSerializer(float, when_used="json")]
OneDecimal = Annotated[
    Decimal, BeforeValidator(_one_decimal), PlainSerializer(float, when_used="json")
]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]

_PRINTABLE_ASCII = r"^[\x20-\x7e]*$"
_PRINTABLE_UTF8 = r"^[^\x00-\x1f\x7f]*$"


CiString3 = Annotated[str, Strict(), StringConstraints(max_length=3, pattern=_PRINTABLE_ASCII)]
CiString4 = Annotated[str, Strict(), StringConstraints(max_length=4, pattern=_PRINTABLE_ASCII)]
CiString32 = Annotated[str, Strict(), StringConstraints(max_length=32, pattern=_PRINTABLE_ASCII)]
CiString36 = Annotated[str, Strict(), StringConstraints(max_length=36, pattern=_PRINTABLE_ASCII)]
CiString39 = Annotated[str, Strict(), StringConstraints(max_length=39, pattern=_PRINTABLE_ASCII)]
CiString48 = Annotated[str, Strict(), StringConstraints(max_length=48, pattern=_PRINTABLE_ASCII)]
String2 = Annotated[str, Strict(), StringConstraints(max_length=2, pattern=_PRINTABLE_UTF8)]
String4 = Annotated[str, Strict(), StringConstraints(max_length=4, pattern=_PRINTABLE_UTF8)]
String5 = Annotated[str, Strict(), StringConstraints(max_length=5, pattern=_PRINTABLE_UTF8)]
String10 = Annotated[str, Strict(), StringConstraints(max_length=10, pattern=_PRINTABLE_UTF8)]
String16 = Annotated[str, Strict(), StringConstraints(max_length=16, pattern=_PRINTABLE_UTF8)]
String20 = Annotated[str, Strict(), StringConstraints(max_length=20, pattern=_PRINTABLE_UTF8)]
String45 = Annotated[str, Strict(), StringConstraints(max_length=45, pattern=_PRINTABLE_UTF8)]
String64 = Annotated[str, Strict(), StringConstraints(max_length=64, pattern=_PRINTABLE_UTF8)]
String100 = Annotated[str, Strict(), StringConstraints(max_length=100, pattern=_PRINTABLE_UTF8)]
String255 = Annotated[str, Strict(), StringConstraints(max_length=255, pattern=_PRINTABLE_UTF8)]
String512 = Annotated[str, Strict(), StringConstraints(max_length=512, pattern=_PRINTABLE_UTF8)]
String5000 = Annotated[str, Strict(), StringConstraints(max_length=5000, pattern=_PRINTABLE_UTF8)]

CountryCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # CiString(2)
PartyId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]  # CiString(3)
Country3 = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 3166 alpha-3
Currency = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 4217
Language = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # ISO 639-1
Url = Annotated[str, Strict(), StringConstraints(max_length=255, pattern=r"^https?://\S+$")]
Latitude = Annotated[str, Strict(), StringConstraints(pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
Longitude = Annotated[str, Strict(), StringConstraints(pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]
HourMinute = Annotated[
    str, Strict(), StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")
]
Date = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"),
]
CredentialsToken = Annotated[str, Strict(), StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]


class OcpiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of ``model`` with only the fields that were set."""
    return model.model_dump(mode="json", exclude_unset=True)


# --- Enums -----------------------------------------------------------------------------------


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class Status(StrEnum):
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


class ConnectorType(StrEnum):
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


class ConnectorFormat(StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


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


class ImageCategory(StrEnum):
    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


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
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class AllowedType(StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class ProfileType(StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class SessionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class CdrDimensionType(StrEnum):
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


SESSION_ONLY_DIMENSIONS = frozenset(
    {
        CdrDimensionType.CURRENT,
        CdrDimensionType.ENERGY_EXPORT,
        CdrDimensionType.ENERGY_IMPORT,
        CdrDimensionType.POWER,
        CdrDimensionType.STATE_OF_CHARGE,
    }
)


class TariffDimensionType(StrEnum):
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


class ReservationRestrictionType(StrEnum):
    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class CommandType(StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class ChargingRateUnit(StrEnum):
    W = "W"
    A = "A"


class ChargingProfileResponseType(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


class VersionNumber(StrEnum):
    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"


# --- Shared classes --------------------------------------------------------------------------


class DisplayText(OcpiModel):
    language: Language
    text: String512


class Price(OcpiModel):
    excl_vat: Number
    incl_vat: Number | None = None


class GeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class Image(OcpiModel):
    url: Url
    thumbnail: Url | None = None
    category: ImageCategory
    type: CiString4
    width: Annotated[int, Strict(), Field(ge=0, le=99999)] | None = None
    height: Annotated[int, Strict(), Field(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiModel):
    name: String100
    website: Url | None = None
    logo: Image | None = None


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Number


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategory
    amount: Number


class EnergyMix(OcpiModel):
    is_green_energy: Bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String64 | None = None
    energy_product_name: String64 | None = None


class RegularHours(OcpiModel):
    weekday: Annotated[int, Strict(), Field(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):
    twentyfourseven: Bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class PublishTokenType(OcpiModel):
    uid: CiString36 | None = None
    type: TokenType | None = None
    visual_number: String64 | None = None
    issuer: String64 | None = None
    group_id: CiString36 | None = None

    @model_validator(mode="after")
    def _rules(self) -> PublishTokenType:
        if self.uid is None and self.visual_number is None and self.group_id is None:
            raise ValueError("one of uid, visual_number or group_id is required")
        if self.uid is not None and self.type is None:
            raise ValueError("type is required when uid is set")
        if self.visual_number is not None and self.issuer is None:
            raise ValueError("issuer is required when visual_number is set")
        return self


# --- Locations -------------------------------------------------------------------------------


class StatusSchedule(OcpiModel):
    period_begin: DateTime
    period_end: DateTime | None = None
    status: Status


class Connector(OcpiModel):
    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: Int
    max_amperage: Int
    max_electric_power: Int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: Url | None = None
    last_updated: DateTime


class EVSE(OcpiModel):
    uid: CiString36
    evse_id: CiString48 | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _unique_connectors(self) -> EVSE:
        ids = [c.id.upper() for c in self.connectors]
        if len(ids) != len(set(ids)):
            raise ValueError("connector ids must be unique within an EVSE")
        return self


class Location(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    publish: Bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String255 | None = None
    address: String255
    city: String45
    postal_code: String10 | None = None
    state: String45 | None = None
    country: Country3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255
    opening_times: Hours | None = None
    charging_when_closed: Bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _rules(self) -> Location:
        if self.publish_allowed_to and self.publish:
            raise ValueError("publish_allowed_to may only be set when publish is false")
        uids = [e.uid.upper() for e in self.evses or []]
        if len(uids) != len(set(uids)):
            raise ValueError("EVSE uids must be unique within a Location")
        return self


# --- Sessions and CDRs -----------------------------------------------------------------------


class CdrToken(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString36 | None = None


class Session(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: String255 | None = None
    currency: Currency
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class SignedValue(OcpiModel):
    nature: CiString32
    plain_data: String5000
    signed_data: String5000


class SignedData(OcpiModel):
    encoding_method: CiString36
    encoding_method_version: Int | None = None
    public_key: String512 | None = None
    signed_values: Annotated[list[SignedValue], Field(min_length=1)]
    url: String512 | None = None


class CdrLocation(OcpiModel):
    id: CiString36
    name: String255 | None = None
    address: String45
    city: String45
    postal_code: String10 | None = None
    state: String20 | None = None
    country: Country3
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: CiString48
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


# --- Tariffs ---------------------------------------------------------------------------------


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number
    vat: Number | None = None
    step_size: Annotated[int, Strict(), Field(ge=0)]


class TariffRestrictions(OcpiModel):
    start_time: HourMinute | None = None
    end_time: HourMinute | None = None
    start_date: Date | None = None
    end_date: Date | None = None
    min_kwh: Number | None = None
    max_kwh: Number | None = None
    min_current: Number | None = None
    max_current: Number | None = None
    min_power: Number | None = None
    max_power: Number | None = None
    min_duration: Int | None = None
    max_duration: Int | None = None
    day_of_week: list[DayOfWeek] | None = None
    reservation: ReservationRestrictionType | None = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None

    @model_validator(mode="after")
    def _reservation_components(self) -> TariffElement:
        if self.restrictions is not None and self.restrictions.reservation is not None:
            allowed = {TariffDimensionType.FLAT, TariffDimensionType.TIME}
            if any(c.type not in allowed for c in self.price_components):
                raise ValueError("a reservation element may only have FLAT and TIME components")
        return self


class Tariff(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    currency: Currency
    type: TariffType | None = None
    tariff_alt_text: list[DisplayText] | None = None
    tariff_alt_url: Url | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    energy_mix: EnergyMix | None = None
    last_updated: DateTime


class CDR(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString39
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: String255 | None = None
    currency: Currency
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: SignedData | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: String255 | None = None
    invoice_reference_id: CiString39 | None = None
    credit: Bool | None = None
    credit_reference_id: CiString39 | None = None
    home_charging_compensation: Bool | None = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _rules(self) -> CDR:
        for period in self.charging_periods:
            for dimension in period.dimensions:
                if dimension.type in SESSION_ONLY_DIMENSIONS:
                    raise ValueError(f"{dimension.type} is a Session-only dimension, not for CDRs")
        if self.credit and not self.credit_reference_id:
            raise ValueError("credit_reference_id is required on a credit CDR")
        return self


# --- Tokens ----------------------------------------------------------------------------------


class EnergyContract(OcpiModel):
    supplier_name: String64
    contract_id: String64 | None = None


class Token(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: String64 | None = None
    issuer: String64
    group_id: CiString36 | None = None
    valid: Bool
    whitelist: WhitelistType
    language: Language | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class LocationReferences(OcpiModel):
    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: DisplayText | None = None


# --- Commands --------------------------------------------------------------------------------


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: Int
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] | None = None


# --- ChargingProfiles ------------------------------------------------------------------------


class ChargingProfilePeriod(OcpiModel):
    start_period: Annotated[int, Strict(), Field(ge=0)]
    limit: OneDecimal


class ChargingProfile(OcpiModel):
    start_date_time: DateTime | None = None
    duration: Annotated[int, Strict(), Field(ge=0)] | None = None
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: OneDecimal | None = None
    charging_profile_period: list[ChargingProfilePeriod] | None = None

    @model_validator(mode="after")
    def _increasing_periods(self) -> ChargingProfile:
        starts = [p.start_period for p in self.charging_profile_period or []]
        if any(later <= earlier for earlier, later in itertools.pairwise(starts)):
            raise ValueError("charging_profile_period start_period values must increase")
        return self


class ActiveChargingProfile(OcpiModel):
    start_date_time: DateTime
    charging_profile: ChargingProfile


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: Url


class ChargingProfileResponse(OcpiModel):
    result: ChargingProfileResponseType
    timeout: Int


class ActiveChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None

    @model_validator(mode="after")
    def _profile_when_accepted(self) -> ActiveChargingProfileResult:
        if self.result is ChargingProfileResultType.ACCEPTED and self.profile is None:
            raise ValueError("profile is required when the result is ACCEPTED")
        return self


class ChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    result: ChargingProfileResultType


ProfileResult = ActiveChargingProfileResult | ChargingProfileResult | ClearProfileResult


# --- Versions and credentials ----------------------------------------------------------------


class Version(OcpiModel):
    version: Annotated[str, Strict(), StringConstraints(max_length=10)]
    url: Url


class Endpoint(OcpiModel):
    identifier: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=64)]
    role: InterfaceRole
    url: Url


class VersionDetails(OcpiModel):
    version: Annotated[str, Strict(), StringConstraints(max_length=10)]
    endpoints: Annotated[list[Endpoint], Field(min_length=1)]


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode


class Credentials(OcpiModel):
    token: CredentialsToken
    url: Url
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_roles(self) -> Credentials:
        keys = [(r.role, r.country_code.upper(), r.party_id.upper()) for r in self.roles]
        if len(keys) != len(set(keys)):
            raise ValueError("each (role, country_code, party_id) must be unique")
        return self


# Receiver objects by module, for validation of pushed and pulled objects.
MODULE_MODELS: dict[str, type[OcpiModel]] = {
    "locations": Location,
    "sessions": Session,
    "cdrs": CDR,
    "tariffs": Tariff,
    "tokens": Token,
}
