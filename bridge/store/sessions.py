"""Storage of OCPI Sessions and CDRs. Writes take the caller's session (the projector's
transaction); reads for the Sender interfaces return stored OCPI JSON, scoped to one partner."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.store.pagination import DocumentPages
from bridge.store.tables import CdrRow, SessionRow
from csms.store.database import Database


async def session_of_transaction(
    session: AsyncSession, charger_id: str, transaction_ref: str
) -> SessionRow | None:
    stmt = select(SessionRow).where(
        SessionRow.charger_id == charger_id, SessionRow.transaction_ref == transaction_ref
    )
    return (await session.exec(stmt)).first()


async def sessions_of_transactions(
    session: AsyncSession, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], SessionRow]:
    """The sessions of several transactions, by ``(charger_id, transaction_ref)``, in one query
    (the transactions without a session are missing)."""
    wanted = set(keys)
    if not wanted:
        return {}
    stmt = select(SessionRow).where(
        col(SessionRow.charger_id).in_({charger_id for charger_id, _ in wanted}),
        col(SessionRow.transaction_ref).in_({ref for _, ref in wanted}),
    )
    found: dict[tuple[str, str], SessionRow] = {}
    for row in (await session.exec(stmt)).all():
        key = (row.charger_id, row.transaction_ref or "")
        if key in wanted:
            found[key] = row
    return found


async def running_session_at(
    session: AsyncSession, charger_id: str, ocpp_evse_id: int
) -> SessionRow | None:
    """The transaction's session still running on that EVSE of the charger (the latest, if
    several; a command's session waiting for its transaction is not running)."""
    stmt = (
        select(SessionRow)
        .where(
            SessionRow.charger_id == charger_id,
            SessionRow.ocpp_evse_id == ocpp_evse_id,
            col(SessionRow.transaction_ref).is_not(None),
            col(SessionRow.ended_at).is_(None),
        )
        .order_by(col(SessionRow.started_at).desc())
    )
    return (await session.exec(stmt)).first()


_SESSIONS = DocumentPages(
    col(SessionRow.document),
    # A session is published once it has a document (ix_ocpi_sessions_partner_order).
    where=[
        col(SessionRow.partner_id) == bindparam("partner_id"),
        col(SessionRow.document).is_not(None),
    ],
    last_updated=col(SessionRow.last_updated),
    key=col(SessionRow.id),
)
_CDRS = DocumentPages(
    col(CdrRow.document),
    where=[col(CdrRow.partner_id) == bindparam("partner_id")],
    last_updated=col(CdrRow.last_updated),
    key=col(CdrRow.id),
)


class SessionReader:
    """Sessions and CDRs as stored OCPI JSON, for the Sender interfaces and operators."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def sessions_page(
        self,
        partner_id: int,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> tuple[list[str], int]:
        return await _SESSIONS.page(
            self._db,
            offset=offset,
            limit=limit,
            date_from=date_from,
            date_to=date_to,
            partner_id=partner_id,
        )

    async def cdrs_page(
        self,
        partner_id: int,
        *,
        offset: int,
        limit: int,
        date_from: datetime | None,
        date_to: datetime | None,
    ) -> tuple[list[str], int]:
        return await _CDRS.page(
            self._db,
            offset=offset,
            limit=limit,
            date_from=date_from,
            date_to=date_to,
            partner_id=partner_id,
        )

    async def session(self, session_id: str) -> SessionRow | None:
        async with self._db.read() as session:
            return await session.get(SessionRow, session_id)

    async def cdr(self, cdr_id: str) -> CdrRow | None:
        async with self._db.read() as session:
            return await session.get(CdrRow, cdr_id)

    async def cdr_of_session(self, session_id: str) -> CdrRow | None:
        async with self._db.read() as session:
            stmt = select(CdrRow).where(CdrRow.session_id == session_id)
            return (await session.exec(stmt)).first()

    async def save_cdr_location(self, cdr_id: str, url: str) -> None:
        async with self._db.transaction() as uow:
            row = await uow.session.get(CdrRow, cdr_id)
            if row is not None:
                row.location_url = url[:512]
                uow.session.add(row)
