"""Driver authorization end to end over real sockets (issue: OCPI Tokens and driver
authorization): the eMSP simulator pushes tokens of each whitelist type, OCPP 1.6 and 2.0.1
charger simulators present them, and every row of the decision table (bridge/authorization.py,
design.md section 5) is checked on the OCPP answer, on whether the eMSP was asked in real time,
and on the decision the transaction keeps for its Session and CDR.

The eMSP's real-time answer is forced per token (``allowed``) or replaced by an injected fault:
down (connection refused), slow (past the bridge's authorization timeout), HTTP 500, an OCPI
error status, a non-JSON body, a success envelope with unusable data, or 404/2004 for a token it
no longer knows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlmodel import select

from bridge.ocpi.wire import format_datetime
from bridge.store.tables import AuthorizationRow, TokenRow
from csms.store.tables import TransactionRow
from simulators.charger.v16 import ChargerSimulator16
from simulators.charger.v201 import ChargerSimulator201
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import RecordedRequest
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_location_status import (
    CPO,
    FAST,
    LOC16,
    LOC201,
    World,
    charger16,
    station201,
    until,
    world,
)
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url

AUTH_TIMEOUT = 0.5


@dataclass(frozen=True)
class Row:
    name: str
    whitelist: str
    valid: bool
    emsp: str  # how the eMSP answers a real-time request: an AllowedType, or a fault
    v16: str  # expected idTagInfo.status
    v201: str  # expected idTokenInfo.status
    asks: bool  # whether the bridge asks the eMSP in real time


ROWS = [
    Row("always", "ALWAYS", True, "ALLOWED", "Accepted", "Accepted", False),
    Row("always-invalid", "ALWAYS", False, "ALLOWED", "Blocked", "Blocked", False),
    Row("allowed", "ALLOWED", True, "BLOCKED", "Accepted", "Accepted", False),
    Row("allowed-invalid", "ALLOWED", False, "ALLOWED", "Blocked", "Blocked", False),
    Row("offline-allowed", "ALLOWED_OFFLINE", True, "ALLOWED", "Accepted", "Accepted", True),
    Row("offline-blocked", "ALLOWED_OFFLINE", True, "BLOCKED", "Blocked", "Blocked", True),
    Row("offline-down", "ALLOWED_OFFLINE", True, "down", "Accepted", "Accepted", True),
    Row("offline-slow", "ALLOWED_OFFLINE", True, "slow", "Accepted", "Accepted", True),
    Row("offline-500", "ALLOWED_OFFLINE", True, "http-500", "Accepted", "Accepted", True),
    Row("offline-invalid-down", "ALLOWED_OFFLINE", False, "down", "Invalid", "Invalid", True),
    Row("never-allowed", "NEVER", True, "ALLOWED", "Accepted", "Accepted", True),
    Row("never-expired", "NEVER", True, "EXPIRED", "Expired", "Expired", True),
    Row("never-no-credit", "NEVER", True, "NO_CREDIT", "Invalid", "NoCredit", True),
    Row("never-not-allowed", "NEVER", True, "NOT_ALLOWED", "Invalid", "NotAtThisLocation", True),
    Row("never-blocked", "NEVER", True, "BLOCKED", "Blocked", "Blocked", True),
    Row("never-down", "NEVER", True, "down", "Invalid", "Invalid", True),
    Row("never-slow", "NEVER", True, "slow", "Invalid", "Invalid", True),
    Row("never-500", "NEVER", True, "http-500", "Invalid", "Invalid", True),
    Row("never-ocpi-error", "NEVER", True, "status-3000", "Invalid", "Invalid", True),
    Row("never-garbage", "NEVER", True, "garbage", "Invalid", "Invalid", True),
    Row("never-bad-data", "NEVER", True, "bad-data", "Invalid", "Invalid", True),
    Row("never-unknown-there", "NEVER", True, "unknown", "Invalid", "Unknown", True),
    # valid=false does not stop a real-time request: the eMSP decides (reference 3.5).
    Row("never-invalid-allowed", "NEVER", False, "ALLOWED", "Accepted", "Accepted", True),
]

ALLOWED_TYPES = {"ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"}


def uid_of(row: Row, version: str) -> str:
    return f"{row.name}-{version.replace('.', '')}"[:20].upper()


def authorize_requests(emsp: EmspSimulator, uid: str) -> list[RecordedRequest]:
    return [
        r
        for r in emsp.state.received
        if r.module == "tokens"
        and r.method == "POST"
        and unquote(r.path).upper().endswith(f"/{uid}/AUTHORIZE")
    ]


async def emsp_behaves(w: World, row: Row, uid: str) -> Callable[[], Awaitable[None]]:
    """Prepare the eMSP's answer for ``row``; returns what undoes it."""
    emsp = w.emsp
    faults = emsp.state.faults
    if row.emsp == "down":
        await emsp.go_down()
        return emsp.come_back
    match row.emsp:
        case "slow":
            faults.delay("tokens", "POST", seconds=AUTH_TIMEOUT * 6)
        case "http-500":
            faults.http_error("tokens", "POST", status=500)
        case "status-3000":
            faults.status("tokens", "POST", status_code=3000)
        case "garbage":
            faults.garbage("tokens", "POST")
        case "bad-data":
            faults.bad_data("tokens", "POST")
        case "unknown":
            emsp.state.tokens.pop((uid, "RFID"))

    async def undo() -> None:
        faults.clear()

    return undo


