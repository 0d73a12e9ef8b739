"""Sessions, CDRs and Tariffs modules, Sender interfaces (reference 3.2-3.4).

- ``GET /ocpi/2.2.1/sessions?date_from=...`` (``date_from`` required: HTTP 400 without it) and
  ``GET /ocpi/2.2.1/cdrs``: paginated, only the caller's own (sessions of its tokens).
- ``PUT /ocpi/2.2.1/sessions/{session_id}/charging_preferences``: the caller's session only
  (unknown: HTTP 404 with 2001, as for an EVSE without ``CHARGING_PREFERENCES_CAPABLE``);
  answered ``NOT_POSSIBLE`` on EVSEs that can take preferences, since the bridge does not plan
  charging from them yet.
- ``GET /ocpi/2.2.1/tariffs``: paginated, every tariff (tariffs are public).
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from bridge.api.deps import JsonBody, Platform, Routed, parse_object
from bridge.api.pagination import Page, paged_response
from bridge.api.responses import ocpi_response
from bridge.errors import MalformedRequest, NotFound
from bridge.ocpi.locations import Capability
from bridge.ocpi.models import ModuleID
from bridge.ocpi.sessions import ChargingPreferences, ChargingPreferencesResponse
from bridge.ocpi.wire import VERSION, OcpiStatus
from bridge.store.sessions import SessionReader
from bridge.tariffs import TariffService

sessions_router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.SESSIONS.value}")
cdrs_router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.CDRS.value}")
tariffs_router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.TARIFFS.value}")


class UnknownSession(NotFound):
    status_code = OcpiStatus.INVALID_PARAMETERS


def _reader(platform: Platform) -> SessionReader:
    if platform.sessions is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("sessions are not wired")
    return platform.sessions


def _tariffs(platform: Platform) -> TariffService:
    if platform.tariffs is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("tariffs are not wired")
    return platform.tariffs


@sessions_router.get("")
async def list_sessions(
    request: Request, page: Page, platform: Platform, routed: Routed
) -> Response:
    if page.date_from is None:
        raise MalformedRequest("date_from is required on the sessions list")
    documents, total = await _reader(platform).sessions_page(
        routed.caller.partner.id,
        offset=page.offset,
        limit=page.limit,
        date_from=page.date_from,
        date_to=page.date_to,
    )
    return paged_response(
        request, page, documents, total=total, base_url=platform.identity.base_url
    )


@sessions_router.put("/{session_id}/charging_preferences")
async def put_charging_preferences(
    session_id: str, body: JsonBody, platform: Platform, routed: Routed
) -> Response:
    parse_object(ChargingPreferences, body)
    row = await _reader(platform).session(session_id)
    if row is None or row.partner_id != routed.caller.partner.id or row.document is None:
        raise UnknownSession(f"unknown session {session_id!r}")
    if not await _takes_preferences(platform, row.location_id, row.evse_uid):
        raise UnknownSession(f"the EVSE of session {session_id!r} takes no charging preferences")
    return ocpi_response(raw_data=ChargingPreferencesResponse.NOT_POSSIBLE.value)


async def _takes_preferences(
    platform: Platform, location_id: str | None, evse_uid: str | None
) -> bool:
    """Whether the session's EVSE is CHARGING_PREFERENCES_CAPABLE."""
    if platform.locations is None or location_id is None:
        return False
    location = await platform.locations.published(location_id)
    if location is None:
        return False
    evse = next((e for e in location.evses or () if e.uid == evse_uid), None)
    return evse is not None and Capability.CHARGING_PREFERENCES_CAPABLE in (evse.capabilities or ())


@cdrs_router.get("")
async def list_cdrs(request: Request, page: Page, platform: Platform, routed: Routed) -> Response:
    documents, total = await _reader(platform).cdrs_page(
        routed.caller.partner.id,
        offset=page.offset,
        limit=page.limit,
        date_from=page.date_from,
        date_to=page.date_to,
    )
    return paged_response(
        request, page, documents, total=total, base_url=platform.identity.base_url
    )


@cdrs_router.get("/{cdr_id}")
async def get_cdr(cdr_id: str, platform: Platform, routed: Routed) -> Response:
    row = await _reader(platform).cdr(cdr_id)
    if row is None or row.partner_id != routed.caller.partner.id:
        raise NotFound(f"unknown CDR {cdr_id!r}")
    return ocpi_response(raw_data=json.loads(row.document))


@tariffs_router.get("")
async def list_tariffs(
    request: Request, page: Page, platform: Platform, _routed: Routed
) -> Response:
    documents, total = await _tariffs(platform).page(
        offset=page.offset, limit=page.limit, date_from=page.date_from, date_to=page.date_to
    )
    return paged_response(
        request, page, documents, total=total, base_url=platform.identity.base_url
    )
