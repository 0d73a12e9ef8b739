"""Group commit of the write transactions (SQLite): units of work that wait for the writer
share its transaction, each in a savepoint of its own, and are made durable by one commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from csms.clock import utc_now
from csms.domain.events import ChargerConnected, ChargerDisconnected
from csms.domain.model import OcppVersion
from csms.store.database import Database, UnitOfWork
from csms.store.sqlite_driver import OneHopConnection
from csms.store.tables import ChargerRow, ConnectorRow, EventRow


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    # No age limit on a batch: whether units share a commit never depends on timing here.
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}", max_batch_s=3600)
    await database.create_schema()
    try:
        yield database
    finally:
        await database.dispose()


@dataclass
class DriverTrace:
    """What the one-hop driver sent to SQLite, on every connection."""

    statements: list[str] = field(default_factory=list)
    """The first word of each statement, in order (an executemany counts once)."""
    commits: int = 0
    calls: int = 0
    """Round trips to a connection's thread that ran SQL."""


def trace_driver(monkeypatch: pytest.MonkeyPatch) -> DriverTrace:
    """Record the statements and COMMITs of the one-hop driver (SQLAlchemy's events do not
    see the deferred writes, which bypass its execution)."""
    trace = DriverTrace()
    run, write, commit = (
        OneHopConnection._run,
        OneHopConnection._write,
        OneHopConnection._commit_or_roll_back,
    )

    def note(*sql: str) -> None:
        trace.calls += 1
        trace.statements.extend(statement.split()[0].upper() for statement in sql)

    def traced_run(
        self: OneHopConnection, sql: str, parameters: Any, many: bool, deferred: Sequence[str] = ()
    ) -> Any:
        note(*deferred, sql)
        return run(self, sql, parameters, many, tuple(deferred))

    def traced_write(
        self: OneHopConnection,
        deferred: tuple[str, ...],
        statements: Sequence[tuple[str, Sequence[Sequence[Any]]]],
        commit_too: bool,
    ) -> None:
        note(*deferred, *(sql for sql, _rows in statements))
        trace.commits += commit_too
        write(self, deferred, statements, commit_too)

    def traced_commit(self: OneHopConnection) -> None:
        trace.calls += 1
        trace.commits += 1
        commit(self)

    monkeypatch.setattr(OneHopConnection, "_run", traced_run)
    monkeypatch.setattr(OneHopConnection, "_write", traced_write)
    monkeypatch.setattr(OneHopConnection, "_commit_or_roll_back", traced_commit)
    return trace


def count_commits(db: Database) -> list[int]:
    commits: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


def a_charger(charger_id: str, **values: Any) -> ChargerRow:
    return ChargerRow(charger_id=charger_id, created_at=utc_now(), **values)


async def charger_ids(db: Database) -> list[str]:
    async with db.read() as session:
        return sorted(row.charger_id for row in (await session.exec(select(ChargerRow))).all())


async def event_chargers(db: Database) -> list[str]:
    async with db.read() as session:
        rows = (await session.exec(select(EventRow).order_by(EventRow.id))).all()  # type: ignore[arg-type]
    return [row.charger_id for row in rows]


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (no clock involved)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


Work = Callable[[UnitOfWork], Awaitable[None]]


def adding(charger_id: str, *, fail: bool = False) -> Work:
    async def work(uow: UnitOfWork) -> None:
        uow.session.add(a_charger(charger_id))
        uow.record(
            ChargerConnected(
                charger_id=charger_id, occurred_at=utc_now(), ocpp_version=OcppVersion.V16
            )
        )
        await uow.session.flush()
        if fail:
            raise RuntimeError(f"{charger_id} failed")

    return work


class Held:
    """A first unit that keeps the writer's turn until released, so the next ones queue."""

    def __init__(self, db: Database, work: Work) -> None:
        self.inside = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(db, work))

    async def _run(self, db: Database, work: Work) -> None:
        async with db.transaction() as uow:
            await work(uow)
            self.inside.set()
            await self.release.wait()


async def queued(db: Database, *works: Work) -> list[asyncio.Task[None]]:
    """Start one unit per work; return once they all wait for the writer's turn."""

    async def run(work: Work) -> None:
        async with db.transaction() as uow:
            await work(uow)

    before = len(db._waiters)
    tasks = [asyncio.create_task(run(work)) for work in works]
    await until(lambda: len(db._waiters) == before + len(works))
    return tasks


async def test_waiting_units_are_committed_together_when_the_writer_is_busy(db: Database):
    commits = count_commits(db)
    woken: list[list[str]] = []
    db.add_event_listener(lambda: woken.append([]))
    held = Held(db, adding("A"))
    await held.inside.wait()
    tasks = await queued(db, adding("B"), adding("C"))
    held.release.set()
    await asyncio.gather(held.task, *tasks)
    assert len(commits) == 1
    assert len(woken) == 1
    assert await charger_ids(db) == ["A", "B", "C"]
    assert await event_chargers(db) == ["A", "B", "C"]


