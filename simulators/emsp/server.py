"""``EmspSimulator``: the eMSP simulator served by uvicorn inside the running event loop.

async with EmspSimulator(port=0) as emsp:
    token_a = emsp.driver.mint_token_a()   # give the CPO token_a + emsp.versions_url
    ...
    await emsp.state.wait_for(lambda: emsp.state.session("NL", "CPO", "S1"))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any, Self

import uvicorn
from fastapi import FastAPI

from simulators.emsp.app import create_app
from simulators.emsp.client import OcpiClient
from simulators.emsp.driver import EmspDriver
from simulators.emsp.state import SimConfig, SimState

log = logging.getLogger(__name__)


class EmbeddedServer(uvicorn.Server):
    """Uvicorn inside the caller's loop: signals are the caller's to handle; ``exit()`` ends
    the main loop at once (not at its next 0.1 s tick) and shutdown polls open connections
    every 10 ms instead of sleeping 0.1 s first, so a test's start/stop costs milliseconds."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def exit(self) -> None:
        self.should_exit = True
        self._wake.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn's own sets, with no event to wait on: poll them as uvicorn does.
                while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("cancelling %d request(s) at shutdown", len(self.server_state.tasks))
            for task in self.server_state.tasks:
                task.cancel()
        for server in self.servers:
            await server.wait_closed()


class EmspSimulator:
    """Start with ``await start()`` / ``await stop()`` or ``async with``. ``port=0`` picks a
    free port. Settings not given as keywords come from ``config`` (``SimConfig``)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SimConfig | None = None,
        **config_overrides: Any,
    ) -> None:
        config = config or SimConfig()
        for name, value in config_overrides.items():
            if not hasattr(config, name):
                raise TypeError(f"unknown simulator setting {name!r}")
            setattr(config, name, value)
        self.host = host
        self._requested_port = port
        self.state = SimState(config=config)
        self.client = OcpiClient(
            config.party, timeout_s=config.request_timeout_s, encode_token=config.encode_token
        )
        self.driver = EmspDriver(self.state, self.client)
        self.app: FastAPI = create_app(self.driver)
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        server = EmbeddedServer(
            uvicorn.Config(
                self.app,
                host=self.host,
                port=self._requested_port,
                lifespan="off",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        self._server = server
        self._task = asyncio.create_task(server.serve(), name="emsp-simulator-http")
        self._task.add_done_callback(self._server_done)
        while not server.started:
            if self._task.done():
                self._server = None
                await self._task  # raises the startup failure
                raise RuntimeError("eMSP simulator HTTP server stopped during startup")
            await asyncio.sleep(0.01)
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.state.base_url = f"http://{host}:{self.port}"
        self.state.closing.clear()
        log.info("eMSP simulator listening on %s", self.versions_url)

    async def stop(self) -> None:
        self.state.closing.set()  # ends injected delays
        try:
            if self._server is not None and self._task is not None:
                self._server.exit()
                self._server = None
                await self._task
        finally:
            await self.client.aclose()

    async def go_down(self) -> None:
        """Stop listening (connections are refused) but keep the state and the port, to play
        an eMSP that is down for a while; ``come_back()`` listens again on the same port."""
        if self._server is None or self._task is None:
            raise RuntimeError("not started")
        self._requested_port = self.port
        self.state.closing.set()
        self._server.exit()
        self._server = None
        await self._task

    async def come_back(self) -> None:
        """Listen again on the port used before ``go_down()``."""
        await self.start()

    def _server_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("eMSP simulator HTTP server failed: %r", exc)
        elif self._server is not None and not self._server.should_exit:
            log.error("eMSP simulator HTTP server stopped unexpectedly")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.servers:
            raise RuntimeError("eMSP simulator not started")
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        """``http://host:port`` once started."""
        return self.state.base_url

    @property
    def versions_url(self) -> str:
        return self.state.versions_url
