"""The event log read back in the process that wrote it: the events it committed are handed to
its reader as recorded (not decoded again); the others, and those not kept, are decoded."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import csms.store.events as event_log
from csms.domain.codec import decode_event
from csms.domain.events import (
    ChargerDisconnected,
    DomainEvent,
    MeterValuesSampled,
    TransactionStarted,
)
from csms.domain.model import ENERGY_IMPORT_REGISTER, EvseRef, MeterReading
from csms.store.database import CommittedEvents, Database
from csms.store.events import EventLog

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
EVSE = EvseRef(ocpp_evse_id=1, connector_id=1)


def some_events(n: int) -> list[DomainEvent]:
    made: list[DomainEvent] = [
        TransactionStarted(
            charger_id="CP1",
            occurred_at=T0,
            transaction_ref="T1",
            evse=EVSE,
            id_token=None,
            authorization=None,
            meter_start_wh=1_000,
        )
    ]
    made += [
        MeterValuesSampled(
            charger_id="CP1",
            occurred_at=T0.replace(second=i),
            evse=EVSE,
            transaction_ref="T1",
            readings=(
                MeterReading(
                    sampled_at=T0.replace(second=i),
                    measurand=ENERGY_IMPORT_REGISTER,
                    value=Decimal(1_000 + 10 * i),
                    unit="Wh",
                ),
            ),
            energy_wh=10 * i,
        )
        for i in range(1, n)
    ]
    return made


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The types of the events the log's reader decodes."""
    seen: list[str] = []

    def counting(type_name: str, payload: dict[str, object]) -> DomainEvent:
        seen.append(type_name)
        return decode_event(type_name, payload)

    monkeypatch.setattr(event_log, "decode_event", counting)
    return seen


async def test_events_committed_here_are_read_back_as_recorded_without_decoding(
    db: Database, decoded: list[str]
) -> None:
    recorded = some_events(4)
    async with db.transaction() as uow:  # a unit of work and appends, committed together
        uow.record(recorded[0])
    for later in recorded[1:]:
        async with db.append() as writes:
            writes.record(later)

    read = await EventLog(db).read_after(0, 100)
    assert [r.event for r in read] == recorded
    assert all(r.event is e for r, e in zip(read, recorded, strict=True))
    assert decoded == []
    assert len(db.committed_events) == 0  # each handed over once

    again = await EventLog(db).read_after(0, 100)  # read again: decoded, the same events
    assert [r.event for r in again] == recorded
    assert decoded == ["TransactionStarted", *["MeterValuesSampled"] * 3]


async def test_events_another_process_committed_are_decoded(
    db: Database, decoded: list[str]
) -> None:
    other = Database(db.url)  # another process's, on the same file
    try:
        async with other.transaction() as uow:
            uow.record(ChargerDisconnected(charger_id="CP9", occurred_at=T0))
    finally:
        await other.dispose()
    async with db.transaction() as uow:
        uow.record(ChargerDisconnected(charger_id="CP1", occurred_at=T0))

    read = await EventLog(db).read_after(0, 100)
    assert [r.event.charger_id for r in read] == ["CP9", "CP1"]
    assert decoded == ["ChargerDisconnected"]  # the other process's only


async def test_events_of_a_transaction_rolled_back_are_not_kept(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as uow:
            uow.record(ChargerDisconnected(charger_id="CP1", occurred_at=T0))
            raise RuntimeError("rolled back")
    assert len(db.committed_events) == 0
    assert await EventLog(db).read_after(0, 100) == []


def test_the_oldest_committed_events_are_dropped_beyond_the_limit() -> None:
    kept = CommittedEvents(limit=2)
    events = [ChargerDisconnected(charger_id=f"CP{n}", occurred_at=T0) for n in range(3)]
    kept.add(events, ["a", "b", "c"])
    assert len(kept) == 2
    assert kept.take("ChargerDisconnected", "a") is None
    assert kept.take("ChargerDisconnected", "c") is events[2]
    assert kept.take("ChargerConnected", "b") is None  # not of that type: decoded instead
