"""The projector and the Locations service against a real database: catching up after a stop,
a failing batch retried without losing its place, the initial push to a registering partner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from bridge.main import BridgeApp
from bridge.ocpi.locations import Status
from bridge.partners import Partner
from bridge.projector import Applier, Projector
from bridge.site import parse_site
from bridge.store.database import Writes
from bridge.store.locations import read_offset
from csms.clock import utc_now
from csms.domain.events import DomainEvent
from csms.domain.model import ConnectorStatus, EvseRef
from csms.domain.requests import StatusReport
from csms.store.events import EventLog
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from simulators.charger.v201 import ChargerSimulator201
from simulators.charger.v201_model import EvseSpec, SimulatorConfig201
from simulators.emsp.server import EmspSimulator
from tests.conftest import PASSWORD, add_charger, ocpp_url, running_bridge
from tests.e2e.test_ocpi_registration import emsp_registers

SITE: dict[str, Any] = {
    "chargers": [{"id": "CP1", "allow_no_auth": True}],
    "locations": [
        {
            "id": "LOC1",
            "address": "Street 1",
            "city": "Town",
            "country": "NLD",
            "coordinates": {"latitude": "52.00000", "longitude": "4.00000"},
            "time_zone": "Europe/Amsterdam",
            "evses": [
                {
                    "uid": "CP1-1",
                    "charger": "CP1",
                    "ocpp_evse_id": 1,
                    "connectors": [
                        {
                            "id": "1",
                            "standard": "IEC_62196_T2",
                            "format": "SOCKET",
                            "power_type": "AC_3_PHASE",
                            "max_voltage": 230,
                            "max_amperage": 16,
                        }
                    ],
                }
            ],
        },
        {
            "id": "HIDDEN",
            "publish": False,
            "address": "Street 2",
            "city": "Town",
            "country": "NLD",
            "coordinates": {"latitude": "52.00000", "longitude": "4.00000"},
            "time_zone": "Europe/Amsterdam",
        },
    ],
}


async def report(app: BridgeApp, status: ConnectorStatus, evse: int = 1) -> None:
    await app.chargers.handle_status(
        StatusReport(
            charger_id="CP1",
            evse=EvseRef(ocpp_evse_id=evse, connector_id=1 if evse else 0),
            status=status,
            reported_at=utc_now(),
        )
    )


async def evse_status(app: BridgeApp) -> Status:
    location = await app.location_reader.published("LOC1")
    assert location is not None
    assert location.evses is not None
    return location.evses[0].status


async def wait_status(app: BridgeApp, expected: Status) -> None:
    async with asyncio.timeout(5):
        while await evse_status(app) is not expected:
            await asyncio.sleep(0.02)


async def test_events_committed_while_the_projector_was_stopped_are_applied_on_start(
    tmp_path: Path,
) -> None:
    async with running_bridge(tmp_path) as app:
        await app.apply_site(parse_site(SITE, "test"))
        await report(app, ConnectorStatus.AVAILABLE)
        await wait_status(app, Status.AVAILABLE)
        await app.projector.stop()
        await report(app, ConnectorStatus.CHARGING)
        await asyncio.sleep(0.1)
        assert await evse_status(app) is Status.AVAILABLE  # nobody projected it
    async with running_bridge(tmp_path) as app:
        assert await evse_status(app) is Status.CHARGING  # caught up during start-up


async def test_connector_zero_overrides_every_evse_until_it_is_available_again(
    tmp_path: Path,
) -> None:
    async with running_bridge(tmp_path) as app:
        await app.apply_site(parse_site(SITE, "test"))
        await report(app, ConnectorStatus.CHARGING)
        await wait_status(app, Status.CHARGING)
        await report(app, ConnectorStatus.FAULTED, evse=0)
        await wait_status(app, Status.OUTOFORDER)
        await report(app, ConnectorStatus.AVAILABLE, evse=0)
        await wait_status(app, Status.CHARGING)


async def test_a_failing_batch_is_retried_from_the_same_offset(tmp_path: Path) -> None:
    async with running_bridge(tmp_path) as app:
        await app.apply_site(parse_site(SITE, "test"))
        await app.projector.stop()
        seen: list[list[str]] = []
        failures = 1

        async def flaky(
            session: AsyncSession, events: Sequence[DomainEvent], writes: Writes
        ) -> int:
            nonlocal failures
            seen.append([type(e).__name__ for e in events])
            if failures:
                failures -= 1
                raise RuntimeError("boom")
            return await app.locations.project(session, events, writes)

        projector = Projector(
            app.db, EventLog(app.db), [Applier("test", flaky)], poll_interval_s=0.05
        )
        await report(app, ConnectorStatus.RESERVED)
        with pytest.raises(RuntimeError):
            await projector.catch_up()
        async with app.db.read() as session:
            assert await read_offset(session, "test") == 0
        assert await projector.catch_up() > 0
        assert seen[0] == seen[1]  # the same events again, none skipped
        async with app.db.read() as session:
            assert await read_offset(session, "test") > 0
        assert await evse_status(app) is Status.RESERVED


async def test_a_registering_partner_receives_every_published_location(tmp_path: Path) -> None:
    async with (
        running_bridge(tmp_path, country_code="NL", party_id="CPO") as app,
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim,
    ):
        await app.apply_site(parse_site(SITE, "test"))
        await emsp_registers(app, sim)
        await sim.state.wait_for(lambda: sim.state.location("NL", "CPO", "LOC1"), 5)
        puts = [r.path for r in sim.state.received if r.method == "PUT"]
        assert puts == ["/ocpi/emsp/2.2.1/locations/NL/CPO/LOC1"]  # HIDDEN is not published
        stored = sim.state.location("NL", "CPO", "LOC1")
        ours = await app.location_reader.published("LOC1")
        assert ours is not None
        assert stored is not None
        assert stored.last_updated == ours.last_updated


@pytest.mark.expect_errors("after registering OCPI partner")
async def test_registration_stands_when_the_initial_push_cannot_be_queued(
    tmp_path: Path,
) -> None:
    async with (
        running_bridge(tmp_path, country_code="NL", party_id="CPO") as app,
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim,
    ):

        async def broken(partner: Partner) -> None:
            raise RuntimeError("cannot queue")

        app.partners.on_registered(broken)
        partner = await emsp_registers(app, sim)
        assert partner.registered


async def facts_of(app: BridgeApp, charger_id: str, evses: int) -> None:
    """Wait until the charger reported ``evses`` EVSEs, each with its connectors (a 2.0.1
    station's EVSEs may be known, from an earlier report, before their connectors)."""

    async def reported() -> bool:
        facts = (await app.chargers.charger_facts())[charger_id]
        return len(facts.evses) >= evses and all(e.connectors for e in facts.evses)

    async with asyncio.timeout(5):
        while not await reported():
            await asyncio.sleep(0.02)


async def test_evses_and_connectors_default_to_what_the_chargers_reported(
    tmp_path: Path,
) -> None:
    template = {"max_voltage": 230, "max_amperage": 32}
    async with running_bridge(tmp_path) as app:
        await add_charger(app, "CP16")
        await add_charger(app, "CS201")
        cp16 = ChargerSimulator16(
            SimulatorConfig16(url=ocpp_url(app), charger_id="CP16", password=PASSWORD, connectors=2)
        )
        cs201 = ChargerSimulator201(
            SimulatorConfig201(
                url=ocpp_url(app),
                charger_id="CS201",
                password=PASSWORD,
                evses=(EvseSpec(1, connectors=("cCCS2",), max_power_w=50000, supply_phases=None),),
            )
        )
        async with cp16, cs201:
            await cp16.boot()
            await cs201.boot()
            await facts_of(app, "CP16", 2)
            await facts_of(app, "CS201", 1)
            entry = {
                **SITE["locations"][0],
                "evses": [
                    {
                        "charger": "CP16",
                        "ocpp_evse_id": n,
                        "connector": {
                            **template,
                            "standard": "IEC_62196_T2",
                            "format": "SOCKET",
                            "power_type": "AC_3_PHASE",
                        },
                    }
                    for n in (1, 2)
                ]
                + [{"charger": "CS201", "connector": {"max_voltage": 920, "max_amperage": 125}}],
            }
            await app.apply_site(parse_site({"locations": [entry]}, "test"))
    location = await app.location_reader.published("LOC1")
    assert location is not None
    assert [e.uid for e in location.evses or ()] == ["CP16-1", "CP16-2", "CS201-1"]
    dc = (location.evses or [])[2].connectors[0]
    assert (dc.id, dc.standard.value, dc.format.value, dc.power_type.value) == (
        "1",
        "IEC_62196_T2_COMBO",
        "CABLE",
        "DC",
    )
    assert dc.max_electric_power == 50000
