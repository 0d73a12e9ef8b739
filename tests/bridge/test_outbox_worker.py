"""The outbox worker against the eMSP simulator over real HTTP: a bridge (with its worker, admin
API and CLI) and the simulator registered with it. The simulator fails, times out and rejects
on demand; backoff is a few milliseconds so that retries and dead letters come fast."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession
from typer.testing import CliRunner

from bridge.cli import app as cli
from bridge.main import BridgeApp
from bridge.ocpi.models import ModuleID
from bridge.partners import ExpectedRole, Partner
from bridge.push.outbox import FullObject, OutboxEntry, OutboxState, PushRequest, RetryPolicy
from bridge.push.worker import OutboxWorker
from bridge.store.outbox import enqueue
from csms.clock import utc_now
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import RecordedRequest
from tests.bridge.conftest import ADMIN_TOKEN
from tests.conftest import running_bridge
from tests.simulators.emsp.builders import a_location

T = TypeVar("T")

MAX_ATTEMPTS = 5
FAST = {
    "outbox_max_attempts": MAX_ATTEMPTS,
    "outbox_backoff_base": 0.01,
    "outbox_backoff_max": 0.04,
    "outbox_poll_interval": 0.05,
    "ocpi_timeout": 0.5,
}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Objects:
    """The current whole Locations, as our own FullObjectSource (``test:<location id>``)."""

    def __init__(self) -> None:
        self.locations: dict[str, dict[str, Any]] = {}

    async def full_object(self, session: AsyncSession, key: str) -> FullObject | None:
        location_id = key.removeprefix("test:")
        body = self.locations.get(location_id)
        return FullObject(path=f"NL/CPO/{location_id}", body=body) if body is not None else None


@pytest.fixture
def objects() -> Objects:
    return Objects()


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


@pytest.fixture
async def cpo(tmp_path: Path, objects: Objects) -> AsyncIterator[BridgeApp]:
    async with running_bridge(
        tmp_path, admin_token=ADMIN_TOKEN, country_code="NL", party_id="CPO", **FAST
    ) as app:
        app.full_objects.register("test", objects)
        yield app


@pytest.fixture
async def partner(cpo: BridgeApp, emsp: EmspSimulator) -> Partner:
    """The simulator registers with the bridge (token A from us)."""
    added = await cpo.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS")
    )
    assert added.token_accept is not None
    result = await emsp.driver.register(
        f"http://127.0.0.1:{cpo.http_port}/ocpi/versions", added.token_accept
    )
    assert result.ok, result.message
    return await cpo.partners.get(added.id)


# --- helpers -------------------------------------------------------------------------------


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T:
    """The first truthy value of ``probe()``, polled (for states of our own database)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.01)


async def push(app: BridgeApp, *requests: PushRequest, coalesce: bool = False) -> None:
    async with app.db.transaction() as uow:
        await enqueue(uow.session, requests, now=utc_now(), coalesce=coalesce)
    app.push_committed()


async def outbox_empty(app: BridgeApp) -> None:
    async def empty() -> bool:
        return not await app.outbox.list_entries()

    await eventually(empty)


async def dead_rows(app: BridgeApp, count: int = 1) -> list[OutboxEntry]:
    async def dead() -> list[OutboxEntry] | None:
        rows = await app.outbox.list_entries(state=OutboxState.DEAD)
        return rows if len(rows) >= count else None

    return await eventually(dead)


def put_location(partner: Partner, location_id: str, **overrides: Any) -> PushRequest:
    return PushRequest(
        partner_id=partner.id,
        module=ModuleID.LOCATIONS,
        method="PUT",
        path=f"NL/CPO/{location_id}",
        body=a_location(location_id, **overrides),
        ordering_key=f"locations:NL/CPO/{location_id}",
    )