async def publish(w: World, row: Row, uid: str) -> None:
    allowed = row.emsp if row.emsp in ALLOWED_TYPES else None
    _, result = await w.emsp.driver.publish_token(
        uid, whitelist=row.whitelist, valid=row.valid, allowed=allowed
    )
    assert result is not None, "the bridge offers no tokens module"
    assert result.ok, result.describe()


Charger = ChargerSimulator16 | ChargerSimulator201


async def present(charger: Charger, uid: str) -> tuple[dict[str, Any], str]:
    """Authorize, then start a transaction with the token: the start's idTagInfo/idTokenInfo
    (the Authorize answer agrees) and the transaction's reference."""
    if isinstance(charger, ChargerSimulator16):
        authorized = (await charger.authorize(uid))["idTagInfo"]
        started = await charger.start_transaction(1, uid, 1000)
        await charger.stop_transaction(started["transactionId"], 1000)
        info, ref = started["idTagInfo"], str(started["transactionId"])
    else:
        authorized = (await charger.authorize(uid))["idTokenInfo"]
        ref = f"TX-{uid}"
        started = await charger.transaction_event(
            "Started", ref, "Authorized", evse=(1, 1), id_token=(uid, "ISO14443")
        )
        info = started["idTokenInfo"]
    assert info["status"] == authorized["status"]
    return info, ref


async def decision_of(w: World, charger_id: str, ref: str) -> AuthorizationRow:
    """The decision the transaction keeps (for its Session and CDR)."""
    async with w.app.db.read() as session:
        tx = (
            await session.exec(
                select(TransactionRow).where(
                    TransactionRow.charger_id == charger_id, TransactionRow.transaction_ref == ref
                )
            )
        ).one()
        assert tx.authorization_ref is not None
        row = await session.get(AuthorizationRow, tx.authorization_ref)
    assert row is not None
    return row


def expected_method(row: Row, accepted: bool) -> str | None:
    if row.asks and row.emsp in ALLOWED_TYPES:
        return "AUTH_REQUEST"
    return "WHITELIST" if accepted else None


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_row_of_the_decision_table(tmp_path: Path, version: str) -> None:
    async with world(
        tmp_path, ["CP16", "CS201"], [LOC16, LOC201], authorization_timeout=AUTH_TIMEOUT
    ) as w:
        # The charger gives up after 2 s: a bridge waiting for a slow eMSP (3 s) would fail it.
        charger: Charger
        if version == "1.6":
            charger, charger_id = (
                await w.online(charger16(w.app, "CP16", response_timeout=2)),
                "CP16",
            )
        else:
            charger = await w.online(station201(w.app, "CS201", response_timeout=2))
            charger_id = "CS201"
        partner = (await w.app.partners.list())[0]
        for row in ROWS:
            uid = uid_of(row, version)
            await publish(w, row, uid)
            undo = await emsp_behaves(w, row, uid)
            try:
                info, ref = await present(charger, uid)
            finally:
                await undo()
            expected = row.v16 if version == "1.6" else row.v201
            assert info["status"] == expected, row.name

            asked = authorize_requests(w.emsp, uid)
            if not row.asks or row.emsp == "down":
                assert asked == [], row.name
            else:
                assert asked, row.name
                body = asked[0].body
                assert body["location_id"] == ("LOC-16" if version == "1.6" else "LOC-201")
                assert asked[0].query.get("type") == "RFID", row.name

            accepted = expected == "Accepted"
            expiry = info.get("expiryDate" if version == "1.6" else "cacheExpiryDateTime")
            if row.whitelist in ("ALLOWED_OFFLINE", "NEVER"):
                # The charger's cache must not answer for the eMSP next time.
                assert expiry is not None, row.name
                assert datetime.fromisoformat(expiry) <= datetime.now(UTC), row.name
            else:
                assert expiry is None, row.name

            decision = await decision_of(w, charger_id, ref)
            assert decision.partner_id == partner.id, row.name
            assert decision.source == "token", row.name
            assert decision.auth_method == expected_method(row, accepted), row.name
            assert json.loads(decision.cdr_token or "{}") == {
                "country_code": "DE",
                "party_id": "EMS",
                "uid": uid,
                "type": "RFID",
                "contract_id": f"DE-EMS-{uid}"[:36],
            }, row.name
            if row.asks and row.emsp in ALLOWED_TYPES:
                assert decision.allowed == row.emsp
                assert decision.authorization_reference, row.name


