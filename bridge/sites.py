"""The operator's site operations, shared by start-up, the CLI and the admin API: read and check
the site file, register its chargers and tokens, apply its Locations; put or remove one
Location. A file or entry with any problem changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.identity import CpoIdentity
from bridge.inventory import SiteLocation, parse_location, parse_locations
from bridge.locations import ORIGIN_API, ORIGIN_SITE, ApplyReport, LocationService
from bridge.ocpi.locations import Location, Status
from bridge.ocpi.models import BusinessDetails
from bridge.ocpi.tariffs import Tariff
from bridge.site import Site, load_site
from bridge.store.locations import LocationReader, StoredLocation
from bridge.tariffs import TariffError, TariffService
from csms.domain.model import ChargerFacts
from csms.ports import ChargerDirectory

RegisterEntries = Callable[[Site], Awaitable[None]]


def _tariff_users(locations: Iterable[Location]) -> Iterator[tuple[str, str]]:
    """(upper-cased tariff id, "location L EVSE E connector C") for every connector of an EVSE
    still in use (not ``REMOVED``) that refers to a tariff."""
    for location in locations:
        for evse in location.evses or ():
            if evse.status is Status.REMOVED:
                continue
            for connector in evse.connectors:
                for tariff_id in connector.tariff_ids or ():
                    where = f"location {location.id} EVSE {evse.uid} connector {connector.id}"
                    yield tariff_id.upper(), where


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
        removing = await self._site_tariffs_dropped(site.source, checked, tariffs)
        await self._register_entries(site)
        tariff_report = await self._tariffs.apply(tariffs, origin=ORIGIN_SITE)
        sites = self._parse(site.locations, site.source, await self._directory.charger_facts())
        report = await self._locations.apply_site(sites)
        # Removed last: the Locations no longer refer to these tariffs once applied.
        removed = await self._tariffs.apply((), remove=removing)
        tariff_report.removed = removed.removed
        tariff_report.pushes += removed.pushes
        report.tariffs = tariff_report
        return report

    async def _site_tariffs_dropped(
        self, source: str, checked: Sequence[SiteLocation], tariffs: Sequence[Tariff]
    ) -> set[str]:
        """Tariffs the site file described before and no longer does; refused (``TariffError``)
        while a connector that stays would still refer to one."""
        listed = {t.id.upper() for t in tariffs}
        dropped = {
            key
            for key, origin in (await self._tariffs.origins()).items()
            if origin == ORIGIN_SITE and key not in listed
        }
        if not dropped:
            return dropped
        in_file = {s.location.id.upper() for s in checked}
        staying = [s.location for s in checked] + [
            s.location
            for s in await self._reader.all_locations()
            if s.origin != ORIGIN_SITE and s.location.id.upper() not in in_file
        ]
        problems = [
            f"{source}: tariff {key!r} is no longer in the file but {user} still uses it"
            for key, user in _tariff_users(staying)
            if key in dropped
        ]
        if problems:
            raise TariffError(problems)
        return dropped

    async def tariffs(self) -> list[tuple[str, Tariff]]:
        """Every stored Tariff with where it was described (``site`` or ``api``)."""
        origins = await self._tariffs.origins()
        return [(origins[t.id.upper()], t) for t in await self._tariffs.all_tariffs()]

    async def put_tariff(self, entry: Mapping[str, Any], tariff_id: str) -> ApplyReport:
        """Create or replace one Tariff described like a ``[[tariffs]]`` entry (admin API, CLI);
        a site reload leaves it alone unless the site file names it."""
        entry = {"id": tariff_id, **entry}
        tariffs = self._tariffs.parse([entry], "tariff")
        return await self._tariffs.apply(tariffs, origin=ORIGIN_API)

    async def remove_tariff(self, tariff_id: str) -> ApplyReport | None:
        """Delete a Tariff (a DELETE to every tariffs RECEIVER); ``None`` when unknown; refused
        (``TariffError``) while a connector of a Location still refers to it. Sessions keep the
        copy taken at their start."""
        key = tariff_id.upper()
        if key not in await self._tariffs.origins():
            return None
        locations = [s.location for s in await self._reader.all_locations()]
        users = [user for used, user in _tariff_users(locations) if used == key]
        if users:
            raise TariffError([f"tariff {tariff_id!r} is still used by {u}" for u in users])
        return await self._tariffs.apply((), remove={key})

    async def _check_tariff_ids(
        self, sites: Sequence[SiteLocation], site_tariffs: set[str], source: str
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
        site = self._parse_one(entry, "admin API", facts)
        await self._check_tariff_ids((site,), set(), "admin API")
        return await self._locations.put_location(site)

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