def patch_status(
    partner: Partner, location_id: str, status: str, evse_uid: str = "E1"
) -> PushRequest:
    return PushRequest(
        partner_id=partner.id,
        module=ModuleID.LOCATIONS,
        method="PATCH",
        path=f"NL/CPO/{location_id}/{evse_uid}",
        body={"status": status, "last_updated": utc_now().strftime("%Y-%m-%dT%H:%M:%SZ")},
        ordering_key=f"locations:NL/CPO/{location_id}",
        coalesce_key=f"status:NL/CPO/{location_id}/{evse_uid}",
        fallback=f"test:{location_id}",
    )


def location_with_status(location_id: str, status: str) -> dict[str, Any]:
    location = a_location(location_id)
    location["evses"][0]["status"] = status
    return location


def evse_status(emsp: EmspSimulator, location_id: str) -> str | None:
    location = emsp.state.location("NL", "CPO", location_id)
    if location is None or not location.evses:
        return None
    return str(location.evses[0].status.value)


def location_requests(emsp: EmspSimulator) -> list[RecordedRequest]:
    return emsp.state.received_for("locations")


def stored(emsp: EmspSimulator) -> list[tuple[str, str]]:
    """(method, object path) of the requests that changed the simulator's objects."""
    return [
        (r.method, r.path.split("/locations/", 1)[1])
        for r in location_requests(emsp)
        if r.status_code == 1000 and r.fault is None
    ]


