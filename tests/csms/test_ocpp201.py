"""OCPP 2.0.1 handlers fed raw frames over real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.main import BridgeApp
from csms.store.tables import (
    ChargerRow,
    ConnectorRow,
    EventRow,
    InventoryRow,
    MeterValueRow,
    TransactionEventRow,
    TransactionRow,
)
from tests.conftest import (
    add_charger,
    all_rows,
    call,
    event_types,
    exchange,
    raw_charger,
    receive,
    running_bridge,
)

T0 = "2026-11-21T10:00:00.000Z"
BOOT = {
    "reason": "PowerUp",
    "chargingStation": {
        "model": "W-201",
        "vendorName": "Acme",
        "serialNumber": "SN-9",
        "firmwareVersion": "4.2",
        "modem": {"iccid": "8931", "imsi": "2040"},
    },
}


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[tuple[BridgeApp, Any]]:
    async with running_bridge(tmp_path, base_report="") as app:
        await add_charger(app, "CS1")
        await app.authorizer.put_token("TOKEN-1")
        async with raw_charger(app, "CS1", subprotocols=("ocpp2.0.1",)) as ws:
            answer = await exchange(ws, call("BootNotification", BOOT, "boot"))
            assert answer[2]["status"] == "Accepted"
            yield app, ws


def tx_event(
    event_type: str,
    seq_no: int,
    *,
    tx: str = "TX-1",
    trigger: str = "MeterValuePeriodic",
    timestamp: str = T0,
    info: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "timestamp": timestamp,
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx, **(info or {})},
        **extra,
    }


def energy(wh: float, context: str = "Sample.Periodic", at: str = T0, **unit: Any) -> dict:
    sampled: dict[str, Any] = {
        "value": wh,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
    }
    if unit:
        sampled["unitOfMeasure"] = unit
    return {"timestamp": at, "sampledValue": [sampled]}


TOKEN = {"idToken": "TOKEN-1", "type": "ISO14443"}


async def send(
    ws, payload: dict[str, Any], action: str = "TransactionEvent", uid: str = "t"
) -> Any:
    answer = await exchange(ws, call(action, payload, uid))
    assert answer[0] == 3, answer
    return answer[2]


async def _tx(app: BridgeApp) -> TransactionRow:
    (tx,) = await all_rows(app, TransactionRow)
    return tx


async def test_ocpp201_is_chosen_when_charger_offers_both(tmp_path: Path):
    async with running_bridge(tmp_path, base_report="") as app:
        await add_charger(app, "CS1")
        async with raw_charger(app, "CS1", subprotocols=("ocpp1.6", "ocpp2.0.1")) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            await exchange(ws, call("BootNotification", BOOT))
        (charger,) = await all_rows(app, ChargerRow)
        assert charger.ocpp_version == "2.0.1"


async def test_boot_stores_the_station_identity(station):
    app, _ = station
    (charger,) = await all_rows(app, ChargerRow)
    assert (charger.vendor, charger.model, charger.serial_number) == ("Acme", "W-201", "SN-9")
    assert (charger.firmware_version, charger.iccid, charger.imsi) == ("4.2", "8931", "2040")


async def test_heartbeat_status_and_authorize(station):
    app, ws = station
    assert (await send(ws, {}, "Heartbeat"))["currentTime"].endswith("Z")
    status = {"timestamp": T0, "connectorStatus": "Occupied", "evseId": 2, "connectorId": 1}
    assert await send(ws, status, "StatusNotification") == {}
    (row,) = await all_rows(app, ConnectorRow)
    assert (row.ocpp_evse_id, row.connector_id, row.status) == (2, 1, "Occupied")
    accepted = await send(ws, {"idToken": TOKEN}, "Authorize")
    assert accepted == {"idTokenInfo": {"status": "Accepted"}}
    unknown = await send(ws, {"idToken": {"idToken": "NOPE", "type": "ISO14443"}}, "Authorize")
    assert unknown == {"idTokenInfo": {"status": "Unknown"}}


async def test_transaction_lifecycle_is_persisted(station):
    app, ws = station
    started = tx_event(
        "Started",
        0,
        trigger="Authorized",
        info={"chargingState": "EVConnected", "remoteStartId": 42},
        evse={"id": 1, "connectorId": 1},
        idToken=TOKEN,
        meterValue=[energy(1000, "Transaction.Begin")],
    )
    assert await send(ws, started) == {"idTokenInfo": {"status": "Accepted"}}
    await send(
        ws,
        tx_event("Updated", 1, trigger="ChargingStateChanged", info={"chargingState": "Charging"}),
    )
    await send(ws, tx_event("Updated", 2, meterValue=[energy(1.5, unit="kWh")]))
    await send(ws, tx_event("Updated", 3, meterValue=[energy(2, unit="Wh", multiplier=3)]))
    ended = tx_event(
        "Ended",
        4,
        trigger="StopAuthorized",
        info={"stoppedReason": "EVDisconnected"},
        timestamp="2026-11-21T10:30:00.000Z",
        meterValue=[energy(2600, "Transaction.End", at="2026-11-21T10:30:00.000Z")],
    )
    assert await send(ws, ended) == {}
    tx = await _tx(app)
    assert (tx.transaction_ref, tx.ocpp_evse_id, tx.connector_id) == ("TX-1", 1, 1)
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1000, 2600, 1600)
    assert (tx.id_token, tx.id_token_kind, tx.remote_start_id) == ("TOKEN-1", "ISO14443", 42)
    assert (tx.stop_reason, tx.charging_state, tx.last_seq_no) == ("EVDisconnected", "Charging", 4)
    assert tx.seq_gap_count == 0
    assert tx.ended_at is not None
    assert tx.ended_at.isoformat() == "2026-11-21T10:30:00+00:00"
    values = sorted(Decimal(m.value) for m in await all_rows(app, MeterValueRow))
    assert values == [1000, 1500, 2000, 2600]
    types = [
        t
        for t in await event_types(app, "CS1")
        if t.startswith(("Transaction", "Meter", "Charging"))
    ]
    assert types == [
        "TransactionStarted",
        "ChargingStateChanged",
        "ChargingStateChanged",
        "MeterValuesSampled",
        "MeterValuesSampled",
        "TransactionEnded",
    ]


async def test_token_arriving_after_cable_is_added_to_the_transaction(station):
    app, ws = station
    plugged = tx_event(
        "Started",
        0,
        trigger="CablePluggedIn",
        evse={"id": 1},
        info={"chargingState": "EVConnected"},
    )
    assert await send(ws, plugged) == {}
    tx = await _tx(app)
    assert tx.id_token is None
    authorized = await send(ws, tx_event("Updated", 1, trigger="Authorized", idToken=TOKEN))
    assert authorized == {"idTokenInfo": {"status": "Accepted"}}
    tx = await _tx(app)
    assert (tx.id_token, tx.authorization_status) == ("TOKEN-1", "Accepted")
    assert "TransactionAuthorized" in await event_types(app, "CS1")


async def test_duplicate_event_is_answered_and_ignored(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}, idToken=TOKEN))
    update = tx_event("Updated", 1, meterValue=[energy(500)])
    await send(ws, update)
    again = await send(ws, update)
    assert again == {}
    assert len(await all_rows(app, MeterValueRow)) == 1
    assert len(await all_rows(app, TransactionEventRow)) == 2


async def test_seq_no_gap_is_recorded_and_the_event_applied(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}))
    await send(ws, tx_event("Updated", 3, meterValue=[energy(700)]))
    tx = await _tx(app)
    assert tx.seq_gap_count == 2
    assert tx.last_meter_wh == 700
    await send(ws, tx_event("Updated", 1))
    tx = await _tx(app)
    assert tx.seq_gap_count == 1
    assert tx.last_seq_no == 3


async def test_huge_seq_no_gap_costs_constant_space(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}))
    await send(ws, tx_event("Updated", 2**31 - 1))
    tx = await _tx(app)
    assert (tx.seq_gap_count, tx.last_seq_no) == (2**31 - 2, 2**31 - 1)


async def test_reused_seq_no_after_a_reset_still_ends_the_transaction(station):
    app, ws = station
    begin = [energy(100, "Transaction.Begin")]
    await send(ws, tx_event("Started", 0, evse={"id": 1}, meterValue=begin))
    await send(ws, tx_event("Updated", 1, meterValue=[energy(200)]))
    await send(ws, BOOT, "BootNotification")
    ended = tx_event(
        "Ended",
        1,
        timestamp="2026-11-21T10:05:00.000Z",
        info={"stoppedReason": "PowerLoss"},
        meterValue=[energy(250, "Transaction.End", at="2026-11-21T10:05:00.000Z")],
    )
    await send(ws, ended)
    tx = await _tx(app)
    assert tx.ended_at is not None
    assert (tx.stop_reason, tx.energy_wh) == ("PowerLoss", 150)


async def test_meter_start_is_the_earliest_register_when_started_had_none(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}))
    ended = tx_event(
        "Ended",
        1,
        info={"stoppedReason": "Local"},
        meterValue=[
            energy(1000, "Transaction.Begin", at="2026-11-21T10:00:00.000Z"),
            energy(8000, "Transaction.End", at="2026-11-21T11:00:00.000Z"),
        ],
    )
    await send(ws, ended)
    tx = await _tx(app)
    assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (1000, 8000, 7000)


@pytest.mark.parametrize("event_type", ["Updated", "Ended"])
async def test_transaction_is_created_from_first_event_when_started_was_lost(station, event_type):
    app, ws = station
    payload = tx_event(
        event_type,
        5,
        tx="LATE",
        idToken=TOKEN,
        evse={"id": 2, "connectorId": 1},
        meterValue=[energy(4000), energy(4600, at="2026-11-21T10:10:00.000Z")],
    )
    answer = await send(ws, payload)
    assert answer == {"idTokenInfo": {"status": "Accepted"}}
    tx = await _tx(app)
    assert (tx.transaction_ref, tx.ocpp_evse_id, tx.seq_gap_count) == ("LATE", 2, 5)
    assert (tx.meter_start_wh, tx.last_meter_wh) == (4000, 4600)
    assert (tx.ended_at is not None) == (event_type == "Ended")
    assert len(await all_rows(app, MeterValueRow)) == 2


async def test_timestamp_with_offset_is_stored_as_utc(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}, timestamp="2026-11-21T12:00:00+02:00"))
    tx = await _tx(app)
    assert tx.started_at.isoformat() == "2026-11-21T10:00:00+00:00"


async def test_events_after_ended_are_answered_and_ignored(station):
    app, ws = station
    await send(
        ws, tx_event("Started", 0, evse={"id": 1}, meterValue=[energy(100, "Transaction.Begin")])
    )
    await send(
        ws,
        tx_event(
            "Ended", 1, info={"stoppedReason": "Local"}, meterValue=[energy(300, "Transaction.End")]
        ),
    )
    late = await send(ws, tx_event("Updated", 2, meterValue=[energy(900)]), uid="late")
    assert late == {}
    tx = await _tx(app)
    assert (tx.meter_stop_wh, tx.last_seq_no) == (300, 1)
    assert (await event_types(app, "CS1")).count("TransactionEnded") == 1


async def test_ended_repeated_after_reconnect_creates_nothing_new(station, tmp_path):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}))
    ended = tx_event(
        "Ended", 1, info={"stoppedReason": "Local"}, meterValue=[energy(300, "Transaction.End")]
    )
    await send(ws, ended)
    async with raw_charger(app, "CS1", subprotocols=("ocpp2.0.1",)) as again:
        assert await send(again, ended | {"offline": True}) == {}
    assert len(await all_rows(app, TransactionRow)) == 1
    assert (await event_types(app, "CS1")).count("TransactionEnded") == 1


async def test_offline_flag_is_kept_on_the_transaction(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}, offline=True))
    assert (await _tx(app)).offline


async def test_signed_meter_value_is_kept(station):
    app, ws = station
    await send(ws, tx_event("Started", 0, evse={"id": 1}))
    signed = {
        "timestamp": T0,
        "sampledValue": [
            {
                "value": 1234,
                "signedMeterValue": {
                    "signedMeterData": "b64data",
                    "signingMethod": "ECDSA",
                    "encodingMethod": "OCMF",
                    "publicKey": "b64key",
                },
            }
        ],
    }
    await send(ws, tx_event("Updated", 1, trigger="SignedDataReceived", meterValue=[signed]))
    (row,) = await all_rows(app, MeterValueRow)
    assert (row.signed_data, row.encoding_method, row.public_key) == ("b64data", "OCMF", "b64key")


async def test_meter_values_of_the_main_meter_are_kept(station):
    app, ws = station
    await send(ws, {"evseId": 0, "meterValue": [energy(99_000, "Sample.Clock")]}, "MeterValues")
    (row,) = await all_rows(app, MeterValueRow)
    assert (row.ocpp_evse_id, row.transaction_id, row.value) == (0, None, "99000")


@pytest.mark.parametrize(
    ("action", "payload", "kind", "status"),
    [
        (
            "SecurityEventNotification",
            {"type": "TamperDetectionActivated", "timestamp": T0},
            "security",
            "TamperDetectionActivated",
        ),
        (
            "FirmwareStatusNotification",
            {"status": "Installed", "requestId": 7},
            "firmware",
            "Installed",
        ),
        ("LogStatusNotification", {"status": "Uploaded", "requestId": 8}, "log", "Uploaded"),
        (
            "NotifyEvent",
            {
                "generatedAt": T0,
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": T0,
                        "trigger": "Alerting",
                        "actualValue": "true",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "ChargingStation"},
                        "variable": {"name": "Problem"},
                    }
                ],
            },
            "event",
            "ChargingStation.Problem=true",
        ),
    ],
)
async def test_notifications_are_recorded(station, action, payload, kind, status):
    app, ws = station
    assert await send(ws, payload, action) == {}
    (event,) = await all_rows(app, EventRow, EventRow.type == "ChargerNotified")
    recorded = json.loads(event.payload)
    assert (recorded["kind"], recorded["status"]) == (kind, status)


async def test_reservation_and_charging_limit_updates_are_recorded(station):
    app, ws = station
    await send(
        ws, {"reservationId": 5, "reservationUpdateStatus": "Expired"}, "ReservationStatusUpdate"
    )
    await send(
        ws, {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1}, "NotifyChargingLimit"
    )
    await send(ws, {"chargingLimitSource": "EMS", "evseId": 1}, "ClearedChargingLimit")
    types = await event_types(app, "CS1")
    assert "ReservationStatusChanged" in types
    assert types.count("ChargingLimitChanged") == 2
    assert await send(ws, {"vendorId": "com.acme"}, "DataTransfer") == {"status": "UnknownVendorId"}


async def test_inventory_is_requested_after_boot_and_stored_from_report_pages(tmp_path):
    async with running_bridge(tmp_path) as app:
        await add_charger(app, "CS1")
        async with raw_charger(app, "CS1", subprotocols=("ocpp2.0.1",)) as ws:
            assert (await exchange(ws, call("BootNotification", BOOT)))[2]["status"] == "Accepted"
            request = await receive(ws)
            assert request[:3] == [2, request[1], "GetBaseReport"]
            assert request[3]["reportBase"] == "FullInventory"
            await ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))

            def item(name: str, evse: dict, variable: str, value: str) -> dict:
                return {
                    "component": {"name": name, "evse": evse},
                    "variable": {"name": variable},
                    "variableAttribute": [{"type": "Actual", "value": value}],
                }

            pages = [
                [
                    item("EVSE", {"id": 1}, "Power", "22000"),
                    item("EVSE", {"id": 1}, "SupplyPhases", "3"),
                    item("Connector", {"id": 1, "connectorId": 1}, "ConnectorType", "sType2"),
                ],
                [
                    item("EVSE", {"id": 2}, "Power", "50000.0"),
                    item("Connector", {"id": 2, "connectorId": 1}, "ConnectorType", "cCCS2"),
                    item("Connector", {"id": 2, "connectorId": 2}, "ConnectorType", "cG105"),
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variableAttribute": [{"value": "60"}],
                    },
                ],
            ]
            for seq_no, data in enumerate(pages):
                page = {
                    "requestId": request[3]["requestId"],
                    "generatedAt": T0,
                    "seqNo": seq_no,
                    "tbc": seq_no < len(pages) - 1,
                    "reportData": data,
                }
                assert (await exchange(ws, call("NotifyReport", page, f"r{seq_no}")))[0] == 3
            other = {"requestId": 999, "generatedAt": T0, "seqNo": 0, "reportData": pages[1][3:]}
            assert (await exchange(ws, call("NotifyReport", other, "other")))[0] == 3
        rows = await all_rows(app, InventoryRow, order_by=InventoryRow.ocpp_evse_id)
        table = sorted(
            (r.ocpp_evse_id, r.connector_id, r.connector_type, r.max_power_w, r.supply_phases)
            for r in rows
        )
        assert table == [
            (1, 0, None, 22000, 3),
            (1, 1, "sType2", None, None),
            (2, 0, None, 50000, None),
            (2, 1, "cCCS2", None, None),
            (2, 2, "cG105", None, None),
        ]
        (event,) = await all_rows(app, EventRow, EventRow.type == "InventoryReported")
        evses = json.loads(event.payload)["evses"]
        assert [len(e["connectors"]) for e in evses] == [1, 2]
        # A report we did not ask for leaves the inventory as it was.
        assert len(await all_rows(app, InventoryRow)) == 5


@pytest.mark.parametrize(
    ("frame", "expected_id", "expected_code"),
    [
        ("{not json", "-1", "RpcFrameworkError"),
        ('{"a": 1}', "-1", "RpcFrameworkError"),
        ('[2, "x1", "Heartbeat", []]', "x1", "FormatViolation"),
        ('[7, "x2", "Heartbeat", {}]', "x2", "MessageTypeNotSupported"),
        ('[2, "x3", "FlyToTheMoon", {}]', "x3", "NotImplemented"),
        ('[2, "x4", "RequestStartTransaction", {}]', "x4", "NotSupported"),
        (
            '[2, "x5", "TransactionEvent", {"eventType": "Started"}]',
            "x5",
            "OccurrenceConstraintViolation",
        ),
        ('[2, "x6", "Heartbeat", {"foo": 1}]', "x6", "FormatViolation"),
    ],
)
async def test_bad_frames_get_201_error_codes(station, frame, expected_id, expected_code):
    app, ws = station
    answer = await exchange(ws, frame)
    assert answer[:3] == [4, expected_id, expected_code]
    assert (await exchange(ws, call("Heartbeat", {}, "alive")))[:2] == [3, "alive"]
    assert await all_rows(app, TransactionRow) == []


async def test_bad_timestamp_in_transaction_event_writes_nothing(station):
    app, ws = station
    answer = await exchange(
        ws, call("TransactionEvent", tx_event("Started", 0, timestamp="soon"), "bad")
    )
    assert answer[:3] == [4, "bad", "PropertyConstraintViolation"]
    assert await all_rows(app, TransactionRow) == []
    assert await all_rows(app, TransactionEventRow) == []


async def test_basic_auth_is_enforced_for_201_as_for_16(tmp_path):
    from websockets.exceptions import InvalidStatus

    async with running_bridge(tmp_path, base_report="") as app:
        await add_charger(app, "CS1")
        with pytest.raises(InvalidStatus) as refused:
            async with raw_charger(
                app, "CS1", password="wrong-password-00000", subprotocols=("ocpp2.0.1",)
            ):
                pass
        assert refused.value.response.status_code == 401


async def test_oversize_frame_closes_a_201_connection_with_1009(tmp_path):
    from websockets.exceptions import ConnectionClosed

    async with running_bridge(tmp_path, base_report="", ocpp_max_frame_bytes=2048) as app:
        await add_charger(app, "CS1")
        async with raw_charger(app, "CS1", subprotocols=("ocpp2.0.1",)) as ws:
            await ws.send(json.dumps(call("DataTransfer", {"vendorId": "v", "data": "x" * 3000})))
            with pytest.raises(ConnectionClosed):
                await receive(ws)
            assert ws.close_code == 1009


async def test_pending_station_gets_security_error_for_transaction_events(tmp_path):
    from csms.domain.model import RegistrationStatus

    async with running_bridge(tmp_path, base_report="") as app:
        await app.chargers.register(
            "CS1", password=None, allow_no_auth=True, boot_status=RegistrationStatus.PENDING
        )
        async with raw_charger(app, "CS1", password=None, subprotocols=("ocpp2.0.1",)) as ws:
            assert (await exchange(ws, call("BootNotification", BOOT)))[2]["status"] == "Pending"
            answer = await exchange(ws, call("TransactionEvent", tx_event("Started", 0), "te"))
            assert answer[:3] == [4, "te", "SecurityError"]
        assert await all_rows(app, TransactionRow) == []


@pytest.mark.parametrize(
    ("sampled", "where"),
    [
        ('{"value": NaN}', "value"),
        ('{"value": Infinity}', "value"),
        ('{"value": 1, "unitOfMeasure": {"multiplier": 400000}}', "multiplier"),
    ],
)
async def test_absurd_meter_values_are_refused_with_a_constraint_violation(station, sampled, where):
    app, ws = station
    event = tx_event("Started", 0, meterValue=[{"timestamp": T0, "sampledValue": ["SAMPLED"]}])
    frame = json.dumps(call("TransactionEvent", event, "n")).replace('"SAMPLED"', sampled)
    answer = await exchange(ws, frame)
    assert answer[:3] == [4, "n", "PropertyConstraintViolation"]
    assert where in answer[3]
    assert await all_rows(app, TransactionRow) == []


async def test_long_group_id_is_left_out_of_id_token_info(station):
    app, ws = station
    await app.authorizer.put_token("GROUPED", parent_id_tag="G" * 40)
    answer = await send(ws, {"idToken": {"idToken": "GROUPED", "type": "ISO14443"}}, "Authorize")
    assert answer == {"idTokenInfo": {"status": "Accepted"}}
