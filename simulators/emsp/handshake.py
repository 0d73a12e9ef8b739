"""Finding a peer's 2.2.1 endpoints from its versions URL (both handshake directions)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from simulators.emsp import wire
from simulators.emsp.client import OcpiClient, OcpiResult
from simulators.emsp.exchange import validation_message
from simulators.emsp.models import Credentials, Endpoint, Role, Version, VersionDetails
from simulators.emsp.wire import StatusCode

_VERSIONS = TypeAdapter(list[Version])


@dataclass
class Discovery:
    version: str
    version_url: str
    endpoints: list[Endpoint]


@dataclass
class DiscoveryFailure:
    """Why the peer's API cannot be used, as the OCPI status code a credentials endpoint
    answers: 3001 (cannot GET versions/details), 3002 (no 2.2.1), 3003 (no credentials)."""

    status_code: int
    message: str
    result: OcpiResult | None = None


async def discover(
    client: OcpiClient,
    versions_url: str,
    token: str,
    *,
    required: tuple[str, ...] = (wire.ModuleID.CREDENTIALS,),
) -> Discovery | DiscoveryFailure:
    """GET the versions list and the 2.2.1 details with ``token``."""
    listing = await client.request("GET", versions_url, token=token, functional=False)
    if not listing.ok:
        return DiscoveryFailure(
            StatusCode.UNABLE_TO_USE_CLIENT_API,
            f"cannot GET versions: {listing.describe()}",
            listing,
        )
    try:
        versions = _VERSIONS.validate_python(listing.data)
    except ValidationError as exc:
        return DiscoveryFailure(
            StatusCode.UNABLE_TO_USE_CLIENT_API, validation_message("versions list", exc), listing
        )
    chosen = next((v for v in versions if v.version == wire.VERSION), None)
    if chosen is None:
        offered = ", ".join(v.version for v in versions) or "none"
        return DiscoveryFailure(
            StatusCode.UNSUPPORTED_VERSION,
            f"no {wire.VERSION} among the versions ({offered})",
            listing,
        )
    details_result = await client.request("GET", chosen.url, token=token, functional=False)
    if not details_result.ok:
        return DiscoveryFailure(
            StatusCode.UNABLE_TO_USE_CLIENT_API,
            f"cannot GET version details: {details_result.describe()}",
            details_result,
        )
    try:
        details = VersionDetails.model_validate(details_result.data)
    except ValidationError as exc:
        return DiscoveryFailure(
            StatusCode.UNABLE_TO_USE_CLIENT_API,
            validation_message("version details", exc),
            details_result,
        )
    if details.version != wire.VERSION:
        return DiscoveryFailure(
            StatusCode.UNSUPPORTED_VERSION,
            f"version details are for {details.version}, not {wire.VERSION}",
            details_result,
        )
    present = {e.identifier for e in details.endpoints}
    missing = [module for module in required if module not in present]
    if missing:
        return DiscoveryFailure(
            StatusCode.NO_MATCHING_ENDPOINTS,
            f"missing endpoints: {', '.join(missing)}",
            details_result,
        )
    return Discovery(details.version, chosen.url, list(details.endpoints))


def lacks_cpo_role(credentials: Credentials) -> str | None:
    """Why ``credentials`` cannot be our counter-party (an eMSP talks to CPOs, or a Hub)."""
    if any(role.role in (Role.CPO, Role.HUB) for role in credentials.roles):
        return None
    listed = ", ".join(role.role.value for role in credentials.roles)
    return f"the credentials have no CPO (or HUB) role, only {listed}"
