"""Deferred writes (``Database.append``): units that only insert rows, update rows by key and
record events join the open batch without a SAVEPOINT or a statement of their own; their
writes are made before the next unit that uses the session, and before the COMMIT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import select

from csms.clock import utc_now
from csms.domain.events import ChargerDisconnected
from csms.store.database import BatchAborted, Database, UnitOfWork, Writes
from csms.store.tables import ChargerRow, ConnectorRow
from tests.csms.test_group_commit import (
    Held,
    a_charger,
    adding,
    charger_ids,
    count_commits,
    event_chargers,
    trace_driver,
    until,
)

SEEN = utc_now().replace(microsecond=0)


@pytest.fixture(params=["grouped", "alone", "memory"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same behaviour with group commit, with a transaction per unit, and in memory
    (SQLAlchemy's own aiosqlite driver: the writes go through its ``execute``)."""
    if request.param == "memory":
        database = Database("sqlite+aiosqlite://")
        await database.create_schema()
        async for ready in _with_chargers(database):
            yield ready
        return
    async for database in _database(tmp_path, grouped=request.param == "grouped"):
        yield database


@pytest.fixture
async def grouped(tmp_path: Path) -> AsyncIterator[Database]:
    async for database in _database(tmp_path, grouped=True):
        yield database


async def _database(tmp_path: Path, *, grouped: bool) -> AsyncIterator[Database]:
    database = Database(
        f"sqlite+aiosqlite:///{tmp_path / 'dw.db'}", max_batch_s=3600, group_commit=grouped
    )
    await database.create_schema()
    async for ready in _with_chargers(database):
        yield ready


async def _with_chargers(database: Database) -> AsyncIterator[Database]:
    async with database.transaction() as uow:
        for charger_id in ("A", "B"):
            uow.session.add(a_charger(charger_id))
    try:
        yield database
    finally:
        await database.dispose()


def seen(writes: Writes, charger_id: str, *, connector: int | None = None) -> None:
    writes.update(ChargerRow, {"charger_id": charger_id}, {"last_seen_at": SEEN})
    writes.record(ChargerDisconnected(charger_id=charger_id, occurred_at=SEEN))
    if connector is not None:
        writes.insert(
            ConnectorRow,
            {
                "charger_id": charger_id,
                "ocpp_evse_id": connector,
                "connector_id": connector,
                "status": "Available",
                "status_at": SEEN,
                "updated_at": SEEN,
            },
        )


async def last_seen(db: Database) -> dict[str, object]:
    async with db.read() as session:
        rows = (await session.exec(select(ChargerRow))).all()
    return {row.charger_id: row.last_seen_at for row in rows}


async def connectors(db: Database) -> list[tuple[str, int]]:
    async with db.read() as session:
        rows = (await session.exec(select(ConnectorRow))).all()
    return sorted((row.charger_id, row.ocpp_evse_id) for row in rows)


async def test_appended_writes_are_committed_when_the_unit_exits(db: Database):
    async with db.append() as writes:
        seen(writes, "A", connector=1)
    # Read on another connection: committed.
    assert (await last_seen(db))["A"] == SEEN
    assert (await last_seen(db))["B"] is None
    assert await connectors(db) == [("A", 1)]
    assert await event_chargers(db) == ["A"]


async def test_nothing_is_written_when_an_appending_body_raises(db: Database):
    with pytest.raises(RuntimeError):
        async with db.append() as writes:
            seen(writes, "A", connector=1)
            raise RuntimeError("changed my mind")
    async with db.append() as writes:
        seen(writes, "B")
    assert await last_seen(db) == {"A": None, "B": SEEN}
    assert await connectors(db) == []
    assert await event_chargers(db) == ["B"]


