"""OCPI Commands, CPO as RECEIVER (reference 3.6, 4.7; design.md section 5).

An eMSP's command is checked and answered at once with a CommandResponse: ACCEPTED (with the
``timeout`` within which the CommandResult follows), REJECTED (charger offline, another party's
token, session or reservation, a completed session), UNKNOWN_SESSION, or status 2003 with
REJECTED for an unknown Location, EVSE or connector. An accepted command is stored, sent to the
charger through the ``ChargerCommands`` port, and the charger's answer becomes the
CommandResult POSTed to ``response_url`` through the outbox (``bridge.mapping.commands``). A
command still unanswered past its deadline (the process died meanwhile) gets TIMEOUT: the eMSP
is never left waiting.

The transaction a START_SESSION (or RESERVE_NOW) starts is recognised by ``grant_for``: the
2.0.1 ``remoteStartId`` is the command's id; 1.6 has none, so the charger, EVSE and idTag
within ``grant_window_s`` decide. Such a transaction is accepted without asking the eMSP again
and its Session carries the command's token and ``authorization_reference`` (AuthMethod
COMMAND), even when it starts after a TIMEOUT.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.mapping import commands as rules
from bridge.mapping.tokens import ocpp_kind
from bridge.ocpi.commands import (
    BODIES,
    CancelReservation,
    CommandResponse,
    CommandResponseType,
    CommandResultType,
    CommandType,
    ReserveNow,
    StartSession,
    StopSession,
    UnlockConnector,
)
from bridge.ocpi.locations import EVSE, Location, Status
from bridge.ocpi.models import validation_details
from bridge.ocpi.sessions import SessionStatus
from bridge.ocpi.tokens import Token
from bridge.ocpi.wire import OcpiStatus
from bridge.partners import Partner
from bridge.push.outbox import PushRequest
from bridge.sessions import CommandSession
from bridge.store.database import Database
from bridge.store.locations import Binding, LocationReader
from bridge.store.outbox import enqueue
from bridge.store.sessions import SessionReader
from bridge.store.tables import CommandRow, ReservationRow
from bridge.store.tokens import alias_for, dump_cdr_token
from csms.domain import commands as charger
from csms.domain.model import IdToken
from csms.domain.requests import AuthorizationRequest
from csms.ports import ChargerCommands

log = logging.getLogger(__name__)

# A charger's answer that leaves the driver's token usable at the charger.
_GRANTING = (None, CommandResultType.ACCEPTED.value, CommandResultType.TIMEOUT.value)
_STARTING = (CommandType.START_SESSION.value, CommandType.RESERVE_NOW.value)


class CommandRefused(Exception):
    """A command answered at once without reaching the charger."""

    def __init__(
        self,
        result: CommandResponseType,
        message: str,
        *,
        status_code: int = OcpiStatus.SUCCESS,
        http_status: int = 200,
    ) -> None:
        super().__init__(message)
        self.result = result
        self.status_code = status_code
        self.http_status = http_status


class InvalidCommand(ValueError):
    """The command's body is not a valid OCPI object (status 2001)."""


class CommandSessions(Protocol):
    """The Sessions the answers to commands open and end (``bridge.sessions``), written in the
    transaction that stores the answer."""

    async def open_for_command(
        self, session: AsyncSession, opening: CommandSession
    ) -> list[PushRequest]: ...

    async def cancel_reservation(
        self, session: AsyncSession, reservation_ref: int
    ) -> list[PushRequest]: ...


@dataclass(frozen=True, kw_only=True)
class CommandGrant:
    """A command's token, accepted at the charger it was sent to."""

    command_id: int
    partner_id: int
    token: Token
    authorization_reference: str | None


@dataclass(frozen=True, kw_only=True)
class _Target:
    location: Location
    evse: EVSE
    binding: Binding


