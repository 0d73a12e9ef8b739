"""Live EVSE status in OCPI, end to end over real sockets: OCPP 1.6 and 2.0.1 charger simulators
report statuses to a running bridge, which PATCHes ``{status, last_updated}`` to the eMSP
simulator's Locations RECEIVER through the durable outbox (design.md section 5, reference 4.2).

Nothing here waits for a fixed time: the eMSP side waits with ``state.wait_for``, the bridge side
polls with a deadline (``until``). Where a test asserts that something was *not* pushed, it makes
a later change on the same Location (the outbox delivers the rows of one Location and partner in
enqueue order), waits for that one, and only then looks at what arrived before it."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest

from bridge.main import BridgeApp
from simulators.charger.core import SimulatorCore
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from simulators.charger.v201 import ChargerSimulator201, EvseSpec, SimulatorConfig201
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import AuthKind, RecordedRequest
from tests.conftest import PASSWORD, ocpp_url, running_bridge
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url

T = TypeVar("T")
Sim = TypeVar("Sim", bound=SimulatorCore)

CPO = {"country_code": "NL", "party_id": "CPO"}
FAST = {
    "outbox_backoff_base": 0.05,
    "outbox_backoff_max": 0.3,
    "ocpi_timeout": 0.5,
    "outbox_poll_interval": 0.2,
    "outbox_max_attempts": 1000,  # the outages here never dead-letter a row
}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
LOCATIONS_PATH = "/ocpi/emsp/2.2.1/locations/NL/CPO/"
CONNECTOR = (
    '{ standard = "IEC_62196_T2", format = "SOCKET", power_type = "AC_3_PHASE", '
    "max_voltage = 230, max_amperage = 16 }"
)


# --- the site file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Evse:
    uid: str
    charger: str
    ocpp_evse_id: int  # OCPP 1.6: the connectorId
    connectors: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Loc:
    id: str
    evses: tuple[Evse, ...]
    publish: bool = True


LOC16 = Loc("LOC-16", (Evse("CP16-1", "CP16", 1), Evse("CP16-2", "CP16", 2)))
LOC201 = Loc("LOC-201", (Evse("CS201-1", "CS201", 1, (1, 2)),))


def site_toml(chargers: Sequence[str], locations: Sequence[Loc]) -> str:
    lines: list[str] = []
    for charger in chargers:
        lines += ["[[chargers]]", f'id = "{charger}"', f'password = "{PASSWORD}"', ""]
    for loc in locations:
        lines += [
            "[[locations]]",
            f'id = "{loc.id}"',
            f"publish = {'true' if loc.publish else 'false'}",
            'address = "Stationsplein 1"',
            'city = "Amsterdam"',
            'country = "NLD"',
            'coordinates = { latitude = "52.37890", longitude = "4.90030" }',
            'time_zone = "Europe/Amsterdam"',
            "",
        ]
        for evse in loc.evses:
            lines += [
                "  [[locations.evses]]",
                f'  uid = "{evse.uid}"',
                f'  charger = "{evse.charger}"',
                f"  ocpp_evse_id = {evse.ocpp_evse_id}",
                f"  connector = {CONNECTOR}",
            ]
            for connector_id in evse.connectors:
                lines += [
                    "    [[locations.evses.connectors]]",
                    f'    id = "{connector_id}"',
                    f"    ocpp_connector_id = {connector_id}",
                ]
            lines.append("")
    return "\n".join(lines)


def write_site(tmp_path: Path, chargers: Sequence[str], locations: Sequence[Loc]) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(site_toml(chargers, locations), encoding="utf-8")
    return path


# --- chargers --------------------------------------------------------------------------------


def charger16(
    app: BridgeApp, charger_id: str, connectors: int = 2, response_timeout: float = 5
) -> ChargerSimulator16:
    return ChargerSimulator16(
        SimulatorConfig16(
            url=ocpp_url(app),
            charger_id=charger_id,
            password=PASSWORD,
            connectors=connectors,
            response_timeout=response_timeout,
        )
    )


def station201(app: BridgeApp, charger_id: str, response_timeout: float = 5) -> ChargerSimulator201:
    """One EVSE with two connectors."""
    return ChargerSimulator201(
        SimulatorConfig201(
            url=ocpp_url(app),
            charger_id=charger_id,
            password=PASSWORD,
            evses=(EvseSpec(1, ("cType2", "sType2"), 22000, 3),),
            response_timeout=response_timeout,
        )
    )


# Changes on a 1.6 charger: (connectorId, OCPP status, the EVSE's OCPI status afterwards, or
# None when that does not change).
Change = tuple[int, str, str | None]


async def report_all(sim: ChargerSimulator16, changes: Sequence[Change]) -> None:
    for connector_id, status, _ in changes:
        await sim.status(connector_id, status)


def expected_pushes(prefix: str, changes: Sequence[Change]) -> list[tuple[str, str]]:
    return [(f"{prefix}-{c}", ocpi) for c, _, ocpi in changes if ocpi is not None]


# --- what the eMSP received ------------------------------------------------------------------


def evse_path(location_id: str, evse_uid: str) -> str:
    return f"{LOCATIONS_PATH}{location_id}/{evse_uid}"


def ok(record: RecordedRequest) -> bool:
    """Answered OCPI 1000 in time, not by an injected fault (nor after an injected delay)."""
    return record.status_code == 1000 and record.fault is None


def location_requests(sim: EmspSimulator, location_id: str) -> list[RecordedRequest]:
    """Every Locations request about ``location_id`` (the Location, its EVSEs, connectors)."""
    prefix = f"{LOCATIONS_PATH}{location_id}".upper()
    return [
        r
        for r in sim.state.received
        if r.module == "locations"
        and (unquote(r.path).upper() == prefix or unquote(r.path).upper().startswith(prefix + "/"))
    ]


def patches_to(sim: EmspSimulator, location_id: str, evse_uid: str) -> list[RecordedRequest]:
    """The successful PATCHes of one EVSE, in arrival order."""
    path = evse_path(location_id, evse_uid).upper()
    return [
        r
        for r in sim.state.received
        if r.method == "PATCH" and unquote(r.path).upper() == path and ok(r)
    ]


def statuses(sim: EmspSimulator, location_id: str, evse_uid: str) -> list[str]:
    return [r.body["status"] for r in patches_to(sim, location_id, evse_uid)]


def pushes(sim: EmspSimulator, location_id: str) -> list[tuple[str, str]]:
    """(EVSE uid, status) of the successful PATCHes of a Location's EVSEs, in arrival order."""
    return [
        (unquote(r.path).rsplit("/", 1)[1], r.body["status"])
        for r in location_requests(sim, location_id)
        if r.method == "PATCH" and ok(r)
    ]


