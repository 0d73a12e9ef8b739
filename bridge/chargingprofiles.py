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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.mapping import chargingprofiles as rules
from bridge.ocpi.chargingprofiles import (
    ActiveChargingProfileResult,
    ChargingProfileResponse,
    ChargingProfileResponseType,
    ChargingProfileResult,
    ChargingProfileResultType,
    ClearProfileResult,
    SetChargingProfile,
)
from bridge.ocpi.models import ModuleID
from bridge.push.outbox import PushRequest
from bridge.store.database import Database
from bridge.store.outbox import enqueue
from bridge.store.sessions import SessionReader
from bridge.store.tables import ChargingProfileRequestRow, SessionRow
from csms.domain.commands import (
    ChargerCommand,
    ClearChargingLimit,
    CommandAnswer,
    GetCompositeSchedule,
    SetChargingLimit,
)
from csms.ports import ChargerCommands

log = logging.getLogger(__name__)

MAX_DURATION_S = 2**31 - 1
"""The largest ``duration`` an OCPP integer carries."""


class RequestKind(StrEnum):
    SET = "SET"  # PUT -> ChargingProfileResult
    ACTIVE = "ACTIVE"  # GET -> ActiveChargingProfileResult
    CLEAR = "CLEAR"  # DELETE -> ClearProfileResult


Result = ChargingProfileResult | ActiveChargingProfileResult | ClearProfileResult


@dataclass(frozen=True, kw_only=True)
class ChargingProfilePolicy:
    call_timeout_s: float = 30.0
    """How long the charger has to answer (the OCPP call timeout)."""
    margin_s: float = 10.0
    """Added to the call timeout for the response's ``timeout`` and the result's deadline."""
    stack_level: int = 50
    """``stackLevel`` of the eMSPs' profiles: above the CPO's own ``TxProfile`` levels."""


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
        policy: ChargingProfilePolicy,
        on_enqueued: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._chargers = chargers
        self._sessions = sessions
        self._policy = policy
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[int] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._stopped = False

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
            return Reply(
                response=ChargingProfileResponse(
                    result=ChargingProfileResponseType.REJECTED, timeout=0
                ),
                message=f"session {session.id!r} has no transaction yet ({session.status})",
            )
        async with self._db.transaction() as uow:
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
        async with self._db.transaction() as uow:
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
        async with self._db.transaction() as uow:
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
        """Cancel the requests being carried out and a deadline run (at shutdown); requests
        stay without a result and are answered REJECTED by ``recover`` at the next start.
        New requests are answered REJECTED from now on."""
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def profile_id_of(self, session_id: str) -> int | None:
        """The OCPP ``chargingProfileId`` of the session's profile, if one was ever PUT."""
        async with self._db.read() as session:
            return await _profile_id(session, session_id)


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


def _shutting_down() -> Reply:
    return Reply(
        response=ChargingProfileResponse(result=ChargingProfileResponseType.REJECTED, timeout=0),
        message="the CPO is shutting down",
    )
