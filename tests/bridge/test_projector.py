"""The projector with several appliers against a real database (a temporary SQLite file, group
commit as in production): the event log read once for all, each applier after its own offset,
a failing applier rolled back alone and caught up later, pushes announced after the commit,
the offsets read once and then known (checked in each batch's transaction, one write for all)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.projector import Applier, Projector
from bridge.store.database import Database, Writes
from bridge.store.locations import read_offset, save_offset
from bridge.store.tables import ProjectorOffsetRow
from csms.domain.events import (
    ChargerConnected,
    ChargerDisconnected,
    DomainEvent,
    RecordedEvent,
)
from csms.domain.model import OcppVersion
from csms.store.database import sqlite_file
from csms.store.events import EventLog
from csms.store.sqlite_driver import OneHopConnection

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class CountingLog(EventLog):
    """The real event log, counting its reads."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.reads: list[int] = []

    async def read_after(self, offset: int, limit: int) -> Sequence[RecordedEvent]:
        self.reads.append(offset)
        return await super().read_after(offset, limit)


class Recorder:
    """An applier that notes the events it was given (charger ids) and, in the projector's
    transaction, a mark of its own: how many events it applied so far."""

    def __init__(self, name: str, *, pushes: int = 0) -> None:
        self.name = name
        self.pushes = pushes
        self.seen: list[str] = []
        self.calls = 0
        self.failures = 0
        """Calls still to fail (after noting their events, and writing their mark)."""

    async def apply(
        self, session: AsyncSession, events: Sequence[DomainEvent], writes: Writes
    ) -> int:
        self.calls += 1
        applied = [e.charger_id for e in events]
        await save_offset(session, f"mark-{self.name}", len(self.seen) + len(applied))
        # A deferred write as well, written at the batch's end: a row of its own per call,
        # named after how many events it will have applied.
        done = len(self.seen) + len(applied)
        later = {"name": f"later-{self.name}-{done}", "offset": len(applied)}
        writes.insert(ProjectorOffsetRow, later)
        if self.failures:
            self.failures -= 1
            raise RuntimeError(f"{self.name} broke")
        self.seen += applied
        return self.pushes

    def applier(self) -> Applier:
        return Applier(self.name, self.apply)


async def log_events(db: Database, first: int, count: int) -> list[str]:
    """Append ``count`` events (charger ids ``CP<first>`` ...) in one transaction."""
    ids = [f"CP{n}" for n in range(first, first + count)]
    async with db.transaction() as uow:
        for charger_id in ids:
            uow.record(ChargerDisconnected(charger_id=charger_id, occurred_at=T0))
    return ids


async def offset_of(db: Database, name: str) -> int:
    async with db.read() as session:
        return await read_offset(session, name)


async def deferred_marks(db: Database) -> dict[str, int]:
    """The rows the Recorders added through their deferred writes."""
    async with db.read() as session:
        rows = (await session.exec(select(ProjectorOffsetRow))).all()
    return {row.name: row.offset for row in rows if row.name.startswith("later-")}


async def last_event(db: Database) -> int:
    recorded = await EventLog(db).read_after(0, 100_000)
    return recorded[-1].offset if recorded else 0


async def test_one_read_per_batch_serves_every_applier_its_events_in_order_once(
    db: Database,
) -> None:
    feed = CountingLog(db)
    appliers = [Recorder("a"), Recorder("b"), Recorder("c")]
    projector = Projector(db, feed, [r.applier() for r in appliers], batch_size=4)
    first = await log_events(db, 1, 10)

    assert await projector.catch_up() == 10
    assert len(feed.reads) == 3  # 4 + 4 + 2 events: one read per batch for the three
    for recorder in appliers:
        assert recorder.seen == first
        assert recorder.calls == 3
    end = await last_event(db)
    assert [await offset_of(db, r.name) for r in appliers] == [end, end, end]

    second = await log_events(db, 11, 3)
    assert await projector.catch_up() == 3
    for recorder in appliers:
        assert recorder.seen == first + second  # nothing twice
    assert await projector.catch_up() == 0
    assert [r.calls for r in appliers] == [4, 4, 4]  # nothing new: not called