async def received_patches(
    sim: EmspSimulator, location_id: str, evse_uid: str, count: int, timeout: float = 5.0
) -> list[str]:
    """Wait until the EVSE got ``count`` successful PATCHes; the statuses it got."""
    try:
        await sim.state.wait_for(
            lambda: len(statuses(sim, location_id, evse_uid)) >= count, timeout
        )
    except TimeoutError:
        got = statuses(sim, location_id, evse_uid)
        raise AssertionError(f"{evse_uid}: wanted {count} PATCH(es), got {got}") from None
    return statuses(sim, location_id, evse_uid)


async def received_pushes(
    sim: EmspSimulator, location_id: str, count: int, timeout: float = 5.0
) -> list[tuple[str, str]]:
    """Wait until the Location's EVSEs got ``count`` successful PATCHes in all; those."""
    try:
        await sim.state.wait_for(lambda: len(pushes(sim, location_id)) >= count, timeout)
    except TimeoutError:
        got = pushes(sim, location_id)
        raise AssertionError(f"{location_id}: wanted {count} PATCH(es), got {got}") from None
    return pushes(sim, location_id)


async def failures_beyond(sim: EmspSimulator, count: int, timeout: float = 5.0) -> None:
    """Wait until more than ``count`` requests were answered by an injected fault."""
    await sim.state.wait_for(lambda: len(faulted(sim)) > count, timeout)


def faulted(sim: EmspSimulator) -> list[RecordedRequest]:
    return [r for r in sim.state.received if r.fault is not None]


def check_headers(sim: EmspSimulator, record: RecordedRequest, party: str = "EMS") -> None:
    peer = sim.state.peer
    assert peer is not None
    headers = record.headers
    scheme, _, value = headers["authorization"].partition(" ")
    assert scheme == "Token"
    assert base64.b64decode(value, validate=True).decode() == peer.token_we_accept
    assert (record.auth, record.token_encoding) == (AuthKind.PEER, "base64")
    assert headers["x-request-id"]
    assert headers["x-correlation-id"]
    assert (headers["ocpi-from-country-code"], headers["ocpi-from-party-id"]) == ("NL", "CPO")
    assert (headers["ocpi-to-country-code"], headers["ocpi-to-party-id"]) == ("DE", party)


# --- what the bridge has ---------------------------------------------------------------------


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T:
    """Poll a condition on the bridge side until it holds (``TimeoutError`` otherwise)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.02)


async def our_location(sim: EmspSimulator, location_id: str) -> dict[str, Any]:
    """The Location as our Sender interface shows it, GET by the eMSP."""
    reply = await sim.driver.call("locations", "GET", f"/{location_id}")
    assert reply.ok, reply.describe()
    data: dict[str, Any] = reply.data
    return data


def evse_of(location: dict[str, Any], uid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in location["evses"] if e["uid"] == uid)
    return found


async def stored_statuses(app: BridgeApp, location_id: str) -> dict[str, str]:
    """EVSE uid -> status in the bridge's own store (published or not)."""
    for stored in await app.sites.locations():
        if stored.location.id == location_id:
            return {e.uid: e.status.value for e in stored.location.evses or ()}
    raise LookupError(location_id)


