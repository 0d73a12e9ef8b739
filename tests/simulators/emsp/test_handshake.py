"""Versions and credentials, in both handshake directions, over real HTTP."""

from __future__ import annotations

import pytest

from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import AuthKind
from tests.simulators.emsp.fake_cpo import FakeCpo


async def test_versions_lists_2_2_1_with_endpoints_when_asked_with_token_a(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    listing = await cpo.call("GET", emsp.versions_url, token=token_a, routing=False)
    assert listing.status_code == 200
    assert listing.json()["data"] == [
        {"version": "2.2.1", "url": f"{emsp.base_url}/ocpi/emsp/2.2.1"}
    ]
    details = await cpo.call("GET", listing.json()["data"][0]["url"], token=token_a, routing=False)
    endpoints = {
        (e["identifier"], e["role"]): e["url"] for e in details.json()["data"]["endpoints"]
    }
    assert set(endpoints) == {
        ("credentials", "SENDER"),
        ("locations", "RECEIVER"),
        ("sessions", "RECEIVER"),
        ("cdrs", "RECEIVER"),
        ("tariffs", "RECEIVER"),
        ("commands", "SENDER"),
        ("chargingprofiles", "SENDER"),
        ("tokens", "SENDER"),
    }
    assert all(not url.endswith("/") for url in endpoints.values())


async def test_versions_advertises_only_configured_versions_when_configured(
    cpo: FakeCpo,
) -> None:
    async with EmspSimulator(port=0, versions=("2.1.1",)) as sim:
        token_a = sim.driver.mint_token_a()
        listing = await cpo.call("GET", sim.versions_url, token=token_a, routing=False)
    assert [v["version"] for v in listing.json()["data"]] == ["2.1.1"]


async def test_cpo_registers_when_it_posts_credentials_with_token_a(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    response = await cpo.register_at(emsp.versions_url, token_a)

    body = response.json()
    assert response.status_code == 200
    assert body["status_code"] == 1000
    token_c = body["data"]["token"]
    assert body["data"]["url"] == emsp.versions_url
    assert body["data"]["roles"] == [
        {
            "role": "EMSP",
            "business_details": {"name": "Example eMSP"},
            "party_id": "EMS",
            "country_code": "NL",
        }
    ]
    peer = emsp.state.peer
    assert peer is not None
    assert peer.registered_by == "cpo"
    assert peer.token_we_accept == token_c
    assert peer.token_we_present in cpo.accepted  # the CPO's token B
    assert peer.endpoint("locations") == f"{cpo.base}/2.2.1/locations"
    # The simulator fetched the CPO's versions and details with token B, base64-encoded.
    fetched = [(m, p, h["authorization"]) for m, p, h, _ in cpo.requests if m == "GET"]
    assert ("GET", "/ocpi/cpo/versions", f"Token {_b64(peer.token_we_present)}") in fetched
    # Token A is dead, token C works on a functional module.
    assert emsp.state.identify(token_a) is None
    again = await cpo.call("GET", emsp.versions_url, token=token_a, routing=False)
    assert again.status_code == 401
    tariff = await cpo.call("GET", cpo.emsp_url("tariffs", "NL", "CPO", "T1"))
    assert tariff.status_code == 404


async def test_post_answers_405_when_the_cpo_is_already_registered(
    emsp: EmspSimulator, registered: FakeCpo
) -> None:
    response = await registered.call(
        "POST",
        registered.emsp_endpoints["credentials"],
        body=registered.credentials("another-token"),
        routing=False,
    )
    assert response.status_code == 405
    assert response.json()["status_code"] == 2000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": "has space"}, "token"),
        ({"token": "x" * 65}, "token"),
        ({"roles": []}, "roles"),
        ({"url": None}, "url"),
    ],
)
async def test_post_answers_2001_when_the_credentials_are_invalid(
    emsp: EmspSimulator, cpo: FakeCpo, change: dict[str, object], message: str
) -> None:
    token_a = emsp.driver.mint_token_a()
    body = {**cpo.credentials("fine-token"), **change}
    response = await cpo.call(
        "POST",
        f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
        token=token_a,
        body=body,
        routing=False,
    )
    assert response.status_code == 200
    assert response.json()["status_code"] == 2001
    assert message in response.json()["status_message"]
    assert emsp.state.peer is None
    assert token_a in emsp.state.token_a


