"""Storage of OCPI Sessions and CDRs. Writes take the caller's session (the projector's
transaction); reads for the Sender interfaces return stored OCPI JSON, scoped to one partner."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, insert, literal_column, update
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.mapping.sessions import Point, Usage, decimal_or_none
from bridge.store.pagination import DocumentPages
from bridge.store.tables import CdrRow, SessionPointRow, SessionRow
from csms.store.database import Database, Writes, fetch_prepared
from csms.store.prepared import PreparedSelect


async def session_of_transaction(
    session: AsyncSession, charger_id: str, transaction_ref: str
) -> SessionRow | None:
    stmt = select(SessionRow).where(
        SessionRow.charger_id == charger_id, SessionRow.transaction_ref == transaction_ref
    )
    return (await session.exec(stmt)).first()


async def sessions_by_ids(session: AsyncSession, ids: Collection[str]) -> list[SessionRow]:
    """The sessions of these ids (those that exist), in one query on the primary key."""
    if not ids:
        return []
    stmt = select(SessionRow).where(col(SessionRow.id).in_(ids))
    return list((await session.exec(stmt)).all())


@dataclass(slots=True)
class SessionView:
    """What a session's meter values and charging states read of it while nothing but its
    timeline changes, read without the ORM (loading a ``SessionRow`` costs about three times
    as much, most of a meter value's projection): see ``SessionService`` for when a view is
    exchanged for the row."""

    id: str
    charger_id: str
    transaction_ref: str | None
    status: str
    ended_at: datetime | None
    meter_start_wh: int | None
    last_push_at: datetime | None
    usage: str


_SESSION_TABLE = cast(Table, SessionRow.__table__)  # type: ignore[attr-defined]
_VIEW_COLUMNS = core_select(*(_SESSION_TABLE.c[field.name] for field in fields(SessionView)))
_VIEWS = _VIEW_COLUMNS.where(_SESSION_TABLE.c.id.in_(bindparam("ids", expanding=True)))
# On SQLite, prepared, with the ids as one JSON array (a prepared statement takes no IN list).
_VIEWS_OF_JSON = PreparedSelect(
    _VIEW_COLUMNS.where(
        _SESSION_TABLE.c.id.in_(
            core_select(literal_column("value")).select_from(func.json_each(bindparam("ids")))
        )
    )
)


async def session_views_by_ids(session: AsyncSession, ids: Collection[str]) -> list[SessionView]:
    """The views of the sessions of these ids (those that exist), in one query on the primary
    key, in the caller's transaction."""
    if not ids:
        return []
    rows = await fetch_prepared(session, _VIEWS_OF_JSON, ids=json.dumps(list(ids)))
    if rows is None:
        connection = await session.connection()
        rows = list(await connection.execute(_VIEWS, {"ids": list(ids)}))
    return [SessionView(*row) for row in rows]


_STORE_TIMELINE = (
    update(_SESSION_TABLE)
    .where(_SESSION_TABLE.c.id == bindparam("session_id"))
    .values(usage=bindparam("timeline"))
)


async def store_timelines(session: AsyncSession, timelines: Sequence[tuple[str, str]]) -> None:
    """Set the ``usage`` (timeline) of sessions by id, in the caller's transaction: one Core
    UPDATE for all (the caller keeps its ORM objects in step)."""
    connection = await session.connection()
    await connection.execute(
        _STORE_TIMELINE,
        [{"session_id": session_id, "timeline": text} for session_id, text in timelines],
    )


_POINTS = cast(Table, SessionPointRow.__table__)  # type: ignore[attr-defined]
_ADD_POINT = insert(_POINTS)
_POINTS_OF = (
    core_select(
        _POINTS.c.session_id,
        _POINTS.c.at,
        _POINTS.c.energy_wh,
        _POINTS.c.power_w,
        _POINTS.c.current_a,
    )
    .where(_POINTS.c.session_id.in_(bindparam("ids", expanding=True)))
    .order_by(_POINTS.c.session_id, _POINTS.c.at, _POINTS.c.id)
)


async def points_of(session: AsyncSession, ids: Collection[str]) -> dict[str, list[Point]]:
    """The stored meter points of these sessions, each session's in time order."""
    found: dict[str, list[Point]] = defaultdict(list)
    if not ids:
        return found
    connection = await session.connection()
    rows = await connection.execute(_POINTS_OF, {"ids": list(ids)})
    for session_id, at, energy_wh, power_w, current_a in rows:
        found[session_id].append(
            (at, energy_wh, decimal_or_none(power_w), decimal_or_none(current_a))
        )
    return found


async def add_points(session: AsyncSession, points: Iterable[tuple[str, Point]]) -> None:
    """Append meter points (session id, point) in the caller's transaction."""
    values = [_point_row(session_id, point) for session_id, point in points]
    if values:
        connection = await session.connection()
        await connection.execute(_ADD_POINT, values)


def defer_timelines(
    writes: Writes, timelines: Sequence[tuple[str, str]], points: Iterable[tuple[str, Point]]
) -> None:
    """``store_timelines`` and ``add_points`` as deferred writes: written with the rest of the
    caller's transaction's deferred writes, in one round trip (for what nothing reads back
    before then)."""
    for session_id, text in timelines:
        writes.update(SessionRow, {"id": session_id}, {"usage": text})
    for session_id, point in points:
        writes.insert(SessionPointRow, _point_row(session_id, point))


def _point_row(session_id: str, point: Point) -> dict[str, object]:
    at, energy_wh, power_w, current_a = point
    return {
        "session_id": session_id,
        "at": at,
        "energy_wh": energy_wh,
        "power_w": _text(power_w),
        "current_a": _text(current_a),
    }


async def delete_points(session: AsyncSession, session_id: str) -> None:
    connection = await session.connection()
    await connection.execute(delete(_POINTS).where(_POINTS.c.session_id == session_id))


async def load_timeline(session: AsyncSession, row: SessionRow) -> Usage:
    """The session's whole timeline: its row's ``usage`` and its stored points."""
    points: list[Point] = []
    if Usage.stored_points(row.usage):
        points = (await points_of(session, [row.id])).get(row.id, [])
    return Usage.from_json(row.usage, points)


async def store_timeline(session: AsyncSession, row: SessionRow, usage: Usage) -> None:
    """Set the row's ``usage`` (the ORM writes it with the row) and append the timeline's
    new points, in the caller's transaction."""
    row.usage = usage.to_json()
    await add_points(session, ((row.id, point) for point in usage.take_unstored()))


def _text(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


async def running_session_at(
    session: AsyncSession, charger_id: str, ocpp_evse_id: int
) -> SessionRow | None:
    """The transaction's session still running on that EVSE of the charger (the latest, if
    several; a command's session waiting for its transaction is not running)."""
    stmt = (
        select(SessionRow)
        .where(
            SessionRow.charger_id == charger_id,
            SessionRow.ocpp_evse_id == ocpp_evse_id,
            col(SessionRow.transaction_ref).is_not(None),
            col(SessionRow.ended_at).is_(None),
        )
        .order_by(col(SessionRow.started_at).desc())
    )
    return (await session.exec(stmt)).first()


_SESSIONS = DocumentPages(
    col(SessionRow.document),
    # A session is published once it has a document (ix_ocpi_sessions_partner_order).
    where=[
        col(SessionRow.partner_id) == bindparam("partner_id"),
        col(SessionRow.document).is_not(None),
    ],
    last_updated=col(SessionRow.last_updated),
    key=col(SessionRow.id),
)
_CDRS = DocumentPages(
    col(CdrRow.document),
    where=[col(CdrRow.partner_id) == bindparam("partner_id")],
    last_updated=col(CdrRow.last_updated),
    key=col(CdrRow.id),
)


class SessionReader:
    """Sessions and CDRs as stored OCPI JSON, for the Sender interfaces and operators."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def sessions_page(
        self,
        partner_id: int,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> tuple[list[str], int]:
        return await _SESSIONS.page(
            self._db,
            offset=offset,
            limit=limit,
            date_from=date_from,
            date_to=date_to,
            partner_id=partner_id,
        )

    async def cdrs_page(
        self,
        partner_id: int,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> tuple[list[str], int]:
        return await _CDRS.page(
            self._db,
            offset=offset,
            limit=limit,
            date_from=date_from,
            date_to=date_to,
            partner_id=partner_id,
        )

    async def session(self, session_id: str) -> SessionRow | None:
        async with self._db.read() as session:
            return await session.get(SessionRow, session_id)

    async def cdr(self, cdr_id: str) -> CdrRow | None:
        async with self._db.read() as session:
            return await session.get(CdrRow, cdr_id)

    async def cdr_of_session(self, session_id: str) -> CdrRow | None:
        async with self._db.read() as session:
            stmt = select(CdrRow).where(CdrRow.session_id == session_id)
            return (await session.exec(stmt)).first()

    async def save_cdr_location(self, cdr_id: str, url: str) -> None:
        async with self._db.transaction() as uow:
            row = await uow.session.get(CdrRow, cdr_id)
            if row is not None:
                row.location_url = url[:512]
                uow.session.add(row)
