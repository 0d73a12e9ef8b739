"""Storage guarantees: one inbound message is one transaction; times stay aware UTC."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from sqlmodel import select

from bridge.main import BridgeApp
from csms.clock import utc_now
from csms.domain.events import ChargerDisconnected
from csms.store.database import RETIRED_INDEXES, Database
from csms.store.tables import ChargerRow, EventRow
from tests.conftest import add_charger, all_rows


async def test_state_and_event_are_rolled_back_together_when_a_transaction_fails(
    bridge: BridgeApp,
):
    await add_charger(bridge, "CP1")
    with pytest.raises(RuntimeError):
        async with bridge.db.transaction() as uow:
            row = await uow.session.get(ChargerRow, "CP1")
            assert row is not None
            row.vendor = "half-written"
            uow.session.add(row)
            uow.record(ChargerDisconnected(charger_id="CP1", occurred_at=utc_now()))
            await uow.session.flush()
            raise RuntimeError("crash between state change and commit")
    (row,) = await all_rows(bridge, ChargerRow)
    assert row.vendor is None
    assert await all_rows(bridge, EventRow) == []


async def test_naive_datetimes_are_refused_by_the_store(bridge: BridgeApp):
    from datetime import datetime

    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError, match="naive datetime"):
        async with bridge.db.transaction() as uow:
            uow.session.add(ChargerRow(charger_id="X", created_at=datetime(2026, 1, 1)))


async def test_sqlite_runs_in_wal_mode(bridge: BridgeApp):
    from sqlalchemy import text

    async with bridge.db.read() as session:
        assert (await session.exec(text("PRAGMA journal_mode"))).one()[0] == "wal"  # type: ignore[call-overload]


def _index_names(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}


async def test_indexes_no_longer_in_the_schema_are_dropped_from_an_older_database(
    tmp_path: Path,
):
    """A database made before an index was retired loses it when the schema is created; its
    rows stay, and the indexes still in the schema are there."""
    path = tmp_path / "older.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.create_schema()
        assert not _index_names(path) & set(RETIRED_INDEXES)
        async with db.transaction() as uow:
            uow.session.add(ChargerRow(charger_id="CP1", created_at=utc_now()))
            uow.record(ChargerDisconnected(charger_id="CP1", occurred_at=utc_now()))
    finally:
        await db.dispose()
    with contextlib.closing(sqlite3.connect(path)) as older:
        older.execute("CREATE INDEX ix_events_charger_id ON events (charger_id)")
        older.execute("CREATE INDEX ix_meter_values_charger_id ON meter_values (charger_id)")
        older.commit()
    assert set(RETIRED_INDEXES) <= _index_names(path)

    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.create_schema()
        await db.create_schema()  # again: nothing left to drop is no error
        async with db.read() as session:
            (event,) = (await session.exec(select(EventRow))).all()
    finally:
        await db.dispose()
    assert event.charger_id == "CP1"
    indexes = _index_names(path)
    assert not indexes & set(RETIRED_INDEXES)
    assert {"ix_meter_values_tx_time", "ix_ocpp_frames_charger_at"} <= indexes
