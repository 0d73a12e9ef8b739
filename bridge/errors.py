"""Errors of the OCPI side. Each carries its OCPI status code and the HTTP status it is
answered with; one exception handler renders all of them as the OCPI envelope.

    OcpiError
    ├── InvalidParameters        2001, HTTP 200 (valid JSON that is not a valid request)
    ├── MalformedRequest         2001, HTTP 400 (invalid JSON or unparseable query parameters)
    ├── NotAuthenticated         2000, HTTP 401 (missing or unknown token, token A outside
    │                                             versions/credentials)
    ├── NotFound                 2000, HTTP 404 (no such object)
    ├── MethodNotAllowed         2000, HTTP 405 (credentials POST when registered, PUT/DELETE
    │                                             when not)
    └── PeerUnusable             3001/3002/3003, HTTP 200 (the peer's versions or endpoints
                                                  cannot be used during registration)

HTTP statuses follow OCPI 2.2.1 transport rules: a request that is valid JSON and reaches an
existing resource gets no HTTP error; problems are reported in ``status_code``.
"""

from __future__ import annotations

from bridge.ocpi.wire import OcpiStatus


class OcpiError(Exception):
    status_code: int = OcpiStatus.CLIENT_ERROR
    http_status: int = 200

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameters(OcpiError):
    status_code = OcpiStatus.INVALID_PARAMETERS


class MalformedRequest(OcpiError):
    status_code = OcpiStatus.INVALID_PARAMETERS
    http_status = 400


class NotAuthenticated(OcpiError):
    http_status = 401


class NotFound(OcpiError):
    http_status = 404


class MethodNotAllowed(OcpiError):
    http_status = 405


class PeerUnusable(OcpiError):
    """The peer's API could not be used (3001), offers no common version (3002) or lacks the
    endpoints we need (3003). ``message`` is what the peer is told; ``detail`` (for our logs
    and operators) may quote what its servers answered."""

    def __init__(self, status_code: OcpiStatus, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail or message
