"""The credentials handshake end to end, over real HTTP between the bridge and the eMSP
simulator (both on 127.0.0.1): both directions, rotation and unregistration both ways, many
partners, and a peer whose versions cannot be used."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.main import BridgeApp
from bridge.ocpi.models import InterfaceRole, ModuleID
from bridge.partners import ExpectedRole, Partner, PartnerStatus
from bridge.registration import PartnerOperationFailed
from bridge.store.tables import PartnerRow
from simulators.emsp.server import EmspSimulator
from simulators.emsp.wire import InterfaceRole as SimRole
from tests.conftest import running_bridge

CPO = {"country_code": "NL", "party_id": "CPO"}


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(tmp_path, **CPO) as app:
        yield app


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


def versions_url(app: BridgeApp) -> str:
    return f"http://127.0.0.1:{app.http_port}/ocpi/versions"


async def token_a_for(app: BridgeApp, party: str = "EMS") -> tuple[Partner, str]:
    partner = await app.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id=party)
    )
    assert partner.token_accept is not None
    return partner, partner.token_accept


async def get_versions(app: BridgeApp, token: str) -> int:
    """HTTP status of our versions endpoint called with ``token`` (base64, as 2.2.1 says)."""
    import base64

    async with httpx.AsyncClient() as client:
        response = await client.get(
            versions_url(app),
            headers={"Authorization": "Token " + base64.b64encode(token.encode()).decode()},
        )
    return response.status_code


async def emsp_registers(app: BridgeApp, sim: EmspSimulator) -> Partner:
    partner, token_a = await token_a_for(app)
    result = await sim.driver.register(versions_url(app), token_a)
    assert result.ok, result.message
    return await app.partners.get(partner.id)


async def bridge_registers(app: BridgeApp, sim: EmspSimulator) -> Partner:
    return await app.partners.register(
        sim.versions_url,
        sim.driver.mint_token_a(),
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS"),
    )


# --- the two directions ------------------------------------------------------------------


async def test_emsp_registers_with_the_bridge_when_given_token_a(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner, token_a = await token_a_for(cpo)
    result = await emsp.driver.register(versions_url(cpo), token_a)
    assert result.ok, result.message

    partner = await cpo.partners.get(partner.id)
    peer = emsp.state.peer
    assert peer is not None
    assert partner.status is PartnerStatus.REGISTERED
    assert [(r.role.value, r.country_code, r.party_id) for r in partner.roles] == [
        ("EMSP", "DE", "EMS")
    ]
    assert partner.version == "2.2.1"
    assert (
        partner.endpoint_url(ModuleID.LOCATIONS, InterfaceRole.RECEIVER)
        == f"{emsp.base_url}/ocpi/emsp/2.2.1/locations"
    )
    # Tokens kept apart: each side presents what the other issued.
    assert partner.token_present == peer.token_we_accept
    assert partner.token_accept == peer.token_we_present
    assert partner.token_accept != token_a
    assert [(r.role, r.country_code, r.party_id) for r in peer.roles] == [("CPO", "NL", "CPO")]
    # Token A is dead, token C works.
    assert await get_versions(cpo, token_a) == 401
    assert await get_versions(cpo, peer.token_we_present) == 200
    # The eMSP fetched our versions with token A, we fetched its versions with its token B.
    fetched = [r for r in emsp.state.received if r.path.endswith(("/versions", "/2.2.1"))]
    assert {r.auth for r in fetched} == {"handshake"}
    assert all(r.token_encoding == "base64" for r in fetched)


async def test_bridge_registers_with_the_emsp_when_given_its_token_a(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner = await bridge_registers(cpo, emsp)

    peer = emsp.state.peer
    assert peer is not None
    assert peer.registered_by == "cpo"
    assert partner.status is PartnerStatus.REGISTERED
    assert partner.token_present == peer.token_we_accept
    assert partner.token_accept == peer.token_we_present
    assert partner.versions_url == emsp.versions_url
    assert partner.credentials_url() == f"{emsp.base_url}/ocpi/emsp/2.2.1/credentials"
    assert await get_versions(cpo, peer.token_we_present) == 200
    # The eMSP can use its token on our credentials endpoint and sees itself registered.
    reply = await emsp.driver.call("credentials", "GET")
    assert reply.ok
    assert reply.data["token"] == peer.token_we_present


# --- rotation ------------------------------------------------------------------------------


async def test_bridge_rotates_tokens_when_asked(cpo: BridgeApp, emsp: EmspSimulator) -> None:
    before = await emsp_registers(cpo, emsp)
    after = await cpo.partners.rotate(before.id)

    peer = emsp.state.peer
    assert peer is not None
    assert after.token_accept not in (None, before.token_accept)
    assert after.token_present not in (None, before.token_present)
    assert after.token_accept == peer.token_we_present
    assert after.token_present == peer.token_we_accept
    assert before.token_accept is not None
    assert await get_versions(cpo, before.token_accept) == 401
    assert await get_versions(cpo, peer.token_we_present) == 200
    assert (await emsp.driver.call("credentials", "GET")).ok


async def test_emsp_rotates_tokens_with_a_credentials_put(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    before = await emsp_registers(cpo, emsp)
    result = await emsp.driver.rotate()
    assert result.ok, result.message

    after = await cpo.partners.get(before.id)
    peer = emsp.state.peer
    assert peer is not None
    assert after.status is PartnerStatus.REGISTERED
    assert after.token_accept == peer.token_we_present != before.token_accept
    assert after.token_present == peer.token_we_accept != before.token_present
    assert before.token_accept is not None
    assert await get_versions(cpo, before.token_accept) == 401


async def pending_token(app: BridgeApp, partner_id: int) -> str | None:
    async with app.db.read() as session:
        row = await session.get(PartnerRow, partner_id)
        assert row is not None
        return row.token_accept_pending


async def test_rotation_changes_nothing_when_the_emsp_refuses(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    before = await emsp_registers(cpo, emsp)
    emsp.state.faults.status("credentials", "PUT", status_code=2001, message="no")

    with pytest.raises(PartnerOperationFailed, match="rotation refused"):
        await cpo.partners.rotate(before.id)

    after = await cpo.partners.get(before.id)
    assert (after.token_accept, after.token_present) == (before.token_accept, before.token_present)
    assert await pending_token(cpo, before.id) is None
    assert before.token_accept is not None
    assert await get_versions(cpo, before.token_accept) == 200
    emsp.state.faults.clear()
    assert (await emsp.driver.call("credentials", "GET")).ok


@pytest.mark.parametrize("fault", ["http-500", "timeout"])
async def test_rotation_keeps_both_our_tokens_when_the_outcome_is_unknown(
    tmp_path: Path, emsp: EmspSimulator, fault: str
) -> None:
    async with running_bridge(tmp_path, ocpi_timeout=0.3, **CPO) as app:
        before = await emsp_registers(app, emsp)
        if fault == "timeout":
            emsp.state.faults.delay("credentials", "PUT", seconds=2)
        else:
            emsp.state.faults.http_error("credentials", "PUT", status=500)

        with pytest.raises(PartnerOperationFailed, match="outcome unknown"):
            await app.partners.rotate(before.id)

        after = await app.partners.get(before.id)
        assert (after.token_accept, after.token_present) == (
            before.token_accept,
            before.token_present,
        )
        new_token = await pending_token(app, before.id)
        assert new_token is not None
        assert before.token_accept is not None
        # The partner may have kept either token: both open our endpoints.
        assert await get_versions(app, before.token_accept) == 200
        assert await get_versions(app, new_token) == 200
        # A later rotation settles it.
        emsp.state.faults.clear()
        settled = await app.partners.rotate(before.id)
        assert await pending_token(app, before.id) is None
        assert settled.token_accept is not None
        assert await get_versions(app, settled.token_accept) == 200


# --- unregistration ------------------------------------------------------------------------


async def test_bridge_unregisters_with_a_credentials_delete(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner = await emsp_registers(cpo, emsp)
    peer = emsp.state.peer
    assert peer is not None
    unregistered = await cpo.partners.unregister(partner.id)

    assert unregistered.status is PartnerStatus.UNREGISTERED
    assert unregistered.token_accept is None
    assert unregistered.token_present is None
    assert emsp.state.peer is None
    assert await get_versions(cpo, peer.token_we_present) == 401


async def test_emsp_unregisters_with_a_credentials_delete(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner = await bridge_registers(cpo, emsp)
    peer = emsp.state.peer
    assert peer is not None
    result = await emsp.driver.unregister()
    assert result.ok, result.message

    after = await cpo.partners.get(partner.id)
    assert after.status is PartnerStatus.UNREGISTERED
    assert await get_versions(cpo, peer.token_we_present) == 401
    # Its roles are free again: the same party can register anew.
    again = await emsp_registers(cpo, emsp)
    assert again.status is PartnerStatus.REGISTERED


async def test_unregistration_changes_nothing_when_the_emsp_fails_unless_forced(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner = await emsp_registers(cpo, emsp)
    emsp.state.faults.http_error("credentials", "DELETE", status=500)

    with pytest.raises(PartnerOperationFailed, match="unregistration refused"):
        await cpo.partners.unregister(partner.id)
    assert (await cpo.partners.get(partner.id)).status is PartnerStatus.REGISTERED

    forced = await cpo.partners.unregister(partner.id, force=True)
    assert forced.status is PartnerStatus.UNREGISTERED
    with pytest.raises(PartnerOperationFailed, match="already unregistered"):
        await cpo.partners.unregister(partner.id)


# --- a peer whose API cannot be used ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "fault", "status_code"),
    [
        ({"versions": ("2.1.1",)}, None, 3002),
        ({"endpoints": (("locations", SimRole.RECEIVER),)}, None, 3003),
        ({}, ("versions", 500), 3001),
        ({}, ("versions", "not-json"), 3001),
    ],
)
async def test_emsp_registration_answers_300x_when_its_versions_cannot_be_used(
    cpo: BridgeApp,
    config: dict[str, object],
    fault: tuple[str, object] | None,
    status_code: int,
) -> None:
    partner, token_a = await token_a_for(cpo)
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS", **config) as sim:
        if fault is not None and fault[1] == 500:
            sim.state.faults.http_error(fault[0], "GET", status=500)
        elif fault is not None:
            sim.state.faults.status(fault[0], "GET", status_code=3000, message="broken")
        result = await sim.driver.register(versions_url(cpo), token_a)

    assert not result.ok
    assert result.result is not None
    assert result.result.http_status == 200
    assert result.result.status_code == status_code
    unchanged = await cpo.partners.get(partner.id)
    assert unchanged.status is PartnerStatus.PENDING
    assert unchanged.token_accept == token_a
    assert unchanged.roles == ()
    assert await get_versions(cpo, token_a) == 200


@pytest.mark.parametrize(
    ("config", "fault", "message"),
    [
        ({"versions": ("2.1.1",)}, None, "OCPI 3002"),
        ({"endpoints": (("locations", SimRole.RECEIVER),)}, None, "OCPI 3003"),
        ({}, ("versions", "GET"), "OCPI 3001"),
        ({}, ("credentials", "POST"), "registration refused"),
    ],
)
async def test_bridge_registration_stores_nothing_when_the_emsp_cannot_be_used(
    cpo: BridgeApp,
    config: dict[str, object],
    fault: tuple[str, str] | None,
    message: str,
) -> None:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS", **config) as sim:
        if fault is not None:
            sim.state.faults.http_error(fault[0], fault[1], status=500)
        with pytest.raises(PartnerOperationFailed, match=message):
            await cpo.partners.register(sim.versions_url, sim.driver.mint_token_a())
        assert sim.state.peer is None
    assert await cpo.partners.list() == []


async def test_bridge_registration_fails_when_versions_url_unreachable(cpo: BridgeApp) -> None:
    with pytest.raises(PartnerOperationFailed, match=r"OCPI 3001.*unreachable"):
        await cpo.partners.register("http://127.0.0.1:1/ocpi/versions", "token-a")
    assert await cpo.partners.list() == []


async def test_bridge_undoes_registration_when_the_emsp_is_not_the_expected_party(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    with pytest.raises(PartnerOperationFailed, match="issued for DE/XYZ"):
        await cpo.partners.register(
            emsp.versions_url,
            emsp.driver.mint_token_a(),
            expected=ExpectedRole(role="EMSP", country_code="DE", party_id="XYZ"),
        )
    assert await cpo.partners.list() == []
    assert emsp.state.peer is None  # the DELETE undid the registration at the eMSP


async def test_emsp_post_answers_405_when_already_registered(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await emsp_registers(cpo, emsp)
    reply = await emsp.driver.call(
        "credentials",
        "POST",
        body={
            "token": "another-token",
            "url": emsp.versions_url,
            "roles": [
                {
                    "role": "EMSP",
                    "country_code": "DE",
                    "party_id": "EMS",
                    "business_details": {"name": "x"},
                }
            ],
        },
    )
    assert reply.http_status == 405
    assert (await emsp.driver.call("credentials", "GET")).ok


# --- many partners -----------------------------------------------------------------------------


async def test_many_partners_register_each_with_its_own_tokens_and_endpoints(
    cpo: BridgeApp,
) -> None:
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as first,
        EmspSimulator(port=0, country_code="DE", party_id="TWO") as second,
        EmspSimulator(port=0, country_code="FR", party_id="TRI") as third,
    ):
        one = await emsp_registers(cpo, first)
        _, token_two = await token_a_for(cpo, party="TWO")
        assert (await second.driver.register(versions_url(cpo), token_two)).ok
        three = await cpo.partners.register(third.versions_url, third.driver.mint_token_a())

        partners = {p.id: p for p in await cpo.partners.list()}
        assert len(partners) == 3
        assert all(p.status is PartnerStatus.REGISTERED for p in partners.values())
        assert len({p.token_accept for p in partners.values()}) == 3
        assert {p.credentials_url() for p in partners.values()} == {
            f"{sim.base_url}/ocpi/emsp/2.2.1/credentials" for sim in (first, second, third)
        }
        # Rotating one partner leaves the others alone.
        await cpo.partners.rotate(three.id)
        assert (await first.driver.call("credentials", "GET")).ok
        assert (await second.driver.call("credentials", "GET")).ok
        assert (await third.driver.call("credentials", "GET")).ok
        assert (await cpo.partners.get(one.id)).token_accept == one.token_accept


async def test_second_partner_answers_2001_when_its_role_is_taken(cpo: BridgeApp) -> None:
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as first,
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as copycat,
    ):
        await emsp_registers(cpo, first)
        partner, token_a = await token_a_for(cpo)
        result = await copycat.driver.register(versions_url(cpo), token_a)
        assert not result.ok
        assert result.result is not None
        assert result.result.status_code == 2001
        assert "already registered by another partner" in (result.result.status_message or "")
        assert (await cpo.partners.get(partner.id)).status is PartnerStatus.PENDING


# --- hostile or broken input from a partner --------------------------------------------------


def emsp_credentials(token: str, url: str, *parties: tuple[str, str, str]) -> dict[str, object]:
    return {
        "token": token,
        "url": url,
        "roles": [
            {
                "role": role,
                "country_code": country,
                "party_id": party,
                "business_details": {"name": "eMSP"},
            }
            for role, country, party in (parties or (("EMSP", "DE", "EMS"),))
        ],
    }


async def post_credentials(app: BridgeApp, token: str, body: dict[str, object]) -> httpx.Response:
    import base64

    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(
            f"http://127.0.0.1:{app.http_port}/ocpi/2.2.1/credentials",
            headers={"Authorization": "Token " + base64.b64encode(token.encode()).decode()},
            json=body,
        )


async def test_registration_does_not_echo_what_another_server_answered(cpo: BridgeApp) -> None:
    _, token_a = await token_a_for(cpo)
    own_health = f"http://127.0.0.1:{cpo.http_port}/health"
    response = await post_credentials(cpo, token_a, emsp_credentials("token-b", own_health))
    body = response.json()
    assert body["status_code"] == 3001
    assert "invalid-response" in body["status_message"]
    assert "connected_chargers" not in response.text


@pytest.mark.parametrize("url", ["http://[::1/versions", "http://127.0.0.1:99999/versions"])
async def test_registration_answers_3001_when_the_versions_url_is_malformed(
    cpo: BridgeApp, url: str
) -> None:
    partner, token_a = await token_a_for(cpo)
    response = await post_credentials(cpo, token_a, emsp_credentials("token-b", url))
    assert response.status_code == 200
    assert response.json()["status_code"] == 3001
    assert (await cpo.partners.get(partner.id)).status is PartnerStatus.PENDING


async def test_registration_answers_2001_when_claiming_a_party_not_issued_for(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    await emsp_registers(cpo, emsp)  # DE/EMS belongs to this partner
    partner, token_a = await token_a_for(cpo, party="TWO")
    response = await post_credentials(
        cpo,
        token_a,
        emsp_credentials(
            "token-b", emsp.versions_url, ("EMSP", "DE", "TWO"), ("OTHER", "DE", "EMS")
        ),
    )
    assert response.json()["status_code"] == 2001
    assert "issued for DE/TWO (EMSP)" in response.json()["status_message"]
    assert (await cpo.partners.get(partner.id)).status is PartnerStatus.PENDING


async def test_only_one_of_two_simultaneous_registrations_with_one_token_a_wins(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    import asyncio

    partner, token_a = await token_a_for(cpo)
    bodies = [emsp_credentials(emsp.driver.mint_token_a(), emsp.versions_url) for _ in range(2)]
    responses = await asyncio.gather(*(post_credentials(cpo, token_a, b) for b in bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 405]
    winner = next(r for r in responses if r.status_code == 200).json()
    assert winner["status_code"] == 1000
    registered = await cpo.partners.get(partner.id)
    assert registered.status is PartnerStatus.REGISTERED
    assert registered.token_accept == winner["data"]["token"]


async def test_partner_put_changes_nothing_when_its_new_versions_url_is_unreachable(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    before = await emsp_registers(cpo, emsp)
    assert before.token_accept is not None
    async with httpx.AsyncClient(timeout=10) as client:
        import base64

        response = await client.put(
            f"http://127.0.0.1:{cpo.http_port}/ocpi/2.2.1/credentials",
            headers={
                "Authorization": "Token " + base64.b64encode(before.token_accept.encode()).decode()
            },
            json=emsp_credentials("new-token-b", "http://127.0.0.1:1/ocpi/versions"),
        )
    assert response.json()["status_code"] == 3001
    after = await cpo.partners.get(before.id)
    assert (after.token_accept, after.token_present) == (before.token_accept, before.token_present)
    assert (await emsp.driver.call("credentials", "GET")).ok


# --- the admin API drives the same operations ------------------------------------------------


async def test_admin_api_registers_and_unregisters_with_the_emsp(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    admin = {"Authorization": "Bearer admin-token-0123456789"}
    async with (
        running_bridge(tmp_path, admin_token="admin-token-0123456789", **CPO) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http_port}", timeout=10) as client,
    ):
        refused = await client.post(
            "/admin/partners/register",
            headers=admin,
            json={"versions_url": "http://127.0.0.1:1/ocpi/versions", "token": "token-a"},
        )
        assert refused.status_code == 502
        assert "OCPI 3001" in refused.json()["status_message"]

        created = await client.post(
            "/admin/partners/register",
            headers=admin,
            json={
                "versions_url": emsp.versions_url,
                "token": emsp.driver.mint_token_a(),
                "country_code": "DE",
                "party_id": "EMS",
            },
        )
        assert created.status_code == 201, created.text
        partner_id = created.json()["data"]["id"]
        assert created.json()["data"]["status"] == "REGISTERED"
        peer = emsp.state.peer
        assert peer is not None
        assert peer.token_we_accept not in created.text
        assert peer.token_we_present not in created.text

        emsp.state.faults.http_error("credentials", "DELETE", status=500, count=1)
        failed = await client.post(f"/admin/partners/{partner_id}/unregister", headers=admin)
        assert failed.status_code == 502
        done = await client.post(f"/admin/partners/{partner_id}/unregister", headers=admin)
        assert done.json()["data"]["status"] == "UNREGISTERED"
        again = await client.post(f"/admin/partners/{partner_id}/unregister", headers=admin)
        assert again.status_code == 409
        assert emsp.state.peer is None
