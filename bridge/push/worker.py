"""The outbox worker: delivers the rows of ``bridge.store.outbox`` to the partners.

Loop: wait for ``wake()`` (a push committed in this process), the earliest next attempt or the
poll interval (pushes queued by another process, e.g. the CLI, are found by polling); then
deliver the due heads, up to ``concurrency`` keys at once, never two rows of one key at once;
after a success the same task goes on with the next due row of that key.

Outcome of one delivery:

- success: the row is deleted (``delivered`` counts them);
- partner gone, not REGISTERED, without a token or without a RECEIVER endpoint for the module,
  or a URL that cannot be sent: dead-lettered at once;
- a PATCH the partner rejects (HTTP 4xx other than 401/403/408/429, or OCPI 2xxx) with a
  ``fallback`` key: replaced in place by a PUT of the current whole object, sent at once
  (dead-lettered if the object no longer exists);
- anything else (unreachable, timeout, HTTP 5xx or 401/403/408/429, an invalid answer, OCPI
  3xxx/4xxx, a rejected request without fallback): retried after ``policy.delay_after``,
  dead-lettered after ``policy.max_attempts`` failed attempts.

Retries are logged as WARNING and dead letters as ERROR, with partner, method, URL, attempts
and reason. Delivery is at-least-once: a row in flight when the process stops or dies is sent
again later. Run one worker per database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from functools import partial
from typing import Protocol

from bridge.identity import CpoIdentity
from bridge.ocpi.models import InterfaceRole, ModuleID
from bridge.partners import Partner, PartnerStatus
from bridge.push.client import Failure, OcpiClient, OcpiReply, Routing, routing_to
from bridge.push.outbox import (
    FullObjectSource,
    OutboxCount,
    OutboxEntry,
    OutboxState,
    RetryPolicy,
)
from bridge.registration import FailureKind, PartnerOperationFailed
from bridge.store.outbox import ObjectGone, OutboxStore, Replaced, RowGone
from csms.clock import utc_now

log = logging.getLogger(__name__)

Key = tuple[int, str]

# HTTP 4xx answers that say nothing about the request itself: retried like server errors.
_TRANSIENT_4XX = frozenset({401, 403, 408, 429})


class PartnerDirectory(Protocol):
    async def get(self, partner_id: int) -> Partner | None:
        """The partner as stored now (None, or ``PartnerOperationFailed`` NOT_FOUND, when it
        does not exist)."""
        ...


class _Outcome(Enum):
    DELIVERED = "delivered"
    REPLACED = "replaced"  # now a PUT of the whole object, due at once
    DEAD = "dead"
    RETRY = "retry"
    GONE = "gone"  # the row disappeared meanwhile (coalesced away)


DeliveredListener = Callable[[OutboxEntry, OcpiReply], Awaitable[None]]


class OutboxWorker:
    def __init__(
        self,
        store: OutboxStore,
        partners: PartnerDirectory,
        client: OcpiClient,
        identity: Callable[[], CpoIdentity],
        policy: RetryPolicy,
        *,
        concurrency: int,
        poll_interval_s: float,
        full_objects: FullObjectSource | None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utc_now,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.partners = partners
        self.client = client
        self.identity = identity
        self.policy = policy
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self.full_objects = full_objects
        self.stop_timeout_s = stop_timeout_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.delivered = 0  # rows delivered since start (they are deleted from the outbox)
        self.dead_lettered = 0
        self._in_flight: dict[Key, asyncio.Task[int]] = {}
        self._keys_ended = 0  # delivery tasks ended so far (see ``_dispatch``)
        self._delivered_listeners: dict[ModuleID, DeliveredListener] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the outbox worker is already started")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-worker")

    def wake(self) -> None:
        """Something was enqueued (and committed): look for due rows now."""
        self._wakeup.set()

    def on_delivered(self, module: ModuleID, callback: DeliveredListener) -> None:
        """Call ``callback`` after a row of ``module`` was delivered (e.g. to keep the
        ``Location`` header of a POSTed CDR). A failing callback is logged; the row stays
        delivered."""
        self._delivered_listeners[module] = callback

    async def stop(self) -> None:
        """No new deliveries; wait up to ``stop_timeout_s`` for those in flight, then cancel
        them (their rows are still PENDING: they are sent again after a restart)."""
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await task
            except Exception:
                log.exception("outbox worker failed")
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.stop_timeout_s)
        if pending:
            log.warning(
                "outbox: %d delivery(ies) still in flight after %.1fs, cancelled; their rows "
                "are sent again after a restart",
                len(pending),
                self.stop_timeout_s,
            )
            for pending_task in pending:
                pending_task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain_once(self) -> int:
        """Deliver what is due now (each key until it has nothing due or a failure) and return
        the number of rows delivered. For tests and the scheduler's backstop; safe while the
        loop runs (keys in flight are left to their task)."""
        now = self._clock()
        delivered = 0
        seen: set[Key] = set()  # each key once: a key whose delivery keeps failing ends it
        while not self._stopping:
            started = await self._dispatch(now, exclude=seen)
            if not started:
                break
            for count in await asyncio.gather(*started):
                delivered += count
        return delivered

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "in_flight": len(self._in_flight),
        }

    # --- loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        log.info(
            "outbox worker started (concurrency %d, poll every %.1fs)",
            self.concurrency,
            self.poll_interval_s,
        )
        while not self._stopping:
            self._wakeup.clear()
            try:
                timeout = await self._dispatch_and_plan()
            except Exception:
                log.exception(
                    "outbox: reading the outbox failed; trying again in %.1fs",
                    self.poll_interval_s,
                )
                timeout = self.poll_interval_s
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
        log.info("outbox worker stopped (%d delivered)", self.delivered)

    async def _dispatch_and_plan(self) -> float:
        """Start the due keys; return how long to sleep before looking again (unless woken,
        which also happens whenever a key's delivery task ends)."""
        now = self._clock()
        limit = self._heads_wanted(None)
        if limit == 0:
            return self.poll_interval_s
        # The due heads and the earliest later attempt, in one read.
        ended = self._keys_ended
        heads, earliest = await self.store.plan(now, limit=limit)
        self._start(heads, exclude=None, fresh=self._keys_ended == ended)
        if len(self._in_flight) >= self.concurrency:
            return self.poll_interval_s
        # Every due head is in flight: sleep until the next retry is due (or the poll).
        if earliest is None:
            return self.poll_interval_s
        wait = (earliest - self._clock()).total_seconds()
        return min(self.poll_interval_s, max(0.0, wait))

    async def _dispatch(
        self, now: datetime, *, exclude: set[Key] | None = None
    ) -> list[asyncio.Task[int]]:
        """Start a delivery task for each due key not in flight (nor in ``exclude``, to which
        the started keys are added), as long as fewer than ``concurrency`` run."""
        limit = self._heads_wanted(exclude)
        if limit == 0:
            return []
        ended = self._keys_ended
        heads = await self.store.due_heads(now, limit=limit)
        return self._start(heads, exclude=exclude, fresh=self._keys_ended == ended)

    def _heads_wanted(self, exclude: set[Key] | None) -> int:
        """How many due heads to read: each key in flight (or excluded) holds at most one,
        asking for that many more leaves room for the free slots. 0 when none is free."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0 or self._stopping:
            return 0
        return free + len(self._in_flight) + (len(exclude) if exclude else 0)

    def _start(
        self, heads: Sequence[OutboxEntry], *, exclude: set[Key] | None, fresh: bool
    ) -> list[asyncio.Task[int]]:
        """``fresh``: no delivery task ended while the heads were read, so a key not in flight
        now was not in flight then, and its head as read is still its head: its task starts
        with it instead of reading it again."""
        started: list[asyncio.Task[int]] = []
        for entry in heads:
            if len(self._in_flight) >= self.concurrency or self._stopping:
                break
            if entry.key in self._in_flight or (exclude is not None and entry.key in exclude):
                continue
            if exclude is not None:
                exclude.add(entry.key)
            task = asyncio.create_task(
                self._deliver_key(entry.key, entry if fresh else None),
                name=f"outbox-{entry.partner_id}-{entry.id}",
            )
            self._in_flight[entry.key] = task
            task.add_done_callback(partial(self._key_done, entry.key))
            started.append(task)
        return started

    def _key_done(self, key: Key, _task: asyncio.Task[int]) -> None:
        self._in_flight.pop(key, None)
        self._keys_ended += 1
        self._wakeup.set()

    async def _deliver_key(self, key: Key, head: OutboxEntry | None = None) -> int:
        """Deliver the rows of one key in order while they are due and succeed, starting with
        ``head`` when the dispatcher read it fresh, else with the head read again here (the
        one the dispatcher saw may have been delivered meanwhile)."""
        delivered = 0
        entry = head
        try:
            while not self._stopping:
                if entry is None:
                    entry = await self.store.due_head_of(key, self._clock())
                    if entry is None:
                        break
                outcome, entry = await self._deliver(entry)
                if outcome is _Outcome.DELIVERED:
                    delivered += 1
                elif outcome is _Outcome.RETRY:
                    break
        except Exception:
            log.exception("outbox: delivering partner %d key %r failed unexpectedly", *key)
            # Keep the key busy a moment: a failing database must not turn into a busy loop.
            await asyncio.sleep(self.poll_interval_s)
        return delivered

    # --- one delivery --------------------------------------------------------------------

    async def _deliver(self, entry: OutboxEntry) -> tuple[_Outcome, OutboxEntry | None]:
        """One attempt; the outcome, and after a success the next due row of the key (read in
        the transaction that deleted the delivered one) if there is one."""
        partner = await self._partner(entry.partner_id)
        if partner is None:
            problem = f"partner {entry.partner_id} does not exist (any more)"
            return await self._dead(entry, entry.attempts, problem), None
        if partner.status is not PartnerStatus.REGISTERED:
            problem = f"partner {partner.id} is {partner.status.value}, not REGISTERED"
            return await self._dead(entry, entry.attempts, problem), None
        token = partner.token_present
        if not token:
            problem = f"partner {partner.id} has no token"
            return await self._dead(entry, entry.attempts, problem), None
        url = _url(partner, entry)
        if url is None:
            problem = f"partner {partner.id} offers no {entry.module.value} RECEIVER endpoint"
            return await self._dead(entry, entry.attempts, problem), None
        reply = await self.client.request(
            entry.method,
            url,
            token=token,
            encode_token=partner.encode_token,
            body=None if entry.method == "DELETE" else entry.body,
            routing=self._routing(partner),
        )
        if reply.ok:
            deleted, following = await self.store.delete_and_next(
                entry.id, entry.key, self._clock()
            )
            if deleted:
                self.delivered += 1
            log.debug("outbox #%d delivered to partner %d: %s", entry.id, entry.partner_id, url)
            listener = self._delivered_listeners.get(entry.module)
            if listener is not None:
                try:
                    await listener(entry, reply)
                except Exception:
                    log.exception("outbox #%d: after delivery, %r failed", entry.id, listener)
            return _Outcome.DELIVERED, following
        attempts = entry.attempts + 1
        reason = reply.describe()
        if reply.failure is Failure.INVALID_REQUEST:
            return await self._dead(entry, attempts, reason, sent=True), None
        if (
            entry.method == "PATCH"
            and entry.fallback is not None
            and self.full_objects is not None
            and _rejected(reply)
        ):
            return await self._replace(entry, attempts, reason), None
        return await self._retry(entry, attempts, reason), None

    async def _partner(self, partner_id: int) -> Partner | None:
        try:
            return await self.partners.get(partner_id)
        except PartnerOperationFailed as exc:
            if exc.kind is FailureKind.NOT_FOUND:
                return None
            raise

    def _routing(self, partner: Partner) -> Routing | None:
        identity = self.identity()
        return routing_to(identity.country_code, identity.party_id, partner.roles)

    async def _replace(self, entry: OutboxEntry, attempts: int, reason: str) -> _Outcome:
        assert self.full_objects is not None
        result = await self.store.replace_with_full_object(
            entry.id,
            self.full_objects,
            attempts=attempts,
            error=f"PATCH rejected: {reason}",
            now=self._clock(),
        )
        match result:
            case Replaced():
                log.warning(
                    "outbox #%d: partner %d rejected the PATCH (%s); sending the whole object "
                    "(PUT %s) instead",
                    entry.id,
                    entry.partner_id,
                    reason,
                    result.entry.path,
                )
                return _Outcome.REPLACED
            case ObjectGone():
                self.dead_lettered += 1
                log.error(
                    "outbox #%d: dead letter after %d attempt(s), partner %d, PATCH rejected: "
                    "%s; the object (%s) no longer exists",
                    entry.id,
                    attempts,
                    entry.partner_id,
                    reason,
                    entry.fallback,
                )
                return _Outcome.DEAD
            case RowGone():
                return _Outcome.GONE

    async def _retry(self, entry: OutboxEntry, attempts: int, reason: str) -> _Outcome:
        if attempts >= self.policy.max_attempts:
            return await self._dead(entry, attempts, reason, sent=True)
        delay = self.policy.delay_after(attempts, self._rng)
        await self.store.record_failure(
            entry.id,
            attempts=attempts,
            error=reason,
            next_attempt_at=self._clock() + timedelta(seconds=delay),
        )
        log.warning(
            "outbox #%d: push to partner %d failed (attempt %d of %d), retrying in %.2fs: %s",
            entry.id,
            entry.partner_id,
            attempts,
            self.policy.max_attempts,
            delay,
            reason,
        )
        return _Outcome.RETRY

    async def _dead(
        self, entry: OutboxEntry, attempts: int, reason: str, *, sent: bool = False
    ) -> _Outcome:
        """Dead-letter the row; ``reason`` is its last_error (when ``sent``, the partner's
        answer, which names the method and URL already)."""
        if await self.store.dead_letter(
            entry.id, attempts=attempts, error=reason, now=self._clock()
        ):
            self.dead_lettered += 1
            log.error(
                "outbox #%d: dead letter after %d attempt(s), partner %d, %s",
                entry.id,
                attempts,
                entry.partner_id,
                reason if sent else f"{entry.method} {entry.target}: {reason}",
            )
        return _Outcome.DEAD


def _url(partner: Partner, entry: OutboxEntry) -> str | None:
    """Where the row goes: its absolute URL, or its path under the partner's RECEIVER
    endpoint of its module (None when the partner has none)."""
    if entry.url is not None:
        return entry.url
    endpoint = partner.endpoint_url(entry.module, InterfaceRole.RECEIVER)
    if endpoint is None:
        return None
    if not entry.path:
        return endpoint  # e.g. a CDR is POSTed to the endpoint itself
    return f"{endpoint.rstrip('/')}/{entry.path.lstrip('/')}"


def _rejected(reply: OcpiReply) -> bool:
    """The partner refused this request as such (not a transient failure)."""
    if reply.failure is Failure.HTTP_STATUS and reply.http_status is not None:
        return 400 <= reply.http_status < 500 and reply.http_status not in _TRANSIENT_4XX
    return (
        reply.failure is Failure.OCPI_STATUS
        and reply.status_code is not None
        and 2000 <= reply.status_code <= 2999
    )


class OutboxService:
    """What the operator does with the outbox (admin API, CLI): list, count, requeue. Requeued
    rows are delivered by the running worker (woken here, or found by its poll when the
    requeue ran in another process)."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        wake: Callable[[], None],
        full_objects: FullObjectSource | None,
        stats: Callable[[], dict[str, int]] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self._wake = wake
        self.full_objects = full_objects
        self._stats = stats
        self._clock = clock

    async def list_entries(
        self,
        *,
        state: OutboxState | None = None,
        partner_id: int | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> list[OutboxEntry]:
        return await self.store.list_entries(
            state=state, partner_id=partner_id, limit=limit, after_id=after_id
        )

    async def summary(self) -> list[OutboxCount]:
        return await self.store.summary()

    def stats(self) -> dict[str, int]:
        """Counters of this process's worker (delivered, dead-lettered, in flight)."""
        return self._stats() if self._stats is not None else {}

    async def requeue(
        self,
        *,
        ids: Sequence[int] | None = None,
        partner_id: int | None = None,
        everything: bool = False,
    ) -> int:
        """Requeue DEAD rows (exactly one selection; see ``OutboxStore.requeue``)."""
        count = await self.store.requeue(
            ids=ids,
            partner_id=partner_id,
            everything=everything,
            now=self._clock(),
            full_objects=self.full_objects,
        )
        if count:
            log.info("outbox: %d dead letter(s) requeued", count)
            self._wake()
        return count
