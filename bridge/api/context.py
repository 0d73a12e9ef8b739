"""Request context headers: ``X-Request-ID`` and ``X-Correlation-ID`` are echoed on every
response (generated when the request had none), plus the routing headers a functional-module
dependency prepared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from bridge.api.deps import RESPONSE_HEADERS
from bridge.ocpi.wire import new_request_id


def install_request_context(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("X-Request-ID") or new_request_id()
        correlation_id = request.headers.get("X-Correlation-ID") or request_id
        response = await call_next(request)
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Correlation-ID"] = correlation_id
        for name, value in getattr(request.state, RESPONSE_HEADERS, {}).items():
            response.headers[name] = value
        return response
