"""In-memory state of the eMSP simulator: configuration, the CPO peer (with the token we
accept from it kept apart from the token we present to it), stored objects, our own tokens,
every request received, and the faults to inject."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from simulators.emsp import wire
from simulators.emsp.models import (
    CDR,
    ActiveChargingProfile,
    AllowedType,
    ChargingProfileResponse,
    CommandResult,
    CredentialsRole,
    Endpoint,
    Location,
    ProfileResult,
    Role,
    Session,
    Tariff,
    Token,
    dump,
)
from simulators.emsp.wire import InterfaceRole, ModuleID, Party

T = TypeVar("T")

# Our version details: (module, role) in the order published; URLs are built per server.
DEFAULT_ENDPOINTS: tuple[tuple[str, InterfaceRole], ...] = (
    (ModuleID.CREDENTIALS, InterfaceRole.SENDER),
    (ModuleID.LOCATIONS, InterfaceRole.RECEIVER),
    (ModuleID.SESSIONS, InterfaceRole.RECEIVER),
    (ModuleID.CDRS, InterfaceRole.RECEIVER),
    (ModuleID.TARIFFS, InterfaceRole.RECEIVER),
    (ModuleID.COMMANDS, InterfaceRole.SENDER),
    (ModuleID.TOKENS, InterfaceRole.SENDER),
    (ModuleID.CHARGINGPROFILES, InterfaceRole.SENDER),
)


@dataclass
class SimConfig:
    """What the simulator is and how strict it is."""

    country_code: str = "NL"
    party_id: str = "EMS"
    name: str = "Example eMSP"
    base_path: str = "/ocpi/emsp"
    versions: tuple[str, ...] = (wire.VERSION,)  # advertised by GET {base_path}/versions
    endpoints: tuple[tuple[str, InterfaceRole], ...] = DEFAULT_ENDPOINTS
    max_limit: int = 50  # pagination cap (X-Limit)
    encode_token: bool = True  # send base64 tokens (False: raw, like 2.1.1 peers)
    require_routing_headers: bool = True  # functional requests without OCPI-from/to -> 2001
    request_timeout_s: float = 5.0  # our requests to the CPO

    @property
    def party(self) -> Party:
        return Party(self.country_code, self.party_id)


def new_token() -> str:
    """A fresh credentials token (43 URL-safe characters, inside 0x21-0x7E)."""
    return secrets.token_urlsafe(32)


class AuthKind(StrEnum):
    TOKEN_A = "token_a"  # minted by us for a CPO to register with us
    HANDSHAKE = "handshake"  # a token we handed the CPO in a POST/PUT we are still sending
    PEER = "peer"  # the registered CPO's token


@dataclass
class Peer:
    """The registered CPO."""

    versions_url: str
    version: str
    endpoints: list[Endpoint]
    roles: list[CredentialsRole]
    token_we_accept: str  # the CPO presents it to us
    token_we_present: str  # we present it to the CPO
    registered_by: str  # "cpo" (it POSTed to us) or "emsp" (we POSTed to it)

    def endpoint(self, module: str, role: InterfaceRole | None = None) -> str | None:
        """URL of the peer's ``module`` endpoint (of ``role`` when given), without a trailing
        slash."""
        for endpoint in self.endpoints:
            if endpoint.identifier == module and (role is None or endpoint.role == role):
                return endpoint.url.rstrip("/")
        return None

    @property
    def parties(self) -> list[Party]:
        return [Party(r.country_code, r.party_id) for r in self.roles]

    def owns(self, country_code: str, party_id: str) -> bool:
        return any(p.same(country_code, party_id) for p in self.parties)

    @property
    def main_party(self) -> Party:
        """Receiver of our functional requests: its first CPO role, else its first role."""
        for role in self.roles:
            if role.role == Role.CPO:
                return Party(role.country_code, role.party_id)
        return self.parties[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "versions_url": self.versions_url,
            "version": self.version,
            "endpoints": [dump(e) for e in self.endpoints],
            "roles": [dump(r) for r in self.roles],
            "token_we_accept": self.token_we_accept,
            "token_we_present": self.token_we_present,
            "registered_by": self.registered_by,
        }


@dataclass
class RecordedRequest:
    """A request received on an OCPI endpoint, whatever became of it."""

    at: datetime
    module: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON (numbers with a fraction as Decimal), raw text if not JSON, or None
    auth: AuthKind | None = None
    token_encoding: str | None = None  # "base64" or "raw"
    http_status: int | None = None
    status_code: int | None = None
    status_message: str = ""
    fault: str | None = None  # the injected fault that answered, if any
    stored: bool = False  # an object was created/replaced/updated/deleted

    def to_json(self) -> dict[str, Any]:
        return {
            "at": wire.format_datetime(self.at),
            "module": self.module,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "auth": self.auth.value if self.auth else None,
            "token_encoding": self.token_encoding,
            "http_status": self.http_status,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "fault": self.fault,
            "stored": self.stored,
        }


class FaultKind(StrEnum):
    HTTP = "http"  # plain-text body with an HTTP error status
    DELAY = "delay"  # answer normally after a delay
    STATUS = "status"  # HTTP 200 envelope with an OCPI error status_code, no data
    GARBAGE = "garbage"  # HTTP 200 with a body that is not JSON at all
    BAD_DATA = "bad-data"  # HTTP 200 success envelope whose data is not the expected object


@dataclass
class Fault:
    kind: FaultKind
    module: str = "*"  # versions, credentials, locations, ... or *
    method: str = "*"  # GET, PUT, ... or *
    http_status: int = 500
    delay_s: float = 0.0
    status_code: int = 3000
    status_message: str = "simulated failure"
    count: int | None = None  # remaining matching requests; None = until cleared

    def matches(self, module: str, method: str) -> bool:
        return self.module in ("*", module) and self.method.upper() in ("*", method.upper())

    def describe(self) -> str:
        match self.kind:
            case FaultKind.HTTP:
                return f"http {self.http_status}"
            case FaultKind.DELAY:
                return f"delay {self.delay_s}s"
            case FaultKind.STATUS:
                return f"status {self.status_code}"
            case FaultKind.GARBAGE:
                return "garbage"
            case FaultKind.BAD_DATA:
                return "bad data"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "module": self.module,
            "method": self.method,
            "http_status": self.http_status,
            "delay_s": self.delay_s,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "count": self.count,
        }


class Faults:
    """Injected faults; the first rule matching a request answers it."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.count is not None and fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.kind is FaultKind.HTTP and not 400 <= fault.http_status <= 599:
            raise ValueError("http_status must be 4xx or 5xx")
        if fault.kind is FaultKind.STATUS and not 2000 <= fault.status_code <= 4999:
            raise ValueError("status_code must be an OCPI error code (2xxx/3xxx/4xxx)")
        self.rules.append(fault)
        return fault

    def http_error(
        self, module: str = "*", method: str = "*", *, status: int = 500, count: int | None = None
    ) -> Fault:
        return self.add(Fault(FaultKind.HTTP, module, method, http_status=status, count=count))

    def delay(
        self, module: str = "*", method: str = "*", *, seconds: float, count: int | None = None
    ) -> Fault:
        return self.add(Fault(FaultKind.DELAY, module, method, delay_s=seconds, count=count))

    def status(
        self,
        module: str = "*",
        method: str = "*",
        *,
        status_code: int,
        message: str = "simulated failure",
        count: int | None = None,
    ) -> Fault:
        return self.add(
            Fault(
                FaultKind.STATUS,
                module,
                method,
                status_code=status_code,
                status_message=message,
                count=count,
            )
        )

    def garbage(self, module: str = "*", method: str = "*", *, count: int | None = None) -> Fault:
        return self.add(Fault(FaultKind.GARBAGE, module, method, count=count))

    def bad_data(self, module: str = "*", method: str = "*", *, count: int | None = None) -> Fault:
        return self.add(Fault(FaultKind.BAD_DATA, module, method, count=count))

    def clear(self) -> None:
        self.rules.clear()

    def take(self, module: str, method: str) -> Fault | None:
        """The fault answering this request (its count consumed), or None."""
        for fault in self.rules:
            if fault.matches(module, method):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self.rules.remove(fault)
                return fault
        return None


