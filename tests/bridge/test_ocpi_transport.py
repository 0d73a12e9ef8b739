"""OCPI transport rules on the bridge's HTTP server (real HTTP on 127.0.0.1): authorization,
request ids, envelope on every error, HTTP statuses, the versions module."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from bridge.main import BridgeApp
from bridge.partners import PartnerStatus
from tests.bridge.conftest import ADMIN_TOKEN, base_url, pending_partner, token_header
from tests.conftest import running_bridge

CREDENTIALS = "/ocpi/2.2.1/credentials"


def assert_envelope(response: httpx.Response, http_status: int, status_code: int) -> dict:
    assert response.status_code == http_status, response.text
    body = response.json()
    assert body["status_code"] == status_code
    assert body["timestamp"].endswith("Z")
    assert len(body["timestamp"]) <= 25
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Token unknown-token"},
        {"Authorization": "Token " + base64.b64encode(b"unknown-token").decode()},
        {"Authorization": "Token %%%not-base64%%%"},
        {"Authorization": "Bearer something"},
        {"Authorization": "Token"},
    ],
)
async def test_versions_answer_401_when_token_missing_or_unknown(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await pending_partner(ocpi_bridge)
    response = await http.get(base_url(ocpi_bridge) + "/ocpi/versions", headers=headers)
    body = assert_envelope(response, 401, 2000)
    assert "data" not in body
    assert body["status_message"]
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("encode", [True, False])
async def test_token_a_opens_versions_and_details_when_base64_or_raw(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, encode: bool
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    headers = token_header(partner.token_accept, encode=encode)
    base = base_url(ocpi_bridge)

    versions = assert_envelope(await http.get(base + "/ocpi/versions", headers=headers), 200, 1000)
    assert versions["data"] == [{"version": "2.2.1", "url": f"{base}/ocpi/2.2.1"}]
    details = assert_envelope(await http.get(base + "/ocpi/2.2.1", headers=headers), 200, 1000)
    assert details["data"]["version"] == "2.2.1"
    assert {"identifier": "credentials", "role": "SENDER", "url": base + CREDENTIALS} in details[
        "data"
    ]["endpoints"]
    own = assert_envelope(await http.get(base + CREDENTIALS, headers=headers), 200, 1000)
    assert own["data"]["token"] == partner.token_accept
    assert own["data"]["url"] == base + "/ocpi/versions"
    assert own["data"]["roles"] == [
        {
            "role": "CPO",
            "business_details": {"name": "ocpi-bridge CPO"},
            "party_id": "CPO",
            "country_code": "NL",
        }
    ]


async def test_urls_use_public_url_when_configured(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with running_bridge(tmp_path, public_url="https://ocpi.example.com/") as app:
        partner = await pending_partner(app)
        assert partner.token_accept is not None
        response = await http.get(
            base_url(app) + "/ocpi/versions", headers=token_header(partner.token_accept)
        )
    assert response.json()["data"][0]["url"] == "https://ocpi.example.com/ocpi/2.2.1"


async def test_request_and_correlation_ids_are_echoed_when_sent(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        base_url(ocpi_bridge) + "/ocpi/versions",
        headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"},
    )
    assert response.headers["X-Request-ID"] == "req-1"
    assert response.headers["X-Correlation-ID"] == "corr-1"


async def test_request_ids_are_generated_when_absent(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    response = await http.get(base_url(ocpi_bridge) + "/ocpi/versions")
    assert len(response.headers["X-Request-ID"]) == 36
    assert response.headers["X-Correlation-ID"] == response.headers["X-Request-ID"]


async def test_unknown_path_answers_404_envelope(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    response = await http.get(base_url(ocpi_bridge) + "/ocpi/2.2.1/nothing")
    assert_envelope(response, 404, 2000)


async def test_credentials_patch_answers_405(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    response = await http.patch(
        base_url(ocpi_bridge) + CREDENTIALS,
        headers=token_header(partner.token_accept),
        json={"token": "x"},
    )
    assert_envelope(response, 405, 2000)


# --- bad credentials requests leave the partner as it was ------------------------------


def valid_credentials(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "token": "token-b-from-the-emsp",
        "url": "http://127.0.0.1:1/ocpi/versions",
        "roles": [
            {
                "role": "EMSP",
                "country_code": "NL",
                "party_id": "EMS",
                "business_details": {"name": "Example eMSP"},
            }
        ],
    }
    body.update(changes)
    return body


async def assert_still_pending(app: BridgeApp, partner_id: int, token_a: str) -> None:
    partner = await app.partners.get(partner_id)
    assert partner.status is PartnerStatus.PENDING
    assert partner.token_accept == token_a
    assert partner.token_present is None
    assert partner.roles == ()


@pytest.mark.parametrize(
    ("content", "http_status", "status_code", "message"),
    [
        (b"{not json", 400, 2001, "invalid JSON"),
        (b"", 400, 2001, "JSON body is required"),
        (b'{"token": "abc"}', 200, 2001, "url: Field required"),
        (b'["a list"]', 200, 2001, "invalid Credentials"),
    ],
)
async def test_credentials_post_is_refused_when_body_is_bad(
    ocpi_bridge: BridgeApp,
    http: httpx.AsyncClient,
    content: bytes,
    http_status: int,
    status_code: int,
    message: str,
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    response = await http.post(
        base_url(ocpi_bridge) + CREDENTIALS,
        headers=token_header(partner.token_accept) | {"Content-Type": "application/json"},
        content=content,
    )
    body = assert_envelope(response, http_status, status_code)
    assert message in body["status_message"]
    await assert_still_pending(ocpi_bridge, partner.id, partner.token_accept)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token": "with space"}, "token"),
        ({"roles": []}, "roles"),
        (
            {
                "roles": [
                    {
                        "role": "EMSP",
                        "country_code": "DE",
                        "party_id": "EMS",
                        "business_details": {"name": "Other"},
                    }
                ]
            },
            "issued for NL/EMS (EMSP)",
        ),
        (
            {
                "roles": [
                    {
                        "role": "CPO",
                        "country_code": "NL",
                        "party_id": "EMS",
                        "business_details": {"name": "Other"},
                    }
                ]
            },
            "issued for NL/EMS (EMSP)",
        ),
    ],
)
async def test_credentials_post_answers_2001_when_fields_are_wrong(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, changes: dict[str, object], message: str
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    response = await http.post(
        base_url(ocpi_bridge) + CREDENTIALS,
        headers=token_header(partner.token_accept),
        json=valid_credentials(**changes),
    )
    body = assert_envelope(response, 200, 2001)
    assert message in body["status_message"]
    await assert_still_pending(ocpi_bridge, partner.id, partner.token_accept)


async def test_credentials_post_answers_3001_when_versions_url_unreachable(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    response = await http.post(
        base_url(ocpi_bridge) + CREDENTIALS,
        headers=token_header(partner.token_accept),
        json=valid_credentials(),
    )
    body = assert_envelope(response, 200, 3001)
    assert "127.0.0.1:1/ocpi/versions" in body["status_message"]
    assert "data" not in body
    await assert_still_pending(ocpi_bridge, partner.id, partner.token_accept)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_credentials_put_and_delete_answer_405_when_not_registered(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, method: str
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    response = await http.request(
        method,
        base_url(ocpi_bridge) + CREDENTIALS,
        headers=token_header(partner.token_accept),
        json=valid_credentials() if method == "PUT" else None,
    )
    assert_envelope(response, 405, 2000)
    await assert_still_pending(ocpi_bridge, partner.id, partner.token_accept)


# --- admin API ---------------------------------------------------------------------------


async def test_admin_api_answers_404_when_disabled(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with running_bridge(tmp_path) as app:
        response = await http.get(
            base_url(app) + "/admin/partners", headers={"Authorization": "Bearer anything"}
        )
    assert_envelope(response, 404, 2000)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0123456789", f"Token {ADMIN_TOKEN}"])
async def test_admin_api_answers_401_when_token_wrong(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await http.get(base_url(ocpi_bridge) + "/admin/partners", headers=headers)
    assert_envelope(response, 401, 2000)


async def test_admin_api_adds_a_partner_whose_token_a_opens_versions(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = base_url(ocpi_bridge)
    added = assert_envelope(
        await http.post(
            base + "/admin/partners", headers=admin, json={"country_code": "DE", "party_id": "ABC"}
        ),
        201,
        1000,
    )["data"]
    assert added["versions_url"] == base + "/ocpi/versions"
    assert added["partner"]["status"] == "PENDING"
    assert added["partner"]["expected"] == "DE/ABC (EMSP)"
    versions = await http.get(base + "/ocpi/versions", headers=token_header(added["token_a"]))
    assert_envelope(versions, 200, 1000)
    listed = assert_envelope(await http.get(base + "/admin/partners", headers=admin), 200, 1000)
    assert [p["id"] for p in listed["data"]] == [added["partner"]["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"country_code": "DEU", "party_id": "ABC"},
        {"country_code": "DE"},
        {"country_code": "DE", "party_id": "ABC", "role": "DRIVER"},
        {"country_code": "DE", "party_id": "ABC", "extra": 1},
    ],
)
async def test_admin_add_answers_2001_when_body_is_wrong(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await http.post(
        base_url(ocpi_bridge) + "/admin/partners",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json=body,
    )
    assert_envelope(response, 200, 2001)
    assert await ocpi_bridge.partners.list() == []


@pytest.mark.parametrize(
    ("path", "http_status"),
    [("/admin/partners/999/rotate", 404), ("/admin/partners/999/unregister", 404)],
)
async def test_admin_operations_answer_404_when_partner_unknown(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient, path: str, http_status: int
) -> None:
    response = await http.post(
        base_url(ocpi_bridge) + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert_envelope(response, http_status, 3001)


async def test_admin_rotate_answers_409_when_partner_not_registered(
    ocpi_bridge: BridgeApp, http: httpx.AsyncClient
) -> None:
    partner = await pending_partner(ocpi_bridge)
    response = await http.post(
        base_url(ocpi_bridge) + f"/admin/partners/{partner.id}/rotate",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    body = assert_envelope(response, 409, 3001)
    assert "pending, not registered" in body["status_message"]


@pytest.mark.parametrize(
    ("method", "path", "content", "http_status"),
    [
        ("GET", "/ocpi/versions", None, 401),
        ("POST", CREDENTIALS, b"{bad", 400),
        ("PATCH", CREDENTIALS, b"{}", 405),
        ("GET", "/ocpi/nothing", None, 404),
    ],
)
async def test_errors_carry_the_request_ids(
    ocpi_bridge: BridgeApp,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    content: bytes | None,
    http_status: int,
) -> None:
    partner = await pending_partner(ocpi_bridge)
    assert partner.token_accept is not None
    headers = {"X-Request-ID": "r-9", "X-Correlation-ID": "c-9"}
    if http_status != 401:
        headers |= token_header(partner.token_accept)
    response = await http.request(
        method, base_url(ocpi_bridge) + path, headers=headers, content=content
    )
    assert response.status_code == http_status
    assert response.headers["X-Request-ID"] == "r-9"
    assert response.headers["X-Correlation-ID"] == "c-9"
