"""What chargers ask of the central system, and what it decides (version-neutral)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

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


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerIdentity:
    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None
    iccid: str | None = None
    imsi: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BootRequest:
    charger_id: str
    identity: ChargerIdentity
    ocpp_version: OcppVersion
    reason: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class BootDecision:
    status: RegistrationStatus
    interval_s: int
    current_time: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    charger_id: str
    evse: EvseRef
    status: ConnectorStatus
    reported_at: datetime
    error_code: str | None = None
    info: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthorizationRequest:
    charger_id: str
    id_token: IdToken
    evse: EvseRef | None = None
    remote_start_id: int | None = None
    """2.0.1: the transaction was started by our RequestStartTransaction with this id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DriverMessage:
    """A message for the driver's display (2.0.1 ``personalMessage``)."""

    text: str
    language: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthorizationDecision:
    status: AuthorizationStatus
    expires_at: datetime | None = None
    """Until when the charger may keep the answer in its authorization cache (1.6
    ``expiryDate``, 2.0.1 ``cacheExpiryDateTime``); ``now`` keeps it out of the cache."""
    group_id: str | None = None
    reference: str | None = None
    """The authorizer's own id for this decision, opaque to the central system. It is stored
    with the transaction the decision started and carried by its events, so that whoever
    decided (the OCPI bridge: which eMSP owns the token, how it was authorized) can find it."""
    evse_ids: tuple[int, ...] = ()
    """The only EVSEs of the charger the driver may use (2.0.1 ``evseId``); empty: any."""
    message: DriverMessage | None = None

    @property
    def accepted(self) -> bool:
        return self.status is AuthorizationStatus.ACCEPTED


@dataclass(frozen=True, kw_only=True, slots=True)
class StartTransactionRequest:
    """A transaction that the charger started (1.6 StartTransaction)."""

    charger_id: str
    evse: EvseRef
    id_token: IdToken
    meter_start_wh: int
    started_at: datetime
    reservation_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StartTransactionDecision:
    transaction_ref: str
    authorization: AuthorizationDecision


@dataclass(frozen=True, kw_only=True, slots=True)
class MeterValuesReport:
    charger_id: str
    evse: EvseRef
    readings: tuple[MeterReading, ...]
    transaction_ref: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StopTransactionRequest:
    charger_id: str
    transaction_ref: str
    meter_stop_wh: int
    ended_at: datetime
    reason: str
    id_token: IdToken | None = None
    readings: tuple[MeterReading, ...] = field(default=())


@dataclass(frozen=True, kw_only=True, slots=True)
class StopTransactionDecision:
    """``known`` is false when the charger stopped a transaction we never saw started."""

    known: bool
    already_ended: bool
    authorization: AuthorizationDecision | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class DataTransferRequest:
    charger_id: str
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


class DataTransferStatus(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_MESSAGE_ID = "UnknownMessageId"
    UNKNOWN_VENDOR_ID = "UnknownVendorId"


@dataclass(frozen=True, kw_only=True, slots=True)
class DataTransferDecision:
    status: DataTransferStatus
    data: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class NotificationReport:
    """Firmware / diagnostics / log status notifications."""

    charger_id: str
    kind: str  # "firmware" | "diagnostics" | "log"
    status: str
    reported_at: datetime
    request_id: int | None = None


class TransactionEventType(StrEnum):
    STARTED = "Started"
    UPDATED = "Updated"
    ENDED = "Ended"


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionEventReport:
    """A transaction event whose id the charger chose (OCPP 2.0.1 TransactionEvent)."""

    charger_id: str
    event_type: TransactionEventType
    transaction_ref: str
    seq_no: int
    occurred_at: datetime
    trigger_reason: str
    evse: EvseRef | None = None
    id_token: IdToken | None = None
    charging_state: ChargingState | None = None
    stopped_reason: str | None = None
    remote_start_id: int | None = None
    reservation_id: int | None = None
    offline: bool = False
    readings: tuple[MeterReading, ...] = field(default=())


class TransactionEventOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    AFTER_END = "after-end"
    UNKNOWN_TRANSACTION = "unknown-transaction"


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionEventDecision:
    outcome: TransactionEventOutcome
    authorization: AuthorizationDecision | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class InventoryPage:
    """One page of a 2.0.1 base report, reduced to the EVSEs and connectors it describes."""

    charger_id: str
    request_id: int
    seq_no: int
    more_pages: bool
    evses: tuple[EvseInventory, ...] = field(default=())
