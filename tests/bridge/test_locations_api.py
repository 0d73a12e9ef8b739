"""The Locations module's Sender interface (reference 1.6, 1.7, 3.1) over real HTTP on
127.0.0.1: a running bridge with a site applied, and the eMSP simulator registered with it
calling with its own token and routing headers. Objects, errors, authentication, pages of 250
Locations with their headers and filters, and the ``last_updated`` rules seen from outside."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bridge.locations import ApplyReport
from bridge.main import BridgeApp
from bridge.ocpi.wire import parse_datetime
from bridge.site import Site, parse_site
from bridge.store.tables import LocationRow
from csms.clock import utc_now
from simulators.emsp.client import OcpiResult
from simulators.emsp.driver import PullResult
from simulators.emsp.server import EmspSimulator
from simulators.emsp.wire import InterfaceRole
from tests.bridge.conftest import ADMIN_TOKEN, pending_partner, token_header
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_ocpi_registration import emsp_registers

CPO = {"country_code": "NL", "party_id": "CPO"}
FAST_OUTBOX = {"outbox_poll_interval": 0.05, "outbox_backoff_base": 0.01}
PAGE_SIZE = 100
OCPI_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LINK_NEXT = re.compile(r'^<([^>]+)>; rel="next"$')

# Field order of a Location in the OCPI 2.2.1 specification (reference 3.1).
SPEC_LOCATION_ORDER = [
    "country_code",
    "party_id",
    "id",
    "publish",
    "publish_allowed_to",
    "name",
    "address",
    "city",
    "postal_code",
    "state",
    "country",
    "coordinates",
    "related_locations",
    "parking_type",
    "evses",
    "directions",
    "operator",
    "suboperator",
    "owner",
    "facilities",
    "time_zone",
    "opening_times",
    "charging_when_closed",
    "images",
    "energy_mix",
    "last_updated",
]

T2_SOCKET = {
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 16,
}


# --- site input (the shape of ``[[locations]]`` tables) ------------------------------------


def evse_entry(
    uid: str,
    charger: str | None,
    ocpp_evse_id: int | None,
    *,
    connectors: Sequence[dict[str, Any]] = ({"id": "1"},),
    **fields: Any,
) -> dict[str, Any]:
    """One ``[[locations.evses]]`` table with the Type 2 socket template."""
    entry: dict[str, Any] = {"uid": uid}
    if charger is not None:
        entry["charger"] = charger
    if ocpp_evse_id is not None:
        entry["ocpp_evse_id"] = ocpp_evse_id
    entry.update(fields)
    entry["connector"] = dict(T2_SOCKET)
    entry["connectors"] = [dict(c) for c in connectors]
    return entry


def location_entry(location_id: str, *evses: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """One ``[[locations]]`` table in Amsterdam."""
    return {
        "id": location_id,
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.37890", "longitude": "4.90030"},
        "time_zone": "Europe/Amsterdam",
        **fields,
        "evses": list(evses),
    }


def site_of(
    locations: Sequence[dict[str, Any]], chargers: Sequence[str] = ("CP-1", "CP-2")
) -> Site:
    data = {
        "chargers": [{"id": charger, "allow_no_auth": True} for charger in chargers],
        "locations": copy.deepcopy(list(locations)),
    }
    if '"AC-1"' in json.dumps(locations):
        # The tariff RICH's connector names (a connector may only name a known tariff).
        data["tariffs"] = [
            {
                "id": "AC-1",
                "currency": "EUR",
                "elements": [
                    {"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}
                ],
            }
        ]
    return parse_site(data, "site.toml")


# --- OCPI calls as the eMSP ---------------------------------------------------------------


async def ocpi_get(sim: EmspSimulator, path: str = "", **params: str) -> OcpiResult:
    """GET on our Locations SENDER endpoint with the eMSP's token and routing headers."""
    return await sim.driver.call(
        "locations", "GET", path, role=InterfaceRole.SENDER, params=params or None
    )


async def pull_all(sim: EmspSimulator, **options: Any) -> PullResult:
    pulled = await sim.driver.pull("locations", **options)
    assert pulled.ok, pulled.message
    assert pulled.problems == []
    assert pulled.invalid == []
    return pulled


