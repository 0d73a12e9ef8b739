"""The outgoing OCPI client: ``Authorization: Token <base64>``, request and correlation ids,
routing headers, timeouts. A failed call is a value (``OcpiReply`` with a ``Failure``), never an
exception: callers decide whether to retry, report or give up."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from bridge.ocpi.models import CredentialsRole, Role
from bridge.ocpi.wire import authorization_value, new_request_id

log = logging.getLogger(__name__)


class Failure(StrEnum):
    UNREACHABLE = "unreachable"  # connection refused, DNS, TLS...
    TIMEOUT = "timeout"
    HTTP_STATUS = "http-status"  # an HTTP status outside 2xx
    INVALID_RESPONSE = "invalid-response"  # not JSON or not an OCPI envelope
    OCPI_STATUS = "ocpi-status"  # an envelope whose status_code is not 1xxx
    INVALID_REQUEST = "invalid-request"  # a URL or token that cannot be sent (nothing sent)


@dataclass(frozen=True, kw_only=True)
class Routing:
    """``OCPI-from-*`` / ``OCPI-to-*`` headers of a functional-module request."""

    from_country_code: str
    from_party_id: str
    to_country_code: str
    to_party_id: str

    def headers(self) -> dict[str, str]:
        return {
            "OCPI-from-country-code": self.from_country_code,
            "OCPI-from-party-id": self.from_party_id,
            "OCPI-to-country-code": self.to_country_code,
            "OCPI-to-party-id": self.to_party_id,
        }


def routing_to(
    identity_country_code: str, identity_party_id: str, roles: Sequence[CredentialsRole]
) -> Routing | None:
    """Routing headers from us to a partner: its eMSP role, else its first role."""
    if not roles:
        return None
    to = next((r for r in roles if r.role is Role.EMSP), roles[0])
    return Routing(
        from_country_code=identity_country_code,
        from_party_id=identity_party_id,
        to_country_code=to.country_code,
        to_party_id=to.party_id,
    )


@dataclass(frozen=True, kw_only=True)
class OcpiReply:
    method: str
    url: str
    failure: Failure | None
    detail: str = ""
    http_status: int | None = None
    status_code: int | None = None
    status_message: str | None = None
    data: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def outcome_unknown(self) -> bool:
        """The partner may have processed the request though we saw no answer (timeout, a
        connection lost after sending, a server error)."""
        return self.failure is Failure.TIMEOUT or (
            self.failure is Failure.HTTP_STATUS
            and self.http_status is not None
            and self.http_status >= 500
        )

    def summary(self) -> str:
        """What may be told to the partner itself: the failure kind and statuses, never the
        body we read (a partner must not use us to read other servers' answers)."""
        parts = [self.failure.value if self.failure else "ok"]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.status_code is not None:
            parts.append(f"OCPI {self.status_code}")
        return ", ".join(parts)

    def describe(self) -> str:
        """One line for logs and operators: what was called and what came back."""
        if self.failure is None:
            return f"{self.method} {self.url}: OCPI {self.status_code}"
        parts = [f"{self.method} {self.url}: {self.failure.value}"]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.status_code is not None:
            parts.append(f"OCPI {self.status_code}")
        if self.status_message:
            parts.append(repr(self.status_message))
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)


class OcpiClient:
    def __init__(
        self, *, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str,
        encode_token: bool = True,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        routing: Routing | None = None,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> OcpiReply:
        """``timeout_s`` overrides the client's timeout for this request (e.g. a real-time
        authorization, answered while a driver waits)."""
        request_id = new_request_id()
        headers = {
            "Authorization": authorization_value(token, encode=encode_token),
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id or request_id,
            "Accept": "application/json",
        }
        if routing is not None:
            headers.update(routing.headers())
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode()
        if not url.startswith(("http://", "https://")):
            return self._failed(method, url, Failure.INVALID_REQUEST, "not an http(s) URL")
        try:
            response = await self._http.request(
                method,
                url,
                headers=headers,
                content=content,
                params=params,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            return self._failed(method, url, Failure.TIMEOUT, type(exc).__name__)
        except (
            httpx.InvalidURL,
            httpx.UnsupportedProtocol,
            UnicodeError,
            ValueError,
            OverflowError,
        ) as exc:
            return self._failed(
                method, url, Failure.INVALID_REQUEST, f"{type(exc).__name__}: {exc}"
            )
        except httpx.HTTPError as exc:
            return self._failed(method, url, Failure.UNREACHABLE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Anything else the HTTP stack raises for a request it cannot make (e.g. a port out
            # of range surfaces as an exception group): a value like any failure, with a trace.
            log.warning("OCPI %s %s could not be sent", method, url, exc_info=exc)
            return self._failed(
                method, url, Failure.INVALID_REQUEST, f"{type(exc).__name__}: {exc}"
            )
        return _read_reply(method, url, response)

    def _failed(self, method: str, url: str, failure: Failure, detail: str) -> OcpiReply:
        reply = OcpiReply(method=method, url=url, failure=failure, detail=detail)
        log.info("OCPI %s", reply.describe())
        return reply


def _read_reply(method: str, url: str, response: httpx.Response) -> OcpiReply:
    envelope: Any = None
    try:
        envelope = response.json()
    except ValueError:
        envelope = None
    common: dict[str, Any] = {
        "method": method,
        "url": url,
        "http_status": response.status_code,
        "headers": response.headers,
    }
    status_code = envelope.get("status_code") if isinstance(envelope, dict) else None
    if isinstance(envelope, dict):
        common["status_message"] = _text(envelope.get("status_message"))
        common["data"] = envelope.get("data")
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        common["status_code"] = status_code
    if not response.is_success:
        reply = OcpiReply(failure=Failure.HTTP_STATUS, **common)
    elif "status_code" not in common:
        snippet = response.text[:200]
        reply = OcpiReply(
            failure=Failure.INVALID_RESPONSE, detail=f"not an OCPI envelope: {snippet!r}", **common
        )
    elif not 1000 <= common["status_code"] <= 1999:
        reply = OcpiReply(failure=Failure.OCPI_STATUS, **common)
    else:
        reply = OcpiReply(failure=None, **common)
    log.debug("OCPI %s", reply.describe())
    if reply.failure is not None:
        log.info("OCPI %s", reply.describe())
    return reply


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