async def test_a_unit_exits_only_once_its_work_is_committed_when_batched(db: Database):
    seen_after_exit: dict[str, list[str]] = {}

    async def unit(charger_id: str) -> None:
        async with db.transaction() as uow:
            await adding(charger_id)(uow)
        seen_after_exit[charger_id] = await charger_ids(db)  # another connection

    held = Held(db, adding("A"))
    await held.inside.wait()
    tasks = [asyncio.create_task(unit(c)) for c in ("B", "C")]
    await until(lambda: len(db._waiters) == 2)
    held.release.set()
    await asyncio.gather(held.task, *tasks)
    assert seen_after_exit == {"B": ["A", "B", "C"], "C": ["A", "B", "C"]}


async def test_a_failing_unit_is_rolled_back_alone_when_batched(db: Database):
    commits = count_commits(db)
    held = Held(db, adding("A"))
    await held.inside.wait()
    b, c, d = await queued(db, adding("B"), adding("C", fail=True), adding("D"))
    held.release.set()
    await asyncio.gather(held.task, b, d)
    with pytest.raises(RuntimeError, match="C failed"):
        await c
    assert len(commits) == 1
    assert await charger_ids(db) == ["A", "B", "D"]
    assert await event_chargers(db) == ["A", "B", "D"]  # C's event was not recorded


async def test_a_failing_first_unit_leaves_the_waiting_units_alone(db: Database):
    async with db.transaction() as uow:
        await adding("A")(uow)
    failing = Held(db, adding("X"))
    await failing.inside.wait()  # X is the first unit of a new batch
    b, c = await queued(db, adding("B"), adding("C"))
    failing.task.cancel()  # fails X while it holds the turn
    with pytest.raises(asyncio.CancelledError):
        await failing.task
    await asyncio.gather(b, c)
    assert await charger_ids(db) == ["A", "B", "C"]
    assert await event_chargers(db) == ["A", "B", "C"]


async def test_a_failed_commit_fails_every_unit_of_the_batch(db: Database):
    async def orphan_connector(uow: UnitOfWork) -> None:
        # Foreign keys checked at COMMIT only: the violation fails the commit itself.
        connection = await uow.session.connection()
        await connection.execute(text("PRAGMA defer_foreign_keys = ON"))
        uow.session.add(
            ConnectorRow(
                charger_id="NOBODY",
                ocpp_evse_id=1,
                connector_id=1,
                status="Available",
                status_at=utc_now(),
                updated_at=utc_now(),
            )
        )

    woken: list[int] = []
    db.add_event_listener(lambda: woken.append(1))
    held = Held(db, adding("A"))
    await held.inside.wait()
    tasks = await queued(db, adding("B"), orphan_connector, adding("C"))
    held.release.set()
    results = await asyncio.gather(held.task, *tasks, return_exceptions=True)
    assert all(isinstance(r, IntegrityError) for r in results), results
    assert await charger_ids(db) == []
    assert await event_chargers(db) == []
    assert woken == []
    # The writer carries on with a new transaction.
    async with db.transaction() as uow:
        await adding("D")(uow)
    assert await charger_ids(db) == ["D"]


async def test_a_unit_cancelled_while_it_waits_for_the_writer_leaves_the_others_alone(
    db: Database,
):
    held = Held(db, adding("A"))
    await held.inside.wait()
    b, c, d = await queued(db, adding("B"), adding("C"), adding("D"))
    c.cancel()
    await until(lambda: len(db._waiters) == 2)
    held.release.set()
    await asyncio.gather(held.task, b, d)
    assert c.cancelled()
    assert await charger_ids(db) == ["A", "B", "D"]


async def test_a_unit_cancelled_in_its_work_is_rolled_back_alone_when_batched(db: Database):
    held = Held(db, adding("A"))
    await held.inside.wait()
    (b,) = await queued(db, adding("B"))
    slow = Held(db, adding("S"))  # joins the batch after B, then waits inside its work
    await until(lambda: len(db._waiters) == 2)
    (c,) = await queued(db, adding("C"))
    held.release.set()
    await slow.inside.wait()
    slow.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow.task
    await asyncio.gather(held.task, b, c)
    assert await charger_ids(db) == ["A", "B", "C"]
    assert await event_chargers(db) == ["A", "B", "C"]


async def test_a_unit_cancelled_while_its_batch_commits_leaves_the_commit_alone(db: Database):
    held = Held(db, adding("A"))
    await held.inside.wait()
    b, c = await queued(db, adding("B"), adding("C"))
    held.release.set()
    await until(lambda: not db._waiters and db._batch is None)  # the batch is committing
    assert not b.done()
    b.cancel()
    await asyncio.gather(held.task, c)
    with pytest.raises(asyncio.CancelledError):
        await b
    assert await charger_ids(db) == ["A", "B", "C"]


