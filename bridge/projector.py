"""The projector: reads the central system's event log once for several projections (the
appliers: OCPI Locations, Sessions, charging profiles) and applies the events to each after
that applier's own stored offset, in one transaction per batch: each applier in a SAVEPOINT of
its own, with its outbox rows, then the new offsets of those that succeeded. An applier that
fails is rolled back alone (its offset stays: its events are never skipped) and retried later,
with a growing delay, while the others go on. Woken by commits in this process (a batch starts
at most every ``MIN_PERIOD_S``, gathering the commits of that moment), and polling for the
rest."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.store.database import Database, PreparedSelect, Writes, fetch_in
from bridge.store.tables import ProjectorOffsetRow
from csms.domain.events import DomainEvent
from csms.ports import EventFeed

log = logging.getLogger(__name__)

Apply = Callable[[AsyncSession, Sequence[DomainEvent], Writes], Awaitable[int]]
"""Applies events in the projector's transaction; returns the number of pushes enqueued. What
it adds to the ``Writes`` is written when every applier of the batch is done, with the new
offsets, in one round trip: only rows that nothing later in the batch reads."""

MAX_BACKOFF_S = 30.0
_OFFSETS = cast(Table, ProjectorOffsetRow.__table__)  # type: ignore[attr-defined]
_ALL_OFFSETS = PreparedSelect(select(_OFFSETS.c.name, _OFFSETS.c.offset))


@dataclass(frozen=True)
class Applier:
    """One projection of the event log: ``name`` is its stored offset's name, ``apply`` is
    called with the events after that offset (of the types in ``events``), ``on_enqueued``
    after a commit in which it enqueued pushes."""

    name: str
    apply: Apply
    on_enqueued: Callable[[], None] | None = None
    events: tuple[type[DomainEvent], ...] | None = None
    """The event types ``apply`` acts on (None: every one): it is given only those, and a
    batch without any just moves its offset on (no call, no SAVEPOINT)."""


@dataclass(eq=False)
class _Lane:
    """An applier and its retry state."""

    applier: Applier
    failures: int = 0
    retry_at: float = 0.0
    """Loop time before which a failing applier is not tried again."""

    @property
    def name(self) -> str:
        return self.applier.name


@dataclass
class _Outcome:
    read: int
    """Events read from the log in this batch."""
    failed: dict[str, Exception] = field(default_factory=dict)
    """The appliers that raised, by name (their savepoints were rolled back)."""


BATCH_SIZE = 1000
"""Events per batch at most. A batch's cost is mostly its dozen or so database round trips,
and under load each of them waits its turn on the event loop behind the chargers' messages:
with 200 events per batch the projection fell behind a saturated core (its backlog grew by
about 1,000 events per second), with 1,000 it keeps up. A batch holds the writer's turn
while it runs, so the chargers' writes wait for it: bigger batches only happen when the
projection is behind."""


MIN_PERIOD_S = 0.05
"""Seconds between the starts of two batches at least. Each commit wakes the projector, and a
batch has a fixed cost (a few database round trips, a transaction): at 1,000 messages per
second, committed a few at a time, a batch per commit cost more than the messages themselves.
Waiting for the rest of this period gathers them; an OCPI object is then at most this much
later than it could be."""


class Projector:
    def __init__(
        self,
        db: Database,
        feed: EventFeed,
        appliers: Sequence[Applier],
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval_s: float = 1.0,
        min_period_s: float = MIN_PERIOD_S,
    ) -> None:
        names = [a.name for a in appliers]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"appliers need distinct names, one at least: {names}")
        self._db = db
        self._feed = feed
        self._lanes = [_Lane(a) for a in appliers]
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._min_period_s = min_period_s
        self._known: dict[str, int] = {}
        """Each applier's offset as of this projector's last commit (see ``_offsets_of``)."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        feed.subscribe(self._wake.set)

    @property
    def names(self) -> list[str]:
        return [lane.name for lane in self._lanes]

    async def catch_up(self) -> int:
        """Apply every event committed so far, for every applier; the number of events read.
        An applier that fails stays where it was while the others catch up; then its error
        is raised (the first one's, if several failed: the others are logged)."""
        failed: dict[str, Exception] = {}
        read = await self._advance(self._lanes, failed)
        if failed:
            errors = list(failed.items())
            for name, error in errors[1:]:
                log.error("projector %s failed", name, exc_info=error)
            raise errors[0][1]
        return read

    async def _advance(self, lanes: Sequence[_Lane], failed: dict[str, Exception]) -> int:
        """Batches until ``lanes`` are caught up; an applier that fails is noted in ``failed``
        and left out of the next batches. Errors outside the appliers (reading the log, the
        commit) are raised."""
        read = 0
        remaining = list(lanes)
        while remaining:
            outcome = await self._run_batch(remaining)
            read += outcome.read
            if outcome.failed:
                failed.update(outcome.failed)
                remaining = [lane for lane in remaining if lane.name not in outcome.failed]
            if outcome.read < self._batch_size:
                break
        return read

    async def _run_batch(self, lanes: Sequence[_Lane]) -> _Outcome:
        names = [lane.name for lane in lanes]
        offsets = await self._offsets_of(names)
        recorded = await self._feed.read_after(min(offsets.values()), self._batch_size)
        if not recorded:
            return _Outcome(read=0)
        positions = [r.offset for r in recorded]
        last = positions[-1]
        outcome = _Outcome(read=len(recorded))
        callbacks: list[Callable[[], None]] = []
        moved: dict[str, int] = {}
        applied: list[str] = []
        async with self._db.transaction() as uow:
            session = uow.session
            stored = await _stored_offsets(session, names)
            for lane in lanes:
                offset = offsets[lane.name]
                if stored.get(lane.name, 0) != offset:
                    moved[lane.name] = stored.get(lane.name, 0)
                    continue  # another projector moved this one on: read again
                events = [r.event for r in recorded[bisect.bisect_right(positions, offset) :]]
                if not events:
                    continue
                wanted = lane.applier.events
                if wanted is not None:
                    events = [event for event in events if isinstance(event, wanted)]
                    if not events:
                        applied.append(lane.name)  # nothing for it: its offset moves on
                        continue
                writes = Writes()
                try:
                    async with session.begin_nested():
                        pushes = await lane.applier.apply(session, events, writes)
                except Exception as exc:
                    outcome.failed[lane.name] = exc  # its writes are dropped with it
                    continue
                uow.take_from(writes)
                applied.append(lane.name)
                on_enqueued = lane.applier.on_enqueued
                if pushes and on_enqueued is not None and on_enqueued not in callbacks:
                    callbacks.append(on_enqueued)
            _save_offsets(uow, applied, last, stored)
        # Committed: the offsets as they are now stored, for the next batch to start from.
        self._known.update(moved)
        self._known.update(dict.fromkeys(applied, last))
        for callback in callbacks:
            callback()
        return outcome

    async def _offsets_of(self, names: Sequence[str]) -> dict[str, int]:
        """Where each applier stands: as this projector last committed it, else as stored.
        Only a guess until checked in the batch's transaction (another process may have moved
        an offset meanwhile): it picks the events to read, outside the writer's turn."""
        unknown = [name for name in names if name not in self._known]
        if unknown:
            async with self._db.read() as session:
                stored = await _stored_offsets(session, unknown)
            self._known.update({name: stored.get(name, 0) for name in unknown})
        return {name: self._known[name] for name in names}

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"projector-{'+'.join(self.names)}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            started = loop.time()
            due = [lane for lane in self._lanes if lane.retry_at <= started]
            if due:
                failed: dict[str, Exception] = {}
                try:
                    await self._advance(due, failed)
                except Exception as exc:
                    for lane in due:
                        failed.setdefault(lane.name, exc)
                for lane in due:
                    self._note(lane, failed.get(lane.name), loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._delay(loop.time()))
            # Woken early: let the commits of the next moment join this batch.
            rest = self._min_period_s - (loop.time() - started)
            if rest > 0 and not self._stopping:
                await asyncio.sleep(rest)

    @staticmethod
    def _note(lane: _Lane, error: Exception | None, now: float) -> None:
        if error is None:
            lane.failures, lane.retry_at = 0, 0.0
            return
        lane.failures += 1
        lane.retry_at = now + min(MAX_BACKOFF_S, 2.0**lane.failures)
        log.error(
            "projector %s failed (attempt %d), retrying",
            lane.name,
            lane.failures,
            exc_info=error,
        )

    def _delay(self, now: float) -> float:
        """Until the next poll, or the next retry of a failing applier if sooner."""
        waits = [lane.retry_at - now for lane in self._lanes if lane.failures]
        if len(waits) < len(self._lanes):
            waits.append(self._poll_interval_s)
        return max(0.0, min(waits))


async def _stored_offsets(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """The offsets of those of ``names`` that have a row (every row is read: one per
    projection, and a statement without an IN list is built once)."""
    rows = await fetch_in(session, _ALL_OFFSETS)
    wanted = set(names)
    return {name: offset for name, offset in rows if name in wanted}


def _save_offsets(
    writes: Writes, names: Sequence[str], offset: int, stored: Mapping[str, int]
) -> None:
    """Set the offsets of ``names`` to ``offset`` when the batch's writes are written: UPDATE
    those with a row (as read in this transaction: ``stored``), INSERT the others."""
    for name in names:
        if name in stored:
            writes.update(ProjectorOffsetRow, {"name": name}, {"offset": offset})
        else:
            writes.insert(ProjectorOffsetRow, {"name": name, "offset": offset})
