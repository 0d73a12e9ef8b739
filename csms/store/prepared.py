"""Read-only SELECTs compiled once and run without the ORM: ``PreparedSelect`` and the shared
read connections of a SQLite file database (``SharedReaders``, used by ``Database.fetch``).
``compile_statement`` also compiles the INSERTs and UPDATEs of the deferred writes
(``csms.store.database.Writes``), the same way.

A page of an OCPI list (a hundred stored documents and their total) costs about 0.7 ms of SQLite
work, but through an ``AsyncSession`` about twice that again in Python: building the statement,
its cache key, the session, the pool checkout, the greenlet hop and the result machinery. A
``PreparedSelect`` is built once (its parameters are ``bindparam``s), compiled once per dialect
with SQLAlchemy, and then run as a plain SQL string with its parameters converted by the
columns' own bind processors (an aware ``datetime`` is stored exactly as the ORM stores it),
and its result columns converted by their result processors.

On a SQLite file database the statement runs on one of a few connections shared by every
reader: with the one-hop driver a statement is a single call on the connection's thread, so
concurrent readers need no connection of their own, just a turn; one statement is one implicit
read transaction (a consistent snapshot). The connections are opened with ``query_only`` so
that nothing sent through them can write. Elsewhere (PostgreSQL, an in-memory SQLite database)
the statement runs through a session as usual."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Insert, Select, Update
from sqlalchemy.types import TypeEngine

from csms.store import sqlite_driver
from csms.store.types import UtcDateTime, sqlite_utc_text

log = logging.getLogger(__name__)

_Processor = Callable[[Any], Any] | None
_REQUIRED = object()
"""The default of a parameter the statement does not hold: its value must be given."""
_READER_PRAGMAS = ("PRAGMA query_only = ON", "PRAGMA busy_timeout = 10000")


@dataclass(frozen=True)
class CompiledStatement:
    """A statement compiled for one dialect with a positional parameter style."""

    sql: str
    names: tuple[str, ...]
    """Parameter names, in the order of the placeholders."""
    defaults: Mapping[str, Any]
    """Values bound in the statement itself (``col == 5``) or the columns' scalar defaults."""
    binds: Mapping[str, _Processor]
    results: tuple[_Processor, ...]
    _plan: tuple[tuple[str, Any, _Processor], ...] = field(init=False, repr=False, compare=False)
    """Each parameter's name, default (``_REQUIRED`` if none) and processor, in order."""

    def __post_init__(self) -> None:
        plan = tuple(
            (name, self.defaults.get(name, _REQUIRED), self.binds[name]) for name in self.names
        )
        object.__setattr__(self, "_plan", plan)

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's parameters for ``values`` (each name of the statement must be given
        unless the statement holds its value)."""
        out = []
        for name, default, processor in self._plan:
            value = values.get(name, default)
            if value is _REQUIRED:
                raise KeyError(name)
            out.append(processor(value) if processor is not None and value is not None else value)
        return tuple(out)

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """The driver's rows converted by the result columns' types."""
        if not any(self.results):
            return [tuple(row) for row in raw]
        processors = self.results
        return [
            tuple(
                p(value) if p is not None else value
                for p, value in zip(processors, row, strict=True)
            )
            for row in raw
        ]


class PreparedSelect:
    """A SELECT whose varying values are ``bindparam``s, compiled once per dialect."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._compiled: dict[str, CompiledStatement] = {}

    def compiled(self, dialect: Dialect) -> CompiledStatement:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = compile_statement(self.statement, dialect)
        return found


def compile_statement(
    statement: Select[*tuple[Any, ...]] | Insert | Update,
    dialect: Dialect,
    column_keys: Sequence[str] | None = None,
) -> CompiledStatement:
    """``statement`` compiled once for ``dialect``; an INSERT for the columns ``column_keys``
    (as SQLAlchemy compiles it for an executemany of rows with those keys), the scalar
    defaults of the other columns included."""
    if dialect.paramstyle not in ("qmark", "numeric", "format"):
        raise ValueError(
            f"prepared statements need a positional parameter style, not {dialect.paramstyle}"
        )
    compiled = statement.compile(
        dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None
    )
    names = tuple(compiled.positiontup or ())
    binds = {name: compiled.binds[name] for name in names}
    if any(bind.expanding for bind in binds.values()):
        raise ValueError("prepared statements do not support expanding (IN list) parameters")
    defaults = {name: bind.value for name, bind in binds.items() if not bind.required}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not default.is_scalar:
            raise ValueError(f"{column}: a prepared INSERT needs a value or a scalar default")
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    result_types = (
        [column.type for column in statement.selected_columns]
        if isinstance(statement, Select)
        else []
    )
    return CompiledStatement(
        sql=str(compiled),
        names=names,
        defaults=defaults,
        binds={name: _bind_processor(bind.type, dialect) for name, bind in binds.items()},
        results=tuple(
            t.dialect_impl(dialect).result_processor(dialect, None) for t in result_types
        ),
    )


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> _Processor:
    """The dialect's own implementation of the type's binding (SQLite's DATETIME is text),
    in one step for aware UTC datetimes on SQLite (``sqlite_utc_text``)."""
    if isinstance(type_, UtcDateTime) and dialect.name == "sqlite":
        return sqlite_utc_text
    return type_.dialect_impl(dialect).bind_processor(dialect)


class SharedReaders:
    """A few read-only connections to a SQLite file, each shared by every reader in turn."""

    def __init__(self, connect: Callable[[], Any], count: int) -> None:
        self._connect = connect
        self._count = max(1, count)
        self._connections: list[sqlite_driver.OneHopConnection] = []
        self._opening: asyncio.Lock | None = None
        self._turns = itertools.count()

    async def fetch(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """The rows of one statement. A connection found closed (its thread stopped) is
        replaced and the statement run once more on another: a read changes nothing."""
        connection = await self._next()
        try:
            return await connection.fetch(sql, parameters)
        except (ValueError, sqlite3.ProgrammingError):  # closed connection or thread
            if connection.usable():
                raise
            log.warning("a shared read connection was closed; opening another")
            self._drop(connection)
        return await (await self._next()).fetch(sql, parameters)

    async def _next(self) -> sqlite_driver.OneHopConnection:
        """The connection whose turn it is (opening the missing ones first)."""
        connections = self._connections
        if len(connections) < self._count:
            connections = await self._open()
        return connections[next(self._turns) % len(connections)]

    def _drop(self, connection: sqlite_driver.OneHopConnection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    async def _open(self) -> list[sqlite_driver.OneHopConnection]:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            while len(self._connections) < self._count:
                connection = await sqlite_driver.opened(self._connect, _READER_PRAGMAS)
                self._connections.append(connection)
        return self._connections

    async def close(self) -> None:
        connections, self._connections = self._connections, []
        for connection in connections:
            await connection.close()