async def test_a_fresh_applier_starts_from_the_beginning_while_the_others_go_on_from_theirs(
    db: Database,
) -> None:
    a, b = Recorder("a"), Recorder("b")
    first = await log_events(db, 1, 7)
    await Projector(db, EventLog(db), [a.applier(), b.applier()]).catch_up()
    second = await log_events(db, 8, 2)

    fresh = Recorder("fresh")
    again_a, again_b = Recorder("a"), Recorder("b")
    projector = Projector(
        db, EventLog(db), [again_a.applier(), fresh.applier(), again_b.applier()], batch_size=3
    )
    assert await projector.catch_up() == 9  # read from the fresh applier's offset 0

    assert fresh.seen == first + second
    assert again_a.seen == second
    assert again_b.seen == second
    end = await last_event(db)
    assert [await offset_of(db, n) for n in ("a", "fresh", "b")] == [end, end, end]


async def test_a_failing_applier_is_rolled_back_alone_and_catches_up_after_it_recovered(
    db: Database,
) -> None:
    a, broken, c = Recorder("a"), Recorder("broken"), Recorder("c")
    broken.failures = 2
    projector = Projector(db, EventLog(db), [a.applier(), broken.applier(), c.applier()])
    first = await log_events(db, 1, 5)

    with pytest.raises(RuntimeError, match="broken broke"):
        await projector.catch_up()
    end = await last_event(db)
    assert a.seen == c.seen == first
    assert [await offset_of(db, n) for n in ("a", "broken", "c")] == [end, 0, end]
    # Its writes were rolled back with its savepoint, and its deferred writes dropped; those
    # of the others were committed.
    assert await offset_of(db, "mark-broken") == 0
    assert [await offset_of(db, "mark-a"), await offset_of(db, "mark-c")] == [5, 5]
    assert await deferred_marks(db) == {"later-a-5": 5, "later-c-5": 5}

    second = await log_events(db, 6, 2)
    with pytest.raises(RuntimeError, match="broken broke"):
        await projector.catch_up()
    assert a.seen == c.seen == first + second  # the others are not held back

    assert await projector.catch_up() == 7  # recovered: read again from its offset
    assert broken.seen == first + second  # every event, none skipped, none twice
    assert a.seen == c.seen == first + second
    end = await last_event(db)
    assert [await offset_of(db, n) for n in ("a", "broken", "c")] == [end, end, end]
    assert await offset_of(db, "mark-broken") == 7
    marks = await deferred_marks(db)
    assert marks["later-broken-7"] == 7  # the one call that did not fail
    assert [name for name in marks if name.startswith("later-broken")] == ["later-broken-7"]


@pytest.mark.expect_errors("projector broken failed")
async def test_running_a_failing_applier_backs_off_while_the_others_keep_up(
    db: Database,
) -> None:
    a, broken = Recorder("a"), Recorder("broken")
    broken.failures = 1_000
    projector = Projector(db, EventLog(db), [a.applier(), broken.applier()], poll_interval_s=5)
    projector.start()
    try:
        events = await log_events(db, 1, 2)
        async with asyncio.timeout(5):
            while a.seen != events or broken.calls < 1:
                await asyncio.sleep(0.01)
        for first in range(3, 13, 2):  # commits that wake the projector: "a" goes on at once
            events += await log_events(db, first, 2)
            await asyncio.sleep(0.02)
        async with asyncio.timeout(1):
            while a.seen != events:
                await asyncio.sleep(0.01)
        assert broken.calls == 1  # its retry waits for its back-off (2 s), not for a wake
        assert await offset_of(db, "broken") == 0

        broken.failures = 0
        async with asyncio.timeout(5):
            while broken.seen != events:
                await asyncio.sleep(0.01)
        assert a.seen == events
        end = await last_event(db)
        assert [await offset_of(db, "a"), await offset_of(db, "broken")] == [end, end]
    finally:
        await projector.stop()


