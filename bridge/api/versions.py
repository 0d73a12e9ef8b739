"""Versions module: ``GET /ocpi/versions`` and ``GET /ocpi/2.2.1`` (token A accepted)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bridge.api.deps import AnyCaller, Platform
from bridge.api.responses import ocpi_response
from bridge.ocpi.models import Endpoint, InterfaceRole, ModuleID, Version, VersionDetails
from bridge.ocpi.wire import VERSION

# The modules this bridge implements, with the role it plays in each. Credentials is
# symmetric; SENDER is what the spec advises to publish.
IMPLEMENTED_MODULES: tuple[tuple[ModuleID, InterfaceRole], ...] = (
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER),
    (ModuleID.LOCATIONS, InterfaceRole.SENDER),
    (ModuleID.SESSIONS, InterfaceRole.SENDER),
    (ModuleID.CDRS, InterfaceRole.SENDER),
    (ModuleID.TARIFFS, InterfaceRole.SENDER),
    (ModuleID.TOKENS, InterfaceRole.RECEIVER),
    (ModuleID.COMMANDS, InterfaceRole.RECEIVER),
    (ModuleID.CHARGING_PROFILES, InterfaceRole.RECEIVER),
)

router = APIRouter()


@router.get("/ocpi/versions")
async def get_versions(_caller: AnyCaller, platform: Platform) -> Response:
    return ocpi_response([Version(version=VERSION, url=platform.identity.details_url)])


@router.get(f"/ocpi/{VERSION}")
async def get_version_details(_caller: AnyCaller, platform: Platform) -> Response:
    identity = platform.identity
    endpoints = [
        Endpoint(identifier=module.value, role=role, url=identity.module_url(module.value))
        for module, role in IMPLEMENTED_MODULES
    ]
    return ocpi_response(VersionDetails(version=VERSION, endpoints=endpoints))