async def test_post_answers_3001_when_the_cpo_versions_cannot_be_fetched(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    body = cpo.credentials("unknown-to-the-cpo")  # the CPO answers 401 to this token
    response = await cpo.call(
        "POST",
        f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
        token=token_a,
        body=body,
        routing=False,
    )
    assert response.json()["status_code"] == 3001
    assert emsp.state.peer is None
    assert emsp.state.identify(token_a) is AuthKind.TOKEN_A


async def test_post_answers_3002_when_the_cpo_lacks_2_2_1(emsp: EmspSimulator) -> None:
    cpo = FakeCpo(versions=("2.1.1",))
    await cpo.start()
    try:
        token_a = emsp.driver.mint_token_a()
        cpo.accepted.add("b-token")
        response = await cpo.call(
            "POST",
            f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
            token=token_a,
            body=cpo.credentials("b-token"),
            routing=False,
        )
    finally:
        await cpo.stop()
    assert response.json()["status_code"] == 3002
    assert emsp.state.peer is None
    assert token_a in emsp.state.token_a


async def test_post_answers_3003_when_the_cpo_has_no_credentials_endpoint(
    emsp: EmspSimulator,
) -> None:
    cpo = FakeCpo(with_credentials=False)
    await cpo.start()
    try:
        token_a = emsp.driver.mint_token_a()
        cpo.accepted.add("b-token")
        response = await cpo.call(
            "POST",
            f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
            token=token_a,
            body=cpo.credentials("b-token"),
            routing=False,
        )
    finally:
        await cpo.stop()
    assert response.json()["status_code"] == 3003
    assert emsp.state.peer is None


async def test_get_credentials_returns_the_token_the_caller_uses_when_registered(
    emsp: EmspSimulator, registered: FakeCpo
) -> None:
    response = await registered.call("GET", registered.emsp_endpoints["credentials"], routing=False)
    assert response.json()["data"]["token"] == registered.emsp_token


async def test_cpo_rotates_when_it_puts_new_credentials(
    emsp: EmspSimulator, registered: FakeCpo
) -> None:
    old_token = registered.emsp_token
    response = await registered.rotate()

    assert response.json()["status_code"] == 1000
    peer = emsp.state.peer
    assert peer is not None
    assert registered.emsp_token != old_token
    assert peer.token_we_accept == registered.emsp_token
    assert peer.token_we_present in registered.accepted
    stale = await registered.call(
        "GET", registered.emsp_url("tariffs", "NL", "CPO", "T1"), token=old_token
    )
    assert stale.status_code == 401
    fresh = await registered.call("GET", registered.emsp_url("tariffs", "NL", "CPO", "T1"))
    assert fresh.status_code == 404


async def test_put_answers_405_when_the_caller_uses_token_a(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    response = await cpo.call(
        "PUT",
        f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
        token=token_a,
        body=cpo.credentials("x-token"),
        routing=False,
    )
    assert response.status_code == 405


async def test_cpo_unregisters_when_it_deletes_credentials(
    emsp: EmspSimulator, registered: FakeCpo
) -> None:
    token = registered.emsp_token
    response = await registered.unregister()
    assert response.status_code == 200
    assert response.json()["status_code"] == 1000
    assert emsp.state.peer is None
    again = await registered.call(
        "DELETE", registered.emsp_endpoints["credentials"], token=token, routing=False
    )
    assert again.status_code == 401


async def test_delete_answers_405_when_not_registered(emsp: EmspSimulator, cpo: FakeCpo) -> None:
    token_a = emsp.driver.mint_token_a()
    response = await cpo.call(
        "DELETE", f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials", token=token_a, routing=False
    )
    assert response.status_code == 405


async def test_emsp_registers_at_the_cpo_when_given_its_token_a(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    outcome = await emsp.driver.register(cpo.versions_url, cpo.token_a)

    assert outcome.ok, outcome.message
    peer = emsp.state.peer
    assert peer is not None
    assert peer.registered_by == "emsp"
    assert peer.token_we_present in cpo.accepted  # token C from the CPO
    assert peer.token_we_accept == cpo.emsp_token  # token B we gave
    assert cpo.token_a not in cpo.accepted
    # During our POST the CPO fetched our versions/details with token B.
    assert emsp.state.received_for("versions")[-1].auth is not None
    assert not emsp.state.handshake_tokens
    # The CPO can now push with token B.
    response = await cpo.call("GET", cpo.emsp_url("tariffs", "NL", "CPO", "T9"))
    assert response.status_code == 404


async def test_register_fails_without_state_change_when_the_token_a_is_wrong(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    outcome = await emsp.driver.register(cpo.versions_url, "not-the-token")
    assert not outcome.ok
    assert outcome.status_code == 3001
    assert outcome.result is not None
    assert outcome.result.http_status == 401
    assert emsp.state.peer is None


async def test_emsp_rotates_at_the_cpo_when_registered_there(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    assert (await emsp.driver.register(cpo.versions_url, cpo.token_a)).ok
    peer = emsp.state.peer
    assert peer is not None
    before = (peer.token_we_accept, peer.token_we_present)

    outcome = await emsp.driver.rotate()

    assert outcome.ok, outcome.message
    assert peer.token_we_accept != before[0]
    assert peer.token_we_present != before[1]
    assert peer.token_we_accept == cpo.emsp_token
    assert peer.token_we_present in cpo.accepted
    put = [r for r in cpo.requests if r[0] == "PUT" and r[1].endswith("/credentials")]
    assert put[-1][2]["authorization"] == f"Token {_b64(before[1])}"


async def test_emsp_unregisters_at_the_cpo_when_registered_there(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    assert (await emsp.driver.register(cpo.versions_url, cpo.token_a)).ok
    outcome = await emsp.driver.unregister()
    assert outcome.ok
    assert emsp.state.peer is None
    assert cpo.emsp_token is None


def _b64(token: str) -> str:
    import base64

    return base64.b64encode(token.encode()).decode()


async def test_post_answers_2001_when_the_credentials_have_no_cpo_role(
    emsp: EmspSimulator, cpo: FakeCpo
) -> None:
    token_a = emsp.driver.mint_token_a()
    body = cpo.credentials("b-token")
    body["roles"][0]["role"] = "EMSP"
    response = await cpo.call(
        "POST",
        f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials",
        token=token_a,
        body=body,
        routing=False,
    )
    assert response.json()["status_code"] == 2001
    assert "no CPO" in response.json()["status_message"]
    assert emsp.state.peer is None


async def test_simulator_sends_raw_tokens_when_encoding_is_off(emsp: EmspSimulator) -> None:
    token_a = emsp.driver.mint_token_a()
    emsp.client.encode_token = False
    result = await emsp.client.request("GET", emsp.versions_url, token=token_a, functional=False)
    assert result.ok
    assert emsp.state.received[-1].headers["authorization"] == f"Token {token_a}"
    assert emsp.state.received[-1].token_encoding == "raw"


async def test_simulator_restarts_on_a_new_port_when_stopped_and_started() -> None:
    sim = EmspSimulator(port=0)
    await sim.start()
    await sim.stop()
    await sim.start()
    try:
        token_a = sim.driver.mint_token_a()
        result = await sim.client.request("GET", sim.versions_url, token=token_a, functional=False)
        assert result.ok
    finally:
        await sim.stop()
    with pytest.raises(TypeError):
        EmspSimulator(no_such_setting=1)
