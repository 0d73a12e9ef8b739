"""What the eMSP does on its own initiative: register at a CPO, rotate or drop the
credentials, publish tokens, send commands and pull the CPO's SENDER modules.

Every method returns a value describing the outcome (``OcpiResult`` or a result object);
none raises because the CPO failed."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from simulators.emsp import wire
from simulators.emsp.client import ErrorKind, OcpiClient, OcpiResult
from simulators.emsp.exchange import validation_message
from simulators.emsp.handshake import Discovery, DiscoveryFailure, discover, lacks_cpo_role
from simulators.emsp.models import (
    MODULE_MODELS,
    AllowedType,
    ChargingProfileResponse,
    CommandType,
    Credentials,
    Token,
    TokenType,
    WhitelistType,
    dump,
)
from simulators.emsp.state import (
    Peer,
    ProfileRequestKind,
    SentChargingProfileRequest,
    SentCommand,
    SimState,
    new_token,
)
from simulators.emsp.wire import MISSING, InterfaceRole, ModuleID

log = logging.getLogger(__name__)

_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


@dataclass
class RegistrationResult:
    ok: bool
    message: str
    status_code: int | None = None  # 3001/3002/3003 for a discovery failure
    result: OcpiResult | None = None  # the last request made

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "message": self.message,
            "status_code": self.status_code,
            "result": self.result.to_json() if self.result else None,
        }


@dataclass
class PullResult:
    module: str
    objects: list[Any] = field(default_factory=list)
    pages: list[OcpiResult] = field(default_factory=list)
    error: OcpiResult | None = None  # the failed page, if any
    message: str = ""
    invalid: list[dict[str, Any]] = field(default_factory=list)  # objects failing validation
    problems: list[str] = field(default_factory=list)  # pagination protocol problems
    total_count: int | None = None  # X-Total-Count of the first page
    limit: int | None = None  # X-Limit of the first page

    @property
    def ok(self) -> bool:
        return self.error is None and not self.message

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "module": self.module,
            "count": len(self.objects),
            "pages": len(self.pages),
            "total_count": self.total_count,
            "limit": self.limit,
            "objects": self.objects,
            "invalid": self.invalid,
            "problems": self.problems,
            "message": self.message,
            "error": self.error.to_json() if self.error else None,
        }


class EmspDriver:
    def __init__(self, state: SimState, client: OcpiClient) -> None:
        self.state = state
        self.client = client

    # --- credentials -----------------------------------------------------------------------

    def mint_token_a(self) -> str:
        """A token A for a CPO to register with us (give it with ``state.versions_url``)."""
        return self.state.mint_token_a()

    async def register(self, versions_url: str, token_a: str) -> RegistrationResult:
        """We are the Sender of the handshake: discover with the CPO's token A, POST our
        credentials with a fresh token B, keep the token C the CPO answers."""
        state = self.state
        async with state.handshake_lock:
            if state.peer is not None:
                return RegistrationResult(False, "already registered: unregister first")
            found = await discover(self.client, versions_url, token_a)
            if isinstance(found, DiscoveryFailure):
                return RegistrationResult(False, found.message, found.status_code, found.result)
            url = _endpoint(found, ModuleID.CREDENTIALS)
            token_b = new_token()
            state.handshake_tokens.add(token_b)
            try:
                result = await self.client.request(
                    "POST",
                    url,
                    token=token_a,
                    body=state.our_credentials(token_b),
                    functional=False,
                )
                credentials = self._credentials_from(result)
                if isinstance(credentials, str):
                    return RegistrationResult(False, credentials, result.status_code, result)
                state.peer = Peer(
                    versions_url=credentials.url,
                    version=found.version,
                    endpoints=found.endpoints,
                    roles=list(credentials.roles),
                    token_we_accept=token_b,
                    token_we_present=credentials.token,
                    registered_by="emsp",
                )
            finally:
                state.handshake_tokens.discard(token_b)
        log.info("registered at %s", versions_url)
        return RegistrationResult(True, "registered", result.status_code, result)

    async def rotate(self) -> RegistrationResult:
        """PUT new credentials (a new token for the CPO to use) and keep the CPO's new token;
        the CPO's endpoints are fetched again with it."""
        state = self.state
        async with state.handshake_lock:
            peer = state.peer
            if peer is None:
                return RegistrationResult(False, "not registered")
            url = peer.endpoint(ModuleID.CREDENTIALS)
            if url is None:
                return RegistrationResult(False, "the CPO has no credentials endpoint")
            fresh = new_token()
            state.handshake_tokens.add(fresh)
            try:
                result = await self.client.request(
                    "PUT",
                    url,
                    token=peer.token_we_present,
                    body=state.our_credentials(fresh),
                    functional=False,
                )
                credentials = self._credentials_from(result)
                if isinstance(credentials, str):
                    return RegistrationResult(False, credentials, result.status_code, result)
                peer.token_we_accept = fresh
                peer.token_we_present = credentials.token
                peer.roles = list(credentials.roles)
                peer.versions_url = credentials.url
            finally:
                state.handshake_tokens.discard(fresh)
            found = await discover(self.client, peer.versions_url, peer.token_we_present)
            if isinstance(found, DiscoveryFailure):
                return RegistrationResult(
                    False,
                    f"rotated, but the endpoints could not be fetched again: {found.message}",
                    found.status_code,
                    found.result,
                )
            peer.version, peer.endpoints = found.version, found.endpoints
        return RegistrationResult(True, "credentials updated", result.status_code, result)

    async def unregister(self) -> RegistrationResult:
        """DELETE our credentials at the CPO; the peer is forgotten when it answers 1000."""
        state = self.state
        async with state.handshake_lock:
            peer = state.peer
            if peer is None:
                return RegistrationResult(False, "not registered")
            url = peer.endpoint(ModuleID.CREDENTIALS)
            if url is None:
                return RegistrationResult(False, "the CPO has no credentials endpoint")
            result = await self.client.request(
                "DELETE", url, token=peer.token_we_present, functional=False
            )
            if not result.ok:
                return RegistrationResult(False, result.describe(), result.status_code, result)
            state.forget_peer()
        return RegistrationResult(True, "unregistered", result.status_code, result)

    def _credentials_from(self, result: OcpiResult) -> Credentials | str:
        """The CPO's credentials in a POST/PUT answer, or what is wrong."""
        if not result.ok:
            return result.describe()
        try:
            credentials = Credentials.model_validate(result.data)
        except ValidationError as exc:
            return validation_message("credentials in the answer", exc)
        return lacks_cpo_role(credentials) or credentials

    # --- tokens ----------------------------------------------------------------------------

    def add_token(
        self,
        uid: str,
        *,
        token_type: TokenType | str = TokenType.RFID,
        whitelist: WhitelistType | str = WhitelistType.ALLOWED,
        valid: bool = True,
        contract_id: str | None = None,
        issuer: str | None = None,
        allowed: AllowedType | str | None = None,
        **fields: Any,
    ) -> Token:
        """Add or replace one of our tokens (``last_updated`` = now). ``allowed`` forces the
        answer to real-time authorization; by default ALLOWED if valid, else BLOCKED. Extra
        Token fields (``visual_number``, ``group_id``, ...) go in ``fields``."""
        config = self.state.config
        token = Token.model_validate(
            {
                "country_code": config.country_code,
                "party_id": config.party_id,
                "uid": uid,
                "type": str(token_type),
                "contract_id": contract_id or f"{config.country_code}-{config.party_id}-{uid}"[:36],
                "issuer": issuer or config.name,
                "valid": valid,
                "whitelist": str(whitelist),
                **fields,
                "last_updated": _now_ms(),
            }
        )
        self.state.put_token(token, AllowedType(allowed) if allowed is not None else None)
        return token

    async def publish_token(self, uid: str, **options: Any) -> tuple[Token, OcpiResult | None]:
        """``add_token(uid, **options)`` then ``push_token`` it."""
        token = self.add_token(uid, **options)
        return token, await self.push_token(token)

    async def push_token(self, token: Token) -> OcpiResult | None:
        """PUT the token to the CPO's tokens RECEIVER endpoint (None when there is none)."""
        peer = self.state.peer
        if peer is None:
            return None
        base = peer.endpoint(ModuleID.TOKENS, InterfaceRole.RECEIVER)
        if base is None:
            return None
        url = f"{base}/{_seg(token.country_code)}/{_seg(token.party_id)}/{_seg(token.uid)}"
        return await self.client.request(
            "PUT",
            url,
            token=peer.token_we_present,
            body=dump(token),
            params={"type": token.type.value},
            receiver=peer.main_party,
        )

    # --- commands --------------------------------------------------------------------------

    async def send_command(self, command: CommandType | str, body: dict[str, Any]) -> SentCommand:
        """POST ``body`` to the CPO's ``{commands}/{command}`` with ``response_url`` set to our
        receiver for this command's result. A string ``token`` is replaced by our stored RFID
        (or other type) Token of that uid, for convenience."""
        command = CommandType(command)
        state = self.state
        command_id = uuid.uuid4().hex
        response_url = f"{state.endpoint_url(ModuleID.COMMANDS)}/{command.value}/{command_id}"
        payload = {**body, "response_url": response_url}
        if isinstance(payload.get("token"), str):
            stored = next(
                (t for (uid, _), t in state.tokens.items() if uid == payload["token"].upper()),
                None,
            )
            if stored is not None:
                payload["token"] = dump(stored.token)
        sent = SentCommand(command_id, command.value, response_url, payload)
        state.commands[command_id] = sent
        sent.response = await self._call_peer(
            "POST", ModuleID.COMMANDS, InterfaceRole.RECEIVER, f"/{command.value}", body=payload
        )
        return sent

    # --- charging profiles -----------------------------------------------------------------

    async def set_charging_profile(
        self, session_id: str, charging_profile: dict[str, Any]
    ) -> SentChargingProfileRequest:
        """PUT ``{chargingprofiles}/{session_id}`` with a SetChargingProfile (the profile and a
        response_url of ours for the ChargingProfileResult). The profile is sent as given (to
        be able to send broken ones); ``ChargingProfile.model_validate`` checks one first."""
        sent = self._new_profile_request(ProfileRequestKind.SET, session_id)
        sent.body = {"charging_profile": charging_profile, "response_url": sent.response_url}
        return await self._send_profile_request(sent)

    async def get_active_charging_profile(
        self, session_id: str, duration: int
    ) -> SentChargingProfileRequest:
        """GET ``{chargingprofiles}/{session_id}?duration=..&response_url=..``; the CPO posts an
        ActiveChargingProfileResult to the response_url."""
        sent = self._new_profile_request(ProfileRequestKind.ACTIVE, session_id)
        sent.params = {"duration": str(duration), "response_url": sent.response_url}
        return await self._send_profile_request(sent)

    async def clear_charging_profile(self, session_id: str) -> SentChargingProfileRequest:
        """DELETE ``{chargingprofiles}/{session_id}?response_url=..``; the CPO posts a
        ClearProfileResult to the response_url."""
        sent = self._new_profile_request(ProfileRequestKind.CLEAR, session_id)
        sent.params = {"response_url": sent.response_url}
        return await self._send_profile_request(sent)

    def _new_profile_request(
        self, kind: ProfileRequestKind, session_id: str
    ) -> SentChargingProfileRequest:
        request_id = uuid.uuid4().hex
        base = self.state.endpoint_url(ModuleID.CHARGINGPROFILES)
        sent = SentChargingProfileRequest(
            request_id, kind, session_id, f"{base}/{kind.value}/{request_id}"
        )
        self.state.charging_profile_requests[request_id] = sent
        return sent

    async def _send_profile_request(
        self, sent: SentChargingProfileRequest
    ) -> SentChargingProfileRequest:
        sent.response = await self._call_peer(
            sent.method,
            ModuleID.CHARGINGPROFILES,
            InterfaceRole.RECEIVER,
            f"/{_seg(sent.session_id)}",
            body=sent.body if sent.body is not None else MISSING,
            params=sent.params,
        )
        if sent.response.ok:
            try:
                sent.response_data = ChargingProfileResponse.model_validate(sent.response.data)
            except ValidationError as exc:
                sent.problem = validation_message("ChargingProfileResponse", exc)
        else:
            sent.problem = sent.response.describe()
        return sent

    # --- pulling and generic calls ---------------------------------------------------------

    async def pull(
        self,
        module: str,
        *,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        max_pages: int = 1000,
    ) -> PullResult:
        """GET every page of the CPO's ``module`` SENDER endpoint, following ``Link``; every
        object is validated against our model of it (failures listed in ``invalid``)."""
        pulled = PullResult(module)
        peer = self.state.peer
        if peer is None:
            pulled.message = "not registered"
            return pulled
        url = peer.endpoint(module, InterfaceRole.SENDER)
        if url is None:
            pulled.message = f"the CPO has no {module} SENDER endpoint"
            return pulled
        params = {
            name: str(value)
            for name, value in (
                ("date_from", date_from),
                ("date_to", date_to),
                ("limit", limit),
                ("offset", offset),
            )
            if value is not None
        }
        next_url: str | None = url
        while next_url is not None:
            if len(pulled.pages) >= max_pages:
                pulled.message = f"stopped after {max_pages} pages"
                break
            page = await self.client.request(
                "GET",
                next_url,
                token=peer.token_we_present,
                params=params or None,
                receiver=peer.main_party,
            )
            params = {}  # the Link URL carries them from now on
            if not page.ok:
                pulled.error, pulled.message = page, page.describe()
                break
            if not isinstance(page.data, list):
                pulled.error, pulled.message = page, "data is not a list"
                break
            pulled.pages.append(page)
            self._check_page(pulled, page)
            pulled.objects.extend(page.data)
            link = page.header(wire.LINK)
            match = _LINK_NEXT.search(link) if link else None
            next_url = match.group(1) if match else None
        model = MODULE_MODELS.get(module)
        if model is not None:
            for index, obj in enumerate(pulled.objects):
                try:
                    model.model_validate(obj)
                except ValidationError as exc:
                    object_id = obj.get("id") or obj.get("uid") if isinstance(obj, dict) else None
                    pulled.invalid.append(
                        {
                            "index": index,
                            "id": object_id,
                            "errors": validation_message(model.__name__, exc),
                        }
                    )
        return pulled

    def _check_page(self, pulled: PullResult, page: OcpiResult) -> None:
        number = len(pulled.pages)
        for name in (wire.X_TOTAL_COUNT, wire.X_LIMIT):
            value = page.header(name)
            if value is None:
                pulled.problems.append(f"page {number}: {name} missing")
            elif not value.isdigit():
                pulled.problems.append(f"page {number}: {name} is not a number: {value!r}")
            elif number == 1:
                if name == wire.X_TOTAL_COUNT:
                    pulled.total_count = int(value)
                else:
                    pulled.limit = int(value)

    async def call(
        self,
        module: str,
        method: str,
        path: str = "",
        *,
        role: InterfaceRole | None = None,
        body: Any = MISSING,
        params: dict[str, str] | None = None,
    ) -> OcpiResult:
        """Any request to the CPO's ``module`` endpoint (``path`` appended, starting with
        ``/``), with our token and routing headers."""
        return await self._call_peer(method, module, role, path, body=body, params=params)

    async def _call_peer(
        self,
        method: str,
        module: str,
        role: InterfaceRole | None,
        path: str,
        *,
        body: Any = MISSING,
        params: dict[str, str] | None = None,
    ) -> OcpiResult:
        peer = self.state.peer
        base = peer.endpoint(module, role) if peer is not None else None
        if peer is None or base is None:
            reason = "not registered" if peer is None else f"the CPO has no {module} endpoint"
            return OcpiResult(
                method=method,
                url=f"{module}{path}",
                request_id="",
                correlation_id="",
                error=ErrorKind.NOT_SENT,
                detail=reason,
            )
        return await self.client.request(
            method,
            base + path,
            token=peer.token_we_present,
            body=body,
            params=params,
            receiver=peer.main_party,
            functional=module not in wire.NON_FUNCTIONAL_MODULES,
        )


def _endpoint(found: Discovery, module: str) -> str:
    for endpoint in found.endpoints:
        if endpoint.identifier == module:
            return endpoint.url.rstrip("/")
    raise LookupError(module)  # discover() checked that required modules are present


def _seg(value: str) -> str:
    return quote(value, safe="")


def _now_ms() -> str:
    return wire.format_datetime(wire.utc_now())
