"""Regressions for defects found in review of the central system (one test per defect)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.main import BridgeApp
from csms.clock import format_ocpp_datetime, utc_now
from csms.store.tables import ChargerRow, ConnectorRow, EventRow
from tests.conftest import (
    BOOT,
    PASSWORD,
    add_charger,
    all_rows,
    call,
    exchange,
    raw_charger,
    running_bridge,
)


async def _handshake(
    port: int, charger_id: str, authorization: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A WebSocket opening handshake written by hand: the peer then says nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(b"0123456789abcdef")
    writer.write(
        b"GET /ocpp/" + charger_id.encode() + b" HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\nAuthorization: " + authorization + b"\r\n\r\n"
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    return reader, writer, status


async def test_non_ascii_authorization_header_gets_401_not_500(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    _, writer, status = await _handshake(bridge.ocpp.port, "CP1", b"Basic \xc3\xa9abc")
    writer.close()
    assert status.startswith(b"HTTP/1.1 401")


async def test_reconnect_is_served_at_once_when_the_old_link_is_dead(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    token = base64.b64encode(f"CP1:{PASSWORD}".encode())
    _, dead, status = await _handshake(bridge.ocpp.port, "CP1", b"Basic " + token)
    assert status.startswith(b"HTTP/1.1 101")
    try:
        async with raw_charger(bridge, "CP1") as ws:
            # websockets waits 10 s for a close handshake the dead peer never sends; the new
            # connection must not wait for it.
            async with asyncio.timeout(3):
                answer = await exchange(ws, call("BootNotification", BOOT))
            assert answer[2]["status"] == "Accepted"
    finally:
        dead.close()


async def test_status_applies_in_arrival_order_whatever_the_clock(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    later = format_ocpp_datetime(utc_now() + timedelta(minutes=10))
    sooner = format_ocpp_datetime(utc_now() + timedelta(minutes=1))
    async with raw_charger(bridge, "CP1") as ws:
        for status, at in (("Charging", later), ("Available", sooner)):
            payload = {"connectorId": 1, "errorCode": "NoError", "status": status, "timestamp": at}
            await exchange(ws, call("StatusNotification", payload))
    (row,) = await all_rows(bridge, ConnectorRow)
    assert row.status == "Available"


@pytest.mark.expect_errors("handler for Heartbeat failed")
async def test_our_own_invalid_answer_is_an_internal_error(bridge: BridgeApp, monkeypatch):
    from csms.ocpp16 import outbound

    monkeypatch.setattr(outbound, "build_heartbeat", lambda now: {"currentTime": 42})
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        answer = await exchange(ws, call("Heartbeat", {}, "h"))
    assert answer[:3] == [4, "h", "InternalError"]


async def test_start_event_says_whether_the_token_was_accepted(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    start = {
        "connectorId": 1,
        "idTag": "NOBODY",
        "meterStart": 0,
        "timestamp": "2026-01-01T00:00:00Z",
    }
    async with raw_charger(bridge, "CP1") as ws:
        await exchange(ws, call("StartTransaction", start))
    (event,) = await all_rows(bridge, EventRow, EventRow.type == "TransactionStarted")
    assert json.loads(event.payload)["authorization"] == "Unknown"


async def test_chargers_left_connected_by_a_crash_are_disconnected_at_start(tmp_path: Path):
    async with running_bridge(tmp_path) as app:
        await add_charger(app, "CP1")
        async with app.db.transaction() as uow:
            row = await uow.session.get(ChargerRow, "CP1")
            assert row is not None
            row.connected = True
            uow.session.add(row)
    async with running_bridge(tmp_path) as app:
        (row,) = await all_rows(app, ChargerRow)
        assert not row.connected
        assert row.disconnected_at is not None