@dataclass
class EmspToken:
    """One of our tokens, with the answer forced on real-time authorization (if any)."""

    token: Token
    allowed: AllowedType | None = None

    @property
    def effective_allowed(self) -> AllowedType:
        if self.allowed is not None:
            return self.allowed
        return AllowedType.ALLOWED if self.token.valid else AllowedType.BLOCKED


@dataclass
class SentCommand:
    command_id: str
    command: str
    response_url: str
    body: dict[str, Any]
    response: Any = None  # client.OcpiResult of the synchronous answer

    def to_json(self, results: list[CommandResult]) -> dict[str, Any]:
        return {
            "ok": self.response is not None and self.response.ok,
            "command_id": self.command_id,
            "command": self.command,
            "response_url": self.response_url,
            "body": self.body,
            "response": self.response.to_json() if self.response is not None else None,
            "results": [dump(r) for r in results],
        }


class ProfileRequestKind(StrEnum):
    """Our chargingprofiles requests, by the result the CPO posts to their response_url."""

    ACTIVE = "active"  # GET -> ActiveChargingProfileResult
    SET = "set"  # PUT -> ChargingProfileResult
    CLEAR = "clear"  # DELETE -> ClearProfileResult

    @property
    def method(self) -> str:
        return {"active": "GET", "set": "PUT", "clear": "DELETE"}[self.value]


