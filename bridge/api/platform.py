"""What the routers need from the running bridge, attached to ``app.state.ocpi``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.identity import CpoIdentity
from bridge.registration import PartnerService
from bridge.store.locations import LocationReader

if TYPE_CHECKING:
    from bridge.chargingprofiles import ChargingProfileService
    from bridge.commands import CommandService
    from bridge.push.worker import OutboxService
    from bridge.sites import SiteOperations
    from bridge.store.sessions import SessionReader
    from bridge.tariffs import TariffService
    from bridge.tokens import TokenService


@dataclass(frozen=True, kw_only=True)
class OcpiPlatform:
    partners: PartnerService
    max_page_size: int
    admin_token: str | None
    locations: LocationReader | None = None
    sites: SiteOperations | None = None
    outbox: OutboxService | None = None
    tokens: TokenService | None = None
    sessions: SessionReader | None = None
    tariffs: TariffService | None = None
    commands: CommandService | None = None
    charging_profiles: ChargingProfileService | None = None

    @property
    def identity(self) -> CpoIdentity:
        return self.partners.identity
