"""The OCPP frame log: every frame in and out, verbatim, written in batches.

Frames are queued in memory and written by one background task every ``flush_interval_s`` (or
sooner when a batch is full), so that recording never adds a database round trip to a reply.
A failed write is logged and retried with the next batch; on shutdown everything queued is
written. What a crash can lose is at most the last flush interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import col

from csms.clock import utc_now
from csms.store.database import Database
from csms.store.tables import FrameRow

log = logging.getLogger(__name__)

PURGE_CHUNK = 5_000
"""Frames deleted per transaction by a purge. One transaction for all of them would hold the
writer's turn, and so every charger's reply, for as long as deleting a day's frames takes,
after reading the whole table to find them (no index serves their time alone). Frames are
stored in time order, so the oldest come first by id: finding a chunk reads about a chunk's
rows, and the chargers' writes go in between chunks."""


class FrameRecorder:
    def __init__(
        self,
        db: Database,
        *,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
        max_pending: int = 200_000,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._pending: deque[dict[str, object]] = deque()
        self._max_pending = max_pending
        self._dropped = 0
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def record(self, charger_id: str, direction: str, text: str) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self._dropped += 1
        self._pending.append(
            {"charger_id": charger_id, "direction": direction, "at": self._clock(), "text": text}
        )
        if len(self._pending) >= self._batch_size:
            self._wakeup.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ocpp-frame-recorder")

    async def stop(self) -> None:
        """Write everything queued; the writer finishes its batch instead of being cancelled."""
        if self._task is not None:
            self._stopping = True
            self._wakeup.set()
            await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch = [
                self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))
            ]
            try:
                async with self._db.append() as writes:
                    for frame in batch:
                        writes.insert(FrameRow, frame)
            except Exception:
                # Put the batch back and let the next flush retry; never lose frames silently.
                self._pending.extendleft(reversed(batch))
                raise
        if self._dropped:
            log.error("frame log overflowed: %d frames were not recorded", self._dropped)
            self._dropped = 0

    async def purge_older_than(self, days: int, *, chunk: int = PURGE_CHUNK) -> int:
        """Delete frames older than ``days``, at most ``chunk`` per transaction (see
        ``PURGE_CHUNK``); returns how many were deleted."""
        if chunk < 1:
            raise ValueError(f"a purge deletes at least one frame per transaction, not {chunk}")
        cutoff = self._clock() - timedelta(days=days)
        oldest = (
            select(col(FrameRow.id))
            .where(col(FrameRow.at) < cutoff)
            .order_by(col(FrameRow.id))
            .limit(chunk)
        )
        purge = delete(FrameRow).where(col(FrameRow.id).in_(oldest))
        deleted = 0
        while True:
            async with self._db.transaction() as uow:
                connection = await uow.session.connection()
                result = await connection.execute(purge)
            count = int(getattr(result, "rowcount", 0) or 0)
            deleted += count
            if count < chunk:
                return deleted

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._interval)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("writing the OCPP frame log failed; will retry")
                await asyncio.sleep(self._interval)
