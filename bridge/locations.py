"""Locations service: the operator's site inventory, the live EVSE statuses and the pushes
that keep every eMSP's copy current.

Every change runs in one database transaction that updates the stored OCPI objects and
enqueues the outbox rows describing it, for each registered partner with a Locations
RECEIVER endpoint, and only for published Locations (a Location that stops being published
gets one last PUT with ``publish: false``):

- inventory changes (site file reload, admin API) -> PUT of the smallest changed objects;
- EVSE status changes -> PATCH ``{status, last_updated}`` on the EVSE, falling back to a PUT
  of the whole Location when the partner rejects the PATCH.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.inventory import SiteLocation
from bridge.mapping.locations import (
    PutTarget,
    Target,
    find_connector,
    find_evse,
    puts_for,
    remove_location,
    replace_location,
    set_evse_status,
)
from bridge.mapping.statuses import to_ocpi_evse_status
from bridge.ocpi.locations import EVSE, Location, Status, evse_status_patch
from bridge.ocpi.models import InterfaceRole, ModuleID
from bridge.partners import Partner
from bridge.push.outbox import FullObject, PushRequest
from bridge.store import locations as store
from bridge.store.database import Database, Writes
from bridge.store.outbox import enqueue
from csms.domain.events import (
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatusChanged,
    DomainEvent,
)

log = logging.getLogger(__name__)

FALLBACK_PREFIX = "locations:"
PROJECTED_EVENTS = (ConnectorStatusChanged, ChargerConnected, ChargerDisconnected)
"""The events the Location projection acts on (``project`` ignores every other)."""
ORIGIN_SITE = "site"
ORIGIN_API = "api"


class LocationConflict(ValueError):
    """A Location that cannot be stored as described (an EVSE uid or a charger EVSE already
    used by another Location)."""


@dataclass(kw_only=True)
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pushes: int = 0
    tariffs: ApplyReport | None = None  # a site's Tariffs, applied with its Locations

    def as_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "pushes": self.pushes,
        }
        if self.tariffs is not None:
            report["tariffs"] = self.tariffs.as_dict()
        return report


class PartnerDirectory:
    """What the Locations service needs from the partners: who receives Locations."""

    def __init__(self, list_partners: Callable[[], Any]) -> None:
        self._list = list_partners

    async def receivers(self) -> list[Partner]:
        partners: list[Partner] = await self._list()
        return [
            p
            for p in partners
            if p.registered and p.endpoint_url(ModuleID.LOCATIONS, InterfaceRole.RECEIVER)
        ]


def _body(model: Location | EVSE | Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(model.model_dump_json(exclude_none=True))
    return data


def _ordering_key(location: Location) -> str:
    return f"locations/{location.id.upper()}"


def _path(location: Location, *parts: str) -> str:
    """The object's path below the receiver endpoint, each id percent-encoded (CiStrings may
    hold ``#``, ``?``, ``/``, ``%`` or spaces)."""
    ids = (location.country_code, location.party_id, location.id, *parts)
    return "/".join(quote(part, safe="") for part in ids)


def put_requests(
    receivers: Sequence[Partner], location: Location, targets: Sequence[PutTarget]
) -> list[PushRequest]:
    requests = []
    for target in targets:
        path: str
        body: dict[str, Any]
        match target.target:
            case Target.LOCATION:
                path, body = _path(location), _body(location)
            case Target.EVSE:
                evse = find_evse(location, target.evse_uid or "")
                assert evse is not None
                path, body = _path(location, evse.uid), _body(evse)
            case Target.CONNECTOR:
                evse = find_evse(location, target.evse_uid or "")
                assert evse is not None
                connector = find_connector(evse, target.connector_id or "")
                assert connector is not None
                path, body = _path(location, evse.uid, connector.id), _body(connector)
        requests += [
            PushRequest(
                partner_id=partner.id,
                module=ModuleID.LOCATIONS,
                method="PUT",
                path=path,
                body=body,
                ordering_key=_ordering_key(location),
            )
            for partner in receivers
        ]
    return requests


def status_requests(
    receivers: Sequence[Partner], location: Location, evse: EVSE
) -> list[PushRequest]:
    return [
        PushRequest(
            partner_id=partner.id,
            module=ModuleID.LOCATIONS,
            method="PATCH",
            path=_path(location, evse.uid),
            body=evse_status_patch(evse.status, evse.last_updated),
            ordering_key=_ordering_key(location),
            coalesce_key=f"locations/{location.id.upper()}/{evse.uid.upper()}/status",
            fallback=FALLBACK_PREFIX + store.location_key(location.id),
        )
        for partner in receivers
    ]