async def settled(app: BridgeApp, location_id: str, wanted: dict[str, str]) -> None:
    """Wait until the bridge projected the charger's statuses (the outbox rows describing them
    are committed in the same transaction)."""

    async def probe() -> bool:
        return await stored_statuses(app, location_id) == wanted

    await until(probe)


# --- a running world -------------------------------------------------------------------------


@dataclass
class World:
    app: BridgeApp
    emsp: EmspSimulator
    tmp_path: Path
    stack: AsyncExitStack

    async def online(self, sim: Sim) -> Sim:
        """Connect and boot a charger simulator (disconnected when the world ends)."""
        await sim.connect()
        self.stack.push_async_callback(_disconnect, sim)
        await sim.boot()
        return sim


async def _disconnect(sim: SimulatorCore) -> None:
    if sim.connected:
        await sim.disconnect()


@asynccontextmanager
async def world(
    tmp_path: Path, chargers: Sequence[str], locations: Sequence[Loc], **settings: Any
) -> AsyncIterator[World]:
    """A bridge started with the site file, and the eMSP DE/EMS registered with it, holding
    every published Location (the bridge PUTs them when a partner registers)."""
    site = write_site(tmp_path, chargers, locations)
    async with AsyncExitStack() as stack:
        emsp = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="EMS")
        )
        app = await stack.enter_async_context(
            running_bridge(tmp_path, site_file=str(site), **CPO, **{**FAST, **settings})
        )
        await emsp_registers(app, emsp)
        for loc in locations:
            if loc.publish:
                await emsp.state.wait_for(partial(emsp.state.location, "NL", "CPO", loc.id))
        yield World(app=app, emsp=emsp, tmp_path=tmp_path, stack=stack)


# --- 1. the mapping table, the PATCH, its path, body and headers -----------------------------

