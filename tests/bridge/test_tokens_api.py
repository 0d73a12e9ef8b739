"""The Tokens module's Receiver interface (reference 3.5) over real HTTP on 127.0.0.1: a running
bridge and the eMSP simulator DE/EMS registered with it, calling with its own token and routing
headers. Every write is checked by reading it back; every refusal gets its OCPI status code and
HTTP status, and changes nothing."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.main import BridgeApp
from bridge.store.tables import TokenRow
from simulators.emsp.client import OcpiResult
from simulators.emsp.server import EmspSimulator
from tests.bridge.test_outbox_worker import run_cli
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url

CPO = {"country_code": "NL", "party_id": "CPO"}
DATA = Path(__file__).parents[1] / "data" / "ocpi-examples" / "tokens"

RFID: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "EMS",
    "uid": "04A1B2C3D4E5F6",
    "type": "RFID",
    "contract_id": "DE-EMS-C12345678-X",
    "visual_number": "DF000-2001-8999-1",
    "issuer": "eMSP simulator",
    "group_id": "GROUP-1",
    "valid": True,
    "whitelist": "ALLOWED",
    "language": "de",
    "default_profile_type": "GREEN",
    "energy_contract": {"supplier_name": "Green Power", "contract_id": "0123456789"},
    "last_updated": "2026-11-20T10:00:00.000Z",
}


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[BridgeApp, EmspSimulator]]:
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS") as emsp,
        running_bridge(tmp_path, **CPO) as app,
    ):
        await emsp_registers(app, emsp)
        yield app, emsp


async def put(
    emsp: EmspSimulator, token: dict[str, Any], *, path: str | None = None, **params: str
) -> OcpiResult:
    path = path or f"/{token['country_code']}/{token['party_id']}/{token['uid']}"
    return await emsp.driver.call(
        "tokens", "PUT", path, body=token, params={"type": token["type"], **params}
    )


async def get(emsp: EmspSimulator, uid: str, token_type: str = "RFID") -> OcpiResult:
    return await emsp.driver.call("tokens", "GET", f"/DE/EMS/{uid}", params={"type": token_type})


async def patch(emsp: EmspSimulator, uid: str, body: Any, token_type: str = "RFID") -> OcpiResult:
    return await emsp.driver.call(
        "tokens", "PATCH", f"/DE/EMS/{uid}", body=body, params={"type": token_type}
    )


def refused(result: OcpiResult, status_code: int, http_status: int = 200) -> None:
    assert (result.http_status, result.status_code) == (http_status, status_code), result.describe()
    assert result.status_message


# --- PUT and GET -----------------------------------------------------------------------------


async def test_a_put_token_reads_back_field_for_field(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    app, emsp = world
    assert (await put(emsp, RFID)).ok
    got = await get(emsp, RFID["uid"])
    assert got.ok, got.describe()
    assert got.data == RFID
    # uid is a CiString: any case finds it; the stored spelling is kept.
    lower = await get(emsp, RFID["uid"].lower())
    assert lower.ok
    assert lower.data["uid"] == RFID["uid"]
    (row,) = await all_rows(app, TokenRow)
    partner = (await app.partners.list())[0]
    assert (row.partner_id, row.uid_key, row.type, row.alias) == (
        partner.id,
        RFID["uid"],
        "RFID",
        None,
    )


@pytest.mark.parametrize(
    "name", ["token_example_1_app_user.json", "token_example_2_full_rfid.json"]
)
async def test_the_spec_examples_are_accepted(
    world: tuple[BridgeApp, EmspSimulator], name: str
) -> None:
    _, emsp = world
    token = json.loads((DATA / name).read_text())
    token.update(country_code="DE", party_id="EMS")  # ours to write
    assert (await put(emsp, token)).ok
    got = await get(emsp, token["uid"], token["type"])
    assert got.ok
    assert got.data["uid"] == token["uid"]
    assert got.data["last_updated"].startswith(token["last_updated"][:19])


async def test_a_second_put_replaces_and_an_older_one_is_ignored(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    newer = {**RFID, "whitelist": "NEVER", "last_updated": "2026-11-21T10:00:00.000Z"}
    assert (await put(emsp, newer)).ok
    older = {**RFID, "whitelist": "ALWAYS", "last_updated": "2026-11-19T10:00:00.000Z"}
    assert (await put(emsp, older)).ok  # accepted (a delayed retry), but not applied
    assert (await get(emsp, RFID["uid"])).data["whitelist"] == "NEVER"


async def test_the_same_uid_with_another_type_is_another_token(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    app_user = {**RFID, "type": "APP_USER", "whitelist": "NEVER"}
    assert (await put(emsp, app_user)).ok
    assert (await get(emsp, RFID["uid"], "RFID")).data["whitelist"] == "ALLOWED"
    assert (await get(emsp, RFID["uid"], "APP_USER")).data["whitelist"] == "NEVER"


async def test_a_long_uid_gets_an_ocpp16_alias(world: tuple[BridgeApp, EmspSimulator]) -> None:
    app, emsp = world
    token = {**RFID, "uid": "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1", "type": "APP_USER"}
    assert (await put(emsp, token)).ok
    (row,) = await all_rows(app, TokenRow)
    assert row.alias is not None
    assert len(row.alias) <= 20
    assert row.alias.startswith("~")


# --- refusals --------------------------------------------------------------------------------

BAD_TOKENS = [
    ("unknown type", {"type": "PASSPORT"}),
    ("uid over 36", {"uid": "X" * 37}),
    ("unknown whitelist", {"whitelist": "SOMETIMES"}),
    ("valid not a boolean", {"valid": "yes"}),
    ("naive-looking last_updated", {"last_updated": "yesterday"}),
    ("contract_id over 36", {"contract_id": "C" * 37}),
    ("issuer over 64", {"issuer": "I" * 65}),
    ("group_id over 36", {"group_id": "G" * 37}),
    ("bad language", {"language": "deu"}),
    ("unknown profile", {"default_profile_type": "SLOW"}),
    ("energy contract without supplier", {"energy_contract": {"contract_id": "1"}}),
]


@pytest.mark.parametrize(("case", "change"), BAD_TOKENS, ids=[c for c, _ in BAD_TOKENS])
async def test_an_invalid_token_is_refused_with_2001(
    world: tuple[BridgeApp, EmspSimulator], case: str, change: dict[str, Any]
) -> None:
    app, emsp = world
    token = {**RFID, **change}
    path = f"/DE/EMS/{RFID['uid']}" if "uid" not in change else f"/DE/EMS/{change['uid']}"
    params = {"type": "RFID"}
    result = await emsp.driver.call("tokens", "PUT", path, body=token, params=params)
    refused(result, 2001)
    assert await all_rows(app, TokenRow) == []


@pytest.mark.parametrize(
    "field",
    [
        "country_code",
        "party_id",
        "uid",
        "type",
        "contract_id",
        "issuer",
        "valid",
        "whitelist",
        "last_updated",
    ],
)
async def test_a_token_missing_a_required_field_is_refused(
    world: tuple[BridgeApp, EmspSimulator], field: str
) -> None:
    app, emsp = world
    token = {k: v for k, v in RFID.items() if k != field}
    result = await emsp.driver.call(
        "tokens", "PUT", f"/DE/EMS/{RFID['uid']}", body=token, params={"type": "RFID"}
    )
    refused(result, 2001)
    assert field in (result.status_message or "")
    assert await all_rows(app, TokenRow) == []


async def test_another_partys_token_cannot_be_written_or_read(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    app, emsp = world
    other = {**RFID, "country_code": "FR", "party_id": "XYZ"}
    refused(await put(emsp, other), 2001)  # URL and body name a party not its own
    refused(await put(emsp, other, path=f"/DE/EMS/{RFID['uid']}"), 2001)  # body differs
    result = await emsp.driver.call("tokens", "GET", f"/FR/XYZ/{RFID['uid']}")
    refused(result, 2001)
    assert await all_rows(app, TokenRow) == []


async def test_a_second_emsp_cannot_touch_the_first_ones_tokens(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    app, emsp = world
    assert (await put(emsp, RFID)).ok
    async with EmspSimulator(port=0, country_code="DE", party_id="OTH") as other:
        _, token_a = await token_a_for(app, "OTH")
        assert (await other.driver.register(versions_url(app), token_a)).ok
        refused(await other.driver.call("tokens", "GET", f"/DE/EMS/{RFID['uid']}"), 2001)
        hijack = {**RFID, "valid": False, "last_updated": "2026-11-22T00:00:00.000Z"}
        refused(await put(other, hijack), 2001)
        refused(
            await other.driver.call(
                "tokens",
                "PATCH",
                f"/DE/EMS/{RFID['uid']}",
                body={"valid": False, "last_updated": "2026-11-22T00:00:00.000Z"},
            ),
            2001,
        )
    assert (await get(emsp, RFID["uid"])).data["valid"] is True


async def test_uid_and_type_must_match_the_url(world: tuple[BridgeApp, EmspSimulator]) -> None:
    app, emsp = world
    refused(await put(emsp, RFID, path="/DE/EMS/SOMETHING-ELSE"), 2001)
    result = await emsp.driver.call(
        "tokens", "PUT", f"/DE/EMS/{RFID['uid']}", body=RFID, params={"type": "APP_USER"}
    )
    refused(result, 2001)
    result = await emsp.driver.call(
        "tokens", "PUT", f"/DE/EMS/{RFID['uid']}", body=RFID, params={"type": "CARD"}
    )
    refused(result, 2001)
    # Without ?type= the token is an RFID one (the default).
    assert (await emsp.driver.call("tokens", "PUT", f"/DE/EMS/{RFID['uid']}", body=RFID)).ok
    assert len(await all_rows(app, TokenRow)) == 1


async def test_unknown_tokens_are_404_with_2004(world: tuple[BridgeApp, EmspSimulator]) -> None:
    _, emsp = world
    refused(await get(emsp, "NOPE"), 2004, 404)
    refused(
        await patch(emsp, "NOPE", {"valid": False, "last_updated": "2026-11-21T00:00:00Z"}),
        2004,
        404,
    )
    assert (await put(emsp, RFID)).ok
    refused(await get(emsp, RFID["uid"], "APP_USER"), 2004, 404)


async def test_invalid_json_is_http_400(world: tuple[BridgeApp, EmspSimulator]) -> None:
    app, emsp = world
    peer = emsp.state.peer
    assert peer is not None
    url = f"http://127.0.0.1:{app.http_port}/ocpi/2.2.1/tokens/DE/EMS/{RFID['uid']}"
    headers = {
        "Authorization": "Token " + base64.b64encode(peer.token_we_present.encode()).decode()
    }
    async with httpx.AsyncClient() as client:
        response = await client.put(url, content=b'{"uid": ', headers=headers)
    assert response.status_code == 400
    assert response.json()["status_code"] == 2001


# --- PATCH -----------------------------------------------------------------------------------


async def test_patch_changes_the_given_fields_only(world: tuple[BridgeApp, EmspSimulator]) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    example = json.loads((DATA / "token_patch_example.json").read_text())
    result = await patch(emsp, RFID["uid"], {**example, "last_updated": "2026-11-21T09:00:00Z"})
    assert result.ok, result.describe()
    got = (await get(emsp, RFID["uid"])).data
    assert got == {**RFID, "valid": False, "last_updated": "2026-11-21T09:00:00.000Z"}


async def test_patch_removes_an_optional_field_set_to_null(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    body = {"group_id": None, "last_updated": "2026-11-21T09:00:00Z"}
    assert (await patch(emsp, RFID["uid"], body)).ok
    assert "group_id" not in (await get(emsp, RFID["uid"])).data


PATCH_REFUSALS = [
    ("no last_updated", {"valid": False}),
    ("changes the uid", {"uid": "OTHER", "last_updated": "2026-11-21T09:00:00Z"}),
    ("changes the party", {"party_id": "XYZ", "last_updated": "2026-11-21T09:00:00Z"}),
    ("changes the type", {"type": "APP_USER", "last_updated": "2026-11-21T09:00:00Z"}),
    ("invalid value", {"whitelist": "MAYBE", "last_updated": "2026-11-21T09:00:00Z"}),
    ("removes a required field", {"issuer": None, "last_updated": "2026-11-21T09:00:00Z"}),
    ("not an object", ["valid", False]),
]


@pytest.mark.parametrize(("case", "body"), PATCH_REFUSALS, ids=[c for c, _ in PATCH_REFUSALS])
async def test_a_bad_patch_is_refused_and_changes_nothing(
    world: tuple[BridgeApp, EmspSimulator], case: str, body: Any
) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    refused(await patch(emsp, RFID["uid"], copy.deepcopy(body)), 2001)
    assert (await get(emsp, RFID["uid"])).data == RFID


async def test_a_patch_repeating_the_key_in_another_case_is_fine(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    _, emsp = world
    assert (await put(emsp, RFID)).ok
    body = {"uid": RFID["uid"].lower(), "valid": False, "last_updated": "2026-11-21T09:00:00Z"}
    assert (await patch(emsp, RFID["uid"], body)).ok
    assert (await get(emsp, RFID["uid"])).data["valid"] is False


async def test_versions_announce_the_tokens_receiver(
    world: tuple[BridgeApp, EmspSimulator],
) -> None:
    _, emsp = world
    peer = emsp.state.peer
    assert peer is not None
    assert peer.endpoint("tokens", "RECEIVER") is not None


# --- operator commands -----------------------------------------------------------------------


async def test_the_cli_lists_the_emsp_tokens_and_pulls_them(
    world: tuple[BridgeApp, EmspSimulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, emsp = world
    assert (await put(emsp, RFID)).ok
    # The pull the registration started (a step after it, a second later) has ended: what is
    # pulled below is pulled by the command, however slow the machine is at the moment.
    await app.partners.join_follow_ups()
    await app.tokens.settled()
    emsp.driver.add_token("PULL-ME", whitelist="NEVER")  # in the eMSP's list, never pushed
    partner = (await app.partners.list())[0]
    pulled = await run_cli(app, monkeypatch, "tokens", "pull", str(partner.id))
    report = json.loads(pulled.strip())
    assert (report["partner_id"], report["error"], report["invalid"]) == (partner.id, None, [])
    assert report["stored"] >= 1
    listing = await run_cli(app, monkeypatch, "tokens", "emsp", "--partner", str(partner.id))
    lines = listing.strip().splitlines()
    assert lines[0].split("\t")[:5] == ["partner", "party", "uid", "type", "whitelist"]
    rows = {line.split("\t")[2]: line.split("\t") for line in lines[1:]}
    assert rows["PULL-ME"][4] == "NEVER"
    assert rows[RFID["uid"]][3:6] == ["RFID", "ALLOWED", "valid"]
