"""Prepared reads (``Database.fetch``): the same rows as the ORM gives for the same statement,
parameters converted by the columns' types both ways, on a few shared read-only connections of a
SQLite file (replaced when one is found closed), and through a session elsewhere."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import sqlite
from sqlmodel import col

from csms.store.database import Database, fetch_in, fetch_prepared
from csms.store.prepared import PreparedSelect
from csms.store.sqlite_driver import OneHopConnection
from csms.store.tables import ChargerRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SEEN_SINCE = PreparedSelect(
    select(col(ChargerRow.charger_id), col(ChargerRow.last_seen_at))
    .where(col(ChargerRow.last_seen_at) >= bindparam("since"))
    .order_by(col(ChargerRow.charger_id))
    .limit(bindparam("limit"))
)


async def with_chargers(db: Database) -> None:
    await db.create_schema()
    async with db.transaction() as uow:
        for i in range(10):
            uow.session.add(
                ChargerRow(
                    charger_id=f"CP-{i}",
                    created_at=T0,
                    # One in a time zone other than UTC: stored as UTC, compared as UTC.
                    last_seen_at=(T0 + timedelta(minutes=i)).astimezone(
                        ZoneInfo("Europe/Amsterdam") if i == 5 else UTC
                    ),
                )
            )


@pytest.fixture(params=["file", "memory"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'prepared.db'}"
        if request.param == "file"
        else "sqlite+aiosqlite://"
    )
    database = Database(url)
    await with_chargers(database)
    try:
        yield database
    finally:
        await database.dispose()


async def test_rows_and_types_are_those_of_the_orm(db: Database) -> None:
    since = (T0 + timedelta(minutes=4)).astimezone(ZoneInfo("America/New_York"))
    rows = await db.fetch(SEEN_SINCE, since=since, limit=3)
    async with db.read() as session:
        connection = await session.connection()
        expected = [
            tuple(r)
            for r in await connection.execute(SEEN_SINCE.statement, {"since": since, "limit": 3})
        ]
    assert rows == expected
    assert rows == [
        ("CP-4", T0 + timedelta(minutes=4)),
        ("CP-5", T0 + timedelta(minutes=5)),
        ("CP-6", T0 + timedelta(minutes=6)),
    ]
    assert all(seen.tzinfo is UTC for _, seen in rows)


async def test_a_naive_datetime_is_refused_as_by_the_orm(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        await db.fetch(SEEN_SINCE, since=datetime(2026, 3, 1), limit=3)


async def test_values_held_by_the_statement_are_used(db: Database) -> None:
    count = PreparedSelect(
        select(func.count()).where(
            col(ChargerRow.charger_id) >= "CP-7", col(ChargerRow.created_at) == T0
        )
    )
    assert await db.fetch(count) == [(3,)]


async def test_concurrent_reads_each_get_their_own_rows(db: Database) -> None:
    async def one(minutes: int) -> list[tuple[object, ...]]:
        return await db.fetch(SEEN_SINCE, since=T0 + timedelta(minutes=minutes), limit=1)

    answers = await asyncio.gather(*(one(i % 10) for i in range(60)))
    assert [rows[0][0] for rows in answers] == [f"CP-{i % 10}" for i in range(60)]


async def test_shared_readers_cannot_write(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ro.db'}")
    await with_chargers(db)
    try:
        assert db._readers is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db._readers.fetch("DELETE FROM chargers", ())
        assert await db.fetch(PreparedSelect(select(func.count()).select_from(ChargerRow))) == [
            (10,)
        ]
    finally:
        await db.dispose()


async def test_a_closed_shared_connection_is_replaced(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'rc.db'}", shared_readers=1)
    await with_chargers(db)
    count = PreparedSelect(select(func.count()).select_from(ChargerRow))
    try:
        assert await db.fetch(count) == [(10,)]
        assert db._readers is not None
        [first] = db._readers._connections
        await first.close()  # as if its thread had stopped
        assert await db.fetch(count) == [(10,)]
        [second] = db._readers._connections
        assert second is not first
    finally:
        await db.dispose()


def test_in_lists_are_refused() -> None:
    query = PreparedSelect(
        select(col(ChargerRow.charger_id)).where(
            col(ChargerRow.charger_id).in_(bindparam("ids", expanding=True))
        )
    )
    with pytest.raises(ValueError, match="expanding"):
        query.compiled(sqlite.dialect())


@pytest.mark.parametrize("one_hop", [True, False])
async def test_a_read_in_a_transaction_sees_its_writes(tmp_path: Path, one_hop: bool) -> None:
    """``fetch_in`` reads in the caller's transaction (what it wrote so far included): as a
    prepared read on the one-hop connection of a SQLite file, through the session
    elsewhere (``fetch_prepared`` gives None there)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'in.db'}", one_hop=one_hop)
    await with_chargers(db)
    try:
        async with db.transaction() as uow:
            prepared = await fetch_prepared(uow.session, SEEN_SINCE, since=T0, limit=100)
            assert (prepared is not None) == one_hop
            uow.session.add(ChargerRow(charger_id="CP-NEW", created_at=T0, last_seen_at=T0))
            await uow.session.flush()
            rows = await fetch_in(uow.session, SEEN_SINCE, since=T0, limit=100)
            assert ("CP-NEW", T0) in rows
            assert len(rows) == 11
    finally:
        await db.dispose()


async def test_a_prepared_read_opens_the_deferred_transaction_first(tmp_path: Path) -> None:
    """The one-hop connection defers the BEGIN of a write transaction to the next statement:
    a prepared read that comes first sends it, so that it reads in the transaction (holding
    the write lock), not before it."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'deferred.db'}")
    await with_chargers(db)
    try:
        async with db.transaction() as uow:
            connection = await uow.session.connection()
            assert connection.sync_connection is not None
            driver = connection.sync_connection.connection.driver_connection
            assert isinstance(driver, OneHopConnection)
            assert not driver.in_transaction  # BEGIN IMMEDIATE deferred
            rows = await fetch_in(uow.session, SEEN_SINCE, since=T0, limit=1)
            assert rows == [("CP-0", T0)]
            assert driver.in_transaction
    finally:
        await db.dispose()
