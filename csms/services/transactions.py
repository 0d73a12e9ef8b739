"""Charging transactions: start, meter values, stop. Each handler is one database transaction;
authorization (which may wait on an eMSP) happens before it, never inside it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from csms.clock import utc_now
from csms.domain.energy import energy_register_wh
from csms.domain.events import (
    MeterValuesSampled,
    TransactionEnded,
    TransactionStarted,
    UnknownTransactionStopped,
)
from csms.domain.model import EvseRef, MeterReading
from csms.domain.requests import (
    AuthorizationDecision,
    AuthorizationRequest,
    MeterValuesReport,
    StartTransactionDecision,
    StartTransactionRequest,
    StopTransactionDecision,
    StopTransactionRequest,
)
from csms.ports import TokenAuthorizer
from csms.services.chargers import charger_row
from csms.store.database import Database
from csms.store.tables import MeterValueRow, TransactionRow

log = logging.getLogger(__name__)


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

    async def handle_authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        return await self._authorizer.authorize(request)

    async def handle_start(self, request: StartTransactionRequest) -> StartTransactionDecision:
        """A transaction the charger has started (OCPP 1.6): we allocate its id.

        A StartTransaction repeated by the charger (the first answer was lost) gets the id of
        the transaction it already created instead of a second transaction.
        """
        authorization = await self._authorizer.authorize(
            AuthorizationRequest(
                charger_id=request.charger_id, id_token=request.id_token, evse=request.evse
            )
        )
        now = self._clock()
        async with self._db.transaction() as uow:
            session = uow.session
            charger = await charger_row(session, request.charger_id)
            charger.last_seen_at = now
            session.add(charger)
            existing = await self._same_start(session, request)
            if existing is not None:
                log.info("repeated StartTransaction of %s", request.charger_id)
                return StartTransactionDecision(
                    transaction_ref=existing.transaction_ref, authorization=authorization
                )
            row = TransactionRow(
                charger_id=request.charger_id,
                transaction_ref="",
                ocpp_evse_id=request.evse.ocpp_evse_id,
                connector_id=request.evse.connector_id,
                id_token=request.id_token.value,
                id_token_kind=request.id_token.kind.value,
                meter_start_wh=request.meter_start_wh,
                last_meter_wh=request.meter_start_wh,
                started_at=request.started_at,
                reservation_id=request.reservation_id,
                authorization_status=authorization.status.value,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            row.transaction_ref = str(row.id)
            session.add(row)
            uow.record(
                TransactionStarted(
                    charger_id=request.charger_id,
                    occurred_at=request.started_at,
                    transaction_ref=row.transaction_ref,
                    evse=request.evse,
                    id_token=request.id_token,
                    meter_start_wh=request.meter_start_wh,
                    reservation_id=request.reservation_id,
                )
            )
        return StartTransactionDecision(
            transaction_ref=row.transaction_ref, authorization=authorization
        )

    async def handle_meter_values(self, report: MeterValuesReport) -> None:
        now = self._clock()
        async with self._db.transaction() as uow:
            session = uow.session
            charger = await charger_row(session, report.charger_id)
            charger.last_seen_at = now
            session.add(charger)
            tx = None
            if report.transaction_ref is not None:
                tx = await self._transaction(session, report.charger_id, report.transaction_ref)
                if tx is None:
                    log.warning(
                        "MeterValues of %s for unknown transaction %s kept without a transaction",
                        report.charger_id,
                        report.transaction_ref,
                    )
            _add_readings(session, report.charger_id, report.evse, tx, report.readings)
            energy_wh = None
            if tx is not None:
                self._advance_register(tx, report.readings, now)
                session.add(tx)
                energy_wh = tx.energy_wh
            uow.record(
                MeterValuesSampled(
                    charger_id=report.charger_id,
                    occurred_at=max((r.sampled_at for r in report.readings), default=now),
                    evse=report.evse,
                    transaction_ref=tx.transaction_ref if tx is not None else None,
                    readings=report.readings,
                    energy_wh=energy_wh,
                )
            )

    async def handle_stop(self, request: StopTransactionRequest) -> StopTransactionDecision:
        authorization = None
        if request.id_token is not None:
            authorization = await self._authorizer.authorize(
                AuthorizationRequest(charger_id=request.charger_id, id_token=request.id_token)
            )
        now = self._clock()
        async with self._db.transaction() as uow:
            session = uow.session
            charger = await charger_row(session, request.charger_id)
            charger.last_seen_at = now
            session.add(charger)
            tx = await self._transaction(session, request.charger_id, request.transaction_ref)
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
                    "repeated StopTransaction of %s for %s ignored",
                    request.charger_id,
                    request.transaction_ref,
                )
                return StopTransactionDecision(
                    known=True, already_ended=True, authorization=authorization
                )
            evse = EvseRef(ocpp_evse_id=tx.ocpp_evse_id, connector_id=tx.connector_id)
            _add_readings(session, request.charger_id, evse, tx, request.readings)
            self._advance_register(tx, request.readings, now)
            if request.meter_stop_wh < tx.meter_start_wh:
                log.warning(
                    "meterStop %s below meterStart %s for %s/%s: energy counted as 0",
                    request.meter_stop_wh,
                    tx.meter_start_wh,
                    request.charger_id,
                    tx.transaction_ref,
                )
            tx.meter_stop_wh = request.meter_stop_wh
            tx.last_meter_wh = max(tx.last_meter_wh, request.meter_stop_wh)
            tx.ended_at = request.ended_at
            tx.stop_reason = request.reason
            tx.stop_id_token = request.id_token.value if request.id_token else None
            tx.updated_at = now
            session.add(tx)
            uow.record(
                TransactionEnded(
                    charger_id=request.charger_id,
                    occurred_at=request.ended_at,
                    transaction_ref=tx.transaction_ref,
                    evse=evse,
                    meter_stop_wh=request.meter_stop_wh,
                    energy_wh=tx.energy_wh,
                    reason=request.reason,
                    id_token=request.id_token,
                )
            )
        return StopTransactionDecision(known=True, already_ended=False, authorization=authorization)

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    async def _transaction(
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

    @staticmethod
    def _advance_register(
        tx: TransactionRow, readings: Iterable[MeterReading], now: datetime
    ) -> None:
        register = energy_register_wh(readings)
        if register is None:
            return
        if register < tx.last_meter_wh:
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
        tx.updated_at = now


def _add_readings(
    session: AsyncSession,
    charger_id: str,
    evse: EvseRef,
    tx: TransactionRow | None,
    readings: Iterable[MeterReading],
) -> None:
    for reading in readings:
        signed = reading.signed
        session.add(
            MeterValueRow(
                charger_id=charger_id,
                transaction_id=tx.id if tx is not None else None,
                ocpp_evse_id=evse.ocpp_evse_id,
                connector_id=evse.connector_id,
                sampled_at=reading.sampled_at,
                measurand=reading.measurand,
                value=str(reading.value) if reading.value is not None else None,
                unit=reading.unit,
                context=reading.context.value,
                phase=reading.phase,
                location=reading.location,
                signed_data=signed.data if signed else None,
                signing_method=signed.signing_method if signed else None,
                encoding_method=signed.encoding_method if signed else None,
                public_key=signed.public_key if signed else None,
            )
        )
