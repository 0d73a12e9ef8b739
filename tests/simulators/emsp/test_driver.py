"""What the simulator does on its own initiative, against the fake CPO."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from simulators.emsp.client import ErrorKind
from simulators.emsp.models import CommandResultType
from simulators.emsp.server import EmspSimulator
from tests.simulators.emsp.builders import a_location
from tests.simulators.emsp.fake_cpo import FakeCpo


@pytest.fixture
async def linked(emsp: EmspSimulator) -> AsyncIterator[FakeCpo]:
    """The simulator registered at a fake CPO serving 5 locations, 2 per page."""
    cpo = FakeCpo(locations=5, page_size=2)
    await cpo.start()
    try:
        outcome = await emsp.driver.register(cpo.versions_url, cpo.token_a)
        assert outcome.ok, outcome.message
        yield cpo
    finally:
        await cpo.stop()


async def test_pull_follows_links_and_validates_when_the_cpo_pages(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    pulled = await emsp.driver.pull("locations")

    assert pulled.ok, pulled.message
    assert [o["id"] for o in pulled.objects] == ["L00", "L01", "L02", "L03", "L04"]
    assert len(pulled.pages) == 3
    assert (pulled.total_count, pulled.limit) == (5, 2)
    assert pulled.invalid == []
    assert pulled.problems == []
    gets = [(m, p, h) for m, p, h, _ in linked.requests if p.endswith("/locations")]
    assert all(
        h["ocpi-from-party-id"] == "EMS" and h["ocpi-to-party-id"] == "CPO" for *_, h in gets
    )


async def test_pull_lists_invalid_objects_when_the_cpo_serves_them(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    linked.locations[1] = a_location("L01", last_updated="2024-01-01T00:00:01+00:00")
    pulled = await emsp.driver.pull("locations", limit=10)
    assert pulled.ok
    assert [(i["index"], i["id"]) for i in pulled.invalid] == [(1, "L01")]
    assert "last_updated" in pulled.invalid[0]["errors"]


async def test_pull_reports_the_failed_page_when_the_cpo_lacks_the_module(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    pulled = await emsp.driver.pull("tariffs")
    assert not pulled.ok
    assert "no tariffs SENDER endpoint" in pulled.message


async def test_token_is_pushed_to_the_cpo_when_added_while_registered(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    token = emsp.driver.add_token("TAG1", whitelist="ALWAYS", visual_number="VIS-1")
    result = await emsp.driver.push_token(token)

    assert result is not None
    assert result.ok
    assert result.http_status == 201
    pushed = linked.tokens["NL/EMS/TAG1/RFID"]
    assert pushed["whitelist"] == "ALWAYS"
    assert pushed["visual_number"] == "VIS-1"
    assert pushed["last_updated"].endswith("Z")


async def test_command_result_arrives_at_the_response_url_when_the_cpo_posts_it(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    emsp.driver.add_token("TAG1")
    sent = await emsp.driver.send_command(
        "START_SESSION", {"token": "TAG1", "location_id": "L00", "evse_uid": "E1"}
    )

    assert sent.response is not None
    assert sent.response.ok
    assert sent.response.data == {"result": "ACCEPTED", "timeout": 30}
    command, body = linked.commands[-1]
    assert command == "START_SESSION"
    assert body["token"]["uid"] == "TAG1"  # the uid was replaced by our Token object
    assert body["response_url"] == sent.response_url
    assert sent.response_url.endswith(f"/commands/START_SESSION/{sent.command_id}")

    answer = await linked.call("POST", body["response_url"], body={"result": "ACCEPTED"})
    assert answer.json()["status_code"] == 1000
    results = await emsp.state.wait_for(lambda: emsp.state.command_results.get(sent.command_id))
    assert results[0].result is CommandResultType.ACCEPTED


async def test_command_result_is_2001_when_posted_for_another_command_type(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    sent = await emsp.driver.send_command("STOP_SESSION", {"session_id": "S1"})
    wrong = sent.response_url.replace("STOP_SESSION", "START_SESSION")
    answer = await linked.call("POST", wrong, body={"result": "ACCEPTED"})
    assert answer.json()["status_code"] == 2001


async def test_driver_returns_not_sent_when_not_registered(emsp: EmspSimulator) -> None:
    sent = await emsp.driver.send_command("STOP_SESSION", {"session_id": "S1"})
    assert sent.response is not None
    assert sent.response.error is ErrorKind.NOT_SENT
    assert await emsp.driver.push_token(emsp.driver.add_token("X")) is None
    assert not (await emsp.driver.rotate()).ok
    assert not (await emsp.driver.unregister()).ok


async def test_functional_request_waits_for_our_handshake_when_it_uses_the_new_token(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    """The CPO may push with the token we just gave it before our handshake has stored it."""
    state = emsp.state
    assert state.peer is not None
    await state.handshake_lock.acquire()
    try:
        state.handshake_tokens.add("next-token")
        request = asyncio.create_task(
            peer.call("GET", peer.emsp_url("tariffs", "NL", "CPO", "T1"), token="next-token")
        )
        await state.wait_for(lambda: state.received_for("tariffs"))
        state.peer.token_we_accept = "next-token"
        state.handshake_tokens.discard("next-token")
    finally:
        state.handshake_lock.release()
    response = await request
    assert response.status_code == 404  # authenticated; the tariff does not exist


async def test_control_api_drives_the_registration_when_called_over_http(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    async with httpx.AsyncClient(base_url=emsp.base_url) as http:
        minted = (await http.post("/_sim/token-a")).json()
        assert minted["versions_url"] == emsp.versions_url
        assert minted["token"] in emsp.state.token_a

        registered = await http.post(
            "/_sim/register", json={"versions_url": cpo.versions_url, "token": cpo.token_a}
        )
        assert registered.json()["ok"] is True
        state = (await http.get("/_sim/state")).json()
        assert state["registered"] is True
        assert state["peer"]["roles"][0]["party_id"] == "CPO"

        added = await http.post("/_sim/tokens", json={"uid": "TAG9", "valid": False})
        assert added.json()["push"]["ok"] is True
        assert cpo.tokens["NL/EMS/TAG9/RFID"]["valid"] is False

        rotated = await http.post("/_sim/rotate")
        assert rotated.json()["ok"] is True
        received = (await http.get("/_sim/received", params={"module": "versions"})).json()
        assert received
        assert all(r["module"] == "versions" for r in received)

        unregistered = await http.post("/_sim/unregister")
        assert unregistered.json()["ok"] is True
        assert (await http.get("/_sim/state")).json()["registered"] is False


async def test_publish_token_adds_and_pushes_when_registered(
    emsp: EmspSimulator, linked: FakeCpo
) -> None:
    token, result = await emsp.driver.publish_token(
        "APP7", token_type="APP_USER", whitelist="NEVER"
    )
    assert result is not None
    assert result.ok
    assert emsp.state.find_token("app7", "APP_USER") is not None
    assert linked.tokens["NL/EMS/APP7/APP_USER"]["uid"] == token.uid
