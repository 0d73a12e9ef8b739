"""The inventory of an OCPP 1.6 charger: ``NumberOfConnectors`` asked after an accepted boot
(EVSE N = connectorId N with one connector 1), and what a useless answer leaves behind."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bridge.main import BridgeApp
from csms.domain.codec import decode_event
from csms.domain.events import InventoryReported
from csms.domain.model import ConnectorInventory, EvseInventory, RegistrationStatus
from csms.errors import UnknownCharger
from csms.registry import ConnectionRegistry
from csms.server import OcppServer
from csms.store.tables import EventRow, InventoryRow
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from tests.conftest import (
    BOOT,
    PASSWORD,
    add_charger,
    all_rows,
    basic_auth,
    call,
    exchange,
    ocpp_url,
    raw_charger,
    receive,
    running_bridge,
)

QUERY = {"key": ["NumberOfConnectors"]}


def _evses(count: int) -> tuple[EvseInventory, ...]:
    return tuple(
        EvseInventory(ocpp_evse_id=n, connectors=(ConnectorInventory(connector_id=1),))
        for n in range(1, count + 1)
    )


def _sim16(app: BridgeApp, connectors: int) -> ChargerSimulator16:
    return ChargerSimulator16(
        SimulatorConfig16(
            url=ocpp_url(app),
            charger_id="CP1",
            password=PASSWORD,
            connectors=connectors,
            response_timeout=5,
        )
    )


@pytest.fixture
async def sim(bridge: BridgeApp) -> AsyncIterator[ChargerSimulator16]:
    await add_charger(bridge, "CP1")
    async with _sim16(bridge, connectors=3) as simulator:
        yield simulator


async def _inventory_table(app: BridgeApp) -> list[tuple[int, int]]:
    rows = await all_rows(app, InventoryRow, InventoryRow.charger_id == "CP1")
    return sorted((r.ocpp_evse_id, r.connector_id) for r in rows)


async def _inventory_events(app: BridgeApp, count: int = 1) -> list[InventoryReported]:
    """The charger's InventoryReported events, once there are ``count`` of them."""
    async with asyncio.timeout(5):
        while True:
            rows = await all_rows(
                app, EventRow, EventRow.type == "InventoryReported", order_by=EventRow.id
            )
            if len(rows) >= count:
                break
            await asyncio.sleep(0.02)
    events = [decode_event(row.type, json.loads(row.payload)) for row in rows]
    reported = [event for event in events if isinstance(event, InventoryReported)]
    assert len(reported) == len(events)
    return reported


async def _until_logged(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    async with asyncio.timeout(5):
        while not (records := [r for r in caplog.records if text in r.getMessage()]):
            await asyncio.sleep(0.02)
    return records[0]


# --- the connector count becomes the inventory -----------------------------------------


async def test_connector_count_becomes_the_inventory_when_16_charger_boots(bridge, sim):
    assert (await sim.boot())["status"] == "Accepted"
    (event,) = await _inventory_events(bridge)
    assert await sim.wait_for_call("GetConfiguration") == QUERY
    assert event.charger_id == "CP1"
    assert event.evses == _evses(3)
    assert await _inventory_table(bridge) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]


async def test_reboot_appends_no_event_when_connector_count_is_unchanged(bridge, sim, caplog):
    caplog.set_level(logging.INFO, logger="csms.services.chargers")
    await sim.boot()
    await _inventory_events(bridge)
    await sim.boot()
    await _until_logged(caplog, "CP1 still has 3 connector(s): inventory unchanged")
    assert len(await _inventory_events(bridge)) == 1
    assert len(await _inventory_table(bridge)) == 6


async def test_inventory_is_replaced_when_connector_count_changes(bridge, sim):
    await sim.boot()
    await _inventory_events(bridge)
    sim.configuration["NumberOfConnectors"] = "1"
    await sim.boot()
    first, second = await _inventory_events(bridge, count=2)
    assert (first.evses, second.evses) == (_evses(3), _evses(1))
    assert await _inventory_table(bridge) == [(1, 0), (1, 1)]


async def test_value_with_spaces_and_sign_is_read_as_an_integer(bridge, sim):
    sim.answers["GetConfiguration"] = {
        "configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": " +2 "}]
    }
    await sim.boot()
    (event,) = await _inventory_events(bridge)
    assert event.evses == _evses(2)


# --- answers that cannot be used leave the inventory alone -------------------------------