def by_id(objects: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {obj["id"]: obj for obj in objects}
    assert len(found) == len(objects), "an object came twice"
    return found


def stamps(location: dict[str, Any]) -> list[str]:
    """Every ``last_updated`` of a Location document: its own, its EVSEs', its connectors'."""
    found = [location["last_updated"]]
    for evse in location.get("evses", []):
        found.append(evse["last_updated"])
        found += [connector["last_updated"] for connector in evse["connectors"]]
    return found


def link_of(page: OcpiResult) -> tuple[str, dict[str, list[str]]] | None:
    """Path and query of a page's ``Link: <...>; rel="next"``, or None."""
    link = page.header("Link")
    if link is None:
        return None
    match = LINK_NEXT.match(link)
    assert match is not None, link
    url = urlsplit(match.group(1))
    return f"{url.scheme}://{url.netloc}{url.path}", parse_qs(url.query)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(
        tmp_path, admin_token=ADMIN_TOKEN, ocpi_page_size=PAGE_SIZE, **CPO, **FAST_OUTBOX
    ) as app:
        yield app


@pytest.fixture
async def emsp(cpo: BridgeApp) -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        await emsp_registers(cpo, sim)
        yield sim


RICH = location_entry(
    "LOC-Rich",
    evse_entry(
        "CP-1-1",
        "CP-1",
        1,
        evse_id="NL*CPO*E0001*1",
        physical_reference="1",
        floor_level="-1",
        capabilities=["REMOTE_START_STOP_CAPABLE", "RFID_READER"],
        parking_restrictions=["EV_ONLY"],
        connectors=[
            {"id": "1"},
            {"id": "2", "format": "CABLE", "max_electric_power": 11000, "tariff_ids": ["AC-1"]},
        ],
    ),
    evse_entry("CP-1-2", "CP-1", 2),
    evse_entry("Planned-1", None, None, status="PLANNED"),
    name="Example car park",
    postal_code="1012 AB",
    parking_type="PARKING_GARAGE",
    facilities=["CAFE", "TRAIN_STATION"],
    opening_times={"twentyfourseven": True},
    directions=[{"language": "en", "text": "Level -1, follow the green signs"}],
    owner={"name": "Car Park Owner BV"},
    charging_when_closed=False,
    energy_mix={
        "is_green_energy": True,
        "energy_sources": [
            {"source": "SOLAR", "percentage": 60},
            {"source": "WIND", "percentage": 40},
        ],
    },
)
PLAIN = location_entry("LOC-PLAIN", evse_entry("CP-2-1", "CP-2", 1))
HIDDEN = location_entry("LOC-HIDDEN", evse_entry("HID-1", "CP-2", 2), publish=False)


def expected_rich(stamp: str) -> dict[str, Any]:
    """The OCPI Location the site's ``RICH`` entry describes, every ``last_updated`` ``stamp``:
    country/party from the settings, the CPO as operator, UNKNOWN while no charger reported,
    default capabilities for an EVSE without any, connector fields from the template."""
    connector = {**T2_SOCKET, "last_updated": stamp}
    default_capabilities = ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"]
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "LOC-Rich",
        "publish": True,
        "name": "Example car park",
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "postal_code": "1012 AB",
        "country": "NLD",
        "coordinates": {"latitude": "52.37890", "longitude": "4.90030"},
        "parking_type": "PARKING_GARAGE",
        "evses": [
            {
                "uid": "CP-1-1",
                "evse_id": "NL*CPO*E0001*1",
                "status": "UNKNOWN",
                "capabilities": ["REMOTE_START_STOP_CAPABLE", "RFID_READER"],
                "connectors": [
                    {"id": "1", **connector},
                    {
                        "id": "2",
                        **connector,
                        "format": "CABLE",
                        "max_electric_power": 11000,
                        "tariff_ids": ["AC-1"],
                    },
                ],
                "floor_level": "-1",
                "physical_reference": "1",
                "parking_restrictions": ["EV_ONLY"],
                "last_updated": stamp,
            },
            {
                "uid": "CP-1-2",
                "status": "UNKNOWN",
                "capabilities": default_capabilities,
                "connectors": [{"id": "1", **connector}],
                "last_updated": stamp,
            },
            {
                "uid": "Planned-1",
                "status": "PLANNED",
                "capabilities": default_capabilities,
                "connectors": [{"id": "1", **connector}],
                "last_updated": stamp,
            },
        ],
        "directions": [{"language": "en", "text": "Level -1, follow the green signs"}],
        "operator": {"name": "ocpi-bridge CPO"},
        "owner": {"name": "Car Park Owner BV"},
        "facilities": ["CAFE", "TRAIN_STATION"],
        "time_zone": "Europe/Amsterdam",
        "opening_times": {"twentyfourseven": True},
        "charging_when_closed": False,
        "energy_mix": {
            "is_green_energy": True,
            "energy_sources": [
                {"source": "SOLAR", "percentage": 60},
                {"source": "WIND", "percentage": 40},
            ],
        },
        "last_updated": stamp,
    }


