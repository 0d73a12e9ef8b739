"""Server side of versions and credentials: the CPO registers with us (POST), rotates (PUT),
reads (GET) or drops (DELETE) its registration."""

from __future__ import annotations

import logging

from simulators.emsp import wire
from simulators.emsp.client import OcpiClient
from simulators.emsp.exchange import Call, OcpiError, Reply, invalid, not_found, validate
from simulators.emsp.handshake import DiscoveryFailure, discover, lacks_cpo_role
from simulators.emsp.models import Credentials
from simulators.emsp.state import AuthKind, Peer, SimState, new_token
from simulators.emsp.wire import StatusCode

log = logging.getLogger(__name__)


def _not_allowed(message: str) -> OcpiError:
    return OcpiError(StatusCode.CLIENT_ERROR, message, http_status=405)


class CredentialsHandlers:
    def __init__(self, state: SimState, client: OcpiClient) -> None:
        self.state = state
        self.client = client

    async def versions(self, call: Call) -> Reply:
        data = [
            {"version": version, "url": self.state.version_url(version)}
            for version in self.state.config.versions
        ]
        return Reply(data=data)

    async def version_details(self, call: Call, version: str) -> Reply:
        if version != wire.VERSION:
            raise not_found(f"version {version} is not served")
        endpoints = [
            {"identifier": str(module), "role": role.value, "url": self.state.endpoint_url(module)}
            for module, role in self.state.config.endpoints
        ]
        return Reply(data={"version": wire.VERSION, "endpoints": endpoints})

    async def get(self, call: Call) -> Reply:
        return Reply(data=self.state.our_credentials(call.token))

    async def post(self, call: Call) -> Reply:
        """The CPO registers: it used a token A we minted."""
        state = self.state
        async with state.handshake_lock:
            if call.auth is AuthKind.PEER or state.peer is not None:
                raise _not_allowed("already registered: use PUT to update, DELETE to unregister")
            if call.auth is not AuthKind.TOKEN_A or call.token not in state.token_a:
                raise _not_allowed("POST needs a token A")
            credentials = self._credentials(call)
            found = await discover(self.client, credentials.url, credentials.token)
            if isinstance(found, DiscoveryFailure):
                log.warning("CPO registration refused: %s", found.message)
                raise OcpiError(found.status_code, found.message)
            token_c = new_token()
            state.peer = Peer(
                versions_url=credentials.url,
                version=found.version,
                endpoints=found.endpoints,
                roles=list(credentials.roles),
                token_we_accept=token_c,
                token_we_present=credentials.token,
                registered_by="cpo",
            )
            state.token_a.discard(call.token)
        log.info("CPO registered from %s", credentials.url)
        return Reply(data=state.our_credentials(token_c), stored=True)

    async def put(self, call: Call) -> Reply:
        """The registered CPO hands us a new token (and maybe a new versions URL): fetch its
        endpoints again with it and give it a new token."""
        state = self.state
        async with state.handshake_lock:
            peer = state.peer
            if call.auth is not AuthKind.PEER or peer is None:
                raise _not_allowed("not registered: POST first")
            credentials = self._credentials(call)
            found = await discover(self.client, credentials.url, credentials.token)
            if isinstance(found, DiscoveryFailure):
                log.warning("CPO credentials update refused: %s", found.message)
                raise OcpiError(found.status_code, found.message)
            token = new_token()
            peer.versions_url = credentials.url
            peer.version, peer.endpoints = found.version, found.endpoints
            peer.roles = list(credentials.roles)
            peer.token_we_present = credentials.token
            peer.token_we_accept = token
        return Reply(data=state.our_credentials(token), stored=True)

    @staticmethod
    def _credentials(call: Call) -> Credentials:
        credentials = validate(Credentials, call.json(), "credentials")
        problem = lacks_cpo_role(credentials)
        if problem is not None:
            raise invalid(problem)
        return credentials

    async def delete(self, call: Call) -> Reply:
        state = self.state
        async with state.handshake_lock:
            if call.auth is not AuthKind.PEER or state.peer is None:
                raise _not_allowed("not registered")
            state.forget_peer()
        log.info("CPO unregistered")
        return Reply(stored=True)
