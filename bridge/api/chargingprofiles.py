"""ChargingProfiles module, Receiver interface (reference 3.7).

- ``PUT /ocpi/2.2.1/chargingprofiles/{session_id}`` body SetChargingProfile,
- ``GET /ocpi/2.2.1/chargingprofiles/{session_id}?duration={s}&response_url={url}``,
- ``DELETE /ocpi/2.2.1/chargingprofiles/{session_id}?response_url={url}``.

Each is answered HTTP 200, status 1000 with a ChargingProfileResponse (``ACCEPTED`` with the
``timeout`` of the asynchronous result, ``UNKNOWN_SESSION`` for a session that is unknown, not
the caller's or not active, ``REJECTED`` when its charger is offline, ``TOO_OFTEN`` when the
previous request of the same kind for the session is too recent: see
``bridge.chargingprofiles``). An invalid SetChargingProfile, a ``duration`` that is not an
integer > 0 or a missing/invalid ``response_url`` is HTTP 200 with status 2001 (the request
reached an existing resource); invalid JSON is HTTP 400.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError

from bridge.api.deps import JsonBody, Platform, Routed, parse_object
from bridge.api.responses import ocpi_response
from bridge.chargingprofiles import MAX_DURATION_S, ChargingProfileService, Reply
from bridge.errors import InvalidParameters
from bridge.ocpi.chargingprofiles import SetChargingProfile
from bridge.ocpi.models import ModuleID, Url
from bridge.ocpi.wire import VERSION

router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.CHARGING_PROFILES.value}")

_URL: TypeAdapter[str] = TypeAdapter(Url)


def _service(platform: Platform) -> ChargingProfileService:
    if platform.charging_profiles is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("charging profiles are not wired")
    return platform.charging_profiles


def _response_url(request: Request) -> str:
    value: Any = request.query_params.get("response_url")
    if not value:
        raise InvalidParameters("response_url is required")
    try:
        return _URL.validate_python(value)
    except ValidationError:
        raise InvalidParameters(
            "response_url must be an absolute http(s) URL of at most 255 characters"
        ) from None


def _duration(request: Request) -> int:
    value = request.query_params.get("duration")
    if value is None or not value.strip():
        raise InvalidParameters("duration (seconds) is required")
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", text) is None or not 0 < int(text) <= MAX_DURATION_S:
        raise InvalidParameters(
            f"duration must be an integer number of seconds from 1 to {MAX_DURATION_S}"
        )
    return int(text)


def _answer(reply: Reply) -> Response:
    return ocpi_response(reply.response, message=reply.message)


@router.put("/{session_id}")
async def put_charging_profile(
    session_id: str, body: JsonBody, platform: Platform, routed: Routed
) -> Response:
    request = parse_object(SetChargingProfile, body)
    reply = await _service(platform).set_profile(routed.caller.partner.id, session_id, request)
    return _answer(reply)


@router.get("/{session_id}")
async def get_active_charging_profile(
    session_id: str, request: Request, platform: Platform, routed: Routed
) -> Response:
    duration = _duration(request)
    response_url = _response_url(request)
    reply = await _service(platform).get_active(
        routed.caller.partner.id, session_id, duration, response_url
    )
    return _answer(reply)


@router.delete("/{session_id}")
async def delete_charging_profile(
    session_id: str, request: Request, platform: Platform, routed: Routed
) -> Response:
    response_url = _response_url(request)
    reply = await _service(platform).clear(routed.caller.partner.id, session_id, response_url)
    return _answer(reply)