def expected_plain(stamp: str) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "LOC-PLAIN",
        "publish": True,
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.37890", "longitude": "4.90030"},
        "evses": [
            {
                "uid": "CP-2-1",
                "status": "UNKNOWN",
                "capabilities": ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"],
                "connectors": [{"id": "1", **T2_SOCKET, "last_updated": stamp}],
                "last_updated": stamp,
            }
        ],
        "operator": {"name": "ocpi-bridge CPO"},
        "time_zone": "Europe/Amsterdam",
        "last_updated": stamp,
    }


@pytest.fixture
async def site(cpo: BridgeApp, emsp: EmspSimulator) -> tuple[datetime, datetime]:
    """RICH, PLAIN (published) and HIDDEN (not) applied; the time window of the apply."""
    before = utc_now()
    report = await cpo.apply_site(site_of([RICH, PLAIN, HIDDEN]))
    after = utc_now()
    assert sorted(report.created) == ["LOC-HIDDEN", "LOC-PLAIN", "LOC-Rich"]
    return before, after


# --- objects -------------------------------------------------------------------------------


async def test_list_returns_the_published_locations_as_the_ocpi_json_the_site_describes(
    cpo: BridgeApp, emsp: EmspSimulator, site: tuple[datetime, datetime]
) -> None:
    answer = await ocpi_get(emsp)

    assert answer.http_status == 200
    assert answer.status_code == 1000
    found = by_id(answer.data)
    assert sorted(found) == ["LOC-PLAIN", "LOC-Rich"]  # LOC-HIDDEN is not published
    stamp = found["LOC-Rich"]["last_updated"]
    assert found["LOC-Rich"] == expected_rich(stamp)
    assert found["LOC-PLAIN"] == expected_plain(found["LOC-PLAIN"]["last_updated"])
    assert list(found["LOC-Rich"]) == [k for k in SPEC_LOCATION_ORDER if k in found["LOC-Rich"]]
    # DateTime as ...Z with milliseconds, inside the time the apply took.
    before, after = site
    for location in found.values():
        for value in stamps(location):
            assert OCPI_DATETIME.match(value), value
            assert before - timedelta(milliseconds=1) <= parse_datetime(value) <= after
    # The list serves the documents as stored.
    rows = {row.key: json.loads(row.document) for row in await all_rows(cpo, LocationRow)}
    assert set(rows) == {"LOC-RICH", "LOC-PLAIN", "LOC-HIDDEN"}
    assert found["LOC-Rich"] == rows["LOC-RICH"]
    assert found["LOC-PLAIN"] == rows["LOC-PLAIN"]
    assert rows["LOC-HIDDEN"]["publish"] is False
    # Answered to the eMSP's party, from ours.
    assert answer.header("OCPI-from-country-code") == "NL"
    assert answer.header("OCPI-from-party-id") == "CPO"
    assert answer.header("OCPI-to-country-code") == "DE"
    assert answer.header("OCPI-to-party-id") == "EMS"
    assert answer.header("X-Total-Count") == "2"


