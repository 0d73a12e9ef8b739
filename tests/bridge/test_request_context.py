"""The request-context middleware (plain ASGI): request ids echoed or generated, routing
headers prepared by a dependency, unexpected errors as the OCPI 500 envelope carrying both, an
error after the answer started, other ASGI scopes untouched; and the request ids we generate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from bridge.api.context import RequestContextMiddleware, install_request_context
from bridge.api.deps import RESPONSE_HEADERS
from bridge.api.errors import install_error_handlers
from bridge.api.responses import ocpi_response
from bridge.errors import InvalidParameters
from bridge.ocpi.wire import new_request_id


def an_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_request_context(app)

    def routed(request: Request) -> None:
        setattr(request.state, RESPONSE_HEADERS, {"OCPI-to-party-id": "EMS"})

    @app.get("/ok")
    async def ok(request: Request) -> Any:
        routed(request)
        return ocpi_response(headers={"X-Request-ID": "from-the-route"})

    @app.get("/boom")
    async def boom(request: Request) -> Any:
        routed(request)
        raise RuntimeError("a bug")

    @app.get("/refused")
    async def refused(request: Request) -> Any:
        routed(request)
        raise InvalidParameters("no")

    @app.get("/stream")
    async def stream() -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"data":'
            raise RuntimeError("broken stream")

        return StreamingResponse(chunks(), media_type="application/json")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=an_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_the_answer_carries_the_request_ids_and_the_routing_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ok", headers={"X-Request-ID": "r-1"})
    assert response.headers["X-Request-ID"] == "r-1"  # replaces what the route set
    assert response.headers.get_list("X-Request-ID") == ["r-1"]
    assert response.headers["X-Correlation-ID"] == "r-1"
    assert response.headers["OCPI-to-party-id"] == "EMS"


async def test_an_empty_request_id_is_replaced_and_the_first_of_repeated_ones_is_used(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/ok", headers=[("X-Request-ID", ""), ("X-Request-ID", "r-2")])
    generated = response.headers["X-Request-ID"]
    assert generated not in ("", "r-2")
    assert response.headers["X-Correlation-ID"] == generated
    response = await client.get(
        "/ok", headers=[("X-Correlation-ID", "c-1"), ("X-Correlation-ID", "c-2")]
    )
    assert response.headers["X-Correlation-ID"] == "c-1"


async def test_an_ocpi_error_carries_the_ids_and_the_routing_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/refused", headers={"X-Correlation-ID": "c-3"})
    assert response.json()["status_code"] == 2001
    assert response.headers["X-Correlation-ID"] == "c-3"
    assert response.headers["OCPI-to-party-id"] == "EMS"


@pytest.mark.expect_errors("unexpected error on GET /boom")
async def test_an_unexpected_error_is_the_500_envelope_with_the_ids_and_routing_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom", headers={"X-Request-ID": "r-4"})
    assert response.status_code == 500
    body = response.json()
    assert (body["status_code"], body["status_message"]) == (3000, "internal error")
    assert "a bug" not in response.text
    assert response.headers["X-Request-ID"] == "r-4"
    assert response.headers["X-Correlation-ID"] == "r-4"
    assert response.headers["OCPI-to-party-id"] == "EMS"


@pytest.mark.expect_errors("unexpected error on GET /stream")
async def test_an_error_after_the_answer_started_is_logged_and_not_answered_twice(
    client: httpx.AsyncClient,
) -> None:
    with pytest.raises(RuntimeError, match="broken stream"):
        await client.get("/stream")


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "lifespan.startup.complete"})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    scope = {"type": "lifespan"}
    await RequestContextMiddleware(inner)(scope, receive, send)
    assert seen == [{"type": "lifespan"}]
    assert sent == [{"type": "lifespan.startup.complete"}]


def test_generated_request_ids_are_unique_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:10]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
