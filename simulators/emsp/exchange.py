"""One OCPI request handled by the simulator's server: faults, authentication, routing
headers, JSON parsing, the envelope and its headers, and the record of what happened.

Module handlers are ``async (call) -> Reply`` functions; they raise ``OcpiError`` to answer
with an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response
from pydantic import BaseModel, ValidationError

from simulators.emsp import wire
from simulators.emsp.state import AuthKind, FaultKind, RecordedRequest, SimState
from simulators.emsp.wire import MISSING, NON_FUNCTIONAL_MODULES, Party, StatusCode

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class OcpiError(Exception):
    """Answer the request with this status (no data)."""

    def __init__(
        self, status_code: int, message: str, *, http_status: int = 200, data: Any = MISSING
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status
        self.data = data


def invalid(message: str) -> OcpiError:
    """HTTP 200 + 2001: the request reached the OCPI layer but is not acceptable."""
    return OcpiError(StatusCode.INVALID_PARAMETERS, message)


def not_found(message: str, status_code: int = StatusCode.CLIENT_ERROR) -> OcpiError:
    return OcpiError(status_code, message, http_status=404)


@dataclass
class Reply:
    status_code: int = StatusCode.SUCCESS
    message: str = "Success"
    data: Any = MISSING
    http_status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    stored: bool = False


@dataclass
class Call:
    """What a handler sees of the request."""

    request: Request
    module: str
    record: RecordedRequest
    auth: AuthKind
    token: str
    raw_body: bytes
    from_party: Party | None = None

    def json(self) -> Any:
        """The body as JSON; invalid JSON (an empty body included) -> HTTP 400 + 2001."""
        try:
            return wire.loads(self.raw_body)
        except ValueError as exc:
            raise OcpiError(
                StatusCode.INVALID_PARAMETERS, f"body is not valid JSON: {exc}", http_status=400
            ) from exc

    def json_object(self) -> dict[str, Any]:
        body = self.json()
        if not isinstance(body, dict):
            raise invalid("body must be a JSON object")
        return body

    def param(self, name: str) -> str | None:
        return self.request.query_params.get(name)


def validation_message(what: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(root)"
        problems.append(f"{where}: {error['msg']}")
    return f"invalid {what}: " + "; ".join(problems)


def validate(model: type[M], body: Any, what: str | None = None) -> M:
    """``model`` from ``body`` or ``OcpiError`` 2001 listing every validation error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(validation_message(what or model.__name__, exc)) from exc


Handler = Callable[[Call], Awaitable[Reply]]


