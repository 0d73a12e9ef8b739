"""Request context headers: ``X-Request-ID`` and ``X-Correlation-ID`` are echoed on every
response (generated when the request had none), plus the routing headers a functional-module
dependency prepared. An unexpected exception becomes HTTP 500 with status 3000 here, inside the
context, so that it carries the ids as well.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: no extra task, stream and response object
per request); the headers are set on the ``http.response.start`` message as it passes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.api.deps import RESPONSE_HEADERS
from bridge.api.responses import ocpi_response
from bridge.ocpi.wire import OcpiStatus, new_request_id

log = logging.getLogger(__name__)

_REQUEST_ID = b"x-request-id"
_CORRELATION_ID = b"x-correlation-id"


def install_request_context(app: FastAPI) -> None:
    app.add_middleware(RequestContextMiddleware)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The first of each header, as ``request.headers.get`` reads it; empty means absent.
        given_request_id: str | None = None
        given_correlation_id: str | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID and given_request_id is None:
                given_request_id = value.decode("latin-1")
            elif name == _CORRELATION_ID and given_correlation_id is None:
                given_correlation_id = value.decode("latin-1")
        request_id = given_request_id or new_request_id()
        correlation_id = given_correlation_id or request_id
        # The request state the dependencies write to (``request.state`` is this dict).
        state: dict[str, Any] = scope.setdefault("state", {})
        started = False

        async def send_with_context(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers["X-Correlation-ID"] = correlation_id
                for name, value in state.get(RESPONSE_HEADERS, {}).items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception:
            request = Request(scope)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            if started:
                raise  # the answer is on its way: nothing else can be sent
            response = ocpi_response(
                status=OcpiStatus.SERVER_ERROR, message="internal error", http_status=500
            )
            await response(scope, receive, send_with_context)