async def test_each_unit_of_a_batch_starts_with_an_empty_identity_map(db: Database):
    async with db.transaction() as uow:
        uow.session.add(a_charger("CP1"))
    first: list[ChargerRow] = []

    async def modify(uow: UnitOfWork) -> None:
        row = await uow.session.get(ChargerRow, "CP1")
        assert row is not None
        row.vendor = "first"
        uow.session.add(row)
        first.append(row)

    async def read_back(uow: UnitOfWork) -> None:
        row = await uow.session.get(ChargerRow, "CP1")
        assert row is not None
        assert row is not first[0]
        assert row.vendor == "first"  # the earlier unit's write, in the same transaction
        row.vendor = "second"
        uow.session.add(row)

    held = Held(db, modify)
    await held.inside.wait()
    (task,) = await queued(db, read_back)
    held.release.set()
    await asyncio.gather(held.task, task)
    assert first[0].vendor == "first"  # not changed by the later unit
    async with db.read() as session:
        row = await session.get(ChargerRow, "CP1")
    assert row is not None
    assert row.vendor == "second"


async def test_a_unit_reads_its_own_writes_and_savepoints_roll_back_when_batched(db: Database):
    async def write_then_fail(uow: UnitOfWork) -> None:
        uow.session.add(a_charger("B"))
        await uow.session.flush()
        assert await uow.session.get(ChargerRow, "B") is not None
        connection = await uow.session.connection()
        await connection.execute(text("UPDATE chargers SET vendor = 'x' WHERE charger_id = 'A'"))
        raise RuntimeError("B failed")

    held = Held(db, adding("A"))
    await held.inside.wait()
    b, c = await queued(db, write_then_fail, adding("C"))
    held.release.set()
    await asyncio.gather(held.task, c)
    with pytest.raises(RuntimeError):
        await b
    async with db.read() as session:
        rows = (await session.exec(select(ChargerRow))).all()
    assert sorted((r.charger_id, r.vendor) for r in rows) == [("A", None), ("C", None)]


async def test_a_failing_unit_with_nothing_written_leaves_the_batch_alone(db: Database):
    async def fail_at_once(_uow: UnitOfWork) -> None:
        raise RuntimeError("nothing written")

    held = Held(db, adding("A"))
    await held.inside.wait()
    b, c = await queued(db, fail_at_once, adding("C"))
    held.release.set()
    await asyncio.gather(held.task, c)
    with pytest.raises(RuntimeError):
        await b
    assert await charger_ids(db) == ["A", "C"]


async def test_batches_are_limited_in_size(tmp_path: Path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}", max_batch=2, max_batch_s=3600)
    await db.create_schema()
    try:
        commits = count_commits(db)
        held = Held(db, adding("A"))
        await held.inside.wait()
        tasks = await queued(db, adding("B"), adding("C"), adding("D"))
        held.release.set()
        await asyncio.gather(held.task, *tasks)
        assert len(commits) == 2
        assert await charger_ids(db) == ["A", "B", "C", "D"]
    finally:
        await db.dispose()


async def test_a_lone_unit_is_committed_at_once(db: Database):
    commits = count_commits(db)
    async with db.transaction() as uow:
        uow.session.add(a_charger("A"))
        uow.record(ChargerDisconnected(charger_id="A", occurred_at=utc_now()))
    assert len(commits) == 1
    assert await charger_ids(db) == ["A"]
    assert await event_chargers(db) == ["A"]


SLOW = text(  # about a second of SQLite work, on the connection's thread
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
    "SELECT count(*) FROM c"
)


async def test_a_unit_cancelled_during_a_statement_is_rolled_back_alone_when_batched(
    db: Database,
):
    """The statement runs to its end on the connection's thread whatever the task does: the
    cancellation waits for it, so the connection stays usable (SQLAlchemy invalidates one
    whose call was interrupted, and every unit of the batch would lose its work)."""
    held = Held(db, adding("A"))
    await held.inside.wait()
    in_statement = asyncio.Event()

    async def victim_work(uow: UnitOfWork) -> None:
        await adding("B")(uow)
        in_statement.set()
        await (await uow.session.connection()).execute(SLOW)

    (victim,) = await queued(db, victim_work)
    (after,) = await queued(db, adding("C"))
    held.release.set()
    await in_statement.wait()
    await asyncio.sleep(0.05)  # well inside the statement
    victim.cancel()
    results = await asyncio.gather(held.task, victim, after, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] is None
    assert await charger_ids(db) == ["A", "C"]
    assert await event_chargers(db) == ["A", "C"]


async def test_a_timeout_during_a_statement_is_still_a_timeout(db: Database):
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05), db.transaction() as uow:
            await adding("A")(uow)
            await (await uow.session.connection()).execute(SLOW)
    async with db.transaction() as uow:  # the connection is usable: the next unit commits
        await adding("B")(uow)
    assert await charger_ids(db) == ["B"]