@dataclass(frozen=True, kw_only=True)
class CommandPolicy:
    call_timeout_s: float = 30.0
    """How long the charger has to answer (the OCPP call timeout)."""
    margin_s: float = 10.0
    """Added to the call timeout for the CommandResponse ``timeout`` and the deadline."""
    grant_window_s: float = 900.0
    """How long after a START_SESSION / RESERVE_NOW its token is accepted at that charger."""


class CommandService:
    def __init__(
        self,
        db: Database,
        *,
        chargers: ChargerCommands,
        locations: LocationReader,
        sessions: SessionReader,
        opened: CommandSessions,
        policy: CommandPolicy,
        on_enqueued: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._chargers = chargers
        self._locations = locations
        self._sessions = sessions
        self._opened = opened
        self._policy = policy
        self._on_enqueued = on_enqueued
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None

    def start(self, *, interval_s: float) -> None:
        """Give TIMEOUT to overdue commands now and every ``interval_s`` seconds."""
        self._expiry = asyncio.create_task(self._expire_every(interval_s), name="ocpi-commands")

    async def _expire_every(self, interval_s: float) -> None:
        while True:
            try:
                await self.expire()
            except Exception:
                log.exception("giving overdue commands their TIMEOUT failed; retrying")
            await asyncio.sleep(interval_s)

    @property
    def timeout_s(self) -> int:
        return int(self._policy.call_timeout_s + self._policy.margin_s)

    # --- receiving -----------------------------------------------------------------------

    async def receive(self, partner: Partner, command: CommandType, body: Any) -> CommandResponse:
        """Check ``body``, answer at once; when ACCEPTED the charger is asked in the
        background. Raises ``InvalidCommand`` (2001) or ``CommandRefused``."""
        try:
            parsed = BODIES[command].model_validate(body)
        except ValidationError as exc:
            raise InvalidCommand(f"invalid {command.value}: {validation_details(exc)}") from exc
        match parsed:
            case StartSession():
                row, work = await self._start(partner, parsed)
            case StopSession():
                row, work = await self._stop(partner, parsed)
            case ReserveNow():
                row, work = await self._reserve(partner, parsed)
            case CancelReservation():
                row, work = await self._cancel(partner, parsed)
            case UnlockConnector():
                row, work = await self._unlock(partner, parsed)
        self._spawn(row, work)
        return CommandResponse(result=CommandResponseType.ACCEPTED, timeout=self.timeout_s)

    async def _start(self, partner: Partner, body: StartSession) -> tuple[CommandRow, _Work]:
        _own_token(partner, body.token)
        target = await self._target(body.location_id, body.evse_uid, body.connector_id)
        self._online(target.binding.charger_id)
        id_tag = _id_tag(body.token)
        row = await self._store(
            partner,
            CommandType.START_SESSION,
            body,
            target.binding,
            id_tag=id_tag,
            token=body.token,
            authorization_reference=body.authorization_reference,
        )
        refused = rules.refused_by_status(CommandType.START_SESSION, target.evse.status)
        assert row.id is not None
        return row, _Work(
            refused=refused,
            command=charger.StartCharging(
                id_token=IdToken(value=id_tag, kind=ocpp_kind(body.token.type)),
                remote_start_id=row.id,
                evse_id=target.binding.ocpp_evse_id,
            ),
            opens=_opening(
                row, partner, body.token, target.binding, body.connector_id, SessionStatus.PENDING
            ),
        )

    async def _stop(self, partner: Partner, body: StopSession) -> tuple[CommandRow, _Work]:
        session = await self._sessions.session(body.session_id)
        if session is None or session.document is None:
            raise CommandRefused(
                CommandResponseType.UNKNOWN_SESSION, f"unknown session {body.session_id!r}"
            )
        if session.partner_id != partner.id:
            raise CommandRefused(
                CommandResponseType.REJECTED, "the session belongs to another party"
            )
        if session.ended_at is not None:
            raise CommandRefused(CommandResponseType.REJECTED, "the session has already ended")
        if session.transaction_ref is None:
            raise CommandRefused(
                CommandResponseType.REJECTED,
                f"the session has not started at the charger ({session.status}): nothing to stop",
            )
        self._online(session.charger_id)
        row = await self._store(
            partner,
            CommandType.STOP_SESSION,
            body,
            None,
            charger_id=session.charger_id,
            ocpp_evse_id=session.ocpp_evse_id,
        )
        return row, _Work(command=charger.StopCharging(transaction_ref=session.transaction_ref))

    async def _reserve(self, partner: Partner, body: ReserveNow) -> tuple[CommandRow, _Work]:
        _own_token(partner, body.token)
        if body.expiry_date <= self._clock():
            raise InvalidCommand("expiry_date is in the past")
        target = await self._target(body.location_id, body.evse_uid, None)
        self._online(target.binding.charger_id)
        id_tag = _id_tag(body.token)
        row = await self._store(
            partner,
            CommandType.RESERVE_NOW,
            body,
            target.binding if body.evse_uid else None,
            charger_id=target.binding.charger_id,
            id_tag=id_tag,
            token=body.token,
            authorization_reference=body.authorization_reference,
        )
        assert row.id is not None
        reservation, replaces = await self._reservation_for(partner, body, target, row.id)
        refused = rules.refused_by_status(CommandType.RESERVE_NOW, target.evse.status)
        opening = _opening(
            row, partner, body.token, target.binding, None, SessionStatus.RESERVATION
        )
        return row, _Work(
            refused=refused if body.evse_uid else None,
            command=charger.Reserve(
                reservation_id=reservation,
                expires_at=body.expiry_date,
                id_token=IdToken(value=id_tag, kind=ocpp_kind(body.token.type)),
                evse_id=target.binding.ocpp_evse_id if body.evse_uid else None,
                group_id=body.token.group_id,
            ),
            opens=dataclasses.replace(
                opening, at_evse=body.evse_uid is not None, reservation_ref=reservation
            ),
            reservation_ref=reservation,
            replaces=replaces,
        )

    async def _cancel(self, partner: Partner, body: CancelReservation) -> tuple[CommandRow, _Work]:
        reservation = await self._reservation(partner, body.reservation_id)
        if reservation is None or reservation.cancelled:
            row = await self._store(partner, CommandType.CANCEL_RESERVATION, body, None)
            return row, _Work(refused=CommandResultType.UNKNOWN_RESERVATION)
        self._online(reservation.charger_id)
        assert reservation.id is not None
        row = await self._store(
            partner,
            CommandType.CANCEL_RESERVATION,
            body,
            None,
            charger_id=reservation.charger_id,
            ocpp_evse_id=reservation.ocpp_evse_id,
        )
        return row, _Work(
            command=charger.CancelReservation(reservation_id=reservation.id),
            reservation_ref=reservation.id,
        )

    async def _unlock(self, partner: Partner, body: UnlockConnector) -> tuple[CommandRow, _Work]:
        target = await self._target(body.location_id, body.evse_uid, body.connector_id)
        connector = _ocpp_connector(target.binding, body.connector_id)
        self._online(target.binding.charger_id)
        row = await self._store(partner, CommandType.UNLOCK_CONNECTOR, body, target.binding)
        return row, _Work(
            command=charger.Unlock(evse_id=target.binding.ocpp_evse_id, connector_id=connector)
        )

    # --- targets -------------------------------------------------------------------------

    async def _target(
        self, location_id: str, evse_uid: str | None, connector_id: str | None
    ) -> _Target:
        location = await self._locations.published(location_id)
        if location is None:
            raise _unknown(f"unknown location {location_id!r}")
        bindings = {b.evse_uid: b for b in await self._locations.bindings_of(location.id)}
        evses = [e for e in location.evses or () if e.uid.upper() in bindings]
        if evse_uid is not None:
            evses = [e for e in evses if e.uid.upper() == evse_uid.upper()]
            if not evses:
                raise _unknown(f"unknown EVSE {evse_uid!r} at location {location_id!r}")
        if not evses:
            raise _unknown(f"location {location_id!r} has no EVSE that takes commands")
        # Without an EVSE uid the CPO chooses: the first available EVSE, else the first one.
        evse = next((e for e in evses if e.status is Status.AVAILABLE), evses[0])
        if connector_id is not None and not any(
            c.id.upper() == connector_id.upper() for c in evse.connectors
        ):
            raise _unknown(f"unknown connector {connector_id!r} on EVSE {evse.uid!r}")
        return _Target(location=location, evse=evse, binding=bindings[evse.uid.upper()])

    def _online(self, charger_id: str) -> None:
        if not self._chargers.is_connected(charger_id):
            raise CommandRefused(CommandResponseType.REJECTED, "the charger is offline")

    # --- reservations --------------------------------------------------------------------

    async def _reservation(self, partner: Partner, reservation_id: str) -> ReservationRow | None:
        async with self._db.read() as session:
            stmt = select(ReservationRow).where(
                ReservationRow.partner_id == partner.id,
                ReservationRow.reservation_id == reservation_id.upper(),
            )
            return (await session.exec(stmt)).first()

    async def _reservation_for(
        self, partner: Partner, body: ReserveNow, target: _Target, command_id: int
    ) -> tuple[int, bool]:
        """The OCPP reservation id: the same as before when the eMSP replaces its reservation
        at the same Location (reference 3.6), else a new CPO-unique one; and whether it
        replaces a reservation still held."""
        async with self._db.transaction() as uow:
            stmt = select(ReservationRow).where(
                ReservationRow.partner_id == partner.id,
                ReservationRow.reservation_id == body.reservation_id.upper(),
            )
            row = (await uow.session.exec(stmt)).first()
            if row is not None and row.location_id.upper() != target.location.id.upper():
                await uow.session.delete(row)
                await uow.session.flush()
                row = None
            replaces = row is not None and not row.cancelled
            row = row or ReservationRow(
                partner_id=partner.id,
                reservation_id=body.reservation_id.upper(),
                charger_id=target.binding.charger_id,
                location_id=target.location.id,
                expires_at=body.expiry_date,
                command_id=command_id,
            )
            row.charger_id = target.binding.charger_id
            row.ocpp_evse_id = target.binding.ocpp_evse_id if body.evse_uid else None
            row.expires_at = body.expiry_date
            row.command_id = command_id
            row.cancelled = False
            uow.session.add(row)
            await uow.session.flush()
            assert row.id is not None
            return row.id, replaces

    # --- storing and answering -----------------------------------------------------------

    async def _store(
        self,
        partner: Partner,
        command: CommandType,
        body: Any,
        binding: Binding | None,
        *,
        charger_id: str | None = None,
        ocpp_evse_id: int | None = None,
        id_tag: str | None = None,
        token: Token | None = None,
        authorization_reference: str | None = None,
    ) -> CommandRow:
        now = self._clock()
        row = CommandRow(
            partner_id=partner.id,
            command=command.value,
            request=body.model_dump_json(exclude_none=True),
            response_url=body.response_url,
            charger_id=binding.charger_id if binding else charger_id,
            ocpp_evse_id=binding.ocpp_evse_id if binding else ocpp_evse_id,
            id_tag=id_tag,
            token=token.model_dump_json(exclude_none=True) if token else None,
            authorization_reference=authorization_reference,
            created_at=now,
            deadline_at=now + timedelta(seconds=self.timeout_s),
        )
        async with self._db.transaction() as uow:
            uow.session.add(row)
            await uow.session.flush()
            await uow.session.refresh(row)
        return row

    def _spawn(self, row: CommandRow, work: _Work) -> None:
        task = asyncio.create_task(self._run(row, work), name=f"ocpi-command-{row.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("command task %s failed", task.get_name(), exc_info=task.exception())

    async def _run(self, row: CommandRow, work: _Work) -> None:
        kind = CommandType(row.command)
        if work.refused is not None or work.command is None:
            result = work.refused or CommandResultType.FAILED
            await self._finish(row, result, f"refused by the CPO: {result.value}", work=work)
            return
        assert row.charger_id is not None
        answer = await self._chargers.execute(
            row.charger_id, work.command, timeout_s=self._policy.call_timeout_s
        )
        result = rules.command_result(kind, answer.status)
        await self._finish(row, result, answer.detail, work=work, running=answer.transaction_ref)

    async def _finish(
        self,
        row: CommandRow,
        result: CommandResultType,
        detail: str,
        *,
        work: _Work | None = None,
        running: str | None = None,
    ) -> bool:
        """Store the result, settle what it changes (reservations, the command's session)
        and queue the CommandResult, once (False when it had one). ``running``: the
        transaction a 2.0.1 start found already running (cable first)."""
        async with self._db.transaction() as uow:
            stored = await uow.session.get(CommandRow, row.id)
            if stored is None or stored.result is not None:
                return False
            assert stored.id is not None
            stored.result = result.value
            stored.detail = detail[:255]
            stored.answered_at = self._clock()
            uow.session.add(stored)
            requests = [
                rules.result_push(
                    command_id=stored.id,
                    partner_id=stored.partner_id,
                    response_url=stored.response_url,
                    result=result,
                    detail=detail,
                )
            ]
            if work is not None:
                requests += await self._settle(uow.session, stored, result, work, running)
            await enqueue(uow.session, requests, now=self._clock(), coalesce=False)
        log.info("command %s #%s: %s (%s)", row.command, row.id, result.value, detail)
        self._on_enqueued()
        return True

    async def _settle(
        self,
        session: AsyncSession,
        row: CommandRow,
        result: CommandResultType,
        work: _Work,
        running: str | None,
    ) -> list[PushRequest]:
        accepted = result is CommandResultType.ACCEPTED
        match CommandType(row.command):
            case CommandType.START_SESSION if accepted and work.opens and running is None:
                return await self._opened.open_for_command(session, work.opens)
            case CommandType.RESERVE_NOW if accepted and work.opens:
                return await self._opened.open_for_command(session, work.opens)
            case CommandType.RESERVE_NOW if work.reservation_ref and not work.replaces:
                await _release(session, work.reservation_ref)  # never held
            case CommandType.CANCEL_RESERVATION if accepted and work.reservation_ref:
                await _release(session, work.reservation_ref)
                return await self._opened.cancel_reservation(session, work.reservation_ref)
            case _:
                pass
        return []

    async def expire(self) -> int:
        """TIMEOUT for every command past its deadline without a result (the process died
        while waiting, or the charger never answered); how many."""
        now = self._clock()
        async with self._db.read() as session:
            stmt = select(CommandRow).where(
                col(CommandRow.result).is_(None), col(CommandRow.deadline_at) < now
            )
            rows = (await session.exec(stmt)).all()
        expired = 0
        for row in rows:
            expired += await self._finish(row, CommandResultType.TIMEOUT, "no answer in time")
        return expired

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._expiry] if self._expiry else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._expiry = None

    # --- the transactions commands start -------------------------------------------------

    async def grant_for(self, request: AuthorizationRequest) -> CommandGrant | None:
        """The START_SESSION / RESERVE_NOW this token presentation follows, if any: by the
        2.0.1 ``remoteStartId``, else by charger, EVSE and idTag within the window, or a
        reservation of that token at that charger still held."""
        since = self._clock() - timedelta(seconds=self._policy.grant_window_s)
        async with self._db.read() as session:
            stmt = select(CommandRow).where(
                CommandRow.charger_id == request.charger_id,
                col(CommandRow.command).in_(_STARTING),
                col(CommandRow.result).in_(_GRANTING) | col(CommandRow.result).is_(None),
            )
            if request.remote_start_id is not None:
                by_id = (
                    await session.exec(stmt.where(CommandRow.id == request.remote_start_id))
                ).first()
                if by_id is not None and by_id.id_tag == request.id_token.value:
                    return _grant(by_id)
            stmt = stmt.where(
                CommandRow.id_tag == request.id_token.value, col(CommandRow.created_at) >= since
            ).order_by(col(CommandRow.created_at).desc())
            evse = request.evse.ocpp_evse_id if request.evse else None
            for row in (await session.exec(stmt)).all():
                if row.ocpp_evse_id is None or evse in (None, row.ocpp_evse_id):
                    return _grant(row)
            # A reservation holds its token at its charger until it expires, however early
            # it was made.
            held = (
                select(CommandRow, ReservationRow)
                .join(ReservationRow, col(ReservationRow.command_id) == col(CommandRow.id))
                .where(
                    ReservationRow.charger_id == request.charger_id,
                    col(ReservationRow.cancelled).is_(False),
                    col(ReservationRow.expires_at) >= self._clock(),
                    CommandRow.id_tag == request.id_token.value,
                    col(CommandRow.result).in_(_GRANTING) | col(CommandRow.result).is_(None),
                )
            )
            for row, reservation in (await session.exec(held)).all():
                if reservation.ocpp_evse_id is None or evse in (None, reservation.ocpp_evse_id):
                    return _grant(row)
        return None


@dataclass(frozen=True, kw_only=True)
class _Work:
    command: charger.ChargerCommand | None = None
    refused: CommandResultType | None = None
    """Answered without asking the charger (e.g. the EVSE is occupied)."""
    opens: CommandSession | None = None
    """The session an accepted START_SESSION / RESERVE_NOW makes."""
    reservation_ref: int | None = None
    """The OCPP reservation id a RESERVE_NOW / CANCEL_RESERVATION is about."""
    replaces: bool = False
    """The RESERVE_NOW replaces a reservation still held (kept if the charger refuses)."""


async def _release(session: AsyncSession, reservation_ref: int) -> None:
    reservation = await session.get(ReservationRow, reservation_ref)
    if reservation is not None:
        reservation.cancelled = True
        session.add(reservation)


def _opening(
    row: CommandRow,
    partner: Partner,
    token: Token,
    binding: Binding,
    connector_id: str | None,
    status: SessionStatus,
) -> CommandSession:
    assert row.id is not None
    return CommandSession(
        command_id=row.id,
        partner_id=partner.id,
        status=status,
        cdr_token=dump_cdr_token(token),
        authorization_reference=row.authorization_reference,
        charger_id=binding.charger_id,
        ocpp_evse_id=binding.ocpp_evse_id,
        ocpp_connector_id=_ocpp_connector(binding, connector_id),
    )


def _ocpp_connector(binding: Binding, connector_id: str | None) -> int:
    """The OCPP connector of an OCPI connector of the EVSE (its first one when not named)."""
    for ocpi, ocpp in binding.connectors:
        if connector_id is None or ocpi.upper() == connector_id.upper():
            return ocpp
    return 1


def _grant(row: CommandRow) -> CommandGrant:
    assert row.id is not None
    assert row.token is not None
    return CommandGrant(
        command_id=row.id,
        partner_id=row.partner_id,
        token=Token.model_validate_json(row.token),
        authorization_reference=row.authorization_reference,
    )


def _own_token(partner: Partner, token: Token) -> None:
    if not partner.has_party(token.country_code, token.party_id):
        raise CommandRefused(
            CommandResponseType.REJECTED,
            f"token of {token.country_code}/{token.party_id}: an eMSP may only use its own",
        )


def _id_tag(token: Token) -> str:
    """The token's uid, or (longer than an OCPP 1.6 idTag) its stable short alias."""
    if rules.fits_id_tag(token.uid):
        return token.uid
    return alias_for(token.country_code, token.party_id, token.uid, token.type.value)


def _unknown(message: str) -> CommandRefused:
    return CommandRefused(
        CommandResponseType.REJECTED,
        message,
        status_code=OcpiStatus.UNKNOWN_LOCATION,
        http_status=404,
    )


GrantLookup = Callable[[AuthorizationRequest], Awaitable[CommandGrant | None]]