async def test_appending_units_share_one_commit_without_statements_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'dw.db'}", max_batch_s=3600)
    await db.create_schema()
    try:
        commits = count_commits(db)
        trace = trace_driver(monkeypatch)
        statements = trace.statements
        woken: list[int] = []
        db.add_event_listener(lambda: woken.append(1))
        held = Held(db, adding("A"))
        await held.inside.wait()

        async def appending(connector: int) -> None:
            async with db.append() as writes:
                seen(writes, "A", connector=connector)

        tasks = [asyncio.create_task(appending(n)) for n in (1, 2, 3)]
        await until(lambda: len(db._waiters) == 3)
        statements.clear()
        held.release.set()
        await asyncio.gather(held.task, *tasks)
        assert len(commits) == 1
        assert woken == [1]
        # The held unit's event, then for the three appending units together: one INSERT of
        # connectors, one UPDATE of chargers, one INSERT of events (no SAVEPOINT).
        assert sorted(statements) == ["INSERT", "INSERT", "INSERT", "UPDATE"]
        assert await connectors(db) == [("A", 1), ("A", 2), ("A", 3)]
        assert await event_chargers(db) == ["A", "A", "A", "A"]
    finally:
        await db.dispose()


async def test_a_unit_after_appending_ones_reads_their_writes(grouped: Database):
    db = grouped
    read: list[object] = []

    async def reader(uow: UnitOfWork) -> None:
        row = await uow.session.get(ChargerRow, "A")
        assert row is not None
        read.append(row.last_seen_at)
        uow.session.add(a_charger("C"))

    held = Held(db, adding("X"))
    await held.inside.wait()

    async def appending() -> None:
        async with db.append() as writes:
            seen(writes, "A", connector=1)

    async def reading() -> None:
        async with db.transaction() as uow:
            await reader(uow)

    first = asyncio.create_task(appending())
    await until(lambda: len(db._waiters) == 1)
    second = asyncio.create_task(reading())
    await until(lambda: len(db._waiters) == 2)
    held.release.set()
    await asyncio.gather(held.task, first, second)
    assert read == [SEEN]
    assert await charger_ids(db) == ["A", "B", "C", "X"]
    assert await event_chargers(db) == ["X", "A"]


async def test_a_failing_unit_after_appending_ones_leaves_their_writes(grouped: Database):
    db = grouped
    held = Held(db, adding("X"))
    await held.inside.wait()

    async def appending() -> None:
        async with db.append() as writes:
            seen(writes, "A", connector=1)

    first = asyncio.create_task(appending())
    await until(lambda: len(db._waiters) == 1)
    failing = asyncio.create_task(_run(db, adding("Y", fail=True)))
    await until(lambda: len(db._waiters) == 2)
    held.release.set()
    await asyncio.gather(held.task, first)
    with pytest.raises(RuntimeError, match="Y failed"):
        await failing
    assert (await last_seen(db))["A"] == SEEN
    assert await charger_ids(db) == ["A", "B", "X"]
    assert await connectors(db) == [("A", 1)]


async def _run(db: Database, work: object) -> None:
    async with db.transaction() as uow:
        await work(uow)  # type: ignore[operator]


async def test_a_deferred_write_that_fails_fails_its_whole_batch(tmp_path: Path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'dw.db'}", max_batch_s=3600)
    await db.create_schema()
    try:
        held = Held(db, adding("A"))
        await held.inside.wait()

        async def appending(charger_id: str) -> None:
            async with db.append() as writes:
                seen(writes, charger_id, connector=1)

        # NOBODY is not a charger: its connector row breaks the foreign key when written.
        tasks = [asyncio.create_task(appending(c)) for c in ("A", "NOBODY")]
        await until(lambda: len(db._waiters) == 2)
        held.release.set()
        results = await asyncio.gather(held.task, *tasks, return_exceptions=True)
        assert all(isinstance(r, BatchAborted) for r in results), results
        assert await charger_ids(db) == []
        assert await connectors(db) == []
        assert await event_chargers(db) == []
        # The writer carries on.
        async with db.append() as writes:
            writes.insert(ChargerRow, {"charger_id": "B", "created_at": SEEN})
        assert await charger_ids(db) == ["B"]
    finally:
        await db.dispose()


async def test_an_update_of_a_missing_row_changes_nothing(db: Database):
    async with db.append() as writes:
        writes.update(ChargerRow, {"charger_id": "NOBODY"}, {"last_seen_at": SEEN})
    assert await last_seen(db) == {"A": None, "B": None}


class HeldAppend:
    """An appending unit that keeps the writer's turn until released: the appending units
    started meanwhile join its batch, which no unit of work has opened a session for."""

    def __init__(self, db: Database, charger_id: str) -> None:
        self.inside = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(db, charger_id))

    async def _run(self, db: Database, charger_id: str) -> None:
        async with db.append() as writes:
            seen(writes, charger_id, connector=1)
            self.inside.set()
            await self.release.wait()


