"""The outbox table (``ocpi_outbox``) and its queries.

``enqueue`` runs inside the caller's transaction, so the rows commit (or roll back) with the
change they describe. ``OutboxStore`` holds what the worker and the operator need. Delivered rows
are deleted; failed ones record their attempts, last error and next attempt; dead ones stay
(state ``DEAD``) until the operator requeues them.

Ids come from an AUTOINCREMENT key (never reused, even after the newest row is deleted): they
are the global enqueue order, and the worker can mark a row delivered or failed by id without
ever touching a newer row. Marking a row that is gone (coalesced away, deleted) is a no-op.

There is no foreign key to the partner: rows of a partner that is deleted stay and are
dead-lettered by the worker with a clear reason, never dropped silently."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    update,
)
from sqlalchemy import select as core_select
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.models import ModuleID
from bridge.push.outbox import (
    KEY_MAX_LENGTH,
    FullObject,
    FullObjectSource,
    Method,
    OutboxCount,
    OutboxEntry,
    OutboxState,
    PushRequest,
)
from csms.store.database import Database
from csms.store.prepared import PreparedSelect
from csms.store.types import UtcDateTime

PENDING = OutboxState.PENDING.value
DEAD = OutboxState.DEAD.value


def _utc_column(nullable: bool = True) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "ocpi_outbox"
    __table_args__ = (
        # Due heads: PENDING rows by next attempt.
        Index("ix_ocpi_outbox_due", "state", "next_attempt_at"),
        # Per key: the head of a key and "is there an older PENDING row of this key".
        Index("ix_ocpi_outbox_key", "partner_id", "ordering_key", "state", "id"),
        Index("ix_ocpi_outbox_coalesce", "partner_id", "coalesce_key"),
        Index("ix_ocpi_outbox_partner", "partner_id", "state"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int
    module: str = Field(max_length=32)
    method: str = Field(max_length=8)
    path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    body: str = Field(sa_column=Column(Text, nullable=False))
    ordering_key: str = Field(sa_column=Column(String(KEY_MAX_LENGTH), nullable=False))
    coalesce_key: str | None = Field(
        default=None, sa_column=Column(String(KEY_MAX_LENGTH), nullable=True)
    )
    fallback: str | None = Field(
        default=None, sa_column=Column(String(KEY_MAX_LENGTH), nullable=True)
    )
    state: str = Field(max_length=8)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_utc_column(nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    dead_at: datetime | None = Field(default=None, sa_column=_utc_column())


_ERROR_MAX = 2000  # characters of last_error kept


# --- enqueue (inside the caller's transaction) -------------------------------------------


async def enqueue(
    session: AsyncSession, requests: Iterable[PushRequest], *, now: datetime, coalesce: bool
) -> None:
    """Add ``requests`` to the outbox in the caller's transaction (``uow.session``), in order.
    With ``coalesce``, a request with a ``coalesce_key`` first deletes the PENDING rows of the
    same ``(partner_id, coalesce_key)``, earlier requests of this batch included. Call the
    worker's ``wake()`` after the transaction commits."""
    batch = list(requests)
    if not batch:
        return
    if coalesce:
        last: dict[tuple[int, str], int] = {}
        for index, request in enumerate(batch):
            if request.coalesce_key is not None:
                last[(request.partner_id, request.coalesce_key)] = index
        batch = [
            r
            for i, r in enumerate(batch)
            if r.coalesce_key is None or last[(r.partner_id, r.coalesce_key)] == i
        ]
    connection = await session.connection()
    if coalesce:
        for partner_id, coalesce_key in sorted(
            {(r.partner_id, r.coalesce_key) for r in batch if r.coalesce_key is not None}
        ):
            await connection.execute(
                delete(OutboxRow).where(
                    col(OutboxRow.partner_id) == partner_id,
                    col(OutboxRow.coalesce_key) == coalesce_key,
                    col(OutboxRow.state) == PENDING,
                )
            )
    await connection.execute(
        insert(OutboxRow),
        [
            {
                "partner_id": r.partner_id,
                "module": r.module.value,
                "method": r.method,
                "path": r.path,
                "url": r.url,
                "body": _dump(r.body),
                "ordering_key": r.ordering_key,
                "coalesce_key": r.coalesce_key,
                "fallback": r.fallback,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for r in batch
        ],
    )


# --- outcomes of a replacement -------------------------------------------------------------


@dataclass(frozen=True)
class Replaced:
    """The row is now a PUT of the whole object (same id, so its place in the order is kept)."""

    entry: OutboxEntry


@dataclass(frozen=True)
class ObjectGone:
    """The object no longer exists: the row was dead-lettered."""

    entry: OutboxEntry


@dataclass(frozen=True)
class RowGone:
    """The row is no longer there (coalesced away or deleted meanwhile)."""


Replacement = Replaced | ObjectGone | RowGone


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(
        self, requests: Iterable[PushRequest], *, now: datetime, coalesce: bool
    ) -> None:
        """``enqueue`` in a transaction of its own (for pushes that change nothing else)."""
        async with self.db.transaction() as uow:
            await enqueue(uow.session, requests, now=now, coalesce=coalesce)

    # --- worker: reads ---------------------------------------------------------------------

    async def due_heads(self, now: datetime, *, limit: int) -> list[OutboxEntry]:
        """The first PENDING row of each key, when due (``next_attempt_at <= now``), oldest
        first, at most ``limit``. DEAD rows are not heads and block nothing."""
        rows = await self.db.fetch(_DUE_HEADS, now=now, limit=limit)
        return [_entry_of(row) for row in rows]

    async def plan(self, now: datetime, *, limit: int) -> tuple[list[OutboxEntry], datetime | None]:
        """``due_heads`` and ``next_attempt_after`` (what the worker's loop asks each time it
        looks)."""
        return await self.due_heads(now, limit=limit), await self.next_attempt_after(now)

    async def due_head_of(self, key: tuple[int, str], now: datetime) -> OutboxEntry | None:
        """The first PENDING row of ``key`` if it is due, else None."""
        partner_id, ordering_key = key
        rows = await self.db.fetch(_HEAD_OF, partner_id=partner_id, ordering_key=ordering_key)
        return _due_entry(rows[0] if rows else None, now)

    async def next_attempt_after(self, now: datetime) -> datetime | None:
        """The earliest ``next_attempt_at`` later than ``now`` among the heads (when the
        worker has something to do next, short of new rows)."""
        rows = await self.db.fetch(_NEXT_ATTEMPT_AFTER, now=now)
        return cast(datetime, rows[0][0]) if rows else None

    async def get(self, entry_id: int) -> OutboxEntry | None:
        async with self.db.read() as session:
            row = await session.get(OutboxRow, entry_id)
            return _entry_of(row) if row is not None else None

    # --- worker: outcomes ------------------------------------------------------------------

    async def delete(self, entry_id: int) -> bool:
        """Remove a delivered row; False when it was already gone."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(
                delete(OutboxRow).where(col(OutboxRow.id) == entry_id)
            )
            return bool(result.rowcount == 1)

    async def delete_and_next(
        self, entry_id: int, key: tuple[int, str], now: datetime
    ) -> tuple[bool, OutboxEntry | None]:
        """``delete`` a delivered row, then ``due_head_of`` its key, in one transaction."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(_DELETE, {"id": entry_id})
            partner_id, ordering_key = key
            values = {"partner_id": partner_id, "ordering_key": ordering_key}
            following = (await connection.execute(_HEAD_OF.statement, values)).first()
            return bool(result.rowcount == 1), _due_entry(following, now)

    async def record_failure(
        self, entry_id: int, *, attempts: int, error: str, next_attempt_at: datetime
    ) -> bool:
        """A failed attempt of a PENDING row, to be retried at ``next_attempt_at``."""
        return await self._update_pending(
            entry_id,
            attempts=attempts,
            last_error=error[:_ERROR_MAX],
            next_attempt_at=next_attempt_at,
        )

    async def dead_letter(self, entry_id: int, *, attempts: int, error: str, now: datetime) -> bool:
        """Give up on a PENDING row: it stays, state DEAD, for the operator."""
        return await self._update_pending(
            entry_id, attempts=attempts, last_error=error[:_ERROR_MAX], state=DEAD, dead_at=now
        )

    async def replace_with_full_object(
        self,
        entry_id: int,
        source: FullObjectSource,
        *,
        attempts: int,
        error: str,
        now: datetime,
    ) -> Replacement:
        """Turn a PENDING row (a rejected PATCH) into a PUT of the whole current object from
        ``source``, in place (same id), due at once; dead-letter it when the object no longer
        exists."""
        async with self.db.transaction() as uow:
            session = uow.session
            row = await session.get(OutboxRow, entry_id)
            if row is None or row.state != PENDING or row.fallback is None:
                return RowGone()
            full = await source.full_object(session, row.fallback)
            row.attempts = attempts
            if full is None:
                row.state = DEAD
                row.dead_at = now
                row.last_error = f"{error}; the object no longer exists"[:_ERROR_MAX]
                session.add(row)
                await session.flush()
                return ObjectGone(_entry_of(row))
            _become_put(row, full)
            row.last_error = error[:_ERROR_MAX]
            row.next_attempt_at = now
            session.add(row)
            await session.flush()
            return Replaced(_entry_of(row))

    async def _update_pending(self, entry_id: int, **values: Any) -> bool:
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(
                update(OutboxRow)
                .where(col(OutboxRow.id) == entry_id, col(OutboxRow.state) == PENDING)
                .values(**values)
            )
            return bool(result.rowcount == 1)

    # --- operator --------------------------------------------------------------------------

    async def list_entries(
        self,
        *,
        state: OutboxState | None = None,
        partner_id: int | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[OutboxEntry]:
        """Rows in enqueue order (``after_id`` pages on)."""
        stmt = select(OutboxRow).where(col(OutboxRow.id) > after_id)
        if state is not None:
            stmt = stmt.where(col(OutboxRow.state) == state.value)
        if partner_id is not None:
            stmt = stmt.where(col(OutboxRow.partner_id) == partner_id)
        stmt = stmt.order_by(col(OutboxRow.id)).limit(limit)
        async with self.db.read() as session:
            return [_entry_of(row) for row in (await session.exec(stmt)).all()]

    async def summary(self) -> list[OutboxCount]:
        """PENDING and DEAD rows per partner."""
        stmt = (
            select(OutboxRow.partner_id, OutboxRow.state, func.count())
            .group_by(col(OutboxRow.partner_id), col(OutboxRow.state))
            .order_by(col(OutboxRow.partner_id))
        )
        counts: dict[int, dict[str, int]] = {}
        async with self.db.read() as session:
            for partner_id, state, count in (await session.exec(stmt)).all():
                counts.setdefault(partner_id, {})[state] = int(count)
        return [
            OutboxCount(partner_id=p, pending=c.get(PENDING, 0), dead=c.get(DEAD, 0))
            for p, c in counts.items()
        ]

    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        partner_id: int | None = None,
        everything: bool = False,
        now: datetime,
        full_objects: FullObjectSource | None,
    ) -> int:
        """Put DEAD rows back in the queue: the given ``ids``, or all of ``partner_id``, or all
        (``everything``); exactly one selection. Returns the number of rows requeued.

        A requeued row is PENDING again with attempts 0, due now, at its old place in the
        order (its id). A row with a ``fallback`` key becomes a PUT of the current whole
        object (from ``full_objects``), so an old status never overwrites a newer one; several
        rows with the same fallback key become one PUT (the oldest row, the others are
        deleted). When that object no longer exists the rows stay DEAD (their last_error says
        so). Without ``full_objects`` such rows are requeued as they are."""
        if sum((ids is not None, partner_id is not None, everything)) != 1:
            raise ValueError("give exactly one of ids, partner_id and everything")
        stmt = select(OutboxRow).where(col(OutboxRow.state) == DEAD)
        if ids is not None:
            if not ids:
                return 0
            stmt = stmt.where(col(OutboxRow.id).in_(list(ids)))
        elif partner_id is not None:
            stmt = stmt.where(col(OutboxRow.partner_id) == partner_id)
        requeued = 0
        async with self.db.transaction() as uow:
            session = uow.session
            rows = (await session.exec(stmt.order_by(col(OutboxRow.id)))).all()
            groups: dict[tuple[int, str], list[OutboxRow]] = {}
            for row in rows:
                if row.fallback is not None and full_objects is not None:
                    groups.setdefault((row.partner_id, row.fallback), []).append(row)
                    continue
                _revive(row, now)
                session.add(row)
                requeued += 1
            for (_partner, fallback), members in groups.items():
                full = await full_objects.full_object(session, fallback) if full_objects else None
                if full is None:
                    for row in members:
                        row.last_error = "not requeued: the object no longer exists"
                        session.add(row)
                    continue
                first, *others = members
                _become_put(first, full)
                _revive(first, now)
                session.add(first)
                for row in others:
                    await session.delete(row)
                requeued += 1
            await session.flush()
        return requeued


# --- helpers -----------------------------------------------------------------------------


_OUTBOX = cast(Table, OutboxRow.__table__)  # type: ignore[attr-defined]


def _is_head() -> ColumnElement[bool]:
    """No older PENDING row of the same key exists (correlated with the outbox table; one
    probe of the key index)."""
    older = _OUTBOX.alias("older")
    return ~(
        core_select(older.c.id)
        .where(
            older.c.partner_id == _OUTBOX.c.partner_id,
            older.c.ordering_key == _OUTBOX.c.ordering_key,
            older.c.state == PENDING,
            older.c.id < _OUTBOX.c.id,
        )
        .exists()
    )


# The worker's statements, built once (building one, its alias above included, cost more
# than running it): the reads outside a transaction are prepared (``Database.fetch``).

_DUE_HEADS = PreparedSelect(
    core_select(_OUTBOX)
    .where(
        _OUTBOX.c.state.concat("") == PENDING,
        _OUTBOX.c.next_attempt_at <= bindparam("now"),
        _is_head(),
    )
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
)
"""Rows in id order, each checked with one probe of the key index, until ``limit`` heads are
found: the cost grows with ``limit``, not with the backlog (10,000 Locations queued at a
registration). ``state || ''`` keeps SQLite from choosing the (state, next_attempt_at) index,
which would collect and sort every due row first; a single grouped ``min(id)`` per key
measured slower still (every PENDING row grouped, every head sorted, per call)."""

_NEXT_ATTEMPT_AFTER = PreparedSelect(
    core_select(_OUTBOX.c.next_attempt_at)
    .where(
        _OUTBOX.c.state == PENDING,
        _OUTBOX.c.next_attempt_at > bindparam("now"),
        _is_head(),
    )
    .order_by(_OUTBOX.c.next_attempt_at)
    .limit(1)
)
"""The first head in ``next_attempt_at`` order (the due index, stopping at the first head)
after ``now``."""

_HEAD_OF = PreparedSelect(
    core_select(_OUTBOX)
    .where(
        _OUTBOX.c.partner_id == bindparam("partner_id"),
        _OUTBOX.c.ordering_key == bindparam("ordering_key"),
        _OUTBOX.c.state == PENDING,
    )
    .order_by(_OUTBOX.c.id)
    .limit(1)
)
"""The first PENDING row of a key, due or not."""

_DELETE = delete(_OUTBOX).where(_OUTBOX.c.id == bindparam("id"))


def _due_entry(row: Row[Any] | Sequence[Any] | None, now: datetime) -> OutboxEntry | None:
    """The head of a key (``_HEAD_OF``) if there is one and it is due."""
    if row is None:
        return None
    entry = _entry_of(row)
    return entry if entry.next_attempt_at <= now else None


def _become_put(row: OutboxRow, full: FullObject) -> None:
    row.method = "PUT"
    row.path = full.path
    row.url = None
    row.body = _dump(full.body)


def _revive(row: OutboxRow, now: datetime) -> None:
    row.state = PENDING
    row.attempts = 0
    row.next_attempt_at = now
    row.dead_at = None


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


_COLUMNS = tuple(_OUTBOX.c.keys())


def _entry_of(row: OutboxRow | Row[Any] | Sequence[Any]) -> OutboxEntry:
    """The entry of an ORM row, or of the values of every column in table order."""
    if isinstance(row, OutboxRow):
        values = {name: getattr(row, name) for name in _COLUMNS}
    else:
        values = dict(zip(_COLUMNS, row, strict=True))
    assert values["id"] is not None
    return OutboxEntry(
        id=values["id"],
        partner_id=values["partner_id"],
        module=ModuleID(values["module"]),
        method=cast(Method, values["method"]),
        path=values["path"],
        url=values["url"],
        body=json.loads(values["body"]),
        ordering_key=values["ordering_key"],
        coalesce_key=values["coalesce_key"],
        fallback=values["fallback"],
        state=OutboxState(values["state"]),
        attempts=values["attempts"],
        next_attempt_at=values["next_attempt_at"],
        last_error=values["last_error"],
        created_at=values["created_at"],
        dead_at=values["dead_at"],
    )
