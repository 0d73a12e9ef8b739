"""Bad frames from a charger get the specified CallError, change nothing, and leave the charger
(and every other charger) connected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bridge.main import BridgeApp
from csms.store.tables import ConnectorRow, EventRow, MeterValueRow, TransactionRow
from tests.conftest import (
    BOOT,
    add_charger,
    all_rows,
    call,
    exchange,
    raw_charger,
    receive,
    running_bridge,
)

NOW = "2026-11-21T10:00:00Z"


def _start(**overrides: Any) -> dict[str, Any]:
    payload = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": NOW}
    payload.update(overrides)
    return payload


async def _assert_alive(ws) -> None:
    answer = await exchange(ws, call("Heartbeat", {}, "alive"))
    assert answer[:2] == [3, "alive"]


async def _boot(ws) -> None:
    """Boot, and answer the NumberOfConnectors query that follows an accepted 1.6 boot with an
    unknown key (the inventory stays empty: nothing is written)."""
    await exchange(ws, call("BootNotification", BOOT, "boot"))
    query = await receive(ws)
    assert query[2:] == ["GetConfiguration", {"key": ["NumberOfConnectors"]}]
    await ws.send(json.dumps([3, query[1], {"unknownKey": ["NumberOfConnectors"]}]))


async def _nothing_written(app: BridgeApp) -> None:
    assert await all_rows(app, TransactionRow) == []
    assert await all_rows(app, MeterValueRow) == []
    assert await all_rows(app, ConnectorRow) == []
    types = [e.type for e in await all_rows(app, EventRow)]
    assert set(types) <= {"ChargerConnected", "ChargerBooted", "ChargerDisconnected"}


@pytest.mark.parametrize(
    ("frame", "expected_id", "expected_code"),
    [
        ("{not json", "-1", "FormationViolation"),
        ('{"a": 1}', "-1", "FormationViolation"),
        ("[]", "-1", "FormationViolation"),
        ('[2, 17, "Heartbeat", {}]', "-1", "FormationViolation"),
        ('[2, "x1", "Heartbeat"]', "x1", "FormationViolation"),
        ('[2, "x1", "Heartbeat", []]', "x1", "FormationViolation"),
        ('[7, "x2", "Heartbeat", {}]', "x2", "FormationViolation"),
        ('[2, "x3", "FlyToTheMoon", {}]', "x3", "NotImplemented"),
        ('[2, "x4", "Reset", {"type": "Hard"}]', "x4", "NotSupported"),
    ],
    ids=[
        "malformed-json",
        "not-an-array",
        "empty-array",
        "id-not-a-string",
        "call-missing-payload",
        "payload-not-an-object",
        "wrong-message-type-id",
        "unknown-action",
        "action-a-charger-may-not-send",
    ],
)
async def test_bad_frame_gets_call_error_and_charger_stays_connected(
    bridge: BridgeApp, frame: str, expected_id: str, expected_code: str
):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        answer = await exchange(ws, frame)
        assert answer[0] == 4
        assert answer[1] == expected_id
        assert answer[2] == expected_code
        assert isinstance(answer[3], str)
        assert answer[3]
        assert isinstance(answer[4], dict)
        await _assert_alive(ws)
    await _nothing_written(bridge)


@pytest.mark.parametrize(
    ("action", "payload", "expected_code"),
    [
        (
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "timestamp": NOW},
            "OccurenceConstraintViolation",
        ),
        ("StartTransaction", _start(meterStart="1000"), "TypeConstraintViolation"),
        ("StartTransaction", _start(extra=True), "FormationViolation"),
        ("StartTransaction", _start(idTag="X" * 21), "PropertyConstraintViolation"),
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
            "PropertyConstraintViolation",
        ),
        ("StartTransaction", _start(timestamp="yesterday"), "PropertyConstraintViolation"),
        ("StartTransaction", _start(connectorId=0), "PropertyConstraintViolation"),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "12,5"}]}],
            },
            "PropertyConstraintViolation",
        ),
        (
            "StopTransaction",
            {
                "transactionId": 1,
                "meterStop": 2000,
                "timestamp": NOW,
                "transactionData": [{"timestamp": NOW, "sampledValue": [{"value": "NaN"}]}],
            },
            "PropertyConstraintViolation",
        ),
    ],
    ids=[
        "missing-required-field",
        "wrong-type",
        "unexpected-field",
        "idtag-too-long",
        "unknown-enum-value",
        "timestamp-not-a-date",
        "start-on-connector-0",
        "meter-value-not-a-number",
        "transaction-data-not-a-number",
    ],
)
async def test_invalid_payload_gets_specified_error_and_nothing_is_written(
    bridge: BridgeApp, action: str, payload: dict[str, Any], expected_code: str
):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        await _boot(ws)
        answer = await exchange(ws, call(action, payload, "bad"))
        assert answer[:3] == [4, "bad", expected_code], answer
        await _assert_alive(ws)
    await _nothing_written(bridge)


async def test_oversize_frame_closes_with_1009_and_other_chargers_keep_working(tmp_path: Path):
    async with running_bridge(tmp_path, ocpp_max_frame_bytes=4096) as app:
        await add_charger(app, "BIG")
        await add_charger(app, "OTHER")
        async with raw_charger(app, "OTHER") as other, raw_charger(app, "BIG") as big:
            huge = json.dumps(call("DataTransfer", {"vendorId": "v", "data": "x" * 5000}))
            await big.send(huge)
            with pytest.raises(ConnectionClosed):
                await receive(big)
            assert big.close_code == 1009
            await _assert_alive(other)


async def test_binary_frame_gets_call_error(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        await ws.send(b'[2,"b","Heartbeat",{}]')
        answer = await receive(ws)
        assert answer[:3] == [4, "-1", "FormationViolation"]
        await _assert_alive(ws)


async def test_other_chargers_are_served_while_one_sends_garbage(bridge: BridgeApp):
    await add_charger(bridge, "BAD")
    await add_charger(bridge, "GOOD")
    async with raw_charger(bridge, "BAD") as bad, raw_charger(bridge, "GOOD") as good:
        for i in range(20):
            await bad.send("garbage")
            answer = await exchange(good, call("Heartbeat", {}, f"h{i}"))
            assert answer[:2] == [3, f"h{i}"]
        for _ in range(20):
            assert (await receive(bad))[2] == "FormationViolation"


async def test_pending_charger_gets_security_error_for_anything_but_boot(bridge: BridgeApp):
    from csms.domain.model import RegistrationStatus

    await bridge.chargers.register(
        "CP1", password=None, allow_no_auth=True, boot_status=RegistrationStatus.PENDING
    )
    async with raw_charger(bridge, "CP1", password=None) as ws:
        answer = await exchange(ws, call("Heartbeat", {}, "h"))
        assert answer[:3] == [4, "h", "SecurityError"]
        boot = await exchange(ws, call("BootNotification", BOOT, "b"))
        assert boot[2]["status"] == "Pending"
        answer = await exchange(ws, call("StartTransaction", _start(), "s"))
        assert answer[:3] == [4, "s", "SecurityError"]
    assert await all_rows(bridge, TransactionRow) == []


async def test_rejected_charger_gets_rejected_boot(bridge: BridgeApp):
    from csms.domain.model import RegistrationStatus

    await bridge.chargers.register(
        "CP1", password=None, allow_no_auth=True, boot_status=RegistrationStatus.REJECTED
    )
    async with raw_charger(bridge, "CP1", password=None) as ws:
        boot = await exchange(ws, call("BootNotification", BOOT, "b"))
        assert boot[2]["status"] == "Rejected"
        assert boot[2]["interval"] == 60


async def test_data_transfer_gets_unknown_vendor_id(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        answer = await exchange(
            ws, call("DataTransfer", {"vendorId": "com.acme", "messageId": "x"})
        )
        assert answer[2] == {"status": "UnknownVendorId"}


@pytest.mark.expect_errors("handler for Heartbeat failed")
async def test_internal_failure_gets_internal_error_and_rolls_back(bridge: BridgeApp, monkeypatch):
    await add_charger(bridge, "CP1")

    async def broken(charger_id: str):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bridge.chargers, "handle_heartbeat", broken)
    async with raw_charger(bridge, "CP1") as ws:
        answer = await exchange(ws, call("Heartbeat", {}, "h"))
        assert answer[:3] == [4, "h", "InternalError"]
        assert "disk on fire" not in answer[3]
        boot = await exchange(ws, call("BootNotification", BOOT, "b"))
        assert boot[2]["status"] == "Accepted"
