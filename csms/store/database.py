"""Database access: one engine, short transactions, the event log appended in the same
transaction as the state change it describes.

Group commit (SQLite): SQLite has one writer, so the writers of this process take turns. While
a unit of work holds the turn and others wait, its still open transaction is handed to the next
one instead of being committed: every later unit of the batch runs in its own SAVEPOINT (a
failing unit is rolled back alone and its exception reaches its caller only), and one COMMIT
makes the whole batch durable when nobody waits any more, or when the batch is full or old
enough. Every unit's ``async with`` exits only after the commit that made it durable, so "the
reply goes out after the commit" holds for each of them, and the event listeners are called
after that commit; a failed COMMIT fails every unit of its batch. Each unit starts with an
empty identity map (the session is emptied between units), as with a session of its own.

A unit must not wait, inside its ``async with``, for something that happens only after another
unit's ``async with`` has exited (that unit waits for this one's commit): a unit does its
database work and leaves, as it always should.

Deferred writes (``Database.append``): a unit that only appends rows (inserts nothing reads
back in the same batch) and updates rows by key, without reading, needs no SAVEPOINT and no
statement of its own: its writes join the batch and are written with those of the other such
units, one statement per table and shape, before the next unit that uses the session starts
and before the COMMIT. The writes of one batch are grouped by statement, so they must not
depend on each other's order across tables (an insert that refers to a row another deferred
insert creates, for instance); within one table their order is kept. With the one-hop SQLite
driver they are sent as SQL compiled once per shape, with their parameters converted by the
columns' types (no SQLAlchemy execution per statement), all in one round trip; and a batch
that only ``append`` units joined has no session at all: on a connection of its own, BEGIN
IMMEDIATE, its writes and the COMMIT are one round trip (a unit of work that joins such a
batch begins the session's transaction and writes them there first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, Update, bindparam, event, insert, text, update
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.clock import utc_now
from csms.domain.codec import encode_event, event_type_name
from csms.domain.events import DomainEvent
from csms.store import (
    sqlite_driver,
    tables,  # noqa: F401  (registers the tables on SQLModel.metadata)
)
from csms.store.prepared import (
    CompiledStatement,
    PreparedSelect,
    SharedReaders,
    compile_statement,
)
from csms.store.tables import EventRow

log = logging.getLogger(__name__)

_INSERT_EVENT = insert(EventRow)
_PAYLOAD_JSON = json.JSONEncoder(separators=(",", ":"))
"""Events' payloads as compact JSON (one encoder for all: ``json.dumps`` with options makes one
per call)."""

_InsertShape = tuple[type[SQLModel], tuple[str, ...]]
"""An INSERT's table and columns."""
_UpdateShape = tuple[type[SQLModel], tuple[str, ...], tuple[str, ...]]
"""An UPDATE's table, key columns and set columns."""
_Statements = list[tuple[str, list[tuple[Any, ...]]]]
"""SQL statements, each with the parameters of every row it is run for."""


@functools.cache
def _insert_into(table: type[SQLModel]) -> Insert:
    return insert(table)


_COMPILED: dict[tuple[object, ...], CompiledStatement] = {}
"""Deferred writes' statements by shape and dialect name."""


def _compiled_insert(
    table: type[SQLModel], keys: tuple[str, ...], dialect: Dialect
) -> CompiledStatement:
    found = _COMPILED.get((table, keys, dialect.name))
    if found is None:
        found = _COMPILED[table, keys, dialect.name] = compile_statement(
            _insert_into(table), dialect, keys
        )
    return found


def _compiled_update(shape: _UpdateShape, dialect: Dialect) -> CompiledStatement:
    found = _COMPILED.get((shape, dialect.name))
    if found is None:
        found = _COMPILED[shape, dialect.name] = compile_statement(update_by_key(*shape), dialect)
    return found