# design.md section 5. Consecutive rows mapping to the same OCPI status are separated by
# Available, so that each OCPP status is seen producing its own PATCH.
TABLE_16 = [
    ("Available", "AVAILABLE"),
    ("Preparing", "CHARGING"),
    ("Available", "AVAILABLE"),
    ("Charging", "CHARGING"),
    ("Available", "AVAILABLE"),
    ("SuspendedEV", "CHARGING"),
    ("Available", "AVAILABLE"),
    ("SuspendedEVSE", "CHARGING"),
    ("Available", "AVAILABLE"),
    ("Finishing", "CHARGING"),
    ("Reserved", "RESERVED"),
    ("Unavailable", "INOPERATIVE"),
    ("Faulted", "OUTOFORDER"),
]
TABLE_201 = [
    ("Available", "AVAILABLE"),
    ("Occupied", "CHARGING"),
    ("Reserved", "RESERVED"),
    ("Unavailable", "INOPERATIVE"),
    ("Faulted", "OUTOFORDER"),
    ("Available", "AVAILABLE"),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_each_ocpp_status_is_patched_to_the_emsp_as_its_ocpi_status(
    tmp_path: Path, version: str
) -> None:
    async with world(tmp_path, ["CP16", "CS201"], [LOC16, LOC201]) as w:
        report: Callable[[str], Awaitable[object]]
        if version == "1.6":
            sim16 = await w.online(charger16(w.app, "CP16"))
            location_id, uid, table = "LOC-16", "CP16-2", TABLE_16
            report = lambda status: sim16.status(2, status)  # noqa: E731
        else:
            sim201 = await w.online(station201(w.app, "CS201"))
            location_id, uid, table = "LOC-201", "CS201-1", TABLE_201
            report = lambda status: sim201.status(1, 1, status)  # noqa: E731

        for step, (ocpp_status, ocpi_status) in enumerate(table, start=1):
            await report(ocpp_status)
            got = await received_patches(w.emsp, location_id, uid, step)
            assert got[-1] == ocpi_status, f"OCPP {version} {ocpp_status}"
            record = patches_to(w.emsp, location_id, uid)[-1]
            assert unquote(record.path) == evse_path(location_id, uid)
            assert set(record.body) == {"status", "last_updated"}
            assert RFC3339_Z.match(record.body["last_updated"]), record.body
            check_headers(w.emsp, record)
            ours = await our_location(w.emsp, location_id)
            assert evse_of(ours, uid)["status"] == ocpi_status
            assert evse_of(ours, uid)["last_updated"] == record.body["last_updated"]
            assert ours["last_updated"] == record.body["last_updated"]
            mirrored = w.emsp.state.location("NL", "CPO", location_id)
            assert mirrored is not None
            assert [e.status.value for e in mirrored.evses or () if e.uid == uid] == [ocpi_status]

        stamps = [r.body["last_updated"] for r in patches_to(w.emsp, location_id, uid)]
        assert stamps == sorted(stamps)
        assert len({r.headers["x-request-id"] for r in patches_to(w.emsp, location_id, uid)}) == (
            len(table)
        )
        # Only this EVSE was pushed.
        assert {u for u, _ in pushes(w.emsp, "LOC-16") + pushes(w.emsp, "LOC-201")} == {uid}


# --- 2. 1.6 connectorId 0, 2.0.1 aggregation -------------------------------------------------


async def test_16_connector_0_unavailable_or_faulted_overrides_every_evse_until_available(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        sim = await w.online(charger16(w.app, "CP16"))
        await sim.status(1, "Available")
        await sim.status(2, "Charging")
        await received_pushes(w.emsp, "LOC-16", 2)

        await sim.status(0, "Unavailable")
        await received_pushes(w.emsp, "LOC-16", 4)
        assert pushes(w.emsp, "LOC-16")[2:] == [
            ("CP16-1", "INOPERATIVE"),
            ("CP16-2", "INOPERATIVE"),
        ]
        ours = await our_location(w.emsp, "LOC-16")
        assert [e["status"] for e in ours["evses"]] == ["INOPERATIVE", "INOPERATIVE"]

        await sim.status(0, "Faulted")
        await received_pushes(w.emsp, "LOC-16", 6)
        # A connector changing while the whole charger is down changes nothing yet...
        await sim.status(1, "Preparing")
        # ... and shows once connectorId 0 is Available again, with the other connector's.
        await sim.status(0, "Available")
        got = await received_pushes(w.emsp, "LOC-16", 8)
        assert got == [
            ("CP16-1", "AVAILABLE"),
            ("CP16-2", "CHARGING"),
            ("CP16-1", "INOPERATIVE"),
            ("CP16-2", "INOPERATIVE"),
            ("CP16-1", "OUTOFORDER"),
            ("CP16-2", "OUTOFORDER"),
            ("CP16-1", "CHARGING"),
            ("CP16-2", "CHARGING"),
        ]
        ours = await our_location(w.emsp, "LOC-16")
        assert [e["status"] for e in ours["evses"]] == ["CHARGING", "CHARGING"]


# (connector id, 2.0.1 status, the EVSE's OCPI status afterwards or None when unchanged)
AGGREGATION = [
    (1, "Available", "AVAILABLE"),
    (2, "Available", None),
    (1, "Occupied", "CHARGING"),
    (2, "Reserved", None),  # Occupied > Reserved
    (1, "Available", "RESERVED"),  # Reserved > Available
    (2, "Unavailable", "AVAILABLE"),  # Available > Unavailable
    (1, "Faulted", "INOPERATIVE"),  # Unavailable > Faulted
    (2, "Faulted", "OUTOFORDER"),
    (2, "Occupied", "CHARGING"),
]


async def test_201_evse_status_aggregates_its_connectors(tmp_path: Path) -> None:
    async with world(tmp_path, ["CS201"], [LOC201]) as w:
        sim = await w.online(station201(w.app, "CS201"))
        expected: list[str] = []
        for connector_id, status, ocpi in AGGREGATION:
            await sim.status(1, connector_id, status)
            if ocpi is not None:
                expected.append(ocpi)
                got = await received_patches(w.emsp, "LOC-201", "CS201-1", len(expected))
                assert got[-1] == ocpi, f"connector {connector_id} {status}"
        # The unchanged steps pushed nothing: every PATCH is accounted for.
        assert statuses(w.emsp, "LOC-201", "CS201-1") == expected


# --- 3. same OCPI status: nothing pushed ---------------------------------------------------------


async def test_a_status_mapping_to_the_same_ocpi_status_pushes_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        sim = await w.online(charger16(w.app, "CP16"))
        await sim.status(1, "Preparing")
        (first,) = await received_patches(w.emsp, "LOC-16", "CP16-1", 1)
        assert first == "CHARGING"
        stamp = patches_to(w.emsp, "LOC-16", "CP16-1")[0].body["last_updated"]

        for status in ("Charging", "SuspendedEV", "SuspendedEVSE", "Charging", "Finishing"):
            await sim.status(1, status)
        await sim.status(1, "Finishing", "HighTemperature")  # a new error code, same status
        # A change on the other EVSE of the same Location comes after all of those.
        await sim.status(2, "Reserved")
        await received_patches(w.emsp, "LOC-16", "CP16-2", 1)

        assert pushes(w.emsp, "LOC-16") == [("CP16-1", "CHARGING"), ("CP16-2", "RESERVED")]
        ours = await our_location(w.emsp, "LOC-16")
        assert evse_of(ours, "CP16-1")["status"] == "CHARGING"
        assert evse_of(ours, "CP16-1")["last_updated"] == stamp
        (reserved,) = patches_to(w.emsp, "LOC-16", "CP16-2")
        assert ours["last_updated"] == reserved.body["last_updated"]
        mirrored = w.emsp.state.location("NL", "CPO", "LOC-16")
        assert mirrored is not None
        assert mirrored.evses is not None
        assert mirrored.evses[0].status.value == "CHARGING"


# --- 4. unpublished Locations ------------------------------------------------------------------


async def test_an_unpublished_location_is_tracked_but_not_pushed_until_published(
    tmp_path: Path,
) -> None:
    hidden = Loc(LOC16.id, LOC16.evses, publish=False)
    async with world(tmp_path, ["CP16"], [hidden]) as w:
        sim = await w.online(charger16(w.app, "CP16"))
        await sim.status(1, "Charging")
        await sim.status(2, "Faulted")
        await settled(w.app, "LOC-16", {"CP16-1": "CHARGING", "CP16-2": "OUTOFORDER"})

        assert await w.app.outbox_service.list_entries() == []
        assert location_requests(w.emsp, "LOC-16") == []
        reply = await w.emsp.driver.call("locations", "GET", "/LOC-16")
        assert (reply.http_status, reply.status_code) == (404, 2003)

        # Published by a reload of the site file: one PUT carrying the current statuses.
        write_site(w.tmp_path, ["CP16"], [LOC16])
        await w.app.sites.reload()
        await w.emsp.state.wait_for(lambda: w.emsp.state.location("NL", "CPO", "LOC-16"))
        (put,) = location_requests(w.emsp, "LOC-16")
        assert (put.method, unquote(put.path), put.status_code) == (
            "PUT",
            LOCATIONS_PATH + "LOC-16",
            1000,
        )
        assert put.body["publish"] is True
        assert {e["uid"]: e["status"] for e in put.body["evses"]} == {
            "CP16-1": "CHARGING",
            "CP16-2": "OUTOFORDER",
        }
        ours = await our_location(w.emsp, "LOC-16")
        assert [e["status"] for e in ours["evses"]] == ["CHARGING", "OUTOFORDER"]

        # Live from now on.
        await sim.status(1, "Available")
        assert await received_patches(w.emsp, "LOC-16", "CP16-1", 1) == ["AVAILABLE"]

        # Unpublished again: one last PUT (publish false), then nothing until it is published
        # again, when the PUT carries what changed meanwhile.
        write_site(w.tmp_path, ["CP16"], [hidden])
        await w.app.sites.reload()
        await sim.status(2, "Available")
        await settled(w.app, "LOC-16", {"CP16-1": "AVAILABLE", "CP16-2": "AVAILABLE"})
        write_site(w.tmp_path, ["CP16"], [LOC16])
        await w.app.sites.reload()
        await w.emsp.state.wait_for(lambda: len(location_requests(w.emsp, "LOC-16")) >= 4)

        sent = location_requests(w.emsp, "LOC-16")
        assert [(r.method, r.body.get("publish")) for r in sent] == [
            ("PUT", True),
            ("PATCH", None),
            ("PUT", False),
            ("PUT", True),
        ]
        assert all(ok(r) for r in sent)
        assert {e["uid"]: e["status"] for e in sent[-1].body["evses"]} == {
            "CP16-1": "AVAILABLE",
            "CP16-2": "AVAILABLE",
        }


# --- 5. liveness -------------------------------------------------------------------------------

LIVE = Loc("LOC-LIVE", (Evse("AWAY-1", "AWAY", 1), Evse("BLIP-1", "BLIP", 1)))


async def test_a_charger_offline_beyond_the_liveness_timeout_shows_unknown_until_it_returns(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, ["AWAY", "BLIP"], [LIVE], liveness_timeout=1.0) as w:
        away = await w.online(charger16(w.app, "AWAY", connectors=1))
        blip = await w.online(charger16(w.app, "BLIP", connectors=1))
        await away.status(1, "Charging")
        await blip.status(1, "Available")
        await received_pushes(w.emsp, "LOC-LIVE", 2)

        # BLIP drops its connection and is back at once; then AWAY goes away for good.
        await blip.disconnect()
        await blip.connect()
        await away.disconnect()
        got = await received_patches(w.emsp, "LOC-LIVE", "AWAY-1", 2)
        assert got == ["CHARGING", "UNKNOWN"]
        unknown = patches_to(w.emsp, "LOC-LIVE", "AWAY-1")[1]
        ours = await our_location(w.emsp, "LOC-LIVE")
        assert evse_of(ours, "AWAY-1")["status"] == "UNKNOWN"
        assert evse_of(ours, "AWAY-1")["last_updated"] == unknown.body["last_updated"]
        # BLIP was disconnected for far less than the timeout, before AWAY: an UNKNOWN for it
        # would have been queued on this Location before AWAY's, and delivered first.
        assert statuses(w.emsp, "LOC-LIVE", "BLIP-1") == ["AVAILABLE"]

        # AWAY comes back: the mere connection restores its last real status...
        await away.connect()
        got = await received_patches(w.emsp, "LOC-LIVE", "AWAY-1", 3)
        assert got == ["CHARGING", "UNKNOWN", "CHARGING"]
        back = patches_to(w.emsp, "LOC-LIVE", "AWAY-1")[2]
        assert back.body["last_updated"] > unknown.body["last_updated"]
        # ... and its boot and status report, unchanged, push nothing more.
        await away.boot()
        await away.status(1, "Charging")
        await blip.status(1, "Reserved")
        await received_patches(w.emsp, "LOC-LIVE", "BLIP-1", 2)
        assert pushes(w.emsp, "LOC-LIVE") == [
            ("AWAY-1", "CHARGING"),
            ("BLIP-1", "AVAILABLE"),
            ("AWAY-1", "UNKNOWN"),
            ("AWAY-1", "CHARGING"),
            ("BLIP-1", "RESERVED"),
        ]


# --- 6. outages: every change arrives, in order, once ------------------------------------------

BEFORE: list[Change] = [(1, "Available", "AVAILABLE"), (2, "Available", "AVAILABLE")]
DURING: list[Change] = [
    (1, "Preparing", "CHARGING"),
    (2, "Reserved", "RESERVED"),
    (1, "Charging", None),
    (1, "Finishing", None),
    (2, "Available", "AVAILABLE"),
    (1, "Available", "AVAILABLE"),
    (2, "Faulted", "OUTOFORDER"),
    (1, "Unavailable", "INOPERATIVE"),
]
AFTER_DURING = {"CP16-1": "INOPERATIVE", "CP16-2": "OUTOFORDER"}
SENTINEL: list[Change] = [(1, "Charging", "CHARGING")]  # sent once the eMSP has recovered
EXPECTED = expected_pushes("CP16", BEFORE + DURING + SENTINEL)


async def changes_during_outage(w: World, inject: Callable[[], object]) -> ChargerSimulator16:
    """Statuses before the outage (delivered), the outage (``inject``), several changes during
    it, until the eMSP has failed at least two more attempts; the eMSP is still failing."""
    sim = await w.online(charger16(w.app, "CP16"))
    await report_all(sim, BEFORE)
    await received_pushes(w.emsp, "LOC-16", 2)
    inject()
    await report_all(sim, DURING)
    await settled(w.app, "LOC-16", AFTER_DURING)
    await failures_beyond(w.emsp, len(faulted(w.emsp)) + 1)
    return sim


def assert_increasing_stamps(records: Sequence[RecordedRequest]) -> None:
    for uid in {unquote(r.path).rsplit("/", 1)[1] for r in records}:
        stamps = [r.body["last_updated"] for r in records if unquote(r.path).endswith("/" + uid)]
        assert stamps == sorted(stamps), uid


async def test_status_changes_during_an_emsp_outage_arrive_in_order_once(tmp_path: Path) -> None:
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        sim = await changes_during_outage(
            w, lambda: w.emsp.state.faults.http_error("locations", "*", status=500)
        )
        w.emsp.state.faults.clear()
        await report_all(sim, SENTINEL)
        # Every change once, in the order it happened (both EVSEs share the Location's queue);
        # a duplicate would fill the count before the sentinel and fail the comparison.
        assert await received_pushes(w.emsp, "LOC-16", len(EXPECTED)) == EXPECTED
        assert all(r.headers["authorization"].startswith("Token ") for r in faulted(w.emsp))
        patches = [r for r in location_requests(w.emsp, "LOC-16") if r.method == "PATCH"]
        # Only the oldest pending change was retried while the eMSP failed.
        first_during = patches_to(w.emsp, "LOC-16", "CP16-1")[1].body
        assert {str(r.body) for r in faulted(w.emsp)} == {str(first_during)}
        assert_increasing_stamps([r for r in patches if ok(r)])
        ours = await our_location(w.emsp, "LOC-16")
        mirrored = w.emsp.state.location("NL", "CPO", "LOC-16")
        assert mirrored is not None
        assert mirrored.evses is not None
        assert [e.status.value for e in mirrored.evses] == [e["status"] for e in ours["evses"]]
        assert [e["status"] for e in ours["evses"]] == ["CHARGING", "OUTOFORDER"]


async def test_status_changes_during_emsp_timeouts_arrive_in_order(tmp_path: Path) -> None:
    """The eMSP answers too late (after the bridge's ``ocpi_timeout``) but still processes the
    request. Delivery is at-least-once: the bridge cannot tell a request the eMSP never saw from
    one it processed after the bridge gave up, so it sends it again, and the eMSP may apply the
    same PATCH more than once. What the bridge guarantees, and what is asserted:

    - every change is acknowledged in time exactly once, in order (the PATCHes answered without
      an injected delay are exactly the expected sequence);
    - a change is only ever repeated before the next one is sent (all PATCHes the eMSP
      received, in arrival order, are the expected sequence once consecutive repeats are
      collapsed): an older status is never sent after a newer one;
    - ``last_updated`` never decreases along that sequence, and the newest one is our current
      state. A receiver that keeps the newest ``last_updated`` ends up right, even though a late
      repeat (processed after the newer PATCH, as the simulator does blindly) may briefly put
      an older status back.
    """
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        sim = await changes_during_outage(
            w, lambda: w.emsp.state.faults.delay("locations", "*", seconds=1.0)
        )
        w.emsp.state.faults.clear()
        await report_all(sim, SENTINEL)
        assert await received_pushes(w.emsp, "LOC-16", len(EXPECTED)) == EXPECTED
        # Let the requests the bridge gave up on finish being processed by the eMSP.
        await w.emsp.state.wait_for(
            lambda: all(r.http_status is not None for r in w.emsp.state.received), 3
        )

        processed = [
            r
            for r in location_requests(w.emsp, "LOC-16")
            if r.method == "PATCH" and r.status_code == 1000
        ]
        assert any(r.fault is not None for r in processed)  # some were applied twice
        sequence: list[tuple[str, str, str]] = []
        for r in processed:
            item = (unquote(r.path).rsplit("/", 1)[1], r.body["status"], r.body["last_updated"])
            if not sequence or sequence[-1] != item:
                sequence.append(item)
        assert [(uid, status) for uid, status, _ in sequence] == EXPECTED
        assert_increasing_stamps(processed)
        ours = await our_location(w.emsp, "LOC-16")
        for uid in ("CP16-1", "CP16-2"):
            newest = max((s for s in sequence if s[0] == uid), key=lambda s: s[2])
            assert (newest[1], newest[2]) == (
                evse_of(ours, uid)["status"],
                evse_of(ours, uid)["last_updated"],
            )


async def test_status_changes_queued_before_a_bridge_restart_arrive_in_order_once(
    tmp_path: Path,
) -> None:
    site = write_site(tmp_path, ["CP16"], [LOC16])
    settings: dict[str, Any] = {"site_file": str(site), **CPO, **FAST}
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp:
        async with running_bridge(tmp_path, **settings) as app:
            await emsp_registers(app, emsp)
            await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "LOC-16"))
            async with AsyncExitStack() as stack:
                w = World(app=app, emsp=emsp, tmp_path=tmp_path, stack=stack)
                await changes_during_outage(
                    w, lambda: emsp.state.faults.http_error("locations", "*", status=500)
                )
        # The bridge stopped while the eMSP was failing; a new one runs on the same database.
        assert pushes(emsp, "LOC-16") == EXPECTED[:2]
        async with running_bridge(tmp_path, **settings) as app:
            emsp.state.faults.clear()
            async with AsyncExitStack() as stack:
                w = World(app=app, emsp=emsp, tmp_path=tmp_path, stack=stack)
                sim = await w.online(charger16(app, "CP16"))
                await report_all(sim, SENTINEL)
                assert await received_pushes(emsp, "LOC-16", len(EXPECTED)) == EXPECTED
        patches = [r for r in location_requests(emsp, "LOC-16") if r.method == "PATCH"]
        assert_increasing_stamps([r for r in patches if ok(r)])
        # Nothing but the PATCHes: no re-sync PUT of the Location after the restart.
        assert [r.method for r in location_requests(emsp, "LOC-16")].count("PUT") == 1


