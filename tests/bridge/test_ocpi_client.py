"""The outgoing OCPI client against the eMSP simulator over real HTTP: what it sends (base64
token, ids, routing headers) and every failure as a value."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from bridge.push.client import Failure, OcpiClient, Routing
from simulators.emsp.server import EmspSimulator

ROUTING = Routing(
    from_country_code="NL", from_party_id="CPO", to_country_code="DE", to_party_id="EMS"
)


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


@pytest.fixture
async def client() -> AsyncIterator[OcpiClient]:
    client = OcpiClient(timeout_s=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def test_client_sends_base64_token_and_request_ids(
    emsp: EmspSimulator, client: OcpiClient
) -> None:
    token_a = emsp.driver.mint_token_a()
    reply = await client.request("GET", emsp.versions_url, token=token_a, correlation_id="c-1")
    assert reply.ok, reply.describe()
    assert reply.status_code == 1000
    assert reply.data[0]["version"] == "2.2.1"
    seen = emsp.state.received[-1]
    assert seen.headers["authorization"] == "Token " + base64.b64encode(token_a.encode()).decode()
    assert seen.token_encoding == "base64"
    assert seen.headers["x-correlation-id"] == "c-1"
    assert len(seen.headers["x-request-id"]) == 36
    assert reply.headers["X-Correlation-ID"] == "c-1"


async def test_client_sends_raw_token_when_configured_for_old_peers(
    emsp: EmspSimulator, client: OcpiClient
) -> None:
    token_a = emsp.driver.mint_token_a()
    reply = await client.request("GET", emsp.versions_url, token=token_a, encode_token=False)
    assert reply.ok
    assert emsp.state.received[-1].token_encoding == "raw"


async def test_client_sends_routing_headers_on_functional_modules(
    emsp: EmspSimulator, client: OcpiClient
) -> None:
    token = await registered_token(emsp)
    url = f"{emsp.base_url}/ocpi/emsp/2.2.1/tokens"
    without = await client.request("GET", url, token=token)
    assert without.failure is Failure.OCPI_STATUS
    assert without.status_code == 2001
    routed = await client.request("GET", url, token=token, routing=ROUTING)
    assert routed.ok, routed.describe()
    headers = emsp.state.received[-1].headers
    assert headers["ocpi-from-country-code"] == "NL"
    assert headers["ocpi-from-party-id"] == "CPO"
    assert headers["ocpi-to-country-code"] == "DE"
    assert headers["ocpi-to-party-id"] == "EMS"


async def registered_token(emsp: EmspSimulator) -> str:
    """Put the simulator in the registered state with a CPO NL/CPO without a real CPO: it
    accepts our token on its functional modules."""
    from simulators.emsp.models import BusinessDetails, CredentialsRole
    from simulators.emsp.state import Peer

    token = "cpo-token-for-the-emsp"
    emsp.state.peer = Peer(
        versions_url="http://127.0.0.1:1/ocpi/versions",
        version="2.2.1",
        endpoints=[],
        roles=[
            CredentialsRole(
                role="CPO",
                business_details=BusinessDetails(name="CPO"),
                party_id="CPO",
                country_code="NL",
            )
        ],
        token_we_accept=token,
        token_we_present="unused",
        registered_by="cpo",
    )
    return token


async def test_client_reports_unreachable_peer(client: OcpiClient) -> None:
    reply = await client.request("GET", "http://127.0.0.1:1/ocpi/versions", token="t")
    assert reply.failure is Failure.UNREACHABLE
    assert reply.http_status is None
    assert "unreachable" in reply.describe()


async def test_client_reports_timeout(emsp: EmspSimulator, client: OcpiClient) -> None:
    emsp.state.faults.delay("versions", "GET", seconds=2)
    reply = await client.request("GET", emsp.versions_url, token=emsp.driver.mint_token_a())
    assert reply.failure is Failure.TIMEOUT


async def test_client_reports_http_error_status(emsp: EmspSimulator, client: OcpiClient) -> None:
    emsp.state.faults.http_error("versions", "GET", status=500)
    reply = await client.request("GET", emsp.versions_url, token=emsp.driver.mint_token_a())
    assert reply.failure is Failure.HTTP_STATUS
    assert reply.http_status == 500
    assert "HTTP 500" in reply.describe()


async def test_client_reports_unknown_token_as_http_401(
    emsp: EmspSimulator, client: OcpiClient
) -> None:
    reply = await client.request("GET", emsp.versions_url, token="not-a-token-it-knows")
    assert reply.failure is Failure.HTTP_STATUS
    assert reply.http_status == 401
    assert reply.status_code is not None


async def test_client_reports_ocpi_error_status(emsp: EmspSimulator, client: OcpiClient) -> None:
    emsp.state.faults.status("versions", "GET", status_code=3000, message="down for maintenance")
    reply = await client.request("GET", emsp.versions_url, token=emsp.driver.mint_token_a())
    assert reply.failure is Failure.OCPI_STATUS
    assert reply.http_status == 200
    assert reply.status_code == 3000
    assert reply.status_message == "down for maintenance"


async def test_client_reports_a_body_that_is_not_an_envelope(
    emsp: EmspSimulator, client: OcpiClient
) -> None:
    reply = await client.request("GET", f"{emsp.base_url}/_sim/state", token="t")
    assert reply.failure is Failure.INVALID_RESPONSE
    assert reply.http_status == 200
    assert "not an OCPI envelope" in reply.describe()
