"""Storage of the OCPI Locations and of the live inputs of their EVSE statuses.

Write helpers take the caller's session, so that a change, the projector's offset and the
outbox rows describing it commit together. Reads for the Sender interface return the stored
OCPI JSON as text: no model is rebuilt for a GET."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.locations import Location
from bridge.store.pagination import DocumentPages
from bridge.store.tables import (
    ChargerLinkRow,
    ConnectorStateRow,
    EvseBindingRow,
    LocationRow,
    ProjectorOffsetRow,
)
from csms.domain.model import ConnectorStatus
from csms.store.database import Database


@dataclass(frozen=True, kw_only=True)
class Binding:
    evse_uid: str
    location_key: str
    charger_id: str
    ocpp_evse_id: int
    connectors: tuple[tuple[str, int], ...]


@dataclass(frozen=True, kw_only=True)
class StoredLocation:
    location: Location
    origin: str
    created_at: datetime


def location_key(location_id: str) -> str:
    return location_id.upper()


def to_document(location: Location) -> str:
    return location.model_dump_json(exclude_none=True)


def _binding(row: EvseBindingRow) -> Binding:
    pairs = json.loads(row.connectors_json)
    return Binding(
        evse_uid=row.evse_key,
        location_key=row.location_key,
        charger_id=row.charger_id,
        ocpp_evse_id=row.ocpp_evse_id,
        connectors=tuple((str(a), int(b)) for a, b in pairs),
    )


# --- locations ------------------------------------------------------------------------------


async def load_location(session: AsyncSession, key: str) -> StoredLocation | None:
    row = await session.get(LocationRow, key)
    if row is None:
        return None
    return StoredLocation(
        location=Location.model_validate_json(row.document),
        origin=row.origin,
        created_at=row.created_at,
    )


async def location_keys(session: AsyncSession, *, origin: str | None = None) -> list[str]:
    stmt = select(LocationRow.key).order_by(col(LocationRow.key))
    if origin is not None:
        stmt = stmt.where(LocationRow.origin == origin)
    return list((await session.exec(stmt)).all())


async def save_location(
    session: AsyncSession, location: Location, *, origin: str, now: datetime
) -> None:
    key = location_key(location.id)
    row = await session.get(LocationRow, key)
    if row is None:
        row = LocationRow(
            key=key,
            publish=location.publish,
            origin=origin,
            last_updated=location.last_updated,
            document=to_document(location),
            created_at=now,
        )
    else:
        row.publish = location.publish
        row.origin = origin
        row.last_updated = location.last_updated
        row.document = to_document(location)
    session.add(row)


# --- bindings -------------------------------------------------------------------------------


async def bindings_of_location(session: AsyncSession, key: str) -> list[Binding]:
    stmt = select(EvseBindingRow).where(EvseBindingRow.location_key == key)
    return [_binding(row) for row in (await session.exec(stmt)).all()]


async def bindings_of_charger(
    session: AsyncSession, charger_id: str, ocpp_evse_id: int | None = None
) -> list[Binding]:
    stmt = select(EvseBindingRow).where(EvseBindingRow.charger_id == charger_id)
    if ocpp_evse_id is not None:
        stmt = stmt.where(EvseBindingRow.ocpp_evse_id == ocpp_evse_id)
    rows = (await session.exec(stmt.order_by(col(EvseBindingRow.evse_key)))).all()
    return [_binding(row) for row in rows]


async def all_bindings(session: AsyncSession) -> list[Binding]:
    rows = (await session.exec(select(EvseBindingRow))).all()
    return [_binding(row) for row in rows]


async def replace_bindings(session: AsyncSession, key: str, bindings: Sequence[Binding]) -> None:
    connection = await session.connection()
    await connection.execute(delete(EvseBindingRow).where(col(EvseBindingRow.location_key) == key))
    # The delete must reach the database before rows reusing its unique keys are inserted.
    await session.flush()
    for binding in bindings:
        session.add(
            EvseBindingRow(
                evse_key=binding.evse_uid.upper(),
                location_key=key,
                charger_id=binding.charger_id,
                ocpp_evse_id=binding.ocpp_evse_id,
                connectors_json=json.dumps([list(pair) for pair in binding.connectors]),
            )
        )
    await session.flush()


# --- live inputs ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LiveInputs:
    """What the status of one OCPP EVSE depends on."""

    connectors: tuple[ConnectorStatus, ...]
    whole_charger: ConnectorStatus | None
    offline: bool


async def save_connector_state(
    session: AsyncSession,
    charger_id: str,
    ocpp_evse_id: int,
    connector_id: int,
    status: ConnectorStatus,
    at: datetime,
) -> None:
    key = (charger_id, ocpp_evse_id, connector_id)
    row = await session.get(ConnectorStateRow, key)
    if row is None:
        row = ConnectorStateRow(
            charger_id=charger_id,
            ocpp_evse_id=ocpp_evse_id,
            connector_id=connector_id,
            status=status.value,
            changed_at=at,
        )
    else:
        row.status = status.value
        row.changed_at = at
    session.add(row)


async def live_inputs(session: AsyncSession, charger_id: str, ocpp_evse_id: int) -> LiveInputs:
    stmt = select(ConnectorStateRow).where(
        ConnectorStateRow.charger_id == charger_id,
        col(ConnectorStateRow.ocpp_evse_id).in_((0, ocpp_evse_id)),
    )
    connectors: list[ConnectorStatus] = []
    whole: ConnectorStatus | None = None
    for row in (await session.exec(stmt)).all():
        if row.ocpp_evse_id == 0:
            whole = ConnectorStatus(row.status)
        elif row.ocpp_evse_id == ocpp_evse_id:
            connectors.append(ConnectorStatus(row.status))
    link = await session.get(ChargerLinkRow, charger_id)
    return LiveInputs(
        connectors=tuple(connectors),
        whole_charger=whole,
        offline=link is not None and link.offline,
    )


async def set_link(
    session: AsyncSession, charger_id: str, *, connected: bool, at: datetime
) -> bool:
    """Record a connection or disconnection; True when the charger was marked offline (its
    EVSEs showed UNKNOWN) and has now come back."""
    row = await session.get(ChargerLinkRow, charger_id)
    returned = False
    if row is None:
        row = ChargerLinkRow(charger_id=charger_id, connected=connected, changed_at=at)
    else:
        returned = connected and row.offline
        row.connected = connected
        row.changed_at = at
        if connected:
            row.offline = False
    session.add(row)
    return returned


async def mark_offline(session: AsyncSession, disconnected_before: datetime) -> list[str]:
    """Flag the chargers disconnected since before ``disconnected_before`` as offline; their
    ids."""
    stmt = select(ChargerLinkRow).where(
        col(ChargerLinkRow.connected).is_(False),
        col(ChargerLinkRow.offline).is_(False),
        col(ChargerLinkRow.changed_at) <= disconnected_before,
    )
    ids = []
    for row in (await session.exec(stmt)).all():
        row.offline = True
        session.add(row)
        ids.append(row.charger_id)
    return ids


# --- projector offsets ----------------------------------------------------------------------


async def read_offset(session: AsyncSession, name: str) -> int:
    row = await session.get(ProjectorOffsetRow, name)
    return row.offset if row is not None else 0


async def save_offset(session: AsyncSession, name: str, offset: int) -> None:
    row = await session.get(ProjectorOffsetRow, name) or ProjectorOffsetRow(name=name)
    row.offset = offset
    session.add(row)


# --- Sender reads ---------------------------------------------------------------------------


_PUBLISHED = DocumentPages(
    col(LocationRow.document),
    where=[col(LocationRow.publish).is_(True)],
    last_updated=col(LocationRow.last_updated),
    key=col(LocationRow.key),
)


class LocationReader:
    """The published Locations as stored OCPI JSON."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> tuple[list[str], int]:
        return await _PUBLISHED.page(
            self._db, offset=offset, limit=limit, date_from=date_from, date_to=date_to
        )

    async def bindings_of(self, location_id: str) -> list[Binding]:
        """The live EVSEs of a Location: which charger and OCPP EVSE each one is."""
        async with self._db.read() as session:
            return await bindings_of_location(session, location_key(location_id))

    async def published(self, location_id: str) -> Location | None:
        async with self._db.read() as session:
            row = await session.get(LocationRow, location_key(location_id))
        if row is None or not row.publish:
            return None
        return Location.model_validate_json(row.document)

    async def all_locations(self) -> list[StoredLocation]:
        """Every Location, published or not (operator views)."""
        async with self._db.read() as session:
            rows = (await session.exec(select(LocationRow).order_by(col(LocationRow.key)))).all()
        return [
            StoredLocation(
                location=Location.model_validate_json(row.document),
                origin=row.origin,
                created_at=row.created_at,
            )
            for row in rows
        ]

    async def place_of(
        self, charger_id: str, ocpp_evse_id: int | None = None
    ) -> ChargerPlace | None:
        """Where a charger (or one of its EVSEs) stands in OCPI: the Location and the EVSEs of
        the charger in it, ids spelled as stored. ``None`` when it is on no Location."""
        async with self._db.read() as session:
            bindings = await bindings_of_charger(session, charger_id)
            if not bindings:
                return None
            chosen = next((b for b in bindings if b.ocpp_evse_id == ocpp_evse_id), bindings[0])
            row = await session.get(LocationRow, chosen.location_key)
        if row is None:  # pragma: no cover - bindings are removed with their Location
            return None
        document = json.loads(row.document)
        spelled = {e["uid"].upper(): e["uid"] for e in document.get("evses", [])}
        evses = tuple(
            (spelled.get(b.evse_uid, b.evse_uid), b.ocpp_evse_id)
            for b in bindings
            if b.location_key == chosen.location_key
        )
        return ChargerPlace(location_id=document["id"], evses=evses)


@dataclass(frozen=True, kw_only=True)
class ChargerPlace:
    location_id: str
    evses: tuple[tuple[str, int], ...]
    """(OCPI EVSE uid, OCPP EVSE id) of the charger's EVSEs on that Location."""

    def uid_of(self, ocpp_evse_id: int) -> str | None:
        return next((uid for uid, evse_id in self.evses if evse_id == ocpp_evse_id), None)
