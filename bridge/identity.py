"""The CPO the bridge speaks for in OCPI: its party identity (from settings) and the public URLs
of its OCPI endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ocpi.models import BusinessDetails, Credentials, CredentialsRole, Role
from bridge.ocpi.wire import VERSION


@dataclass(frozen=True, kw_only=True)
class CpoIdentity:
    country_code: str
    party_id: str
    name: str
    website: str | None
    base_url: str  # public URL of the HTTP server, without trailing slash

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/ocpi/versions"

    @property
    def details_url(self) -> str:
        return f"{self.base_url}/ocpi/{VERSION}"

    def module_url(self, module: str) -> str:
        return f"{self.details_url}/{module}"

    def credentials_role(self) -> CredentialsRole:
        return CredentialsRole(
            role=Role.CPO,
            business_details=BusinessDetails(name=self.name, website=self.website),
            party_id=self.party_id,
            country_code=self.country_code,
        )

    def credentials(self, token: str) -> Credentials:
        """Our credentials object carrying ``token``, the token the partner uses to call us."""
        return Credentials(token=token, url=self.versions_url, roles=[self.credentials_role()])
