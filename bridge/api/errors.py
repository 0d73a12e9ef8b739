"""Every error as the OCPI envelope: our ``OcpiError`` tree and FastAPI's own 404/405 for unknown
paths and methods. Unexpected exceptions are answered by the request-context middleware (HTTP
500, status 3000, logged) so that they carry the request ids too."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge.api.responses import ocpi_response
from bridge.errors import OcpiError, PeerUnusable
from bridge.ocpi.wire import OcpiStatus

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OcpiError)
    async def on_ocpi_error(request: Request, exc: OcpiError) -> Response:
        log.info(
            "OCPI %s %s -> HTTP %d, %d: %s",
            request.method,
            request.url.path,
            exc.http_status,
            exc.status_code,
            exc.detail if isinstance(exc, PeerUnusable) else exc.message,
        )
        headers = {"WWW-Authenticate": "Token"} if exc.http_status == 401 else None
        return ocpi_response(
            status=exc.status_code,
            message=exc.message,
            http_status=exc.http_status,
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return ocpi_response(
            status=OcpiStatus.CLIENT_ERROR,
            message=str(exc.detail),
            http_status=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_request: Request, exc: RequestValidationError) -> Response:
        # Only reached by parameters declared on a route (OCPI bodies are read by our own
        # dependencies): a malformed request, not an OCPI object.
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        return ocpi_response(status=OcpiStatus.INVALID_PARAMETERS, message=details, http_status=400)
