"""Locations module, Sender interface (reference 3.1): the CPO's published Locations, one
Location, EVSE or Connector. Unknown or unpublished ids are HTTP 404 with status 2003."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bridge.api.deps import Platform, Routed
from bridge.api.pagination import Page, paged_response
from bridge.api.responses import ocpi_response
from bridge.errors import NotFound
from bridge.mapping.locations import find_connector, find_evse
from bridge.ocpi.locations import Location
from bridge.ocpi.models import ModuleID
from bridge.ocpi.wire import VERSION, OcpiStatus
from bridge.store.locations import LocationReader

router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.LOCATIONS.value}")


class UnknownLocation(NotFound):
    status_code = OcpiStatus.UNKNOWN_LOCATION


def _reader(platform: Platform) -> LocationReader:
    if platform.locations is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("locations are not wired")
    return platform.locations


@router.get("")
async def list_locations(
    request: Request, page: Page, platform: Platform, _caller: Routed
) -> Response:
    documents, total = await _reader(platform).page(
        offset=page.offset, limit=page.limit, date_from=page.date_from, date_to=page.date_to
    )
    return paged_response(
        request, page, documents, total=total, base_url=platform.identity.base_url
    )


async def _location(platform: Platform, location_id: str) -> Location:
    location = await _reader(platform).published(location_id)
    if location is None:
        raise UnknownLocation(f"unknown location {location_id!r}")
    return location


@router.get("/{location_id}")
async def get_location(location_id: str, platform: Platform, _caller: Routed) -> Response:
    return ocpi_response(await _location(platform, location_id))


@router.get("/{location_id}/{evse_uid}")
async def get_evse(
    location_id: str, evse_uid: str, platform: Platform, _caller: Routed
) -> Response:
    evse = find_evse(await _location(platform, location_id), evse_uid)
    if evse is None:
        raise UnknownLocation(f"unknown EVSE {evse_uid!r} in location {location_id!r}")
    return ocpi_response(evse)


@router.get("/{location_id}/{evse_uid}/{connector_id}")
async def get_connector(
    location_id: str, evse_uid: str, connector_id: str, platform: Platform, _caller: Routed
) -> Response:
    evse = find_evse(await _location(platform, location_id), evse_uid)
    if evse is None:
        raise UnknownLocation(f"unknown EVSE {evse_uid!r} in location {location_id!r}")
    connector = find_connector(evse, connector_id)
    if connector is None:
        raise UnknownLocation(f"unknown connector {connector_id!r} in EVSE {evse_uid!r}")
    return ocpi_response(connector)
