"""Injected faults, and how the simulator's client reports a failing peer."""

from __future__ import annotations

import httpx

from simulators.emsp.client import ErrorKind, OcpiClient
from simulators.emsp.server import EmspSimulator
from simulators.emsp.wire import Party
from tests.simulators.emsp.builders import a_session
from tests.simulators.emsp.fake_cpo import FakeCpo


async def test_http_fault_answers_500_plain_then_clears_when_its_count_is_used(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.faults.http_error("sessions", "PUT", count=1)
    url = peer.emsp_url("sessions", "NL", "CPO", "S1")

    failed = await peer.call("PUT", url, body=a_session())
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("text/plain")
    assert not emsp.state.sessions
    assert emsp.state.received[-1].fault == "http 500"

    ok = await peer.call("PUT", url, body=a_session())
    assert ok.status_code == 201
    assert not emsp.state.faults.rules


async def test_fault_only_hits_its_method_when_a_method_is_given(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.faults.http_error("sessions", "GET")
    url = peer.emsp_url("sessions", "NL", "CPO", "S1")
    assert (await peer.call("PUT", url, body=a_session())).status_code == 201
    assert (await peer.call("GET", url)).status_code == 500
    assert (await peer.call("PUT", peer.emsp_url("tariffs", "NL", "CPO", "T1"), body={})).json()[
        "status_code"
    ] == 2001


async def test_status_fault_answers_http_200_with_the_code_and_no_data_when_set(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.faults.status("*", "*", status_code=3000, message="busy")
    response = await peer.call(
        "PUT", peer.emsp_url("sessions", "NL", "CPO", "S1"), body=a_session()
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 3000
    assert response.json()["status_message"] == "busy"
    assert "data" not in response.json()
    assert not emsp.state.sessions


async def test_delay_fault_makes_the_client_time_out_when_longer_than_its_timeout(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.faults.delay("versions", seconds=0.5, count=1)
    client = OcpiClient(Party("NL", "CPO"), timeout_s=0.1)
    try:
        result = await client.request("GET", emsp.versions_url, token="cpo-token", functional=False)
        assert result.error is ErrorKind.TIMEOUT
        assert not result.ok
        await emsp.state.wait_for(
            lambda: emsp.state.received[-1].http_status is not None, timeout=2
        )
        assert emsp.state.received[-1].http_status == 200  # answered, too late
        again = await client.request("GET", emsp.versions_url, token="cpo-token", functional=False)
        assert again.ok
    finally:
        await client.aclose()


async def test_credentials_fault_fails_the_registration_when_set(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    emsp.state.faults.status("credentials", "POST", status_code=3001, count=1)
    response = await cpo.register_at(emsp.versions_url, emsp.driver.mint_token_a())
    assert response.json()["status_code"] == 3001
    assert emsp.state.peer is None


async def test_client_reports_unreachable_http_and_invalid_envelope_as_values(
    emsp: EmspSimulator,
) -> None:
    client = OcpiClient(Party("NL", "EMS"), timeout_s=1)
    try:
        unreachable = await client.request("GET", "http://127.0.0.1:9/versions", token="t")
        assert unreachable.error is ErrorKind.UNREACHABLE
        refused = await client.request("GET", emsp.versions_url, token="wrong", functional=False)
        assert refused.error is ErrorKind.HTTP
        assert (refused.http_status, refused.status_code) == (401, 2000)
        not_ocpi = await client.request("GET", f"{emsp.base_url}/_sim/state", token="t")
        assert not_ocpi.error is ErrorKind.INVALID_ENVELOPE
        assert not_ocpi.http_status == 200
    finally:
        await client.aclose()


async def test_client_sends_base64_token_ids_and_routing_headers_when_functional(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    client = OcpiClient(Party("NL", "CPO"))
    try:
        result = await client.request(
            "GET",
            peer.emsp_url("tariffs", "NL", "CPO", "T1"),
            token="cpo-token",
            receiver=Party("NL", "EMS"),
        )
    finally:
        await client.aclose()
    assert result.http_status == 404
    headers = emsp.state.received[-1].headers
    assert headers["authorization"] == "Token Y3BvLXRva2Vu"
    assert headers["x-request-id"] == result.request_id
    assert headers["ocpi-to-party-id"] == "EMS"
    assert result.header("X-Request-ID") == result.request_id


async def test_control_api_sets_and_clears_faults_when_asked(emsp: EmspSimulator) -> None:
    async with httpx.AsyncClient(base_url=emsp.base_url) as http:
        added = await http.post("/_sim/faults", json={"module": "sessions", "http": 503})
        assert added.status_code == 200
        assert added.json()["faults"][0]["http_status"] == 503
        both = await http.post("/_sim/faults", json={"http": 500, "delay": 1})
        assert both.status_code == 422
        assert (await http.delete("/_sim/faults")).json() == {"faults": []}
    assert not emsp.state.faults.rules