@functools.cache
def update_by_key(table: type[SQLModel], key: tuple[str, ...], columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET column = :v_column ... WHERE key = :k_key ...`` (built once per
    shape; for executemany too)."""
    target = table.__table__  # type: ignore[attr-defined]
    c = target.c
    return (
        update(target)
        .where(*(c[name] == bindparam(f"k_{name}") for name in key))
        .values({name: bindparam(f"v_{name}") for name in columns})
    )


class BatchAborted(Exception):
    """The batch this unit of work belonged to was rolled back: a unit of the batch could not
    be undone cleanly (e.g. cancelled while rolling back), so nothing of it was committed."""


class Writes:
    """Rows to insert, rows to update by key and domain events to append, all written later
    in one go (see ``Database.append``): what a unit of work does without reading."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []
        self.payloads: list[str] = []
        """Each recorded event's stored payload (its JSON text), in the order of ``events``."""
        self._event_rows: list[dict[str, Any]] = []
        self._rows: dict[_InsertShape, list[dict[str, Any]]] = {}
        self._updates: dict[_UpdateShape, list[dict[str, Any]]] = {}

    def record(self, domain_event: DomainEvent) -> None:
        payload = _PAYLOAD_JSON.encode(encode_event(domain_event))
        self.events.append(domain_event)
        self.payloads.append(payload)
        self._event_rows.append(
            {
                "type": event_type_name(domain_event),
                "charger_id": domain_event.charger_id,
                "occurred_at": domain_event.occurred_at,
                "recorded_at": utc_now(),
                "payload": payload,
            }
        )

    def insert(self, table: type[SQLModel], row: dict[str, Any]) -> None:
        """Append a row (column values) to ``table`` when the unit's work is done, with one
        Core INSERT per table: for rows nothing reads back in the same unit of work (meter
        values, applied 2.0.1 events), without the ORM's unit of work."""
        self._rows.setdefault((table, tuple(row)), []).append(row)

    def update(self, table: type[SQLModel], key: dict[str, Any], values: dict[str, Any]) -> None:
        """Set ``values`` (column values) on the row of ``table`` whose columns equal ``key``,
        when the unit's work is done (a row nobody reads in between; no check that it exists)."""
        shape = (table, tuple(key), tuple(values))
        params = {f"k_{name}": value for name, value in key.items()}
        params.update({f"v_{name}": value for name, value in values.items()})
        self._updates.setdefault(shape, []).append(params)

    def is_empty(self) -> bool:
        return not (self._rows or self._updates or self._event_rows)

    def take_from(self, other: Writes) -> None:
        """Add what ``other`` holds to what is pending here (after it), and leave ``other``
        as it is (drop it: its writes are these writes now)."""
        self.events.extend(other.events)
        self.payloads.extend(other.payloads)
        self._event_rows.extend(other._event_rows)
        for table_keys, rows in other._rows.items():
            self._rows.setdefault(table_keys, []).extend(rows)
        for shape, params in other._updates.items():
            self._updates.setdefault(shape, []).extend(params)

    async def _write(self, connection: AsyncConnection) -> None:
        """Write what is pending (one statement per table and shape), then forget it: with
        the one-hop SQLite driver, every statement in one round trip without SQLAlchemy's
        execution machinery (``take_statements``), else one ``execute`` per statement."""
        driver = _one_hop_driver(connection)
        if driver is not None:
            statements = self.take_statements(connection.dialect)
            if statements:
                await driver.write(statements)
            return
        rows, self._rows = self._rows, {}
        for (table, _keys), values in rows.items():
            await connection.execute(_insert_into(table), values)
        updates, self._updates = self._updates, {}
        for (table, key, columns), params in updates.items():
            await connection.execute(update_by_key(table, key, columns), params)
        if self._event_rows:
            event_rows, self._event_rows = self._event_rows, []
            await connection.execute(_INSERT_EVENT, event_rows)

    def take_statements(self, dialect: Dialect) -> _Statements:
        """What is pending as SQL for ``dialect`` (statements compiled once per shape, the
        parameters converted by the columns' types as SQLAlchemy would), then forget it."""
        statements: _Statements = []
        rows, self._rows = self._rows, {}
        for (table, keys), values in rows.items():
            compiled = _compiled_insert(table, keys, dialect)
            statements.append((compiled.sql, [compiled.parameters(row) for row in values]))
        updates, self._updates = self._updates, {}
        for shape, params in updates.items():
            compiled = _compiled_update(shape, dialect)
            statements.append((compiled.sql, [compiled.parameters(p) for p in params]))
        if self._event_rows:
            event_rows, self._event_rows = self._event_rows, []
            compiled = _compiled_insert(EventRow, tuple(event_rows[0]), dialect)
            statements.append((compiled.sql, [compiled.parameters(r) for r in event_rows]))
        return statements


def _one_hop_driver(connection: AsyncConnection) -> sqlite_driver.OneHopConnection | None:
    """The one-hop SQLite connection under ``connection`` (checked out and open), if any."""
    sync = connection.sync_connection
    if sync is None or sync.closed or sync.invalidated:
        return None
    driver = sync.connection.driver_connection
    return driver if isinstance(driver, sqlite_driver.OneHopConnection) else None


async def fetch_prepared(
    session: AsyncSession, query: PreparedSelect, **values: Any
) -> list[tuple[Any, ...]] | None:
    """The rows of a prepared SELECT in ``session``'s transaction, in one call on its one-hop
    SQLite connection, without SQLAlchemy's execution machinery (about 0.2 ms of the event
    loop per statement); None if the session's connection is not one (see ``fetch_in``)."""
    connection = await session.connection()
    driver = _one_hop_driver(connection)
    if driver is None:
        return None
    compiled = query.compiled(connection.dialect)
    return compiled.rows(await driver.read(compiled.sql, compiled.parameters(values)))


async def fetch_in(
    session: AsyncSession, query: PreparedSelect, **values: Any
) -> list[tuple[Any, ...]]:
    """``fetch_prepared``, or the statement run through the session's connection."""
    rows = await fetch_prepared(session, query, **values)
    return rows if rows is not None else await _fetch_through(session, query, values)


async def _fetch_through(
    session: AsyncSession, query: PreparedSelect, values: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of a prepared SELECT's statement run through the session's connection."""
    connection = await session.connection()
    return [tuple(row) for row in await connection.execute(query.statement, values)]


class CommittedEvents:
    """The domain events this process committed lately, by their stored payload, for the
    event log's reader in this process (``csms.store.events.EventLog``): an event it reads
    back is the object that was recorded, not the payload decoded again (about a tenth of a
    meter value's projection). A payload maps to one event of its type: the same text
    decodes to an equal event. At most ``limit`` are kept, the oldest dropped first (read
    back from the payload then, as events other processes wrote)."""

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._by_payload: dict[str, DomainEvent] = {}

    def add(self, events: Sequence[DomainEvent], payloads: Sequence[str]) -> None:
        kept = self._by_payload
        for payload, domain_event in zip(payloads, events, strict=True):
            kept[payload] = domain_event
        while len(kept) > self._limit:
            del kept[next(iter(kept))]

    def take(self, type_name: str, payload: str) -> DomainEvent | None:
        """The event committed with this payload and type, once; None if not kept."""
        found = self._by_payload.pop(payload, None)
        if found is None or event_type_name(found) != type_name:
            return None
        return found

    def __len__(self) -> int:
        return len(self._by_payload)


class UnitOfWork(Writes):
    """One database transaction: the session plus the events it appends.

    Recorded events are appended to the log when the unit's work is done, in the order they
    were recorded, in the same transaction (one Core INSERT for all of them)."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__()
        self.session = session

    async def finish(self) -> None:
        """Write what is still pending: the session's changes, the rows to insert and update,
        then the recorded events."""
        await self.session.flush()
        if not self.is_empty():
            await self._write(await self.session.connection())


@dataclass(eq=False)
class _Batch:
    """One write transaction shared by the units that follow each other in it."""

    session: AsyncSession | None
    """The open transaction; None while only ``append`` units joined and the database has a
    writer connection for them (their writes and the COMMIT are then one round trip)."""
    opened_at: float
    done: asyncio.Future[None]
    started: int = 0
    """Units that began in this batch (failed ones included)."""
    units: list[Writes] = field(default_factory=list)
    """Units whose work succeeded and waits for the commit."""
    deferred: Writes = field(default_factory=Writes)
    """Writes of ``append`` units not written yet."""
    broken: BaseException | None = None
    """Why the batch must be rolled back instead of committed."""


DEFAULT_POOL_SIZE = 20
"""Connections a file or server database keeps open (SQLAlchemy's default is 5)."""
DEFAULT_SHARED_READERS = 2
"""Connections the prepared reads of a SQLite file share (``Database.fetch``)."""


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite database URL; None for anything else (memory, PostgreSQL)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return database


class Database:
    """SQLite by default (WAL, one writer at a time in this process, group commit);
    PostgreSQL when configured (a transaction of its own per unit of work)."""

    def __init__(
        self,
        url: str,
        *,
        group_commit: bool | None = None,
        max_batch: int = 100,
        max_batch_s: float = 0.02,
        one_hop: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
        shared_readers: int = DEFAULT_SHARED_READERS,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        shared_connection = self.is_sqlite and (":memory:" in url or url.endswith("///"))
        if shared_connection:
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif self.is_sqlite and one_hop:
            kwargs = {"async_creator": self._connect_sqlite}
        if not self.is_sqlite or sqlite_file(url) is not None:
            # Connections kept open for as many concurrent readers as the HTTP server
            # usually has (beyond it, overflow connections are opened and closed per use).
            kwargs["pool_size"] = pool_size
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # Prepared reads (``fetch``) of a file database share a few connections of their own.
        one_hop_file = self.is_sqlite and one_hop and sqlite_file(url) is not None
        self._readers = (
            SharedReaders(self._connect_sqlite, shared_readers) if one_hop_file else None
        )
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        # SQLite allows one writer; queueing writers here avoids "database is locked" errors.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._event_listeners: list[Callable[[], None]] = []
        self.committed_events = CommittedEvents()
        # Group commit needs a connection of its own for the writer: not with the one shared
        # connection of an in-memory database, whose readers would end the writer's transaction.
        self._grouped = (
            (self.is_sqlite and not shared_connection) if group_commit is None else (group_commit)
        )
        # Batches of ``append`` units only are committed on a connection of their own,
        # without a session (see ``_commit_appends``).
        self._appends_alone = self._grouped and one_hop_file
        self._writer: sqlite_driver.OneHopConnection | None = None
        self._max_batch = max(1, max_batch)
        self._max_batch_s = max_batch_s
        self._turn_taken = False
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._batch: _Batch | None = None
        self._finishing: set[asyncio.Task[None]] = set()

    async def _connect_sqlite(self) -> sqlite_driver.OneHopConnection:
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        return await sqlite_driver.connect(*args, **kwargs)

    def add_event_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that appended events (to wake consumers of the
        event log in this process; consumers also poll, for writers in other processes)."""
        self._event_listeners.append(callback)

    async def create_schema(self) -> None:
        """The tables and indexes missing from the database created; the indexes the schema
        no longer has (``RETIRED_INDEXES``) dropped from a database made before."""
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
            for name in RETIRED_INDEXES:
                await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A write transaction; commits on normal exit, rolls back on any exception.

        The ``async with`` exits once the work is committed (with group commit, by the commit
        of its batch) or raises the error that prevented it."""
        async with _cancellation_restored():
            if self._grouped:
                async with self._grouped_transaction() as uow:
                    yield uow
                return
            if self._write_lock is None:
                async with self._session_transaction() as uow:
                    yield uow
            else:
                async with self._write_lock, self._session_transaction() as uow:
                    yield uow
        if uow.events:
            self.committed_events.add(uow.events, uow.payloads)
            self._notify()

    def _notify(self) -> None:
        for callback in self._event_listeners:
            try:
                callback()
            except Exception:
                log.exception("event listener %r failed", callback)

    @asynccontextmanager
    async def _session_transaction(self) -> AsyncIterator[UnitOfWork]:
        async with self._sessions() as session, session.begin():
            uow = UnitOfWork(session)
            yield uow
            await uow.finish()

    @asynccontextmanager
    async def append(self) -> AsyncIterator[Writes]:
        """Writes without reads: rows to insert, rows to update by key, events. Like
        ``transaction``, the ``async with`` exits once they are committed (or raises); nothing
        is written if its body raises. With group commit they need no SAVEPOINT and no
        statement of their own (see the module's docstring); otherwise they are one
        transaction of their own."""
        if not self._grouped:
            async with self.transaction() as uow:
                yield uow
            return
        batch = await self._join_batch()
        writes = Writes()
        try:
            yield writes
        except BaseException:
            self._pass_turn()  # nothing was written: nothing to undo
            raise
        batch.started += 1
        batch.units.append(writes)
        batch.deferred.take_from(writes)
        self._pass_turn()
        await asyncio.shield(batch.done)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with _cancellation_restored(), self._sessions() as session:
            yield session

    async def fetch(self, query: PreparedSelect, **values: Any) -> list[tuple[Any, ...]]:
        """The rows of a prepared read-only SELECT for the parameter ``values`` (see
        ``csms.store.prepared``): without the ORM, on a shared read connection of a SQLite
        file; through a session elsewhere."""
        if self._readers is None:
            async with self.read() as session:
                return await _fetch_through(session, query, values)
        compiled = query.compiled(self.engine.dialect)
        async with _cancellation_restored():
            rows = await self._readers.fetch(compiled.sql, compiled.parameters(values))
        return compiled.rows(rows)

    async def dispose(self) -> None:
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        if self._readers is not None:
            await self._readers.close()
        await self.engine.dispose()

    # --- group commit --------------------------------------------------------------------

    @asynccontextmanager
    async def _grouped_transaction(self) -> AsyncIterator[UnitOfWork]:
        batch = await self._join_batch()
        first = not batch.units
        try:
            session = await self._session_of(batch)
            await self._write_deferred(batch)  # what this unit reads includes them
        except BaseException:
            self._pass_turn()
            raise
        batch.started += 1
        uow = UnitOfWork(session)
        nested: AsyncSessionTransaction | None = None
        try:
            if not first:
                nested = await session.begin_nested()
            yield uow
            await uow.finish()  # this unit's errors are this unit's, not the batch's
            if nested is not None:
                await nested.commit()  # RELEASE SAVEPOINT
        except BaseException:
            try:
                await self._undo(batch, nested)
            finally:
                self._pass_turn()
            raise
        batch.units.append(uow)
        session.expunge_all()
        self._pass_turn()
        # Shielded: a unit cancelled while it waits leaves the commit of the others alone.
        await asyncio.shield(batch.done)

    async def _join_batch(self) -> _Batch:
        """Take the writer's turn, then the open batch (or a new one)."""
        await self._take_turn()
        try:
            return self._batch if self._batch is not None else await self._open_batch()
        except BaseException:
            self._pass_turn()
            raise

    async def _take_turn(self) -> None:
        if not self._turn_taken and not self._waiters:
            self._turn_taken = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._pass_turn()  # the turn reached us as we were cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):  # already skipped by _wake_next
                    self._waiters.remove(waiter)
            raise

    async def _open_batch(self) -> _Batch:
        loop = asyncio.get_running_loop()
        session = None if self._appends_alone else await self._begin()
        batch = _Batch(session=session, opened_at=loop.time(), done=loop.create_future())
        self._batch = batch
        return batch

    async def _session_of(self, batch: _Batch) -> AsyncSession:
        """The batch's open transaction, begun now if only ``append`` units joined so far."""
        if batch.session is None:
            batch.session = await self._begin()
        return batch.session

    async def _begin(self) -> AsyncSession:
        """A session with its write transaction begun."""
        session = self._sessions()
        try:
            connection = await session.connection()
            if self.is_sqlite:
                # Explicitly: the sqlite3 module would not begin before a SAVEPOINT, and the
                # RELEASE of an outermost SAVEPOINT commits. IMMEDIATE takes the write lock now.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            await asyncio.shield(session.close())
            raise
        return session

    async def _write_deferred(self, batch: _Batch) -> None:
        """Write the batch's deferred writes; if that fails, the batch is rolled back."""
        if batch.deferred.is_empty():
            return
        assert batch.session is not None
        try:
            await batch.deferred._write(await batch.session.connection())
        except BaseException as exc:
            batch.broken = exc
            raise

    async def _commit_appends(self, writes: Writes) -> None:
        """BEGIN IMMEDIATE, the writes, COMMIT: one round trip on the writer connection
        (rolled back whole if any of it fails)."""
        writer = self._writer
        if writer is None or not writer.usable():
            self._writer = None
            writer = self._writer = await sqlite_driver.opened(self._connect_sqlite, _PRAGMAS)
        writer.defer("BEGIN IMMEDIATE")
        await writer.write(writes.take_statements(self.engine.dialect), commit=True)

    async def _undo(self, batch: _Batch, nested: AsyncSessionTransaction | None) -> None:
        """Roll back the failed unit alone: its savepoint, or the whole (still empty of other
        units) transaction if it was the first of its batch."""
        session = batch.session
        assert session is not None  # a unit of work has begun it
        if nested is None:
            self._batch = None
            batch.done.set_result(None)
            await asyncio.shield(session.close())  # ends the transaction: ROLLBACK
            return
        try:
            await nested.rollback()
        except BaseException as exc:
            batch.broken = exc
            raise
        finally:
            sync = session.sync_session
            root = sync.get_transaction()
            if batch.broken is None and (
                root is None or not root.is_active or sync.get_nested_transaction() is not None
            ):
                batch.broken = RuntimeError("a unit of work left its savepoint open")
            session.expunge_all()

    def _pass_turn(self) -> None:
        """Called by the holder of the turn when it is done: hand the open batch to the next
        waiter, or commit it (the commit keeps the turn until it is over)."""
        batch = self._batch
        if batch is not None and (
            batch.broken is not None
            or not self._waiters
            or batch.started >= self._max_batch
            or asyncio.get_running_loop().time() - batch.opened_at >= self._max_batch_s
        ):
            self._batch = None
            task = asyncio.create_task(self._finish(batch), name="db-group-commit")
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)
            return
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._turn_taken = False

    async def _finish(self, batch: _Batch) -> None:
        """Commit the batch (or roll it back if broken), then release its units and wake the
        event listeners; the turn passes on after that."""
        error: BaseException | None = batch.broken
        session = batch.session
        try:
            if session is None:
                if batch.units:
                    try:
                        await self._commit_appends(batch.deferred)
                    except Exception as exc:
                        batch.broken = exc  # as a failed deferred write: the batch aborted
                        raise
            elif error is None and batch.units:
                await self._write_deferred(batch)
                await session.commit()
            else:
                await session.rollback()
        except BaseException as exc:
            error = exc
            if not isinstance(exc, Exception):
                log.warning("group commit interrupted: %r", exc)
        finally:
            try:
                if session is not None:
                    await session.close()
            except Exception:
                log.exception("closing the session of a batch failed")
            if error is None:
                batch.done.set_result(None)
            elif isinstance(error, asyncio.CancelledError):
                batch.done.cancel()
            else:
                if batch.broken is not None:
                    aborted = BatchAborted("the batch was rolled back; nothing was committed")
                    aborted.__cause__ = batch.broken
                    error = aborted
                batch.done.set_exception(error)
                batch.done.exception()  # retrieved: units that were cancelled never read it
            if error is None and any(unit.events for unit in batch.units):
                for unit in batch.units:
                    self.committed_events.add(unit.events, unit.payloads)
                self._notify()
            self._wake_next()


@asynccontextmanager
async def _cancellation_restored() -> AsyncIterator[None]:
    """A statement of a cancelled task ends before the cancellation goes on (see
    ``sqlite_driver.StatementCancelled``): at the database's edge it is the cancellation
    again, for the caller (and ``asyncio.timeout``) as if it had interrupted the statement."""
    try:
        yield
    except sqlite_driver.StatementCancelled as exc:
        raise asyncio.CancelledError() from exc


RETIRED_INDEXES = (
    # Nothing looks events or meter values up by charger, and each of these put a row of every
    # message into a page of its own (the charger's place in the index, not the end of it):
    # several pages more written at each commit.
    "ix_events_charger_id",
    "ix_meter_values_charger_id",
)
"""Indexes earlier versions created that are dropped when the schema is created."""

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)
"""Every connection's settings (readers add theirs, see ``csms.store.prepared``)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()
