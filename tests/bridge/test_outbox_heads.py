"""The outbox reads of the worker's loop: due heads and the next attempt in one read, a
delivered row deleted with the next head of its key read in the same transaction, heads found
among a large backlog; and the worker re-reading a head that may have gone meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.main import BridgeApp
from bridge.ocpi.models import ModuleID
from bridge.partners import ExpectedRole, Partner
from bridge.push.outbox import PushRequest, RetryPolicy
from bridge.push.worker import OutboxWorker
from bridge.store.outbox import OutboxStore
from csms.store.database import Database
from simulators.emsp.server import EmspSimulator
from tests.conftest import running_bridge

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db: Database) -> OutboxStore:
    return OutboxStore(db)


def a_put(location: str, *, key: str | None = None, partner_id: int = 1) -> PushRequest:
    return PushRequest(
        partner_id=partner_id,
        module=ModuleID.LOCATIONS,
        method="PUT",
        path=f"NL/CPO/{location}",
        body={"id": location},
        ordering_key=f"locations:NL/CPO/{key or location}",
    )


async def test_plan_reads_the_due_heads_and_the_next_attempt_of_a_waiting_head(
    store: OutboxStore,
) -> None:
    await store.enqueue([a_put("L1"), a_put("L2"), a_put("L3")], now=T0, coalesce=False)
    assert await store.plan(T0, limit=10) == (await store.due_heads(T0, limit=10), None)

    first, second, _ = await store.due_heads(T0, limit=10)
    soon, later = T0 + timedelta(seconds=5), T0 + timedelta(seconds=60)
    await store.record_failure(first.id, attempts=1, error="HTTP 500", next_attempt_at=later)
    await store.record_failure(second.id, attempts=1, error="HTTP 500", next_attempt_at=soon)

    heads, earliest = await store.plan(T0, limit=10)
    assert [h.path for h in heads] == ["NL/CPO/L3"]
    assert earliest == soon == await store.next_attempt_after(T0)
    assert await store.plan(soon, limit=10) == (
        await store.due_heads(soon, limit=10),
        later,
    )


async def test_the_next_attempt_is_that_of_a_head_never_of_a_row_behind_it(
    store: OutboxStore,
) -> None:
    await store.enqueue([a_put("L1"), a_put("L1b", key="L1")], now=T0, coalesce=False)
    head, behind = await store.list_entries()
    later, sooner = T0 + timedelta(seconds=60), T0 + timedelta(seconds=5)
    await store.record_failure(head.id, attempts=1, error="x", next_attempt_at=later)
    await store.record_failure(behind.id, attempts=1, error="x", next_attempt_at=sooner)
    assert await store.plan(T0, limit=10) == ([], later)


async def test_delete_and_next_deletes_the_row_and_reads_the_next_due_row_of_its_key(
    store: OutboxStore,
) -> None:
    await store.enqueue([a_put("L1"), a_put("L1b", key="L1"), a_put("L2")], now=T0, coalesce=False)
    first, second, other = await store.list_entries()

    deleted, following = await store.delete_and_next(first.id, first.key, T0)
    assert deleted
    assert following == second

    # The next row is not due yet: none.
    later = T0 + timedelta(seconds=30)
    await store.record_failure(second.id, attempts=1, error="x", next_attempt_at=later)
    assert await store.delete_and_next(other.id, other.key, T0) == (True, None)
    # A row already gone: nothing deleted; the key's head is still answered.
    assert await store.delete_and_next(first.id, first.key, later) == (
        False,
        await store.due_head_of(first.key, later),
    )


async def test_heads_are_found_among_a_backlog_in_enqueue_order(store: OutboxStore) -> None:
    # 2,000 rows of 500 keys (4 rows each, interleaved): the heads are the first 500 rows.
    rows = [a_put(f"L{n}-{k}", key=f"K{k}") for n in range(4) for k in range(500)]
    await store.enqueue(rows, now=T0, coalesce=False)
    heads = await store.due_heads(T0, limit=20)
    assert [h.path for h in heads] == [f"NL/CPO/L0-{k}" for k in range(20)]
    everything = await store.list_entries(limit=2000)
    # Dead heads block nothing: the next row of their key becomes the head.
    for entry in everything[:10]:
        assert await store.dead_letter(entry.id, attempts=1, error="x", now=T0)
    heads = await store.due_heads(T0, limit=2000)
    assert len(heads) == 500
    assert [h.path for h in heads[:2]] == ["NL/CPO/L0-10", "NL/CPO/L0-11"]
    assert [h.path for h in heads[-10:]] == [f"NL/CPO/L1-{k}" for k in range(10)]


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


async def test_a_head_read_before_a_delivery_of_its_key_ended_is_read_again(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    """The dispatcher read the head while a task of its key was still delivering it: the new
    task must not send that row again but read the key's head afresh."""
    async with running_bridge(tmp_path, country_code="NL", party_id="CPO") as app:
        partner = await registered(app, emsp)
        await app.push_worker.stop()  # the running one stays out of the way
        worker = OutboxWorker(
            app.outbox,
            app.partners.store,
            app.ocpi_client,
            app.identity,
            RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.01),
            concurrency=4,
            poll_interval_s=0.05,
            full_objects=None,
        )
        await app.outbox.enqueue([a_put("L1", partner_id=partner.id)], now=T0, coalesce=False)
        (stale,) = await app.outbox.due_heads(T0, limit=10)
        assert await app.outbox.delete(stale.id)  # delivered meanwhile by the ended task

        (task,) = worker._start([stale], exclude=None, fresh=False)
        assert await task == 0
        assert [r for r in emsp.state.received if r.module == "locations"] == []

        # Read fresh, the head is sent as read (no second read of the key).
        await app.outbox.enqueue([a_put("L2", partner_id=partner.id)], now=T0, coalesce=False)
        (head,) = await app.outbox.due_heads(T0, limit=10)
        (task,) = worker._start([head], exclude=None, fresh=True)
        await task
        assert [r.path for r in emsp.state.received if r.module == "locations"] == [
            "/ocpi/emsp/2.2.1/locations/NL/CPO/L2"
        ]


async def registered(app: BridgeApp, sim: EmspSimulator) -> Partner:
    pending = await app.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS")
    )
    assert pending.token_accept is not None
    result = await sim.driver.register(
        f"http://127.0.0.1:{app.http_port}/ocpi/versions", pending.token_accept
    )
    assert result.ok, result.message
    await app.partners.join_follow_ups()
    return await app.partners.get(pending.id)
