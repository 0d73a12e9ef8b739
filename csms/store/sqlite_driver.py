"""aiosqlite with one thread hop per statement.

aiosqlite runs every sqlite3 call on its connection's thread, and SQLAlchemy's adaptation of it
makes four calls per statement (create a cursor, execute, fetch the rows, close the cursor):
four round trips from the event loop to that thread and back, each a queue put, a wake-up of
the thread and a wake-up of the loop. Here a statement is one round trip: the cursor is created,
executed, drained and closed on the connection's thread in one call, as SQLAlchemy would fetch
every row right after executing anyway (it buffers the rows of an aiosqlite cursor). COMMIT and
ROLLBACK when no transaction is open (a read session given back to the pool) are no-ops in the
sqlite3 module, so they make no round trip at all. Transaction control statements (BEGIN,
SAVEPOINT, RELEASE) are sent with the statement that follows them, in the same round trip, and a
SAVEPOINT released or rolled back to before any statement ran in it is not sent at all.

Only the calls SQLAlchemy makes on a cursor are provided; the connection is aiosqlite's own
otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import aiosqlite

_Description = tuple[tuple[Any, ...], ...] | None


def _nothing() -> None:
    return None


class StatementCancelled(Exception):
    """Raised by a statement whose task was cancelled while it ran, once it has ended (an
    ``Exception``, not the ``CancelledError`` itself: SQLAlchemy keeps the connection)."""


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one round trip per statement."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        # Whether sqlite3 has a transaction open, as of the last call on the thread; unknown
        # (so assumed open) until then. Calls on one connection never overlap: SQLAlchemy
        # awaits each one, so the value is exact whenever no call is under way.
        self._open_transaction = True
        # Transaction control statements not sent yet: they go with the next statement.
        self._deferred: list[str] = []

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the connection's thread. A call in flight is never interrupted: the
        call runs to its end on the thread anyway, and one interrupted by a cancellation
        makes SQLAlchemy invalidate the connection (with group commit, the transaction every
        unit of the batch shares: their work, already done, would be lost with it). If the
        task is cancelled meanwhile, the call's end is awaited and ``StatementCancelled``
        raised instead; ``Database`` turns it back into the cancellation at its edge."""
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._tx.put_nowait((future, partial(self._tracked, partial(fn, *args, **kwargs))))
        try:
            return await future
        except asyncio.CancelledError:
            pass
        # The thread serves its queue in order: once this no-op is done, the call has ended.
        ended: asyncio.Future[None] = loop.create_future()
        self._tx.put_nowait((ended, _nothing))
        while not ended.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(ended)
        raise StatementCancelled("cancelled while a statement ran; the statement ended")

    def _tracked(self, function: Callable[[], Any]) -> Any:
        """On the connection's thread: run ``function``, note whether a transaction is open."""
        try:
            return function()
        finally:
            try:
                connection = self._connection
                self._open_transaction = connection is not None and connection.in_transaction
            except sqlite3.Error:  # closed by ``function``
                self._open_transaction = False

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    async def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """The rows of one statement run on its own, outside any transaction control: one
        round trip. Calls may overlap: each one is a single call on the connection's thread."""
        result: tuple[_Description, list[Any], int, int | None] = await self._execute(
            self._run, sql, parameters, False
        )
        return result[1]

    async def read(self, sql: str, parameters: Sequence[Any]) -> list[Any]:
        """The rows of one statement in the transaction open on the connection, after the
        transaction control statements deferred so far: one round trip."""
        result: tuple[_Description, list[Any], int, int | None] = await self._execute(
            self._run, sql, parameters, False, self.take_deferred()
        )
        return result[1]

    async def write(
        self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]], *, commit: bool = False
    ) -> None:
        """Run each statement once per row of parameters (executemany) in the transaction
        open on the connection, after the transaction control statements deferred so far,
        then COMMIT if ``commit`` (rolled back if anything fails): one round trip."""
        await self._execute(self._write, self.take_deferred(), statements, commit)

    def _write(
        self,
        deferred: tuple[str, ...],
        statements: Sequence[tuple[str, Sequence[Sequence[Any]]]],
        commit: bool,
    ) -> None:
        """On the connection's thread: see ``write``."""
        connection = self._conn
        cursor = connection.cursor()
        try:
            for statement in deferred:
                cursor.execute(statement)
            for sql, rows in statements:
                cursor.executemany(sql, rows)
            if commit:
                connection.commit()
        except BaseException:
            if commit and connection.in_transaction:
                connection.rollback()
            raise
        finally:
            cursor.close()

    def usable(self) -> bool:
        """Whether the connection is open and its thread running."""
        return self._connection is not None and self._running

    async def commit(self) -> None:
        # What was deferred changes nothing a COMMIT or ROLLBACK keeps: an empty transaction
        # begun, savepoints set or released.
        self._deferred.clear()
        if self._open_transaction:
            await self._execute(self._commit_or_roll_back)

    def _commit_or_roll_back(self) -> None:
        """On the connection's thread: COMMIT; if it fails (a deferred constraint, a full
        disk), roll back, as the caller takes the transaction for ended: SQLite would keep it
        open and the connection would go back to the pool with it."""
        connection = self._conn
        try:
            connection.commit()
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise

    async def rollback(self) -> None:
        self._deferred.clear()
        if self._open_transaction:
            await super().rollback()

    def defer(self, sql: str) -> bool:
        """Keep a transaction control statement to send with the next statement; a savepoint
        released or rolled back to before anything ran in it costs nothing. True if kept."""
        words = sql.split()
        if not words or len(words) > 4:
            return False
        verb = words[0].upper()
        if verb == "BEGIN" or (verb == "SAVEPOINT" and len(words) == 2):
            self._deferred.append(sql)
            return True
        if len(words) >= 3 and words[-2].upper() == "SAVEPOINT" and verb in ("RELEASE", "ROLLBACK"):
            last = self._deferred[-1].split() if self._deferred else []
            if last and last[0].upper() == "SAVEPOINT" and last[-1] == words[-1]:
                self._deferred.pop()  # nothing happened since the savepoint was set
                return True
            if verb == "RELEASE":
                self._deferred.append(sql)
                return True
        return False

    def take_deferred(self) -> tuple[str, ...]:
        deferred = tuple(self._deferred)
        self._deferred.clear()
        return deferred

    def _run(
        self, sql: str, parameters: Any, many: bool, deferred: tuple[str, ...] = ()
    ) -> tuple[_Description, list[Any], int, int | None]:
        """On the connection's thread: the deferred statements, then one statement, start to
        finish."""
        cursor = self._conn.cursor()
        try:
            for statement in deferred:
                cursor.execute(statement)
            if many:
                cursor.executemany(sql, parameters)
            elif parameters is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, parameters)
            description = cursor.description
            rows = cursor.fetchall() if description is not None else []
            return description, rows, cursor.rowcount, cursor.lastrowid
        finally:
            cursor.close()