async def run_cli(app: BridgeApp, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("OCPI_BRIDGE_DATABASE_URL", app.settings.database_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --- delivery ------------------------------------------------------------------------------


async def test_push_arrives_with_method_url_body_and_headers_when_partner_is_up(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    await push(cpo, put_location(partner, "L1"), patch_status(partner, "L1", "CHARGING"))
    await emsp.state.wait_for(lambda: evse_status(emsp, "L1") == "CHARGING")
    await outbox_empty(cpo)

    put, patch = location_requests(emsp)
    peer = emsp.state.peer
    assert peer is not None
    assert (put.method, put.path) == ("PUT", "/ocpi/emsp/2.2.1/locations/NL/CPO/L1")
    assert put.body == a_location("L1")
    assert (patch.method, patch.path) == ("PATCH", "/ocpi/emsp/2.2.1/locations/NL/CPO/L1/E1")
    assert patch.body["status"] == "CHARGING"
    for request in (put, patch):
        headers = request.headers
        expected_token = base64.b64encode(peer.token_we_accept.encode()).decode()
        assert headers["authorization"] == f"Token {expected_token}"
        assert headers["content-type"] == "application/json"
        assert headers["x-request-id"]
        assert headers["x-correlation-id"]
        assert (headers["ocpi-from-country-code"], headers["ocpi-from-party-id"]) == ("NL", "CPO")
        assert (headers["ocpi-to-country-code"], headers["ocpi-to-party-id"]) == ("DE", "EMS")
    assert put.headers["x-request-id"] != patch.headers["x-request-id"]
    assert cpo.push_worker.delivered == 2


async def test_push_to_an_absolute_url_when_the_request_names_one(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    url = f"{emsp.state.endpoint_url('locations')}/NL/CPO/L5"
    await push(
        cpo,
        PushRequest(
            partner_id=partner.id,
            module=ModuleID.COMMANDS,  # the URL wins: no endpoint of the module is needed
            method="PUT",
            url=url,
            body=a_location("L5"),
            ordering_key="command:1",
        ),
    )
    await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "L5"))
    await outbox_empty(cpo)


async def test_every_push_arrives_once_in_order_per_key_when_partner_fails_for_a_while(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    emsp.state.faults.http_error("locations", status=500, count=MAX_ATTEMPTS - 1)
    await push(
        cpo,
        put_location(partner, "L1"),
        put_location(partner, "L2"),
        patch_status(partner, "L1", "CHARGING"),
        patch_status(partner, "L2", "BLOCKED"),
        patch_status(partner, "L1", "AVAILABLE"),
        put_location(partner, "L3"),
    )
    await outbox_empty(cpo)

    delivered = stored(emsp)
    assert sorted(delivered) == sorted(
        [
            ("PUT", "NL/CPO/L1"),
            ("PUT", "NL/CPO/L2"),
            ("PATCH", "NL/CPO/L1/E1"),
            ("PATCH", "NL/CPO/L2/E1"),
            ("PATCH", "NL/CPO/L1/E1"),
            ("PUT", "NL/CPO/L3"),
        ]
    )
    l1 = [
        (r.method, r.body.get("status") if r.method == "PATCH" else None)
        for r in location_requests(emsp)
        if "/NL/CPO/L1" in r.path and r.status_code == 1000
    ]
    assert l1 == [("PUT", None), ("PATCH", "CHARGING"), ("PATCH", "AVAILABLE")]
    assert [p for _, p in delivered if "L2" in p] == ["NL/CPO/L2", "NL/CPO/L2/E1"]
    assert evse_status(emsp, "L1") == "AVAILABLE"
    assert evse_status(emsp, "L2") == "BLOCKED"
    assert len([r for r in location_requests(emsp) if r.fault == "http 500"]) == MAX_ATTEMPTS - 1
    assert cpo.push_worker.delivered == 6


async def test_push_is_retried_when_the_partner_does_not_answer_in_time(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    emsp.state.faults.delay("locations", "PUT", seconds=2 * FAST["ocpi_timeout"], count=1)
    await push(cpo, put_location(partner, "L1"))
    await outbox_empty(cpo)

    puts = [r for r in location_requests(emsp) if r.method == "PUT"]
    assert len(puts) == 2
    assert puts[0].fault == "delay 1.0s"
    assert puts[1].status_code == 1000
    assert emsp.state.location("NL", "CPO", "L1") is not None


# --- rejected PATCH ------------------------------------------------------------------------


@pytest.mark.parametrize("rejection", ["unknown-location", "http-404", "ocpi-2003"])
async def test_rejected_patch_falls_back_to_a_put_of_the_whole_object(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner, objects: Objects, rejection: str
) -> None:
    if rejection == "unknown-location":
        location_id = "L9"  # never PUT: the simulator refuses the PATCH with 2001
    else:
        location_id = "L1"
        await push(cpo, put_location(partner, "L1"))
        await outbox_empty(cpo)
        if rejection == "http-404":
            emsp.state.faults.http_error("locations", "PATCH", status=404, count=1)
        else:
            emsp.state.faults.status("locations", "PATCH", status_code=2003, count=1)
    objects.locations[location_id] = location_with_status(location_id, "CHARGING")

    await push(cpo, patch_status(partner, location_id, "CHARGING"))
    await emsp.state.wait_for(lambda: evse_status(emsp, location_id) == "CHARGING")
    await outbox_empty(cpo)

    patch, put = location_requests(emsp)[-2:]
    assert patch.method == "PATCH"
    assert patch.status_code != 1000 or patch.fault is not None
    assert (put.method, put.path) == ("PUT", f"/ocpi/emsp/2.2.1/locations/NL/CPO/{location_id}")
    assert put.status_code == 1000
    assert put.body == objects.locations[location_id]


@pytest.mark.expect_errors("dead letter")
async def test_rejected_patch_is_dead_lettered_when_the_object_no_longer_exists(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    await push(cpo, patch_status(partner, "L8", "CHARGING"))
    (dead,) = await dead_rows(cpo)
    assert dead.method == "PATCH"
    assert dead.attempts == 1
    assert dead.last_error is not None
    assert "OCPI 2001" in dead.last_error
    assert "no longer exists" in dead.last_error
    assert [r.method for r in location_requests(emsp)] == ["PATCH"]


async def test_rejected_put_is_retried_not_replaced(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    emsp.state.faults.status("locations", "PUT", status_code=2001, count=2)
    await push(cpo, put_location(partner, "L1"))
    await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "L1"))
    await outbox_empty(cpo)
    assert [r.status_code for r in location_requests(emsp)] == [2001, 2001, 1000]


# --- dead letters and the operator ---------------------------------------------------------


@pytest.mark.expect_errors("dead letter")
async def test_dead_letter_is_listed_and_requeued_by_admin_api_and_cli(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    emsp.state.faults.http_error("locations", status=503)
    await push(cpo, put_location(partner, "L1"))
    (dead,) = await dead_rows(cpo)
    assert len(location_requests(emsp)) == MAX_ATTEMPTS

    base = f"http://127.0.0.1:{cpo.http_port}/admin/outbox"
    async with httpx.AsyncClient(timeout=5) as http:
        listed = (await http.get(base, params={"state": "DEAD"}, headers=ADMIN)).json()
        assert listed["status_code"] == 1000
        (row,) = listed["data"]
        assert row["id"] == dead.id
        assert row["partner_id"] == partner.id
        assert (row["module"], row["method"], row["path"], row.get("url")) == (
            "locations",
            "PUT",
            "NL/CPO/L1",
            None,
        )
        assert (row["state"], row["attempts"]) == ("DEAD", MAX_ATTEMPTS)
        assert "HTTP 503" in row["last_error"]
        assert all(row[name] for name in ("dead_at", "created_at", "next_attempt_at"))
        pending = (await http.get(base, params={"state": "PENDING"}, headers=ADMIN)).json()
        assert pending["data"] == []
        other = (await http.get(base, params={"partner_id": partner.id + 1}, headers=ADMIN)).json()
        assert other["data"] == []

        summary = (await http.get(f"{base}/summary", headers=ADMIN)).json()["data"]
        assert summary["partners"] == [{"partner_id": partner.id, "pending": 0, "dead": 1}]
        assert summary["worker"]["dead_lettered"] == 1

        out = await run_cli(cpo, monkeypatch, "outbox", "list", "--dead")
        line = next(x for x in out.splitlines() if x.startswith(f"{dead.id}\t"))
        assert f"\t{partner.id}\tDEAD\t{MAX_ATTEMPTS}\tPUT\tlocations: NL/CPO/L1\t" in line
        assert "HTTP 503" in line

        for wrong in ({}, {"ids": [dead.id], "all": True}, {"all": False}, {"ids": []}):
            refused = await http.post(f"{base}/requeue", json=wrong, headers=ADMIN)
            assert (refused.status_code, refused.json()["status_code"]) == (200, 2001)
        assert (await http.post(f"{base}/requeue", json={"all": True})).status_code == 401

        emsp.state.faults.clear()
        answer = await http.post(f"{base}/requeue", json={"ids": [dead.id]}, headers=ADMIN)
        assert answer.json()["data"] == {"requeued": 1}
    await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "L1"))
    await outbox_empty(cpo)

    # Again, requeued from the CLI (another "process"): the server's poll finds the row.
    emsp.state.faults.http_error("locations", status=503)
    await push(cpo, put_location(partner, "L2"))
    (dead,) = await dead_rows(cpo)
    emsp.state.faults.clear()
    out = await run_cli(cpo, monkeypatch, "outbox", "requeue", "--all")
    assert "1 row(s) requeued" in out
    await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "L2"))
    await outbox_empty(cpo)
    out = await run_cli(cpo, monkeypatch, "outbox", "list")
    assert out.splitlines()[1:] == []


@pytest.mark.expect_errors("dead letter")
async def test_requeued_status_patches_become_one_put_of_the_current_location(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner, objects: Objects
) -> None:
    await push(cpo, put_location(partner, "L1"))
    await outbox_empty(cpo)
    emsp.state.faults.http_error("locations", "PATCH", status=502)
    await push(
        cpo,
        patch_status(partner, "L1", "CHARGING"),
        patch_status(partner, "L1", "AVAILABLE"),
    )
    await dead_rows(cpo, count=2)
    emsp.state.faults.clear()
    objects.locations["L1"] = location_with_status("L1", "OUTOFORDER")
    received = len(location_requests(emsp))

    assert await cpo.outbox_service.requeue(partner_id=partner.id) == 1

    await emsp.state.wait_for(lambda: evse_status(emsp, "L1") == "OUTOFORDER")
    await outbox_empty(cpo)
    assert [(r.method, r.status_code) for r in location_requests(emsp)[received:]] == [
        ("PUT", 1000)
    ]


@pytest.mark.expect_errors("dead letter")
async def test_push_is_dead_lettered_at_once_when_partner_is_unregistered(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    await cpo.partners.unregister(partner.id, force=True)
    await push(cpo, put_location(partner, "L1"))
    (dead,) = await dead_rows(cpo)
    assert (dead.attempts, dead.last_error) == (
        0,
        f"partner {partner.id} is UNREGISTERED, not REGISTERED",
    )
    assert location_requests(emsp) == []


@pytest.mark.expect_errors("dead letter")
async def test_push_is_dead_lettered_at_once_when_partner_or_endpoint_is_missing(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    tokens = PushRequest(
        partner_id=partner.id,
        module=ModuleID.TOKENS,  # the simulator is a tokens SENDER only
        method="PUT",
        path="NL/CPO/T1",
        body={},
        ordering_key="tokens:T1",
    )
    await push(cpo, tokens)
    await push(cpo, replace(put_location(partner, "L1"), partner_id=999))
    first, second = await dead_rows(cpo, count=2)
    assert first.last_error == f"partner {partner.id} offers no tokens RECEIVER endpoint"
    assert second.last_error == "partner 999 does not exist (any more)"
    assert emsp.state.received_for("tokens") == []


# --- restart -------------------------------------------------------------------------------


async def test_pending_pushes_are_delivered_by_a_new_worker_after_a_restart(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    # A push in flight when the worker stops is cancelled: its row stays PENDING.
    emsp.state.faults.delay("locations", "PUT", seconds=5, count=1)
    await push(cpo, put_location(partner, "L1"))
    await emsp.state.wait_for(lambda: location_requests(emsp))
    cpo.push_worker.stop_timeout_s = 0.05
    await cpo.push_worker.stop()
    await push(cpo, put_location(partner, "L2"), patch_status(partner, "L1", "CHARGING"))
    assert len(await cpo.outbox.list_entries(state=OutboxState.PENDING)) == 3

    worker = OutboxWorker(
        cpo.outbox,
        cpo.partners.store,
        cpo.ocpi_client,
        cpo.identity,
        RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02),
        concurrency=2,
        poll_interval_s=0.05,
        full_objects=None,
    )
    worker.start()
    try:
        await emsp.state.wait_for(lambda: evse_status(emsp, "L1") == "CHARGING")
        await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "L2"))
        await outbox_empty(cpo)
    finally:
        await worker.stop()
    assert worker.delivered == 3
    puts_l1 = [r for r in location_requests(emsp) if r.path.endswith("/NL/CPO/L1")]
    assert len(puts_l1) == 2  # at-least-once: the cancelled one is sent again


async def test_drain_once_delivers_what_is_due_without_the_loop(
    cpo: BridgeApp, emsp: EmspSimulator, partner: Partner
) -> None:
    await cpo.push_worker.stop()
    await push(cpo, put_location(partner, "L1"), put_location(partner, "L2"))
    await push(cpo, patch_status(partner, "L1", "CHARGING"))
    worker = OutboxWorker(
        cpo.outbox,
        cpo.partners.store,
        cpo.ocpi_client,
        cpo.identity,
        RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02),
        concurrency=1,
        poll_interval_s=0.05,
        full_objects=None,
    )
    assert await worker.drain_once() == 3
    assert evse_status(emsp, "L1") == "CHARGING"
    assert emsp.state.location("NL", "CPO", "L2") is not None
    assert await cpo.outbox.list_entries() == []
