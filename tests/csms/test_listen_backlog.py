"""The OCPP server's listen backlog (``csms.server.LISTEN_BACKLOG``): connections arriving
while the event loop is busy are completed and queued by the kernel, not dropped."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

import pytest

from bridge.main import BridgeApp
from csms.server import LISTEN_BACKLOG

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux's accept queue")

BURST = 300
"""More than asyncio's default backlog of 100."""


def _connect_all(port: int, sockets: list[socket.socket], done: threading.Event) -> None:
    try:
        for _ in range(BURST):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    finally:
        done.set()


async def test_a_burst_of_connections_is_queued_while_the_loop_is_busy(bridge: BridgeApp):
    assert LISTEN_BACKLOG > BURST
    sockets: list[socket.socket] = []
    done = threading.Event()
    connector = threading.Thread(target=_connect_all, args=(bridge.ocpp.port, sockets, done))
    connector.start()
    try:
        # The loop accepts nothing meanwhile: only the kernel's queue holds the connections.
        # With a backlog of 100 the connections beyond it wait for a SYN retransmission
        # (1 s, then 3 s...): all 300 would not be open when the loop is free again.
        done.wait(5)
        opened = len(sockets)
    finally:
        connector.join()
        for sock in sockets:
            sock.close()
    assert opened == BURST
    await asyncio.sleep(0)  # the loop goes on with what was queued
