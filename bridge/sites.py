"""The operator's site operations, shared by start-up, the CLI and the admin API: read and check
the site file, register its chargers and tokens, apply its Locations; put or remove one
Location. A file or entry with any problem changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.identity import CpoIdentity
from bridge.inventory import SiteLocation, parse_location, parse_locations
from bridge.locations import ApplyReport, LocationService
from bridge.ocpi.models import BusinessDetails
from bridge.site import Site, load_site
from bridge.store.locations import LocationReader, StoredLocation
from bridge.tariffs import TariffError, TariffService
from csms.domain.model import ChargerFacts
from csms.ports import ChargerDirectory

RegisterEntries = Callable[[Site], Awaitable[None]]


class SiteOperations:
    def __init__(
        self,
        *,
        directory: ChargerDirectory,
        locations: LocationService,
        tariffs: TariffService,
        reader: LocationReader,
        register_entries: RegisterEntries,
        check_entries: Callable[[Site], None],
        identity: Callable[[], CpoIdentity],
        site_file: str | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._directory = directory
        self._locations = locations
        self._tariffs = tariffs
        self._reader = reader
        self._register_entries = register_entries
        self._check_entries = check_entries
        self._identity = identity
        self.site_file = Path(site_file) if site_file else None
        self._clock = clock

    async def check(self, site: Site) -> tuple[SiteLocation, ...]:
        """The site's Locations, checked against the known chargers and those the site adds
        (raises ``InventoryError`` listing every problem, tariffs and their ids included)."""
        facts: dict[str, ChargerFacts] = dict(await self._directory.charger_facts())
        for charger in site.chargers:
            facts.setdefault(charger.charger_id, ChargerFacts(charger_id=charger.charger_id))
        tariffs = self._tariffs.parse(site.tariffs, site.source)
        sites = self._parse(site.locations, site.source, facts)
        await self._check_tariff_ids(sites, {t.id.upper() for t in tariffs}, site.source)
        return sites

    async def apply(self, site: Site) -> ApplyReport:
        """Check the whole site first (entries, Locations, conflicts with stored Locations),
        then register its chargers and tokens and apply its Locations (only the differences are
        stored and pushed)."""
        self._check_entries(site)
        checked = await self.check(site)
        tariffs = self._tariffs.parse(site.tariffs, site.source)
        await self._locations.check_conflicts(checked)
        await self._register_entries(site)
        await self._tariffs.apply(tariffs)
        sites = self._parse(site.locations, site.source, await self._directory.charger_facts())
        return await self._locations.apply_site(sites)

    async def _check_tariff_ids(
        self, sites: tuple[SiteLocation, ...], site_tariffs: set[str], source: str
    ) -> None:
        """Every connector's ``tariff_ids`` names a tariff of the site or a stored one."""
        known = site_tariffs | await self._tariffs.known_ids()
        problems = [
            f"{source}: location {s.location.id} EVSE {evse.uid} connector {connector.id}: "
            f"unknown tariff {tariff_id!r}"
            for s in sites
            for evse in s.location.evses or ()
            for connector in evse.connectors
            for tariff_id in connector.tariff_ids or ()
            if tariff_id.upper() not in known
        ]
        if problems:
            raise TariffError(problems)

    async def reload(self, path: Path | None = None) -> ApplyReport:
        """Read the site file again (``path``, else the configured one) and apply it."""
        target = path or self.site_file
        if target is None:
            raise FileNotFoundError("no site file configured (OCPI_BRIDGE_SITE_FILE or --site)")
        return await self.apply(load_site(target))

    async def put_location(self, entry: Mapping[str, Any], location_id: str) -> ApplyReport:
        """Create or replace one Location described like a ``[[locations]]`` entry."""
        entry = {"id": location_id, **entry}
        facts = await self._directory.charger_facts()
        return await self._locations.put_location(self._parse_one(entry, "admin API", facts))

    async def remove_location(self, location_id: str) -> ApplyReport | None:
        return await self._locations.remove_location(location_id)

    async def locations(self) -> list[StoredLocation]:
        return await self._reader.all_locations()

    def _operator(self) -> BusinessDetails:
        identity = self._identity()
        return BusinessDetails(name=identity.name, website=identity.website)

    def _parse(
        self,
        entries: tuple[dict[str, Any], ...],
        source: str,
        facts: Mapping[str, ChargerFacts],
    ) -> tuple[SiteLocation, ...]:
        identity = self._identity()
        return parse_locations(
            entries,
            source,
            country_code=identity.country_code,
            party_id=identity.party_id,
            chargers=facts,
            operator=self._operator(),
            now=self._clock(),
        )

    def _parse_one(
        self, entry: Mapping[str, Any], source: str, facts: Mapping[str, ChargerFacts]
    ) -> SiteLocation:
        identity = self._identity()
        return parse_location(
            entry,
            source,
            country_code=identity.country_code,
            party_id=identity.party_id,
            chargers=facts,
            operator=self._operator(),
            now=self._clock(),
        )