async def test_one_location_evse_and_connector_by_case_insensitive_ids(
    emsp: EmspSimulator, site: tuple[datetime, datetime]
) -> None:
    listed = by_id((await ocpi_get(emsp)).data)["LOC-Rich"]
    evse = listed["evses"][0]

    for path in ("/LOC-Rich", "/loc-rich", "/LOC-RICH"):
        answer = await ocpi_get(emsp, path)
        assert (answer.http_status, answer.status_code) == (200, 1000), path
        assert answer.data == listed
    for path in ("/LOC-Rich/CP-1-1", "/loc-rich/cp-1-1"):
        answer = await ocpi_get(emsp, path)
        assert (answer.http_status, answer.status_code) == (200, 1000), path
        assert answer.data == evse
    for path in ("/LOC-Rich/CP-1-1/2", "/Loc-Rich/Cp-1-1/2"):
        answer = await ocpi_get(emsp, path)
        assert (answer.http_status, answer.status_code) == (200, 1000), path
        assert answer.data == evse["connectors"][1]
    planned = await ocpi_get(emsp, "/LOC-RICH/PLANNED-1")
    assert planned.data["status"] == "PLANNED"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/NOPE", "NOPE"),
        ("/LOC-Rich/NOPE", "NOPE"),
        ("/LOC-Rich/CP-1-1/9", "9"),
        ("/LOC-Rich/NOPE/1", "NOPE"),
        ("/NOPE/CP-1-1/1", "NOPE"),
        ("/LOC-HIDDEN", "LOC-HIDDEN"),
        ("/LOC-HIDDEN/HID-1", "LOC-HIDDEN"),
        ("/loc-hidden/HID-1/1", "loc-hidden"),
    ],
)
async def test_unknown_or_unpublished_ids_answer_404_with_status_2003(
    emsp: EmspSimulator, site: tuple[datetime, datetime], path: str, named: str
) -> None:
    answer = await ocpi_get(emsp, path)

    assert answer.http_status == 404
    assert answer.status_code == 2003
    assert answer.status_message is not None
    assert repr(named) in answer.status_message
    assert answer.data is None


