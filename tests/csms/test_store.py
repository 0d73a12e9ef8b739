"""Storage guarantees: one inbound message is one transaction; times stay aware UTC."""

from __future__ import annotations

import pytest

from bridge.main import BridgeApp
from csms.clock import utc_now
from csms.domain.events import ChargerDisconnected
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