async def test_commits_in_quick_succession_are_projected_in_few_batches(db: Database) -> None:
    """Every commit wakes the running projector; batches start at most once per
    ``min_period_s``, so the commits of that moment are applied together."""
    feed = CountingLog(db)
    recorder = Recorder("a")
    projector = Projector(db, feed, [recorder.applier()], min_period_s=0.5)
    projector.start()
    try:
        async with asyncio.timeout(5):
            while not feed.reads:  # the first look, at start
                await asyncio.sleep(0.01)
        logged: list[str] = []
        for n in range(1, 11):  # ten commits, each waking it, within about 0.1 s
            logged += await log_events(db, n, 1)
            await asyncio.sleep(0.01)
        async with asyncio.timeout(5):
            while recorder.seen != logged:
                await asyncio.sleep(0.01)
        assert recorder.calls <= 3  # not one batch per commit
    finally:
        await projector.stop()


async def test_pushes_are_announced_after_the_commit_only_by_the_appliers_that_made_some(
    db: Database,
) -> None:
    committed: dict[str, int | None] = {}

    def announce(name: str) -> None:
        # The projector's transaction is committed: another connection sees the new offset.
        path = sqlite_file(db.url)
        assert path is not None
        with sqlite3.connect(path) as other:
            row = other.execute(
                "SELECT offset FROM ocpi_projector_offsets WHERE name = ?", (name,)
            ).fetchone()
        committed[name] = row[0] if row else None

    pushing, quiet, broken = Recorder("pushing", pushes=2), Recorder("quiet"), Recorder("broken")
    broken.pushes = 1
    broken.failures = 1
    projector = Projector(
        db,
        EventLog(db),
        [
            Applier("pushing", pushing.apply, lambda: announce("pushing")),
            Applier("quiet", quiet.apply, lambda: announce("quiet")),
            Applier("broken", broken.apply, lambda: announce("broken")),
        ],
    )
    await log_events(db, 1, 2)
    with pytest.raises(RuntimeError):
        await projector.catch_up()
    end = await last_event(db)
    assert committed == {"pushing": end}  # none for no push, none for a rolled back one

    committed.clear()
    await projector.catch_up()
    assert committed == {"broken": end}


async def test_an_offset_another_process_moved_is_read_again_not_applied_twice(
    db: Database,
) -> None:
    a, b = Recorder("a"), Recorder("b")
    events = await log_events(db, 1, 4)

    class Racing(EventLog):
        """Another projector saves offset "a" between our read of it and our transaction."""

        async def read_after(self, offset: int, limit: int) -> Sequence[RecordedEvent]:
            recorded = await super().read_after(offset, limit)
            async with db.transaction() as uow:
                await save_offset(uow.session, "a", recorded[-1].offset)
            return recorded

    await Projector(db, Racing(db), [a.applier(), b.applier()]).catch_up()
    assert a.seen == []
    assert b.seen == events
    end = await last_event(db)
    assert [await offset_of(db, "a"), await offset_of(db, "b")] == [end, end]


def _flat(parameters: Any) -> list[Any]:
    if isinstance(parameters, dict):
        return list(parameters.values())
    if isinstance(parameters, (list, tuple)):
        return [v for p in parameters for v in _flat(p)]
    return [parameters]


def _marks(parameters: Any) -> bool:
    """Whether these are parameters of the Recorders' own rows, not of offsets."""
    return any(str(value).startswith(("mark-", "later-")) for value in _flat(parameters))