async def test_locations_need_a_registered_token_and_are_announced_as_sender(
    cpo: BridgeApp, emsp: EmspSimulator, site: tuple[datetime, datetime]
) -> None:
    base = f"http://127.0.0.1:{cpo.http_port}/ocpi/2.2.1"
    peer = emsp.state.peer
    assert peer is not None
    token_a = (await pending_partner(cpo, country="DE", party="EMT")).token_accept
    assert token_a is not None
    refused: list[dict[str, str]] = [
        {},
        token_header("not-a-token-we-issued"),
        token_header(token_a),  # token A: only versions and credentials
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        for headers in refused:
            for path in ("/locations", "/locations/LOC-Rich", "/locations/LOC-Rich/CP-1-1/1"):
                response = await http.get(base + path, headers=headers)
                assert response.status_code == 401, (headers, path)
                body = response.json()
                assert 2000 <= body["status_code"] < 3000
                assert "data" not in body or not body["data"]
        accepted = await http.get(base + "/locations", headers=token_header(peer.token_we_present))
        assert accepted.status_code == 200
        details = (await http.get(base, headers=token_header(peer.token_we_present))).json()
    endpoints = [(e["identifier"], e["role"], e["url"]) for e in details["data"]["endpoints"]]
    assert ("locations", "SENDER", f"{base}/locations") in endpoints
    assert peer.endpoint("locations", InterfaceRole.SENDER) == f"{base}/locations"


# --- pages ---------------------------------------------------------------------------------

BULK = 250


def bulk_locations(
    renamed: Sequence[int] = (), rewired: Sequence[int] = ()
) -> list[dict[str, Any]]:
    """``BULK`` published Locations of one EVSE each (on CP-1, EVSE i+1) and 3 unpublished.
    ``renamed`` get a name (a Location field), ``rewired`` a 32 A connector."""
    locations = []
    for i in range(BULK):
        connector: dict[str, Any] = {"id": "1"}
        if i in rewired:
            connector["max_amperage"] = 32
        fields: dict[str, Any] = {"name": f"Renamed {i}"} if i in renamed else {}
        evse = evse_entry(f"BULK-{i:03d}-1", "CP-1", i + 1, connectors=[connector])
        locations.append(location_entry(f"BULK-{i:03d}", evse, **fields))
    for i in range(3):
        evse = evse_entry(f"PRIV-{i}-1", "CP-2", i + 1)
        locations.append(location_entry(f"PRIV-{i}", evse, publish=False))
    return locations


def check_pages(pulled: PullResult, *, base: str, limit: int, total: int, **filters: str) -> None:
    """Headers of every page: the total and our page size, and a ``Link`` to the next page
    (repeating the filters and the limit) on every page but the last."""
    expected_pages = -(-total // limit)
    assert len(pulled.pages) == expected_pages
    assert [len(page.data) for page in pulled.pages] == [
        min(limit, total - n * limit) for n in range(expected_pages)
    ]
    for number, page in enumerate(pulled.pages, start=1):
        assert page.header("X-Total-Count") == str(total)
        assert page.header("X-Limit") == str(PAGE_SIZE)
        link = link_of(page)
        if number == expected_pages:
            assert link is None, f"page {number} of {expected_pages} has a Link"
            continue
        assert link is not None, f"page {number} of {expected_pages} has no Link"
        url, query = link
        assert url == f"{base}/ocpi/2.2.1/locations"
        assert query == {
            "offset": [str(number * limit)],
            "limit": [str(limit)],
            **{name: [value] for name, value in filters.items()},
        }


async def test_250_locations_are_pulled_once_each_in_pages_with_a_stable_order(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await cpo.push_worker.stop()  # this test is about pulling: pushes stay queued
    await cpo.apply_site(site_of(bulk_locations()))
    base = f"http://127.0.0.1:{cpo.http_port}"
    names = [f"BULK-{i:03d}" for i in range(BULK)]

    first = await pull_all(emsp)
    ids = [obj["id"] for obj in first.objects]
    assert sorted(ids) == names  # every published object exactly once, no unpublished one
    assert (first.total_count, first.limit) == (BULK, PAGE_SIZE)
    check_pages(first, base=base, limit=PAGE_SIZE, total=BULK)
    # Oldest first, then by id: the same URL gives the same objects.
    assert ids == [
        obj["id"]
        for obj in sorted(first.objects, key=lambda o: (o["last_updated"], o["id"].upper()))
    ]
    second = await pull_all(emsp)
    assert [obj["id"] for obj in second.objects] == ids
    assert second.objects == first.objects

    # The eMSP asks for smaller pages: the limit is kept in every Link.
    small = await pull_all(emsp, limit=37)
    assert [obj["id"] for obj in small.objects] == ids
    check_pages(small, base=base, limit=37, total=BULK)
    # A limit over our page size is capped to it.
    capped = await pull_all(emsp, limit=1000)
    assert [obj["id"] for obj in capped.objects] == ids
    check_pages(capped, base=base, limit=PAGE_SIZE, total=BULK)


async def test_date_from_is_inclusive_and_date_to_exclusive_on_last_updated(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await cpo.push_worker.stop()  # this test is about pulling: pushes stay queued
    await cpo.apply_site(site_of(bulk_locations()))
    base = f"http://127.0.0.1:{cpo.http_port}"
    original = {obj["id"]: obj["last_updated"] for obj in (await pull_all(emsp)).objects}
    assert len(set(original.values())) == 1  # one apply, one stamp
    created = next(iter(original.values()))
    await asyncio.sleep(0.005)

    report = await cpo.apply_site(site_of(bulk_locations(renamed=[10, 200], rewired=[100])))
    assert sorted(report.updated) == ["BULK-010", "BULK-100", "BULK-200"]
    current = {obj["id"]: obj["last_updated"] for obj in (await pull_all(emsp)).objects}
    changed = {i for i in current if current[i] != original[i]}
    assert changed == {"BULK-010", "BULK-100", "BULK-200"}
    first_change = min(current[i] for i in changed)
    last_change = max(current[i] for i in changed)
    assert first_change > created

    def matching(date_from: str | None, date_to: str | None) -> set[str]:
        return {
            location_id
            for location_id, stamp in current.items()
            if (date_from is None or parse_datetime(stamp) >= parse_datetime(date_from))
            and (date_to is None or parse_datetime(stamp) < parse_datetime(date_to))
        }

    cases: list[tuple[str | None, str | None]] = [
        (first_change, None),  # inclusive: the changed ones
        (None, first_change),  # exclusive: the unchanged ones
        (created, first_change),
        (created, None),
        (first_change, last_change),
        (last_change, None),
    ]
    for date_from, date_to in cases:
        filters = {
            name: value
            for name, value in (("date_from", date_from), ("date_to", date_to))
            if value is not None
        }
        pulled = await pull_all(emsp, **filters)
        expected = matching(date_from, date_to)
        assert {obj["id"] for obj in pulled.objects} == expected, filters
        assert len(pulled.objects) == len(expected) == pulled.total_count
        check_pages(pulled, base=base, limit=PAGE_SIZE, total=len(expected), **filters)
    assert matching(first_change, None) == changed
    # Another UTC offset is the same instant (reference 1.5: accept offsets on input).
    shifted = parse_datetime(first_change).astimezone(timezone(timedelta(hours=2)))
    offset_form = shifted.isoformat(timespec="milliseconds")
    assert offset_form.endswith("+02:00")
    in_offset = await pull_all(emsp, date_from=offset_form)
    assert {obj["id"] for obj in in_offset.objects} == changed
    assert len(matching(None, first_change)) == BULK - 3

    # The filters are repeated in the Link of a filtered crawl.
    paged = await pull_all(emsp, date_from=first_change, limit=2)
    assert {obj["id"] for obj in paged.objects} == changed
    check_pages(paged, base=base, limit=2, total=3, date_from=first_change)


# --- last_updated --------------------------------------------------------------------------

TWO_SITES = [
    location_entry(
        "LOC-A",
        evse_entry("A1", "CP-1", 1, connectors=[{"id": "1"}, {"id": "2"}]),
        evse_entry("A2", "CP-1", 2),
    ),
    location_entry("LOC-B", evse_entry("B1", "CP-2", 1)),
]


async def reapply(app: BridgeApp, locations: Sequence[dict[str, Any]]) -> ApplyReport:
    await asyncio.sleep(0.005)  # a later millisecond than the previous apply
    return await app.apply_site(site_of(locations))


async def test_a_changed_connector_bumps_itself_its_evse_and_its_location_only(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await cpo.push_worker.stop()  # rows stay in the outbox to be inspected
    await cpo.apply_site(site_of(TWO_SITES))
    before = by_id((await pull_all(emsp)).objects)
    queued = [entry.id for entry in await cpo.outbox.list_entries()]
    assert len(queued) == 2  # one PUT per new Location

    changed = copy.deepcopy(TWO_SITES)
    changed[0]["evses"][0]["connectors"][1]["max_amperage"] = 32
    report = await reapply(cpo, changed)

    assert (report.updated, report.unchanged, report.pushes) == (["LOC-A"], ["LOC-B"], 1)
    after = by_id((await pull_all(emsp)).objects)
    assert after["LOC-B"] == before["LOC-B"]
    stamp = after["LOC-A"]["evses"][0]["connectors"][1]["last_updated"]
    assert OCPI_DATETIME.match(stamp)
    assert parse_datetime(stamp) > parse_datetime(before["LOC-A"]["last_updated"])
    expected = copy.deepcopy(before["LOC-A"])
    expected["last_updated"] = stamp
    expected["evses"][0]["last_updated"] = stamp
    expected["evses"][0]["connectors"][1].update(max_amperage=32, last_updated=stamp)
    assert after["LOC-A"] == expected  # connector 1 and EVSE A2 keep their last_updated
    # One new outbox row: the PUT of that connector alone.
    rows = [entry for entry in await cpo.outbox.list_entries() if entry.id not in queued]
    assert [(row.method, row.path) for row in rows] == [("PUT", "NL/CPO/LOC-A/A1/2")]
    assert rows[0].body == after["LOC-A"]["evses"][0]["connectors"][1]


async def test_reloading_the_same_site_changes_no_last_updated_and_queues_nothing(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await cpo.push_worker.stop()  # rows stay in the outbox to be inspected
    locations = [*TWO_SITES, HIDDEN]
    await cpo.apply_site(site_of(locations))
    before = await pull_all(emsp)
    queued = await cpo.outbox.list_entries()
    documents = {row.key: row.document for row in await all_rows(cpo, LocationRow)}

    for _ in range(2):
        report = await reapply(cpo, locations)
        assert report.as_dict() == {
            "created": [],
            "updated": [],
            "unchanged": ["LOC-A", "LOC-B", "LOC-HIDDEN"],
            "removed": [],
            "pushes": 0,
            "tariffs": {"created": [], "updated": [], "unchanged": [], "removed": [], "pushes": 0},
        }
    after = await pull_all(emsp)
    assert after.objects == before.objects
    assert await cpo.outbox.list_entries() == queued
    assert {row.key: row.document for row in await all_rows(cpo, LocationRow)} == documents
