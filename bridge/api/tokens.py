"""Tokens module, Receiver interface (reference 3.5): the eMSP's copy of its tokens at the CPO.

``GET``/``PUT``/``PATCH /ocpi/2.2.1/tokens/{country_code}/{party_id}/{token_uid}[?type=]``
(``type`` defaults to RFID). Only the partner that owns ``country_code``/``party_id`` may read
or write them. An unknown token is HTTP 404 with status 2004; an invalid Token, a PATCH
without ``last_updated`` or one that changes the token's key is status 2001.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from bridge.api.deps import (
    JsonBody,
    Platform,
    Routed,
    check_object_owner,
    parse_object,
)
from bridge.api.responses import ocpi_response
from bridge.errors import InvalidParameters, NotFound
from bridge.ocpi.models import ModuleID, validation_details
from bridge.ocpi.tokens import Token, TokenType
from bridge.ocpi.wire import VERSION, OcpiStatus
from bridge.store.tokens import StoredToken
from bridge.tokens import TokenService

router = APIRouter(prefix=f"/ocpi/{VERSION}/{ModuleID.TOKENS.value}")


class UnknownToken(NotFound):
    status_code = OcpiStatus.UNKNOWN_TOKEN


def _service(platform: Platform) -> TokenService:
    if platform.tokens is None:  # pragma: no cover - wired by the composition root
        raise RuntimeError("tokens are not wired")
    return platform.tokens


def _token_type(request: Request) -> TokenType:
    value = request.query_params.get("type") or TokenType.RFID.value
    try:
        return TokenType(value)
    except ValueError:
        known = ", ".join(t.value for t in TokenType)
        raise InvalidParameters(f"unknown token type {value!r} (one of {known})") from None


def _owned(routed: Routed, country_code: str, party_id: str) -> None:
    check_object_owner(
        routed,
        url_country_code=country_code,
        url_party_id=party_id,
        body_country_code=None,
        body_party_id=None,
    )


async def _stored(
    platform: Platform, country_code: str, party_id: str, uid: str, token_type: TokenType
) -> StoredToken:
    stored = await _service(platform).get(country_code, party_id, uid, token_type.value)
    if stored is None:
        raise UnknownToken(f"unknown token {uid!r} of type {token_type.value}")
    return stored


@router.get("/{country_code}/{party_id}/{token_uid}")
async def get_token(
    country_code: str,
    party_id: str,
    token_uid: str,
    request: Request,
    platform: Platform,
    routed: Routed,
) -> Response:
    _owned(routed, country_code, party_id)
    stored = await _stored(platform, country_code, party_id, token_uid, _token_type(request))
    return ocpi_response(stored.token)


@router.put("/{country_code}/{party_id}/{token_uid}")
async def put_token(
    country_code: str,
    party_id: str,
    token_uid: str,
    request: Request,
    body: JsonBody,
    platform: Platform,
    routed: Routed,
) -> Response:
    token_type = _token_type(request)
    token = parse_object(Token, body)
    check_object_owner(
        routed,
        url_country_code=country_code,
        url_party_id=party_id,
        body_country_code=token.country_code,
        body_party_id=token.party_id,
    )
    if token.uid.upper() != token_uid.upper():
        raise InvalidParameters(f"uid {token.uid!r} in the body differs from {token_uid!r}")
    if token.type is not token_type:
        raise InvalidParameters(
            f"type {token.type.value} in the body differs from ?type={token_type.value}"
        )
    await _service(platform).put(routed.caller.partner.id, token)
    return ocpi_response()


@router.patch("/{country_code}/{party_id}/{token_uid}")
async def patch_token(
    country_code: str,
    party_id: str,
    token_uid: str,
    request: Request,
    body: JsonBody,
    platform: Platform,
    routed: Routed,
) -> Response:
    _owned(routed, country_code, party_id)
    if not isinstance(body, dict):
        raise InvalidParameters("a Token PATCH is a JSON object")
    stored = await _stored(platform, country_code, party_id, token_uid, _token_type(request))
    try:
        await _service(platform).patch(stored, body)
    except ValidationError as exc:
        raise InvalidParameters(f"invalid Token PATCH: {validation_details(exc)}") from exc
    except ValueError as exc:
        raise InvalidParameters(f"invalid Token PATCH: {exc}") from exc
    return ocpi_response()
