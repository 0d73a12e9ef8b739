"""The outbox table and its queries on a real SQLite file: enqueue in the caller's
transaction, order per key, due heads, coalescing, dead letters, PATCH -> PUT replacement and
requeue. No partner, no HTTP: ``tests/bridge/test_outbox_worker.py`` delivers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.models import ModuleID
from bridge.push.outbox import (
    FullObject,
    FullObjectSources,
    OutboxState,
    PushRequest,
    RetryPolicy,
)
from bridge.store.outbox import ObjectGone, OutboxStore, Replaced, RowGone, enqueue
from csms.store.database import Database

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(db: Database) -> OutboxStore:
    return OutboxStore(db)


def a_patch(
    location: str = "L1",
    evse: str = "E1",
    status: str = "CHARGING",
    *,
    partner_id: int = 1,
    coalesce: bool = True,
) -> PushRequest:
    return PushRequest(
        partner_id=partner_id,
        module=ModuleID.LOCATIONS,
        method="PATCH",
        path=f"NL/CPO/{location}/{evse}",
        body={"status": status, "last_updated": "2024-01-01T12:00:00Z"},
        ordering_key=f"locations:NL/CPO/{location}",
        coalesce_key=f"status:NL/CPO/{location}/{evse}" if coalesce else None,
        fallback=f"test:{location}",
    )


def a_put(location: str = "L1", *, partner_id: int = 1, fallback: bool = False) -> PushRequest:
    return PushRequest(
        partner_id=partner_id,
        module=ModuleID.LOCATIONS,
        method="PUT",
        path=f"NL/CPO/{location}",
        body={"id": location},
        ordering_key=f"locations:NL/CPO/{location}",
        fallback=f"test:{location}" if fallback else None,
    )


class Objects:
    """A FullObjectSource over a dict: ``test:<location>`` -> the location's current body."""

    def __init__(self, **locations: dict[str, Any]) -> None:
        self.locations = locations
        self.asked: list[str] = []

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        assert isinstance(session, AsyncSession)
        self.asked.append(key)
        location_id = key.removeprefix("test:")
        body = self.locations.get(location_id)
        return FullObject(path=f"NL/CPO/{location_id}", body=body) if body is not None else None


def sources(objects: Objects) -> FullObjectSources:
    return FullObjectSources({"test": objects})


async def kill(store: OutboxStore, entry_id: int, error: str = "HTTP 500") -> None:
    assert await store.dead_letter(entry_id, attempts=3, error=error, now=T0)


# --- data types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"path": None}, "exactly one of path and url"),
        ({"url": "https://emsp.example.com/r/1"}, "exactly one of path and url"),
        ({"path": None, "url": "ftp://x"}, "absolute http"),
        ({"method": "POST"}, "fallback is for PUT and PATCH"),
        ({"method": "DELETE"}, "fallback is for PUT and PATCH"),
        ({"method": "GET", "fallback": None}, "method must be"),
        ({"ordering_key": ""}, "ordering_key"),
        ({"coalesce_key": "x" * 256}, "coalesce_key"),
    ],
)
def test_push_request_refuses_inconsistent_fields(overrides: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "partner_id": 1,
        "module": ModuleID.LOCATIONS,
        "method": "PATCH",
        "path": "NL/CPO/L1",
        "body": {},
        "ordering_key": "k",
        "fallback": "test:L1",
    }
    values.update(overrides)
    with pytest.raises(ValueError, match=message):
        PushRequest(**values)


def test_retry_delay_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base_s=1.0, backoff_max_s=10.0)
    rng = random.Random(7)
    for attempts, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (500, 10.0)]:
        delays = [policy.delay_after(attempts, rng) for _ in range(50)]
        assert all(nominal / 2 <= d <= nominal for d in delays)
        assert len(set(delays)) > 1


