"""The projector: reads the central system's event log after its stored offset and applies the
events to the OCPI objects, in one transaction per batch together with the new offset and the
outbox rows. Woken by commits in this process, and polling for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.store.database import Database
from bridge.store.locations import read_offset, save_offset
from csms.domain.events import DomainEvent
from csms.ports import EventFeed

log = logging.getLogger(__name__)

Apply = Callable[[AsyncSession, Sequence[DomainEvent]], Awaitable[int]]


class Projector:
    def __init__(
        self,
        db: Database,
        feed: EventFeed,
        apply: Apply,
        *,
        name: str = "ocpi",
        batch_size: int = 200,
        poll_interval_s: float = 1.0,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._feed = feed
        self._apply = apply
        self._name = name
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._on_enqueued = on_enqueued
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        feed.subscribe(self._wake.set)

    async def catch_up(self) -> int:
        """Apply every event committed so far; the number applied."""
        applied = 0
        while True:
            count = await self._run_batch()
            applied += count
            if count < self._batch_size:
                return applied

    async def _run_batch(self) -> int:
        async with self._db.read() as session:
            offset = await read_offset(session, self._name)
        recorded = await self._feed.read_after(offset, self._batch_size)
        if not recorded:
            return 0
        async with self._db.transaction() as uow:
            if await read_offset(uow.session, self._name) != offset:
                return len(recorded)  # another projector moved on: read again
            pushes = await self._apply(uow.session, [r.event for r in recorded])
            await save_offset(uow.session, self._name, recorded[-1].offset)
        if pushes and self._on_enqueued is not None:
            self._on_enqueued()
        return len(recorded)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"projector-{self._name}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                await self.catch_up()
                failures = 0
            except Exception:
                failures += 1
                log.exception("projector %s failed (attempt %d), retrying", self._name, failures)
            delay = self._poll_interval_s if failures == 0 else min(30.0, 2.0**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
