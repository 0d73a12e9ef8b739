"""The operator's side of Locations: the site file reloaded through ``POST /admin/site/reload``,
one Location put or removed through ``/admin/locations``, and the ``ocpi-bridge site`` and
``locations`` commands run as processes. A running bridge on 127.0.0.1 with the eMSP simulator
registered: every change reaches it as the smallest PUT, and its copy equals our GET; a site
with any problem is refused whole and changes nothing."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from bridge.main import BridgeApp
from bridge.store.tables import LocationRow
from simulators.emsp.models import dump
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import RecordedRequest
from simulators.emsp.wire import parse_datetime
from tests.bridge.conftest import ADMIN_TOKEN
from tests.bridge.test_locations_api import (
    CPO,
    FAST_OUTBOX,
    evse_entry,
    location_entry,
    ocpi_get,
    pull_all,
)
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_ocpi_registration import emsp_registers

T = TypeVar("T")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHARGERS = ("CP-1", "CP-2", "CP-3")
PUSHED_PREFIX = "/ocpi/emsp/2.2.1/locations/"

BASE = [
    location_entry(
        "LOC-A",
        evse_entry("A1", "CP-1", 1, connectors=[{"id": "1"}, {"id": "2"}]),
        evse_entry("A2", "CP-1", 2),
    ),
    location_entry("LOC-B", evse_entry("B1", "CP-2", 1), evse_entry("B2", "CP-2", 2)),
    location_entry("LOC-H", evse_entry("H1", "CP-3", 1), publish=False),
]


# --- the site file as TOML -----------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of printable text is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _tables(name: str, entries: Sequence[dict[str, Any]], lines: list[str]) -> None:
    for entry in entries:
        lines += ["", f"[[{name}]]"]
        nested = {k: v for k, v in entry.items() if k in ("evses", "connectors")}
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items() if k not in nested]
        for key, children in nested.items():
            _tables(f"{name}.{key}", children, lines)


def site_toml(
    locations: Sequence[dict[str, Any]],
    *,
    chargers: Sequence[str] = CHARGERS,
    tokens: Sequence[str] = (),
) -> str:
    data: dict[str, Any] = {
        "chargers": [{"id": charger, "allow_no_auth": True} for charger in chargers],
        "tokens": [{"id_tag": tag} for tag in tokens],
        "locations": list(locations),
    }
    lines: list[str] = []
    for section, entries in data.items():
        _tables(section, entries, lines)
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == {k: v for k, v in data.items() if v}, text
    return text


def write_text(path: Path, text: str) -> None:
    path.write_text(text)


def write_site(path: Path, locations: Sequence[dict[str, Any]], **entries: Any) -> None:
    path.write_text(site_toml(locations, **entries))


def changed(mutate: Callable[[list[dict[str, Any]]], object]) -> list[dict[str, Any]]:
    """A copy of ``BASE`` changed by ``mutate``."""
    locations = copy.deepcopy(BASE)
    mutate(locations)
    return locations


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(site_toml([]))
    return path


@pytest.fixture
async def cpo(tmp_path: Path, site_file: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(
        tmp_path, admin_token=ADMIN_TOKEN, site_file=str(site_file), **CPO, **FAST_OUTBOX
    ) as app:
        yield app


@pytest.fixture
async def emsp(cpo: BridgeApp) -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        await emsp_registers(cpo, sim)
        yield sim


@pytest.fixture
async def admin(cpo: BridgeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{cpo.http_port}/admin", timeout=10
    ) as client:
        yield client


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T:
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.01)


async def delivered(app: BridgeApp) -> None:
    """Every queued push delivered (delivered rows are deleted; dead ones stay listed)."""

    async def empty() -> bool:
        return not await app.outbox.list_entries()

    await eventually(empty)


async def reload(admin: httpx.AsyncClient) -> httpx.Response:
    return await admin.post("/site/reload", headers=ADMIN)


async def pushes_during(
    app: BridgeApp, sim: EmspSimulator, change: Callable[[], Awaitable[object]]
) -> list[RecordedRequest]:
    """The Locations requests the eMSP receives because of ``change``, once delivered."""
    mark = len(sim.state.received)
    await change()
    await delivered(app)
    pushed = [r for r in sim.state.received[mark:] if r.module == "locations"]
    for request in pushed:
        assert request.http_status in (200, 201), request.to_json()
        assert request.status_code == 1000, request.to_json()
        assert request.stored
    return pushed


def targets(pushed: Sequence[RecordedRequest]) -> list[tuple[str, str]]:
    """(method, path under the eMSP's Locations endpoint) of each push, sorted."""
    found = []
    for request in pushed:
        assert request.path.startswith(PUSHED_PREFIX), request.path
        found.append((request.method, request.path.removeprefix(PUSHED_PREFIX)))
    return sorted(found)


async def apply_file(
    app: BridgeApp,
    sim: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    locations: Sequence[dict[str, Any]],
) -> tuple[dict[str, Any], list[RecordedRequest]]:
    """Write the site file, reload it through the admin API: the report and the pushes."""
    write_site(site_file, locations)
    answers: list[httpx.Response] = []

    async def post() -> None:
        answers.append(await reload(admin))

    pushed = await pushes_during(app, sim, post)
    assert answers[0].status_code == 200, answers[0].text
    body = answers[0].json()
    assert body["status_code"] == 1000
    report: dict[str, Any] = body["data"]
    assert report["pushes"] == len(pushed)
    return report, pushed


DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


async def our_location(sim: EmspSimulator, location_id: str) -> dict[str, Any]:
    answer = await ocpi_get(sim, f"/{location_id}")
    assert (answer.http_status, answer.status_code) == (200, 1000), answer.describe()
    data: dict[str, Any] = answer.data
    return data


def emsp_copy(sim: EmspSimulator, location_id: str) -> dict[str, Any]:
    stored = sim.state.location("NL", "CPO", location_id)
    assert stored is not None, f"the eMSP has no {location_id}"
    return dump(stored)


def instants(value: Any) -> Any:
    """``value`` with each DateTime as the instant it names: the simulator writes a whole
    second without its fraction (``...:34Z``), the bridge always with it (``...:34.000Z``)."""
    if isinstance(value, dict):
        return {key: instants(item) for key, item in value.items()}
    if isinstance(value, list):
        return [instants(item) for item in value]
    if isinstance(value, str) and DATETIME.match(value):
        return parse_datetime(value)
    return value


async def assert_emsp_copy_is_ours(sim: EmspSimulator, *location_ids: str) -> None:
    for location_id in location_ids:
        ours = await our_location(sim, location_id)
        assert instants(emsp_copy(sim, location_id)) == instants(ours)


async def admin_view(admin: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """``GET /admin/locations``: every Location with its origin, by id."""
    answer = await admin.get("/locations", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return {item["location"]["id"]: item for item in answer.json()["data"]}


async def state_of(app: BridgeApp, sim: EmspSimulator, admin: httpx.AsyncClient) -> dict[str, Any]:
    """What an operator or partner can see of the Locations, the outbox and the site's
    chargers and tokens."""
    return {
        "ocpi": (await pull_all(sim)).objects,
        "admin": await admin_view(admin),
        "documents": {row.key: row.document for row in await all_rows(app, LocationRow)},
        "outbox": await app.outbox.list_entries(),
        "received": len(sim.state.received),
        "chargers": [c.charger_id for c in await app.chargers.list_chargers()],
        "tokens": [t.id_tag for t in await app.authorizer.list_tokens()],
    }


@pytest.fixture
async def baseline(
    cpo: BridgeApp, emsp: EmspSimulator, admin: httpx.AsyncClient, site_file: Path
) -> list[RecordedRequest]:
    """``BASE`` applied from the site file and delivered; the pushes it caused."""
    report, pushed = await apply_file(cpo, emsp, admin, site_file, BASE)
    assert sorted(report["created"]) == ["LOC-A", "LOC-B", "LOC-H"]
    return pushed


# --- reload: the smallest change is pushed -------------------------------------------------


def _rename_a(locations: list[dict[str, Any]]) -> None:
    locations[0]["name"] = "Renamed car park"


def _evse_field(locations: list[dict[str, Any]]) -> None:
    locations[0]["evses"][0]["physical_reference"] = "P1"


def _connector_field(locations: list[dict[str, Any]]) -> None:
    locations[0]["evses"][0]["connectors"][1]["max_amperage"] = 32


def _connector_added(locations: list[dict[str, Any]]) -> None:
    locations[0]["evses"][1]["connectors"].append({"id": "2"})


def _evse_added(locations: list[dict[str, Any]]) -> None:
    locations[1]["evses"].append(evse_entry("B3", "CP-2", 3))


def _two_locations(locations: list[dict[str, Any]]) -> None:
    locations[0]["evses"][0]["connectors"][0]["max_amperage"] = 20
    locations[1]["evses"][1]["evse_id"] = "NL*CPO*EB2"


def _unpublished_only(locations: list[dict[str, Any]]) -> None:
    locations[2]["name"] = "Private yard"
    locations[2]["evses"][0]["physical_reference"] = "H"


# (what changes in the file, the PUTs it causes, the Locations reported updated); each step
# keeps the changes of the steps before it.
STEPS: list[tuple[Callable[[list[dict[str, Any]]], None], list[str], list[str]]] = [
    (_rename_a, ["LOC-A"], ["LOC-A"]),
    (_evse_field, ["LOC-A/A1"], ["LOC-A"]),
    (_connector_field, ["LOC-A/A1/2"], ["LOC-A"]),
    (_connector_added, ["LOC-A/A2"], ["LOC-A"]),
    (_evse_added, ["LOC-B/B3"], ["LOC-B"]),
    (_two_locations, ["LOC-A/A1/1", "LOC-B/B2"], ["LOC-A", "LOC-B"]),
    (_unpublished_only, [], ["LOC-H"]),
]


async def test_new_locations_then_each_change_push_only_the_smallest_objects(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    # New Locations: pushed whole, the unpublished one not at all.
    assert targets(baseline) == [("PUT", "NL/CPO/LOC-A"), ("PUT", "NL/CPO/LOC-B")]
    for request in baseline:
        assert request.body == await our_location(emsp, request.body["id"])
        assert request.headers["ocpi-to-country-code"] == "DE"
        assert request.headers["ocpi-to-party-id"] == "EMS"
    await assert_emsp_copy_is_ours(emsp, "LOC-A", "LOC-B")
    assert emsp.state.location("NL", "CPO", "LOC-H") is None

    locations = copy.deepcopy(BASE)
    for mutate, expected, updated in STEPS:
        step = mutate.__name__
        before = {obj["id"]: obj for obj in (await pull_all(emsp)).objects}
        mutate(locations)

        report, pushed = await apply_file(cpo, emsp, admin, site_file, locations)

        assert targets(pushed) == [("PUT", f"NL/CPO/{path}") for path in expected], step
        assert sorted(report["updated"]) == updated, step
        for request in pushed:
            # The body is our current object at that path.
            path = request.path.removeprefix(PUSHED_PREFIX).split("/")[2:]
            answer = await ocpi_get(emsp, "/" + "/".join(path))
            assert request.body == answer.data, step
        after = {obj["id"]: obj for obj in (await pull_all(emsp)).objects}
        for location_id in {"LOC-A", "LOC-B"} - set(updated):
            assert after[location_id] == before[location_id], step
        await assert_emsp_copy_is_ours(emsp, "LOC-A", "LOC-B")

        # The same file again: nothing more.
        report, pushed = await apply_file(cpo, emsp, admin, site_file, locations)
        assert pushed == [], step
        assert sorted(report["unchanged"]) == ["LOC-A", "LOC-B", "LOC-H"], step


async def test_an_evse_dropped_from_the_file_is_pushed_as_removed_and_stays_in_get(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    without_a2 = changed(lambda locations: locations[0]["evses"].pop(1))

    report, pushed = await apply_file(cpo, emsp, admin, site_file, without_a2)

    assert report["updated"] == ["LOC-A"]
    assert targets(pushed) == [("PUT", "NL/CPO/LOC-A/A2")]
    assert pushed[0].body["status"] == "REMOVED"
    evse = await ocpi_get(emsp, "/LOC-A/A2")
    assert (evse.http_status, evse.data["status"]) == (200, "REMOVED")
    assert pushed[0].body == evse.data
    location = await our_location(emsp, "LOC-A")
    assert [(e["uid"], e["status"]) for e in location["evses"]] == [
        ("A1", "UNKNOWN"),
        ("A2", "REMOVED"),
    ]
    await assert_emsp_copy_is_ours(emsp, "LOC-A", "LOC-B")

    report, pushed = await apply_file(cpo, emsp, admin, site_file, without_a2)
    assert pushed == []
    assert report["updated"] == []


async def test_an_evse_dropped_from_the_middle_leaves_the_emsp_copy_equal_to_our_get(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    without_a1 = changed(lambda locations: locations[0]["evses"].pop(0))

    _, pushed = await apply_file(cpo, emsp, admin, site_file, without_a1)

    assert targets(pushed) == [("PUT", "NL/CPO/LOC-A/A1")]
    await assert_emsp_copy_is_ours(emsp, "LOC-A")


async def test_a_location_dropped_from_the_file_has_every_evse_removed(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    without_b = changed(lambda locations: locations.pop(1))

    report, pushed = await apply_file(cpo, emsp, admin, site_file, without_b)

    assert (report["removed"], report["updated"]) == (["LOC-B"], [])
    assert targets(pushed) == [("PUT", "NL/CPO/LOC-B/B1"), ("PUT", "NL/CPO/LOC-B/B2")]
    assert {request.body["status"] for request in pushed} == {"REMOVED"}
    location = await our_location(emsp, "LOC-B")  # never deleted
    assert [(e["uid"], e["status"]) for e in location["evses"]] == [
        ("B1", "REMOVED"),
        ("B2", "REMOVED"),
    ]
    assert "LOC-B" in {obj["id"] for obj in (await pull_all(emsp)).objects}
    await assert_emsp_copy_is_ours(emsp, "LOC-A", "LOC-B")

    # Again: nothing more; dropping the unpublished one pushes nothing either.
    report, pushed = await apply_file(cpo, emsp, admin, site_file, without_b)
    assert (pushed, report["removed"]) == ([], [])
    report, pushed = await apply_file(cpo, emsp, admin, site_file, without_b[:1])
    assert (pushed, report["removed"]) == ([], ["LOC-H"])
    hidden = (await admin_view(admin))["LOC-H"]["location"]
    assert [e["status"] for e in hidden["evses"]] == ["REMOVED"]


async def test_an_unpublished_location_gets_one_last_put_then_nothing(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    hidden_a = changed(lambda locations: locations[0].update(publish=False))

    report, pushed = await apply_file(cpo, emsp, admin, site_file, hidden_a)

    assert report["updated"] == ["LOC-A"]
    assert targets(pushed) == [("PUT", "NL/CPO/LOC-A")]
    last_put = pushed[0].body
    assert last_put["publish"] is False
    assert last_put == (await admin_view(admin))["LOC-A"]["location"]
    assert emsp_copy(emsp, "LOC-A") == pushed[0].body
    gone = await ocpi_get(emsp, "/LOC-A")
    assert (gone.http_status, gone.status_code) == (404, 2003)
    assert [obj["id"] for obj in (await pull_all(emsp)).objects] == ["LOC-B"]

    # Changed while unpublished, then dropped: nothing is pushed for it.
    def more(locations: list[dict[str, Any]]) -> None:
        locations[0].update(publish=False, name="Closed for works")
        _connector_field(locations)

    report, pushed = await apply_file(cpo, emsp, admin, site_file, changed(more))
    assert (report["updated"], pushed) == (["LOC-A"], [])
    report, pushed = await apply_file(cpo, emsp, admin, site_file, BASE[1:])
    assert (report["removed"], pushed) == (["LOC-A"], [])
    assert emsp_copy(emsp, "LOC-A") == last_put

    # Published again (described again): the whole current Location is pushed.
    report, pushed = await apply_file(cpo, emsp, admin, site_file, BASE)
    assert targets(pushed) == [("PUT", "NL/CPO/LOC-A")]
    assert pushed[0].body["publish"] is True
    await assert_emsp_copy_is_ours(emsp, "LOC-A", "LOC-B")


# --- reload: refused whole -----------------------------------------------------------------


async def test_a_bad_site_file_is_refused_with_every_problem_and_changes_nothing(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    before = await state_of(cpo, emsp, admin)
    bad = copy.deepcopy(BASE)
    bad[0]["name"] = "Would be renamed"  # a valid change, refused with the rest
    bad += [
        location_entry(
            "LOC-BAD",
            evse_entry("X1", "CP-NOPE", 1),
            evse_entry("B1", "CP-3", 2),  # the uid of an EVSE of LOC-B
            parking_type="GARAGE",
            coordinates={"latitude": 52.3789, "longitude": "4.90030"},
        ),
        {**location_entry("LOC-TYPO", evse_entry("T1", "CP-3", 3)), "adress": "Damrak 1"},
    ]
    write_site(site_file, bad, chargers=[*CHARGERS, "CP-NEW"], tokens=["NEW-TAG"])

    answer = await reload(admin)

    assert answer.status_code == 400
    body = answer.json()
    assert body["status_code"] == 2001
    message = body["status_message"]
    for problem in (
        f"{site_file}: locations[3] (id 'LOC-BAD'): evses[0] (uid 'X1'): charger: unknown "
        "charger 'CP-NOPE'",
        "locations[3] (id 'LOC-BAD'): evses[1] (uid 'B1'): uid: duplicate EVSE uid 'B1' (also "
        "locations[1] (id 'LOC-B'): evses[0] (uid 'B1'))",
        "locations[3] (id 'LOC-BAD'): parking_type: 'GARAGE' is not",
        "locations[3] (id 'LOC-BAD'): coordinates.latitude: write coordinates as strings",
        "locations[4] (id 'LOC-TYPO'): adress: unknown key (did you mean 'address'?)",
    ):
        assert problem in message, f"{problem!r} not in {message!r}"
    assert len(message.splitlines()) == 5
    await asyncio.sleep(0.1)  # the worker would have sent anything queued
    assert await state_of(cpo, emsp, admin) == before

    # A file that is not TOML at all.
    write_text(site_file, "[[locations]\nid = 1\n")
    answer = await reload(admin)
    assert (answer.status_code, answer.json()["status_code"]) == (400, 2001)
    assert str(site_file) in answer.json()["status_message"]
    assert await state_of(cpo, emsp, admin) == before


async def put_api_location(
    admin: httpx.AsyncClient, location_id: str, entry: dict[str, Any]
) -> httpx.Response:
    return await admin.put(f"/locations/{location_id}", json=entry, headers=ADMIN)


async def with_api_location(cpo: BridgeApp, emsp: EmspSimulator, admin: httpx.AsyncClient) -> Any:
    """Location API-1 (EVSE API-1-1 on CP-3 EVSE 2) created through the admin API and pushed;
    the state everything is compared with afterwards."""
    created = await put_api_location(
        admin, "API-1", location_entry("API-1", evse_entry("API-1-1", "CP-3", 2))
    )
    assert created.status_code == 201, created.text
    await delivered(cpo)
    return await state_of(cpo, emsp, admin)


async def test_a_site_conflicting_with_an_admin_api_location_is_refused(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    before = await with_api_location(cpo, emsp, admin)

    cases = [
        (
            location_entry("LOC-C", evse_entry("API-1-1", "CP-3", 3)),
            "location 'LOC-C': EVSE uid 'API-1-1' belongs to location 'API-1'",
        ),
        (
            location_entry("LOC-C", evse_entry("C1", "CP-3", 2)),
            "location 'LOC-C': charger 'CP-3' EVSE 2 is already shown by location 'API-1'",
        ),
    ]
    for entry, problem in cases:
        write_site(site_file, [*BASE, entry])
        answer = await reload(admin)
        assert answer.status_code == 400, answer.text
        assert answer.json()["status_code"] == 2001
        assert problem in answer.json()["status_message"]
        assert await state_of(cpo, emsp, admin) == before

    # The file may name the API Location itself: it then describes it.
    described = location_entry("API-1", evse_entry("API-1-1", "CP-3", 2), name="Now in the file")
    report, pushed = await apply_file(cpo, emsp, admin, site_file, [*BASE, described])
    assert report["updated"] == ["API-1"]
    assert targets(pushed) == [("PUT", "NL/CPO/API-1")]
    assert (await admin_view(admin))["API-1"]["origin"] == "site"


async def test_a_reload_refused_for_a_conflict_adds_none_of_its_chargers_or_tokens(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    before = await with_api_location(cpo, emsp, admin)
    conflicting = location_entry("LOC-C", evse_entry("API-1-1", "CP-NEW", 1))
    write_site(site_file, [*BASE, conflicting], chargers=[*CHARGERS, "CP-NEW"], tokens=["NEW-TAG"])

    answer = await reload(admin)

    assert answer.status_code == 400
    assert "belongs to location 'API-1'" in answer.json()["status_message"]
    after = await state_of(cpo, emsp, admin)
    assert (after["chargers"], after["tokens"]) == (before["chargers"], before["tokens"])


@pytest.mark.expect_errors(r"unexpected error on POST /admin/site/reload")
async def test_a_site_with_an_invalid_charger_id_is_refused_with_400_and_changes_nothing(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    before = await state_of(cpo, emsp, admin)
    write_site(site_file, BASE, chargers=[*CHARGERS, "CP-OK", "bad:id"])

    answer = await reload(admin)

    assert (answer.status_code, answer.json()["status_code"]) == (400, 2001), answer.text
    assert "invalid charger id 'bad:id'" in answer.json()["status_message"]
    assert await state_of(cpo, emsp, admin) == before


async def test_a_charger_moves_to_a_new_location_in_one_reload(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    # LOC-B is dropped; its charger CP-2 now serves LOC-D (new EVSE uids: never reused).
    moved = location_entry("LOC-D", evse_entry("D1", "CP-2", 1), evse_entry("D2", "CP-2", 2))
    write_site(site_file, [BASE[0], BASE[2], moved])

    answer = await reload(admin)

    assert answer.status_code == 200, answer.text
    report = answer.json()["data"]
    assert (report["created"], report["removed"]) == (["LOC-D"], ["LOC-B"])


# --- admin API: one Location ---------------------------------------------------------------


async def test_admin_put_creates_then_updates_one_location_and_pushes_the_difference(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    site_file: Path,
    baseline: list[RecordedRequest],
) -> None:
    entry = location_entry(
        "API-1",
        evse_entry("API-1-1", "CP-3", 2, connectors=[{"id": "1"}, {"id": "2"}]),
        name="Depot",
    )
    del entry["id"]  # the URL names it
    answers: list[httpx.Response] = []

    async def put(body: dict[str, Any]) -> None:
        answers.append(await put_api_location(admin, "API-1", body))

    pushed = await pushes_during(cpo, emsp, lambda: put(entry))
    assert answers[-1].status_code == 201, answers[-1].text
    assert answers[-1].json()["data"] == {
        "created": ["API-1"],
        "updated": [],
        "unchanged": [],
        "removed": [],
        "pushes": 1,
    }
    assert targets(pushed) == [("PUT", "NL/CPO/API-1")]
    location = await our_location(emsp, "api-1")
    assert (location["id"], location["name"], location["evses"][0]["status"]) == (
        "API-1",
        "Depot",
        "UNKNOWN",
    )
    await assert_emsp_copy_is_ours(emsp, "API-1")

    # An update: only the changed connector goes out.
    entry["evses"][0]["connectors"][1]["max_amperage"] = 32
    pushed = await pushes_during(cpo, emsp, lambda: put({**entry, "id": "API-1"}))
    assert answers[-1].status_code == 200, answers[-1].text
    assert (answers[-1].json()["data"]["updated"], answers[-1].json()["data"]["pushes"]) == (
        ["API-1"],
        1,
    )
    assert targets(pushed) == [("PUT", "NL/CPO/API-1/API-1-1/2")]
    await assert_emsp_copy_is_ours(emsp, "API-1")

    # The same description again: 200, nothing changed or pushed.
    pushed = await pushes_during(cpo, emsp, lambda: put(entry))
    assert answers[-1].status_code == 200
    assert answers[-1].json()["data"]["unchanged"] == ["API-1"]
    assert pushed == []

    view = await admin_view(admin)
    assert {k: v["origin"] for k, v in view.items()} == {
        "API-1": "api",
        "LOC-A": "site",
        "LOC-B": "site",
        "LOC-H": "site",
    }
    assert view["LOC-H"]["location"]["publish"] is False
    # A site reload leaves Locations of the admin API alone.
    report, pushed = await apply_file(cpo, emsp, admin, site_file, BASE)
    assert (report["removed"], pushed) == ([], [])
    assert (await admin_view(admin))["API-1"] == view["API-1"]


async def test_admin_put_in_another_case_keeps_the_location_id(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    baseline: list[RecordedRequest],
) -> None:
    entry = location_entry("API-1", evse_entry("API-1-1", "CP-3", 2))
    assert (await put_api_location(admin, "API-1", entry)).status_code == 201
    await delivered(cpo)
    entry["evses"][0]["connectors"][0]["max_amperage"] = 32
    answers: list[httpx.Response] = []

    async def put() -> None:
        answers.append(await put_api_location(admin, "api-1", {**entry, "id": "api-1"}))

    pushed = await pushes_during(cpo, emsp, put)

    assert answers[0].status_code == 200, answers[0].text
    assert (await our_location(emsp, "API-1"))["id"] == "API-1"
    assert targets(pushed) == [("PUT", "NL/CPO/API-1/API-1-1/1")]


async def test_admin_delete_marks_every_evse_removed(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    baseline: list[RecordedRequest],
) -> None:
    answers: list[httpx.Response] = []

    async def delete(location_id: str) -> None:
        answers.append(await admin.delete(f"/locations/{location_id}", headers=ADMIN))

    pushed = await pushes_during(cpo, emsp, lambda: delete("loc-a"))

    assert answers[-1].status_code == 200, answers[-1].text
    report = answers[-1].json()["data"]
    assert (report["removed"], report["pushes"]) == (["LOC-A"], 2)
    assert targets(pushed) == [("PUT", "NL/CPO/LOC-A/A1"), ("PUT", "NL/CPO/LOC-A/A2")]
    location = await our_location(emsp, "LOC-A")
    assert [e["status"] for e in location["evses"]] == ["REMOVED", "REMOVED"]
    await assert_emsp_copy_is_ours(emsp, "LOC-A")

    pushed = await pushes_during(cpo, emsp, lambda: delete("LOC-A"))
    assert answers[-1].status_code == 200
    assert answers[-1].json()["data"]["unchanged"] == ["LOC-A"]
    assert pushed == []

    missing = await admin.delete("/locations/NOPE", headers=ADMIN)
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["status_message"]


REFUSED_PUTS: list[tuple[str, Any, str]] = [
    (
        "id differs",
        location_entry("API-2", evse_entry("API-1-1", "CP-3", 2)),
        "id in the body ('API-2') differs from the URL ('API-1')",
    ),
    (
        "unknown charger",
        location_entry("API-1", evse_entry("API-1-1", "CP-9", 1)),
        "evses[0] (uid 'API-1-1'): charger: unknown charger 'CP-9' (did you mean 'CP-3'?)",
    ),
    (
        "uid of another location",
        location_entry("API-1", evse_entry("B1", "CP-3", 2)),
        "location 'API-1': EVSE uid 'B1' belongs to location 'LOC-B'",
    ),
    (
        "charger EVSE of another location",
        location_entry("API-1", evse_entry("API-1-1", "CP-1", 1)),
        "location 'API-1': charger 'CP-1' EVSE 1 is already shown by location 'LOC-A'",
    ),
    (
        "country code",
        {**location_entry("API-1"), "country_code": "DE"},
        "country_code: not allowed: set by the bridge",
    ),
    ("not an object", [1, 2], "expected a JSON object"),
]


async def test_admin_put_refuses_a_bad_description_and_changes_nothing(
    cpo: BridgeApp,
    emsp: EmspSimulator,
    admin: httpx.AsyncClient,
    baseline: list[RecordedRequest],
) -> None:
    before = await state_of(cpo, emsp, admin)
    for case, body, problem in REFUSED_PUTS:
        answer = await put_api_location(admin, "API-1", body)

        assert answer.status_code == 400, (case, answer.text)
        assert answer.json()["status_code"] == 2001, case
        assert problem in answer.json()["status_message"], (case, answer.text)
        assert await state_of(cpo, emsp, admin) == before, case

    invalid = await admin.put(
        "/locations/API-1",
        content=b"{not json",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert (invalid.status_code, invalid.json()["status_code"]) == (400, 2001)
    assert await state_of(cpo, emsp, admin) == before


async def test_the_site_admin_api_needs_the_admin_token(
    cpo: BridgeApp, admin: httpx.AsyncClient
) -> None:
    refused: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Token {ADMIN_TOKEN}"},
    ]
    for headers in refused:
        calls = [
            admin.get("/locations", headers=headers),
            admin.put("/locations/API-1", json=location_entry("API-1"), headers=headers),
            admin.delete("/locations/API-1", headers=headers),
            admin.post("/site/reload", headers=headers),
        ]
        for answer in [await call for call in calls]:
            assert answer.status_code == 401, (headers, answer.request.url)
            assert answer.json()["status_code"] == 2000
    assert await admin_view(admin) == {}


# --- the CLI as processes -------------------------------------------------------------------

BIN = Path(sys.executable).parent


def start_cli(
    tmp_path: Path, *args: str, db: str = "cli.db", **extra: str
) -> subprocess.Popen[str]:
    """``ocpi-bridge *args`` started on the SQLite database ``db`` of this test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_BRIDGE_")}
    env.update(OCPI_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / db}", **extra)
    return subprocess.Popen(
        [str(BIN / "ocpi-bridge"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return finish(start_cli(tmp_path, *args, **extra))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    good = tmp_path / "good.toml"
    good.write_text(site_toml(BASE))
    bad = tmp_path / "bad.toml"
    bad.write_text(
        site_toml(
            [
                location_entry("LOC-A", evse_entry("A1", "CP-NOPE", 1)),
                location_entry("LOC-B", evse_entry("A1", "CP-1", 1), country="NL"),
            ]
        )
    )
    return good, bad


def test_cli_site_check_reload_and_locations_list(tmp_path: Path, files: tuple[Path, Path]) -> None:
    good, bad = files
    # Independent commands at the same time, each on a database of its own but the last.
    started = [
        start_cli(tmp_path, "site", "check", str(good), db="check-good.db"),
        start_cli(tmp_path, "site", "check", str(bad), db="check-bad.db"),
        start_cli(tmp_path, "site", "reload", str(bad), db="reload-bad.db"),
        start_cli(tmp_path, "site", "reload", str(good)),
    ]
    checked, refused, refused_reload, first = [finish(process) for process in started]

    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == f"{good}: ok (3 location(s), 5 EVSE(s))\n"
    assert refused.returncode == 1
    assert refused.stdout == ""
    problems = [
        f"{bad}: locations[0] (id 'LOC-A'): evses[0] (uid 'A1'): charger: unknown charger "
        "'CP-NOPE' (not a registered charger nor one of the file's [[chargers]])",
        f"{bad}: locations[1] (id 'LOC-B'): evses[0] (uid 'A1'): uid: duplicate EVSE uid 'A1' "
        "(also locations[0] (id 'LOC-A'): evses[0] (uid 'A1'))",
        f"{bad}: locations[1] (id 'LOC-B'): country: 'NL' is not an ISO 3166-1 alpha-3 "
        'country code in capitals (like "NLD")',
    ]
    assert refused.stderr.splitlines() == [f"error: {problems[0]}", *problems[1:]]
    assert refused_reload.returncode == 1
    assert refused_reload.stdout == ""
    assert refused_reload.stderr == refused.stderr

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created: LOC-A, LOC-B, LOC-H",
        "updated: -",
        "removed: -",
        "unchanged: -",
        "pushes queued: 0",
        "tariffs:",
        "  created: -",
        "  updated: -",
        "  removed: -",
        "  unchanged: -",
        "  pushes queued: 0",
    ]
    # Again, the configured site file when no path is given: nothing changes.
    second = run_cli(tmp_path, "site", "reload", OCPI_BRIDGE_SITE_FILE=str(good))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "created: -",
        "updated: -",
        "removed: -",
        "unchanged: LOC-A, LOC-B, LOC-H",
        "pushes queued: 0",
        "tariffs:",
        "  created: -",
        "  updated: -",
        "  removed: -",
        "  unchanged: -",
        "  pushes queued: 0",
    ]

    listed = run_cli(tmp_path, "locations", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "location_id\tpublished\torigin\tevses\tlast_updated"
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[:4] for row in rows] == [
        ["LOC-A", "yes", "site", "A1=UNKNOWN A2=UNKNOWN"],
        ["LOC-B", "yes", "site", "B1=UNKNOWN B2=UNKNOWN"],
        ["LOC-H", "no", "site", "H1=UNKNOWN"],
    ]
    assert len({row[4] for row in rows}) == 1  # one apply: one last_updated, unchanged since
