"""Reading the domain event log (the ``events`` table) in order, for projections."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from sqlalchemy import bindparam, select
from sqlmodel import col

from csms.domain.codec import decode_event
from csms.domain.events import RecordedEvent
from csms.store.database import Database
from csms.store.prepared import PreparedSelect
from csms.store.tables import EventRow

# Columns, not entities: the log is read in order and decoded, never changed. Prepared: the
# projector reads it after every commit, and a session around one SELECT cost more than it.
_READ = PreparedSelect(
    select(col(EventRow.id), col(EventRow.type), col(EventRow.payload))
    .where(col(EventRow.id) > bindparam("offset"))
    .order_by(col(EventRow.id))
    .limit(bindparam("limit"))
)


class EventLog:
    """The ``EventFeed`` port over the database's event log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read_after(self, offset: int, limit: int) -> Sequence[RecordedEvent]:
        """The events after ``offset``, at most ``limit``: those this process committed lately
        as they were recorded (``Database.committed_events``), the others decoded."""
        rows = await self._db.fetch(_READ, offset=offset, limit=limit)
        committed = self._db.committed_events
        return [
            RecordedEvent(
                offset=id_,
                event=committed.take(type_, payload) or decode_event(type_, json.loads(payload)),
            )
            for id_, type_, payload in rows
            if id_ is not None
        ]

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._db.add_event_listener(callback)
