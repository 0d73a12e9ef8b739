"""OCPI ChargingProfiles, CPO as RECEIVER (reference 3.7, 4.8).

An eMSP's request on one of its sessions is checked and answered at once with a
ChargingProfileResponse, then carried out in the background and its result POSTed to the
request's ``response_url`` through the outbox:

- ``UNKNOWN_SESSION`` (``timeout`` 0): the session does not exist, is not the caller's (another
  eMSP must not learn that it exists), is internal (not yet an OCPI Session) or has ended.
- ``REJECTED`` (``timeout`` 0): the session's charger is not connected.
- ``ACCEPTED`` with ``timeout`` = OCPP call timeout + margin (seconds, rounded up): the request
  is stored (``ChargingProfileRequestRow``), a task sends the charger its command and the
  result follows within ``timeout``.

What the charger is sent (``bridge.mapping.chargingprofiles`` maps the answers):

- PUT: ``SetChargingLimit`` = OCPP ``SetChargingProfile`` with a ``TxProfile`` for the session's
  transaction on its EVSE, at ``policy.stack_level`` (above the CPO's own profiles), with one
  CPO-unique ``chargingProfileId`` per session (the first PUT's request id), so that a new PUT
  replaces the session's profile on the charger.
- GET: ``GetCompositeSchedule`` of the session's EVSE for ``duration`` seconds.
- DELETE: ``ClearChargingLimit`` of the session's profile id. A session that never had a
  profile PUT is answered ``ACCEPTED`` and its ClearProfileResult is ``UNKNOWN`` (no profile to
  clear), without asking the charger, online or not.

Rate limit: a request of one kind (PUT, GET, DELETE) for a session within
``policy.min_interval_s`` of the previous accepted one of that kind (same eMSP, same session)
is answered ``TOO_OFTEN`` (``timeout`` 0) and reaches no charger; requests refused for any
other reason do not count.

ActiveChargingProfile updates (the CPO SHALL PUT ``{eMSP chargingprofiles SENDER
endpoint}/{session_id}`` whenever it learns that the active profile changed, for sessions on
which the eMSP had a profile ``ACCEPTED`` at least once): a change is recorded durably as an
``ActiveProfileUpdateRow`` when

- a SetChargingProfile or ClearChargingProfile of the session is ``ACCEPTED`` by the charger
  (in the transaction that stores the result; the only trigger for OCPP 1.6, whose chargers
  report no limit changes), or
- the charger reports an external limit set or cleared (2.0.1 NotifyChargingLimit,
  ClearedChargingLimit: ``ChargingLimitChanged``) on the session's EVSE or on the whole
  charger while the session runs (``project``, the apply function of a projector of its own).

A task of this service (``start``) then asks the charger ``GetCompositeSchedule`` for
``policy.active_profile_duration_s`` (after the session's pending requests, never inside the
projector's transaction), and queues the PUT in the outbox in the transaction that closes the
rows (``bridge.mapping.chargingprofiles.to_active_update``). No profile active any more: the
EVSE maximum (``to_evse_maximum``), if the session's connector is known, else nothing (logged).
Skipped with a WARNING: an eMSP without a chargingprofiles SENDER endpoint; nothing to do: a
session that ended. A charger offline, silent or failing is asked again
(``policy.update_retry_s``, doubling) up to ``policy.update_max_attempts`` times, then the
update is given up (WARNING). Rows left by a stopped process are carried out after the next
start.

Requests of one session reach the charger in the order they were received. The background work
of a request ends at its deadline (``timeout`` after it was accepted): a request without a
result then, or one a previous run left unanswered (crash, kill), gets a ``REJECTED`` result
(``recover`` at start-up, ``expire`` periodically), so the eMSP is never left waiting. Results
are stored once: a late answer after that changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from sqlalchemy import Exists, exists, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.mapping import chargingprofiles as rules
from bridge.ocpi.chargingprofiles import (
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    ChargingProfileResponse,
    ChargingProfileResponseType,
    ChargingProfileResult,
    ChargingProfileResultType,
    ClearProfileResult,
    SetChargingProfile,
)
from bridge.ocpi.locations import Connector
from bridge.ocpi.models import InterfaceRole, ModuleID
from bridge.partners import Partner
from bridge.push.outbox import PushRequest
from bridge.store.database import Database, Writes
from bridge.store.locations import load_location, location_key
from bridge.store.outbox import enqueue
from bridge.store.sessions import SessionReader
from bridge.store.tables import ActiveProfileUpdateRow, ChargingProfileRequestRow, SessionRow
from csms.domain.commands import (
    ChargerCommand,
    ClearChargingLimit,
    CommandAnswer,
    CommandStatus,
    GetCompositeSchedule,
    SetChargingLimit,
)
from csms.domain.events import ChargingLimitChanged, DomainEvent
from csms.ports import ChargerCommands

log = logging.getLogger(__name__)

PROJECTED_EVENTS = (ChargingLimitChanged,)
"""The events the ActiveChargingProfile projection acts on (``project`` ignores every other)."""

MAX_DURATION_S = 2**31 - 1
"""The largest ``duration`` an OCPP integer carries."""


class RequestKind(StrEnum):
    SET = "SET"  # PUT -> ChargingProfileResult
    ACTIVE = "ACTIVE"  # GET -> ActiveChargingProfileResult
    CLEAR = "CLEAR"  # DELETE -> ClearProfileResult


Result = ChargingProfileResult | ActiveChargingProfileResult | ClearProfileResult

PartnerLookup = Callable[[int], Awaitable[Partner | None]]

_METHODS = {RequestKind.SET: "PUT", RequestKind.ACTIVE: "GET", RequestKind.CLEAR: "DELETE"}


@dataclass(frozen=True, kw_only=True)
class ChargingProfilePolicy:
    call_timeout_s: float = 30.0
    """How long the charger has to answer (the OCPP call timeout)."""
    margin_s: float = 10.0
    """Added to the call timeout for the response's ``timeout`` and the result's deadline."""
    stack_level: int = 50
    """``stackLevel`` of the eMSPs' profiles: above the CPO's own ``TxProfile`` levels."""
    min_interval_s: float = 0.0
    """Shortest time between two accepted requests of one kind for one session (``TOO_OFTEN``
    inside it); 0: no limit."""
    active_profile_duration_s: int = 900
    """``duration`` of the composite schedule PUT to the eMSP as its ActiveChargingProfile."""
    update_retry_s: float = 5.0
    """Wait before asking again a charger that could not answer an update; doubles."""
    update_max_attempts: int = 5
    """Attempts at an ActiveChargingProfile update before it is given up."""


@dataclass(frozen=True, kw_only=True)
class Reply:
    """The synchronous answer, and for the operator/eMSP why it is not ACCEPTED."""

    response: ChargingProfileResponse
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class _Work:
    request_id: int
    kind: RequestKind
    session_id: str
    charger_id: str
    command: ChargerCommand
    deadline_at: datetime


def rejected_result(kind: RequestKind) -> Result:
    """The REJECTED result of a request of ``kind``."""
    rejected = ChargingProfileResultType.REJECTED
    match kind:
        case RequestKind.SET:
            return ChargingProfileResult(result=rejected)
        case RequestKind.ACTIVE:
            return ActiveChargingProfileResult(result=rejected)
        case RequestKind.CLEAR:
            return ClearProfileResult(result=rejected)


class ChargingProfileService:
    def __init__(
        self,
        db: Database,
        *,
        chargers: ChargerCommands,
        sessions: SessionReader,
        partners: PartnerLookup,
        policy: ChargingProfilePolicy,
        on_enqueued: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._chargers = chargers
        self._sessions = sessions
        self._partners = partners
        self._policy = policy
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[int] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._admission = asyncio.Lock()
        self._stopped = False
        self._publisher: asyncio.Task[None] | None = None
        self._publish_wake = asyncio.Event()
        self._publishing: set[str] = set()  # sessions whose update is being carried out

    @property
    def timeout_s(self) -> int:
        """The ``timeout`` of an ACCEPTED response: the result comes within it."""
        return math.ceil(self._policy.call_timeout_s + self._policy.margin_s)

    # --- receiving -----------------------------------------------------------------------

    async def set_profile(
        self, partner_id: int, session_id: str, request: SetChargingProfile
    ) -> Reply:
        """PUT: set or replace the session's profile."""
        session, refused = await self._usable_session(partner_id, session_id)
        if refused is not None:
            return refused
        assert session is not None
        transaction_ref = session.transaction_ref
        if transaction_ref is None:  # PENDING or RESERVATION: no transaction to limit yet
            return _no_transaction()
        async with self._admission, self._db.transaction() as uow:
            too_often = await self._too_often(uow.session, partner_id, session.id, RequestKind.SET)
            if too_often is not None:
                return too_often
            profile_id = await _profile_id(uow.session, session.id)
            row = self._new_row(
                partner_id,
                session.id,
                RequestKind.SET,
                request.response_url,
                request.model_dump(mode="json", exclude_none=True),
            )
            row.profile_id = profile_id
            uow.session.add(row)
            await uow.session.flush()
            assert row.id is not None
            if row.profile_id is None:
                row.profile_id = row.id
                uow.session.add(row)
            request_id, profile_id, deadline_at = row.id, row.profile_id, row.deadline_at
        limit = rules.to_charging_limit(
            request.charging_profile,
            profile_id=profile_id,
            stack_level=self._policy.stack_level,
            transaction_ref=transaction_ref,
        )
        self._spawn(
            _Work(
                request_id=request_id,
                kind=RequestKind.SET,
                session_id=session.id,
                charger_id=session.charger_id,
                command=SetChargingLimit(evse_id=session.ocpp_evse_id, limit=limit),
                deadline_at=deadline_at,
            )
        )
        return self._accepted()

    async def get_active(
        self, partner_id: int, session_id: str, duration_s: int, response_url: str
    ) -> Reply:
        """GET: the ActiveChargingProfile of the session's EVSE for ``duration_s`` seconds."""
        session, refused = await self._usable_session(partner_id, session_id)
        if refused is not None:
            return refused
        assert session is not None
        async with self._admission, self._db.transaction() as uow:
            too_often = await self._too_often(
                uow.session, partner_id, session.id, RequestKind.ACTIVE
            )
            if too_often is not None:
                return too_often
            row = self._new_row(
                partner_id,
                session.id,
                RequestKind.ACTIVE,
                response_url,
                {"duration": duration_s, "response_url": response_url},
            )
            uow.session.add(row)
            await uow.session.flush()
            assert row.id is not None
            request_id, deadline_at = row.id, row.deadline_at
        self._spawn(
            _Work(
                request_id=request_id,
                kind=RequestKind.ACTIVE,
                session_id=session.id,
                charger_id=session.charger_id,
                command=GetCompositeSchedule(evse_id=session.ocpp_evse_id, duration_s=duration_s),
                deadline_at=deadline_at,
            )
        )
        return self._accepted()

    async def clear(self, partner_id: int, session_id: str, response_url: str) -> Reply:
        """DELETE: clear the profile set for the session."""
        if self._stopped:
            return _shutting_down()
        session = await self._owned_session(partner_id, session_id)
        if session is None:
            return _unknown_session(session_id)
        async with self._db.read() as read:
            profile_id = await _profile_id(read, session.id)
        if profile_id is not None and not self._chargers.is_connected(session.charger_id):
            return _charger_offline()
        result: Result | None = None
        async with self._admission, self._db.transaction() as uow:
            too_often = await self._too_often(
                uow.session, partner_id, session.id, RequestKind.CLEAR
            )
            if too_often is not None:
                return too_often
            row = self._new_row(
                partner_id,
                session.id,
                RequestKind.CLEAR,
                response_url,
                {"response_url": response_url},
            )
            row.profile_id = profile_id
            uow.session.add(row)
            await uow.session.flush()
            assert row.id is not None
            request_id, deadline_at = row.id, row.deadline_at
            if profile_id is None:
                result = ClearProfileResult(result=ChargingProfileResultType.UNKNOWN)
                await self._store_result(
                    uow.session, row, result, "no profile was set for this session"
                )
        if result is not None:
            self._on_enqueued()
            return self._accepted()
        assert profile_id is not None
        self._spawn(
            _Work(
                request_id=request_id,
                kind=RequestKind.CLEAR,
                session_id=session.id,
                charger_id=session.charger_id,
                command=ClearChargingLimit(profile_id=profile_id),
                deadline_at=deadline_at,
            )
        )
        return self._accepted()

    def _accepted(self) -> Reply:
        return Reply(
            response=ChargingProfileResponse(
                result=ChargingProfileResponseType.ACCEPTED, timeout=self.timeout_s
            )
        )

    async def _too_often(
        self, session: AsyncSession, partner_id: int, session_id: str, kind: RequestKind
    ) -> Reply | None:
        """``TOO_OFTEN`` when the previous accepted request of ``kind`` for the session is
        less than ``policy.min_interval_s`` old, else ``None``."""
        if self._policy.min_interval_s <= 0:
            return None
        stmt = (
            select(ChargingProfileRequestRow.created_at)
            .where(
                ChargingProfileRequestRow.partner_id == partner_id,
                ChargingProfileRequestRow.session_id == session_id,
                ChargingProfileRequestRow.kind == kind.value,
            )
            .order_by(col(ChargingProfileRequestRow.id).desc())
            .limit(1)
        )
        last_at = (await session.exec(stmt)).first()
        wait_s = rules.retry_after_s(last_at, self._clock(), self._policy.min_interval_s)
        if wait_s is None:
            return None
        method = _METHODS[kind]
        log.info(
            "charging profile %s for session %s refused TOO_OFTEN (partner %d)",
            method,
            session_id,
            partner_id,
        )
        return Reply(
            response=ChargingProfileResponse(
                result=ChargingProfileResponseType.TOO_OFTEN, timeout=0
            ),
            message=(
                f"at most one {method} per {self._policy.min_interval_s:g} s for a session: "
                f"retry in {math.ceil(wait_s)} s"
            ),
        )

    def _new_row(
        self,
        partner_id: int,
        session_id: str,
        kind: RequestKind,
        response_url: str,
        request: dict[str, Any],
    ) -> ChargingProfileRequestRow:
        now = self._clock()
        return ChargingProfileRequestRow(
            partner_id=partner_id,
            session_id=session_id,
            kind=kind.value,
            response_url=response_url,
            request=json.dumps(request, separators=(",", ":")),
            created_at=now,
            deadline_at=now + timedelta(seconds=self.timeout_s),
        )

    async def _owned_session(self, partner_id: int, session_id: str) -> SessionRow | None:
        """The caller's session while it runs and is an OCPI Session, else ``None``."""
        session = await self._sessions.session(session_id)
        if (
            session is None
            or session.partner_id != partner_id
            or session.document is None
            or session.ended_at is not None
        ):
            return None
        return session

    async def _usable_session(
        self, partner_id: int, session_id: str
    ) -> tuple[SessionRow | None, Reply | None]:
        if self._stopped:
            return None, _shutting_down()
        session = await self._owned_session(partner_id, session_id)
        if session is None:
            return None, _unknown_session(session_id)
        if not self._chargers.is_connected(session.charger_id):
            return None, _charger_offline()
        return session, None

    # --- carrying out --------------------------------------------------------------------

    def _spawn(self, work: _Work) -> None:
        if self._stopped:  # stopped while it was stored: ``recover`` answers it next start
            return
        self._in_flight.add(work.request_id)
        task = asyncio.create_task(
            self._run(work), name=f"ocpi-chargingprofile-{work.kind.value}-{work.request_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("charging profile task %s failed", task.get_name(), exc_info=task.exception())

    async def _run(self, work: _Work) -> None:
        try:
            remaining = (work.deadline_at - self._clock()).total_seconds()
            try:
                async with asyncio.timeout(max(0.0, remaining)), self._serial(work.session_id):
                    answer = await self._chargers.execute(
                        work.charger_id, work.command, timeout_s=self._policy.call_timeout_s
                    )
            except TimeoutError:
                await self._finish(
                    work.request_id, rejected_result(work.kind), "no answer before the deadline"
                )
                return
            result, detail = _result(work.kind, answer)
            await self._finish(work.request_id, result, detail)
        finally:
            self._in_flight.discard(work.request_id)

    @asynccontextmanager
    async def _serial(self, session_id: str) -> AsyncIterator[None]:
        """One request of a session at a time, in the order they were received."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        self._lock_users[session_id] = self._lock_users.get(session_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            users = self._lock_users[session_id] - 1
            if users:
                self._lock_users[session_id] = users
            else:
                del self._lock_users[session_id]
                del self._locks[session_id]

    async def _finish(self, request_id: int, result: Result, detail: str) -> bool:
        """Store the result and queue its POST, once (False when the request had one)."""
        async with self._db.transaction() as uow:
            row = await uow.session.get(ChargingProfileRequestRow, request_id)
            if row is None or row.result is not None:
                return False
            stored = await self._store_result(uow.session, row, result, detail)
        if stored:
            self._on_enqueued()
            self.wake()
        return stored

    async def _store_result(
        self, session: AsyncSession, row: ChargingProfileRequestRow, result: Result, detail: str
    ) -> bool:
        now = self._clock()
        connection = await session.connection()
        claimed = await connection.execute(
            update(ChargingProfileRequestRow)
            .where(
                col(ChargingProfileRequestRow.id) == row.id,
                col(ChargingProfileRequestRow.result).is_(None),
            )
            .values(result=result.result.value, detail=detail[:255], answered_at=now)
        )
        if claimed.rowcount != 1:
            return False
        await enqueue(
            session,
            [
                PushRequest(
                    partner_id=row.partner_id,
                    module=ModuleID.CHARGING_PROFILES,
                    method="POST",
                    url=row.response_url,
                    body=result.model_dump(mode="json", exclude_none=True),
                    ordering_key=f"chargingprofiles:{row.id}",
                )
            ],
            now=now,
            coalesce=False,
        )
        log.info(
            "charging profile request %s #%s of session %s: %s (%s)",
            row.kind,
            row.id,
            row.session_id,
            result.result.value,
            detail,
        )
        if (
            row.kind in (RequestKind.SET.value, RequestKind.CLEAR.value)
            and result.result is ChargingProfileResultType.ACCEPTED
            and await _profile_accepted(session, row.session_id, row.partner_id)
        ):
            reason = "profile set" if row.kind == RequestKind.SET.value else "profile cleared"
            session.add(_update_row(row.session_id, row.partner_id, reason, now))
        return True

    # --- deadlines -----------------------------------------------------------------------

    async def recover(self) -> int:
        """At start-up (before requests are received): REJECTED for every request a previous
        run left without a result, since nothing carries it out any more; how many."""
        return await self._reject_open(due_only=False)

    async def expire(self) -> int:
        """REJECTED for every request past its deadline without a result and not being
        carried out here; how many. Run by the scheduler: the work is a task of this service,
        so that ``stop`` ends it (a run cut short by ``stop`` counts 0)."""
        if self._stopped:
            return 0
        task = asyncio.create_task(
            self._reject_open(due_only=True), name="ocpi-chargingprofile-deadlines"
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or current.cancelling() == 0):
                return 0
            raise

    async def _reject_open(self, *, due_only: bool) -> int:
        stmt = select(ChargingProfileRequestRow).where(
            col(ChargingProfileRequestRow.result).is_(None)
        )
        if due_only:
            stmt = stmt.where(col(ChargingProfileRequestRow.deadline_at) <= self._clock())
        async with self._db.read() as session:
            rows = (await session.exec(stmt.order_by(col(ChargingProfileRequestRow.id)))).all()
        detail = "no answer before the deadline" if due_only else "the CPO restarted"
        rejected = 0
        for row in rows:
            assert row.id is not None
            if row.id in self._in_flight:
                continue
            if await self._finish(row.id, rejected_result(RequestKind(row.kind)), detail):
                rejected += 1
        if rejected:
            log.warning("%d charging profile requests answered REJECTED: %s", rejected, detail)
        return rejected

    async def stop(self) -> None:
        """Cancel the requests being carried out, a deadline run and the ActiveChargingProfile
        updates (at shutdown); requests stay without a result and are answered REJECTED by
        ``recover`` at the next start, updates stay pending and are carried out after it.
        New requests are answered REJECTED from now on."""
        self._stopped = True
        tasks = list(self._tasks)
        if self._publisher is not None:
            tasks.append(self._publisher)
            self._publisher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def profile_id_of(self, session_id: str) -> int | None:
        """The OCPP ``chargingProfileId`` of the session's profile, if one was ever PUT."""
        async with self._db.read() as session:
            return await _profile_id(session, session_id)

    # --- ActiveChargingProfile updates to the sender -------------------------------------

    async def project(
        self, session: AsyncSession, events: Sequence[DomainEvent], _writes: Writes
    ) -> int:
        """Apply function of the chargingprofiles projector (in its transaction): an external
        limit set or cleared on an EVSE (``ocpp_evse_id`` ``None`` or 0: the whole charger)
        records an update of every session running there on which its eMSP had a profile
        accepted. The number of updates recorded."""
        recorded = 0
        now = self._clock()
        for event in events:
            if not isinstance(event, PROJECTED_EVENTS):
                continue
            rows = await _watched_sessions(session, event.charger_id, event.ocpp_evse_id)
            what = "cleared" if event.cleared else "set"
            for row in rows:
                assert row.partner_id is not None
                reason = f"{event.source} limit {what}"
                session.add(_update_row(row.id, row.partner_id, reason, now))
                log.info(
                    "%s: %s limit %s on EVSE %s, ActiveChargingProfile of session %s to follow",
                    event.charger_id,
                    event.source,
                    what,
                    event.ocpp_evse_id if event.ocpp_evse_id else "(all)",
                    row.id,
                )
                recorded += 1
        return recorded

    def start(self) -> None:
        """Start carrying out the recorded ActiveChargingProfile updates (those a previous
        run left too)."""
        if self._publisher is None and not self._stopped:
            self._publisher = asyncio.create_task(
                self._publish_loop(), name="ocpi-active-charging-profiles"
            )

    def wake(self) -> None:
        """Look for updates now (after a commit that recorded some)."""
        self._publish_wake.set()

    async def _publish_loop(self) -> None:
        failures = 0
        while not self._stopped:
            self._publish_wake.clear()
            try:
                delay = await self._dispatch_updates()
                failures = 0
            except Exception:
                failures += 1
                log.exception("ActiveChargingProfile updates failed (attempt %d)", failures)
                delay = min(30.0, 2.0**failures)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._publish_wake.wait(), delay)

    async def _dispatch_updates(self) -> float:
        """Start the due updates, one task per session; seconds until the next one is due."""
        now = self._clock()
        async with self._db.read() as read:
            stmt = select(
                ActiveProfileUpdateRow.session_id, func.min(ActiveProfileUpdateRow.next_attempt_at)
            ).where(col(ActiveProfileUpdateRow.done_at).is_(None))
            pending = (await read.exec(stmt.group_by(col(ActiveProfileUpdateRow.session_id)))).all()
        delay = 30.0  # polling, in case an update was recorded without a wake
        for session_id, due_at in pending:
            if session_id in self._publishing:
                continue
            wait_s = (due_at - now).total_seconds()
            if wait_s > 0:
                delay = min(delay, wait_s)
                continue
            self._publishing.add(session_id)
            task = asyncio.create_task(
                self._publish(session_id), name=f"ocpi-active-charging-profile-{session_id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return max(0.01, delay)

    async def _publish(self, session_id: str) -> None:
        """One session's updates; then look again (updates recorded meanwhile). A failure is
        logged by ``_done`` and the rows stay pending: the next poll tries them again."""
        try:
            await self._publish_session(session_id)
        finally:
            self._publishing.discard(session_id)
        self.wake()

    async def _publish_session(self, session_id: str) -> None:
        """Carry out the session's pending updates with one question to the charger."""
        async with self._db.read() as read:
            stmt = (
                select(ActiveProfileUpdateRow)
                .where(
                    ActiveProfileUpdateRow.session_id == session_id,
                    col(ActiveProfileUpdateRow.done_at).is_(None),
                )
                .order_by(col(ActiveProfileUpdateRow.id))
            )
            rows = (await read.exec(stmt)).all()
            charging = await read.get(SessionRow, session_id)
        if not rows:
            return
        newest = rows[-1]
        assert newest.id is not None
        upto, partner_id = newest.id, newest.partner_id
        if charging is None or charging.ended_at is not None:
            await self._close(session_id, upto, "SKIPPED", "the session has ended")
            return
        partner = await self._partners(partner_id)
        endpoint = (
            partner.endpoint_url(ModuleID.CHARGING_PROFILES, InterfaceRole.SENDER)
            if partner is not None and partner.registered
            else None
        )
        if endpoint is None:
            problem = f"partner {partner_id} offers no chargingprofiles SENDER endpoint"
            log.warning("ActiveChargingProfile of session %s not sent: %s", session_id, problem)
            await self._close(session_id, upto, "SKIPPED", problem)
            return
        command = GetCompositeSchedule(
            evse_id=charging.ocpp_evse_id, duration_s=self._policy.active_profile_duration_s
        )
        try:
            async with asyncio.timeout(self.timeout_s), self._serial(session_id):
                answer = await self._chargers.execute(
                    charging.charger_id, command, timeout_s=self._policy.call_timeout_s
                )
        except TimeoutError:
            answer = CommandAnswer(status=CommandStatus.TIMEOUT, detail="no answer in time")
        decision = rules.to_active_update(answer)
        match decision:
            case ActiveChargingProfile():
                await self._send(session_id, upto, partner_id, endpoint, decision, "composite")
            case rules.NoActiveProfile(detail=detail):
                maximum = await self._evse_maximum(charging)
                if maximum is None:
                    problem = f"no profile active ({detail}) and the EVSE maximum is unknown"
                    log.warning(
                        "ActiveChargingProfile of session %s not sent: %s", session_id, problem
                    )
                    await self._close(session_id, upto, "SKIPPED", problem)
                    return
                note = f"EVSE maximum, no profile active ({detail})"
                await self._send(session_id, upto, partner_id, endpoint, maximum, note)
            case rules.Unknowable(detail=detail, retry=retry):
                await self._failed(session_id, upto, newest.attempts + 1, detail, retry=retry)

    async def _evse_maximum(self, charging: SessionRow) -> ActiveChargingProfile | None:
        connector = await self._connector_of(charging)
        return None if connector is None else rules.to_evse_maximum(connector, self._clock())

    async def _connector_of(self, charging: SessionRow) -> Connector | None:
        if charging.location_id is None or charging.evse_uid is None:
            return None
        async with self._db.read() as read:
            stored = await load_location(read, location_key(charging.location_id))
        if stored is None:
            return None
        evse = next(
            (e for e in stored.location.evses or [] if e.uid.upper() == charging.evse_uid.upper()),
            None,
        )
        if evse is None:
            return None
        wanted = (charging.connector_id or "").upper()
        return next(
            (c for c in evse.connectors if c.id.upper() == wanted),
            evse.connectors[0] if len(evse.connectors) == 1 else None,
        )

    async def _send(
        self,
        session_id: str,
        upto: int,
        partner_id: int,
        endpoint: str,
        profile: ActiveChargingProfile,
        detail: str,
    ) -> None:
        """Close the session's pending updates up to ``upto`` and queue the PUT, together."""
        now = self._clock()
        url = f"{endpoint.rstrip('/')}/{quote(session_id, safe='')}"
        async with self._db.transaction() as uow:
            if not await _close_rows(uow.session, session_id, upto, "SENT", detail, now):
                return
            await enqueue(
                uow.session,
                [
                    PushRequest(
                        partner_id=partner_id,
                        module=ModuleID.CHARGING_PROFILES,
                        method="PUT",
                        url=url,
                        body=profile.model_dump(mode="json", exclude_none=True),
                        ordering_key=f"chargingprofiles-active:{session_id}",
                    )
                ],
                now=now,
                coalesce=False,
            )
        self._on_enqueued()
        log.info("ActiveChargingProfile of session %s queued for %s (%s)", session_id, url, detail)

    async def _close(
        self, session_id: str, upto: int, outcome: str, detail: str, *, attempts: int = 0
    ) -> None:
        async with self._db.transaction() as uow:
            await _close_rows(
                uow.session, session_id, upto, outcome, detail, self._clock(), attempts=attempts
            )

    async def _failed(
        self, session_id: str, upto: int, attempts: int, detail: str, *, retry: bool
    ) -> None:
        if not retry or attempts >= self._policy.update_max_attempts:
            log.warning(
                "ActiveChargingProfile of session %s given up after %d attempt(s): %s",
                session_id,
                attempts,
                detail,
            )
            await self._close(session_id, upto, "FAILED", detail, attempts=attempts)
            return
        delay_s = self._policy.update_retry_s * 2 ** (attempts - 1)
        now = self._clock()
        async with self._db.transaction() as uow:
            connection = await uow.session.connection()
            await connection.execute(
                update(ActiveProfileUpdateRow)
                .where(
                    col(ActiveProfileUpdateRow.session_id) == session_id,
                    col(ActiveProfileUpdateRow.id) <= upto,
                    col(ActiveProfileUpdateRow.done_at).is_(None),
                )
                .values(
                    attempts=attempts,
                    next_attempt_at=now + timedelta(seconds=delay_s),
                    detail=detail[:255],
                )
            )
        log.warning(
            "ActiveChargingProfile of session %s: attempt %d of %d failed, again in %g s: %s",
            session_id,
            attempts,
            self._policy.update_max_attempts,
            delay_s,
            detail,
        )


def _update_row(
    session_id: str, partner_id: int, reason: str, now: datetime
) -> ActiveProfileUpdateRow:
    return ActiveProfileUpdateRow(
        session_id=session_id,
        partner_id=partner_id,
        reason=reason[:64],
        created_at=now,
        next_attempt_at=now,
    )


async def _close_rows(
    session: AsyncSession,
    session_id: str,
    upto: int,
    outcome: str,
    detail: str,
    now: datetime,
    *,
    attempts: int = 0,
) -> bool:
    """Close the session's pending updates up to ``upto`` (``attempts``: the failed attempts
    of a given-up update); False when none was pending."""
    values: dict[str, Any] = {"done_at": now, "outcome": outcome, "detail": detail[:255]}
    if attempts:
        values["attempts"] = attempts
    connection = await session.connection()
    closed = await connection.execute(
        update(ActiveProfileUpdateRow)
        .where(
            col(ActiveProfileUpdateRow.session_id) == session_id,
            col(ActiveProfileUpdateRow.id) <= upto,
            col(ActiveProfileUpdateRow.done_at).is_(None),
        )
        .values(**values)
    )
    return bool(closed.rowcount)


def _accepted_set(session_id: Any, partner_id: Any) -> Exists:
    """A SET request of the partner on the session that the charger accepted."""
    return exists().where(
        col(ChargingProfileRequestRow.session_id) == session_id,
        col(ChargingProfileRequestRow.partner_id) == partner_id,
        col(ChargingProfileRequestRow.kind) == RequestKind.SET.value,
        col(ChargingProfileRequestRow.result) == ChargingProfileResultType.ACCEPTED.value,
    )


async def _profile_accepted(session: AsyncSession, session_id: str, partner_id: int) -> bool:
    stmt = select(_accepted_set(session_id, partner_id))
    return bool((await session.exec(stmt)).one())


async def _watched_sessions(
    session: AsyncSession, charger_id: str, ocpp_evse_id: int | None
) -> list[SessionRow]:
    """Running OCPI sessions on the charger (on that EVSE, unless ``None`` or 0) on which the
    owner eMSP had a profile accepted."""
    stmt = select(SessionRow).where(
        SessionRow.charger_id == charger_id,
        col(SessionRow.ended_at).is_(None),
        col(SessionRow.document).is_not(None),
        col(SessionRow.partner_id).is_not(None),
        _accepted_set(SessionRow.id, SessionRow.partner_id),
    )
    if ocpp_evse_id:
        stmt = stmt.where(SessionRow.ocpp_evse_id == ocpp_evse_id)
    return list((await session.exec(stmt.order_by(col(SessionRow.id)))).all())


async def _profile_id(session: AsyncSession, session_id: str) -> int | None:
    stmt = select(func.min(ChargingProfileRequestRow.profile_id)).where(
        ChargingProfileRequestRow.session_id == session_id,
        ChargingProfileRequestRow.kind == RequestKind.SET.value,
    )
    value: int | None = (await session.exec(stmt)).one()
    return value


def _result(kind: RequestKind, answer: CommandAnswer) -> tuple[Result, str]:
    detail = f"{answer.status.value}: {answer.detail}" if answer.detail else answer.status.value
    match kind:
        case RequestKind.SET:
            return rules.to_set_result(answer), detail
        case RequestKind.CLEAR:
            return rules.to_clear_result(answer), detail
        case RequestKind.ACTIVE:
            active, problem = rules.to_active_result(answer)
            return active, problem or detail


def _unknown_session(session_id: str) -> Reply:
    return Reply(
        response=ChargingProfileResponse(
            result=ChargingProfileResponseType.UNKNOWN_SESSION, timeout=0
        ),
        message=f"no active session {session_id!r} of this eMSP",
    )


def _charger_offline() -> Reply:
    return Reply(
        response=ChargingProfileResponse(result=ChargingProfileResponseType.REJECTED, timeout=0),
        message="the session's charger is not connected",
    )


def _no_transaction() -> Reply:
    return Reply(
        response=ChargingProfileResponse(result=ChargingProfileResponseType.REJECTED, timeout=0),
        message="the session has no transaction on the charger yet",
    )


def _shutting_down() -> Reply:
    return Reply(
        response=ChargingProfileResponse(result=ChargingProfileResponseType.REJECTED, timeout=0),
        message="the CPO is shutting down",
    )
