"""Charging transactions of both OCPP versions: start, events, meter values, stop.

Each handler is one database transaction; authorization (which may wait on an eMSP) happens
before it, never inside it. OCPP 1.6 reports a transaction with StartTransaction /
StopTransaction and the CSMS allocates its id; OCPP 2.0.1 reports TransactionEvents whose id the
charger chose, ordered by ``seqNo``. Both end in the same rows and the same domain events.

Meter readings carried by a start or an end (1.6 ``transactionData``, 2.0.1 Started/Ended) are
stored and folded into ``TransactionStarted`` / ``TransactionEnded``; readings sent during the
transaction produce ``MeterValuesSampled``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.clock import utc_now
from csms.domain.energy import energy_register_wh
from csms.domain.events import (
    ChargingStateChanged,
    MeterValuesSampled,
    TransactionAuthorized,
    TransactionEnded,
    TransactionStarted,
    UnknownTransactionStopped,
)
from csms.domain.model import (
    ChargingState,
    EvseRef,
    IdToken,
    MeterReading,
    ReadingContext,
)
from csms.domain.requests import (
    AuthorizationDecision,
    AuthorizationRequest,
    MeterValuesReport,
    StartTransactionDecision,
    StartTransactionRequest,
    StopTransactionDecision,
    StopTransactionRequest,
    TransactionEventDecision,
    TransactionEventOutcome,
    TransactionEventReport,
    TransactionEventType,
)
from csms.ports import TokenAuthorizer
from csms.services.chargers import mark_seen
from csms.store.database import Database, UnitOfWork, Writes
from csms.store.tables import ChargerRow, MeterValueRow, TransactionEventRow, TransactionRow

log = logging.getLogger(__name__)

UNPLACED = EvseRef(ocpp_evse_id=0, connector_id=0)

_RUNNING_LIMIT = 100_000
"""Running transactions kept in memory at most (the oldest is forgotten beyond: read again)."""

_TX_PROGRESS = (
    "meter_start_wh",
    "last_meter_wh",
    "last_seq_no",
    "seq_gap_count",
    "charging_state",
    "updated_at",
)
"""The columns a meter value or a plain 2.0.1 Updated event changes on a transaction."""


class TransactionService:
    def __init__(
        self,
        db: Database,
        authorizer: TokenAuthorizer,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = db
        self._authorizer = authorizer
        self._clock = clock
        # Running transactions as last written, by (charger, ref): with SQLite this process is
        # the only writer, so meter values and plain Updated events skip reading the row (the
        # hot path: a few deferred writes, no statement of their own). Every other write of a
        # transaction reads it again and refreshes or drops the entry; a failure drops it.
        self._running: dict[tuple[str, str], TransactionRow] = {}
        self._cache_running = db.is_sqlite

    async def handle_authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        return await self._authorizer.authorize(request)

    # --- OCPP 1.6 ------------------------------------------------------------------------

    async def handle_start(self, request: StartTransactionRequest) -> StartTransactionDecision:
        """A transaction the charger has started (OCPP 1.6): we allocate its id.

        A StartTransaction repeated by the charger (the first answer was lost) gets the id of
        the transaction it already created instead of a second transaction.
        """
        authorization = await self._authorize(request.charger_id, request.id_token, request.evse)
        async with self._db.transaction() as uow:
            await self._seen(uow.session, request.charger_id)
            existing = await self._same_start(uow.session, request)
            if existing is not None:
                log.info("repeated StartTransaction of %s", request.charger_id)
                return StartTransactionDecision(
                    transaction_ref=existing.transaction_ref, authorization=authorization
                )
            tx = await self._create(
                uow,
                charger_id=request.charger_id,
                transaction_ref=None,
                evse=request.evse,
                id_token=request.id_token,
                authorization=authorization,
                meter_start_wh=request.meter_start_wh,
                started_at=request.started_at,
                reservation_id=request.reservation_id,
            )
        self._remember(tx)
        return StartTransactionDecision(
            transaction_ref=tx.transaction_ref, authorization=authorization
        )

    async def handle_stop(self, request: StopTransactionRequest) -> StopTransactionDecision:
        authorization = None
        if request.id_token is not None:
            authorization = await self._authorize(request.charger_id, request.id_token, None)
        self._running.pop((request.charger_id, request.transaction_ref), None)
        async with self._db.transaction() as uow:
            await self._seen(uow.session, request.charger_id)
            tx = await self._find(uow.session, request.charger_id, request.transaction_ref)
            if tx is None:
                log.warning(
                    "StopTransaction of %s for unknown transaction %s: acknowledged, not billed",
                    request.charger_id,
                    request.transaction_ref,
                )
                uow.record(
                    UnknownTransactionStopped(
                        charger_id=request.charger_id,
                        occurred_at=request.ended_at,
                        transaction_ref=request.transaction_ref,
                        meter_stop_wh=request.meter_stop_wh,
                        reason=request.reason,
                    )
                )
                return StopTransactionDecision(
                    known=False, already_ended=False, authorization=authorization
                )
            if tx.ended_at is not None:
                log.info(
                    "repeated StopTransaction of %s/%s ignored", tx.charger_id, tx.transaction_ref
                )
                return StopTransactionDecision(
                    known=True, already_ended=True, authorization=authorization
                )
            _add_readings(uow, tx.charger_id, _evse_of(tx), tx, request.readings)
            self._advance_register(tx, request.readings)
            self._end(
                uow,
                tx,
                ended_at=request.ended_at,
                meter_stop_wh=request.meter_stop_wh,
                reason=request.reason,
                id_token=request.id_token,
                readings=request.readings,
            )
        return StopTransactionDecision(known=True, already_ended=False, authorization=authorization)

    # --- OCPP 2.0.1 ----------------------------------------------------------------------

    async def handle_transaction_event(
        self, report: TransactionEventReport
    ) -> TransactionEventDecision:
        """Apply one 2.0.1 TransactionEvent; it is always answered, never rejected."""
        authorization = None
        key = (report.charger_id, report.transaction_ref)
        if report.id_token is not None:
            authorization = await self._authorize(
                report.charger_id, report.id_token, report.evse, report.remote_start_id
            )
        else:
            running = self._running.get(key)
            if (
                running is not None
                and _plain_update(running, report)
                and await self._progress_running(
                    running, lambda writes: self._apply_plain_update(writes, running, report)
                )
            ):
                return TransactionEventDecision(
                    outcome=TransactionEventOutcome.APPLIED, authorization=None
                )
        self._running.pop(key, None)
        async with self._db.transaction() as uow:
            outcome, tx = await self._apply_event(uow, report, authorization)
        self._remember(tx)
        return TransactionEventDecision(outcome=outcome, authorization=authorization)

    def _apply_plain_update(
        self, writes: Writes, tx: TransactionRow, report: TransactionEventReport
    ) -> None:
        """What ``_apply_event`` does for an Updated event that ``_plain_update`` accepts."""
        self._note_seq(writes, tx, report)
        self._charging_state(writes, tx, report)
        if report.readings:
            self._sampled(writes, tx, report.readings)

    async def _apply_event(
        self,
        uow: UnitOfWork,
        report: TransactionEventReport,
        authorization: AuthorizationDecision | None,
    ) -> tuple[TransactionEventOutcome, TransactionRow]:
        session = uow.session
        await self._seen(session, report.charger_id)
        tx = await self._find(session, report.charger_id, report.transaction_ref)
        created = tx is None
        if tx is None:
            if report.event_type is not TransactionEventType.STARTED:
                # The Started event was lost: the charger chose this id, so the transaction is
                # known for what it is; create it rather than lose its energy.
                log.warning(
                    "first event seen for transaction %s/%s is %s seqNo %s",
                    report.charger_id,
                    report.transaction_ref,
                    report.event_type.value,
                    report.seq_no,
                )
            tx = await self._create(
                uow,
                charger_id=report.charger_id,
                transaction_ref=report.transaction_ref,
                evse=report.evse or UNPLACED,
                id_token=report.id_token,
                authorization=authorization,
                meter_start_wh=energy_register_wh(_begin_readings(report.readings), earliest=True),
                started_at=report.occurred_at,
                reservation_id=report.reservation_id,
                remote_start_id=report.remote_start_id,
                offline=report.offline,
                readings=report.readings,
            )
            _add_readings(uow, tx.charger_id, _evse_of(tx), tx, report.readings)
            self._advance_register(tx, report.readings)
        else:
            assert tx.id is not None
            if await self._already_applied(session, tx, report):
                log.info(
                    "duplicate TransactionEvent %s/%s seqNo %s",
                    tx.charger_id,
                    tx.transaction_ref,
                    report.seq_no,
                )
                return TransactionEventOutcome.DUPLICATE, tx
            if tx.ended_at is not None:
                log.info(
                    "TransactionEvent after Ended for %s/%s ignored",
                    tx.charger_id,
                    tx.transaction_ref,
                )
                return TransactionEventOutcome.AFTER_END, tx
            self._place(tx, report.evse)
            self._authorize_late(uow, tx, report, authorization)
        self._note_seq(uow, tx, report)
        self._charging_state(uow, tx, report)
        if tx.remote_start_id is None and report.remote_start_id is not None:
            tx.remote_start_id = report.remote_start_id
        if not created and report.event_type is TransactionEventType.UPDATED and report.readings:
            self._sampled(uow, tx, report.readings)
        if report.event_type is TransactionEventType.ENDED:
            if not created:
                _add_readings(uow, tx.charger_id, _evse_of(tx), tx, report.readings)
                self._advance_register(tx, report.readings)
            self._end(
                uow,
                tx,
                ended_at=report.occurred_at,
                meter_stop_wh=tx.last_meter_wh,
                reason=report.stopped_reason or "Local",
                id_token=report.id_token,
                readings=() if created else report.readings,
            )
        tx.updated_at = self._clock()
        session.add(tx)
        return TransactionEventOutcome.APPLIED, tx

    # --- meter values (both versions) ----------------------------------------------------

    async def handle_meter_values(self, report: MeterValuesReport) -> None:
        if report.transaction_ref is not None:
            key = (report.charger_id, report.transaction_ref)
            running = self._running.get(key)
            if running is not None and await self._progress_running(
                running, lambda writes: self._sampled(writes, running, report.readings)
            ):
                return
            self._running.pop(key, None)
        tx = None
        async with self._db.transaction() as uow:
            session = uow.session
            await self._seen(session, report.charger_id)
            if report.transaction_ref is not None:
                tx = await self._find(session, report.charger_id, report.transaction_ref)
                if tx is None:
                    log.warning(
                        "MeterValues of %s for unknown transaction %s kept without a transaction",
                        report.charger_id,
                        report.transaction_ref,
                    )
            if tx is not None:
                self._sampled(uow, tx, report.readings)
                session.add(tx)
            else:
                _add_readings(uow, report.charger_id, report.evse, None, report.readings)
                uow.record(
                    MeterValuesSampled(
                        charger_id=report.charger_id,
                        occurred_at=max(
                            (r.sampled_at for r in report.readings), default=self._clock()
                        ),
                        evse=report.evse,
                        transaction_ref=None,
                        readings=report.readings,
                    )
                )
        if tx is not None:
            self._remember(tx)

    # --- running transactions kept in memory ---------------------------------------------

    async def _progress_running(self, tx: TransactionRow, apply: Callable[[Writes], None]) -> bool:
        """Apply a change of a running transaction kept in memory with deferred writes only
        (its row, the charger's ``last_seen_at``, rows and events ``apply`` adds). False when
        the entry was replaced or dropped meanwhile: the caller reads the row instead."""
        key = (tx.charger_id, tx.transaction_ref)
        try:
            async with self._db.append() as writes:
                if self._running.get(key) is not tx:
                    raise _Stale
                now = self._clock()
                writes.update(ChargerRow, {"charger_id": tx.charger_id}, {"last_seen_at": now})
                apply(writes)
                tx.updated_at = now
                writes.update(
                    TransactionRow, {"id": tx.id}, {c: getattr(tx, c) for c in _TX_PROGRESS}
                )
        except _Stale:
            return False
        except BaseException:
            self._running.pop(key, None)  # its state may be ahead of the database now
            raise
        return True

    def _remember(self, tx: TransactionRow) -> None:
        """Keep (or drop, once ended) the transaction as just committed."""
        key = (tx.charger_id, tx.transaction_ref)
        self._running.pop(key, None)
        if not self._cache_running or tx.ended_at is not None or tx.id is None:
            return
        if len(self._running) >= _RUNNING_LIMIT:
            del self._running[next(iter(self._running))]
        self._running[key] = tx

    # --- shared steps --------------------------------------------------------------------

    async def _authorize(
        self,
        charger_id: str,
        id_token: IdToken,
        evse: EvseRef | None,
        remote_start_id: int | None = None,
    ) -> AuthorizationDecision:
        return await self._authorizer.authorize(
            AuthorizationRequest(
                charger_id=charger_id,
                id_token=id_token,
                evse=evse,
                remote_start_id=remote_start_id,
            )
        )

    async def _seen(self, session: AsyncSession, charger_id: str) -> None:
        await mark_seen(session, charger_id, self._clock())

    async def _create(
        self,
        uow: UnitOfWork,
        *,
        charger_id: str,
        transaction_ref: str | None,
        evse: EvseRef,
        id_token: IdToken | None,
        authorization: AuthorizationDecision | None,
        meter_start_wh: int | None,
        started_at: datetime,
        reservation_id: int | None,
        remote_start_id: int | None = None,
        offline: bool = False,
        readings: tuple[MeterReading, ...] = (),
    ) -> TransactionRow:
        """A new transaction; without ``transaction_ref`` its id is allocated (1.6)."""
        now = self._clock()
        tx = TransactionRow(
            charger_id=charger_id,
            transaction_ref=transaction_ref or "",
            ocpp_evse_id=evse.ocpp_evse_id,
            connector_id=evse.connector_id,
            id_token=id_token.value if id_token else None,
            id_token_kind=id_token.kind.value if id_token else None,
            meter_start_wh=meter_start_wh,
            last_meter_wh=meter_start_wh,
            started_at=started_at,
            reservation_id=reservation_id,
            remote_start_id=remote_start_id,
            offline=offline,
            authorization_status=authorization.status.value if authorization else None,
            authorization_ref=authorization.reference if authorization else None,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(tx)
        await uow.session.flush()
        if transaction_ref is None:
            assert tx.id is not None
            tx.transaction_ref = str(tx.id)
            uow.session.add(tx)
        uow.record(
            TransactionStarted(
                charger_id=charger_id,
                occurred_at=started_at,
                transaction_ref=tx.transaction_ref,
                evse=evse,
                id_token=id_token,
                authorization=authorization.status if authorization else None,
                meter_start_wh=meter_start_wh,
                reservation_id=reservation_id,
                remote_start_id=remote_start_id,
                offline=offline,
                authorization_ref=tx.authorization_ref,
                readings=readings,
            )
        )
        return tx

    def _end(
        self,
        uow: UnitOfWork,
        tx: TransactionRow,
        *,
        ended_at: datetime,
        meter_stop_wh: int | None,
        reason: str,
        id_token: IdToken | None,
        readings: tuple[MeterReading, ...] = (),
    ) -> None:
        if (
            meter_stop_wh is not None
            and tx.meter_start_wh is not None
            and meter_stop_wh < tx.meter_start_wh
        ):
            log.warning(
                "meter stop %s below meter start %s for %s/%s: energy counted as 0",
                meter_stop_wh,
                tx.meter_start_wh,
                tx.charger_id,
                tx.transaction_ref,
            )
        if meter_stop_wh is not None:
            tx.meter_stop_wh = meter_stop_wh
            tx.last_meter_wh = max(tx.last_meter_wh or meter_stop_wh, meter_stop_wh)
        tx.ended_at = ended_at
        tx.stop_reason = reason
        tx.stop_id_token = id_token.value if id_token else None
        tx.updated_at = self._clock()
        uow.session.add(tx)
        uow.record(
            TransactionEnded(
                charger_id=tx.charger_id,
                occurred_at=ended_at,
                transaction_ref=tx.transaction_ref,
                evse=_evse_of(tx),
                meter_stop_wh=tx.meter_stop_wh,
                energy_wh=tx.energy_wh,
                reason=reason,
                id_token=id_token,
                readings=readings,
            )
        )

    def _sampled(self, uow: Writes, tx: TransactionRow, readings: tuple[MeterReading, ...]) -> None:
        _add_readings(uow, tx.charger_id, _evse_of(tx), tx, readings)
        self._advance_register(tx, readings)
        tx.updated_at = self._clock()
        uow.record(
            MeterValuesSampled(
                charger_id=tx.charger_id,
                occurred_at=max((r.sampled_at for r in readings), default=self._clock()),
                evse=_evse_of(tx),
                transaction_ref=tx.transaction_ref,
                readings=readings,
                energy_wh=tx.energy_wh,
            )
        )

    @staticmethod
    def _advance_register(tx: TransactionRow, readings: Iterable[MeterReading]) -> None:
        register = energy_register_wh(readings)
        if register is None:
            return
        if tx.meter_start_wh is None:
            tx.meter_start_wh = energy_register_wh(_begin_readings(tuple(readings)), earliest=True)
        if tx.last_meter_wh is not None and register < tx.last_meter_wh:
            log.warning(
                "energy register of %s/%s went back from %s to %s Wh: kept %s",
                tx.charger_id,
                tx.transaction_ref,
                tx.last_meter_wh,
                register,
                tx.last_meter_wh,
            )
            return
        tx.last_meter_wh = register

    @staticmethod
    def _place(tx: TransactionRow, evse: EvseRef | None) -> None:
        if evse is not None and _evse_of(tx) == UNPLACED:
            tx.ocpp_evse_id = evse.ocpp_evse_id
            tx.connector_id = evse.connector_id

    def _authorize_late(
        self,
        uow: UnitOfWork,
        tx: TransactionRow,
        report: TransactionEventReport,
        authorization: AuthorizationDecision | None,
    ) -> None:
        if tx.id_token is not None or report.id_token is None:
            return
        tx.id_token = report.id_token.value
        tx.id_token_kind = report.id_token.kind.value
        tx.authorization_status = authorization.status.value if authorization else None
        tx.authorization_ref = authorization.reference if authorization else None
        uow.record(
            TransactionAuthorized(
                charger_id=tx.charger_id,
                occurred_at=report.occurred_at,
                transaction_ref=tx.transaction_ref,
                evse=_evse_of(tx),
                id_token=report.id_token,
                authorization=authorization.status if authorization else None,
                authorization_ref=tx.authorization_ref,
            )
        )

    def _charging_state(
        self, uow: Writes, tx: TransactionRow, report: TransactionEventReport
    ) -> None:
        state = report.charging_state
        if state is None or state.value == tx.charging_state:
            return
        previous = ChargingState(tx.charging_state) if tx.charging_state else None
        tx.charging_state = state.value
        uow.record(
            ChargingStateChanged(
                charger_id=tx.charger_id,
                occurred_at=report.occurred_at,
                transaction_ref=tx.transaction_ref,
                evse=_evse_of(tx),
                state=state,
                previous_state=previous,
            )
        )

    @staticmethod
    def _note_seq(uow: Writes, tx: TransactionRow, report: TransactionEventReport) -> None:
        """Count seqNos that never arrived (constant space, whatever the charger sends)."""
        assert tx.id is not None
        expected = 0 if tx.last_seq_no is None else tx.last_seq_no + 1
        if report.seq_no > expected:
            log.warning(
                "TransactionEvent seqNo gap for %s/%s: expected %s, got %s",
                tx.charger_id,
                tx.transaction_ref,
                expected,
                report.seq_no,
            )
            tx.seq_gap_count += report.seq_no - expected
        elif report.seq_no < expected:
            if tx.seq_gap_count > 0:
                tx.seq_gap_count -= 1  # a late event filling a gap
            else:
                log.warning(
                    "TransactionEvent seqNo %s of %s/%s reuses a number (charger reset?)",
                    report.seq_no,
                    tx.charger_id,
                    tx.transaction_ref,
                )
        tx.last_seq_no = max(report.seq_no, expected - 1)
        uow.insert(
            TransactionEventRow,
            {
                "transaction_id": tx.id,
                "seq_no": report.seq_no,
                "event_type": report.event_type.value,
                "trigger_reason": report.trigger_reason,
                "occurred_at": report.occurred_at,
                "offline": report.offline,
            },
        )

    @staticmethod
    async def _already_applied(
        session: AsyncSession, tx: TransactionRow, report: TransactionEventReport
    ) -> bool:
        """The same event again (a retry): same seqNo, type and time. A reused seqNo with other
        content (a charger that reset its counter) is a new event. A seqNo above every one
        applied so far (``last_seq_no`` is their maximum) is new without asking."""
        if tx.last_seq_no is None or report.seq_no > tx.last_seq_no:
            return False
        stmt = select(TransactionEventRow.id).where(
            TransactionEventRow.transaction_id == tx.id,
            TransactionEventRow.seq_no == report.seq_no,
            TransactionEventRow.event_type == report.event_type.value,
            TransactionEventRow.occurred_at == report.occurred_at,
        )
        return (await session.exec(stmt)).first() is not None

    @staticmethod
    async def _find(
        session: AsyncSession, charger_id: str, transaction_ref: str
    ) -> TransactionRow | None:
        stmt = select(TransactionRow).where(
            TransactionRow.charger_id == charger_id,
            TransactionRow.transaction_ref == transaction_ref,
        )
        return (await session.exec(stmt)).first()

    @staticmethod
    async def _same_start(
        session: AsyncSession, request: StartTransactionRequest
    ) -> TransactionRow | None:
        stmt = select(TransactionRow).where(
            TransactionRow.charger_id == request.charger_id,
            TransactionRow.ocpp_evse_id == request.evse.ocpp_evse_id,
            TransactionRow.id_token == request.id_token.value,
            TransactionRow.started_at == request.started_at,
            TransactionRow.meter_start_wh == request.meter_start_wh,
        )
        return (await session.exec(stmt)).first()


class _Stale(Exception):
    """The running transaction kept in memory changed while a change to it waited its turn."""


def _plain_update(tx: TransactionRow, report: TransactionEventReport) -> bool:
    """An Updated event that changes nothing but the progress columns (``_TX_PROGRESS``): next
    seqNo or later, no token, no placement, no remote start id to note, transaction running."""
    return (
        report.event_type is TransactionEventType.UPDATED
        and report.id_token is None
        and tx.ended_at is None
        and (tx.last_seq_no is None or report.seq_no > tx.last_seq_no)
        and (report.evse is None or _evse_of(tx) != UNPLACED)
        and (report.remote_start_id is None or tx.remote_start_id is not None)
    )


def _evse_of(tx: TransactionRow) -> EvseRef:
    return EvseRef(ocpp_evse_id=tx.ocpp_evse_id, connector_id=tx.connector_id)


def _begin_readings(readings: tuple[MeterReading, ...]) -> tuple[MeterReading, ...]:
    """Transaction.Begin readings if any, else all (of which the earliest register counts)."""
    begin = tuple(r for r in readings if r.context is ReadingContext.TRANSACTION_BEGIN)
    return begin or readings


def _add_readings(
    uow: Writes,
    charger_id: str,
    evse: EvseRef,
    tx: TransactionRow | None,
    readings: Iterable[MeterReading],
) -> None:
    for reading in readings:
        signed = reading.signed
        uow.insert(
            MeterValueRow,
            {
                "charger_id": charger_id,
                "transaction_id": tx.id if tx is not None else None,
                "ocpp_evse_id": evse.ocpp_evse_id,
                "connector_id": evse.connector_id,
                "sampled_at": reading.sampled_at,
                "measurand": reading.measurand,
                "value": str(reading.value) if reading.value is not None else None,
                "unit": reading.unit,
                "context": reading.context.value,
                "phase": reading.phase,
                "location": reading.location,
                "signed_data": signed.data if signed else None,
                "signing_method": signed.signing_method if signed else None,
                "encoding_method": signed.encoding_method if signed else None,
                "public_key": signed.public_key if signed else None,
            },
        )