async def test_status_changes_while_the_emsp_is_down_survive_a_bridge_restart(
    tmp_path: Path,
) -> None:
    """The eMSP stops listening (connection refused), statuses change, the bridge restarts,
    the eMSP comes back: every change arrives, in order, once."""
    site = write_site(tmp_path, ["CP16"], [LOC16])
    settings: dict[str, Any] = {"site_file": str(site), **CPO, **FAST}
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp:
        async with running_bridge(tmp_path, **settings) as app:
            await emsp_registers(app, emsp)
            await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "LOC-16"))
            async with AsyncExitStack() as stack:
                w = World(app=app, emsp=emsp, tmp_path=tmp_path, stack=stack)
                sim = await w.online(charger16(app, "CP16"))
                await report_all(sim, BEFORE)
                await received_pushes(emsp, "LOC-16", 2)
                await emsp.go_down()
                await report_all(sim, DURING)
                await settled(app, "LOC-16", AFTER_DURING)

                async def retried() -> bool:
                    entries = await app.outbox.list_entries()
                    return bool(entries) and entries[0].attempts >= 2

                await until(retried)
        await emsp.come_back()
        async with running_bridge(tmp_path, **settings) as app, AsyncExitStack() as stack:
            w = World(app=app, emsp=emsp, tmp_path=tmp_path, stack=stack)
            sim = await w.online(charger16(app, "CP16"))
            await report_all(sim, SENTINEL)
            assert await received_pushes(emsp, "LOC-16", len(EXPECTED)) == EXPECTED
        patches = [r for r in location_requests(emsp, "LOC-16") if r.method == "PATCH"]
        assert all(ok(r) for r in patches)  # nothing reached the eMSP while it was down
        assert_increasing_stamps(patches)