@dataclass
class SentChargingProfileRequest:
    """One request we sent to the CPO's chargingprofiles RECEIVER, with its synchronous
    answer (``response``: client.OcpiResult; ``response_data`` when it is a valid
    ChargingProfileResponse, else ``problem`` says what is wrong)."""

    request_id: str
    kind: ProfileRequestKind
    session_id: str
    response_url: str
    body: dict[str, Any] | None = None  # PUT only
    params: dict[str, str] | None = None  # GET/DELETE query
    response: Any = None
    response_data: ChargingProfileResponse | None = None
    problem: str | None = None

    @property
    def method(self) -> str:
        return self.kind.method

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.ok and self.response_data is not None

    def to_json(self, results: list[ProfileResult]) -> dict[str, Any]:
        response = self.response
        return {
            "ok": self.ok,
            "request_id": self.request_id,
            "method": self.method,
            "kind": self.kind.value,
            "session_id": self.session_id,
            "response_url": self.response_url,
            "body": self.body,
            "params": self.params,
            "status_code": response.status_code if response is not None else None,
            "http_status": response.http_status if response is not None else None,
            "data": dump(self.response_data) if self.response_data is not None else None,
            "problem": self.problem,
            "response": response.to_json() if response is not None else None,
            "results": [dump(r) for r in results],
        }


Key = tuple[str, str, str]


def key(country_code: str, party_id: str, object_id: str) -> Key:
    """Store key: CiString parts compared case-insensitively."""
    return (country_code.upper(), party_id.upper(), object_id.upper())


