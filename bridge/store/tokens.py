"""Storage of the eMSPs' Tokens, of the authorization decisions and of the token pulls.

Tokens are keyed by (country_code, party_id, upper-cased uid, type) and stored as OCPI JSON;
the lookup columns are upper-cased (CiString). A token whose uid is longer than the 20
characters of an OCPP 1.6 idTag gets a stored alias, the idTag a 1.6 charger is given and
presents back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bridge.ocpi.tokens import Token
from bridge.store.pagination import fetch_page
from bridge.store.tables import AuthorizationRow, TokenPullRow, TokenRow
from csms.store.database import Database

IDTAG_MAX = 20
"""OCPP 1.6 idTag (CiString20Type)."""


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    partner_id: int
    token: Token
    alias: str | None

    @property
    def id_tag(self) -> str:
        """What an OCPP 1.6 charger knows this token as."""
        return self.alias or self.token.uid


class PutOutcome(StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    """The same token again (a pull re-reading the tokens of its ``date_from`` instant)."""
    KEPT_NEWER = "kept-newer"
    """The stored token has a later ``last_updated``: an older copy never replaces it."""


def token_key(country_code: str, party_id: str, uid: str, token_type: str) -> tuple[str, ...]:
    return (country_code.upper(), party_id.upper(), uid.upper(), token_type)


def alias_for(country_code: str, party_id: str, uid: str, token_type: str, salt: int = 0) -> str:
    """A 20-character idTag for a token whose uid does not fit OCPP 1.6: ``~`` and 19 base32
    characters of a hash of the token's key (``~`` never starts a card's UID)."""
    material = "|".join((*token_key(country_code, party_id, uid, token_type), str(salt)))
    digest = hashlib.sha256(material.encode()).digest()
    return "~" + base64.b32encode(digest).decode()[: IDTAG_MAX - 1]


def _stored(row: TokenRow) -> StoredToken:
    return StoredToken(
        partner_id=row.partner_id, token=Token.model_validate_json(row.document), alias=row.alias
    )


def _where_key(
    country_code: str, party_id: str, uid: str, token_type: str
) -> SelectOfScalar[TokenRow]:
    return select(TokenRow).where(
        TokenRow.country_code == country_code.upper(),
        TokenRow.party_id == party_id.upper(),
        TokenRow.uid_key == uid.upper(),
        TokenRow.type == token_type,
    )


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- tokens --------------------------------------------------------------------------

    async def get(
        self, country_code: str, party_id: str, uid: str, token_type: str
    ) -> StoredToken | None:
        async with self.db.read() as session:
            row = (await session.exec(_where_key(country_code, party_id, uid, token_type))).first()
        return _stored(row) if row is not None else None

    async def put(self, partner_id: int, token: Token, *, now: datetime) -> PutOutcome:
        async with self.db.transaction() as uow:
            return await put_token(uow.session, partner_id, token, now=now)

    async def put_many(
        self, partner_id: int, tokens: Iterable[Token], *, now: datetime
    ) -> dict[PutOutcome, int]:
        """Store a page of pulled tokens in one transaction; counts per outcome."""
        counts = dict.fromkeys(PutOutcome, 0)
        async with self.db.transaction() as uow:
            for token in tokens:
                counts[await put_token(uow.session, partner_id, token, now=now)] += 1
        return counts

    async def find_by_uid(self, uid: str, types: Sequence[str]) -> list[StoredToken]:
        """Tokens of any eMSP with this uid and one of ``types``, in the order of ``types``."""
        async with self.db.read() as session:
            stmt = select(TokenRow).where(
                TokenRow.uid_key == uid.upper(), col(TokenRow.type).in_(types)
            )
            rows = (await session.exec(stmt)).all()
        rows = sorted(rows, key=lambda r: (types.index(r.type), r.id or 0))
        return [_stored(row) for row in rows]

    async def find_by_alias(self, alias: str) -> StoredToken | None:
        async with self.db.read() as session:
            row = (await session.exec(select(TokenRow).where(TokenRow.alias == alias))).first()
        return _stored(row) if row is not None else None

    async def find_by_contract(self, contract_id: str) -> list[StoredToken]:
        async with self.db.read() as session:
            stmt = select(TokenRow).where(TokenRow.contract_key == contract_id.upper())
            rows = (await session.exec(stmt.order_by(col(TokenRow.id)))).all()
        return [_stored(row) for row in rows]

    async def page(
        self, *, partner_id: int | None, offset: int, limit: int
    ) -> tuple[list[StoredToken], int]:
        async with self.db.read() as session:
            stmt = select(TokenRow)
            if partner_id is not None:
                stmt = stmt.where(TokenRow.partner_id == partner_id)
            rows, total = await fetch_page(
                session,
                stmt,
                last_updated=col(TokenRow.last_updated),
                key=col(TokenRow.id),
                offset=offset,
                limit=limit,
                date_from=None,
                date_to=None,
            )
        return [_stored(row) for row in rows], total

    # --- pulls ---------------------------------------------------------------------------

    async def pull_progress(self, partner_id: int) -> TokenPullRow | None:
        async with self.db.read() as session:
            return await session.get(TokenPullRow, partner_id)

    async def save_pull(
        self,
        partner_id: int,
        *,
        attempted_at: datetime,
        pulled_until: datetime | None,
        error: str | None,
    ) -> None:
        """Note a pull attempt; ``pulled_until`` (kept when ``None``) is where the next pull
        starts (``date_from``)."""
        async with self.db.transaction() as uow:
            row = await uow.session.get(TokenPullRow, partner_id)
            row = row or TokenPullRow(partner_id=partner_id)
            row.last_attempt_at = attempted_at
            if pulled_until is not None:
                row.pulled_until = pulled_until
            row.last_error = error
            uow.session.add(row)

    # --- decisions -----------------------------------------------------------------------

    async def record(self, decision: AuthorizationRow) -> None:
        async with self.db.transaction() as uow:
            uow.session.add(decision)

    async def decision(self, reference: str) -> AuthorizationRow | None:
        async with self.db.read() as session:
            return await session.get(AuthorizationRow, reference)

    async def purge_decisions(self, before: datetime) -> int:
        async with self.db.transaction() as uow:
            result = await uow.session.exec(
                delete(AuthorizationRow).where(col(AuthorizationRow.decided_at) < before)
            )
        return int(result.rowcount or 0)


async def put_token(
    session: AsyncSession, partner_id: int, token: Token, *, now: datetime
) -> PutOutcome:
    row = (
        await session.exec(_where_key(token.country_code, token.party_id, token.uid, token.type))
    ).first()
    document = token.model_dump_json(exclude_none=True)
    if row is not None and row.last_updated > token.last_updated:
        return PutOutcome.KEPT_NEWER
    if row is not None and row.document == document and row.partner_id == partner_id:
        return PutOutcome.UNCHANGED
    outcome = PutOutcome.REPLACED if row is not None else PutOutcome.CREATED
    if row is None:
        row = TokenRow(
            partner_id=partner_id,
            country_code=token.country_code.upper(),
            party_id=token.party_id.upper(),
            uid_key=token.uid.upper(),
            type=token.type.value,
            contract_key=token.contract_id.upper(),
            last_updated=token.last_updated,
            document="",
            received_at=now,
        )
        if len(token.uid) > IDTAG_MAX:
            row.alias = await _free_alias(session, token)
    row.partner_id = partner_id
    row.contract_key = token.contract_id.upper()
    row.last_updated = token.last_updated
    row.document = document
    row.received_at = now
    session.add(row)
    return outcome


async def _free_alias(session: AsyncSession, token: Token) -> str:
    for salt in range(100):
        alias = alias_for(token.country_code, token.party_id, token.uid, token.type, salt)
        taken = (await session.exec(select(TokenRow.id).where(TokenRow.alias == alias))).first()
        if taken is None:
            return alias
    raise RuntimeError("no free idTag alias after 100 attempts")  # pragma: no cover


def dump_cdr_token(token: Token) -> str:
    """The CdrToken of a token (frozen into the decision, for the Session and CDR)."""
    return json.dumps(
        {
            "country_code": token.country_code,
            "party_id": token.party_id,
            "uid": token.uid,
            "type": token.type.value,
            "contract_id": token.contract_id,
        },
        separators=(",", ":"),
    )
