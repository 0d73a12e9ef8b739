"""Partner repository: rows in, ``Partner`` values out. State changes that race with a
concurrent request (two credentials POSTs with the same token A, a DELETE during a PUT) are
compare-and-set on the token the caller authenticated with."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy import delete, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.models import CredentialsRole, Endpoint
from bridge.partners import ExpectedRole, Initiator, Partner, PartnerStatus
from bridge.store.tables import PartnerRoleRow, PartnerRow
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

    async def owner_of_roles(
        self, roles: Sequence[CredentialsRole], *, except_partner: int | None = None
    ) -> tuple[CredentialsRole, int] | None:
        """A role of ``roles`` already held by another registered partner, and its holder."""
        async with self.db.read() as session:
            for role in roles:
                stmt = select(PartnerRoleRow).where(
                    PartnerRoleRow.role == role.role.value,
                    PartnerRoleRow.country_code == role.country_code.upper(),
                    PartnerRoleRow.party_id == role.party_id.upper(),
                )
                row = (await session.exec(stmt)).first()
                if row is not None and row.partner_id != except_partner:
                    return role, row.partner_id
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
        row = PartnerRow(
            status=PartnerStatus.PENDING.value,
            initiated_by=Initiator.PARTNER.value,
            token_accept=token_a,
            encode_token=encode_token,
            expected_role=expected.role if expected else None,
            expected_country_code=expected.country_code.upper() if expected else None,
            expected_party_id=expected.party_id.upper() if expected else None,
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as uow:
            uow.session.add(row)
            await uow.session.flush()
            return _to_partner(row)

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
        row = PartnerRow(
            status=PartnerStatus.REGISTERING.value,
            initiated_by=Initiator.US.value,
            token_accept=token_b,
            encode_token=encode_token,
            versions_url=versions_url,
            version=version,
            endpoints_json=_dump_endpoints(endpoints),
            expected_role=expected.role if expected else None,
            expected_country_code=expected.country_code.upper() if expected else None,
            expected_party_id=expected.party_id.upper() if expected else None,
            created_at=now,
            updated_at=now,
        )
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
            row = await uow.session.get(PartnerRow, partner_id, with_for_update=True)
            if (
                row is None
                or row.status != from_status.value
                or authenticated_with not in (row.token_accept, row.token_accept_pending)
            ):
                raise PartnerChanged("the partner changed during the request")
            row.status = PartnerStatus.REGISTERED.value
            row.token_accept = token_accept
            row.token_accept_pending = None
            row.token_present = token_present
            row.versions_url = versions_url
            row.version = version
            row.endpoints_json = _dump_endpoints(endpoints)
            row.roles_json = _dump_roles(roles)
            row.updated_at = now
            if row.registered_at is None:
                row.registered_at = now
            await _delete_roles(uow.session, partner_id)
            for role in roles:
                uow.session.add(
                    PartnerRoleRow(
                        partner_id=partner_id,
                        role=role.role.value,
                        country_code=role.country_code.upper(),
                        party_id=role.party_id.upper(),
                    )
                )
            try:
                await uow.session.flush()
            except IntegrityError as exc:
                raise RoleTaken("a role is already registered by another partner") from exc
            return _to_partner(row)

    async def set_pending_token(self, partner_id: int, token: str | None) -> None:
        async with self.db.transaction() as uow:
            row = await uow.session.get(PartnerRow, partner_id)
            if row is not None:
                row.token_accept_pending = token

    async def update_endpoints(
        self, partner_id: int, *, version: str, endpoints: Sequence[Endpoint], now: datetime
    ) -> None:
        async with self.db.transaction() as uow:
            row = await uow.session.get(PartnerRow, partner_id)
            if row is not None:
                row.version = version
                row.endpoints_json = _dump_endpoints(endpoints)
                row.updated_at = now

    async def unregister(
        self, partner_id: int, *, authenticated_with: str | None, now: datetime
    ) -> Partner:
        """Invalidate every token of the partner and free its roles; the row stays as history.
        With ``authenticated_with``, only if that token is still accepted (else
        ``PartnerChanged``)."""
        async with self.db.transaction() as uow:
            row = await uow.session.get(PartnerRow, partner_id, with_for_update=True)
            if row is None or (
                authenticated_with is not None and authenticated_with != row.token_accept
            ):
                raise PartnerChanged("the partner changed during the request")
            row.status = PartnerStatus.UNREGISTERED.value
            row.token_accept = None
            row.token_accept_pending = None
            row.token_present = None
            row.updated_at = now
            await _delete_roles(uow.session, partner_id)
            return _to_partner(row)

    async def delete(self, partner_id: int) -> None:
        """Forget a partner whose registration never completed."""
        async with self.db.transaction() as uow:
            row = await uow.session.get(PartnerRow, partner_id)
            if row is not None:
                await uow.session.delete(row)


async def _delete_roles(session: AsyncSession, partner_id: int) -> None:
    connection = await session.connection()
    await connection.execute(
        delete(PartnerRoleRow).where(col(PartnerRoleRow.partner_id) == partner_id)
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
