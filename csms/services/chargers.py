"""Charger lifecycle: registration, access at the WebSocket handshake, boot, heartbeat,
connector status, notifications. Each ``handle_*`` is one database transaction."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.clock import utc_now
from csms.domain.events import (
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerNotified,
    ChargingLimitChanged,
    ConnectorStatusChanged,
    InventoryReported,
    ReservationStatusChanged,
)
from csms.domain.model import (
    ChargerFacts,
    ConnectorInventory,
    ConnectorStatus,
    EvseInventory,
    OcppVersion,
    RegistrationStatus,
)
from csms.domain.requests import (
    BootDecision,
    BootRequest,
    DataTransferDecision,
    DataTransferRequest,
    DataTransferStatus,
    InventoryPage,
    NotificationReport,
    StatusReport,
)
from csms.errors import ChargerAlreadyExists, InvalidChargerId, UnknownCharger
from csms.passwords import hash_password, verify_password
from csms.store.database import Database
from csms.store.tables import ChargerRow, ConnectorRow, InventoryRow

log = logging.getLogger(__name__)

# OCPP-J: the identity is the last path segment, at most 48 characters; 2.0.1 forbids ":" because
# it is also the Basic auth user name.
_CHARGER_ID = re.compile(r"^[\x21-\x7e]{1,48}$")


def validate_charger_id(charger_id: str) -> str:
    if not _CHARGER_ID.match(charger_id) or ":" in charger_id or "/" in charger_id:
        raise InvalidChargerId(
            f"invalid charger id {charger_id!r}: 1-48 printable ASCII characters, no ':' or '/'"
        )
    return charger_id


class Access(StrEnum):
    ALLOWED = "allowed"
    UNKNOWN_CHARGER = "unknown-charger"
    BAD_CREDENTIALS = "bad-credentials"


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerSummary:
    charger_id: str
    auth: str
    boot_status: str
    connected: bool
    ocpp_version: str | None
    vendor: str | None
    model: str | None
    last_seen_at: datetime | None


class ChargerService:
    def __init__(
        self,
        db: Database,
        *,
        heartbeat_interval_s: int,
        auto_register: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._interval_s = heartbeat_interval_s
        self._auto_register = auto_register
        self._clock = clock
        # Verified (charger, password, stored hash) triples: a reconnect storm must not cost one
        # scrypt per charger each time.
        self._verified: dict[str, str] = {}

    # --- operator side -------------------------------------------------------------------

    async def register(
        self,
        charger_id: str,
        *,
        password: str | None,
        allow_no_auth: bool = False,
        boot_status: RegistrationStatus = RegistrationStatus.ACCEPTED,
    ) -> None:
        validate_charger_id(charger_id)
        password_hash = await asyncio.to_thread(hash_password, password) if password else None
        async with self._db.transaction() as uow:
            if await uow.session.get(ChargerRow, charger_id) is not None:
                raise ChargerAlreadyExists(charger_id)
            uow.session.add(
                ChargerRow(
                    charger_id=charger_id,
                    password_hash=password_hash,
                    allow_no_auth=allow_no_auth,
                    boot_status=boot_status.value,
                    created_at=self._clock(),
                )
            )

    async def charger_facts(self) -> dict[str, ChargerFacts]:
        """Every registered charger with what it reported about itself (``ChargerDirectory``):
        two queries in one read, whatever the number of chargers."""
        async with self._db.read() as session:
            chargers = (await session.exec(select(ChargerRow))).all()
            inventory = (await session.exec(select(InventoryRow))).all()
        rows_of: dict[str, list[InventoryRow]] = {}
        for row in inventory:
            rows_of.setdefault(row.charger_id, []).append(row)
        return {
            charger.charger_id: ChargerFacts(
                charger_id=charger.charger_id,
                ocpp_version=OcppVersion(charger.ocpp_version) if charger.ocpp_version else None,
                evses=inventory_of(rows_of.get(charger.charger_id, ())),
            )
            for charger in chargers
        }

    async def list_chargers(self) -> Sequence[ChargerSummary]:
        async with self._db.read() as session:
            rows = (await session.exec(select(ChargerRow).order_by(ChargerRow.charger_id))).all()
        return [
            ChargerSummary(
                charger_id=row.charger_id,
                auth="basic" if row.password_hash else ("none" if row.allow_no_auth else "locked"),
                boot_status=row.boot_status,
                connected=row.connected,
                ocpp_version=row.ocpp_version,
                vendor=row.vendor,
                model=row.model,
                last_seen_at=row.last_seen_at,
            )
            for row in rows
        ]

    # --- transport edge ------------------------------------------------------------------

    async def check_access(self, charger_id: str, password: str | None) -> Access:
        """Decide the WebSocket handshake: known charger and right credentials."""
        async with self._db.read() as session:
            row = await session.get(ChargerRow, charger_id)
        if row is None:
            if not self._auto_register:
                return Access.UNKNOWN_CHARGER
            await self._auto_registered(charger_id)
            return Access.ALLOWED
        if row.password_hash is None:
            return Access.ALLOWED if row.allow_no_auth else Access.BAD_CREDENTIALS
        if password is None:
            return Access.BAD_CREDENTIALS
        key = hashlib.sha256(f"{password}\0{row.password_hash}".encode()).hexdigest()
        if self._verified.get(charger_id) == key:
            return Access.ALLOWED
        if await asyncio.to_thread(verify_password, password, row.password_hash):
            self._verified[charger_id] = key
            return Access.ALLOWED
        return Access.BAD_CREDENTIALS

    async def _auto_registered(self, charger_id: str) -> None:
        async with self._db.transaction() as uow:
            if await uow.session.get(ChargerRow, charger_id) is None:
                log.warning("auto-registering unknown charger %s", charger_id)
                uow.session.add(
                    ChargerRow(
                        charger_id=charger_id,
                        allow_no_auth=True,
                        auto_registered=True,
                        created_at=self._clock(),
                    )
                )

    async def mark_all_disconnected(self) -> None:
        now = self._clock()
        async with self._db.transaction() as uow:
            stmt = select(ChargerRow).where(col(ChargerRow.connected).is_(True))
            for row in (await uow.session.exec(stmt)).all():
                log.warning("charger %s was left connected by a previous run", row.charger_id)
                row.connected = False
                row.disconnected_at = now
                uow.session.add(row)
                uow.record(ChargerDisconnected(charger_id=row.charger_id, occurred_at=now))

    async def handle_connected(self, charger_id: str, version: OcppVersion) -> None:
        now = self._clock()
        async with self._db.transaction() as uow:
            row = await self._charger(uow.session, charger_id)
            row.connected = True
            row.connected_at = now
            row.last_seen_at = now
            row.ocpp_version = version.value
            uow.session.add(row)
            uow.record(
                ChargerConnected(charger_id=charger_id, occurred_at=now, ocpp_version=version)
            )

    async def handle_disconnected(self, charger_id: str) -> None:
        now = self._clock()
        async with self._db.transaction() as uow:
            row = await self._charger(uow.session, charger_id)
            row.connected = False
            row.disconnected_at = now
            uow.session.add(row)
            uow.record(ChargerDisconnected(charger_id=charger_id, occurred_at=now))

    # --- messages from chargers ----------------------------------------------------------

    async def is_accepted(self, charger_id: str) -> bool:
        """False while the operator keeps the charger Pending or Rejected."""
        async with self._db.read() as session:
            row = await session.get(ChargerRow, charger_id)
        return row is not None and row.boot_status == RegistrationStatus.ACCEPTED

    async def handle_boot(self, request: BootRequest) -> BootDecision:
        now = self._clock()
        identity = request.identity
        async with self._db.transaction() as uow:
            row = await self._charger(uow.session, request.charger_id)
            status = RegistrationStatus(row.boot_status)
            row.vendor = identity.vendor
            row.model = identity.model
            row.serial_number = identity.serial_number
            row.firmware_version = identity.firmware_version
            row.meter_type = identity.meter_type
            row.meter_serial_number = identity.meter_serial_number
            row.iccid = identity.iccid
            row.imsi = identity.imsi
            row.ocpp_version = request.ocpp_version.value
            row.last_boot_at = now
            row.last_seen_at = now
            uow.session.add(row)
            uow.record(
                ChargerBooted(
                    charger_id=request.charger_id,
                    occurred_at=now,
                    identity=identity,
                    status=status,
                    reason=request.reason,
                )
            )
        return BootDecision(status=status, interval_s=self._interval_s, current_time=now)

    async def handle_heartbeat(self, charger_id: str) -> datetime:
        now = self._clock()
        async with self._db.transaction() as uow:
            await mark_seen(uow.session, charger_id, now)
        return now

    async def handle_status(self, report: StatusReport) -> None:
        """Statuses apply in arrival order (chargers send them in order; their clocks may jump):
        the reported time is kept, never used to discard a status. Core statements, not the
        ORM: every status of every charger comes this way."""
        now = self._clock()
        evse = report.evse
        key = {
            "charger_id": report.charger_id,
            "ocpp_evse_id": evse.ocpp_evse_id,
            "connector_id": evse.connector_id,
        }
        values = {
            "status": report.status.value,
            "error_code": report.error_code,
            "info": report.info,
            "vendor_error_code": report.vendor_error_code,
            "status_at": report.reported_at,
            "updated_at": now,
        }
        async with self._db.transaction() as uow:
            await mark_seen(uow.session, report.charger_id, now)
            connection = await uow.session.connection()
            stored = (await connection.execute(_CONNECTOR_STATUS, key)).first()
            if stored is None:
                previous = None
                uow.insert(ConnectorRow, key | values)
            else:
                previous = ConnectorStatus(stored.status)
                uow.update(ConnectorRow, key, values)
            if stored is None or (stored.status, stored.error_code) != (
                report.status.value,
                report.error_code,
            ):
                uow.record(
                    ConnectorStatusChanged(
                        charger_id=report.charger_id,
                        occurred_at=report.reported_at,
                        evse=evse,
                        status=report.status,
                        previous_status=previous,
                        error_code=report.error_code,
                        info=report.info,
                        vendor_error_code=report.vendor_error_code,
                    )
                )

    async def handle_notification(self, report: NotificationReport) -> None:
        async with self._db.transaction() as uow:
            row = await self._charger(uow.session, report.charger_id)
            if report.kind == "firmware":
                row.firmware_status = report.status
            elif report.kind == "diagnostics":
                row.diagnostics_status = report.status
            row.last_seen_at = self._clock()
            uow.session.add(row)
            uow.record(
                ChargerNotified(
                    charger_id=report.charger_id,
                    occurred_at=report.reported_at,
                    kind=report.kind,
                    status=report.status,
                    request_id=report.request_id,
                )
            )

    async def handle_inventory_page(self, page: InventoryPage) -> None:
        """Store a page of a 2.0.1 base report; the first page replaces what was known, the
        last one publishes the complete inventory."""
        async with self._db.transaction() as uow:
            session = uow.session
            await self._charger(session, page.charger_id)
            if page.seq_no == 0:
                connection = await session.connection()
                await connection.execute(
                    delete(InventoryRow).where(col(InventoryRow.charger_id) == page.charger_id)
                )
            for evse in page.evses:
                await _upsert_inventory(session, page.charger_id, evse)
            if page.more_pages:
                return
            stmt = select(InventoryRow).where(InventoryRow.charger_id == page.charger_id)
            rows = (await session.exec(stmt)).all()
            uow.record(
                InventoryReported(
                    charger_id=page.charger_id,
                    occurred_at=self._clock(),
                    evses=inventory_of(rows),
                )
            )

    async def handle_connector_count(self, charger_id: str, count: int) -> bool:
        """Replace the inventory of a 1.6 charger that reported ``NumberOfConnectors``: EVSE N
        is connectorId N, with one connector 1 (see ``EvseRef``). Records ``InventoryReported``
        only when the inventory changed; returns whether it did."""
        if count < 1:
            raise ValueError(f"a charger has at least one connector, not {count}")
        evses = tuple(
            EvseInventory(ocpp_evse_id=n, connectors=(ConnectorInventory(connector_id=1),))
            for n in range(1, count + 1)
        )
        async with self._db.transaction() as uow:
            session = uow.session
            await self._charger(session, charger_id)
            stmt = select(InventoryRow).where(InventoryRow.charger_id == charger_id)
            rows = (await session.exec(stmt)).all()
            if inventory_of(rows) == evses:
                log.info("%s still has %d connector(s): inventory unchanged", charger_id, count)
                return False
            for row in rows:
                await session.delete(row)
            await session.flush()
            for evse in evses:
                session.add(
                    InventoryRow(
                        charger_id=charger_id, ocpp_evse_id=evse.ocpp_evse_id, connector_id=0
                    )
                )
                for connector in evse.connectors:
                    session.add(
                        InventoryRow(
                            charger_id=charger_id,
                            ocpp_evse_id=evse.ocpp_evse_id,
                            connector_id=connector.connector_id,
                        )
                    )
            uow.record(
                InventoryReported(charger_id=charger_id, occurred_at=self._clock(), evses=evses)
            )
        return True

    async def handle_reservation_status(
        self, charger_id: str, reservation_id: int, status: str
    ) -> None:
        async with self._db.transaction() as uow:
            await self._charger(uow.session, charger_id)
            uow.record(
                ReservationStatusChanged(
                    charger_id=charger_id,
                    occurred_at=self._clock(),
                    reservation_id=reservation_id,
                    status=status,
                )
            )

    async def handle_charging_limit(
        self, charger_id: str, *, source: str, ocpp_evse_id: int | None, cleared: bool
    ) -> None:
        async with self._db.transaction() as uow:
            await self._charger(uow.session, charger_id)
            uow.record(
                ChargingLimitChanged(
                    charger_id=charger_id,
                    occurred_at=self._clock(),
                    source=source,
                    ocpp_evse_id=ocpp_evse_id,
                    cleared=cleared,
                )
            )

    async def handle_data_transfer(self, request: DataTransferRequest) -> DataTransferDecision:
        """No vendor extensions are installed: every vendor id is unknown."""
        log.info(
            "DataTransfer from %s for unknown vendor %r (message %r)",
            request.charger_id,
            request.vendor_id,
            request.message_id,
        )
        return DataTransferDecision(status=DataTransferStatus.UNKNOWN_VENDOR_ID)

    async def _charger(self, session: AsyncSession, charger_id: str) -> ChargerRow:
        return await charger_row(session, charger_id)


_CONNECTOR_STATUS = select(col(ConnectorRow.status), col(ConnectorRow.error_code)).where(
    col(ConnectorRow.charger_id) == bindparam("charger_id"),
    col(ConnectorRow.ocpp_evse_id) == bindparam("ocpp_evse_id"),
    col(ConnectorRow.connector_id) == bindparam("connector_id"),
)


async def mark_seen(session: AsyncSession, charger_id: str, now: datetime) -> None:
    """Note that the charger was heard from (one UPDATE, no load of its row); raises
    ``UnknownCharger`` for a charger that is not registered."""
    connection = await session.connection()
    result = await connection.execute(
        update(ChargerRow).where(col(ChargerRow.charger_id) == charger_id),
        {"last_seen_at": now},
    )
    if result.rowcount != 1:
        raise UnknownCharger(charger_id)


async def charger_row(session: AsyncSession, charger_id: str) -> ChargerRow:
    row = await session.get(ChargerRow, charger_id)
    if row is None:
        raise UnknownCharger(charger_id)
    return row


async def _upsert_inventory(session: AsyncSession, charger_id: str, evse: EvseInventory) -> None:
    key = (charger_id, evse.ocpp_evse_id, 0)
    row = await session.get(InventoryRow, key) or InventoryRow(
        charger_id=charger_id, ocpp_evse_id=evse.ocpp_evse_id, connector_id=0
    )
    row.max_power_w = evse.max_power_w if evse.max_power_w is not None else row.max_power_w
    row.supply_phases = evse.supply_phases if evse.supply_phases is not None else row.supply_phases
    session.add(row)
    for connector in evse.connectors:
        key = (charger_id, evse.ocpp_evse_id, connector.connector_id)
        crow = await session.get(InventoryRow, key) or InventoryRow(
            charger_id=charger_id,
            ocpp_evse_id=evse.ocpp_evse_id,
            connector_id=connector.connector_id,
        )
        if connector.connector_type is not None:
            crow.connector_type = connector.connector_type
        session.add(crow)


def inventory_of(rows: Sequence[InventoryRow]) -> tuple[EvseInventory, ...]:
    evses: dict[int, InventoryRow] = {}
    connectors: dict[int, list[ConnectorInventory]] = {}
    for row in sorted(rows, key=lambda r: (r.ocpp_evse_id, r.connector_id)):
        if row.connector_id == 0:
            evses[row.ocpp_evse_id] = row
        else:
            connectors.setdefault(row.ocpp_evse_id, []).append(
                ConnectorInventory(connector_id=row.connector_id, connector_type=row.connector_type)
            )
    ids = sorted(set(evses) | set(connectors))
    return tuple(
        EvseInventory(
            ocpp_evse_id=evse_id,
            connectors=tuple(connectors.get(evse_id, ())),
            max_power_w=evses[evse_id].max_power_w if evse_id in evses else None,
            supply_phases=evses[evse_id].supply_phases if evse_id in evses else None,
        )
        for evse_id in ids
    )
