"""Partner repository: rows in, ``Partner`` values out. State changes that race with a
concurrent request (two credentials POSTs with the same token A, a DELETE during a PUT) are
compare-and-set on the token the caller authenticated with.

Every write bumps a generation counter (``ocpi_partner_generation``) in the same transaction,
whichever process makes it (the server, the CLI): a cache of what the partner rows said (the
token -> partner lookup of every OCPI request) is valid as long as the generation it was read
at is the current one. ``generation()`` reads it where that is cheap (a file SQLite database,
through a plain ``sqlite3`` connection: no thread hop), else answers None (no caching).

It does not read the counter on every call: a write through this store makes the next call read
it (so a change made by this process is seen at once), and otherwise the value read is used for
at most ``recheck_s`` (default half a second), the longest a change made by another process (the
CLI) can go unseen. A read per OCPI request was measured at a sixth of a saturated core: each
one gives up the GIL, and the event loop then waits behind the database threads for it.

A registration that completes also stores the names of the steps to run after it (queue every
Location for the new partner, ...): ``ocpi_partner_follow_ups`` rows, deleted when a step is
done, kept with their attempts and last error when it failed, so that nothing is lost when the
step fails or the process stops first."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.request import pathname2url

from pydantic import TypeAdapter
from sqlalchemy import (
    Column,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    or_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.ocpi.models import CredentialsRole, Endpoint
from bridge.partners import ExpectedRole, FollowUp, Initiator, Partner, PartnerStatus
from bridge.store.tables import PartnerPartyRow, PartnerRow
from csms.store.database import Database, UnitOfWork, sqlite_file
from csms.store.types import UtcDateTime

log = logging.getLogger(__name__)

_ENDPOINTS = TypeAdapter(list[Endpoint])
_ROLES = TypeAdapter(list[CredentialsRole])


class PartnerGenerationRow(SQLModel, table=True):
    """One row: a counter every write to the partners bumps (see the module docstring)."""

    __tablename__ = "ocpi_partner_generation"

    id: int = Field(default=1, primary_key=True)
    generation: int = 0


@event.listens_for(PartnerGenerationRow.__table__, "after_create")  # type: ignore[attr-defined]
def _first_generation(target: Table, connection: Connection, **_: Any) -> None:
    connection.execute(insert(target).values(id=1, generation=0))


class FollowUpRow(SQLModel, table=True):
    """A step still to run after a partner registered (``PartnerService.on_registered``)."""

    __tablename__ = "ocpi_partner_follow_ups"

    partner_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("ocpi_partners.id", ondelete="CASCADE"), primary_key=True
        )
    )
    step: str = Field(sa_column=Column(String(255), primary_key=True))
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


_ERROR_MAX = 2000  # characters of a follow-up's last_error kept
RECHECK_S = 0.5
"""Seconds a generation read is used before it is read again (see the module docstring)."""


class PartnerConflict(Exception):
    """A partner update that cannot be applied."""


class PartnerChanged(PartnerConflict):
    """The partner changed under us: a concurrent request won."""


class RoleTaken(PartnerConflict):
    """A role (role, country, party) is already held by another registered partner."""


K = TypeVar("K")
V = TypeVar("V")


class GenerationCache(Generic[K, V]):
    """Values read from the partner rows, answered as long as the partners' generation is the
    one they were read at (``PartnerStore.generation``). Use: ``value, generation =
    cache.lookup(key)``; on a miss read the database, then ``cache.keep(key, value,
    generation)``, which keeps it only if no partner changed meanwhile."""

    def __init__(self, generation: Callable[[], int | None], *, max_size: int = 1024) -> None:
        self._generation = generation
        self._max_size = max_size
        self._values: dict[K, V] = {}
        self._at: int | None = None

    def lookup(self, key: K) -> tuple[V | None, int | None]:
        generation = self._generation()
        if generation is None:
            return None, None
        if generation != self._at:
            self._values.clear()
            self._at = generation
        return self._values.get(key), generation

    def keep(self, key: K, value: V, generation: int | None) -> None:
        # The database read happened between two reads of the same generation: it saw it.
        if generation is None or generation != self._at or self._generation() != generation:
            return
        if len(self._values) >= self._max_size:
            self._values.clear()
        self._values[key] = value

    def clear(self) -> None:
        self._values.clear()
        self._at = None


class PartnerStore:
    def __init__(
        self,
        db: Database,
        *,
        recheck_s: float = RECHECK_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._generation_path = sqlite_file(db.url)
        self._generation_reader: sqlite3.Connection | None = None
        self._recheck_s = recheck_s
        self._monotonic = monotonic
        self._generation_read: tuple[float, int] | None = None  # (when, value)
        self._partners: GenerationCache[int, Partner] = GenerationCache(self.generation)
        # Every partner, in id order (the Location projection asks for every batch).
        self._everyone: GenerationCache[str, tuple[Partner, ...]] = GenerationCache(
            self.generation, max_size=1
        )

    # --- generation ----------------------------------------------------------------------

    def generation(self) -> int | None:
        """The partners' generation, or None when it cannot be read cheaply (not a file
        SQLite database, the counter missing, SQLite busy): then nothing may be cached.

        Read again after a write through this store, or when the value read is
        ``recheck_s`` old. A plain ``sqlite3`` connection in autocommit mode on the event
        loop's thread: each read is a fresh read transaction on the WAL, which never waits
        for a writer (busy -> None, immediately)."""
        if self._generation_path is None:
            return None
        now = self._monotonic()
        if self._generation_read is not None:
            read_at, value = self._generation_read
            if 0 <= now - read_at < self._recheck_s:
                return value
        try:
            if self._generation_reader is None:
                self._generation_reader = sqlite3.connect(
                    f"file:{pathname2url(self._generation_path)}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=0,
                )
            rows = self._generation_reader.execute(_GENERATION_SQL).fetchall()
        except sqlite3.Error as exc:
            log.debug("partner generation not readable: %s", exc)
            self.close()
            return None
        if not rows:
            return None
        value = int(rows[0][0])
        self._generation_read = (now, value)
        return value

    def recheck(self) -> None:
        """Read the generation again at the next ``generation()`` (after a change this process
        made, or one it was told of)."""
        self._generation_read = None

    @asynccontextmanager
    async def _changing(self) -> AsyncIterator[UnitOfWork]:
        """A transaction that writes partner rows (and bumps the generation): whatever its
        outcome, the next ``generation()`` reads the counter again."""
        try:
            async with self.db.transaction() as uow:
                yield uow
        finally:
            self.recheck()

    def close(self) -> None:
        """Close the generation reader (opened again when needed) and forget the cache."""
        self._generation_read = None
        self._partners.clear()
        self._everyone.clear()
        reader, self._generation_reader = self._generation_reader, None
        if reader is not None:
            reader.close()

    # --- reads ---------------------------------------------------------------------------

    async def get(self, partner_id: int) -> Partner | None:
        """The partner as stored now (from the cache while no partner changed: the outbox
        worker asks for every delivery)."""
        cached, generation = self._partners.lookup(partner_id)
        if cached is not None:
            return cached
        async with self.db.read() as session:
            row = await session.get(PartnerRow, partner_id)
            partner = _to_partner(row) if row is not None else None
        if partner is not None:
            self._partners.keep(partner_id, partner, generation)
        return partner

    async def list_all(self) -> list[Partner]:
        """Every partner in id order (from the cache while no partner changed)."""
        cached, generation = self._everyone.lookup("all")
        if cached is not None:
            return list(cached)
        async with self.db.read() as session:
            rows = (await session.exec(select(PartnerRow).order_by(col(PartnerRow.id)))).all()
            partners = tuple(_to_partner(row) for row in rows)
        self._everyone.keep("all", partners, generation)
        return list(partners)

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
        async with self._changing() as uow:
            uow.session.add(row)
            await uow.session.flush()
            await _bump(await uow.session.connection())
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
        follow_ups: Sequence[str] = (),
        follow_up_at: datetime | None = None,
    ) -> Partner:
        """Complete a registration or an update: new tokens both ways, the partner's version,
        endpoints and roles. Refused (``PartnerConflict``) when the partner is no longer in
        ``from_status`` with ``authenticated_with`` as a token we accept; ``RoleTaken`` when a role
        is held by another partner. ``follow_ups`` are the steps to run now that it is
        registered, stored in the same transaction (due at ``follow_up_at``, default ``now``,
        for anyone but the caller, who runs them at once)."""
        async with self._changing() as uow:
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
            if follow_ups:
                await connection.execute(
                    delete(FollowUpRow).where(col(FollowUpRow.partner_id) == partner_id)
                )
                await connection.execute(
                    insert(FollowUpRow),
                    [
                        {
                            "partner_id": partner_id,
                            "step": step,
                            "attempts": 0,
                            "next_attempt_at": follow_up_at or now,
                            "created_at": now,
                        }
                        for step in dict.fromkeys(follow_ups)
                    ],
                )
            await _bump(connection)
            return await self._reload(uow.session, partner_id)

    async def begin_rotation(self, partner_id: int, token: str) -> bool:
        """Accept ``token`` besides the current one while we rotate; only for a registered
        partner."""
        async with self._changing() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(
                update(PartnerRow)
                .where(
                    col(PartnerRow.id) == partner_id,
                    col(PartnerRow.status) == PartnerStatus.REGISTERED.value,
                )
                .values(token_accept_pending=token)
            )
            await _bump(connection)
            return bool(result.rowcount == 1)

    async def abort_rotation(self, partner_id: int, token: str) -> None:
        """Stop accepting ``token`` (the partner refused the rotation that introduced it)."""
        async with self._changing() as uow:
            connection = await uow.session.connection()
            await connection.execute(
                update(PartnerRow)
                .where(
                    col(PartnerRow.id) == partner_id,
                    col(PartnerRow.token_accept_pending) == token,
                )
                .values(token_accept_pending=None)
            )
            await _bump(connection)

    async def unregister(
        self, partner_id: int, *, authenticated_with: str | None, now: datetime
    ) -> Partner:
        """Invalidate every token of the partner and free its parties; the row stays as
        history. With ``authenticated_with``, only if that token is still accepted (else
        ``PartnerChanged``)."""
        async with self._changing() as uow:
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
            await connection.execute(
                delete(FollowUpRow).where(col(FollowUpRow.partner_id) == partner_id)
            )
            await _bump(connection)
            return await self._reload(uow.session, partner_id)

    async def _reload(self, session: AsyncSession, partner_id: int) -> Partner:
        row = await session.get(PartnerRow, partner_id, populate_existing=True)
        assert row is not None
        return _to_partner(row)

    async def delete(self, partner_id: int) -> None:
        """Forget a partner whose registration never completed."""
        async with self._changing() as uow:
            row = await uow.session.get(PartnerRow, partner_id)
            if row is not None:
                await uow.session.delete(row)
                await uow.session.flush()
                await _bump(await uow.session.connection())

    # --- follow-up steps of a registration -----------------------------------------------

    async def follow_ups(
        self, *, partner_id: int | None = None, due_at: datetime | None = None
    ) -> list[FollowUp]:
        """Steps still to run (of one partner, or due at ``due_at``), oldest partner first."""
        stmt = select(FollowUpRow)
        if partner_id is not None:
            stmt = stmt.where(col(FollowUpRow.partner_id) == partner_id)
        if due_at is not None:
            stmt = stmt.where(col(FollowUpRow.next_attempt_at) <= due_at)
        stmt = stmt.order_by(col(FollowUpRow.partner_id), col(FollowUpRow.created_at))
        async with self.db.read() as session:
            return [_follow_up(row) for row in (await session.exec(stmt)).all()]

    async def follow_up_done(self, partner_id: int, step: str) -> None:
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            await connection.execute(
                delete(FollowUpRow).where(
                    col(FollowUpRow.partner_id) == partner_id, col(FollowUpRow.step) == step
                )
            )

    async def follow_up_failed(
        self, partner_id: int, step: str, *, attempts: int, error: str, next_attempt_at: datetime
    ) -> None:
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            await connection.execute(
                update(FollowUpRow)
                .where(col(FollowUpRow.partner_id) == partner_id, col(FollowUpRow.step) == step)
                .values(
                    attempts=attempts,
                    last_error=error[:_ERROR_MAX],
                    next_attempt_at=next_attempt_at,
                )
            )

    async def drop_follow_ups(self, partner_id: int) -> int:
        """Forget the steps of a partner (no longer registered); the number dropped."""
        async with self.db.transaction() as uow:
            connection = await uow.session.connection()
            result = await connection.execute(
                delete(FollowUpRow).where(col(FollowUpRow.partner_id) == partner_id)
            )
            return int(result.rowcount)


_GENERATION_SQL = "SELECT generation FROM ocpi_partner_generation WHERE id = 1"


async def _bump(connection: AsyncConnection) -> None:
    """Next generation, in the caller's transaction (the row exists from the table's
    creation; recreated if someone deleted it)."""
    table = PartnerGenerationRow.__table__  # type: ignore[attr-defined]
    result = await connection.execute(
        update(table).where(table.c.id == 1).values(generation=table.c.generation + 1)
    )
    if result.rowcount != 1:
        await connection.execute(insert(table).values(id=1, generation=1))


def _follow_up(row: FollowUpRow) -> FollowUp:
    return FollowUp(
        partner_id=row.partner_id,
        step=row.step,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


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
