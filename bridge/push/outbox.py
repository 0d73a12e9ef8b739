"""The durable outbox of OCPI pushes: what a push is, what a stored one looks like, how long to
wait before retrying one. Data types only; the table is ``bridge.store.outbox``, the delivery
``bridge.push.worker``.

Every push to a partner (Locations, Sessions, CDRs, Tariffs, command results) is a row enqueued
in the same transaction as the change it describes, then delivered by the worker:

- Rows with the same ``(partner_id, ordering_key)`` are delivered one at a time, in enqueue
  order; different keys are delivered concurrently.
- Delivery is at-least-once: a row in flight when the process dies is sent again after the
  restart (PUT and PATCH are idempotent; a receiver may see a POST twice).
- A row that fails is retried with exponential backoff and jitter; after ``max_attempts`` it is
  dead-lettered (state ``DEAD``), kept for the operator and logged. A dead row blocks nothing:
  the later rows of its key go on being delivered. Requeueing a dead row that has a
  ``fallback`` key sends the current whole object (a PUT) instead of the old request, so an
  old state never overwrites a newer one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bridge.ocpi.models import ModuleID

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

Method = Literal["PUT", "PATCH", "POST", "DELETE"]
METHODS: tuple[Method, ...] = ("PUT", "PATCH", "POST", "DELETE")
KEY_MAX_LENGTH = 255  # ordering_key, coalesce_key and fallback are stored as string(255)


class OutboxState(StrEnum):
    PENDING = "PENDING"  # waiting for its turn or for its next attempt
    DEAD = "DEAD"  # gave up: kept for the operator, who may requeue it


@dataclass(frozen=True, kw_only=True)
class PushRequest:
    """One push to enqueue. ``path`` is appended with ``/`` to the partner's RECEIVER endpoint
    of ``module`` (read at delivery time, e.g. ``"NL/CPO/LOC1/EVSE1"``); ``url`` is an absolute
    URL instead (a command's ``response_url``). Exactly one of the two is given."""

    partner_id: int
    module: ModuleID
    method: Method
    path: str | None = None
    url: str | None = None
    body: dict[str, Any]
    # Rows with the same (partner_id, ordering_key) are delivered strictly in enqueue order,
    # one at a time; e.g. "locations:NL/CPO/LOC1".
    ordering_key: str
    # With coalescing on, a new row deletes the PENDING rows of the same
    # (partner_id, coalesce_key); e.g. "evse-status:NL/CPO/LOC1/EVSE1".
    coalesce_key: str | None = None
    # The key a FullObjectSource turns into a PUT of the whole current object: sent instead
    # of a PATCH the partner rejects, and instead of a dead PATCH or PUT the operator requeues
    # (so that an old state never overwrites a newer one). Not for POST.
    fallback: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path and url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must be an absolute http(s) URL")
        if self.fallback is not None and self.method not in ("PUT", "PATCH"):
            raise ValueError("fallback is for PUT and PATCH requests only")
        for name in ("ordering_key", "coalesce_key", "fallback"):
            value = getattr(self, name)
            if value is not None and not 0 < len(value) <= KEY_MAX_LENGTH:
                raise ValueError(f"{name} must be 1 to {KEY_MAX_LENGTH} characters")


@dataclass(frozen=True, kw_only=True)
class FullObject:
    """The whole current object behind a fallback key: PUT ``body`` at ``path`` (relative to
    the RECEIVER endpoint of the row's module, like ``PushRequest.path``)."""

    path: str
    body: dict[str, Any]


class FullObjectSource(Protocol):
    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        """The current whole object for ``key``, read in ``session``; None when the object
        no longer exists."""
        ...


class FullObjectSources:
    """One ``FullObjectSource`` per prefix of the fallback key (``"<prefix>:<rest>"``), so
    that each module (locations, tariffs...) registers its own. An unknown prefix is a
    programming error (``LookupError``)."""

    def __init__(self, sources: Mapping[str, FullObjectSource] | None = None) -> None:
        self._sources: dict[str, FullObjectSource] = dict(sources or {})

    def register(self, prefix: str, source: FullObjectSource) -> None:
        if not prefix or ":" in prefix:
            raise ValueError("a prefix is non-empty and has no ':'")
        if prefix in self._sources:
            raise ValueError(f"a full-object source is already registered for {prefix!r}")
        self._sources[prefix] = source

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        prefix, sep, _ = key.partition(":")
        source = self._sources.get(prefix) if sep else None
        if source is None:
            raise LookupError(f"no full-object source for fallback key {key!r}")
        return await source.full_object(session, key)


@dataclass(frozen=True, kw_only=True)
class OutboxEntry:
    """A stored outbox row."""

    id: int  # global enqueue order
    partner_id: int
    module: ModuleID
    method: Method
    path: str | None
    url: str | None
    body: dict[str, Any]
    ordering_key: str
    coalesce_key: str | None
    fallback: str | None
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    dead_at: datetime | None

    @property
    def key(self) -> tuple[int, str]:
        """The ordering key: rows sharing it are delivered one at a time, in order."""
        return (self.partner_id, self.ordering_key)

    @property
    def target(self) -> str:
        """The absolute URL, or the path under the partner's endpoint of ``module``."""
        return self.url if self.url is not None else f"{self.module.value}: {self.path}"


@dataclass(frozen=True, kw_only=True)
class OutboxCount:
    partner_id: int
    pending: int
    dead: int


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int  # failed attempts before a row is dead-lettered
    backoff_base_s: float  # wait after the first failure; doubles with each attempt
    backoff_max_s: float  # longest wait

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s <= 0 or self.backoff_max_s <= 0:
            raise ValueError("backoff times must be positive")

    def delay_after(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after ``attempts`` failed attempts: ``base * 2**(attempts-1)``
        capped at the maximum, then a random fraction between half and all of it (jitter, so
        that rows failing together are not retried together)."""
        exponent = min(max(attempts, 1) - 1, 62)
        nominal = min(self.backoff_max_s, self.backoff_base_s * float(2**exponent))
        return nominal * rng.uniform(0.5, 1.0)
