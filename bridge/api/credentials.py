"""Credentials module (``/ocpi/2.2.1/credentials``), the receiving side of registration:
GET (our credentials for the caller), POST (register with token A), PUT (update/rotate),
DELETE (unregister). PATCH is not part of the module (HTTP 405)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bridge.api.deps import AnyCaller, JsonBody, Platform, parse_object
from bridge.api.responses import ocpi_response
from bridge.ocpi.models import Credentials
from bridge.ocpi.wire import VERSION

router = APIRouter()

PATH = f"/ocpi/{VERSION}/credentials"


@router.get(PATH)
async def get_credentials(caller: AnyCaller, platform: Platform) -> Response:
    return ocpi_response(platform.partners.credentials_for(caller))


@router.post(PATH)
async def post_credentials(caller: AnyCaller, platform: Platform, body: JsonBody) -> Response:
    platform.partners.check_can_register(caller)
    credentials = parse_object(Credentials, body)
    return ocpi_response(await platform.partners.accept_registration(caller, credentials))


@router.put(PATH)
async def put_credentials(caller: AnyCaller, platform: Platform, body: JsonBody) -> Response:
    platform.partners.check_registered(caller)
    credentials = parse_object(Credentials, body)
    return ocpi_response(await platform.partners.accept_update(caller, credentials))


@router.delete(PATH)
async def delete_credentials(caller: AnyCaller, platform: Platform) -> Response:
    await platform.partners.accept_unregistration(caller)
    return ocpi_response()