class OneHopCursor:
    """The cursor calls SQLAlchemy makes, each statement one round trip."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self._description: _Description = None
        self._rows: list[Any] = []
        self._rowcount = -1
        self._lastrowid: int | None = None

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    @property
    def description(self) -> _Description:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        await self._call(sql, parameters, many=False)
        return self

    async def executemany(self, sql: str, parameters: Any) -> OneHopCursor:
        await self._call(sql, parameters, many=True)
        return self

    async def _call(self, sql: str, parameters: Any, *, many: bool) -> None:
        connection = self._connection
        if not many and not parameters and connection.defer(sql):
            self._description, self._rows, self._rowcount, self._lastrowid = None, [], -1, None
            return
        result = await connection._execute(
            connection._run, sql, parameters, many, connection.take_deferred()
        )
        self._description, self._rows, self._rowcount, self._lastrowid = result

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    def setoutputsize(self, *_args: Any) -> None:
        return None


async def opened(
    connect: Callable[[], Awaitable[OneHopConnection]], pragmas: Sequence[str]
) -> OneHopConnection:
    """A connection from ``connect`` with ``pragmas`` run on it (closed again if one fails)."""
    connection = await connect()
    try:
        for pragma in pragmas:
            await connection.fetch(pragma, ())
    except BaseException:
        await connection.close()
        raise
    return connection


async def connect(database: str, **kwargs: Any) -> OneHopConnection:
    """Open ``database`` (the sqlite3 arguments of ``kwargs``) on a daemon thread, as
    SQLAlchemy does for aiosqlite."""
    connection = OneHopConnection(partial(sqlite3.connect, database, **kwargs))
    connection._thread.daemon = True
    await connection
    return connection
