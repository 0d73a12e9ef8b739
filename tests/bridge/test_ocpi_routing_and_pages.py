"""Rules every functional module shares, exercised through a module-shaped test router on the
real application and database: token A refused, routing headers checked and swapped, pages in a
stable order with ``Link``, ``X-Total-Count`` and ``X-Limit``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlmodel import col, select

from bridge.api.deps import JsonBody, Platform, Routed, check_object_owner
from bridge.api.pagination import Page, paged_response
from bridge.api.responses import ocpi_response
from bridge.app import create_app
from bridge.main import BridgeApp
from bridge.ocpi.models import BusinessDetails, CredentialsRole, Role
from bridge.partners import Partner, PartnerStatus
from bridge.store.pagination import fetch_page
from bridge.store.tables import PartnerRow
from tests.bridge.conftest import pending_partner, token_header
from tests.conftest import running_bridge

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Item(BaseModel):
    id: int
    last_updated: datetime


def module_router(app: BridgeApp) -> APIRouter:
    """A list endpoint shaped like the OCPI SENDER modules, over the partners table."""
    router = APIRouter()

    @router.get("/ocpi/2.2.1/items")
    async def items(request: Request, routed: Routed, page: Page, platform: Platform) -> Response:
        async with app.db.read() as session:
            rows, total = await fetch_page(
                session,
                select(PartnerRow),
                last_updated=col(PartnerRow.updated_at),
                key=col(PartnerRow.id),
                offset=page.offset,
                limit=page.limit,
                date_from=page.date_from,
                date_to=page.date_to,
            )
        found = [Item(id=row.id or 0, last_updated=row.updated_at) for row in rows]
        return paged_response(
            request, page, found, total=total, base_url=platform.identity.base_url
        )

    @router.put("/ocpi/2.2.1/items/{country_code}/{party_id}/{item_id}")
    async def put_item(
        country_code: str, party_id: str, item_id: str, routed: Routed, body: JsonBody
    ) -> Response:
        check_object_owner(
            routed,
            url_country_code=country_code,
            url_party_id=party_id,
            body_country_code=body.get("country_code"),
            body_party_id=body.get("party_id"),
        )
        return ocpi_response()

    @router.get("/ocpi/2.2.1/boom")
    async def boom(_routed: Routed) -> Response:
        raise RuntimeError("a bug")

    return router


async def registered_partner(app: BridgeApp, party: str = "EMS") -> tuple[Partner, str]:
    """A partner in the registered state, set directly in the store (the handshake itself is
    tested end to end with the eMSP simulator)."""
    partner = await pending_partner(app, party=party)
    assert partner.token_accept is not None
    token_c = f"token-c-{party}"
    await app.partners.store.store_credentials(
        partner.id,
        authenticated_with=partner.token_accept,
        from_status=PartnerStatus.PENDING,
        token_accept=token_c,
        token_present=f"token-b-{party}",
        versions_url="http://emsp.invalid/versions",
        version="2.2.1",
        endpoints=[],
        roles=[
            CredentialsRole(
                role=Role.EMSP,
                business_details=BusinessDetails(name="eMSP"),
                country_code="NL",
                party_id=party,
            )
        ],
        now=T0,
    )
    return await app.partners.get(partner.id), token_c


@pytest.fixture
async def module(tmp_path: Path) -> AsyncIterator[tuple[BridgeApp, httpx.AsyncClient]]:
    async with running_bridge(tmp_path, ocpi_page_size=3, public_url="https://cpo.test") as app:
        asgi = create_app(app.health, app.http_platform())
        asgi.include_router(module_router(app))
        transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def test_functional_module_answers_401_when_token_a_is_used(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    partner = await pending_partner(app)
    assert partner.token_accept is not None
    response = await client.get("/ocpi/2.2.1/items", headers=token_header(partner.token_accept))
    assert response.status_code == 401
    assert "versions and credentials" in response.json()["status_message"]


async def test_routing_headers_are_swapped_in_the_response(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    headers = token_header(token) | {
        "OCPI-from-country-code": "nl",
        "OCPI-from-party-id": "ems",
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "CPO",
    }
    response = await client.get("/ocpi/2.2.1/items", headers=headers)
    assert response.json()["status_code"] == 1000
    assert response.headers["OCPI-from-country-code"] == "NL"
    assert response.headers["OCPI-from-party-id"] == "CPO"
    assert response.headers["OCPI-to-country-code"] == "NL"
    assert response.headers["OCPI-to-party-id"] == "EMS"


async def test_routing_headers_default_to_the_partner_role_when_absent(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    response = await client.get("/ocpi/2.2.1/items", headers=token_header(token))
    assert response.json()["status_code"] == 1000
    assert response.headers["OCPI-to-party-id"] == "EMS"


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"OCPI-from-country-code": "NL", "OCPI-from-party-id": "XYZ"}, "not a role"),
        ({"OCPI-from-country-code": "NL"}, "go together"),
        ({"OCPI-to-country-code": "DE", "OCPI-to-party-id": "CPO"}, "not this platform"),
        ({"OCPI-to-party-id": "CPO"}, "go together"),
    ],
)
async def test_functional_module_answers_2001_when_routing_headers_mismatch(
    module: tuple[BridgeApp, httpx.AsyncClient], routing: dict[str, str], message: str
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    # Another partner's party is not the caller's either.
    await registered_partner(app, party="XYZ")
    response = await client.get("/ocpi/2.2.1/items", headers=token_header(token) | routing)
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]


async def spread_updates(app: BridgeApp, count: int) -> list[int]:
    """``count`` more partners, the n-th last updated at T0 + n hours; returns all ids."""
    for _ in range(count):
        await pending_partner(app)
    async with app.db.transaction() as uow:
        rows = (await uow.session.exec(select(PartnerRow).order_by(col(PartnerRow.id)))).all()
        for n, row in enumerate(rows):
            row.updated_at = T0 + timedelta(hours=n)
        return [row.id or 0 for row in rows]


async def test_pages_follow_link_until_the_last_page(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    ids = await spread_updates(app, 6)
    url: str | None = "/ocpi/2.2.1/items?limit=50"
    seen: list[int] = []
    pages = 0
    while url:
        response = await client.get(
            url.removeprefix("https://cpo.test"), headers=token_header(token)
        )
        assert response.headers["X-Total-Count"] == "7"
        assert response.headers["X-Limit"] == "3"
        seen += [item["id"] for item in response.json()["data"]]
        link = response.headers.get("Link")
        url = link.split(">")[0].lstrip("<") if link else None
        if url:
            assert url.startswith("https://cpo.test/ocpi/2.2.1/items?")
            assert "limit=3" in url
        pages += 1
    assert seen == ids
    assert pages == 3


async def test_pages_keep_date_filters_in_link(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    ids = await spread_updates(app, 6)
    date_from = "2026-01-01T01:00:00Z"
    date_to = "2026-01-01T06:00:00Z"
    response = await client.get(
        f"/ocpi/2.2.1/items?date_from={date_from}&date_to={date_to}&limit=2",
        headers=token_header(token),
    )
    assert [item["id"] for item in response.json()["data"]] == ids[1:3]
    assert response.headers["X-Total-Count"] == "5"
    link = response.headers["Link"]
    assert "date_from=2026-01-01T01%3A00%3A00Z" in link
    assert "date_to=2026-01-01T06%3A00%3A00Z" in link
    assert "offset=2" in link
    assert "limit=2" in link
    assert link.endswith('>; rel="next"')


async def test_empty_page_has_no_link(module: tuple[BridgeApp, httpx.AsyncClient]) -> None:
    app, client = module
    _, token = await registered_partner(app)
    response = await client.get("/ocpi/2.2.1/items?offset=10", headers=token_header(token))
    assert response.json()["data"] == []
    assert "Link" not in response.headers
    assert response.headers["X-Total-Count"] == "1"


@pytest.mark.parametrize(
    "query",
    [
        "offset=-1",
        "offset=abc",
        "offset=100000000000000000000",
        "limit=0",
        "limit=x",
        "date_from=x",
    ],
)
async def test_list_answers_400_when_paging_parameters_are_invalid(
    module: tuple[BridgeApp, httpx.AsyncClient], query: str
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    response = await client.get(f"/ocpi/2.2.1/items?{query}", headers=token_header(token))
    assert response.status_code == 400
    assert response.json()["status_code"] == 2001


@pytest.mark.parametrize(
    ("path", "body", "routing", "message"),
    [
        ("NL/XYZ/1", {"country_code": "NL", "party_id": "XYZ"}, {}, "not a party"),
        ("NL/EMS/1", {"country_code": "NL", "party_id": "XYZ"}, {}, "in the body differ"),
        ("DE/EMS/1", {"country_code": "DE", "party_id": "EMS"}, {}, "not a party"),
        (
            "NL/EMS/1",
            {"country_code": "NL", "party_id": "EMS"},
            {"OCPI-from-country-code": "NL", "OCPI-from-party-id": "TWO"},
            "differs from OCPI-from",
        ),
    ],
)
async def test_put_answers_2001_when_url_headers_and_body_name_different_parties(
    module: tuple[BridgeApp, httpx.AsyncClient],
    path: str,
    body: dict[str, str],
    routing: dict[str, str],
    message: str,
) -> None:
    app, client = module
    partner, token = await registered_partner(app)
    # The partner hosts two parties: NL/EMS and NL/TWO.
    await app.partners.store.store_credentials(
        partner.id,
        authenticated_with=token,
        from_status=PartnerStatus.REGISTERED,
        token_accept=token,
        token_present="token-b",
        versions_url="http://emsp.invalid/versions",
        version="2.2.1",
        endpoints=[],
        roles=[
            CredentialsRole(
                role=Role.EMSP,
                business_details=BusinessDetails(name="eMSP"),
                country_code="NL",
                party_id=party,
            )
            for party in ("EMS", "TWO")
        ],
        now=T0,
    )
    await registered_partner(app, party="XYZ")
    response = await client.put(
        f"/ocpi/2.2.1/items/{path}", headers=token_header(token) | routing, json=body
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]


async def test_put_is_accepted_when_url_headers_and_body_agree(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    response = await client.put(
        "/ocpi/2.2.1/items/nl/ems/1",
        headers=token_header(token) | {"OCPI-from-country-code": "NL", "OCPI-from-party-id": "EMS"},
        json={"country_code": "NL", "party_id": "EMS"},
    )
    assert response.json()["status_code"] == 1000


@pytest.mark.expect_errors("unexpected error on GET /ocpi/2.2.1/boom")
async def test_unexpected_error_answers_500_with_status_3000(
    module: tuple[BridgeApp, httpx.AsyncClient],
) -> None:
    app, client = module
    _, token = await registered_partner(app)
    response = await client.get("/ocpi/2.2.1/boom", headers=token_header(token))
    assert response.status_code == 500
    assert response.json()["status_code"] == 3000
    assert "a bug" not in response.text
    assert len(response.headers["X-Request-ID"]) == 36
