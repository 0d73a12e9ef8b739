"""Operator API for partners (``/admin/partners``), the HTTP twin of ``ocpi-bridge partners``.
Authenticated with ``Authorization: Bearer <OCPI_BRIDGE_ADMIN_TOKEN>``; disabled (404) while no
admin token is configured. Answers use the OCPI envelope like every other endpoint."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from bridge.api.deps import JsonBody, Platform, parse_object
from bridge.api.responses import ocpi_response
from bridge.errors import NotAuthenticated, NotFound, OcpiError
from bridge.ocpi.models import (
    CountryCode,
    CredentialsRole,
    CredentialsToken,
    Endpoint,
    PartyId,
    Role,
    Url,
)
from bridge.ocpi.wire import OcpiStatus
from bridge.partners import ExpectedRole, Partner, PartnerStatus
from bridge.registration import FailureKind, PartnerOperationFailed

router = APIRouter(prefix="/admin")


def require_admin(request: Request, platform: Platform) -> None:
    if platform.admin_token is None:
        raise NotFound("the admin API is disabled: set OCPI_BRIDGE_ADMIN_TOKEN")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        value.strip().encode(), platform.admin_token.encode()
    ):
        raise NotAuthenticated("admin API: expected 'Authorization: Bearer <admin token>'")


Admin = Annotated[None, Depends(require_admin)]


class PartnerView(BaseModel):
    id: int
    status: PartnerStatus
    initiated_by: str
    roles: list[CredentialsRole]
    expected: str | None
    versions_url: str | None
    version: str | None
    endpoints: list[Endpoint]
    encode_token: bool
    created_at: datetime
    registered_at: datetime | None
    token_a: str | None = Field(
        default=None, description="Only while the partner has not registered yet"
    )

    @classmethod
    def of(cls, partner: Partner) -> PartnerView:
        return cls(
            id=partner.id,
            status=partner.status,
            initiated_by=partner.initiated_by.value,
            roles=list(partner.roles),
            expected=str(partner.expected) if partner.expected else None,
            versions_url=partner.versions_url,
            version=partner.version,
            endpoints=list(partner.endpoints),
            encode_token=partner.encode_token,
            created_at=partner.created_at,
            registered_at=partner.registered_at,
            token_a=partner.token_accept if partner.status is PartnerStatus.PENDING else None,
        )


class AddedPartner(BaseModel):
    partner: PartnerView
    token_a: str
    versions_url: str


class AddPartner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country_code: CountryCode
    party_id: PartyId
    role: Role = Role.EMSP
    encode_token: bool = True


class RegisterPartner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    versions_url: Url
    token: CredentialsToken
    country_code: CountryCode | None = None
    party_id: PartyId | None = None
    role: Role = Role.EMSP
    encode_token: bool = True


class OperationError(OcpiError):
    def __init__(self, failure: PartnerOperationFailed) -> None:
        super().__init__(str(failure))
        self.status_code = OcpiStatus.CLIENT_API_UNUSABLE
        self.http_status = {
            FailureKind.NOT_FOUND: 404,
            FailureKind.STATE: 409,
            FailureKind.PEER: 502,
        }[failure.kind]


@router.get("/partners")
async def list_partners(_admin: Admin, platform: Platform) -> Response:
    return ocpi_response([PartnerView.of(p) for p in await platform.partners.list()])


@router.get("/partners/{partner_id}")
async def get_partner(partner_id: int, _admin: Admin, platform: Platform) -> Response:
    try:
        return ocpi_response(PartnerView.of(await platform.partners.get(partner_id)))
    except PartnerOperationFailed as exc:
        raise OperationError(exc) from exc


@router.post("/partners")
async def add_partner(_admin: Admin, platform: Platform, body: JsonBody) -> Response:
    request = parse_object(AddPartner, body)
    partner = await platform.partners.add(
        expected=ExpectedRole(
            role=request.role.value, country_code=request.country_code, party_id=request.party_id
        ),
        encode_token=request.encode_token,
    )
    assert partner.token_accept is not None
    added = AddedPartner(
        partner=PartnerView.of(partner),
        token_a=partner.token_accept,
        versions_url=platform.identity.versions_url,
    )
    return ocpi_response(added, http_status=201)


@router.post("/partners/register")
async def register_partner(_admin: Admin, platform: Platform, body: JsonBody) -> Response:
    request = parse_object(RegisterPartner, body)
    expected = None
    if request.country_code and request.party_id:
        expected = ExpectedRole(
            role=request.role.value, country_code=request.country_code, party_id=request.party_id
        )
    try:
        partner = await platform.partners.register(
            request.versions_url,
            request.token,
            expected=expected,
            encode_token=request.encode_token,
        )
    except PartnerOperationFailed as exc:
        raise OperationError(exc) from exc
    return ocpi_response(PartnerView.of(partner), http_status=201)


@router.post("/partners/{partner_id}/rotate")
async def rotate_partner(partner_id: int, _admin: Admin, platform: Platform) -> Response:
    try:
        return ocpi_response(PartnerView.of(await platform.partners.rotate(partner_id)))
    except PartnerOperationFailed as exc:
        raise OperationError(exc) from exc


@router.post("/partners/{partner_id}/unregister")
async def unregister_partner(
    partner_id: int, _admin: Admin, platform: Platform, force: bool = False
) -> Response:
    try:
        partner = await platform.partners.unregister(partner_id, force=force)
    except PartnerOperationFailed as exc:
        raise OperationError(exc) from exc
    return ocpi_response(PartnerView.of(partner))
