"""OCPI partners (the eMSPs, hubs... the bridge exchanges data with) as the rest of the bridge
sees them. Tokens are kept apart by direction: ``token_accept`` is the token the partner
presents to us (A before registration, then the one we issued: C, or B when we initiated),
``token_present`` is the token we present to the partner (the one it issued)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bridge.ocpi.models import CredentialsRole, Endpoint, InterfaceRole, ModuleID


class PartnerStatus(StrEnum):
    PENDING = "PENDING"  # token A minted, waiting for the partner's credentials POST
    REGISTERING = "REGISTERING"  # we POSTed our credentials, waiting for the answer
    REGISTERED = "REGISTERED"
    UNREGISTERED = "UNREGISTERED"


class Initiator(StrEnum):
    PARTNER = "partner"  # the partner POSTed its credentials to us (we minted token A)
    US = "us"  # we POSTed our credentials to the partner (it minted token A)


@dataclass(frozen=True, kw_only=True)
class ExpectedRole:
    """The role an operator announced with ``partners add``: the partner must register it."""

    role: str
    country_code: str
    party_id: str

    def key(self) -> tuple[str, str, str]:
        return (self.role, self.country_code.upper(), self.party_id.upper())

    def __str__(self) -> str:
        return f"{self.country_code.upper()}/{self.party_id.upper()} ({self.role})"


@dataclass(frozen=True, kw_only=True)
class Partner:
    id: int
    status: PartnerStatus
    initiated_by: Initiator
    token_accept: str | None
    token_present: str | None
    encode_token: bool
    versions_url: str | None
    version: str | None
    endpoints: tuple[Endpoint, ...]
    roles: tuple[CredentialsRole, ...]
    expected: ExpectedRole | None
    created_at: datetime
    updated_at: datetime
    registered_at: datetime | None

    @property
    def registered(self) -> bool:
        return self.status is PartnerStatus.REGISTERED

    def endpoint_url(self, module: ModuleID | str, role: InterfaceRole) -> str | None:
        for endpoint in self.endpoints:
            if endpoint.identifier == module and endpoint.role == role:
                return endpoint.url
        return None

    def credentials_url(self) -> str | None:
        """The partner's credentials endpoint (its role there is meaningless: take any)."""
        for endpoint in self.endpoints:
            if endpoint.identifier == ModuleID.CREDENTIALS:
                return endpoint.url
        return None

    def has_party(self, country_code: str, party_id: str) -> bool:
        return any(
            r.country_code.upper() == country_code.upper()
            and r.party_id.upper() == party_id.upper()
            for r in self.roles
        )

    def label(self) -> str:
        if self.roles:
            return ", ".join(f"{r.country_code}/{r.party_id} ({r.role.value})" for r in self.roles)
        if self.expected is not None:
            return str(self.expected)
        return self.versions_url or "-"


@dataclass(frozen=True, kw_only=True)
class FollowUp:
    """A step still to run after a partner registered (e.g. "locations": queue a PUT of every
    Location for it); kept until it succeeded, with its failed attempts and last error."""

    partner_id: int
    step: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
