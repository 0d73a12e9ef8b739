"""Domain events: facts, past tense, appended to the event log in the same database
transaction as the state change they describe. The OCPI bridge projects them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from csms.domain.model import (
    AuthorizationStatus,
    ChargingState,
    ConnectorStatus,
    EvseInventory,
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
    """``EvseRef(0, 0)`` while a 2.0.1 transaction has not yet said where it is."""
    id_token: IdToken | None
    authorization: AuthorizationStatus | None
    """What the authorizer decided for ``id_token`` (a refused start is recorded, not billed)."""
    meter_start_wh: int | None
    """The energy register at the start; ``None`` until the charger reports one."""
    reservation_id: int | None = None
    remote_start_id: int | None = None
    offline: bool = False
    authorization_ref: str | None = None
    """``AuthorizationDecision.reference`` of the decision on ``id_token``."""
    readings: tuple[MeterReading, ...] = field(default=())
    """Meter readings the start carried (2.0.1 ``Transaction.Begin``, signed ones included)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionAuthorized(DomainEvent):
    """The driver's token arrived after the transaction started (2.0.1 cable first)."""

    transaction_ref: str
    evse: EvseRef
    id_token: IdToken
    authorization: AuthorizationStatus | None
    authorization_ref: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargingStateChanged(DomainEvent):
    transaction_ref: str
    evse: EvseRef
    state: ChargingState
    previous_state: ChargingState | None = None


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
    meter_stop_wh: int | None
    energy_wh: int
    reason: str
    id_token: IdToken | None = None
    readings: tuple[MeterReading, ...] = field(default=())
    """Meter readings the end carried (1.6 ``transactionData``, 2.0.1 ``Transaction.End``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UnknownTransactionStopped(DomainEvent):
    """A stop for a transaction id never seen started; kept for the operator, not billed."""

    transaction_ref: str
    meter_stop_wh: int | None
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InventoryReported(DomainEvent):
    """The charger's EVSEs and connectors, complete (last page of a 2.0.1 base report, or a 1.6
    ``NumberOfConnectors``)."""

    evses: tuple[EvseInventory, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReservationStatusChanged(DomainEvent):
    reservation_id: int
    status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargingLimitChanged(DomainEvent):
    """An external limit (EMS, grid operator) set or cleared on the charger."""

    source: str
    ocpp_evse_id: int | None
    cleared: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerNotified(DomainEvent):
    """Firmware, diagnostics or log status reported by the charger."""

    kind: str
    status: str
    request_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedEvent:
    """An event as read back from the log; ``offset`` orders the log."""

    offset: int
    event: DomainEvent


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    ChargerConnected,
    ChargerDisconnected,
    ChargerBooted,
    ConnectorStatusChanged,
    TransactionStarted,
    TransactionAuthorized,
    ChargingStateChanged,
    MeterValuesSampled,
    TransactionEnded,
    UnknownTransactionStopped,
    ChargerNotified,
    InventoryReported,
    ReservationStatusChanged,
    ChargingLimitChanged,
)
