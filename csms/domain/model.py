"""Core value types shared by requests, decisions and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class OcppVersion(StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"


@dataclass(frozen=True, kw_only=True, slots=True)
class EvseRef:
    """Where on a charger something happens.

    OCPP 2.0.1 reports EVSE and connector ids. An OCPP 1.6 connectorId N is one EVSE of its own
    (``EvseRef(ocpp_evse_id=N, connector_id=1)``); connectorId 0, the whole charger, is
    ``EvseRef(ocpp_evse_id=0, connector_id=0)``.
    """

    ocpp_evse_id: int
    connector_id: int


WHOLE_CHARGER = EvseRef(ocpp_evse_id=0, connector_id=0)


class IdTokenKind(StrEnum):
    """OCPP 2.0.1 IdTokenEnumType; OCPP 1.6 idTags are read as ISO14443 (RFID)."""

    CENTRAL = "Central"
    EMAID = "eMAID"
    ISO14443 = "ISO14443"
    ISO15693 = "ISO15693"
    KEY_CODE = "KeyCode"
    LOCAL = "Local"
    MAC_ADDRESS = "MacAddress"
    NO_AUTHORIZATION = "NoAuthorization"


@dataclass(frozen=True, kw_only=True, slots=True)
class IdToken:
    value: str
    kind: IdTokenKind = IdTokenKind.ISO14443


class RegistrationStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(StrEnum):
    """Union of the 1.6 ChargePointStatus and 2.0.1 ConnectorStatusEnumType values."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class AuthorizationStatus(StrEnum):
    """Union of the 1.6 and 2.0.1 authorization statuses."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    NO_CREDIT = "NoCredit"
    NOT_ALLOWED_TYPE_EVSE = "NotAllowedTypeEVSE"
    NOT_AT_THIS_LOCATION = "NotAtThisLocation"
    NOT_AT_THIS_TIME = "NotAtThisTime"
    UNKNOWN = "Unknown"


class ChargingState(StrEnum):
    """OCPP 2.0.1 ChargingStateEnumType: what the vehicle and EVSE are doing in a transaction."""

    CHARGING = "Charging"
    EV_CONNECTED = "EVConnected"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    IDLE = "Idle"


class ReadingContext(StrEnum):
    INTERRUPTION_BEGIN = "Interruption.Begin"
    INTERRUPTION_END = "Interruption.End"
    OTHER = "Other"
    SAMPLE_CLOCK = "Sample.Clock"
    SAMPLE_PERIODIC = "Sample.Periodic"
    TRANSACTION_BEGIN = "Transaction.Begin"
    TRANSACTION_END = "Transaction.End"
    TRIGGER = "Trigger"


ENERGY_IMPORT_REGISTER = "Energy.Active.Import.Register"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedMeterValue:
    """Signed data exactly as the charger sent it (kept for dispute resolution)."""

    data: str
    signing_method: str | None = None
    encoding_method: str | None = None
    public_key: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterReading:
    """One sampled value, normalized: energy in Wh, power in W, reactive in var/varh.

    ``value`` is ``None`` only for a 1.6 ``SignedData`` sample whose value is the signed blob.
    """

    sampled_at: datetime
    measurand: str
    value: Decimal | None
    unit: str
    context: ReadingContext = ReadingContext.SAMPLE_PERIODIC
    phase: str | None = None
    location: str = "Outlet"
    signed: SignedMeterValue | None = None

    @property
    def is_energy_import_register(self) -> bool:
        return (
            self.measurand == ENERGY_IMPORT_REGISTER
            and self.unit == "Wh"
            and self.value is not None
            and self.location == "Outlet"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectorInventory:
    connector_id: int
    connector_type: str | None = None
    """OCPP 2.0.1 ConnectorEnumType (``cType2``, ``sType2``, ``cCCS2`` ...) when reported."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EvseInventory:
    """An EVSE as the charger described it (2.0.1 device model report)."""

    ocpp_evse_id: int
    connectors: tuple[ConnectorInventory, ...] = ()
    max_power_w: int | None = None
    supply_phases: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerFacts:
    """What the central system knows about a charger, for the bridge's site inventory."""

    charger_id: str
    ocpp_version: OcppVersion | None = None
    """``None`` until the charger connected once."""
    evses: tuple[EvseInventory, ...] = ()
    """As reported: the 2.0.1 base report, or 1.6 ``NumberOfConnectors`` (EVSE N = connectorId
    N with one connector 1). Empty while nothing was reported."""
