"""Storage of the OCPI Locations and of the live inputs of their EVSE statuses.

Write helpers take the caller's session, so that a change, the projector's offset and the
outbox rows describing it commit together. Reads for the Sender interface return the stored
OCPI JSON as text: no model is rebuilt for a GET."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, Update, bindparam, delete, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import AsyncConnection
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
from csms.store.database import Database, update_by_key


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


def _binding(row: EvseBindingRow | Row[Any]) -> Binding:
    pairs = json.loads(row.connectors_json)
    return Binding(
        evse_uid=row.evse_key,
        location_key=row.location_key,
        charger_id=row.charger_id,
        ocpp_evse_id=row.ocpp_evse_id,
        connectors=tuple((str(a), int(b)) for a, b in pairs),
    )


# The writers' statements, built once, without the ORM: the Location projection runs them for
# every status change, and an ORM load and flush cost several times the statement. Nothing
# else reads or writes these tables inside a writer's transaction, so no ORM object of them
# can be stale or unflushed there.

_LOCATIONS = cast(Table, LocationRow.__table__)  # type: ignore[attr-defined]
_BINDINGS = cast(Table, EvseBindingRow.__table__)  # type: ignore[attr-defined]
_STATES = cast(Table, ConnectorStateRow.__table__)  # type: ignore[attr-defined]
_LINKS = cast(Table, ChargerLinkRow.__table__)  # type: ignore[attr-defined]


_LOAD_LOCATION = core_select(
    _LOCATIONS.c.document, _LOCATIONS.c.origin, _LOCATIONS.c.created_at
).where(_LOCATIONS.c.key == bindparam("key"))
_UPDATE_LOCATION = update_by_key(
    LocationRow, ("key",), ("publish", "origin", "last_updated", "document")
)
_BINDINGS_OF_CHARGER = (
    core_select(_BINDINGS)
    .where(_BINDINGS.c.charger_id == bindparam("charger_id"))
    .order_by(_BINDINGS.c.evse_key)
)
_BINDINGS_OF_EVSE = _BINDINGS_OF_CHARGER.where(_BINDINGS.c.ocpp_evse_id == bindparam("evse"))
_UPDATE_STATE = update_by_key(
    ConnectorStateRow, ("charger_id", "ocpp_evse_id", "connector_id"), ("status", "changed_at")
)
_STATES_OF_EVSE = core_select(_STATES.c.ocpp_evse_id, _STATES.c.status).where(
    _STATES.c.charger_id == bindparam("charger_id"),
    _STATES.c.ocpp_evse_id.in_([0, bindparam("evse")]),
)
_LINK = core_select(_LINKS.c.offline).where(_LINKS.c.charger_id == bindparam("charger_id"))
_UPDATE_LINK = update_by_key(
    ChargerLinkRow, ("charger_id",), ("connected", "changed_at", "offline")
)


async def _update_or_insert(
    connection: AsyncConnection,
    statement: Update,
    table: Table,
    key: dict[str, Any],
    values: dict[str, Any],
    *,
    created: dict[str, Any] | None = None,
) -> None:
    """Set ``values`` on the row of ``key`` (``statement`` takes them as ``k_``/``v_``
    parameters), or insert that row, with ``created`` too, when there is none."""
    parameters = {f"k_{name}": value for name, value in key.items()}
    parameters.update({f"v_{name}": value for name, value in values.items()})
    result = await connection.execute(statement, parameters)
    if result.rowcount == 0:
        await connection.execute(insert(table), key | values | (created or {}))


# --- locations ------------------------------------------------------------------------------


async def load_location(session: AsyncSession, key: str) -> StoredLocation | None:
    connection = await session.connection()
    row = (await connection.execute(_LOAD_LOCATION, {"key": key})).first()
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
    """Store a Location: an UPDATE of its row, or an INSERT when it has none yet."""
    connection = await session.connection()
    await _update_or_insert(
        connection,
        _UPDATE_LOCATION,
        _LOCATIONS,
        {"key": location_key(location.id)},
        {
            "publish": location.publish,
            "origin": origin,
            "last_updated": location.last_updated,
            "document": to_document(location),
        },
        created={"created_at": now},
    )


# --- bindings -------------------------------------------------------------------------------


async def bindings_of_location(session: AsyncSession, key: str) -> list[Binding]:
    stmt = select(EvseBindingRow).where(EvseBindingRow.location_key == key)
    return [_binding(row) for row in (await session.exec(stmt)).all()]


async def bindings_of_charger(
    session: AsyncSession, charger_id: str, ocpp_evse_id: int | None = None
) -> list[Binding]:
    connection = await session.connection()
    if ocpp_evse_id is None:
        result = await connection.execute(_BINDINGS_OF_CHARGER, {"charger_id": charger_id})
    else:
        values = {"charger_id": charger_id, "evse": ocpp_evse_id}
        result = await connection.execute(_BINDINGS_OF_EVSE, values)
    return [_binding(row) for row in result.all()]


async def all_bindings(session: AsyncSession) -> list[Binding]:
    rows = (await session.exec(select(EvseBindingRow))).all()
    return [_binding(row) for row in rows]


async def replace_bindings(session: AsyncSession, key: str, bindings: Sequence[Binding]) -> None:
    connection = await session.connection()
    await connection.execute(delete(_BINDINGS).where(_BINDINGS.c.location_key == key))
    if bindings:
        await connection.execute(
            insert(_BINDINGS),
            [
                {
                    "evse_key": binding.evse_uid.upper(),
                    "location_key": key,
                    "charger_id": binding.charger_id,
                    "ocpp_evse_id": binding.ocpp_evse_id,
                    "connectors_json": json.dumps([list(pair) for pair in binding.connectors]),
                }
                for binding in bindings
            ],
        )


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
    connection = await session.connection()
    await _update_or_insert(
        connection,
        _UPDATE_STATE,
        _STATES,
        {"charger_id": charger_id, "ocpp_evse_id": ocpp_evse_id, "connector_id": connector_id},
        {"status": status.value, "changed_at": at},
    )


async def live_inputs(session: AsyncSession, charger_id: str, ocpp_evse_id: int) -> LiveInputs:
    connection = await session.connection()
    values = {"charger_id": charger_id, "evse": ocpp_evse_id}
    connectors: list[ConnectorStatus] = []
    whole: ConnectorStatus | None = None
    for evse_id, status in (await connection.execute(_STATES_OF_EVSE, values)).all():
        if evse_id == 0:
            whole = ConnectorStatus(status)
        elif evse_id == ocpp_evse_id:
            connectors.append(ConnectorStatus(status))
    offline = (await connection.execute(_LINK, {"charger_id": charger_id})).scalar()
    return LiveInputs(
        connectors=tuple(connectors),
        whole_charger=whole,
        offline=bool(offline),
    )


async def set_link(
    session: AsyncSession, charger_id: str, *, connected: bool, at: datetime
) -> bool:
    """Record a connection or disconnection; True when the charger was marked offline (its
    EVSEs showed UNKNOWN) and has now come back."""
    connection = await session.connection()
    offline = (await connection.execute(_LINK, {"charger_id": charger_id})).first()
    if offline is None:
        await connection.execute(
            insert(_LINKS),
            {"charger_id": charger_id, "connected": connected, "changed_at": at, "offline": False},
        )
        return False
    was_offline = bool(offline[0])
    await connection.execute(
        _UPDATE_LINK,
        {
            "k_charger_id": charger_id,
            "v_connected": connected,
            "v_changed_at": at,
            "v_offline": was_offline and not connected,
        },
    )
    return connected and was_offline


async def mark_offline(session: AsyncSession, disconnected_before: datetime) -> list[str]:
    """Flag the chargers disconnected since before ``disconnected_before`` as offline; their
    ids."""
    connection = await session.connection()
    stmt = core_select(_LINKS.c.charger_id).where(
        _LINKS.c.connected.is_(False),
        _LINKS.c.offline.is_(False),
        _LINKS.c.changed_at <= disconnected_before,
    )
    ids = list((await connection.execute(stmt)).scalars().all())
    if ids:
        await connection.execute(
            update(_LINKS).where(_LINKS.c.charger_id.in_(ids)).values(offline=True)
        )
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
