"""Partner repository: rows in, ``Partner`` values out. State changes that race with a
concurrent request (two credentials POSTs with the same token A, a DELETE during a PUT) are
compare-and-set on the token the caller authenticated with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.models import CredentialsRole, Endpoint
from bridge.partners import ExpectedRole, Initiator, Partner, PartnerStatus
from bridge.store.tables import PartnerPartyRow, PartnerRow
from csms.store.database import Database

_ENDPOINTS = TypeAdapter(list[Endpoint])
_ROLES = TypeAdapter(list[CredentialsRole])


class PartnerConflict(Exception):
    """A partner update that cannot be applied."""


class PartnerChanged(PartnerConflict):
    """The partner changed under us: a concurrent request won."""


class RoleTaken(PartnerConflict):
    """A role (role, country, party) is already held by another registered partner."""


class PartnerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads ---------------------------------------------------------------------------

    async def get(self, partner_id: int) -> Partner | None:
        async with self.db.read() as session:
            row = await session.get(PartnerRow, partner_id)
            return _to_partner(row) if row is not None else None

    async def list_all(self) -> list[Partner]:
        async with self.db.read() as session:
            rows = (await session.exec(select(PartnerRow).order_by(col(PartnerRow.id)))).all()
            return [_to_partner(row) for row in rows]

    async def find_by_token(self, candidates: Sequence[str]) -> tuple[Partner, str] | None:
        """The partner that accepts one of these tokens (its current one or, during a rotation
        we started, the new one), and the token that matched."""
        if not candidates:
            return None
        stmt = select(PartnerRow).where(
            or_(
                col(PartnerRow.token_accept).in_(candidates),
                col(PartnerRow.token_accept_pending).in_(candidates),
            )
        )
        async with self.db.read() as session:
            row = (await session.exec(stmt)).first()
            if row is None:
                return None
            matched = next(
                t for t in candidates if t in (row.token_accept, row.token_accept_pending)
            )
            return _to_partner(row), matched

    async def owner_of_party(
        self, roles: Sequence[CredentialsRole], *, except_partner: int | None = None
    ) -> CredentialsRole | None:
        """A role of ``roles`` whose party already belongs to another registered partner."""
        async with self.db.read() as session:
            for role in roles:
                stmt = select(PartnerPartyRow).where(
                    PartnerPartyRow.country_code == role.country_code.upper(),
                    PartnerPartyRow.party_id == role.party_id.upper(),
                )
                row = (await session.exec(stmt)).first()
                if row is not None and row.partner_id != except_partner:
                    return role
        return None

    # --- writes --------------------------------------------------------------------------

    async def add_pending(
        self,
        *,
        token_a: str,
        expected: ExpectedRole | None,
        encode_token: bool,
        now: datetime,
    ) -> Partner:
        return await self._insert(
            PartnerRow(
                status=PartnerStatus.PENDING.value,
                initiated_by=Initiator.PARTNER.value,
                token_accept=token_a,
                encode_token=encode_token,
                created_at=now,
                updated_at=now,
            ),
            expected,
        )

    async def add_registering(
        self,
        *,
        token_b: str,
        versions_url: str,
        version: str,
        endpoints: Sequence[Endpoint],
        expected: ExpectedRole | None,
        encode_token: bool,
        now: datetime,
    ) -> Partner:
        return await self._insert(
            PartnerRow(
                status=PartnerStatus.REGISTERING.value,
                initiated_by=Initiator.US.value,
                token_accept=token_b,
                encode_token=encode_token,
                versions_url=versions_url,
                version=version,
                endpoints_json=_dump_endpoints(endpoints),
                created_at=now,
                updated_at=now,
            ),
            expected,
        )

    async def _insert(self, row: PartnerRow, expected: ExpectedRole | None) -> Partner:
        if expected is not None:
            row.expected_role = expected.role
            row.expected_country_code = expected.country_code.upper()
            row.expected_party_id = expected.party_id.upper()
        async with self.db.transaction() as uow:
            uow.session.add(row)
            await uow.session.flush()
            return _to_partner(row)

    async def store_credentials(
        self,
        partner_id: int,
        *,
        authenticated_with: str,
        from_status: PartnerStatus,
        token_accept: str,
        token_present: str,
        versions_url: str,
        version: str,
        endpoints: Sequence[Endpoint],
        roles: Sequence[CredentialsRole],
        now: datetime,
    ) -> Partner:
        """Complete a registration or an update: new tokens both ways, the partner's version,
        endpoints and roles. Refused (``PartnerConflict``) when the partner is no longer in
        ``from_status`` with ``authenticated_with`` as a token we accept; ``RoleTaken`` when a role
        is held by another partner."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            # The condition is part of the UPDATE: atomic even against another process.
            result = await connection.execute(
                update(PartnerRow)
                .where(
                    col(PartnerRow.id) == partner_id,
                    col(PartnerRow.status) == from_status.value,
                    _accepts(authenticated_with),
                )
                .values(
                    status=PartnerStatus.REGISTERED.value,
                    token_accept=token_accept,
                    token_accept_pending=None,
                    token_present=token_present,
                    versions_url=versions_url,
                    version=version,
                    endpoints_json=_dump_endpoints(endpoints),
                    roles_json=_dump_roles(roles),
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                raise PartnerChanged("the partner changed during the request")
            await connection.execute(
                update(PartnerRow)
                .where(col(PartnerRow.id) == partner_id, col(PartnerRow.registered_at).is_(None))
                .values(registered_at=now)
            )
            await _delete_parties(connection, partner_id)
            parties = sorted({(r.country_code.upper(), r.party_id.upper()) for r in roles})
            try:
                await connection.execute(
                    insert(PartnerPartyRow),
                    [
                        {"partner_id": partner_id, "country_code": cc, "party_id": pid}
                        for cc, pid in parties
                    ],
                )
            except IntegrityError as exc:
                raise RoleTaken("a party is already registered by another partner") from exc
            return await self._reload(uow.session, partner_id)

    async def begin_rotation(self, partner_id: int, token: str) -> bool:
        """Accept ``token`` besides the current one while we rotate; only for a registered
        partner."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(
                update(PartnerRow)
                .where(
                    col(PartnerRow.id) == partner_id,
                    col(PartnerRow.status) == PartnerStatus.REGISTERED.value,
                )
                .values(token_accept_pending=token)
            )
            return bool(result.rowcount == 1)

    async def abort_rotation(self, partner_id: int, token: str) -> None:
        """Stop accepting ``token`` (the partner refused the rotation that introduced it)."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            await connection.execute(
                update(PartnerRow)
                .where(
                    col(PartnerRow.id) == partner_id,
                    col(PartnerRow.token_accept_pending) == token,
                )
                .values(token_accept_pending=None)
            )

    async def unregister(
        self, partner_id: int, *, authenticated_with: str | None, now: datetime
    ) -> Partner:
        """Invalidate every token of the partner and free its parties; the row stays as
        history. With ``authenticated_with``, only if that token is still accepted (else
        ``PartnerChanged``)."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            conditions = [
                col(PartnerRow.id) == partner_id,
                col(PartnerRow.status) != PartnerStatus.UNREGISTERED.value,
            ]
            if authenticated_with is not None:
                conditions.append(_accepts(authenticated_with))
            result = await connection.execute(
                update(PartnerRow)
                .where(*conditions)
                .values(
                    status=PartnerStatus.UNREGISTERED.value,
                    token_accept=None,
                    token_accept_pending=None,
                    token_present=None,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                raise PartnerChanged("the partner changed during the request")
            await _delete_parties(connection, partner_id)
            return await self._reload(uow.session, partner_id)

    async def _reload(self, session: AsyncSession, partner_id: int) -> Partner:
        row = await session.get(PartnerRow, partner_id, populate_existing=True)
        assert row is not None
        return _to_partner(row)

    async def delete(self, partner_id: int) -> None:
        """Forget a partner whose registration never completed."""
        async with self.db.transaction() as uow:
            row = await uow.session.get(PartnerRow, partner_id)
            if row is not None:
                await uow.session.delete(row)


def _accepts(token: str) -> ColumnElement[bool]:
    return or_(col(PartnerRow.token_accept) == token, col(PartnerRow.token_accept_pending) == token)


async def _delete_parties(connection: AsyncConnection, partner_id: int) -> None:
    await connection.execute(
        delete(PartnerPartyRow).where(col(PartnerPartyRow.partner_id) == partner_id)
    )


def _dump_endpoints(endpoints: Sequence[Endpoint]) -> str:
    return json.dumps([e.model_dump(mode="json") for e in endpoints], separators=(",", ":"))


def _dump_roles(roles: Sequence[CredentialsRole]) -> str:
    return json.dumps(
        [r.model_dump(mode="json", exclude_none=True) for r in roles], separators=(",", ":")
    )


def _to_partner(row: PartnerRow) -> Partner:
    assert row.id is not None
    expected = None
    if row.expected_role and row.expected_country_code and row.expected_party_id:
        expected = ExpectedRole(
            role=row.expected_role,
            country_code=row.expected_country_code,
            party_id=row.expected_party_id,
        )
    return Partner(
        id=row.id,
        status=PartnerStatus(row.status),
        initiated_by=Initiator(row.initiated_by),
        token_accept=row.token_accept,
        token_present=row.token_present,
        encode_token=row.encode_token,
        versions_url=row.versions_url,
        version=row.version,
        endpoints=tuple(_ENDPOINTS.validate_json(row.endpoints_json)),
        roles=tuple(_ROLES.validate_json(row.roles_json)),
        expected=expected,
        created_at=row.created_at,
        updated_at=row.updated_at,
        registered_at=row.registered_at,
    )
