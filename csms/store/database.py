"""Database access: one engine, short transactions, the event log appended in the same
transaction as the state change it describes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.clock import utc_now
from csms.domain.codec import encode_event, event_type_name
from csms.domain.events import DomainEvent
from csms.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from csms.store.tables import EventRow

log = logging.getLogger(__name__)


class UnitOfWork:
    """One database transaction: the session plus the events it appends."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.events: list[DomainEvent] = []

    def record(self, domain_event: DomainEvent) -> None:
        self.events.append(domain_event)
        self.session.add(
            EventRow(
                type=event_type_name(domain_event),
                charger_id=domain_event.charger_id,
                occurred_at=domain_event.occurred_at,
                recorded_at=utc_now(),
                payload=json.dumps(encode_event(domain_event), separators=(",", ":")),
            )
        )


class Database:
    """SQLite by default (WAL, one writer at a time in this process); PostgreSQL when configured."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite and (":memory:" in url or url.endswith("///")):
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        # SQLite allows one writer; queueing writers here avoids "database is locked" errors.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._event_listeners: list[Callable[[], None]] = []

    def add_event_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that appended events (to wake consumers of the
        event log in this process; consumers also poll, for writers in other processes)."""
        self._event_listeners.append(callback)

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A write transaction; commits on normal exit, rolls back on any exception."""
        if self._write_lock is None:
            async with self._session_transaction() as uow:
                yield uow
        else:
            async with self._write_lock, self._session_transaction() as uow:
                yield uow
        if uow.events:
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
            yield UnitOfWork(session)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()
