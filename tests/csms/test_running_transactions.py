"""Running transactions kept in memory (SQLite): meter values and plain 2.0.1 Updated events
skip reading the transaction row and write with deferred writes only. They must leave exactly
the rows and events that reading the row every time leaves, and never let the memory run ahead
of the database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from csms.domain.model import AuthorizationStatus, ChargingState, EvseRef, IdToken, MeterReading
from csms.domain.requests import (
    AuthorizationDecision,
    AuthorizationRequest,
    MeterValuesReport,
    StartTransactionRequest,
    StopTransactionRequest,
    TransactionEventOutcome,
    TransactionEventReport,
    TransactionEventType,
)
from csms.services.transactions import TransactionService
from csms.store.database import BatchAborted, Database
from csms.store.tables import ChargerRow
from tests.conftest import file_database

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
EVSE = EvseRef(ocpp_evse_id=1, connector_id=1)


class Grant:
    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        return AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, reference="ref")


def ticking() -> Callable[[], datetime]:
    """The service's clock: the hot path asks it fewer times than the full path, so it tells
    the same time to both (the times the charger reports differ from message to message)."""
    return lambda: T0 + timedelta(hours=1)


async def _database(path: Path) -> AsyncIterator[Database]:
    async with file_database(path, max_batch_s=3600) as db:
        async with db.transaction() as uow:
            uow.session.add(ChargerRow(charger_id="CP", created_at=T0))
        yield db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async for database in _database(tmp_path / "a.db"):
        yield database


@pytest.fixture
async def other_db(tmp_path: Path) -> AsyncIterator[Database]:
    async for database in _database(tmp_path / "b.db"):
        yield database


def energy(at: int, wh: int, measurand: str = "Energy.Active.Import.Register") -> MeterReading:
    return MeterReading(
        sampled_at=T0 + timedelta(seconds=at), measurand=measurand, value=Decimal(wh), unit="Wh"
    )


def power(at: int) -> MeterReading:
    return MeterReading(
        sampled_at=T0 + timedelta(seconds=at),
        measurand="Power.Active.Import",
        value=Decimal(7000),
        unit="W",
    )


def updated(seq: int, *readings: MeterReading, **fields: Any) -> TransactionEventReport:
    return TransactionEventReport(
        charger_id="CP",
        event_type=fields.pop("event_type", TransactionEventType.UPDATED),
        transaction_ref="TX-201",
        seq_no=seq,
        occurred_at=T0 + timedelta(seconds=seq),
        trigger_reason="MeterValuePeriodic",
        readings=readings,
        **fields,
    )


async def started(service: TransactionService, *, meter_start_wh: int) -> Any:
    """A 1.6 StartTransaction of the token TAG on EVSE 1."""
    return await service.handle_start(
        StartTransactionRequest(
            charger_id="CP",
            evse=EVSE,
            id_token=IdToken(value="TAG"),
            meter_start_wh=meter_start_wh,
            started_at=T0,
        )
    )


def meter_values(ref: str, *readings: MeterReading) -> MeterValuesReport:
    return MeterValuesReport(charger_id="CP", evse=EVSE, transaction_ref=ref, readings=readings)


async def scenario(service: TransactionService) -> list[object]:
    """Both versions, with what the hot path takes and what it must leave to the full path."""
    results: list[object] = []
    start = await started(service, meter_start_wh=1000)
    ref = start.transaction_ref
    await service.handle_meter_values(meter_values(ref, energy(1, 1500), power(1)))
    await service.handle_meter_values(meter_values(ref, energy(2, 1400)))  # went back: kept
    await service.handle_meter_values(meter_values(ref, energy(3, 2500)))
    await service.handle_stop(
        StopTransactionRequest(
            charger_id="CP",
            transaction_ref=ref,
            meter_stop_wh=3000,
            ended_at=T0 + timedelta(seconds=4),
            reason="Local",
        )
    )
    await service.handle_meter_values(meter_values(ref, energy(5, 3100)))  # after the end
    for report in (
        updated(0, energy(0, 0), event_type=TransactionEventType.STARTED, evse=EVSE),
        updated(1, energy(1, 100), charging_state=ChargingState.CHARGING),
        updated(2, energy(2, 200), charging_state=ChargingState.CHARGING),
        updated(5, energy(5, 500)),  # a gap of two
        updated(3, energy(3, 300)),  # fills one
        updated(5, energy(5, 500)),  # a retry
        updated(6, id_token=IdToken(value="LATE")),  # the full path
        updated(7, energy(7, 700), charging_state=ChargingState.SUSPENDED_EV, remote_start_id=9),
        updated(8, energy(8, 800), remote_start_id=9),
        updated(9, energy(9, 900), event_type=TransactionEventType.ENDED),
        updated(10, energy(10, 1000)),  # after the end
    ):
        results.append((await service.handle_transaction_event(report)).outcome)
    await service.handle_meter_values(meter_values("TX-201", energy(11, 1100)))
    return results


TABLES = {
    "transactions": "id",
    "transaction_events": "id",
    "meter_values": "id",
    "chargers": "charger_id",
}


async def contents(db: Database) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.read() as session:
        connection = await session.connection()
        for table, key in TABLES.items():
            rows = (await connection.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))).all()
            found[table] = [dict(row._mapping) for row in rows]
        rows = (
            await connection.execute(text("SELECT type, payload FROM events ORDER BY id"))
        ).all()
        found["events"] = [{"type": r.type, "payload": json.loads(r.payload)} for r in rows]
    for row in found["chargers"]:
        row.pop("created_at")
    return found


def reads_of_transactions(db: Database) -> list[str]:
    reads: list[str] = []

    def note(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "FROM transactions" in sql:
            reads.append(sql)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    return reads


async def test_the_hot_path_leaves_what_the_full_path_leaves(db: Database, other_db: Database):
    kept = TransactionService(db, Grant(), clock=ticking())
    kept_results = await scenario(kept)
    reading = TransactionService(other_db, Grant(), clock=ticking())
    reading._cache_running = False  # the full path every time
    assert await scenario(reading) == kept_results
    assert await contents(db) == await contents(other_db)
    assert kept_results == [
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.DUPLICATE,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.APPLIED,
        TransactionEventOutcome.AFTER_END,
    ]


async def test_meter_values_of_a_running_transaction_do_not_read_its_row(db: Database):
    service = TransactionService(db, Grant(), clock=ticking())
    start = await started(service, meter_start_wh=0)
    await service.handle_transaction_event(updated(0, event_type=TransactionEventType.STARTED))
    reads = reads_of_transactions(db)
    for n in range(1, 4):
        await service.handle_meter_values(meter_values(start.transaction_ref, energy(n, n * 10)))
        await service.handle_transaction_event(updated(n, energy(n, n * 10)))
    assert reads == []
    found = await contents(db)
    assert [row["last_meter_wh"] for row in found["transactions"]] == [30, 30]
    assert len(found["meter_values"]) == 6


async def test_a_change_that_was_not_committed_is_forgotten(db: Database):
    """A meter value whose batch fails must not stay in memory: the next one is compared with
    what the database holds, not with the lost one."""
    service = TransactionService(db, Grant(), clock=ticking())
    start = await started(service, meter_start_wh=0)
    ref = start.transaction_ref
    await service.handle_meter_values(meter_values(ref, energy(1, 100)))
    broken = MeterReading(
        sampled_at=T0,
        measurand=None,
        value=Decimal(5000),
        unit="Wh",  # type: ignore[arg-type]
    )
    with pytest.raises(BatchAborted) as failed:
        await service.handle_meter_values(meter_values(ref, energy(2, 5000), broken))
    assert "NOT NULL" in str(failed.value.__cause__)
    await service.handle_meter_values(meter_values(ref, energy(3, 200)))
    found = await contents(db)
    assert found["transactions"][0]["last_meter_wh"] == 200  # not 5000: it never committed
    assert [row["value"] for row in found["meter_values"]] == ["100", "200"]