class OffsetStatements:
    """The statements on ``ocpi_projector_offsets``, as (verb, text): those SQLAlchemy runs
    and those the one-hop driver runs as they are (a unit's deferred writes, prepared
    reads)."""

    def __init__(self, db: Database) -> None:
        self.seen: list[tuple[str, str]] = []
        self._engine = db.engine.sync_engine
        self._write = OneHopConnection.write
        self._read = OneHopConnection.read

    def __enter__(self) -> OffsetStatements:
        event.listen(self._engine, "before_cursor_execute", self._note)
        write = self._write

        async def noted(
            connection: OneHopConnection,
            statements: Sequence[tuple[str, Sequence[Sequence[Any]]]],
            *,
            commit: bool = False,
        ) -> None:
            for sql, rows in statements:  # one statement for the offsets and marks alike
                offsets = [row for row in rows if not _marks(row)]
                if offsets:
                    self._note(None, None, sql, offsets)
            await write(connection, statements, commit=commit)

        read = self._read

        async def read_noted(
            connection: OneHopConnection, sql: str, parameters: Sequence[Any]
        ) -> list[Any]:
            self._note(None, None, sql, parameters)
            return await read(connection, sql, parameters)

        OneHopConnection.write = noted  # type: ignore[method-assign]
        OneHopConnection.read = read_noted  # type: ignore[method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._note)
        OneHopConnection.write = self._write  # type: ignore[method-assign]
        OneHopConnection.read = self._read  # type: ignore[method-assign]

    def _note(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ocpi_projector_offsets" in statement and not _marks(parameters):
            self.seen.append((statement.split()[0].upper(), statement))

    def verbs(self) -> list[str]:
        return [verb for verb, _ in self.seen]


async def test_known_offsets_are_checked_in_the_transaction_and_written_once_for_all(
    db: Database,
) -> None:
    appliers = [Recorder("a"), Recorder("b"), Recorder("c")]
    projector = Projector(db, EventLog(db), [r.applier() for r in appliers], batch_size=4)
    await log_events(db, 1, 2)
    with OffsetStatements(db) as first:
        assert await projector.catch_up() == 2
    # Unknown at first: read (outside the transaction), checked, then inserted in one go.
    assert first.verbs() == ["SELECT", "SELECT", "INSERT"]

    await log_events(db, 3, 6)
    with OffsetStatements(db) as known:
        assert await projector.catch_up() == 6
    # Two batches (4 + 2), each: one check in its transaction, one UPDATE of all three.
    assert known.verbs() == ["SELECT", "UPDATE", "SELECT", "UPDATE"]
    end = await last_event(db)
    assert [await offset_of(db, r.name) for r in appliers] == [end, end, end]
    for recorder in appliers:
        assert recorder.seen == [f"CP{n}" for n in range(1, 9)]


async def test_an_offset_moved_back_by_another_process_is_applied_again_from_there(
    db: Database,
) -> None:
    a, b = Recorder("a"), Recorder("b")
    projector = Projector(db, EventLog(db), [a.applier(), b.applier()])
    first = await log_events(db, 1, 4)
    await projector.catch_up()
    async with db.transaction() as uow:  # the operator replays "a" from the start
        await save_offset(uow.session, "a", 0)
    second = await log_events(db, 5, 2)

    await projector.catch_up()  # "a" found moved: left for the next batch
    assert (a.seen, b.seen) == (first, first + second)
    await projector.catch_up()
    assert (a.seen, b.seen) == (first + first + second, first + second)
    end = await last_event(db)
    assert [await offset_of(db, "a"), await offset_of(db, "b")] == [end, end]


async def test_an_applier_is_given_only_its_event_types_and_skipped_without_them(
    db: Database,
) -> None:
    everything, connections = Recorder("everything"), Recorder("connections")
    projector = Projector(
        db,
        EventLog(db),
        [
            everything.applier(),
            Applier("connections", connections.apply, events=(ChargerConnected,)),
        ],
    )
    disconnected = await log_events(db, 1, 3)  # ChargerDisconnected only
    savepoints: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SAVEPOINT"):
            savepoints.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        assert await projector.catch_up() == 3
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert everything.seen == disconnected
    assert connections.calls == 0  # not called, yet moved on
    assert len(savepoints) == 1  # the other applier's only
    end = await last_event(db)
    assert await offset_of(db, "connections") == end

    async with db.transaction() as uow:
        uow.record(ChargerConnected(charger_id="CP9", occurred_at=T0, ocpp_version=OcppVersion.V16))
        uow.record(ChargerDisconnected(charger_id="CP10", occurred_at=T0))
    assert await projector.catch_up() == 2
    assert connections.seen == ["CP9"]  # the connection only, in its batch
    assert everything.seen == [*disconnected, "CP9", "CP10"]
    assert await offset_of(db, "connections") == await last_event(db)


def test_appliers_need_distinct_names(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}")
    with pytest.raises(ValueError, match="distinct"):
        Projector(db, EventLog(db), [Recorder("a").applier(), Recorder("a").applier()])
    with pytest.raises(ValueError, match="one at least"):
        Projector(db, EventLog(db), [])