async def test_a_patch_the_emsp_rejects_is_replaced_by_a_put_of_the_whole_location(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        sim = await w.online(charger16(w.app, "CP16"))
        await sim.status(1, "Available")
        await received_patches(w.emsp, "LOC-16", "CP16-1", 1)
        w.emsp.state.locations.clear()  # the eMSP lost its copy: it refuses PATCHes (2001)

        await sim.status(2, "Charging")
        await w.emsp.state.wait_for(lambda: w.emsp.state.location("NL", "CPO", "LOC-16"))
        *_, rejected, put = location_requests(w.emsp, "LOC-16")
        assert (rejected.method, rejected.status_code) == ("PATCH", 2001)
        assert rejected.body["status"] == "CHARGING"
        assert (put.method, unquote(put.path), put.status_code) == (
            "PUT",
            LOCATIONS_PATH + "LOC-16",
            1000,
        )
        assert {e["uid"]: e["status"] for e in put.body["evses"]} == {
            "CP16-1": "AVAILABLE",
            "CP16-2": "CHARGING",
        }
        ours = await our_location(w.emsp, "LOC-16")
        assert put.body["last_updated"] == ours["last_updated"]
        # PATCHes work again.
        await sim.status(2, "Finishing")  # same OCPI status: nothing
        await sim.status(1, "Reserved")
        assert await received_patches(w.emsp, "LOC-16", "CP16-1", 2) == ["AVAILABLE", "RESERVED"]
        assert statuses(w.emsp, "LOC-16", "CP16-2") == []


# --- 7. two eMSPs --------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["http-500", "timeout"])
async def test_two_emsps_receive_every_patch_and_a_failing_one_delays_not_the_other(
    tmp_path: Path, fault: str
) -> None:
    async with world(tmp_path, ["CP16"], [LOC16]) as w:
        second = await w.stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="TWO")
        )
        _, token_a = await token_a_for(w.app, party="TWO")
        assert (await second.driver.register(versions_url(w.app), token_a)).ok
        await second.state.wait_for(lambda: second.state.location("NL", "CPO", "LOC-16"))
        if fault == "http-500":
            second.state.faults.http_error("locations", "*", status=500)
        else:
            second.state.faults.delay("locations", "*", seconds=1.0)

        sim = await w.online(charger16(w.app, "CP16"))
        changes: list[Change] = [
            (1, "Charging", "CHARGING"),
            (2, "Reserved", "RESERVED"),
            (1, "Finishing", None),
            (1, "Available", "AVAILABLE"),
            (2, "Unavailable", "INOPERATIVE"),
        ]
        await report_all(sim, changes)
        expected = expected_pushes("CP16", changes)
        # The first eMSP gets everything while the second one still fails its first PATCH.
        assert await received_pushes(w.emsp, "LOC-16", len(expected)) == expected
        assert pushes(second, "LOC-16") == []
        assert faulted(second)

        second.state.faults.clear()
        assert await received_pushes(second, "LOC-16", len(expected)) == expected
        for record in (r for r in location_requests(second, "LOC-16") if ok(r)):
            check_headers(second, record, party="TWO")
        for record in (r for r in location_requests(w.emsp, "LOC-16") if ok(r)):
            check_headers(w.emsp, record, party="EMS")
        await second.state.wait_for(
            lambda: all(r.http_status is not None for r in second.state.received), 3
        )


# --- regressions -------------------------------------------------------------------------------


async def test_an_evse_uid_with_url_special_characters_is_patched_at_its_own_url(
    tmp_path: Path,
) -> None:
    # CiString(36) ids are any printable ASCII: '#', '?', '%' and ' ' are valid in an EVSE uid;
    # unencoded, 'CP16#2' was PATCHed to .../LOC-ENC/CP16 (the '#' starts a URL fragment).
    loc = Loc("LOC-ENC", (Evse("CP16", "CP16", 1), Evse("CP16#2", "CP16", 2)))
    async with world(tmp_path, ["CP16"], [loc]) as w:
        sim = await w.online(charger16(w.app, "CP16"))
        await sim.status(2, "Charging")
        await sim.status(1, "Available")
        got = await received_pushes(w.emsp, "LOC-ENC", 2)
        assert got == [("CP16#2", "CHARGING"), ("CP16", "AVAILABLE")]
        mirrored = w.emsp.state.location("NL", "CPO", "LOC-ENC")
        assert mirrored is not None
        assert mirrored.evses is not None
        assert {e.uid: e.status.value for e in mirrored.evses} == {
            "CP16": "AVAILABLE",
            "CP16#2": "CHARGING",
        }
