"""Statements compiled once for the deferred writes (``csms.store.prepared.compile_statement``
on INSERT and UPDATE): the SQL SQLAlchemy would run, the parameters as it would convert them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert
from sqlalchemy.dialects import sqlite

from csms.store.database import Database, update_by_key
from csms.store.prepared import compile_statement
from csms.store.tables import ChargerRow, TransactionEventRow
from csms.store.types import UtcDateTime, sqlite_utc_text

AT = datetime(2026, 11, 21, 8, 30, 15, 250_000, tzinfo=UTC)


def test_an_insert_fills_in_the_scalar_defaults_of_the_columns_not_given():
    compiled = compile_statement(
        insert(TransactionEventRow),
        sqlite.dialect(),
        ("transaction_id", "seq_no", "event_type", "trigger_reason", "occurred_at"),
    )
    assert compiled.sql.startswith("INSERT INTO transaction_events (")
    assert compiled.names[-1] == "offline"  # default False, not given
    row = {
        "transaction_id": 7,
        "seq_no": 3,
        "event_type": "Updated",
        "trigger_reason": "MeterValuePeriodic",
        "occurred_at": AT,
    }
    parameters = compiled.parameters(row)
    assert parameters[:4] == (7, 3, "Updated", "MeterValuePeriodic")
    assert parameters[5] == 0  # False, as SQLite stores a Boolean
    # The aware datetime as the column type stores it (UTC text), not the object itself.
    assert isinstance(parameters[4], str)
    assert parameters[4].startswith("2026-11-21 08:30:15.25")


def test_an_insert_refuses_a_column_whose_default_is_computed():
    table = Table(
        "stamped",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("at", DateTime, nullable=False, default=lambda: AT),
    )
    with pytest.raises(ValueError, match="scalar default"):
        compile_statement(insert(table), sqlite.dialect(), ("id",))


async def test_written_values_read_back_as_the_orm_wrote_them(tmp_path: Path):
    """A row updated through a compiled UPDATE reads back equal through the ORM."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'pw.db'}")
    await db.create_schema()
    try:
        async with db.transaction() as uow:
            uow.session.add(ChargerRow(charger_id="A", created_at=AT))
        async with db.append() as writes:
            writes.update(ChargerRow, {"charger_id": "A"}, {"last_seen_at": AT})
        async with db.read() as session:
            row = await session.get(ChargerRow, "A")
        assert row is not None
        assert row.last_seen_at == AT
        assert row.created_at == AT
        compiled = compile_statement(
            update_by_key(ChargerRow, ("charger_id",), ("last_seen_at",)), sqlite.dialect()
        )
        assert compiled.names == ("v_last_seen_at", "k_charger_id")
    finally:
        await db.dispose()


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.one_of(
            st.just(UTC),
            st.timezones(),
            st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
        ),
    )
)
def test_an_aware_datetime_is_bound_as_its_column_type_binds_it(at: datetime) -> None:
    """The one-step binding of aware datetimes on SQLite gives the text of the type's own
    chain (the decorator to naive UTC, then SQLite's DATETIME formatting), for any zone and
    microsecond (whole seconds included)."""
    dialect = sqlite.dialect()
    chain = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert chain is not None
    assert sqlite_utc_text(at) == chain(at)
    compiled = compile_statement(
        update_by_key(ChargerRow, ("charger_id",), ("created_at",)), dialect
    )
    assert compiled.parameters({"k_charger_id": "A", "v_created_at": at}) == (chain(at), "A")


def test_a_naive_datetime_or_a_missing_value_is_refused() -> None:
    compiled = compile_statement(
        update_by_key(ChargerRow, ("charger_id",), ("created_at",)), sqlite.dialect()
    )
    with pytest.raises(ValueError, match="naive"):
        compiled.parameters({"k_charger_id": "A", "v_created_at": datetime(2026, 11, 22, 4, 0)})
    with pytest.raises(KeyError, match="k_charger_id"):
        compiled.parameters({"v_created_at": AT})
