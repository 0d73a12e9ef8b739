"""Transport rules of the simulator's server: tokens, request ids, routing headers, JSON and
the envelope."""

from __future__ import annotations

import re

import pytest

from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import AuthKind
from tests.simulators.emsp.builders import a_tariff
from tests.simulators.emsp.fake_cpo import FakeCpo

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


async def test_functional_request_is_401_2000_when_the_token_is_missing(peer: FakeCpo) -> None:
    response = await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"), token="")
    assert response.status_code == 401
    assert response.json()["status_code"] == 2000
    assert "data" not in response.json()


async def test_request_is_401_when_the_token_is_unknown(peer: FakeCpo) -> None:
    for url in (peer.emsp_url("tariffs", "NL", "CPO", "T1"), peer.emsp_url("credentials")):
        response = await peer.call("GET", url, token="nobody")
        assert response.status_code == 401
        assert response.json()["status_code"] == 2000


async def test_functional_request_is_401_when_it_uses_token_a(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    response = await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"), token=token_a)
    assert response.status_code == 401
    assert response.json()["status_code"] == 2000
    assert "token A" in response.json()["status_message"]
    assert emsp.state.received[-1].auth is AuthKind.TOKEN_A


@pytest.mark.parametrize("raw", [True, False])
async def test_token_is_accepted_when_sent_raw_or_base64(
    emsp: EmspSimulator, peer: FakeCpo, raw: bool
) -> None:
    response = await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"), raw=raw)
    assert response.status_code == 404  # authenticated, the tariff just does not exist
    assert emsp.state.received[-1].token_encoding == ("raw" if raw else "base64")


async def test_response_echoes_request_and_correlation_ids_when_given(peer: FakeCpo) -> None:
    response = await peer.call(
        "GET",
        peer.emsp_url("tariffs", "NL", "CPO", "T1"),
        headers={"X-Request-ID": "req-42", "X-Correlation-ID": "corr-42"},
    )
    assert response.headers["X-Request-ID"] == "req-42"
    assert response.headers["X-Correlation-ID"] == "corr-42"


async def test_response_has_new_ids_when_the_request_had_none(emsp: EmspSimulator) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(emsp.versions_url)
    assert response.status_code == 401
    assert len(response.headers["X-Request-ID"]) == 36
    assert len(response.headers["X-Correlation-ID"]) == 36


async def test_response_swaps_routing_headers_when_the_request_is_functional(
    peer: FakeCpo,
) -> None:
    response = await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"))
    assert response.headers["OCPI-from-country-code"] == "NL"
    assert response.headers["OCPI-from-party-id"] == "EMS"
    assert response.headers["OCPI-to-country-code"] == "NL"
    assert response.headers["OCPI-to-party-id"] == "CPO"


async def test_versions_response_has_no_routing_headers(emsp: EmspSimulator, peer: FakeCpo) -> None:
    response = await peer.call("GET", emsp.versions_url, routing=False)
    assert response.status_code == 200
    assert "OCPI-from-party-id" not in response.headers


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"OCPI-from-party-id": ""}, "missing routing headers: OCPI-from-party-id"),
        ({"OCPI-from-party-id": "XYZ"}, "OCPI-from NL/XYZ is not one of the CPO's roles"),
        ({"OCPI-to-party-id": "ABC"}, "OCPI-to NL/ABC is not this eMSP"),
    ],
)
async def test_request_is_2001_when_routing_headers_are_missing_or_wrong(
    emsp: EmspSimulator, peer: FakeCpo, headers: dict[str, str], message: str
) -> None:
    response = await peer.call(
        "PUT",
        peer.emsp_url("tariffs", "NL", "CPO", "T1"),
        body=a_tariff(),
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]
    assert not emsp.state.tariffs
    assert emsp.state.received[-1].headers["ocpi-to-country-code"] == "NL"


async def test_routing_headers_are_optional_when_the_configuration_says_so(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.config.require_routing_headers = False
    response = await peer.call(
        "PUT", peer.emsp_url("tariffs", "NL", "CPO", "T1"), body=a_tariff(), routing=False
    )
    assert response.status_code == 201


@pytest.mark.parametrize("content", [b"{not json", b""])
async def test_request_is_400_2001_when_the_body_is_not_json(
    emsp: EmspSimulator, peer: FakeCpo, content: bytes
) -> None:
    response = await peer.call(
        "PUT",
        peer.emsp_url("tariffs", "NL", "CPO", "T1"),
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["status_code"] == 2001
    assert not emsp.state.tariffs
    recorded = emsp.state.received[-1]
    assert recorded.http_status == 400
    assert recorded.body == (content.decode() or None)


async def test_envelope_timestamp_is_utc_z_within_25_chars_on_every_answer(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    answers = [
        await peer.call("GET", emsp.versions_url, routing=False),
        await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1")),
        await peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"), token="bad"),
        await peer.call("GET", f"{emsp.base_url}/ocpi/emsp/2.2.1/nothing-here"),
    ]
    for response in answers:
        body = response.json()
        assert TIMESTAMP.match(body["timestamp"]), body
        assert len(body["timestamp"]) <= 25
        assert isinstance(body["status_code"], int)
        assert isinstance(body["status_message"], str)
    assert answers[-1].status_code == 404


async def test_every_request_is_recorded_when_it_is_rejected(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("tariffs", "NL", "CPO", "T1"), body={"id": "T1"})
    recorded = emsp.state.received_for("tariffs")[-1]
    assert recorded.method == "PUT"
    assert recorded.path == "/ocpi/emsp/2.2.1/tariffs/NL/CPO/T1"
    assert recorded.body == {"id": "T1"}
    assert recorded.status_code == 2001
    assert recorded.stored is False
    assert recorded.headers["ocpi-from-party-id"] == "CPO"
