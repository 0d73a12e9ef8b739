"""Reading the domain event log (the ``events`` table) in order, for projections."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from sqlmodel import col, select

from csms.domain.codec import decode_event
from csms.domain.events import RecordedEvent
from csms.store.database import Database
from csms.store.tables import EventRow


class EventLog:
    """The ``EventFeed`` port over the database's event log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read_after(self, offset: int, limit: int) -> Sequence[RecordedEvent]:
        async with self._db.read() as session:
            stmt = (
                select(EventRow).where(col(EventRow.id) > offset).order_by(col(EventRow.id))
            ).limit(limit)
            rows = (await session.exec(stmt)).all()
        return [
            RecordedEvent(offset=row.id, event=decode_event(row.type, json.loads(row.payload)))
            for row in rows
            if row.id is not None
        ]

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._db.add_event_listener(callback)
