"""Request context headers: ``X-Request-ID`` and ``X-Correlation-ID`` are echoed on every
response (generated when the request had none), plus the routing headers a functional-module
dependency prepared. An unexpected exception becomes HTTP 500 with status 3000 here, inside the
context, so that it carries the ids as well."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from bridge.api.deps import RESPONSE_HEADERS
from bridge.api.responses import ocpi_response
from bridge.ocpi.wire import OcpiStatus, new_request_id

log = logging.getLogger(__name__)


def install_request_context(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("X-Request-ID") or new_request_id()
        correlation_id = request.headers.get("X-Correlation-ID") or request_id
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            response = ocpi_response(
                status=OcpiStatus.SERVER_ERROR, message="internal error", http_status=500
            )
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Correlation-ID"] = correlation_id
        for name, value in getattr(request.state, RESPONSE_HEADERS, {}).items():
            response.headers[name] = value
        return response
