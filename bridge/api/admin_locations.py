"""Operator API for sites (``/admin/locations``, ``/admin/tariffs``, ``/admin/site/reload``),
the HTTP twin of ``ocpi-bridge site|tariffs ...``. A description with any problem is refused
whole (status 2001, HTTP 400, every problem listed) and changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bridge.api.admin import Admin
from bridge.api.deps import JsonBody, Platform
from bridge.api.responses import ocpi_response
from bridge.errors import MalformedRequest, NotFound
from bridge.inventory import InventoryError
from bridge.locations import ApplyReport, LocationConflict
from bridge.site import SiteFileError
from bridge.sites import SiteOperations
from csms.errors import CsmsError

router = APIRouter(prefix="/admin")


def _sites(platform: Platform) -> SiteOperations:
    if platform.sites is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("site operations are not wired")
    return platform.sites


def _report(report: ApplyReport, http_status: int = 200) -> Response:
    return ocpi_response(raw_data=report.as_dict(), http_status=http_status)


class Refused(MalformedRequest):
    pass


def _described(kind: str, object_id: str, body: Any) -> dict[str, Any]:
    """The JSON object describing a ``kind`` whose id (if the body has one) is the URL's."""
    if not isinstance(body, dict):
        raise Refused(f"expected a JSON object describing the {kind}")
    body_id = body.get("id")
    if body_id is not None and (
        not isinstance(body_id, str) or body_id.upper() != object_id.upper()
    ):
        raise Refused(f"id in the body ({body_id!r}) differs from the URL ({object_id!r})")
    return body


@router.get("/locations")
async def list_locations(_admin: Admin, platform: Platform) -> Response:
    """Every Location (published or not) as stored, with where it was described."""
    locations = await _sites(platform).locations()
    data: list[dict[str, Any]] = [
        {"origin": s.origin, "location": s.location.model_dump(mode="json", exclude_none=True)}
        for s in locations
    ]
    return ocpi_response(raw_data=data)


@router.put("/locations/{location_id}")
async def put_location(
    location_id: str, _admin: Admin, platform: Platform, body: JsonBody
) -> Response:
    body = _described("location", location_id, body)
    try:
        report = await _sites(platform).put_location(body, location_id)
    except (InventoryError, LocationConflict) as exc:
        raise Refused(str(exc)) from exc
    return _report(report, 201 if report.created else 200)


@router.delete("/locations/{location_id}")
async def remove_location(location_id: str, _admin: Admin, platform: Platform) -> Response:
    """Every EVSE of the Location becomes REMOVED (Locations and EVSEs are never deleted)."""
    report = await _sites(platform).remove_location(location_id)
    if report is None:
        raise NotFound(f"unknown location {location_id!r}")
    return _report(report)


@router.post("/site/reload")
async def reload_site(_admin: Admin, platform: Platform) -> Response:
    """Read the configured site file again and apply only its differences."""
    try:
        report = await _sites(platform).reload()
    except (SiteFileError, InventoryError, LocationConflict, FileNotFoundError, CsmsError) as exc:
        raise Refused(str(exc)) from exc
    return _report(report)


@router.get("/tariffs")
async def list_tariffs(_admin: Admin, platform: Platform) -> Response:
    """Every Tariff as stored, with where it was described."""
    data: list[dict[str, Any]] = [
        {"origin": origin, "tariff": tariff.model_dump(mode="json", exclude_none=True)}
        for origin, tariff in await _sites(platform).tariffs()
    ]
    return ocpi_response(raw_data=data)


@router.put("/tariffs/{tariff_id}")
async def put_tariff(tariff_id: str, _admin: Admin, platform: Platform, body: JsonBody) -> Response:
    """Create or replace a Tariff described like a ``[[tariffs]]`` entry; PUT to partners."""
    body = _described("tariff", tariff_id, body)
    try:
        report = await _sites(platform).put_tariff(body, tariff_id)
    except InventoryError as exc:
        raise Refused(str(exc)) from exc
    return _report(report, 201 if report.created else 200)


@router.delete("/tariffs/{tariff_id}")
async def remove_tariff(tariff_id: str, _admin: Admin, platform: Platform) -> Response:
    """Delete a Tariff no connector uses any more; DELETE to partners."""
    try:
        report = await _sites(platform).remove_tariff(tariff_id)
    except InventoryError as exc:
        raise Refused(str(exc)) from exc
    if report is None:
        raise NotFound(f"unknown tariff {tariff_id!r}")
    return _report(report)
