"""Locations, Sessions, CDRs, Tariffs and command results received from the CPO."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from simulators.emsp.models import CommandResultType, Status
from simulators.emsp.server import EmspSimulator
from tests.simulators.emsp.builders import (
    a_cdr,
    a_connector,
    a_location,
    a_session,
    a_tariff,
    an_evse,
)
from tests.simulators.emsp.fake_cpo import FakeCpo


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- locations --------------------------------------------------------------------------------


async def test_location_put_answers_201_then_200_when_created_then_replaced(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("locations", "NL", "CPO", "L1")
    first = await peer.call("PUT", url, body=a_location())
    second = await peer.call("PUT", url, body=a_location(name="Renamed"))

    assert (first.status_code, first.json()["status_code"]) == (201, 1000)
    assert "data" not in first.json()
    assert (second.status_code, second.json()["status_code"]) == (200, 1000)
    stored = emsp.state.location("nl", "cpo", "l1")  # CiString keys
    assert stored is not None
    assert stored.name == "Renamed"
    fetched = await peer.call("GET", url)
    assert fetched.json()["data"] == a_location(name="Renamed")


async def test_location_put_is_2001_and_not_stored_when_the_object_is_invalid(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    bad = a_location(publish="yes", country="NL", last_updated="2024-01-01T10:00:00+00:00")
    del bad["city"]
    response = await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=bad)

    assert response.status_code == 200
    message = response.json()["status_message"]
    assert response.json()["status_code"] == 2001
    for field in ("publish", "country", "city", "last_updated"):
        assert field in message
    assert not emsp.state.locations


@pytest.mark.parametrize(
    ("url_parts", "body", "message"),
    [
        (("NL", "CPO", "L2"), a_location("L1"), "differs from the URL"),
        (("NL", "XYZ", "L1"), a_location("L1", party_id="XYZ"), "not one of the CPO's roles"),
        (("NL", "CPO", "L1"), a_location("L1", party_id="XYZ"), "party_id in the body"),
    ],
)
async def test_location_put_is_2001_when_ids_or_owner_do_not_match(
    emsp: EmspSimulator,
    peer: FakeCpo,
    url_parts: tuple[str, str, str],
    body: dict[str, Any],
    message: str,
) -> None:
    response = await peer.call("PUT", peer.emsp_url("locations", *url_parts), body=body)
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]
    assert not emsp.state.locations


async def test_location_get_is_404_when_unknown(peer: FakeCpo) -> None:
    response = await peer.call("GET", peer.emsp_url("locations", "NL", "CPO", "NOPE"))
    assert response.status_code == 404
    assert response.json()["status_code"] == 2003


async def test_evse_put_inserts_it_and_bumps_the_location_when_the_location_exists(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    evse = an_evse("E2", last_updated="2024-02-01T00:00:00Z")
    response = await peer.call(
        "PUT", peer.emsp_url("locations", "NL", "CPO", "L1", "E2"), body=evse
    )

    assert response.status_code == 201
    stored = emsp.state.location("NL", "CPO", "L1")
    assert stored is not None
    assert [e.uid for e in stored.evses or []] == ["E1", "E2"]
    assert stored.last_updated == utc("2024-02-01T00:00:00Z")
    got = await peer.call("GET", peer.emsp_url("locations", "NL", "CPO", "L1", "E2"))
    assert got.json()["data"] == evse


async def test_connector_put_replaces_it_and_bumps_evse_and_location_when_both_exist(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    connector = a_connector("1", last_updated="2024-03-01T00:00:00Z") | {"max_amperage": 32}
    response = await peer.call(
        "PUT", peer.emsp_url("locations", "NL", "CPO", "L1", "E1", "1"), body=connector
    )

    assert response.status_code == 200
    stored = emsp.state.location("NL", "CPO", "L1")
    assert stored is not None
    evse = (stored.evses or [])[0]
    assert evse.connectors[0].max_amperage == 32
    assert evse.last_updated == utc("2024-03-01T00:00:00Z")
    assert stored.last_updated == utc("2024-03-01T00:00:00Z")


async def test_evse_patch_merges_fields_and_bumps_the_location_when_it_has_last_updated(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    patch = {"status": "CHARGING", "last_updated": "2024-01-02T00:00:00Z"}
    response = await peer.call(
        "PATCH", peer.emsp_url("locations", "NL", "CPO", "L1", "E1"), body=patch
    )

    assert (response.status_code, response.json()["status_code"]) == (200, 1000)
    stored = emsp.state.location("NL", "CPO", "L1")
    assert stored is not None
    evse = (stored.evses or [])[0]
    assert evse.status == Status.CHARGING
    assert evse.evse_id == "NL*CPO*EE1"  # untouched fields kept
    assert stored.last_updated == utc("2024-01-02T00:00:00Z")


async def test_patch_is_2001_when_last_updated_is_missing(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    response = await peer.call(
        "PATCH", peer.emsp_url("locations", "NL", "CPO", "L1", "E1"), body={"status": "CHARGING"}
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert "last_updated" in response.json()["status_message"]
    stored = emsp.state.location("NL", "CPO", "L1")
    assert stored is not None
    assert (stored.evses or [])[0].status == Status.AVAILABLE


@pytest.mark.parametrize(
    "parts", [("L9",), ("L1", "E9"), ("L1", "E1", "9")], ids=["location", "evse", "connector"]
)
async def test_patch_is_2001_put_it_first_when_the_object_is_unknown(
    peer: FakeCpo, parts: tuple[str, ...]
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    response = await peer.call(
        "PATCH",
        peer.emsp_url("locations", "NL", "CPO", *parts),
        body={"last_updated": "2024-01-02T00:00:00Z"},
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert response.json()["status_message"] == "unknown object, PUT it first"


async def test_location_patch_is_2001_and_nothing_changes_when_the_result_is_invalid(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("PUT", peer.emsp_url("locations", "NL", "CPO", "L1"), body=a_location())
    response = await peer.call(
        "PATCH",
        peer.emsp_url("locations", "NL", "CPO", "L1"),
        body={"name": "x" * 256, "last_updated": "2024-01-02T00:00:00Z"},
    )
    assert response.json()["status_code"] == 2001
    stored = emsp.state.location("NL", "CPO", "L1")
    assert stored is not None
    assert stored.name is None


# --- sessions ---------------------------------------------------------------------------------


async def test_session_patch_appends_charging_periods_when_given(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("sessions", "NL", "CPO", "S1")
    period = {
        "start_date_time": "2024-01-01T10:00:00Z",
        "dimensions": [{"type": "ENERGY", "volume": 1.5}],
    }
    created = await peer.call("PUT", url, body=a_session(charging_periods=[period]))
    assert created.status_code == 201
    second = {**period, "start_date_time": "2024-01-01T10:15:00Z"}
    patch = {"kwh": 3.25, "charging_periods": [second], "last_updated": "2024-01-01T10:15:00Z"}
    response = await peer.call("PATCH", url, body=patch)

    assert response.json()["status_code"] == 1000
    session = emsp.state.session("NL", "CPO", "S1")
    assert session is not None
    assert session.kwh == Decimal("3.25")
    assert [p.start_date_time for p in session.charging_periods or []] == [
        utc("2024-01-01T10:00:00Z"),
        utc("2024-01-01T10:15:00Z"),
    ]
    fetched = (await peer.call("GET", url)).json()["data"]
    assert fetched["kwh"] == 3.25
    assert len(fetched["charging_periods"]) == 2


async def test_session_put_is_2001_when_the_status_is_not_an_enum_value(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    response = await peer.call(
        "PUT", peer.emsp_url("sessions", "NL", "CPO", "S1"), body=a_session(status="RESERVED")
    )
    assert response.json()["status_code"] == 2001
    assert "status" in response.json()["status_message"]
    assert not emsp.state.sessions


# --- cdrs -------------------------------------------------------------------------------------


async def test_cdr_post_stores_it_and_answers_its_location_when_new(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    response = await peer.call("POST", peer.emsp_url("cdrs"), body=a_cdr())

    assert response.status_code == 201
    assert response.json()["status_code"] == 1000
    location = response.headers["Location"]
    assert location == f"{emsp.base_url}/ocpi/emsp/2.2.1/cdrs/C1"
    cdr = emsp.state.cdr("NL", "CPO", "C1")
    assert cdr is not None
    assert cdr.total_cost.excl_vat == Decimal("2.63")
    fetched = await peer.call("GET", location)
    assert fetched.json()["data"] == a_cdr()


async def test_cdr_post_is_2001_without_a_second_copy_when_the_id_repeats(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    await peer.call("POST", peer.emsp_url("cdrs"), body=a_cdr())
    again = await peer.call("POST", peer.emsp_url("cdrs"), body=a_cdr(total_energy=99))
    assert again.json()["status_code"] == 2001
    assert len(emsp.state.cdrs) == 1
    cdr = emsp.state.cdr("NL", "CPO", "C1")
    assert cdr is not None
    assert cdr.total_energy == Decimal("10.5")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"party_id": "XYZ"}, "not one of the CPO's roles"),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2024-01-01T10:00:00Z",
                        "dimensions": [{"type": "POWER", "volume": 11}],
                    }
                ]
            },
            "Session-only",
        ),
        ({"total_cost": {"excl_vat": "2.63"}}, "total_cost.excl_vat"),
    ],
)
async def test_cdr_post_is_2001_when_invalid(
    emsp: EmspSimulator, peer: FakeCpo, change: dict[str, Any], message: str
) -> None:
    response = await peer.call("POST", peer.emsp_url("cdrs"), body=a_cdr(**change))
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]
    assert not emsp.state.cdrs


async def test_cdr_get_is_404_when_unknown(peer: FakeCpo) -> None:
    response = await peer.call("GET", peer.emsp_url("cdrs", "NOPE"))
    assert response.status_code == 404
    assert response.json()["status_code"] == 2000


# --- tariffs ----------------------------------------------------------------------------------


async def test_tariff_is_stored_then_deleted_when_put_then_deleted(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    tariff = a_tariff()
    url = peer.emsp_url("tariffs", "NL", "CPO", "T1")
    assert (await peer.call("PUT", url, body=tariff)).status_code == 201
    assert (await peer.call("GET", url)).json()["data"] == tariff
    deleted = await peer.call("DELETE", url)
    assert (deleted.status_code, deleted.json()["status_code"]) == (200, 1000)
    assert not emsp.state.tariffs
    assert (await peer.call("DELETE", url)).status_code == 404
    assert (await peer.call("GET", url)).status_code == 404


# --- command results --------------------------------------------------------------------------


async def test_command_result_is_recorded_per_command_id_when_valid(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("commands", "START_SESSION", "cmd-1")
    response = await peer.call("POST", url, body={"result": "ACCEPTED"})
    assert response.status_code == 200
    assert response.json()["status_code"] == 1000
    assert "data" not in response.json()
    assert [r.result for r in emsp.state.command_results["cmd-1"]] == [CommandResultType.ACCEPTED]


async def test_command_result_is_2001_when_the_result_is_unknown(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("commands", "START_SESSION", "cmd-1")
    response = await peer.call("POST", url, body={"result": "OK"})
    assert response.json()["status_code"] == 2001
    assert "cmd-1" not in emsp.state.command_results


async def test_wait_for_returns_the_object_when_it_arrives_later(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    import asyncio

    body = copy.deepcopy(a_session("S7"))
    push = asyncio.create_task(
        peer.call("PUT", peer.emsp_url("sessions", "NL", "CPO", "S7"), body=body)
    )
    session = await emsp.state.wait_for(lambda: emsp.state.session("NL", "CPO", "S7"), 5)
    assert session.id == "S7"
    await push