class Exchange:
    """Runs handlers for the OCPI routes of one simulator."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def handle(self, request: Request, module: str, handler: Handler) -> Response:
        state = self.state
        raw_body = await request.body()
        record = RecordedRequest(
            at=wire.utc_now(),
            module=module,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=_body_for_record(raw_body),
        )
        state.received.append(record)
        state.notify()
        headers = {
            wire.X_REQUEST_ID: request.headers.get(wire.X_REQUEST_ID) or wire.new_request_id(),
            wire.X_CORRELATION_ID: (
                request.headers.get(wire.X_CORRELATION_ID) or wire.new_request_id()
            ),
        }
        functional = module not in NON_FUNCTIONAL_MODULES
        if functional:
            headers.update(self._response_routing(request))
        try:
            try:
                reply = await self._run(request, module, functional, record, raw_body, handler)
            except OcpiError as exc:
                reply = Reply(exc.status_code, exc.message, exc.data, exc.http_status)
            except _PlainError as exc:
                record.http_status, record.status_message = exc.http_status, exc.text
                return Response(
                    exc.text,
                    status_code=exc.http_status,
                    media_type="text/plain",
                    headers=headers,
                )
            except Exception:
                log.exception("eMSP simulator: %s %s failed", request.method, request.url.path)
                reply = Reply(StatusCode.SERVER_ERROR, "simulator error", http_status=500)
            record.http_status = reply.http_status
            record.status_code = reply.status_code
            record.status_message = reply.message
            record.stored = reply.stored
            body = wire.envelope(reply.status_code, reply.message, reply.data)
            return Response(
                wire.dumps(body),
                status_code=reply.http_status,
                media_type="application/json",
                headers={**headers, **reply.headers},
            )
        finally:
            state.notify()

    async def _run(
        self,
        request: Request,
        module: str,
        functional: bool,
        record: RecordedRequest,
        raw_body: bytes,
        handler: Handler,
    ) -> Reply:
        state = self.state
        fault = state.faults.take(module, request.method)
        if fault is not None:
            record.fault = fault.describe()
            match fault.kind:
                case FaultKind.HTTP:
                    raise _PlainError(fault.http_status, fault.status_message)
                case FaultKind.STATUS:
                    return Reply(fault.status_code, fault.status_message)
                case FaultKind.GARBAGE:
                    raise _PlainError(200, "<html><body>Service temporarily busy</body></html>")
                case FaultKind.BAD_DATA:
                    return Reply(data={"unexpected": True, "allowed": "PERHAPS"})
                case FaultKind.DELAY:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(state.closing.wait(), fault.delay_s)
        auth, token = await self._authenticate(request, functional, record)
        call = Call(request, module, record, auth, token, raw_body)
        if functional:
            call.from_party = self._check_routing(request)
        return await handler(call)

    async def _authenticate(
        self, request: Request, functional: bool, record: RecordedRequest
    ) -> tuple[AuthKind, str]:
        presented = wire.parse_authorization(request.headers.get(wire.AUTHORIZATION))
        if presented is None:
            raise OcpiError(
                StatusCode.CLIENT_ERROR, "missing Authorization: Token header", http_status=401
            )
        found = self._identify(presented)
        if found is not None and found[0] is AuthKind.HANDSHAKE and functional:
            # A handshake we started is finishing (the CPO answered and already uses the new
            # token): wait for it to be stored, then look again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.state.config.request_timeout_s):
                    async with self.state.handshake_lock:
                        pass
            found = self._identify(presented)
        if found is None:
            raise OcpiError(StatusCode.CLIENT_ERROR, "unknown token", http_status=401)
        kind, token, encoding = found
        record.auth, record.token_encoding = kind, encoding
        if functional and kind is not AuthKind.PEER:
            raise OcpiError(
                StatusCode.CLIENT_ERROR,
                f"{_AUTH_LABELS[kind]} is only valid on versions and credentials",
                http_status=401,
            )
        return kind, token

    def _identify(self, presented: wire.PresentedToken) -> tuple[AuthKind, str, str] | None:
        for token, encoding in presented.candidates():
            kind = self.state.identify(token)
            if kind is not None:
                return kind, token, encoding
        return None

    def _check_routing(self, request: Request) -> Party | None:
        """The OCPI-from party; 2001 when the routing headers are missing or wrong (if the
        configuration requires them)."""
        state = self.state
        get = request.headers.get
        from_cc, from_pid = get(wire.FROM_COUNTRY), get(wire.FROM_PARTY)
        to_cc, to_pid = get(wire.TO_COUNTRY), get(wire.TO_PARTY)
        sender = Party(from_cc, from_pid) if from_cc and from_pid else None
        if not state.config.require_routing_headers:
            return sender
        missing = [
            name
            for name, value in (
                (wire.FROM_COUNTRY, from_cc),
                (wire.FROM_PARTY, from_pid),
                (wire.TO_COUNTRY, to_cc),
                (wire.TO_PARTY, to_pid),
            )
            if not value
        ]
        if missing or sender is None or not to_cc or not to_pid:
            raise invalid(f"missing routing headers: {', '.join(missing)}")
        if state.peer is None or not state.peer.owns(sender.country_code, sender.party_id):
            raise invalid(
                f"OCPI-from {sender.country_code}/{sender.party_id} is not one of the CPO's roles"
            )
        if not state.config.party.same(to_cc, to_pid):
            raise invalid(
                f"OCPI-to {to_cc}/{to_pid} is not this eMSP "
                f"({state.config.country_code}/{state.config.party_id})"
            )
        return sender

    def _response_routing(self, request: Request) -> dict[str, str]:
        get = request.headers.get
        from_cc, from_pid = get(wire.FROM_COUNTRY), get(wire.FROM_PARTY)
        receiver = Party(from_cc, from_pid) if from_cc and from_pid else None
        return wire.routing_headers(self.state.config.party, receiver)

    # --- helpers for handlers ------------------------------------------------------------

    def check_owner(self, country_code: str, party_id: str, where: str = "URL") -> None:
        peer = self.state.peer
        if peer is None or not peer.owns(country_code, party_id):
            raise invalid(f"{country_code}/{party_id} in the {where} is not one of the CPO's roles")


_AUTH_LABELS = {
    AuthKind.TOKEN_A: "token A",
    AuthKind.HANDSHAKE: "a registration token",
    AuthKind.PEER: "the CPO token",
}


class _PlainError(Exception):
    def __init__(self, http_status: int, text: str) -> None:
        super().__init__(text)
        self.http_status = http_status
        self.text = text


def _body_for_record(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return wire.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


# --- pagination ------------------------------------------------------------------------------


def paginate(
    call: Call, items: list[Any], max_limit: int, sort_key: Callable[[Any], Any]
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` (objects with ``last_updated``) and its pagination headers."""
    offset = _int_param(call, "offset", 0)
    limit = min(_int_param(call, "limit", max_limit), max_limit)
    if offset < 0 or limit < 1:
        raise invalid("offset must be >= 0 and limit >= 1")
    date_from = _date_param(call, "date_from")
    date_to = _date_param(call, "date_to")
    matching = sorted(
        (
            item
            for item in items
            if (date_from is None or item.last_updated >= date_from)
            and (date_to is None or item.last_updated < date_to)
        ),
        key=sort_key,
    )
    page = matching[offset : offset + limit]
    headers = {wire.X_TOTAL_COUNT: str(len(matching)), wire.X_LIMIT: str(max_limit)}
    if offset + len(page) < len(matching):
        params = {"offset": str(offset + len(page)), "limit": str(limit)}
        for name in ("date_from", "date_to"):
            value = call.param(name)
            if value is not None:
                params[name] = value
        url = str(call.request.url.replace(query=urlencode(params)))
        headers[wire.LINK] = f'<{url}>; rel="next"'
    return page, headers


def _int_param(call: Call, name: str, default: int) -> int:
    value = call.param(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise invalid(f"{name} must be an integer") from exc


def _date_param(call: Call, name: str) -> Any:
    value = call.param(name)
    if value is None or value == "":
        return None
    try:
        return wire.parse_datetime(value)
    except ValueError as exc:
        raise invalid(f"{name}: {exc}") from exc
