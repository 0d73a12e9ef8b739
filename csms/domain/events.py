"""Domain events: facts, past tense, appended to the event log in the same database
transaction as the state change they describe. The OCPI bridge projects them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from csms.domain.model import (
    ConnectorStatus,
    EvseRef,
    IdToken,
    MeterReading,
    OcppVersion,
    RegistrationStatus,
)
from csms.domain.requests import ChargerIdentity


@dataclass(frozen=True, kw_only=True, slots=True)
class DomainEvent:
    charger_id: str
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerConnected(DomainEvent):
    ocpp_version: OcppVersion


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerDisconnected(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerBooted(DomainEvent):
    identity: ChargerIdentity
    status: RegistrationStatus
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectorStatusChanged(DomainEvent):
    evse: EvseRef
    status: ConnectorStatus
    previous_status: ConnectorStatus | None = None
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionStarted(DomainEvent):
    transaction_ref: str
    evse: EvseRef
    id_token: IdToken | None
    meter_start_wh: int
    reservation_id: int | None = None
    remote_start_id: int | None = None
    offline: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterValuesSampled(DomainEvent):
    evse: EvseRef
    transaction_ref: str | None
    readings: tuple[MeterReading, ...] = field(default=())
    energy_wh: int | None = None
    """Energy delivered in the transaction so far (register minus meter start), if known."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionEnded(DomainEvent):
    transaction_ref: str
    evse: EvseRef
    meter_stop_wh: int
    energy_wh: int
    reason: str
    id_token: IdToken | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownTransactionStopped(DomainEvent):
    """A stop for a transaction id never seen started; kept for the operator, not billed."""

    transaction_ref: str
    meter_stop_wh: int
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerNotified(DomainEvent):
    """Firmware, diagnostics or log status reported by the charger."""

    kind: str
    status: str
    request_id: int | None = None


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    ChargerConnected,
    ChargerDisconnected,
    ChargerBooted,
    ConnectorStatusChanged,
    TransactionStarted,
    MeterValuesSampled,
    TransactionEnded,
    UnknownTransactionStopped,
    ChargerNotified,
)