# --- beyond the whitelist table --------------------------------------------------------------


async def test_one_real_time_request_serves_authorize_and_the_start(tmp_path: Path) -> None:
    """An accepted real-time answer is reused for the StartTransaction that follows (same
    token, same charger): one request, one authorization_reference in the transaction."""
    async with world(tmp_path, ["CP16"], [LOC16], authorization_timeout=AUTH_TIMEOUT) as w:
        charger = await w.online(charger16(w.app, "CP16"))
        await publish(w, Row("reuse", "NEVER", True, "ALLOWED", "", "", True), "REUSE-1")
        info, ref = await present(charger, "REUSE-1")
        assert info["status"] == "Accepted"
        (asked,) = authorize_requests(w.emsp, "REUSE-1")
        assert asked.body == {"location_id": "LOC-16", "evse_uids": ["CP16-1", "CP16-2"]}
        decision = await decision_of(w, "CP16", ref)
        assert decision.auth_method == "AUTH_REQUEST"


async def test_app_users_long_uids_emaids_groups_and_free_vend(tmp_path: Path) -> None:
    uid = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"  # an app user's id: too long for OCPP 1.6
    async with world(tmp_path, ["CP16", "CS201"], [LOC16, LOC201]) as w:
        emsp = w.emsp
        for token_type, token_uid, extra in (
            ("APP_USER", uid, {}),
            ("RFID", "04AABBCCDD", {"group_id": "FAMILY-7", "contract_id": "DE-EMS-C0000042-7"}),
        ):
            _, result = await emsp.driver.publish_token(
                token_uid, token_type=token_type, whitelist="ALLOWED", **extra
            )
            assert result is not None
            assert result.ok, result.describe()
        async with w.app.db.read() as session:
            alias = (
                await session.exec(select(TokenRow.alias).where(TokenRow.type == "APP_USER"))
            ).one()
        assert alias is not None

        sim16 = await w.online(charger16(w.app, "CP16"))
        # A 1.6 charger knows the app user by its alias (given by a remote start).
        assert (await sim16.authorize(alias))["idTagInfo"] == {"status": "Accepted"}
        assert (await sim16.authorize(uid[:20]))["idTagInfo"]["status"] == "Invalid"
        grouped = (await sim16.authorize("04aabbccdd"))["idTagInfo"]  # uid is case-insensitive
        assert grouped == {"status": "Accepted", "parentIdTag": "FAMILY-7"}

        sim201 = await w.online(station201(w.app, "CS201"))
        central = (await sim201.authorize(uid, "Central"))["idTokenInfo"]
        assert central["status"] == "Accepted"
        # The same app user presented as a card is not that token.
        assert (await sim201.authorize(uid, "KeyCode"))["idTokenInfo"]["status"] == "Unknown"
        emaid = (await sim201.authorize("DE-EMS-C0000042-7", "eMAID"))["idTokenInfo"]
        assert emaid["status"] == "Accepted"
        assert emaid["groupIdToken"] == {"idToken": "FAMILY-7", "type": "Central"}
        free = (await sim201.authorize("", "NoAuthorization"))["idTokenInfo"]
        assert free["status"] == "Accepted"
        started = await sim201.transaction_event(
            "Started", "TX-CENTRAL", "Authorized", evse=(1, 1), id_token=(uid, "Central")
        )
        assert started["idTokenInfo"]["status"] == "Accepted"
        decision = await decision_of(w, "CS201", "TX-CENTRAL")
        assert json.loads(decision.cdr_token or "")["type"] == "APP_USER"
        assert json.loads(decision.cdr_token or "")["uid"] == uid


async def test_real_time_answers_carry_the_evses_and_the_drivers_message(tmp_path: Path) -> None:
    async with world(tmp_path, ["CS201"], [LOC201]) as w:
        await publish(w, Row("evses", "NEVER", True, "ALLOWED", "", "", True), "EVSES-1")
        sim201 = await w.online(station201(w.app, "CS201"))
        info = (await sim201.authorize("EVSES-1"))["idTokenInfo"]
        # The simulator allows the EVSEs it was asked about: this station's only EVSE.
        assert info["status"] == "Accepted"
        assert info["evseId"] == [1]


