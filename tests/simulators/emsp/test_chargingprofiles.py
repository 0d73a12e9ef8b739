"""ChargingProfiles, SENDER side: our requests to the fake CPO, the results it posts back, the
ActiveChargingProfile it pushes, the control API and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from simulators.emsp.client import ErrorKind
from simulators.emsp.models import (
    ActiveChargingProfileResult,
    ChargingProfileResponseType,
    ChargingProfileResult,
    ChargingProfileResultType,
    ClearProfileResult,
    CommandResultType,
)
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import ProfileRequestKind
from tests.simulators.emsp.fake_cpo import FakeCpo
from tests.simulators.emsp.test_cli import run_cli

PROFILE: dict[str, Any] = {
    "charging_rate_unit": "A",
    "min_charging_rate": 6.0,
    "charging_profile_period": [
        {"start_period": 0, "limit": 16.0},
        {"start_period": 900, "limit": 10.5},
    ],
}
ACTIVE = {"start_date_time": "2025-01-01T12:00:00Z", "charging_profile": PROFILE}


@pytest.fixture
async def linked(emsp: EmspSimulator) -> AsyncIterator[FakeCpo]:
    """The simulator registered at a fake CPO with a chargingprofiles RECEIVER."""
    cpo = FakeCpo()
    await cpo.start()
    try:
        outcome = await emsp.driver.register(cpo.versions_url, cpo.token_a)
        assert outcome.ok, outcome.message
        yield cpo
    finally:
        await cpo.stop()


# --- requests --------------------------------------------------------------------------------


async def test_set_charging_profile_puts_the_profile_with_a_response_url(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    sent = await emsp.driver.set_charging_profile("S 1", PROFILE)

    assert sent.ok
    assert (sent.method, sent.kind, sent.session_id) == ("PUT", ProfileRequestKind.SET, "S 1")
    assert sent.response is not None
    assert (sent.response.http_status, sent.response.status_code) == (200, 1000)
    assert sent.response_data is not None
    assert sent.response_data.result is ChargingProfileResponseType.ACCEPTED
    assert sent.response_data.timeout == 30
    method, session_id, query, body = linked.profile_requests[-1]
    assert (method, session_id, query) == ("PUT", "S 1", {})
    assert body == {"charging_profile": PROFILE, "response_url": sent.response_url}
    assert sent.response_url == (
        f"{emsp.state.endpoint_url('chargingprofiles')}/set/{sent.request_id}"
    )
    assert emsp.state.charging_profile_requests[sent.request_id] is sent
    headers = next(h for m, p, h, _ in reversed(linked.requests) if "chargingprofiles" in p)
    assert (headers["ocpi-from-party-id"], headers["ocpi-to-party-id"]) == ("EMS", "CPO")


async def test_get_and_clear_send_their_query_parameters(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    active = await emsp.driver.get_active_charging_profile("S1", 3600)
    cleared = await emsp.driver.clear_charging_profile("S1")

    assert (active.method, cleared.method) == ("GET", "DELETE")
    assert active.ok
    assert cleared.ok
    assert linked.profile_requests == [
        ("GET", "S1", {"duration": "3600", "response_url": active.response_url}, None),
        ("DELETE", "S1", {"response_url": cleared.response_url}, None),
    ]
    assert active.response_url.endswith(f"/chargingprofiles/active/{active.request_id}")
    assert cleared.response_url.endswith(f"/chargingprofiles/clear/{cleared.request_id}")
    assert active.request_id != cleared.request_id


async def test_request_record_flags_an_invalid_synchronous_answer(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    linked.profile_answer = {"result": "MAYBE", "timeout": 30}
    sent = await emsp.driver.set_charging_profile("S1", PROFILE)

    assert sent.response is not None
    assert sent.response.ok
    assert not sent.ok
    assert sent.problem is not None
    assert "ChargingProfileResponse" in sent.problem
    assert sent.to_json([])["ok"] is False


async def test_requests_are_not_sent_when_not_registered(emsp: EmspSimulator) -> None:
    sent = await emsp.driver.clear_charging_profile("S1")
    assert sent.response is not None
    assert sent.response.error is ErrorKind.NOT_SENT
    assert not sent.ok


# --- results posted by the CPO ---------------------------------------------------------------


async def test_each_result_type_is_stored_for_its_request(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    state = emsp.state
    set_request = await emsp.driver.set_charging_profile("S1", PROFILE)
    get_request = await emsp.driver.get_active_charging_profile("S1", 900)
    clear_request = await emsp.driver.clear_charging_profile("S1")

    posts = [
        (set_request.response_url, {"result": "ACCEPTED"}),
        (get_request.response_url, {"result": "ACCEPTED", "profile": ACTIVE}),
        (clear_request.response_url, {"result": "UNKNOWN"}),
    ]
    for url, body in posts:
        answer = await linked.call("POST", url, body=body)
        assert (answer.status_code, answer.json()["status_code"]) == (200, 1000)
        assert "data" not in answer.json()

    set_result = await state.wait_for_charging_profile_result(set_request.request_id)
    active_result = await state.wait_for_charging_profile_result(get_request.request_id)
    clear_result = await state.wait_for_charging_profile_result(clear_request.request_id)
    assert isinstance(set_result, ChargingProfileResult)
    assert set_result.result is ChargingProfileResultType.ACCEPTED
    assert isinstance(active_result, ActiveChargingProfileResult)
    assert active_result.profile is not None
    periods = active_result.profile.charging_profile.charging_profile_period or []
    assert [p.limit for p in periods] == [Decimal("16.0"), Decimal("10.5")]
    assert isinstance(clear_result, ClearProfileResult)
    assert clear_result.result is ChargingProfileResultType.UNKNOWN
    listing = get_request.to_json(state.charging_profile_results[get_request.request_id])
    assert listing["results"] == [{"result": "ACCEPTED", "profile": ACTIVE}]


async def test_wait_for_a_result_returns_when_it_arrives_later(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    sent = await emsp.driver.set_charging_profile("S1", PROFILE)
    waiting = asyncio.create_task(emsp.state.wait_for_charging_profile_result(sent.request_id))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await linked.call("POST", sent.response_url, body={"result": "REJECTED"})
    result = await asyncio.wait_for(waiting, 5)
    assert result.result is ChargingProfileResultType.REJECTED
    with pytest.raises(TimeoutError):
        await emsp.state.wait_for_charging_profile_result("other", timeout=0.05)


@pytest.mark.parametrize(
    ("kind", "body", "problem"),
    [
        ("set", {"result": "OK"}, "result"),
        ("set", {"result": "ACCEPTED", "extra": 1}, "extra"),
        ("clear", {"result": "NOT_SUPPORTED"}, "result"),  # a response type, not a result type
        ("active", {"result": "ACCEPTED"}, "profile is required"),
        (
            "active",
            {
                "result": "ACCEPTED",
                "profile": {**ACTIVE, "start_date_time": "2025-01-01T12:00:00+01:00"},
            },
            "start_date_time",
        ),
        (
            "active",
            {
                "result": "ACCEPTED",
                "profile": {
                    **ACTIVE,
                    "charging_profile": {
                        "charging_rate_unit": "A",
                        "charging_profile_period": [{"start_period": 0, "limit": 16.75}],
                    },
                },
            },
            "one decimal",
        ),
        (
            "active",
            {
                "result": "ACCEPTED",
                "profile": {
                    **ACTIVE,
                    "charging_profile": {
                        "charging_rate_unit": "kW",
                        "charging_profile_period": [{"start_period": 0, "limit": 11}],
                    },
                },
            },
            "charging_rate_unit",
        ),
        (
            "active",
            {
                "result": "ACCEPTED",
                "profile": {
                    **ACTIVE,
                    "charging_profile": {
                        "charging_rate_unit": "W",
                        "charging_profile_period": [
                            {"start_period": 60, "limit": 11000},
                            {"start_period": 0, "limit": 7000},
                        ],
                    },
                },
            },
            "must increase",
        ),
    ],
)
async def test_invalid_result_is_refused_with_2001(
    emsp: EmspSimulator, peer: FakeCpo, kind: str, body: dict[str, Any], problem: str
) -> None:
    url = peer.emsp_url("chargingprofiles", kind, "req-1")
    answer = await peer.call("POST", url, body=body)

    assert answer.status_code == 200
    assert answer.json()["status_code"] == 2001
    assert problem in answer.json()["status_message"]
    assert emsp.state.charging_profile_results == {}


async def test_result_is_refused_when_posted_for_another_kind_of_request(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    sent = await emsp.driver.set_charging_profile("S1", PROFILE)
    wrong = sent.response_url.replace("/set/", "/clear/")
    assert (await linked.call("POST", wrong, body={"result": "ACCEPTED"})).json()[
        "status_code"
    ] == 2001
    unknown_kind = sent.response_url.replace("/set/", "/other/")
    assert (await linked.call("POST", unknown_kind, body={"result": "ACCEPTED"})).json()[
        "status_code"
    ] == 2001
    assert emsp.state.charging_profile_results == {}


# --- ActiveChargingProfile pushed by the CPO -------------------------------------------------


async def test_active_charging_profile_put_is_stored_per_session(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("chargingprofiles", "S1")
    first = await peer.call("PUT", url, body=ACTIVE)
    changed = {**ACTIVE, "start_date_time": "2025-01-01T12:15:00Z"}
    second = await peer.call("PUT", url, body=changed)

    assert (first.status_code, first.json()["status_code"]) == (201, 1000)
    assert (second.status_code, second.json()["status_code"]) == (200, 1000)
    stored = await emsp.state.wait_for_active_charging_profile("S1")
    assert stored.start_date_time.minute == 15
    assert stored.charging_profile.min_charging_rate == Decimal("6.0")


async def test_invalid_active_charging_profile_is_refused(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    url = peer.emsp_url("chargingprofiles", "S1")
    missing = await peer.call("PUT", url, body={"charging_profile": PROFILE})
    as_text = await peer.call(
        "PUT",
        url,
        body={**ACTIVE, "charging_profile": {**PROFILE, "min_charging_rate": "6.0"}},
    )

    assert missing.json()["status_code"] == 2001
    assert "start_date_time" in missing.json()["status_message"]
    assert as_text.json()["status_code"] == 2001
    assert emsp.state.active_charging_profiles == {}


# --- control API, CLI, command results -------------------------------------------------------


async def test_control_api_sends_and_lists_charging_profile_requests(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    async with httpx.AsyncClient(base_url=emsp.base_url) as http:
        put = await http.post("/_sim/chargingprofiles/S1/set", json={"charging_profile": PROFILE})
        get = await http.post("/_sim/chargingprofiles/S1/get", params={"duration": 60})
        clear = await http.post("/_sim/chargingprofiles/S1/clear")
        for answer, method in ((put, "PUT"), (get, "GET"), (clear, "DELETE")):
            assert answer.status_code == 200
            assert answer.json()["ok"] is True
            assert answer.json()["method"] == method
            assert answer.json()["data"] == {"result": "ACCEPTED", "timeout": 30}
            assert (answer.json()["status_code"], answer.json()["http_status"]) == (1000, 200)

        await linked.call("POST", put.json()["response_url"], body={"result": "ACCEPTED"})
        listing = (await http.get("/_sim/chargingprofiles")).json()
        assert [r["method"] for r in listing["requests"]] == ["PUT", "GET", "DELETE"]
        assert listing["requests"][0]["results"] == [{"result": "ACCEPTED"}]
        one = await http.get(f"/_sim/chargingprofiles/{put.json()['request_id']}")
        assert one.json()["results"] == [{"result": "ACCEPTED"}]
        assert (await http.get("/_sim/chargingprofiles/nope")).status_code == 404
        objects = (await http.get("/_sim/objects/charging_profile_results")).json()
        assert objects == {put.json()["request_id"]: [{"result": "ACCEPTED"}]}


async def test_cli_sends_charging_profile_requests(emsp: EmspSimulator, linked: FakeCpo) -> None:
    import json

    code, out = await run_cli(emsp, "chargingprofile", "set", "S1", "--json", json.dumps(PROFILE))
    assert (code, out["method"], out["data"]["result"]) == (0, "PUT", "ACCEPTED")
    code, out = await run_cli(emsp, "chargingprofile", "get", "S1", "--duration", "120")
    assert (code, out["method"], out["params"]["duration"]) == (0, "GET", "120")
    code, out = await run_cli(emsp, "chargingprofile", "clear", "S1")
    assert (code, out["method"]) == (0, "DELETE")
    code, out = await run_cli(emsp, "chargingprofile", "list")
    assert code == 0
    assert len(out["requests"]) == 3
    code, out = await run_cli(emsp, "chargingprofile", "set", "S1", "--json", "{")
    assert code == 2


async def test_wait_for_command_result_returns_the_posted_result(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    sent = await emsp.driver.send_command("STOP_SESSION", {"session_id": "S1"})
    waiting = asyncio.create_task(emsp.state.wait_for_command_result(sent.command_id))
    await linked.call("POST", sent.response_url, body={"result": "REJECTED"})
    assert (await asyncio.wait_for(waiting, 5)).result is CommandResultType.REJECTED