def _answer(value: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": "NumberOfConnectors", "readonly": True}
    if value is not None:
        entry["value"] = value
    return {"configurationKey": [entry]}


@pytest.mark.parametrize(
    ("knob", "setting", "logged"),
    [
        ("call_error_actions", "NotSupported", "CallFailed(error_code='NotSupported'"),
        ("silent_actions", None, "CallTimedOut"),
        ("answers", {"configurationKey": "many"}, "CallInvalid"),
        ("answers", {"unknownKey": ["NumberOfConnectors"]}, "is an unknown key"),
        ("answers", {"configurationKey": []}, "is missing from the answer"),
        ("answers", {}, "is missing from the answer"),
        ("answers", _answer(None), "None is not an integer"),
        ("answers", _answer("two"), "'two' is not an integer"),
        ("answers", _answer("2.0"), "'2.0' is not an integer"),
        ("answers", _answer(""), "'' is not an integer"),
        ("answers", _answer("0"), "0 is not in 1..100"),
        ("answers", _answer("-1"), "-1 is not in 1..100"),
        ("answers", _answer("100000"), "100000 is not in 1..100"),
    ],
    ids=[
        "call-error",
        "timeout",
        "schema-invalid-answer",
        "unknown-key",
        "key-missing",
        "empty-answer",
        "no-value",
        "not-a-number",
        "decimal",
        "empty-value",
        "zero",
        "negative",
        "absurdly-many",
    ],
)
async def test_inventory_is_untouched_and_a_warning_logged_when_answer_is_unusable(
    tmp_path: Path, caplog, knob: str, setting: Any, logged: str
):
    async with running_bridge(tmp_path, ocpp_call_timeout=0.5) as app:
        await add_charger(app, "CP1")
        async with _sim16(app, connectors=2) as sim:
            await sim.boot()
            await _inventory_events(app)
            match knob:
                case "silent_actions":
                    sim.silent_actions.add("GetConfiguration")
                case _:
                    getattr(sim, knob)["GetConfiguration"] = setting
            await sim.boot()
            record = await _until_logged(caplog, logged)
            assert record.levelno == logging.WARNING
            assert record.getMessage().startswith("CP1: GetConfiguration")
            assert len(await _inventory_events(app)) == 1
            assert await _inventory_table(app) == [(1, 0), (1, 1), (2, 0), (2, 1)]
            # The connection keeps working.
            assert (await sim.heartbeat())["currentTime"]


async def test_warning_is_logged_when_charger_leaves_before_answering(bridge, caplog):
    await add_charger(bridge, "CP1")
    async with raw_charger(bridge, "CP1") as ws:
        assert (await exchange(ws, call("BootNotification", BOOT)))[2]["status"] == "Accepted"
        assert (await receive(ws))[2:] == ["GetConfiguration", QUERY]
    record = await _until_logged(caplog, "ChargerOffline(charger_id='CP1')")
    assert record.levelno == logging.WARNING
    assert await _inventory_table(bridge) == []


async def test_nothing_is_asked_when_boot_is_not_accepted(bridge):
    await bridge.chargers.register(
        "CP1", password=None, allow_no_auth=True, boot_status=RegistrationStatus.PENDING
    )
    async with raw_charger(bridge, "CP1", password=None) as ws:
        assert (await exchange(ws, call("BootNotification", BOOT, "b1")))[2]["status"] == "Pending"
        # A query would have been sent right after the first answer, before this one.
        assert (await exchange(ws, call("BootNotification", BOOT, "b2")))[:2] == [3, "b2"]
    assert await _inventory_table(bridge) == []


async def test_nothing_is_asked_when_connector_count_query_is_switched_off(bridge):
    await add_charger(bridge, "CP1")
    services = dataclasses.replace(bridge.services, connector_count_query=False)
    server = OcppServer(
        services,
        ConnectionRegistry(),
        host="127.0.0.1",
        port=0,
        max_frame_bytes=65536,
        call_timeout_s=2,
    )
    await server.start()
    try:
        async with connect(
            f"ws://127.0.0.1:{server.port}/ocpp/CP1",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=basic_auth("CP1", PASSWORD),
        ) as ws:
            assert (await exchange(ws, call("BootNotification", BOOT, "b")))[2]["status"] == (
                "Accepted"
            )
            assert (await exchange(ws, call("Heartbeat", {}, "h")))[:2] == [3, "h"]
    finally:
        await server.stop()
    assert await _inventory_table(bridge) == []


# --- the service on its own ------------------------------------------------------------


async def test_connector_count_of_unknown_charger_is_refused(bridge):
    with pytest.raises(UnknownCharger):
        await bridge.chargers.handle_connector_count("NOPE", 2)
    assert await all_rows(bridge, InventoryRow) == []


@pytest.mark.parametrize("count", [0, -3])
async def test_connector_count_below_one_is_refused(bridge, count):
    await add_charger(bridge, "CP1")
    with pytest.raises(ValueError, match="at least one connector"):
        await bridge.chargers.handle_connector_count("CP1", count)
    assert await all_rows(bridge, InventoryRow) == []


async def test_connector_count_replaces_a_reported_2_0_1_inventory(bridge):
    """A charger downgraded from 2.0.1 to 1.6 keeps no stale EVSE, connector type or power."""
    from csms.domain.requests import InventoryPage

    await add_charger(bridge, "CP1")
    reported = (
        EvseInventory(
            ocpp_evse_id=1,
            connectors=(ConnectorInventory(connector_id=1, connector_type="cType2"),),
            max_power_w=22000,
        ),
        EvseInventory(ocpp_evse_id=2, connectors=(ConnectorInventory(connector_id=1),)),
    )
    await bridge.chargers.handle_inventory_page(
        InventoryPage(charger_id="CP1", request_id=1, seq_no=0, more_pages=False, evses=reported)
    )
    assert await bridge.chargers.handle_connector_count("CP1", 1) is True
    assert await _inventory_table(bridge) == [(1, 0), (1, 1)]
    (row,) = await all_rows(bridge, InventoryRow, InventoryRow.connector_id == 1)
    assert row.connector_type is None
    assert await bridge.chargers.handle_connector_count("CP1", 1) is False
    assert [e.evses for e in await _inventory_events(bridge, count=2)] == [reported, _evses(1)]