class LocationService:
    def __init__(
        self,
        db: Database,
        partners: PartnerDirectory,
        *,
        coalesce: bool = False,
        on_enqueued: Callable[[], None] | None = None,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._partners = partners
        self._coalesce = coalesce
        self._on_enqueued = on_enqueued
        self._clock = clock

    # --- operator: inventory -------------------------------------------------------------

    async def apply_site(self, sites: Sequence[SiteLocation]) -> ApplyReport:
        """Make the site file's Locations the truth: create, update (only what differs) and
        mark removed (every EVSE ``REMOVED``) the site Locations the file no longer lists.
        Locations created through the admin API are left alone unless the file names them."""
        return await self._apply(sites, remove_missing_of=ORIGIN_SITE, origin=ORIGIN_SITE)

    async def put_location(self, site: SiteLocation) -> ApplyReport:
        """Create or replace one Location (admin API)."""
        return await self._apply([site], remove_missing_of=None, origin=ORIGIN_API)

    async def remove_location(self, location_id: str) -> ApplyReport | None:
        """Mark every EVSE of a Location ``REMOVED`` (Locations are never deleted); ``None``
        when there is no such Location."""
        receivers = await self._partners.receivers()
        report = ApplyReport()
        async with self._db.transaction() as uow:
            key = store.location_key(location_id)
            stored = await store.load_location(uow.session, key)
            if stored is None:
                return None
            requests = await self._remove(uow.session, stored, receivers, report)
            await self._enqueue(uow.session, requests, report)
        self._enqueued(report)
        return report

    async def _apply(
        self, sites: Sequence[SiteLocation], *, remove_missing_of: str | None, origin: str
    ) -> ApplyReport:
        receivers = await self._partners.receivers()
        report = ApplyReport()
        async with self._db.transaction() as uow:
            session = uow.session
            keys = {store.location_key(site.location.id) for site in sites}
            removing = await self._missing(session, keys, remove_missing_of)
            await self._check_conflicts(session, sites, keys, removing)
            requests: list[PushRequest] = []
            for key in sorted(removing):
                stored = await store.load_location(session, key)
                assert stored is not None
                requests += await self._remove(session, stored, receivers, report)
            for site in sites:
                requests += await self._apply_one(session, site, origin, receivers, report)
            await self._enqueue(session, requests, report)
        self._enqueued(report)
        return report

    @staticmethod
    async def _missing(session: AsyncSession, keys: set[str], origin: str | None) -> set[str]:
        """Stored Locations of ``origin`` that are not among ``keys`` (to be removed)."""
        if origin is None:
            return set()
        return {key for key in await store.location_keys(session, origin=origin) if key not in keys}

    async def check_conflicts(self, sites: Sequence[SiteLocation]) -> None:
        """Raise ``LocationConflict`` if applying the site file ``sites`` would reuse another
        Location's EVSE uid or charger EVSE (read only)."""
        async with self._db.read() as session:
            keys = {store.location_key(site.location.id) for site in sites}
            removing = await self._missing(session, keys, ORIGIN_SITE)
            await self._check_conflicts(session, sites, keys, removing)

    async def _check_conflicts(
        self,
        session: AsyncSession,
        sites: Sequence[SiteLocation],
        keys: set[str],
        removing: set[str],
    ) -> None:
        """EVSE uids and charger EVSEs of ``sites`` must not belong to other Locations (the
        charger EVSEs of Locations being removed are free; EVSE uids are never reused)."""
        uids: dict[str, str] = {}
        chargers: dict[tuple[str, int], str] = {}
        for key in await store.location_keys(session):
            if key in keys:
                continue
            stored = await store.load_location(session, key)
            assert stored is not None
            for evse in stored.location.evses or ():
                uids[evse.uid.upper()] = stored.location.id
            if key in removing:
                continue
            for bound in await store.bindings_of_location(session, key):
                chargers[(bound.charger_id, bound.ocpp_evse_id)] = stored.location.id
        for site in sites:
            for evse in site.location.evses or ():
                owner = uids.get(evse.uid.upper())
                if owner is not None:
                    raise LocationConflict(
                        f"location {site.location.id!r}: EVSE uid {evse.uid!r} belongs to "
                        f"location {owner!r} (EVSE uids are never reused)"
                    )
            for binding in site.bindings:
                owner = chargers.get((binding.charger_id, binding.ocpp_evse_id))
                if owner is not None:
                    raise LocationConflict(
                        f"location {site.location.id!r}: charger {binding.charger_id!r} EVSE "
                        f"{binding.ocpp_evse_id} is already shown by location {owner!r}"
                    )

    async def _apply_one(
        self,
        session: AsyncSession,
        site: SiteLocation,
        origin: str,
        receivers: Sequence[Partner],
        report: ApplyReport,
    ) -> list[PushRequest]:
        now = self._clock()
        key = store.location_key(site.location.id)
        stored = await store.load_location(session, key)
        old = stored.location if stored is not None else None
        declared = {
            e.uid.upper()
            for e in site.location.evses or ()
            if e.status in (Status.PLANNED, Status.REMOVED)
        }
        bindings = [
            store.Binding(
                evse_uid=b.evse_uid,
                location_key=key,
                charger_id=b.charger_id,
                ocpp_evse_id=b.ocpp_evse_id,
                connectors=b.connectors,
            )
            for b in site.bindings
            if b.evse_uid.upper() not in declared  # operator-controlled status: not live
        ]
        await store.replace_bindings(session, key, bindings)
        draft = await self._with_live_statuses(session, site.location, bindings, now)
        new = replace_location(old, draft, now)
        if old is not None and new == old and stored is not None and stored.origin == origin:
            report.unchanged.append(new.id)
            return []
        await store.save_location(session, new, origin=origin, now=now)
        (report.created if old is None else report.updated).append(new.id)
        if not (new.publish or (old is not None and old.publish)):
            return []
        if old is not None and old.publish != new.publish:
            targets = [PutTarget(target=Target.LOCATION)]
        else:
            targets = puts_for(old, new)
        return put_requests(receivers, new, targets)

    async def _with_live_statuses(
        self,
        session: AsyncSession,
        location: Location,
        bindings: Sequence[store.Binding],
        now: datetime,
    ) -> Location:
        statuses: dict[str, Status] = {}
        for binding in bindings:
            statuses[binding.evse_uid.upper()] = await self._live_status(session, binding)
        evses = [
            e.model_copy(update={"status": statuses[e.uid.upper()]})
            if e.uid.upper() in statuses
            else e
            for e in location.evses or ()
        ]
        return location.model_copy(update={"evses": evses or None})

    async def _remove(
        self,
        session: AsyncSession,
        stored: store.StoredLocation,
        receivers: Sequence[Partner],
        report: ApplyReport,
    ) -> list[PushRequest]:
        key = store.location_key(stored.location.id)
        await store.replace_bindings(session, key, [])
        old = stored.location
        new = remove_location(old, self._clock())
        if new == old:
            report.unchanged.append(old.id)
            return []
        await store.save_location(session, new, origin=stored.origin, now=self._clock())
        report.removed.append(new.id)
        if not new.publish:
            return []
        return put_requests(receivers, new, puts_for(old, new))

    async def send_all(self, partner: Partner) -> int:
        """Queue a PUT of every published Location to ``partner`` (after it registered, or on
        the operator's request); the number queued. Nothing for a partner without a Locations
        RECEIVER."""
        if not (
            partner.registered and partner.endpoint_url(ModuleID.LOCATIONS, InterfaceRole.RECEIVER)
        ):
            return 0
        report = ApplyReport()
        async with self._db.transaction() as uow:
            requests: list[PushRequest] = []
            for key in await store.location_keys(uow.session):
                stored = await store.load_location(uow.session, key)
                if stored is not None and stored.location.publish:
                    requests += put_requests(
                        [partner], stored.location, [PutTarget(target=Target.LOCATION)]
                    )
            await self._enqueue(uow.session, requests, report)
        self._enqueued(report)
        log.info("queued %d Location(s) for OCPI partner %d", report.pushes, partner.id)
        return report.pushes

    # --- live status ---------------------------------------------------------------------

    async def _live_status(self, session: AsyncSession, binding: store.Binding) -> Status:
        inputs = await store.live_inputs(session, binding.charger_id, binding.ocpp_evse_id)
        return to_ocpi_evse_status(
            inputs.connectors, whole_charger=inputs.whole_charger, offline=inputs.offline
        )

    async def project(
        self, session: AsyncSession, events: Sequence[DomainEvent], _writes: Writes
    ) -> int:
        """Apply events of the central system inside the projector's transaction; the number of
        outbox rows enqueued."""
        receivers = await self._partners.receivers()
        batch = _Batch(session)
        for event in events:
            if not isinstance(event, PROJECTED_EVENTS):
                continue
            match event:
                case ConnectorStatusChanged():
                    await store.save_connector_state(
                        session,
                        event.charger_id,
                        event.evse.ocpp_evse_id,
                        event.evse.connector_id,
                        event.status,
                        event.occurred_at,
                    )
                    evse_id = event.evse.ocpp_evse_id or None  # 0: the whole charger
                    await self._refresh(batch, event.charger_id, evse_id, receivers)
                case ChargerConnected():
                    if await store.set_link(
                        session, event.charger_id, connected=True, at=event.occurred_at
                    ):
                        await self._refresh(batch, event.charger_id, None, receivers)
                case ChargerDisconnected():
                    await store.set_link(
                        session, event.charger_id, connected=False, at=event.occurred_at
                    )
                case _:
                    pass
        await batch.save(self._clock())
        await enqueue(session, batch.requests, now=self._clock(), coalesce=self._coalesce)
        return len(batch.requests)

    async def sweep_offline(self, timeout_s: float) -> list[str]:
        """Show UNKNOWN on the EVSEs of chargers disconnected for longer than ``timeout_s``;
        the chargers newly marked offline."""
        async with self._db.transaction() as uow:
            cutoff = self._clock() - timedelta(seconds=timeout_s)
            offline = await store.mark_offline(uow.session, cutoff)
            batch = _Batch(uow.session)
            receivers = await self._partners.receivers() if offline else []
            for charger_id in offline:
                log.warning(
                    "charger %s disconnected for over %.0f s: its EVSEs show UNKNOWN",
                    charger_id,
                    timeout_s,
                )
                await self._refresh(batch, charger_id, None, receivers)
            await batch.save(self._clock())
            await enqueue(uow.session, batch.requests, now=self._clock(), coalesce=self._coalesce)
        if batch.requests and self._on_enqueued is not None:
            self._on_enqueued()
        return offline

    async def _refresh(
        self,
        batch: _Batch,
        charger_id: str,
        ocpp_evse_id: int | None,
        receivers: Sequence[Partner],
    ) -> None:
        for binding in await store.bindings_of_charger(batch.session, charger_id, ocpp_evse_id):
            status = await self._live_status(batch.session, binding)
            location = await batch.location(binding.location_key)
            if location is None:
                continue
            changed = set_evse_status(location, binding.evse_uid, status, self._clock())
            if changed is None:
                continue
            location, evse = changed
            batch.put(binding.location_key, location)
            if location.publish:
                batch.requests += status_requests(receivers, location, evse)

    # --- outbox --------------------------------------------------------------------------

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        """The whole current Location for a fallback key (PATCH rejected, dead row requeued)."""
        if not key.startswith(FALLBACK_PREFIX):
            return None
        stored = await store.load_location(session, key.removeprefix(FALLBACK_PREFIX))
        if stored is None:
            return None
        return FullObject(path=_path(stored.location), body=_body(stored.location))

    async def _enqueue(
        self, session: AsyncSession, requests: list[PushRequest], report: ApplyReport
    ) -> None:
        await enqueue(session, requests, now=self._clock(), coalesce=self._coalesce)
        report.pushes += len(requests)

    def _enqueued(self, report: ApplyReport) -> None:
        if report.pushes and self._on_enqueued is not None:
            self._on_enqueued()


class _Batch:
    """Locations loaded and changed while applying several events in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._locations: dict[str, store.StoredLocation | None] = {}
        self._dirty: set[str] = set()
        self.requests: list[PushRequest] = []

    async def location(self, key: str) -> Location | None:
        if key not in self._locations:
            self._locations[key] = await store.load_location(self.session, key)
        stored = self._locations[key]
        return stored.location if stored is not None else None

    def put(self, key: str, location: Location) -> None:
        stored = self._locations[key]
        assert stored is not None
        self._locations[key] = store.StoredLocation(
            location=location, origin=stored.origin, created_at=stored.created_at
        )
        self._dirty.add(key)

    async def save(self, now: datetime) -> None:
        for key in sorted(self._dirty):
            stored = self._locations[key]
            assert stored is not None
            await store.save_location(self.session, stored.location, origin=stored.origin, now=now)
