"""Dependencies shared by the OCPI routers: the platform, the authenticated caller (token A
allowed or not), the routing headers of functional modules and JSON bodies read by us (invalid
JSON is HTTP 400; valid JSON that is not a valid object is status 2001 with HTTP 200)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from bridge.api.platform import OcpiPlatform
from bridge.errors import InvalidParameters, MalformedRequest, NotAuthenticated
from bridge.ocpi.models import validation_details
from bridge.registration import Caller

M = TypeVar("M", bound=BaseModel)

RESPONSE_HEADERS = "ocpi_response_headers"


async def get_platform(request: Request) -> OcpiPlatform:
    # ``async``: FastAPI runs a plain ``def`` dependency in its thread pool (a thread hop and
    # two event loop wake-ups per request for an attribute read).
    platform: OcpiPlatform = request.app.state.ocpi
    return platform


Platform = Annotated[OcpiPlatform, Depends(get_platform)]


async def any_caller(request: Request, platform: Platform) -> Caller:
    """Any partner token we accept, token A included (versions and credentials only)."""
    header = request.headers.get("Authorization")
    if not header:
        raise NotAuthenticated("missing Authorization header (expected 'Token <base64 token>')")
    caller = await platform.partners.authenticate(header)
    if caller is None:
        raise NotAuthenticated("unknown credentials token")
    return caller


AnyCaller = Annotated[Caller, Depends(any_caller)]


async def registered_caller(caller: AnyCaller) -> Caller:
    """A registered partner: token A (or a registration in progress) is refused with 401."""
    if not caller.registered:
        raise NotAuthenticated(
            "this token is only valid on the versions and credentials endpoints: "
            "complete the credentials handshake first"
        )
    return caller


RegisteredCaller = Annotated[Caller, Depends(registered_caller)]


@dataclass(frozen=True)
class RoutedCaller:
    """A request to a functional module: the partner and the party it speaks for."""

    caller: Caller
    country_code: str
    party_id: str


async def routed_caller(
    request: Request, caller: RegisteredCaller, platform: Platform
) -> RoutedCaller:
    """Check the ``OCPI-from-*`` / ``OCPI-to-*`` headers against the caller's roles and our
    identity, and answer with them swapped. Absent headers are tolerated (many peers omit
    them); present ones must be right."""
    headers = request.headers
    from_country = headers.get("OCPI-from-country-code")
    from_party = headers.get("OCPI-from-party-id")
    to_country = headers.get("OCPI-to-country-code")
    to_party = headers.get("OCPI-to-party-id")
    if (from_country is None) != (from_party is None):
        raise InvalidParameters("OCPI-from-country-code and OCPI-from-party-id go together")
    if (to_country is None) != (to_party is None):
        raise InvalidParameters("OCPI-to-country-code and OCPI-to-party-id go together")
    identity = platform.identity
    ours = (identity.country_code.upper(), identity.party_id.upper())
    if (
        to_country is not None
        and to_party is not None
        and ((to_country.upper(), to_party.upper()) != ours)
    ):
        raise InvalidParameters(
            f"OCPI-to {to_country}/{to_party} is not this platform "
            f"({identity.country_code}/{identity.party_id})"
        )
    if from_country is not None and from_party is not None:
        if not caller.partner.has_party(from_country, from_party):
            raise InvalidParameters(
                f"OCPI-from {from_country}/{from_party} is not a role of this token's partner "
                f"({caller.partner.label()})"
            )
        country, party = from_country.upper(), from_party.upper()
    else:
        first = caller.partner.roles[0]
        country, party = first.country_code.upper(), first.party_id.upper()
    setattr(
        request.state,
        RESPONSE_HEADERS,
        {
            "OCPI-from-country-code": identity.country_code,
            "OCPI-from-party-id": identity.party_id,
            "OCPI-to-country-code": country,
            "OCPI-to-party-id": party,
        },
    )
    return RoutedCaller(caller, country, party)


Routed = Annotated[RoutedCaller, Depends(routed_caller)]


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise MalformedRequest("a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"invalid JSON: {exc}") from exc


JsonBody = Annotated[Any, Depends(json_body)]


def parse_object(model: type[M], value: Any) -> M:
    """Validate a received OCPI object: ``InvalidParameters`` (2001) listing what is wrong."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidParameters(f"invalid {model.__name__}: {validation_details(exc)}") from exc


def check_object_owner(
    routed: RoutedCaller,
    *,
    url_country_code: str,
    url_party_id: str,
    body_country_code: str | None,
    body_party_id: str | None,
) -> None:
    """An object a partner PUTs or PATCHes at ``.../{country_code}/{party_id}/{id}`` must be
    the caller's: URL, body and ``OCPI-from-*`` headers all name one of its parties (no
    precedence between them: ocpi/ocpi#548). ``InvalidParameters`` (2001) otherwise."""
    url = (url_country_code.upper(), url_party_id.upper())
    if not routed.caller.partner.has_party(*url):
        raise InvalidParameters(
            f"{url[0]}/{url[1]} in the URL is not a party of this token's partner "
            f"({routed.caller.partner.label()})"
        )
    if url != (routed.country_code, routed.party_id):
        raise InvalidParameters(
            f"{url[0]}/{url[1]} in the URL differs from OCPI-from "
            f"{routed.country_code}/{routed.party_id}"
        )
    if body_country_code is not None and body_party_id is not None:
        body = (body_country_code.upper(), body_party_id.upper())
        if body != url:
            raise InvalidParameters(
                f"country_code/party_id {body[0]}/{body[1]} in the body differ from "
                f"{url[0]}/{url[1]} in the URL"
            )
