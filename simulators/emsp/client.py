"""HTTP client side of the simulator: one OCPI request, its envelope parsed, every failure
turned into a value (``OcpiResult.error``), never an exception for a misbehaving peer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from simulators.emsp import wire
from simulators.emsp.wire import Party

log = logging.getLogger(__name__)


class ErrorKind(StrEnum):
    UNREACHABLE = "unreachable"  # connection refused, DNS, TLS, broken connection
    TIMEOUT = "timeout"
    HTTP = "http"  # an HTTP status outside 2xx (the body may still be an envelope)
    INVALID_ENVELOPE = "invalid_envelope"  # 2xx but not a JSON OCPI envelope
    NOT_SENT = "not_sent"  # not registered, or the peer has no such endpoint


@dataclass
class OcpiResult:
    """Outcome of one request. ``ok`` when the HTTP status is 2xx, the body an envelope and its
    ``status_code`` 1xxx."""

    method: str
    url: str
    request_id: str
    correlation_id: str
    error: ErrorKind | None = None
    detail: str = ""
    http_status: int | None = None
    status_code: int | None = None
    status_message: str | None = None
    data: Any = None
    has_data: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    body_text: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.error is None and self.status_code is not None and 1000 <= self.status_code <= 1999
        )

    def describe(self) -> str:
        """One line for logs and status messages."""
        where = f"{self.method} {self.url}"
        if self.error in (ErrorKind.UNREACHABLE, ErrorKind.TIMEOUT, ErrorKind.NOT_SENT):
            return f"{where}: {self.error.value} ({self.detail})"
        parts = [f"HTTP {self.http_status}"]
        if self.status_code is not None:
            parts.append(f"status_code {self.status_code}")
        if self.status_message:
            parts.append(repr(self.status_message))
        if self.error is ErrorKind.INVALID_ENVELOPE:
            parts.append(f"invalid envelope: {self.detail}")
        return f"{where}: {', '.join(parts)}"

    def header(self, name: str) -> str | None:
        return wire.header(self.headers, name)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "method": self.method,
            "url": self.url,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "error": self.error.value if self.error else None,
            "detail": self.detail,
            "http_status": self.http_status,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "data": self.data if self.has_data else None,
            "headers": self.headers,
        }


class OcpiClient:
    """Sends OCPI requests with the simulator's headers. ``sender`` is the party put in the
    ``OCPI-from-*`` routing headers of functional requests."""

    def __init__(self, sender: Party, *, timeout_s: float = 5.0, encode_token: bool = True) -> None:
        self.sender = sender
        self.timeout_s = timeout_s
        self.encode_token = encode_token
        self.history: list[tuple[dict[str, Any], OcpiResult]] = []  # (request, result)
        self._http: httpx.AsyncClient | None = None  # created on first use, again after aclose

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str,
        body: Any = wire.MISSING,
        params: dict[str, str] | None = None,
        receiver: Party | None = None,
        functional: bool = True,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> OcpiResult:
        """One request. ``functional`` adds the routing headers (to ``receiver`` if given)."""
        request_id = wire.new_request_id()
        correlation = correlation_id or wire.new_request_id()
        headers = {
            wire.AUTHORIZATION: wire.authorization_value(token, encode=self.encode_token),
            wire.X_REQUEST_ID: request_id,
            wire.X_CORRELATION_ID: correlation,
        }
        if functional:
            headers.update(wire.routing_headers(self.sender, receiver))
        content: bytes | None = None
        if body is not wire.MISSING:
            content = wire.dumps(body)
            headers["Content-Type"] = "application/json"
        result = OcpiResult(
            method=method, url=url, request_id=request_id, correlation_id=correlation
        )
        self.history.append(
            (
                {"method": method, "url": url, "params": params, "body": body, "headers": headers},
                result,
            )
        )
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        try:
            response = await self._http.request(
                method,
                url,
                headers=headers,
                content=content,
                params=params,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
        except httpx.TimeoutException as exc:
            result.error, result.detail = ErrorKind.TIMEOUT, type(exc).__name__
            return result
        except httpx.HTTPError as exc:  # connection errors, invalid URLs, protocol errors
            result.error, result.detail = ErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}"
            return result
        result.url = str(response.request.url)
        result.http_status = response.status_code
        result.headers = dict(response.headers)
        result.body_text = response.text
        problem = _parse_envelope(response.content, result)
        if not 200 <= response.status_code <= 299:
            result.error, result.detail = ErrorKind.HTTP, problem or ""
        elif problem is not None:
            result.error, result.detail = ErrorKind.INVALID_ENVELOPE, problem
        return result


def _parse_envelope(content: bytes, result: OcpiResult) -> str | None:
    """Fill ``result`` from an envelope body; returns what is wrong with it, if anything."""
    try:
        body = wire.loads(content)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict):
        return "body is not a JSON object"
    status_code = body.get("status_code")
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        result.status_code = status_code
    message = body.get("status_message")
    if isinstance(message, str):
        result.status_message = message
    if "data" in body:
        result.data, result.has_data = body["data"], True
    if result.status_code is None:
        return "status_code missing or not an integer"
    if message is not None and not isinstance(message, str):
        return "status_message is not a string"
    timestamp = body.get("timestamp")
    if not isinstance(timestamp, str):
        return "timestamp missing"
    try:
        wire.parse_datetime(timestamp)
    except ValueError as exc:
        return f"timestamp: {exc}"
    return None
