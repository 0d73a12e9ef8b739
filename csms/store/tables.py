"""Database tables of the central system (SQLModel). Times are stored as UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from csms.store.types import UtcDateTime


def _utc_column(nullable: bool = True) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable)


class ChargerRow(SQLModel, table=True):
    __tablename__ = "chargers"

    charger_id: str = Field(primary_key=True, max_length=48)
    password_hash: str | None = None
    allow_no_auth: bool = False
    boot_status: str = "Accepted"
    auto_registered: bool = False
    ocpp_version: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    connected: bool = False
    connected_at: datetime | None = Field(default=None, sa_column=_utc_column())
    disconnected_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_seen_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_boot_at: datetime | None = Field(default=None, sa_column=_utc_column())
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ConnectorRow(SQLModel, table=True):
    __tablename__ = "connectors"

    charger_id: str = Field(primary_key=True, foreign_key="chargers.charger_id")
    ocpp_evse_id: int = Field(primary_key=True)
    connector_id: int = Field(primary_key=True)
    status: str
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None
    status_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))


class TransactionRow(SQLModel, table=True):
    """One charging transaction. For OCPP 1.6 the primary key is the transactionId we allocate."""

    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("charger_id", "transaction_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    charger_id: str = Field(foreign_key="chargers.charger_id", index=True)
    transaction_ref: str = Field(max_length=36)
    ocpp_evse_id: int
    connector_id: int
    id_token: str | None = None
    id_token_kind: str | None = None
    meter_start_wh: int | None = None
    last_meter_wh: int | None = None
    meter_stop_wh: int | None = None
    started_at: datetime = Field(sa_column=_utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column())
    stop_reason: str | None = None
    stop_id_token: str | None = None
    reservation_id: int | None = None
    remote_start_id: int | None = None
    authorization_status: str | None = None
    authorization_ref: str | None = Field(
        default=None, max_length=64, description="the authorizer's id of its decision"
    )
    charging_state: str | None = None
    offline: bool = False
    last_seq_no: int | None = None
    seq_gap_count: int = Field(
        default=0, description="2.0.1 seqNos below the highest seen that never arrived"
    )
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))

    @property
    def energy_wh(self) -> int:
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.last_meter_wh
        if end is None or self.meter_start_wh is None:
            return 0
        return max(0, end - self.meter_start_wh)


class TransactionEventRow(SQLModel, table=True):
    """2.0.1 TransactionEvents applied, by seqNo: de-duplication and gap detection."""

    __tablename__ = "transaction_events"
    __table_args__ = (Index("ix_transaction_events_tx_seq", "transaction_id", "seq_no"),)

    id: int | None = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="transactions.id")
    seq_no: int
    event_type: str
    trigger_reason: str
    occurred_at: datetime = Field(sa_column=_utc_column(nullable=False))
    offline: bool = False


class InventoryRow(SQLModel, table=True):
    """EVSEs (``connector_id`` 0) and connectors a charger reported about itself."""

    __tablename__ = "inventory"

    charger_id: str = Field(primary_key=True, foreign_key="chargers.charger_id")
    ocpp_evse_id: int = Field(primary_key=True)
    connector_id: int = Field(primary_key=True)
    connector_type: str | None = None
    max_power_w: int | None = None
    supply_phases: int | None = None


class MeterValueRow(SQLModel, table=True):
    __tablename__ = "meter_values"
    __table_args__ = (Index("ix_meter_values_tx_time", "transaction_id", "sampled_at"),)

    id: int | None = Field(default=None, primary_key=True)
    charger_id: str
    transaction_id: int | None = Field(default=None, foreign_key="transactions.id")
    ocpp_evse_id: int
    connector_id: int
    sampled_at: datetime = Field(sa_column=_utc_column(nullable=False))
    measurand: str
    value: str | None = Field(default=None, description="Decimal in the normalized unit")
    unit: str
    context: str
    phase: str | None = None
    location: str
    signed_data: str | None = Field(default=None, sa_column=Column(Text))
    signing_method: str | None = None
    encoding_method: str | None = None
    public_key: str | None = Field(default=None, sa_column=Column(Text))


class EventRow(SQLModel, table=True):
    """The append-only domain event log; ``id`` is the offset consumers track."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=64)
    charger_id: str
    occurred_at: datetime = Field(sa_column=_utc_column(nullable=False))
    recorded_at: datetime = Field(sa_column=_utc_column(nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))


class FrameRow(SQLModel, table=True):
    """Every OCPP frame in and out, verbatim, for dispute resolution."""

    __tablename__ = "ocpp_frames"
    __table_args__ = (Index("ix_ocpp_frames_charger_at", "charger_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    charger_id: str
    direction: str = Field(max_length=3)  # "in" | "out"
    at: datetime = Field(sa_column=_utc_column(nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))


class LocalTokenRow(SQLModel, table=True):
    """The local token table behind the csms' own authorizer."""

    __tablename__ = "local_tokens"

    id_tag: str = Field(primary_key=True, max_length=36)
    status: str = "Accepted"
    expires_at: datetime | None = Field(default=None, sa_column=_utc_column())
    parent_id_tag: str | None = None