async def test_unknown_tokens_the_operators_own_and_a_hub(tmp_path: Path) -> None:
    async with world(
        tmp_path,
        ["CP16", "CS201"],
        [LOC16, LOC201],
        authorization_hub="DE/HUB",
        authorization_timeout=AUTH_TIMEOUT,
    ) as w:
        sim16 = await w.online(charger16(w.app, "CP16"))
        sim201 = await w.online(station201(w.app, "CS201"))
        # No hub registered yet: an unknown token is refused.
        assert (await sim16.authorize("NOBODY"))["idTagInfo"] == {"status": "Invalid"}
        assert (await sim201.authorize("NOBODY"))["idTokenInfo"] == {"status": "Unknown"}
        # The operator's own cards (site file or CLI) are decided locally.
        await w.app.authorizer.put_token("STAFF-CARD", parent_id_tag="STAFF")
        staff = (await sim16.authorize("STAFF-CARD"))["idTagInfo"]
        assert staff == {"status": "Accepted", "parentIdTag": "STAFF"}
        started = await sim16.start_transaction(1, "STAFF-CARD", 0)
        decision = await decision_of(w, "CP16", str(started["transactionId"]))
        assert (decision.source, decision.partner_id, decision.cdr_token) == (
            "operator",
            None,
            None,
        )

        hub = await w.stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="HUB")
        )
        _, token_a = await token_a_for(w.app, "HUB")
        assert (await hub.driver.register(versions_url(w.app), token_a)).ok
        hub.driver.add_token("ROAMING-1", whitelist="NEVER")  # known to the hub only
        assert (await sim16.authorize("ROAMING-1"))["idTagInfo"]["status"] == "Accepted"
        assert (await sim201.authorize("ROAMING-2"))["idTokenInfo"]["status"] == "Unknown"
        asked = [r for r in hub.state.received if r.module == "tokens" and r.method == "POST"]
        assert [unquote(r.path).rsplit("/", 2)[1] for r in asked] == ["ROAMING-1", "ROAMING-2"]
        assert all(r.query.get("type") == "RFID" for r in asked)
        started = await sim16.start_transaction(2, "ROAMING-1", 0)
        decision = await decision_of(w, "CP16", str(started["transactionId"]))
        hub_partner = next(p for p in await w.app.partners.list() if p.has_party("DE", "HUB"))
        assert (decision.source, decision.partner_id) == ("hub", hub_partner.id)
        assert json.loads(decision.cdr_token or "")["party_id"] == "HUB"
        # The hub down: unknown tokens are refused.
        await hub.go_down()
        assert (await sim16.authorize("ROAMING-3"))["idTagInfo"]["status"] == "Invalid"


# --- pulling the eMSP's token list -------------------------------------------------------------


async def test_tokens_are_pulled_on_registration_page_by_page(tmp_path: Path) -> None:
    async with (
        EmspSimulator(port=0, country_code="DE", party_id="EMS", max_limit=2) as emsp,
        running_bridge(tmp_path, **CPO, **FAST) as app,
    ):
        for n in range(5):
            emsp.driver.add_token(f"PULLED-{n}", whitelist="ALWAYS")
            await asyncio.sleep(0.002)  # last_updated has milliseconds: one token per instant
        emsp.driver.add_token("FOREIGN-1", country_code="FR", party_id="XYZ")
        await emsp_registers(app, emsp)

        async def stored() -> list[TokenRow] | None:
            rows = await all_rows(app, TokenRow)
            return rows if len(rows) == 5 else None

        rows = await until(stored)
        assert sorted(r.uid_key for r in rows) == [f"PULLED-{n}" for n in range(5)]
        pulls = [r for r in emsp.state.received if r.module == "tokens" and r.method == "GET"]
        assert len(pulls) == 3  # 6 tokens, 2 per page, followed by Link
        assert "date_from" not in pulls[0].query

        # A later pull asks only for what changed since the last token it stored
        # (inclusive: tokens of that very instant come again, unchanged).
        emsp.driver.add_token("PULLED-5", whitelist="NEVER")
        (report,) = await app.tokens.pull_all()
        assert report.ok, report.error
        assert report.stored == 1
        # PULLED-4 (the instant asked for), FOREIGN-1, then PULLED-5 on page 2.
        assert report.invalid == ["page 1 item 1: FR/XYZ is not a party of this partner"]
        since = max(r.last_updated for r in rows)
        again = [r for r in emsp.state.received if r.module == "tokens" and r.method == "GET"][3:]
        assert again[0].query["date_from"] == format_datetime(since)
        assert (
            report.unchanged
            == sum(1 for t in emsp.state.tokens.values() if t.token.last_updated >= since) - 2
        )  # minus the new token and the foreign one
        assert len(await all_rows(app, TokenRow)) == 6

        # A failing pull is reported and keeps its place.
        emsp.state.faults.http_error("tokens", "GET", count=1)
        (failed,) = await app.tokens.pull_all()
        assert failed.error is not None
        assert "HTTP 500" in failed.error
