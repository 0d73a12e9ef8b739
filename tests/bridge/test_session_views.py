"""Sessions read as views (``session_views_by_ids``): the same columns as their rows, by id,
in the caller's transaction, as a prepared read with the ids as one JSON array on a one-hop
SQLite connection and through the session (an IN list) elsewhere."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import SQLModel

import bridge.store.tables  # noqa: F401  (the OCPI tables)
from bridge.store.sessions import SessionView, session_views_by_ids
from bridge.store.tables import SessionRow
from csms.store.database import Database

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def session(n: int, *, ended: bool = False) -> SessionRow:
    return SessionRow(
        id=f"S-{n}",
        charger_id=f"CP-{n}",
        transaction_ref=str(n),
        ocpp_evse_id=1,
        ocpp_connector_id=1,
        status="ACTIVE",
        currency="EUR",
        meter_start_wh=100 * n if n % 2 else None,
        started_at=T0,
        ended_at=T0 if ended else None,
        usage=f'{{"states":[],"points":{n},"signed":[]}}',
        last_push_at=T0 if n % 3 else None,
        document='{"id":"the OCPI document, not read"}',
        last_updated=T0,
        created_at=T0,
    )


@pytest.mark.parametrize("one_hop", [True, False])
async def test_views_are_the_rows_columns_by_id(tmp_path: Path, one_hop: bool) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'views.db'}", one_hop=one_hop)
    async with db.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)
    try:
        rows = [session(n, ended=n == 4) for n in range(1, 6)]
        async with db.transaction() as uow:
            uow.session.add_all(rows)
        async with db.transaction() as uow:
            uow.session.add(session(9))  # not committed yet, read in the same transaction
            await uow.session.flush()
            views = await session_views_by_ids(uow.session, ["S-2", "S-4", "S-9", "S-404"])
            assert await session_views_by_ids(uow.session, []) == []
        expected = {row.id: row for row in [*rows, session(9)]}
        assert sorted(view.id for view in views) == ["S-2", "S-4", "S-9"]
        for view in views:
            row = expected[view.id]
            assert view == SessionView(*(getattr(row, f.name) for f in fields(SessionView)))
        assert next(v for v in views if v.id == "S-4").ended_at == T0  # aware UTC
    finally:
        await db.dispose()
