"""OCPI Sessions and CDRs projected from the central system's transaction events (reference
4.3-4.5, design.md section 5).

A session is created with its transaction and becomes ACTIVE, and is PUT to the eMSP that owns
the token, once its token is authorized and its EVSE is on a Location (a 2.0.1 transaction
started by the cable waits for the token; until then it is internal). Progress goes out as
PATCHes (``kwh``, the periods closed since the last PATCH, ``total_cost``), at most one per
``patch_interval_s`` of charger time per session; the end as a PUT of the whole COMPLETED
Session followed, on the same ordering key, by the POST of its one CDR. A transaction whose
token was refused, or that ends before it was authorized, is INVALID: never pushed, never
billed.

Everything derives from events replayed in order from a stored offset, in the projector's
transaction: a restart, a repeated stop or an outage of the eMSP cannot produce a second CDR
(its id is the session id, and it is created once, when the session completes).

Sessions of commands (reference 4.3, 4.7): an eMSP's START_SESSION the charger accepted makes a
PENDING session at once, and a RESERVE_NOW a RESERVATION session (its reserved time priced by
the tariff's reservation elements); both are PUT to that eMSP. The transaction the command's
token starts (or that names the reservation) takes the session over: same id, ACTIVE, and a
reservation's time stays in its periods. A PENDING session no transaction followed within
``pending_timeout_s`` becomes INVALID. A reservation ends COMPLETED when it expires (2.0.1
ReservationStatusUpdate ``Expired``; 1.6 Reserved -> Available at its expiry; else the sweep)
or when its eMSP cancels it, with a CDR only if its tariff bills the reserved time; removed by
the charger (2.0.1 ``Removed``) it ends INVALID and the eMSP gets CANCELED_RESERVATION.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import inspect
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.identity import CpoIdentity
from bridge.mapping import sessions as mapping
from bridge.mapping.commands import result_push
from bridge.mapping.tariffs import ChargeState, select_tariff
from bridge.ocpi.cdrs import NOT_AVAILABLE, CdrLocation
from bridge.ocpi.commands import CommandResultType, CommandType
from bridge.ocpi.locations import Location, TokenType
from bridge.ocpi.models import ModuleID
from bridge.ocpi.sessions import AuthMethod, CdrToken, SessionStatus
from bridge.ocpi.tariffs import Tariff
from bridge.push.outbox import FullObject, PushRequest
from bridge.store import locations as location_store
from bridge.store.database import Writes
from bridge.store.outbox import enqueue
from bridge.store.sessions import (
    SessionView,
    add_points,
    defer_timelines,
    delete_points,
    load_timeline,
    points_of,
    running_session_at,
    session_of_transaction,
    session_views_by_ids,
    sessions_by_ids,
    store_timeline,
    store_timelines,
)
from bridge.store.tables import (
    AuthorizationRow,
    CdrRow,
    CommandRow,
    ReservationRow,
    SessionRow,
)
from csms.domain.events import (
    ChargingStateChanged,
    ConnectorStatusChanged,
    DomainEvent,
    MeterValuesSampled,
    ReservationStatusChanged,
    TransactionAuthorized,
    TransactionEnded,
    TransactionStarted,
)
from csms.domain.model import (
    AuthorizationStatus,
    ConnectorStatus,
    EvseRef,
    IdToken,
    MeterReading,
)

log = logging.getLogger(__name__)

FALLBACK_PREFIX = "sessions"
_NAMESPACE = uuid.UUID("5b0e7c9e-64a4-4c51-9e52-0b1d9a1f3c21")

TariffLookup = Callable[[AsyncSession, Sequence[str]], Awaitable[list[Tariff]]]


TIMELINES_KEPT = 1000
"""Running sessions whose decoded timeline the projection keeps between batches (a few
hundred kB each for a day-long session with a meter value a minute; a typical one far less)."""


def session_id_of(charger_id: str, transaction_ref: str) -> str:
    """Our Session (and CDR) id: stable for a charger's transaction, unique CPO-wide, 36
    characters (never the raw OCPP transaction id: reference 4.3, pitfall 12)."""
    return str(uuid.uuid5(_NAMESPACE, f"{charger_id}\n{transaction_ref}"))


@dataclass(frozen=True, kw_only=True)
class SessionPolicy:
    currency: str = "EUR"
    """Currency of sessions whose connector has no tariff."""
    patch_interval_s: float = 30.0
    """At most one progress PATCH per session per window of this many seconds (charger time;
    each session's windows have a phase of their own: see ``mapping.patch_due``)."""
    pending_timeout_s: float = 900.0
    """A START_SESSION's PENDING session without a transaction this long becomes INVALID."""
    reservation_grace_s: float = 60.0
    """How long past its expiry a reservation the charger has not reported on is ended."""


@dataclass(frozen=True, kw_only=True)
class CommandSession:
    """The session an eMSP's accepted START_SESSION (PENDING) or RESERVE_NOW (RESERVATION)
    makes before any transaction exists."""

    command_id: int
    partner_id: int
    status: SessionStatus
    cdr_token: str
    """The command's token as CdrToken JSON."""
    authorization_reference: str | None
    charger_id: str
    ocpp_evse_id: int
    ocpp_connector_id: int
    at_evse: bool = True
    """False for a reservation of the whole Location: ``evse_uid`` and ``connector_id`` are
    ``#NA`` (the EVSE above only prices it)."""
    reservation_ref: int | None = None
    """The OCPP reservation id (``ReservationRow.id``) of a RESERVE_NOW."""


class SessionService:
    def __init__(
        self,
        *,
        identity: Callable[[], CpoIdentity],
        tariffs: TariffLookup,
        policy: SessionPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._identity = identity
        self._tariffs = tariffs
        self._policy = policy
        self._clock = clock
        self._timelines = _Timelines(TIMELINES_KEPT)
        self._session_ids = _SessionIds(TIMELINES_KEPT)

    # --- projection ----------------------------------------------------------------------

    async def project(
        self, session: AsyncSession, events: Sequence[DomainEvent], writes: Writes
    ) -> int:
        """Apply transaction events in the projector's transaction; outbox rows enqueued. The
        timelines changed since the batch's last other step are stored through ``writes``."""
        requests: list[PushRequest] = []
        batch = _Batch(session, self._timelines, self._session_ids)
        await batch.load(events, self._row_wanted)
        for event in events:
            match event:
                case TransactionStarted():
                    await batch.write_back()
                    await self._started(session, event, requests)
                    batch.forget(event.charger_id, event.transaction_ref)
                case TransactionAuthorized():
                    await batch.write_back()
                    await self._authorized(session, event, requests)
                    batch.forget(event.charger_id, event.transaction_ref)  # merged, maybe
                case ChargingStateChanged():
                    row = await batch.row_of(event.charger_id, event.transaction_ref)
                    if row is not None:
                        state = mapping.state_of_charging_state(event.state)
                        await self._progress(
                            session, batch, row, event, requests, state=state, evse=event.evse
                        )
                case ReservationStatusChanged():
                    await batch.write_back()
                    await self._reservation_status(session, event, requests)
                case ConnectorStatusChanged():
                    if (
                        event.previous_status is ConnectorStatus.RESERVED
                        and event.status is ConnectorStatus.AVAILABLE
                    ):
                        await batch.write_back()
                        await self._reservation_released(session, event, requests)
                    shown = mapping.state_of_status(event.status)
                    if shown is not None and event.evse.ocpp_evse_id:
                        row = await running_session_at(
                            session, event.charger_id, event.evse.ocpp_evse_id
                        )
                        if row is not None:
                            await self._progress(session, batch, row, event, requests, state=shown)
                case MeterValuesSampled() if event.transaction_ref is not None:
                    row = await batch.row_of(event.charger_id, event.transaction_ref)
                    if row is not None:
                        await self._progress(
                            session,
                            batch,
                            row,
                            event,
                            requests,
                            readings=event.readings,
                            energy_wh=event.energy_wh,
                            evse=event.evse,
                        )
                case TransactionEnded():
                    await batch.write_back()
                    await self._ended(session, event, requests)
                case _:
                    pass
        batch.write_back_later(writes)  # nothing in this transaction reads them any more
        await enqueue(session, requests, now=self._clock(), coalesce=False)
        batch.keep()
        return len(requests)

    async def _started(
        self, session: AsyncSession, event: TransactionStarted, requests: list[PushRequest]
    ) -> None:
        if await session_of_transaction(session, event.charger_id, event.transaction_ref):
            return
        now = self._clock()
        decision = await _decision(session, event.authorization_ref)
        row = await self._waiting_for(session, event, decision)
        if row is not None:
            usage = await load_timeline(session, row)
            await self._take_over(
                session, row, event.transaction_ref, event.evse, event.occurred_at
            )
            row.meter_start_wh = event.meter_start_wh
        else:
            row = SessionRow(
                id=session_id_of(event.charger_id, event.transaction_ref),
                charger_id=event.charger_id,
                transaction_ref=event.transaction_ref,
                ocpp_evse_id=event.evse.ocpp_evse_id,
                ocpp_connector_id=event.evse.connector_id,
                status=SessionStatus.PENDING.value,
                command_id=decision.command_id if decision is not None else None,
                currency=self._policy.currency,
                meter_start_wh=event.meter_start_wh,
                started_at=event.occurred_at,
                last_updated=now,
                created_at=now,
            )
            usage = mapping.Usage()
        usage.change_state(event.occurred_at, ChargeState.CHARGING)
        self._read(row, usage, event.readings, None)
        await store_timeline(session, row, usage)
        session.add(row)
        if event.id_token is not None:
            await self._take_authorization(
                session, row, event.id_token, event.authorization, event.authorization_ref
            )
        await self._place(session, row, event.evse)
        await self._activate(session, row, requests)

    async def _authorized(
        self, session: AsyncSession, event: TransactionAuthorized, requests: list[PushRequest]
    ) -> None:
        row = await session_of_transaction(session, event.charger_id, event.transaction_ref)
        if row is None or row.status != SessionStatus.PENDING.value:
            return
        decision = await _decision(session, event.authorization_ref)
        waiting = None
        if event.authorization is AuthorizationStatus.ACCEPTED and decision is not None:
            waiting = await _waiting_of_command(session, decision.command_id)
        if waiting is not None and waiting.id != row.id:
            # Cable first, then the token of a START_SESSION or reservation: the transaction
            # (never shown so far) moves into the session the command made.
            row = await self._merge(session, row, waiting, event.occurred_at)
        else:
            # The session starts when the driver is known (reference 4.3, 2.0.1 table).
            row.started_at = max(row.started_at, event.occurred_at)
        await self._take_authorization(
            session, row, event.id_token, event.authorization, event.authorization_ref
        )
        await self._place(session, row, event.evse)
        await self._activate(session, row, requests)

    async def _progress(
        self,
        session: AsyncSession,
        batch: _Batch,
        found: SessionRow | SessionView,
        event: DomainEvent,
        requests: list[PushRequest],
        *,
        state: ChargeState | None = None,
        readings: tuple[MeterReading, ...] = (),
        energy_wh: int | None = None,
        evse: EvseRef | None = None,
    ) -> None:
        if found.ended_at is not None:
            return
        row = await batch.promote(found) if _beyond_timeline(found) else found
        usage = await batch.usage_of(row)
        changed = False
        if state is not None:
            changed = usage.change_state(event.occurred_at, state)
        if readings:
            changed = self._read(row, usage, readings, energy_wh) or changed
        if not changed:
            return
        batch.changed(row)
        if isinstance(row, SessionRow) and row not in session:
            session.add(row)
        if isinstance(row, SessionRow) and row.status == SessionStatus.PENDING.value:
            if evse is not None:
                await batch.write_back()  # _activate reads row.usage
                await self._place(session, row, evse, quiet=True)
                await self._activate(session, row, requests)
            return
        if row.status != SessionStatus.ACTIVE.value:
            return
        if not self._patch_due(row, event.occurred_at):
            # Pricing the whole timeline again is the costly part of a meter value: the stored
            # document (what GET shows) follows the PATCHes, at most one interval behind.
            return
        self._patch(await batch.promote(row), usage, event.occurred_at, requests)

    def _patch_due(self, found: SessionRow | SessionView, at: datetime) -> bool:
        interval = timedelta(seconds=self._policy.patch_interval_s)
        return found.last_push_at is None or mapping.patch_due(
            found.id, found.last_push_at, at, interval
        )

    def _row_wanted(self, view: SessionView, at: datetime) -> bool:
        """Whether a meter value or charging state at ``at`` may need more of its session
        than its view (see ``_progress``): its row is then loaded with the batch's views."""
        return view.ended_at is None and (_beyond_timeline(view) or self._patch_due(view, at))

    async def _ended(
        self, session: AsyncSession, event: TransactionEnded, requests: list[PushRequest]
    ) -> None:
        row = await session_of_transaction(session, event.charger_id, event.transaction_ref)
        if row is None or row.ended_at is not None:
            return
        usage = await load_timeline(session, row)
        self._read(row, usage, event.readings, None)
        if row.meter_start_wh is not None and event.meter_stop_wh is not None:
            usage.add_point(event.occurred_at, event.meter_stop_wh - row.meter_start_wh, None, None)
        elif event.energy_wh:
            usage.add_point(event.occurred_at, event.energy_wh, None, None)
        row.ended_at = max(event.occurred_at, row.started_at)
        row.stop_reason = event.reason[:32]
        await store_timeline(session, row, usage)
        session.add(row)
        if row.status == SessionStatus.PENDING.value:
            await self._place(session, row, event.evse, quiet=True)
            if row.authorized and row.location_id is not None:
                await self._activate(session, row, requests)
        if row.status != SessionStatus.ACTIVE.value:
            if row.status == SessionStatus.PENDING.value:
                row.status = SessionStatus.INVALID.value
                log.info(
                    "session %s of %s/%s ended before it was authorized and placed: INVALID",
                    row.id,
                    row.charger_id,
                    row.transaction_ref,
                )
            return
        row.status = SessionStatus.COMPLETED.value
        self._put(row, usage, requests)
        await self._make_cdr(session, row, usage, requests)

    # --- sessions of commands ------------------------------------------------------------

    async def open_for_command(
        self, session: AsyncSession, opening: CommandSession
    ) -> list[PushRequest]:
        """In the transaction that stores the charger's acceptance of a START_SESSION or
        RESERVE_NOW: its PENDING or RESERVATION session, PUT to the eMSP (a replaced
        reservation's session is updated). Nothing when the transaction came first."""
        requests: list[PushRequest] = []
        now = self._clock()
        row: SessionRow | None = None
        if opening.reservation_ref is not None:
            row = await _waiting_reservation(session, opening.reservation_ref)
        elif await _session_of_command(session, opening.command_id) is not None:
            return requests  # the transaction started, and made the session, before the answer
        if row is None:
            usage = mapping.Usage()
            if opening.status is SessionStatus.RESERVATION:
                usage.change_state(now, ChargeState.RESERVED)
            row = SessionRow(
                id=str(uuid.uuid5(_NAMESPACE, f"command\n{opening.command_id}")),
                charger_id=opening.charger_id,
                ocpp_evse_id=opening.ocpp_evse_id,
                ocpp_connector_id=opening.ocpp_connector_id,
                status=opening.status.value,
                reservation_ref=opening.reservation_ref,
                currency=self._policy.currency,
                started_at=now,
                usage=usage.to_json(),
                last_updated=now,
                created_at=now,
            )
        elif (row.charger_id, row.ocpp_evse_id, row.evse_uid == NOT_AVAILABLE) != (
            opening.charger_id,
            opening.ocpp_evse_id,
            not opening.at_evse,
        ):
            self._unplace(row)  # the replacement reserves elsewhere at the Location
        row.charger_id = opening.charger_id
        row.ocpp_evse_id, row.ocpp_connector_id = opening.ocpp_evse_id, opening.ocpp_connector_id
        row.command_id = opening.command_id
        row.partner_id = opening.partner_id
        row.cdr_token = opening.cdr_token
        row.auth_method = AuthMethod.COMMAND.value
        row.authorization_reference = opening.authorization_reference
        row.authorized = True
        await self._place(
            session,
            row,
            EvseRef(ocpp_evse_id=row.ocpp_evse_id, connector_id=row.ocpp_connector_id),
            quiet=True,
        )
        if row.location_id is None:
            log.warning(
                "command #%d: EVSE %d of %s is on no Location any more: no %s session",
                opening.command_id,
                opening.ocpp_evse_id,
                opening.charger_id,
                opening.status.value,
            )
            return requests
        if not opening.at_evse:
            self._location_level(row)
        session.add(row)
        self._put(row, await load_timeline(session, row), requests)
        log.info("command #%d: %s session %s", opening.command_id, row.status, row.id)
        return requests

    async def cancel_reservation(
        self, session: AsyncSession, reservation_ref: int
    ) -> list[PushRequest]:
        """The eMSP cancelled its reservation and the charger accepted: its session is
        COMPLETED (billed only if its tariff prices the reserved time)."""
        requests: list[PushRequest] = []
        row = await _waiting_reservation(session, reservation_ref)
        if row is not None:
            await self._end_reservation(
                session, row, at=self._clock(), reason="ReservationCancelled", requests=requests
            )
        return requests

    async def expire_waiting(self, session: AsyncSession) -> int:
        """Sweep: PENDING sessions no transaction followed in time become INVALID, and
        reservations past their expiry the charger said nothing about end COMPLETED. Pushes
        enqueued (count returned)."""
        now = self._clock()
        requests: list[PushRequest] = []
        stale = now - timedelta(seconds=self._policy.pending_timeout_s)
        pending = select(SessionRow).where(
            SessionRow.status == SessionStatus.PENDING.value,
            col(SessionRow.transaction_ref).is_(None),
            col(SessionRow.created_at) < stale,
        )
        for row in (await session.exec(pending)).all():
            row.status = SessionStatus.INVALID.value
            row.ended_at = now
            row.stop_reason = "NoTransaction"
            session.add(row)
            self._put(row, await load_timeline(session, row), requests)
            log.info("session %s: no transaction followed its START_SESSION: INVALID", row.id)
        overdue = now - timedelta(seconds=self._policy.reservation_grace_s)
        reserved = await _held_reservations(session, col(ReservationRow.expires_at) < overdue)
        for row, reservation in reserved:
            await self._expired(session, row, reservation, reservation.expires_at, requests)
        await enqueue(session, requests, now=now, coalesce=False)
        return len(requests)

    async def _waiting_for(
        self, session: AsyncSession, event: TransactionStarted, decision: AuthorizationRow | None
    ) -> SessionRow | None:
        """The PENDING or RESERVATION session this transaction takes over: the one of the
        command whose token started it, else the reservation it names if a token of the same
        eMSP started it."""
        if event.authorization is not AuthorizationStatus.ACCEPTED or decision is None:
            return None
        row = await _waiting_of_command(session, decision.command_id)
        if row is not None:
            return row
        if event.reservation_id is None:
            return None
        row = await _waiting_reservation(session, event.reservation_id)
        if row is None or row.charger_id != event.charger_id:
            return None
        return row if row.partner_id == decision.partner_id else None

    async def _take_over(
        self,
        session: AsyncSession,
        row: SessionRow,
        transaction_ref: str,
        evse: EvseRef,
        at: datetime,
    ) -> None:
        log.info(
            "transaction %s/%s takes over %s session %s",
            row.charger_id,
            transaction_ref,
            row.status,
            row.id,
        )
        row.transaction_ref = transaction_ref
        if evse.ocpp_evse_id:
            row.ocpp_evse_id, row.ocpp_connector_id = evse.ocpp_evse_id, evse.connector_id
        if row.status == SessionStatus.PENDING.value:
            row.started_at = at  # reference 4.3: updated on PENDING -> ACTIVE
        else:
            row.started_at = min(row.started_at, at)  # a reservation's time stays billed
        if row.reservation_ref is not None:
            reservation = await session.get(ReservationRow, row.reservation_ref)
            if reservation is not None:
                reservation.cancelled = True  # used: no longer held
                session.add(reservation)
        row.status = SessionStatus.PENDING.value  # ACTIVE once placed again on the real EVSE
        self._unplace(row)

    async def _merge(
        self, session: AsyncSession, internal: SessionRow, waiting: SessionRow, at: datetime
    ) -> SessionRow:
        """Move a transaction started by the cable (its row never shown) into the session of
        the command whose token then authorized it."""
        assert internal.transaction_ref is not None
        transaction_ref = internal.transaction_ref
        inner = await load_timeline(session, internal)
        usage = await load_timeline(session, waiting)
        await session.delete(internal)
        await delete_points(session, internal.id)
        await session.flush()
        await self._take_over(
            session,
            waiting,
            transaction_ref,
            EvseRef(ocpp_evse_id=internal.ocpp_evse_id, connector_id=internal.ocpp_connector_id),
            at,
        )
        waiting.meter_start_wh = internal.meter_start_wh
        usage.change_state(at, ChargeState.CHARGING)
        for changed_at, state in inner.states:
            if changed_at > at:
                usage.change_state(changed_at, state)
        for point in inner.meter:
            usage.add_point(*point)
        usage.add_signed(inner.signed)
        await store_timeline(session, waiting, usage)
        session.add(waiting)
        return waiting

    async def _reservation_status(
        self,
        session: AsyncSession,
        event: ReservationStatusChanged,
        requests: list[PushRequest],
    ) -> None:
        """OCPP 2.0.1 ReservationStatusUpdate: ``Expired`` ends the reservation's session;
        ``Removed`` (by the station) too, and tells the eMSP CANCELED_RESERVATION."""
        reservation = await session.get(ReservationRow, event.reservation_id)
        if reservation is None or reservation.charger_id != event.charger_id:
            log.info(
                "%s reports reservation %d %s: not one of ours",
                event.charger_id,
                event.reservation_id,
                event.status,
            )
            return
        if reservation.cancelled:
            return  # used or cancelled already: nothing more to say
        row = await _waiting_reservation(session, reservation.id or 0)
        if event.status == "Expired":
            await self._expired(session, row, reservation, event.occurred_at, requests)
            return
        reservation.cancelled = True
        session.add(reservation)
        if await _cancel_in_flight(session, reservation):
            # The eMSP's own cancel, reported before the charger's answer to it arrived: the
            # CANCEL_RESERVATION's result tells the eMSP; the reservation ends as cancelled.
            if row is not None:
                await self._end_reservation(
                    session,
                    row,
                    at=event.occurred_at,
                    reason="ReservationCancelled",
                    requests=requests,
                )
            return
        command = await session.get(CommandRow, reservation.command_id)
        if command is not None and command.command == CommandType.RESERVE_NOW.value:
            assert command.id is not None
            requests.append(
                result_push(
                    command_id=command.id,
                    partner_id=command.partner_id,
                    response_url=command.response_url,
                    result=CommandResultType.CANCELED_RESERVATION,
                    detail="the charger removed the reservation",
                )
            )
        if row is not None:
            await self._end_reservation(
                session,
                row,
                at=event.occurred_at,
                reason="ReservationRemoved",
                requests=requests,
                invalid=True,
            )

    async def _reservation_released(
        self, session: AsyncSession, event: ConnectorStatusChanged, requests: list[PushRequest]
    ) -> None:
        """OCPP 1.6 says nothing of expiry: an EVSE going from Reserved to Available at (or
        after) a reservation's expiry ended it."""
        grace = timedelta(seconds=self._policy.reservation_grace_s)
        reserved = await _held_reservations(
            session,
            ReservationRow.charger_id == event.charger_id,
            col(ReservationRow.cancelled).is_(False),
            col(ReservationRow.expires_at) <= event.occurred_at + grace,
        )
        for row, reservation in reserved:
            if reservation.ocpp_evse_id in (None, event.evse.ocpp_evse_id):
                at = min(event.occurred_at, reservation.expires_at)
                await self._expired(session, row, reservation, at, requests)

    async def _expired(
        self,
        session: AsyncSession,
        row: SessionRow | None,
        reservation: ReservationRow,
        at: datetime,
        requests: list[PushRequest],
    ) -> None:
        reservation.cancelled = True
        session.add(reservation)
        if row is not None:
            await self._end_reservation(
                session, row, at=at, reason="ReservationExpired", requests=requests, expired=True
            )

    async def _end_reservation(
        self,
        session: AsyncSession,
        row: SessionRow,
        *,
        at: datetime,
        reason: str,
        requests: list[PushRequest],
        expired: bool = False,
        invalid: bool = False,
    ) -> None:
        usage = await load_timeline(session, row)
        usage.reservation_expired = expired
        row.ended_at = max(at, row.started_at)
        row.stop_reason = reason
        row.status = (SessionStatus.INVALID if invalid else SessionStatus.COMPLETED).value
        await store_timeline(session, row, usage)
        session.add(row)
        self._put(row, usage, requests)
        log.info("reservation session %s: %s (%s)", row.id, row.status, reason)
        if not invalid and self._bills(row, usage):
            await self._make_cdr(session, row, usage, requests)

    def _bills(self, row: SessionRow, usage: mapping.Usage) -> bool:
        """Whether an unused reservation costs anything under its tariff (reference 4.3: a
        CDR only if the reservation is billable)."""
        facts = self._facts(row, usage)
        if facts.tariff is None:
            return False
        total = mapping.costing(facts, self._clock()).total_cost
        return total.excl_vat > 0 or total.incl_vat > 0

    def _unplace(self, row: SessionRow) -> None:
        row.location_id = row.evse_uid = row.connector_id = None
        row.cdr_location = row.tariffs = row.time_zone = None
        row.currency = self._policy.currency

    @staticmethod
    def _location_level(row: SessionRow) -> None:
        """A reservation of the whole Location: no EVSE or connector to name (reference 4.3)."""
        assert row.cdr_location is not None
        cdr_location = CdrLocation.model_validate_json(row.cdr_location)
        row.cdr_location = cdr_location.model_copy(
            update={
                "evse_uid": NOT_AVAILABLE,
                "evse_id": NOT_AVAILABLE,
                "connector_id": NOT_AVAILABLE,
            }
        ).model_dump_json(exclude_none=True)
        row.evse_uid = row.connector_id = NOT_AVAILABLE

    # --- steps ---------------------------------------------------------------------------

    def _read(
        self,
        row: SessionRow | SessionView,
        usage: mapping.Usage,
        readings: Sequence[MeterReading],
        energy_wh: int | None,
    ) -> bool:
        """Add the readings' meter points and signed values; whether anything was added."""
        samples = mapping.samples_of(readings)
        signed = mapping.signed_values_of(readings)
        registers = [s for s in samples if s.register_wh is not None]
        if row.meter_start_wh is None and registers and energy_wh is not None:
            latest = registers[-1].register_wh
            assert latest is not None
            row.meter_start_wh = latest - energy_wh
        added = False
        for sample in registers:
            assert sample.register_wh is not None
            if row.meter_start_wh is None:
                row.meter_start_wh = sample.register_wh
            usage.add_point(
                sample.at,
                sample.register_wh - row.meter_start_wh,
                sample.power_w,
                sample.current_a,
            )
            added = True
        usage.add_signed(signed)
        return added or bool(signed)

    async def _take_authorization(
        self,
        session: AsyncSession,
        row: SessionRow,
        id_token: IdToken,
        status: AuthorizationStatus | None,
        reference: str | None,
    ) -> None:
        decision = await session.get(AuthorizationRow, reference) if reference else None
        row.authorization_ref = reference
        row.authorized = status is AuthorizationStatus.ACCEPTED
        if decision is not None:
            row.partner_id = decision.partner_id
            row.cdr_token = decision.cdr_token
            row.auth_method = decision.auth_method
            row.authorization_reference = decision.authorization_reference
        if row.cdr_token is None:
            # The operator's own token (or a decision purged since): the CPO is its issuer.
            identity = self._identity()
            row.cdr_token = CdrToken(
                country_code=identity.country_code,
                party_id=identity.party_id,
                uid=id_token.value[:36] or "-",
                type=TokenType.OTHER if id_token.value else TokenType.AD_HOC_USER,
                contract_id=id_token.value[:36] or "-",
            ).model_dump_json()
        if row.auth_method is None:
            row.auth_method = AuthMethod.WHITELIST.value
        if not row.authorized:
            row.status = SessionStatus.INVALID.value
            log.info(
                "session %s of %s/%s: token %s refused (%s): INVALID, not billed",
                row.id,
                row.charger_id,
                row.transaction_ref,
                id_token.value,
                status.value if status else "no decision",
            )

    async def _place(
        self, session: AsyncSession, row: SessionRow, evse: EvseRef, *, quiet: bool = False
    ) -> None:
        """Find the OCPI Location, EVSE and connector of the session, and freeze what the CDR
        needs as it is at the start: the CdrLocation, the time zone and the tariff."""
        if row.location_id is not None:
            return
        if evse.ocpp_evse_id:
            row.ocpp_evse_id, row.ocpp_connector_id = evse.ocpp_evse_id, evse.connector_id
        if not row.ocpp_evse_id:
            return
        bindings = await location_store.bindings_of_charger(
            session, row.charger_id, row.ocpp_evse_id
        )
        if not bindings:
            if quiet:
                return
            log.warning(
                "transaction %s/%s is on EVSE %d, which is on no Location: no OCPI Session",
                row.charger_id,
                row.transaction_ref,
                row.ocpp_evse_id,
            )
            return
        binding = bindings[0]
        stored = await location_store.load_location(session, binding.location_key)
        if stored is None:  # pragma: no cover - bindings go with their Location
            return
        location = stored.location
        ocpi_evse = next(e for e in location.evses or () if e.uid.upper() == binding.evse_uid)
        connector_id = next(
            (ocpi for ocpi, ocpp in binding.connectors if ocpp == row.ocpp_connector_id),
            ocpi_evse.connectors[0].id,
        )
        connector = next(c for c in ocpi_evse.connectors if c.id == connector_id)
        row.location_id, row.evse_uid, row.connector_id = location.id, ocpi_evse.uid, connector_id
        row.time_zone = location.time_zone
        row.cdr_location = CdrLocation.from_location(
            location, ocpi_evse.uid, connector_id
        ).model_dump_json(exclude_none=True)
        tariff = await self._tariff_for(session, location, connector.tariff_ids or [], row)
        if tariff is not None:
            row.tariffs = json.dumps([tariff.model_dump(mode="json", exclude_none=True)])
            row.currency = tariff.currency

    async def _tariff_for(
        self, session: AsyncSession, location: Location, ids: Sequence[str], row: SessionRow
    ) -> Tariff | None:
        if not ids:
            return None
        found = await self._tariffs(session, ids)
        tariff = select_tariff(found, at=row.started_at)
        if tariff is None:
            log.warning(
                "no tariff of %s valid at %s for session %s at %s: costs are omitted",
                ", ".join(ids),
                row.started_at.isoformat(),
                row.id,
                location.id,
            )
        return tariff

    async def _activate(
        self, session: AsyncSession, row: SessionRow, requests: list[PushRequest]
    ) -> None:
        if row.status != SessionStatus.PENDING.value or not row.authorized:
            return
        if row.location_id is None:
            return
        row.status = SessionStatus.ACTIVE.value
        usage = await load_timeline(session, row)
        self._put(row, usage, requests)
        session.add(row)

    def _facts(self, row: SessionRow, usage: mapping.Usage) -> mapping.SessionFacts:
        if not (row.location_id and row.evse_uid and row.connector_id and row.cdr_token):
            raise RuntimeError(f"session {row.id} is not placed and authorized")
        identity = self._identity()
        tariffs = json.loads(row.tariffs) if row.tariffs else []
        return mapping.SessionFacts(
            country_code=identity.country_code,
            party_id=identity.party_id,
            session_id=row.id,
            status=SessionStatus(row.status),
            start=row.started_at,
            end=row.ended_at,
            cdr_token=CdrToken.model_validate_json(row.cdr_token),
            auth_method=AuthMethod(row.auth_method or AuthMethod.WHITELIST.value),
            authorization_reference=row.authorization_reference,
            location_id=row.location_id,
            evse_uid=row.evse_uid,
            connector_id=row.connector_id,
            currency=row.currency,
            tariff=Tariff.model_validate(tariffs[0]) if tariffs else None,
            time_zone=ZoneInfo(row.time_zone or "UTC"),
            usage=usage,
        )

    def _rebuild(self, row: SessionRow, usage: mapping.Usage) -> dict[str, Any]:
        """Build the Session document again; returns it as JSON data."""
        now = self._clock()
        facts = self._facts(row, usage)
        if row.transaction_ref is None and row.reservation_ref is None:
            document = mapping.waiting_object(facts, now)
        else:
            document = mapping.session_object(facts, mapping.costing(facts, now), now)
        row.document = document.model_dump_json(exclude_none=True)
        row.last_updated = document.last_updated
        data: dict[str, Any] = document.model_dump(mode="json", exclude_none=True)
        return data

    def _put(self, row: SessionRow, usage: mapping.Usage, requests: list[PushRequest]) -> None:
        data = self._rebuild(row, usage)
        row.periods_sent = self._closed_periods(data, row)
        row.last_push_at = row.ended_at or max(
            (at for at, _, _, _ in usage.meter), default=row.started_at
        )
        if row.partner_id is not None:
            requests.append(
                PushRequest(
                    partner_id=row.partner_id,
                    module=ModuleID.SESSIONS,
                    method="PUT",
                    path=self._path(row),
                    body=data,
                    ordering_key=f"session:{row.id}",
                    fallback=f"{FALLBACK_PREFIX}:{row.id}",
                )
            )

    def _patch(
        self, row: SessionRow, usage: mapping.Usage, at: datetime, requests: list[PushRequest]
    ) -> None:
        data = self._rebuild(row, usage)
        closed = self._closed_periods(data, row)
        body: dict[str, Any] = {
            "kwh": data["kwh"],
            "charging_periods": data["charging_periods"][row.periods_sent : closed],
            "last_updated": data["last_updated"],
        }
        if "total_cost" in data:
            body["total_cost"] = data["total_cost"]
        row.periods_sent = max(row.periods_sent, closed)
        row.last_push_at = at
        if row.partner_id is not None:
            requests.append(
                PushRequest(
                    partner_id=row.partner_id,
                    module=ModuleID.SESSIONS,
                    method="PATCH",
                    path=self._path(row),
                    body=body,
                    ordering_key=f"session:{row.id}",
                    fallback=f"{FALLBACK_PREFIX}:{row.id}",
                )
            )

    @staticmethod
    def _closed_periods(data: dict[str, Any], row: SessionRow) -> int:
        """Periods that can no longer change: all of a finished session, all but the running
        one otherwise."""
        periods = len(data.get("charging_periods", []))
        return periods if row.ended_at is not None else max(0, periods - 1)

    def _path(self, row: SessionRow) -> str:
        identity = self._identity()
        return "/".join(
            quote(part, safe="") for part in (identity.country_code, identity.party_id, row.id)
        )

    async def _make_cdr(
        self,
        session: AsyncSession,
        row: SessionRow,
        usage: mapping.Usage,
        requests: list[PushRequest],
    ) -> None:
        if await session.get(CdrRow, row.id) is not None:
            return
        assert row.cdr_location is not None
        now = self._clock()
        facts = self._facts(row, usage)
        cdr = mapping.cdr_object(
            facts,
            mapping.costing(facts, now),
            cdr_location=CdrLocation.model_validate_json(row.cdr_location),
            remark=row.stop_reason,
            created_at=now,
        )
        session.add(
            CdrRow(
                id=cdr.id,
                session_id=row.id,
                partner_id=row.partner_id,
                document=cdr.model_dump_json(exclude_none=True),
                last_updated=cdr.last_updated,
            )
        )
        if row.partner_id is not None:
            requests.append(
                PushRequest(
                    partner_id=row.partner_id,
                    module=ModuleID.CDRS,
                    method="POST",
                    path="",
                    body=cdr.model_dump(mode="json", exclude_none=True),
                    ordering_key=f"session:{row.id}",
                )
            )

    # --- the outbox's fallback -------------------------------------------------------------

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        session_id = key.partition(":")[2]
        row = await session.get(SessionRow, session_id)
        if row is None or row.document is None:
            return None
        return FullObject(path=self._path(row), body=json.loads(row.document))


# --- one batch of projected events ----------------------------------------------------------


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Recent(Generic[_K, _V]):
    """At most ``limit`` entries; putting one past it drops the one put longest ago."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[_K, _V] = {}

    def get(self, key: _K) -> _V | None:
        return self._items.get(key)

    def pop(self, key: _K) -> _V | None:
        return self._items.pop(key, None)

    def put(self, key: _K, value: _V) -> None:
        self._items.pop(key, None)
        self._items[key] = value
        if len(self._items) > self._limit:
            del self._items[next(iter(self._items))]


class _Timelines:
    """Decoded timelines of running sessions kept from one ``project`` call to the next (a
    running session's timeline is decoded from its row at every batch otherwise), each with
    the ``row.usage`` text it is the timeline of: a timeline is used again only if the row
    read in the next batch still holds that very text (so a batch whose transaction failed,
    or a write by another step, only costs a decode). A batch takes its timelines out and
    gives them back only when it finished; at most ``limit``, the least recently used
    dropped first."""

    def __init__(self, limit: int) -> None:
        self._kept: _Recent[str, tuple[str, mapping.Usage]] = _Recent(limit)

    def take(self, session_id: str, text: str) -> mapping.Usage | None:
        kept = self._kept.pop(session_id)
        if kept is None or kept[0] != text:
            return None
        return kept[1]

    def give_back(self, session_id: str, text: str, usage: mapping.Usage) -> None:
        self._kept.put(session_id, (text, usage))


class _SessionIds:
    """The session id of transactions whose session is not ``session_id_of`` theirs (a
    session an eMSP's command or a reservation made first, which the transaction took over),
    as last seen; at most ``limit``, the oldest dropped first. A wrong or missing entry only
    costs a lookup by transaction."""

    def __init__(self, limit: int) -> None:
        self._ids: _Recent[tuple[str, str], str] = _Recent(limit)

    def guess(self, key: tuple[str, str]) -> str:
        return self._ids.get(key) or session_id_of(*key)

    def learn(self, key: tuple[str, str], session_id: str) -> None:
        if session_id == session_id_of(*key):
            self._ids.pop(key)
        else:
            self._ids.put(key, session_id)


def _beyond_timeline(found: SessionRow | SessionView) -> bool:
    """Whether a meter value or charging state may change more of the session than its
    timeline: a session not ACTIVE (a PENDING one is placed, then activated), or one whose
    meter start is not known yet (the first register reading sets it)."""
    return found.status != SessionStatus.ACTIVE.value or found.meter_start_wh is None


class _Batch:
    """What one ``project`` call keeps from event to event, for the meter values and charging
    states (most of the events): the sessions of the transactions they name, loaded with one
    query as ``SessionView``s (a transaction missing there is looked up again: ``forget``
    drops a transaction whose session may have changed), and the sessions' timelines,
    decoded once (or taken from the ``_Timelines`` of earlier batches) and encoded once
    (``write_back``: at the end of the batch, and before any other step, which reads
    ``row.usage`` itself).

    A view serves as long as only the session's timeline changes; a step that needs more of
    the session (placing a PENDING one, a PATCH) exchanges it for the session's row
    (``promote``), which takes the view's timeline over. The views are dropped before any
    other step (``write_back``): it may change their sessions through the ORM, and the rest of
    the batch then reads rows."""

    def __init__(
        self, session: AsyncSession, timelines: _Timelines, session_ids: _SessionIds
    ) -> None:
        self._session = session
        self._timelines = timelines
        self._session_ids = session_ids
        self._rows: dict[tuple[str, str], SessionRow] = {}
        self._views: dict[tuple[str, str], SessionView] = {}
        self._dropped: dict[tuple[str, str], str] = {}
        """The session ids of the views dropped (see ``write_back``), until their rows are
        read: all those still wanted at once, when the first of them is asked for again."""
        self._to_come: dict[tuple[str, str], int] = {}
        """By transaction: the meter values and charging states of the batch not yet
        projected (each asks for its session once, ``row_of``)."""
        self._usages: dict[str, tuple[SessionRow | SessionView, str, mapping.Usage]] = {}
        """By session id: the row or view, the ``usage`` text the timeline was decoded from
        (or last written back as), the timeline."""
        self._changed: dict[str, SessionRow | SessionView] = {}
        """Sessions whose timeline changed since it was last written to ``usage``."""

    async def load(
        self,
        events: Sequence[DomainEvent],
        row_wanted: Callable[[SessionView, datetime], bool],
    ) -> None:
        """The views of the sessions the meter values and charging states name, and the rows
        of those of them that may need more (``row_wanted`` by the last of their events:
        a PATCH due, for instance), all loaded in two queries, with their timelines."""
        latest: dict[tuple[str, str], datetime] = {}
        for event in events:
            if (
                isinstance(event, MeterValuesSampled | ChargingStateChanged)
                and event.transaction_ref is not None
            ):
                key = (event.charger_id, event.transaction_ref)
                latest[key] = max(latest.get(key, event.occurred_at), event.occurred_at)
                self._to_come[key] = self._to_come.get(key, 0) + 1
        keys = latest.keys()
        # By id (the primary key), not by transaction: two IN lists (charger ids, transaction
        # references) would make SQLite probe every pair of them.
        guesses = {self._session_ids.guess(key): key for key in keys}
        self._rows, self._views = {}, {}
        for view in await session_views_by_ids(self._session, guesses):
            key = guesses[view.id]
            if (view.charger_id, view.transaction_ref) == key:
                self._views[key] = view
        # Their timelines: kept from earlier batches, else decoded with the points of all of
        # them read in one query.
        decode: list[SessionView] = []
        for view in self._views.values():
            kept = self._timelines.take(view.id, view.usage)
            if kept is not None:
                self._usages[view.id] = (view, view.usage, kept)
            else:
                decode.append(view)
        stored = [view.id for view in decode if mapping.Usage.stored_points(view.usage)]
        points = await points_of(self._session, stored)
        for view in decode:
            usage = mapping.Usage.from_json(view.usage, points.get(view.id, ()))
            self._usages[view.id] = (view, view.usage, usage)
        wanted = [view.id for key, view in self._views.items() if row_wanted(view, latest[key])]
        with self._session.no_autoflush:  # nothing is changed yet
            rows = await sessions_by_ids(self._session, wanted)
        for row in rows:
            self._take_over(row, self._usages[row.id])

    async def row_of(
        self, charger_id: str, transaction_ref: str
    ) -> SessionRow | SessionView | None:
        key = (charger_id, transaction_ref)
        self._to_come[key] = self._to_come.get(key, 1) - 1
        found = self._rows.get(key) or self._views.get(key)
        if found is None and key in self._dropped:
            await self._read_dropped(key)
            found = self._rows.get(key)
        if found is None:
            found = await session_of_transaction(self._session, charger_id, transaction_ref)
            if found is not None:
                self._rows[key] = found
                self._session_ids.learn(key, found.id)
        return found

    def forget(self, charger_id: str, transaction_ref: str) -> None:
        self._rows.pop((charger_id, transaction_ref), None)

    async def _read_dropped(self, key: tuple[str, str]) -> None:
        """The rows of the sessions whose views were dropped and that ``key`` or events still
        to come ask for, in one query (their timelines were given to ``_Timelines``, where
        ``usage_of`` finds them)."""
        wanted = {
            dropped: session_id
            for dropped, session_id in self._dropped.items()
            if dropped == key or self._to_come.get(dropped, 0) > 0
        }
        for dropped in wanted:
            del self._dropped[dropped]
        for row in await sessions_by_ids(self._session, set(wanted.values())):
            if row.transaction_ref is not None:
                self._rows.setdefault((row.charger_id, row.transaction_ref), row)

    async def promote(self, found: SessionRow | SessionView) -> SessionRow:
        """The session's row (loaded now if ``found`` is its view), with the view's timeline."""
        if isinstance(found, SessionRow):
            return found
        # Not flushed first: what the batch changed so far cannot change what is read here (a
        # session outside the identity map, by its primary key), and a flush costs more than
        # the read (the batch's changes are flushed together at its end).
        with self._session.no_autoflush:
            row = await self._session.get(SessionRow, found.id)
        if row is None or self._take_over(row, self._usages[found.id])[0] is not row:
            # Only this batch writes its sessions, and their views are dropped before any
            # step that writes through the ORM: their rows hold what the views were read as.
            raise LookupError(f"session {found.id} changed under its own batch")
        return row

    async def usage_of(self, row: SessionRow | SessionView) -> mapping.Usage:
        """The session's timeline: the one decoded before, unless ``row.usage`` was written
        by someone else since."""
        known = self._usages.get(row.id)
        if known is not None and known[0] is not row and isinstance(row, SessionRow):
            known = self._take_over(row, known)
        if (
            known is not None
            and known[0] is row
            and (row.id in self._changed or row.usage is known[1])
        ):
            return known[2]
        assert isinstance(row, SessionRow)  # a view's timeline is decoded with the batch
        usage = self._timelines.take(row.id, row.usage) or await load_timeline(self._session, row)
        self._usages[row.id] = (row, row.usage, usage)
        return usage

    def _take_over(
        self, row: SessionRow, known: tuple[SessionRow | SessionView, str, mapping.Usage]
    ) -> tuple[SessionRow | SessionView, str, mapping.Usage]:
        """The row of a session the batch has a view of takes the view's place and timeline
        (with its changes not written back yet): the row holds the text the view's timeline
        was decoded from or last written back as, which is what the database holds."""
        view, text, usage = known
        if not isinstance(view, SessionView) or row.usage != text:
            return known
        set_committed_value(row, "usage", text)  # that very text, for ``usage_of``'s check
        known = self._usages[row.id] = (row, text, usage)
        if row.id in self._changed:
            self._changed[row.id] = row
        if row.transaction_ref is not None:
            key = (row.charger_id, row.transaction_ref)
            self._views.pop(key, None)
            self._rows[key] = row
        return known

    def changed(self, row: SessionRow | SessionView) -> None:
        self._changed[row.id] = row

    async def write_back(self) -> None:
        """Store the changed timelines: their new meter points appended (one INSERT for all),
        the rest encoded into their rows (``usage``). The rows already in the database are
        written at once, with one UPDATE of that column for all of them (the ORM's flush of
        each row costs more than the rest of a meter value's projection); the ORM then holds
        the text as the row's stored value. Then the views are dropped: the step that comes
        next may change their sessions."""
        stored, points = self._encode_changed()
        await add_points(self._session, points)
        if stored:
            await store_timelines(self._session, [(row.id, text) for row, text in stored])
            self._committed(stored)
        self._drop_views()

    def write_back_later(self, writes: Writes) -> None:
        """``write_back`` through ``writes`` (the end of a batch: its transaction writes them
        with the rest of its deferred writes, and nothing reads them before that)."""
        stored, points = self._encode_changed()
        defer_timelines(writes, [(row.id, text) for row, text in stored], points)
        self._committed(stored)

    def _encode_changed(
        self,
    ) -> tuple[list[tuple[SessionRow | SessionView, str]], list[tuple[str, mapping.Point]]]:
        """The changed timelines encoded: the sessions already in the database with their
        text (a new row gets its text as ``row.usage``, written with it), and the new
        points."""
        stored: list[tuple[SessionRow | SessionView, str]] = []
        points: list[tuple[str, mapping.Point]] = []
        for session_id, row in self._changed.items():
            usage = self._usages[session_id][2]
            text = usage.to_json()
            points += [(session_id, point) for point in usage.take_unstored()]
            if isinstance(row, SessionView) or inspect(row).persistent:
                stored.append((row, text))
            else:
                row.usage = text
            self._usages[session_id] = (row, text, usage)
        self._changed.clear()
        return stored, points

    @staticmethod
    def _committed(stored: list[tuple[SessionRow | SessionView, str]]) -> None:
        """Each session holds its text as its stored ``usage`` (it is, or will be by the
        commit): the ORM so that its flush does not write it again."""
        for row, text in stored:
            if isinstance(row, SessionView):
                row.usage = text
            else:
                set_committed_value(row, "usage", text)

    def _drop_views(self) -> None:
        """Forget the views (their timelines are written back): the sessions of the next
        events are rows, read when one of them is asked for, their timelines kept for
        them."""
        for session_id, (found, text, usage) in list(self._usages.items()):
            if isinstance(found, SessionView):
                del self._usages[session_id]
                if found.ended_at is None:
                    self._timelines.give_back(session_id, text, usage)
        self._dropped.update((key, view.id) for key, view in self._views.items())
        self._views.clear()

    def keep(self) -> None:
        """Give the timelines of running sessions, written back, to the next batches."""
        for session_id, (row, text, usage) in self._usages.items():
            if row.ended_at is None and row.usage is text and session_id not in self._changed:
                self._timelines.give_back(session_id, text, usage)


# --- lookups ---------------------------------------------------------------------------------


async def _decision(session: AsyncSession, reference: str | None) -> AuthorizationRow | None:
    return await session.get(AuthorizationRow, reference) if reference else None


async def _session_of_command(session: AsyncSession, command_id: int) -> SessionRow | None:
    stmt = (
        select(SessionRow)
        .where(SessionRow.command_id == command_id)
        .order_by(col(SessionRow.created_at).desc())
    )
    return (await session.exec(stmt)).first()


async def _waiting_of_command(session: AsyncSession, command_id: int | None) -> SessionRow | None:
    """The session a command made that no transaction has taken over yet."""
    if command_id is None:
        return None
    row = await _session_of_command(session, command_id)
    if row is None or row.transaction_ref is not None or row.ended_at is not None:
        return None
    return row


async def _waiting_reservation(session: AsyncSession, reservation_ref: int) -> SessionRow | None:
    stmt = select(SessionRow).where(
        SessionRow.reservation_ref == reservation_ref,
        SessionRow.status == SessionStatus.RESERVATION.value,
        col(SessionRow.transaction_ref).is_(None),
    )
    return (await session.exec(stmt)).first()


async def _held_reservations(
    session: AsyncSession, *where: Any
) -> Sequence[tuple[SessionRow, ReservationRow]]:
    """RESERVATION sessions no transaction has taken over, with their reservation."""
    stmt = (
        select(SessionRow, ReservationRow)
        .join(ReservationRow, col(ReservationRow.id) == col(SessionRow.reservation_ref))
        .where(
            SessionRow.status == SessionStatus.RESERVATION.value,
            col(SessionRow.transaction_ref).is_(None),
            *where,
        )
    )
    return (await session.exec(stmt)).all()


async def _cancel_in_flight(session: AsyncSession, reservation: ReservationRow) -> bool:
    """Whether the reservation's eMSP has a CANCEL_RESERVATION of it still unanswered (the
    charger's report may overtake the answer)."""
    stmt = select(CommandRow).where(
        CommandRow.partner_id == reservation.partner_id,
        CommandRow.command == CommandType.CANCEL_RESERVATION.value,
        col(CommandRow.result).is_(None),
        col(CommandRow.id) > reservation.command_id,
    )
    for command in (await session.exec(stmt)).all():
        body = json.loads(command.request)
        if str(body.get("reservation_id", "")).upper() == reservation.reservation_id:
            return True
    return False