async def test_full_object_sources_dispatch_on_the_key_prefix(store: OutboxStore) -> None:
    objects = Objects(L1={"id": "L1"})
    router = sources(objects)
    async with store.db.read() as session:
        assert await router.full_object(session, "test:L1") == FullObject(
            path="NL/CPO/L1", body={"id": "L1"}
        )
        assert await router.full_object(session, "test:L2") is None
        with pytest.raises(LookupError):
            await router.full_object(session, "other:L1")
    with pytest.raises(ValueError, match="already registered"):
        router.register("test", objects)


# --- enqueue -------------------------------------------------------------------------------


async def test_enqueue_leaves_nothing_when_the_transaction_rolls_back(
    db: Database, store: OutboxStore
) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as uow:
            await enqueue(uow.session, [a_put(), a_patch()], now=T0, coalesce=False)
            raise RuntimeError("the change failed")
    assert await store.list_entries() == []

    async with db.transaction() as uow:
        await enqueue(uow.session, [a_put(), a_patch()], now=T0, coalesce=False)
    rows = await store.list_entries()
    assert [(r.method, r.state, r.attempts, r.next_attempt_at) for r in rows] == [
        ("PUT", OutboxState.PENDING, 0, T0),
        ("PATCH", OutboxState.PENDING, 0, T0),
    ]
    assert rows[1].body == {"status": "CHARGING", "last_updated": "2024-01-01T12:00:00Z"}
    assert rows[1].fallback == "test:L1"


async def test_rows_of_a_key_come_out_one_at_a_time_in_enqueue_order(store: OutboxStore) -> None:
    await store.enqueue(
        [a_put("L1"), a_patch("L1", status="A"), a_patch("L1", "E2", status="B")],
        now=T0,
        coalesce=False,
    )
    seen: list[str] = []
    while (head := await store.due_head_of((1, "locations:NL/CPO/L1"), T0)) is not None:
        seen.append(f"{head.method} {head.path} {head.body.get('status', '')}".strip())
        assert await store.delete(head.id)
    assert seen == ["PUT NL/CPO/L1", "PATCH NL/CPO/L1/E1 A", "PATCH NL/CPO/L1/E2 B"]


async def test_due_heads_are_the_first_due_row_of_each_key_oldest_first(
    store: OutboxStore,
) -> None:
    await store.enqueue(
        [a_put("L1"), a_put("L2"), a_patch("L1"), a_put("L3"), a_put("L1", partner_id=2)],
        now=T0,
        coalesce=False,
    )
    heads = await store.due_heads(T0, limit=10)
    assert [(h.partner_id, h.path) for h in heads] == [
        (1, "NL/CPO/L1"),
        (1, "NL/CPO/L2"),
        (1, "NL/CPO/L3"),
        (2, "NL/CPO/L1"),
    ]
    assert [h.path for h in await store.due_heads(T0, limit=2)] == ["NL/CPO/L1", "NL/CPO/L2"]
    assert await store.due_heads(T0 - timedelta(seconds=1), limit=10) == []

    # A head waiting for its retry holds its key back, even though the next row is "due".
    l1 = heads[0]
    later = T0 + timedelta(seconds=30)
    assert await store.record_failure(l1.id, attempts=1, error="HTTP 500", next_attempt_at=later)
    assert [(h.partner_id, h.path) for h in await store.due_heads(T0, limit=10)] == [
        (1, "NL/CPO/L2"),
        (1, "NL/CPO/L3"),
        (2, "NL/CPO/L1"),
    ]
    assert await store.due_head_of(l1.key, T0) is None
    assert await store.next_attempt_after(T0) == later
    retried = await store.due_head_of(l1.key, later)
    assert retried is not None
    assert (retried.id, retried.attempts, retried.last_error) == (l1.id, 1, "HTTP 500")


async def test_coalescing_replaces_the_pending_rows_of_the_same_coalesce_key(
    store: OutboxStore,
) -> None:
    await store.enqueue([a_put("L1"), a_patch(status="A")], now=T0, coalesce=True)
    await store.enqueue(
        [a_patch(status="B"), a_patch("L1", "E2", status="X"), a_patch(status="C")],
        now=T0,
        coalesce=True,
    )
    await store.enqueue([a_patch(status="D", partner_id=2)], now=T0, coalesce=True)
    rows = await store.list_entries()
    assert [(r.partner_id, r.method, r.body.get("status")) for r in rows] == [
        (1, "PUT", None),
        (1, "PATCH", "X"),
        (1, "PATCH", "C"),
        (2, "PATCH", "D"),
    ]
    # Without coalescing every row is kept.
    await store.enqueue([a_patch(status="E"), a_patch(status="F")], now=T0, coalesce=False)
    assert len(await store.list_entries(partner_id=1)) == 5