@dataclass
class SimState:
    config: SimConfig = field(default_factory=SimConfig)
    base_url: str = "http://127.0.0.1"  # scheme://host:port, set by the server once bound
    token_a: set[str] = field(default_factory=set)
    handshake_tokens: set[str] = field(default_factory=set)
    peer: Peer | None = None
    locations: dict[Key, Location] = field(default_factory=dict)
    sessions: dict[Key, Session] = field(default_factory=dict)
    cdrs: dict[Key, CDR] = field(default_factory=dict)
    tariffs: dict[Key, Tariff] = field(default_factory=dict)
    command_results: dict[str, list[CommandResult]] = field(default_factory=dict)
    commands: dict[str, SentCommand] = field(default_factory=dict)
    charging_profile_requests: dict[str, SentChargingProfileRequest] = field(default_factory=dict)
    charging_profile_results: dict[str, list[ProfileResult]] = field(default_factory=dict)
    active_charging_profiles: dict[str, ActiveChargingProfile] = field(default_factory=dict)
    # Every ActiveChargingProfile PUT, per session, in the order received (the dict above
    # keeps the latest).
    active_charging_profile_history: dict[str, list[ActiveChargingProfile]] = field(
        default_factory=dict
    )
    tokens: dict[tuple[str, str], EmspToken] = field(default_factory=dict)  # (UID, type)
    received: list[RecordedRequest] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    handshake_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- URLs ----------------------------------------------------------------------------

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}{self.config.base_path}/versions"

    def version_url(self, version: str = wire.VERSION) -> str:
        return f"{self.base_url}{self.config.base_path}/{version}"

    def endpoint_url(self, module: str) -> str:
        return f"{self.version_url()}/{module}"

    # --- tokens and identity -------------------------------------------------------------

    def mint_token_a(self) -> str:
        token = new_token()
        self.token_a.add(token)
        return token

    def identify(self, token: str) -> AuthKind | None:
        if self.peer is not None and token == self.peer.token_we_accept:
            return AuthKind.PEER
        if token in self.handshake_tokens:
            return AuthKind.HANDSHAKE
        if token in self.token_a:
            return AuthKind.TOKEN_A
        return None

    def our_roles(self) -> list[dict[str, Any]]:
        return [
            {
                "role": Role.EMSP.value,
                "business_details": {"name": self.config.name},
                "party_id": self.config.party_id,
                "country_code": self.config.country_code,
            }
        ]

    def our_credentials(self, token: str) -> dict[str, Any]:
        return {"token": token, "url": self.versions_url, "roles": self.our_roles()}

    # --- our tokens ----------------------------------------------------------------------

    def put_token(self, token: Token, allowed: AllowedType | None = None) -> EmspToken:
        entry = EmspToken(token, allowed)
        self.tokens[(token.uid.upper(), token.type.value)] = entry
        return entry

    def find_token(self, uid: str, token_type: str = "RFID") -> EmspToken | None:
        return self.tokens.get((uid.upper(), token_type))

    # --- stored objects ------------------------------------------------------------------

    def location(self, country_code: str, party_id: str, location_id: str) -> Location | None:
        return self.locations.get(key(country_code, party_id, location_id))

    def session(self, country_code: str, party_id: str, session_id: str) -> Session | None:
        return self.sessions.get(key(country_code, party_id, session_id))

    def cdr(self, country_code: str, party_id: str, cdr_id: str) -> CDR | None:
        return self.cdrs.get(key(country_code, party_id, cdr_id))

    def tariff(self, country_code: str, party_id: str, tariff_id: str) -> Tariff | None:
        return self.tariffs.get(key(country_code, party_id, tariff_id))

    def received_for(self, module: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.received if module is None or r.module == module]

    def counts(self) -> dict[str, int]:
        return {
            "locations": len(self.locations),
            "sessions": len(self.sessions),
            "cdrs": len(self.cdrs),
            "tariffs": len(self.tariffs),
            "command_results": sum(len(v) for v in self.command_results.values()),
            "charging_profile_results": sum(len(v) for v in self.charging_profile_results.values()),
            "active_charging_profiles": len(self.active_charging_profiles),
            "received": len(self.received),
        }

    def forget_peer(self) -> None:
        self.peer = None

    # --- waiting -------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake ``wait_for`` callers (after every request handled)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, probe: Callable[[], T | None], timeout: float = 5.0) -> T:  # noqa: ASYNC109
        """Return the first truthy value of ``probe()``, evaluated now and again whenever a
        request arrives at or is answered by the simulator's server; ``TimeoutError`` after
        ``timeout`` seconds. E.g. ``await state.wait_for(lambda: state.cdr("NL", "CPO", id))``.
        """
        async with asyncio.timeout(timeout):
            while True:
                value = probe()
                if value:
                    return value
                await self._changed.wait()

    async def wait_for_command_result(
        self,
        command_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> CommandResult:
        """The first CommandResult posted for ``command_id`` (waits for it if needed)."""
        results = await self.wait_for(lambda: self.command_results.get(command_id), timeout)
        return results[0]

    async def wait_for_charging_profile_result(
        self,
        request_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ProfileResult:
        """The first result (ActiveChargingProfileResult, ChargingProfileResult or
        ClearProfileResult) posted for our chargingprofiles request ``request_id``."""
        results = await self.wait_for(
            lambda: self.charging_profile_results.get(request_id), timeout
        )
        return results[0]

    async def wait_for_active_charging_profile(
        self,
        session_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> ActiveChargingProfile:
        """The ActiveChargingProfile the CPO PUT for ``session_id`` (waits for one if none)."""
        return await self.wait_for(lambda: self.active_charging_profiles.get(session_id), timeout)

    async def wait_for_active_charging_profiles(
        self,
        session_id: str,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[ActiveChargingProfile]:
        """Every ActiveChargingProfile the CPO PUT for ``session_id`` so far, in order, once
        there are at least ``count`` of them (waits for them if needed)."""

        def enough() -> list[ActiveChargingProfile] | None:
            received = self.active_charging_profile_history.get(session_id, [])
            return list(received) if len(received) >= count else None

        return await self.wait_for(enough, timeout)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": {
                "country_code": self.config.country_code,
                "party_id": self.config.party_id,
                "name": self.config.name,
            },
            "versions_url": self.versions_url,
            "registered": self.peer is not None,
            "peer": self.peer.to_json() if self.peer else None,
            "token_a": sorted(self.token_a),
            "tokens": [
                {**dump(t.token), "allowed": t.effective_allowed.value}
                for t in self.tokens.values()
            ],
            "counts": self.counts(),
            "faults": [f.to_json() for f in self.faults.rules],
        }
