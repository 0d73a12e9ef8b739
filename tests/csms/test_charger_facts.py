"""``ChargerService.charger_facts``: the ``ChargerDirectory`` the bridge reads its site inventory
from (every registered charger, its OCPP version and reported EVSEs, in two queries)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event

from bridge.main import BridgeApp
from csms.domain.model import ChargerFacts, ConnectorInventory, EvseInventory, OcppVersion
from csms.ports import ChargerDirectory
from csms.store.tables import EventRow
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from simulators.charger.v201 import ChargerSimulator201, EvseSpec, SimulatorConfig201
from tests.conftest import PASSWORD, add_charger, all_rows, ocpp_url


async def _until_inventory(app: BridgeApp, charger_id: str) -> None:
    async with asyncio.timeout(5):
        while not await all_rows(
            app,
            EventRow,
            EventRow.charger_id == charger_id,
            EventRow.type == "InventoryReported",
        ):
            await asyncio.sleep(0.02)


class _Statements:
    """Counts the SQL statements the engine runs while the context is open."""

    def __init__(self, app: BridgeApp) -> None:
        self._engine = app.db.engine.sync_engine
        self.texts: list[str] = []

    def _count(self, *args: Any) -> None:
        self.texts.append(args[2])

    def __enter__(self) -> _Statements:
        event.listen(self._engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._count)


def _never_connected(charger_id: str) -> ChargerFacts:
    return ChargerFacts(charger_id=charger_id, ocpp_version=None, evses=())


async def test_reported_inventory_is_in_the_facts_when_201_station_sent_its_base_report(
    bridge: BridgeApp,
):
    await add_charger(bridge, "CS1")
    await add_charger(bridge, "NEW")
    evses = (EvseSpec(1, ("sType2",), 22000, 3), EvseSpec(2, ("cCCS2", "cG105"), 150000, None))
    config = SimulatorConfig201(
        url=ocpp_url(bridge), charger_id="CS1", password=PASSWORD, evses=evses, response_timeout=5
    )
    async with ChargerSimulator201(config) as sim:
        assert (await sim.boot())["status"] == "Accepted"
        await _until_inventory(bridge, "CS1")
    directory: ChargerDirectory = bridge.chargers
    facts = await directory.charger_facts()
    assert facts == {
        "CS1": ChargerFacts(
            charger_id="CS1",
            ocpp_version=OcppVersion.V201,
            evses=(
                EvseInventory(
                    ocpp_evse_id=1,
                    connectors=(ConnectorInventory(connector_id=1, connector_type="sType2"),),
                    max_power_w=22000,
                    supply_phases=3,
                ),
                EvseInventory(
                    ocpp_evse_id=2,
                    connectors=(
                        ConnectorInventory(connector_id=1, connector_type="cCCS2"),
                        ConnectorInventory(connector_id=2, connector_type="cG105"),
                    ),
                    max_power_w=150000,
                ),
            ),
        ),
        "NEW": _never_connected("NEW"),
    }


async def test_connector_count_is_in_the_facts_when_16_charger_answered_it(bridge: BridgeApp):
    await add_charger(bridge, "CP1")
    config = SimulatorConfig16(
        url=ocpp_url(bridge), charger_id="CP1", password=PASSWORD, connectors=2, response_timeout=5
    )
    async with ChargerSimulator16(config) as sim:
        await sim.boot()
        await _until_inventory(bridge, "CP1")
    one_connector = (ConnectorInventory(connector_id=1),)
    assert (await bridge.chargers.charger_facts())["CP1"] == ChargerFacts(
        charger_id="CP1",
        ocpp_version=OcppVersion.V16,
        evses=(
            EvseInventory(ocpp_evse_id=1, connectors=one_connector),
            EvseInventory(ocpp_evse_id=2, connectors=one_connector),
        ),
    )


async def test_connected_charger_has_a_version_and_no_evses_when_nothing_was_reported(
    bridge: BridgeApp,
):
    """A 1.6 charger that does not know NumberOfConnectors still shows the version it speaks."""
    await add_charger(bridge, "CP1")
    config = SimulatorConfig16(
        url=ocpp_url(bridge), charger_id="CP1", password=PASSWORD, response_timeout=5
    )
    async with ChargerSimulator16(config) as sim:
        sim.answers["GetConfiguration"] = {"unknownKey": ["NumberOfConnectors"]}
        await sim.boot()
        await sim.wait_for_call("GetConfiguration")
    facts = await bridge.chargers.charger_facts()
    assert facts == {"CP1": ChargerFacts(charger_id="CP1", ocpp_version=OcppVersion.V16)}


async def test_facts_are_empty_when_no_charger_is_registered(bridge: BridgeApp):
    assert await bridge.chargers.charger_facts() == {}


async def test_facts_take_two_queries_whatever_the_number_of_chargers(bridge: BridgeApp):
    from csms.domain.requests import InventoryPage

    for n in range(5):
        await add_charger(bridge, f"CP{n}", password=None)
        await bridge.chargers.handle_connector_count(f"CP{n}", n + 1)
    await bridge.chargers.handle_inventory_page(
        InventoryPage(
            charger_id="CP0",
            request_id=1,
            seq_no=0,
            more_pages=False,
            evses=(EvseInventory(ocpp_evse_id=7, max_power_w=11000),),
        )
    )
    with _Statements(bridge) as statements:
        facts = await bridge.chargers.charger_facts()
    # Other parts of the running bridge (the projector's poll) may query meanwhile.
    ours = [t for t in statements.texts if "FROM chargers" in t or "FROM inventory" in t]
    assert len(ours) == 2, statements.texts
    assert sorted(facts) == [f"CP{n}" for n in range(5)]
    assert [len(facts[f"CP{n}"].evses) for n in range(5)] == [1, 2, 3, 4, 5]
    assert facts["CP0"].evses == (EvseInventory(ocpp_evse_id=7, max_power_w=11000),)
    assert all(f.ocpp_version is None for f in facts.values())
