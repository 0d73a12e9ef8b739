"""Tables of the OCPI side (SQLModel). Times are stored as UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from csms.store.types import UtcDateTime


def _utc_column(nullable: bool = True) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable)


class PartnerRow(SQLModel, table=True):
    """One OCPI counter-party. Tokens are stored as issued: OCPI needs them in plain text (we
    present ``token_present`` back and return ``token_accept`` on a credentials GET)."""

    __tablename__ = "ocpi_partners"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(max_length=16)
    initiated_by: str = Field(max_length=8)
    token_accept: str | None = Field(default=None, max_length=64, unique=True)
    token_accept_pending: str | None = Field(default=None, max_length=64, unique=True)
    token_present: str | None = Field(default=None, max_length=64)
    encode_token: bool = True
    versions_url: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=10)
    endpoints_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    roles_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    expected_role: str | None = Field(default=None, max_length=8)
    expected_country_code: str | None = Field(default=None, max_length=2)
    expected_party_id: str | None = Field(default=None, max_length=3)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
    registered_at: datetime | None = Field(default=None, sa_column=_utc_column())


class PartnerPartyRow(SQLModel, table=True):
    """The parties (country code + party id) a registered partner speaks for. A party belongs
    to one partner whatever its roles, so no partner can act for another's party."""

    __tablename__ = "ocpi_partner_parties"
    __table_args__ = (UniqueConstraint("country_code", "party_id"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    )
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)