async def test_coalescing_keeps_dead_rows_and_marking_a_coalesced_row_is_a_no_op(
    store: OutboxStore,
) -> None:
    await store.enqueue([a_patch(status="A"), a_patch(status="B")], now=T0, coalesce=False)
    dead, in_flight = await store.list_entries()
    await kill(store, dead.id)
    await store.enqueue([a_patch(status="C")], now=T0, coalesce=True)
    rows = await store.list_entries()
    assert [(r.state, r.body["status"]) for r in rows] == [
        (OutboxState.DEAD, "A"),
        (OutboxState.PENDING, "C"),
    ]
    # The worker's outcome for the row coalesced away changes nothing.
    assert not await store.delete(in_flight.id)
    assert not await store.record_failure(in_flight.id, attempts=1, error="x", next_attempt_at=T0)
    assert not await store.dead_letter(in_flight.id, attempts=1, error="x", now=T0)
    assert [r.body["status"] for r in await store.list_entries()] == ["A", "C"]


async def test_ids_are_never_reused_after_the_newest_row_is_deleted(store: OutboxStore) -> None:
    await store.enqueue([a_put("L1")], now=T0, coalesce=False)
    (first,) = await store.list_entries()
    assert await store.delete(first.id)
    await store.enqueue([a_put("L1")], now=T0, coalesce=False)
    (second,) = await store.list_entries()
    assert second.id > first.id
    assert not await store.delete(first.id)
    assert await store.get(second.id) is not None


# --- dead letters --------------------------------------------------------------------------


async def test_dead_rows_block_nothing(store: OutboxStore) -> None:
    await store.enqueue([a_put("L1"), a_patch("L1"), a_put("L2")], now=T0, coalesce=False)
    put, patch, _ = await store.list_entries()
    await kill(store, put.id, "HTTP 400")
    head = await store.due_head_of(put.key, T0)
    assert head is not None
    assert head.id == patch.id
    heads = await store.due_heads(T0, limit=10)
    assert heads[0].id == patch.id
    (dead,) = await store.list_entries(state=OutboxState.DEAD)
    assert (dead.id, dead.attempts, dead.last_error, dead.dead_at) == (put.id, 3, "HTTP 400", T0)
    assert [(c.partner_id, c.pending, c.dead) for c in await store.summary()] == [(1, 2, 1)]


async def test_patch_is_replaced_in_place_by_a_put_of_the_whole_object(store: OutboxStore) -> None:
    await store.enqueue([a_put("L9"), a_patch("L1"), a_put("L1")], now=T0, coalesce=False)
    _, patch, put = await store.list_entries()
    objects = Objects(L1={"id": "L1", "evses": [{"uid": "E1", "status": "AVAILABLE"}]})

    result = await store.replace_with_full_object(
        patch.id, sources(objects), attempts=1, error="OCPI 2001", now=T0
    )

    assert isinstance(result, Replaced)
    replaced = result.entry
    assert (replaced.id, replaced.method, replaced.path) == (patch.id, "PUT", "NL/CPO/L1")
    assert replaced.body == objects.locations["L1"]
    assert (replaced.attempts, replaced.last_error, replaced.state) == (
        1,
        "OCPI 2001",
        OutboxState.PENDING,
    )
    head = await store.due_head_of(patch.key, T0)
    assert head is not None
    assert head.id == patch.id  # still before the later PUT of the same key
    assert [r.id for r in await store.list_entries()][1:] == [patch.id, put.id]


