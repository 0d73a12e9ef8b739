"""The WebSocket edge: path, subprotocol, Basic auth, registration, replaced connections."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.main import BridgeApp
from csms.rpc.frames import Call
from csms.store.tables import ChargerRow, FrameRow
from tests.conftest import (
    BOOT,
    PASSWORD,
    add_charger,
    all_rows,
    call,
    event_types,
    exchange,
    ocpp_url,
    raw_charger,
    receive,
    running_bridge,
)


async def test_handshake_is_refused_with_400_when_no_supported_subprotocol(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(bridge, "CP1", subprotocols=("ocpp1.5",)):
            pass
    assert refused.value.response.status_code == 400


async def test_handshake_is_refused_with_400_when_no_subprotocol_offered(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(bridge, "CP1", subprotocols=()):
            pass
    assert refused.value.response.status_code == 400


async def test_subprotocol_ocpp16_is_negotiated_when_offered(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1", subprotocols=("ocpp1.5", "ocpp1.6")) as ws:
        assert ws.subprotocol == "ocpp1.6"


@pytest.mark.parametrize(
    ("user", "password"),
    [("CP1", "wrong-password-000000"), ("CP1", None), ("OTHER", PASSWORD)],
    ids=["wrong-password", "no-credentials", "user-is-not-the-charger"],
)
async def test_handshake_is_refused_with_401_when_credentials_are_wrong(
    bridge: BridgeApp, user: str, password: str | None
):
    await add_charger(bridge, "CP1")
    from websockets.asyncio.client import connect

    from tests.conftest import basic_auth

    headers = basic_auth(user, password) if password else {}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            ocpp_url(bridge, "CP1"), subprotocols=["ocpp1.6"], additional_headers=headers
        ):
            pass
    assert refused.value.response.status_code == 401
    assert "Basic" in refused.value.response.headers["WWW-Authenticate"]
    (charger,) = await all_rows(bridge, ChargerRow)
    assert not charger.connected


async def test_unknown_charger_is_refused_when_auto_registration_is_off(bridge: BridgeApp):
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(bridge, "NEW-CP"):
            pass
    assert refused.value.response.status_code == 401
    assert await all_rows(bridge, ChargerRow) == []


async def test_unknown_charger_is_registered_when_auto_registration_is_on(tmp_path: Path):
    async with (
        running_bridge(tmp_path, auto_register=True) as app,
        raw_charger(app, "NEW-CP", password=None) as ws,
    ):
        answer = await exchange(ws, call("BootNotification", BOOT))
        assert answer[2]["status"] == "Accepted"
        (charger,) = await all_rows(app, ChargerRow)
        assert charger.charger_id == "NEW-CP"
        assert charger.auto_registered
        assert charger.connected


async def test_charger_without_password_is_refused_unless_the_operator_allowed_it(
    bridge: BridgeApp,
):
    await bridge.chargers.register("LOCKED", password=None, allow_no_auth=False)
    await bridge.chargers.register("OPEN", password=None, allow_no_auth=True)
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(bridge, "LOCKED", password=None):
            pass
    assert refused.value.response.status_code == 401
    async with raw_charger(bridge, "OPEN", password=None) as ws:
        assert (await exchange(ws, call("Heartbeat", {})))[0] == 3


async def test_handshake_is_refused_with_404_when_path_is_not_ocpp(bridge: BridgeApp):
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://127.0.0.1:{bridge.ocpp.port}/other/CP1", subprotocols=["ocpp1.6"]
        ):
            pass
    assert refused.value.response.status_code == 404


async def test_password_is_stored_as_salted_hash_when_charger_is_added(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    await add_charger(bridge, "CP2")
    rows = await all_rows(bridge, ChargerRow, order_by=ChargerRow.charger_id)
    hashes = [row.password_hash for row in rows]
    assert all(h and h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    assert hashes[0] != hashes[1]


async def test_second_connection_replaces_the_first_when_same_charger_reconnects(
    bridge: BridgeApp,
):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as first:
        await exchange(first, call("BootNotification", BOOT))
        # Left unanswered: the replaced connection ends the query as offline (a warning).
        assert (await receive(first))[2] == "GetConfiguration"
        async with raw_charger(bridge, "CP1") as second:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(first.recv(), 5)
            assert first.close_code == 1000
            answer = await exchange(second, call("Heartbeat", {}, "h1"))
            assert answer[:2] == [3, "h1"]
            assert bridge.registry.connected_ids() == ["CP1"]
            (charger,) = await all_rows(bridge, ChargerRow)
            assert charger.connected
        await _until(lambda: not bridge.registry.is_connected("CP1"))
    await _until_async(bridge, lambda rows: not rows[0].connected)
    types = await event_types(bridge, "CP1")
    assert types.count("ChargerConnected") == 2
    # The replaced connection does not record a disconnect: only the last one does.
    assert types.count("ChargerDisconnected") == 1
    assert types[-1] == "ChargerDisconnected"


async def test_disconnect_is_recorded_when_charger_closes(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        await exchange(ws, call("BootNotification", BOOT))
    await _until_async(bridge, lambda rows: not rows[0].connected)
    (charger,) = await all_rows(bridge, ChargerRow)
    assert charger.connected_at is not None
    assert charger.disconnected_at is not None
    assert charger.disconnected_at >= charger.connected_at
    assert charger.connected_at.tzinfo is not None
    assert charger.last_seen_at is not None


async def test_every_frame_is_recorded_when_charger_talks(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        await exchange(ws, call("BootNotification", BOOT, "b1"))
        query = await receive(ws)
        await ws.send(json.dumps([3, query[1], {"unknownKey": ["NumberOfConnectors"]}]))
        await exchange(ws, "not json")
    assert bridge.recorder is not None
    await bridge.recorder.flush()
    frames = await all_rows(bridge, FrameRow, order_by=FrameRow.id)
    assert [(f.direction, f.text[:8]) for f in frames] == [
        ("in", '[2, "b1"'),
        ("out", '[3,"b1",'),
        ("out", f'[2,"{query[1][:4]}'),
        ("in", f'[3, "{query[1][:3]}'),
        ("in", "not json"),
        ("out", '[4,"-1",'),
    ]
    assert all(f.charger_id == "CP1" for f in frames)


async def test_old_frames_are_purged_when_older_than_retention(bridge: BridgeApp):
    from datetime import timedelta

    from csms.clock import utc_now
    from csms.store.frames import FrameRecorder

    old = FrameRecorder(bridge.db, clock=lambda: utc_now() - timedelta(days=100))
    old.record("CP1", "in", "old frame")
    await old.flush()
    assert bridge.recorder is not None
    bridge.recorder.record("CP1", "in", "new frame")
    await bridge.recorder.flush()
    assert await bridge.recorder.purge_older_than(90) == 1
    assert [f.text for f in await all_rows(bridge, FrameRow)] == ["new frame"]


async def test_health_reports_connected_chargers(bridge: BridgeApp):
    import httpx

    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws, httpx.AsyncClient() as client:
        await exchange(ws, call("Heartbeat", {}))
        response = await client.get(f"http://127.0.0.1:{bridge.http_port}/health")
    assert response.json() == {"status": "ok", "connected_chargers": 1}


async def _until(condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _until_async(app: BridgeApp, condition, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition(await all_rows(app, ChargerRow, order_by=ChargerRow.charger_id)):
            await asyncio.sleep(0.02)


async def test_a_purge_deletes_old_frames_a_chunk_per_transaction(bridge: BridgeApp):
    """Each chunk is a transaction of its own (the writer's turn is given back in between);
    the frames inside the retention stay, those recorded meanwhile too."""
    from datetime import timedelta

    from sqlalchemy import event

    from csms.clock import utc_now
    from csms.store.frames import FrameRecorder

    old = FrameRecorder(bridge.db, clock=lambda: utc_now() - timedelta(days=100))
    for n in range(5):
        old.record("CP1", "in", f"old frame {n}")
    await old.flush()
    assert bridge.recorder is not None
    bridge.recorder.record("CP1", "in", "new frame")
    await bridge.recorder.flush()
    deletes: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("DELETE FROM ocpp_frames"):
            deletes.append(statement)

    event.listen(bridge.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        assert await bridge.recorder.purge_older_than(90, chunk=2) == 5
        assert len(deletes) == 3  # 2 + 2 + 1: the last chunk, not full, ends the purge
        assert await bridge.recorder.purge_older_than(90, chunk=2) == 0
    finally:
        event.remove(bridge.db.engine.sync_engine, "before_cursor_execute", seen)
    assert [f.text for f in await all_rows(bridge, FrameRow)] == ["new frame"]
    with pytest.raises(ValueError, match="at least one frame"):
        await bridge.recorder.purge_older_than(90, chunk=0)  # would never end


async def test_a_charger_idle_after_its_call_holds_nothing_of_that_call(bridge: BridgeApp):
    """Between two messages a connection keeps no reference to the call it answered last
    (its frame, its payload): every collection of the youngest generation would visit the last
    call of every idle charger otherwise."""
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        await exchange(ws, call("BootNotification", BOOT, "boot-1"))
        query = await receive(ws)  # the configuration request that follows a boot
        await ws.send(json.dumps([3, query[1], {"unknownKey": []}]))
        answer = await exchange(ws, call("Heartbeat", {}, "idle-marker-1"))
        assert answer[:2] == [3, "idle-marker-1"]

        def held() -> list[Call]:
            return [
                o for o in gc.get_objects() if type(o) is Call and o.unique_id == "idle-marker-1"
            ]

        deadline = asyncio.get_running_loop().time() + 2
        while held() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # the answer is sent before the handler's frames end
        assert held() == []
