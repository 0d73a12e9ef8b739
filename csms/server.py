"""The OCPP WebSocket endpoint ``ws://HOST:PORT/ocpp/{charger_id}``.

Transport only: charger id from the path, HTTP Basic auth (security profile 1), subprotocol
negotiation (a handshake offering no supported subprotocol is refused with HTTP 400 by
websockets), one connection per charger (a new one replaces the old), frame size limit
(oversize frames close the connection with 1009). Everything else happens in the adapters.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from csms.domain.model import OcppVersion, RegistrationStatus
from csms.errors import InvalidChargerId
from csms.ocpp16.chargepoint import ChargePoint16
from csms.ocpp201.chargepoint import ChargePoint201
from csms.registry import ConnectionRegistry
from csms.rpc.connection import RpcConnection
from csms.services.chargers import Access, validate_charger_id
from csms.services.context import Services
from csms.store.frames import FrameRecorder

log = logging.getLogger(__name__)

PATH_PREFIX = "/ocpp/"

LISTEN_BACKLOG = 4096
"""Connections the kernel completes and queues for us while the event loop is busy (asyncio's
default is 100; Linux caps it at ``net.core.somaxconn``, 4096 by default). Thousands of
chargers reconnect at once after a network outage or a restart: with 100, those beyond it were
dropped whenever the loop paused (10,000 chargers connecting at 1,000 per second: about 30
failed handshakes per run)."""

# Order matters: when a charger offers both, the first one listed here is chosen.
ADAPTERS: dict[str, tuple[OcppVersion, Callable[..., RpcConnection]]] = {
    "ocpp2.0.1": (OcppVersion.V201, ChargePoint201),
    "ocpp1.6": (OcppVersion.V16, ChargePoint16),
}


class OcppServer:
    def __init__(
        self,
        services: Services,
        registry: ConnectionRegistry,
        *,
        host: str,
        port: int,
        max_frame_bytes: int,
        call_timeout_s: float,
        recorder: FrameRecorder | None = None,
    ) -> None:
        self._services = services
        self._registry = registry
        self._host = host
        self._port = port
        self._max_frame_bytes = max_frame_bytes
        self._call_timeout_s = call_timeout_s
        self._recorder = recorder
        self._server: Server | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            subprotocols=list(ADAPTERS),  # type: ignore[arg-type]
            process_request=self._process_request,
            compression=None,
            max_size=self._max_frame_bytes,
            server_header="ocpi-bridge",
            backlog=LISTEN_BACKLOG,
        )
        log.info(
            "OCPP server listening on ws://%s:%d%s{charger_id}", self._host, self.port, PATH_PREFIX
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, work: Coroutine[Any, Any, None], charger_id: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("closing the replaced connection of %s failed", charger_id)

        task = asyncio.create_task(guarded(), name=f"close-replaced-{charger_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- handshake -----------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        charger_id = _charger_id_from_path(request.path)
        if charger_id is None:
            return _refuse(connection, HTTPStatus.NOT_FOUND, "expected /ocpp/{charger_id}")
        try:
            validate_charger_id(charger_id)
        except InvalidChargerId as exc:
            return _refuse(connection, HTTPStatus.BAD_REQUEST, str(exc))
        credentials = _basic_auth(request.headers)
        if credentials is not None and credentials[0] != charger_id:
            log.warning(
                "refused %s: Basic auth user %r is not the charger id", charger_id, credentials[0]
            )
            return _unauthorized(connection)
        access = await self._services.chargers.check_access(
            charger_id, credentials[1] if credentials else None
        )
        if access is not Access.ALLOWED:
            log.warning("refused charger %s: %s", charger_id, access.value)
            return _unauthorized(connection)
        return None

    # --- connection ----------------------------------------------------------------------

    async def _handle(self, websocket: ServerConnection) -> None:
        charger_id = _charger_id_from_path(websocket.request.path if websocket.request else "")
        subprotocol = websocket.subprotocol
        if charger_id is None or subprotocol not in ADAPTERS:
            await websocket.close(1002, "no supported subprotocol")
            return
        version, adapter = ADAPTERS[subprotocol]
        registration = (
            RegistrationStatus.ACCEPTED
            if await self._services.chargers.is_accepted(charger_id)
            else RegistrationStatus.PENDING
        )
        connection = adapter(
            charger_id,
            websocket,
            services=self._services,
            call_timeout_s=self._call_timeout_s,
            record_frame=self._recorder.record if self._recorder else None,
            registration=registration,
        )
        try:
            previous = self._registry.register(connection)
            if previous is not None:
                # A dead link never answers the close handshake: do not make the new
                # connection wait for it.
                log.info("charger %s reconnected: closing its previous connection", charger_id)
                self._spawn(previous.close(1000, "replaced by a new connection"), charger_id)
            await self._services.chargers.handle_connected(charger_id, version)
            log.info("charger %s connected (OCPP %s)", charger_id, version.value)
            await connection.run()
        finally:
            if self._registry.unregister(connection):
                await asyncio.shield(self._services.chargers.handle_disconnected(charger_id))
                log.info("charger %s disconnected (code %s)", charger_id, websocket.close_code)


def _charger_id_from_path(path: str) -> str | None:
    path = path.split("?", 1)[0]
    if not path.startswith(PATH_PREFIX):
        return None
    charger_id = unquote(path[len(PATH_PREFIX) :])
    return charger_id or None


def _basic_auth(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("Authorization")
    if not value:
        return None
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except ValueError:  # bad base64 (binascii.Error), non-ASCII header, non-UTF-8 credentials
        return None
    return (user, password) if sep else None


def _refuse(connection: ServerConnection, status: HTTPStatus, text: str) -> Response:
    return connection.respond(status, text + "\n")


def _unauthorized(connection: ServerConnection) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
    response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
    return response