async def test_replacement_dead_letters_when_the_object_is_gone(store: OutboxStore) -> None:
    await store.enqueue([a_patch("L1")], now=T0, coalesce=False)
    (patch,) = await store.list_entries()
    result = await store.replace_with_full_object(
        patch.id, sources(Objects()), attempts=2, error="HTTP 404", now=T0
    )
    assert isinstance(result, ObjectGone)
    (row,) = await store.list_entries()
    assert (row.state, row.method, row.attempts) == (OutboxState.DEAD, "PATCH", 2)
    assert row.last_error == "HTTP 404; the object no longer exists"
    missing = await store.replace_with_full_object(
        patch.id + 100, sources(Objects()), attempts=1, error="x", now=T0
    )
    assert isinstance(missing, RowGone)


# --- requeue -------------------------------------------------------------------------------


async def test_requeue_without_fallback_puts_dead_rows_back_at_their_place(
    store: OutboxStore,
) -> None:
    await store.enqueue(
        [a_put("L1"), a_put("L2"), a_put("L3", partner_id=2), a_put("L1")],
        now=T0,
        coalesce=False,
    )
    l1, l2, l3, l1_again = await store.list_entries()
    for row in (l1, l2, l3):
        await kill(store, row.id)
    later = T0 + timedelta(minutes=5)

    assert await store.requeue(ids=[l1.id], now=later, full_objects=None) == 1
    rows = await store.list_entries(state=OutboxState.PENDING)
    assert [r.id for r in rows] == [l1.id, l1_again.id]
    assert (rows[0].attempts, rows[0].next_attempt_at, rows[0].dead_at) == (0, later, None)
    assert rows[0].last_error == "HTTP 500"  # kept as history until the next attempt
    head = await store.due_head_of(l1.key, later)
    assert head is not None
    assert head.id == l1.id  # before the newer row of its key again

    assert await store.requeue(ids=[l1.id, l2.id + 1000], now=later, full_objects=None) == 0
    assert await store.requeue(partner_id=2, now=later, full_objects=None) == 1
    assert await store.requeue(everything=True, now=later, full_objects=None) == 1
    assert await store.list_entries(state=OutboxState.DEAD) == []
    with pytest.raises(ValueError, match="exactly one"):
        await store.requeue(ids=[1], everything=True, now=later, full_objects=None)


async def test_requeue_turns_patches_into_one_put_of_the_current_object(
    store: OutboxStore,
) -> None:
    await store.enqueue(
        [
            a_patch("L1", "E1", status="CHARGING"),
            a_patch("L1", "E2", status="BLOCKED"),
            a_put("L1", fallback=True),  # an old whole object is refreshed too
            a_patch("L2"),
            a_put("L3"),
        ],
        now=T0,
        coalesce=False,
    )
    rows = await store.list_entries()
    for row in rows:
        await kill(store, row.id)
    objects = Objects(L1={"id": "L1", "evses": [{"uid": "E1", "status": "AVAILABLE"}]})

    assert await store.requeue(everything=True, now=T0, full_objects=sources(objects)) == 2

    pending = await store.list_entries(state=OutboxState.PENDING)
    assert [(r.id, r.method, r.path, r.body) for r in pending] == [
        (rows[0].id, "PUT", "NL/CPO/L1", objects.locations["L1"]),
        (rows[4].id, "PUT", "NL/CPO/L3", {"id": "L3"}),
    ]
    assert objects.asked == ["test:L1", "test:L2"]
    # L2 no longer exists: its dead PATCH stays dead, saying why.
    (dead,) = await store.list_entries(state=OutboxState.DEAD)
    assert (dead.id, dead.last_error) == (rows[3].id, "not requeued: the object no longer exists")


async def test_requeue_without_a_source_sends_patches_as_they_were(store: OutboxStore) -> None:
    await store.enqueue([a_patch("L1")], now=T0, coalesce=False)
    (row,) = await store.list_entries()
    await kill(store, row.id)
    assert await store.requeue(partner_id=1, now=T0, full_objects=None) == 1
    (requeued,) = await store.list_entries()
    assert (requeued.method, requeued.body) == (row.method, row.body)