async def appending_units(db: Database, *charger_ids: str) -> list[asyncio.Task[None]]:
    """One appending unit per charger (its connector 2 seen); return once they all wait."""

    async def appending(charger_id: str) -> None:
        async with db.append() as writes:
            seen(writes, charger_id, connector=2)

    tasks = [asyncio.create_task(appending(c)) for c in charger_ids]
    await until(lambda: len(db._waiters) == len(charger_ids))
    return tasks


async def test_a_batch_of_appending_units_is_one_round_trip_without_a_session(
    grouped: Database, monkeypatch: pytest.MonkeyPatch
):
    db = grouped
    async with db.append() as writes:  # opens the writer connection (its PRAGMAs)
        writes.update(ChargerRow, {"charger_id": "NOBODY"}, {"last_seen_at": SEEN})
    sqlalchemy_commits = count_commits(db)
    checkouts: list[int] = []
    event.listen(db.engine.sync_engine.pool, "checkout", lambda *_args: checkouts.append(1))
    trace = trace_driver(monkeypatch)
    woken: list[int] = []
    db.add_event_listener(lambda: woken.append(1))
    held = HeldAppend(db, "A")
    await held.inside.wait()
    tasks = await appending_units(db, "A", "B")
    held.release.set()
    await asyncio.gather(held.task, *tasks)
    # BEGIN IMMEDIATE, then for the three units together one statement per table and shape,
    # and the COMMIT: a single call on the writer connection's thread.
    assert trace.statements == ["BEGIN", "INSERT", "UPDATE", "INSERT"]
    assert trace.commits == 1
    assert trace.calls == 1
    assert sqlalchemy_commits == []
    assert checkouts == []  # no session, no pooled connection
    assert woken == [1]
    assert await connectors(db) == [("A", 1), ("A", 2), ("B", 2)]
    assert await last_seen(db) == {"A": SEEN, "B": SEEN}
    assert await event_chargers(db) == ["A", "A", "B"]


async def test_a_failing_batch_of_appending_units_is_aborted_whole(grouped: Database):
    db = grouped
    held = HeldAppend(db, "A")
    await held.inside.wait()
    # NOBODY is not a charger: its connector row breaks the foreign key when written.
    tasks = await appending_units(db, "B", "NOBODY")
    held.release.set()
    results = await asyncio.gather(held.task, *tasks, return_exceptions=True)
    assert all(isinstance(r, BatchAborted) for r in results), results
    assert "FOREIGN KEY" in str(results[0].__cause__)  # type: ignore[union-attr]
    assert await last_seen(db) == {"A": None, "B": None}
    assert await connectors(db) == []
    assert await event_chargers(db) == []
    # Rolled back on its connection, which the next batch uses as before.
    async with db.append() as writes:
        seen(writes, "B", connector=1)
    assert await connectors(db) == [("B", 1)]


async def test_a_unit_of_work_joining_appending_ones_begins_their_transaction(
    grouped: Database, monkeypatch: pytest.MonkeyPatch
):
    """The batch had no session: the unit of work opens one, the appended rows are written
    in it first (it reads them), and one COMMIT on that session ends the batch."""
    db = grouped
    sqlalchemy_commits = count_commits(db)
    held = HeldAppend(db, "A")
    await held.inside.wait()
    read: list[object] = []

    async def reading() -> None:
        async with db.transaction() as uow:
            row = await uow.session.get(ChargerRow, "A")
            assert row is not None
            read.append(row.last_seen_at)

    reader = asyncio.create_task(reading())
    await until(lambda: len(db._waiters) == 1)
    held.release.set()
    await asyncio.gather(held.task, reader)
    assert read == [SEEN]
    assert sqlalchemy_commits == [1]
    assert await connectors(db) == [("A", 1)]


async def test_a_closed_writer_connection_is_replaced(grouped: Database):
    db = grouped
    async with db.append() as writes:
        seen(writes, "A")
    writer = db._writer
    assert writer is not None
    await writer.close()
    async with db.append() as writes:
        seen(writes, "B", connector=1)
    assert db._writer is not writer
    assert await last_seen(db) == {"A": SEEN, "B": SEEN}
    assert await connectors(db) == [("B", 1)]
