"""What the routers need from the running bridge, attached to ``app.state.ocpi``."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.identity import CpoIdentity
from bridge.registration import PartnerService


@dataclass(frozen=True, kw_only=True)
class OcpiPlatform:
    partners: PartnerService
    max_page_size: int
    admin_token: str | None

    @property
    def identity(self) -> CpoIdentity:
        return self.partners.identity
