"""The central system's own token authorizer: a local table of idTags.

The OCPI bridge replaces it with one that consults partner tokens; both implement
``csms.ports.TokenAuthorizer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlmodel import select

from csms.clock import utc_now
from csms.domain.model import AuthorizationStatus
from csms.domain.requests import AuthorizationDecision, AuthorizationRequest
from csms.store.database import Database
from csms.store.tables import LocalTokenRow


class LocalTokenAuthorizer:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        async with self._db.read() as session:
            row = await session.get(LocalTokenRow, request.id_token.value)
        if row is None:
            return AuthorizationDecision(status=AuthorizationStatus.UNKNOWN)
        status = AuthorizationStatus(row.status)
        if (
            status is AuthorizationStatus.ACCEPTED
            and row.expires_at
            and row.expires_at <= self._clock()
        ):
            status = AuthorizationStatus.EXPIRED
        return AuthorizationDecision(
            status=status, expires_at=row.expires_at, group_id=row.parent_id_tag
        )

    async def put_token(
        self,
        id_tag: str,
        *,
        status: AuthorizationStatus = AuthorizationStatus.ACCEPTED,
        expires_at: datetime | None = None,
        parent_id_tag: str | None = None,
    ) -> None:
        async with self._db.transaction() as uow:
            row = await uow.session.get(LocalTokenRow, id_tag)
            row = row or LocalTokenRow(id_tag=id_tag)
            row.status = status.value
            row.expires_at = expires_at
            row.parent_id_tag = parent_id_tag
            uow.session.add(row)

    async def list_tokens(self) -> Sequence[LocalTokenRow]:
        async with self._db.read() as session:
            return (await session.exec(select(LocalTokenRow).order_by(LocalTokenRow.id_tag))).all()
