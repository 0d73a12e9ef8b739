"""The steps after a registration (queue every Location and Tariff for the new partner, pull
its tokens): the eMSP's credentials POST is answered before they run, they run after it in a
task of their own, a failing step is logged and retried until it succeeds, and steps a stopped
bridge left are run at its next start. Real bridge, real eMSP simulator, real SQLite file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.main import BridgeApp
from bridge.partners import ExpectedRole, Partner, PartnerStatus
from bridge.registration import FollowUpPolicy
from bridge.site import parse_site
from bridge.store.partners import FollowUpRow
from csms.clock import utc_now
from simulators.emsp.server import EmspSimulator
from tests.bridge.test_location_projection import SITE
from tests.conftest import running_bridge

CPO = {"country_code": "NL", "party_id": "CPO"}


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


def versions_url(app: BridgeApp) -> str:
    return f"http://127.0.0.1:{app.http_port}/ocpi/versions"


async def token_a(app: BridgeApp) -> tuple[Partner, str]:
    partner = await app.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS")
    )
    assert partner.token_accept is not None
    return partner, partner.token_accept


async def emsp_registers(app: BridgeApp, sim: EmspSimulator) -> Partner:
    partner, token = await token_a(app)
    result = await sim.driver.register(versions_url(app), token)
    assert result.ok, result.message
    return await app.partners.get(partner.id)


async def steps_of(app: BridgeApp, partner_id: int) -> dict[str, int]:
    """The stored steps still to run: name -> failed attempts."""
    return {s.step: s.attempts for s in await app.partners.store.follow_ups(partner_id=partner_id)}


class Blocked:
    """A registration step that waits for ``release`` (and records the partners it ran for)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.ran: list[int] = []

    async def __call__(self, partner: Partner) -> None:
        self.started.set()
        await self.release.wait()
        self.ran.append(partner.id)


class FailsOnce:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, partner: Partner) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("cannot queue yet")


async def test_the_credentials_post_is_answered_while_a_registration_step_is_still_running(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        await app.apply_site(parse_site(SITE, "test"))
        blocked = Blocked()
        app.partners.on_registered(blocked, name="blocked")

        partner = await emsp_registers(app, emsp)

        # The eMSP has its answer (token C) and the registration is stored...
        assert emsp.state.peer is not None
        assert partner.status is PartnerStatus.REGISTERED
        await blocked.started.wait()
        # ...while the step still waits: it is stored, not done.
        assert blocked.ran == []
        assert "blocked" in await steps_of(app, partner.id)

        blocked.release.set()
        await app.partners.join_follow_ups()
        assert blocked.ran == [partner.id]
        assert await steps_of(app, partner.id) == {}
        # The other steps ran too: the Location reached the eMSP.
        await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "LOC1"), 10)


async def test_registration_steps_run_after_the_answer_and_are_then_forgotten(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        await app.apply_site(parse_site(SITE, "test"))
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()
        assert await steps_of(app, partner.id) == {}
        await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "LOC1"), 10)


@pytest.mark.expect_errors("after registering OCPI partner \\d+: step 'flaky' failed")
async def test_a_failing_registration_step_is_logged_kept_and_retried_until_it_succeeds(
    tmp_path: Path, emsp: EmspSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        flaky = FailsOnce()
        app.partners.on_registered(flaky, name="flaky")
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()

        assert flaky.calls == 1
        assert await steps_of(app, partner.id) == {"flaky": 1}  # the others are done
        (stored,) = await app.partners.store.follow_ups(partner_id=partner.id)
        assert stored.last_error == "RuntimeError: cannot queue yet"
        assert stored.next_attempt_at > utc_now()  # backoff: not due yet
        assert any(
            "step 'flaky' failed (attempt 1)" in r.getMessage() and r.exc_info
            for r in caplog.records
        )

        # The periodic job leaves it alone until it is due...
        await app.partners.run_due_follow_ups()
        assert flaky.calls == 1
        # ...and runs it once it is (here: a clock past the backoff).
        app.partners._clock = lambda: utc_now() + timedelta(hours=2)
        await app.partners.run_due_follow_ups()
        assert flaky.calls == 2
        assert await steps_of(app, partner.id) == {}


@pytest.mark.expect_errors("after registering OCPI partner \\d+: step 'broken' failed")
async def test_a_step_failing_again_is_retried_with_a_longer_backoff(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        app.partners.follow_up_policy = FollowUpPolicy(retry_base_s=10, retry_max_s=25)

        async def broken(partner: Partner) -> None:
            raise RuntimeError("still broken")

        app.partners.on_registered(broken, name="broken")
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()
        for attempts, backoff in ((2, 20), (3, 25)):  # doubled, then capped
            now = utc_now() + timedelta(hours=attempts)
            app.partners._clock = lambda now=now: now  # type: ignore[misc]
            await app.partners.run_due_follow_ups()
            (stored,) = await app.partners.store.follow_ups(partner_id=partner.id)
            assert stored.attempts == attempts
            assert stored.next_attempt_at == now + timedelta(seconds=backoff)


async def test_steps_interrupted_by_a_stop_run_at_the_next_start(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        blocked = Blocked()
        app.partners.on_registered(blocked, name="slow")
        partner = await emsp_registers(app, emsp)
        await blocked.started.wait()
    # Stopped while the step was waiting: cancelled cleanly, nothing logged as an error,
    # the step still stored.
    assert blocked.ran == []

    ran: list[int] = []

    async def slow(partner: Partner) -> None:
        ran.append(partner.id)

    app = BridgeApp(app.settings)
    app.partners.on_registered(slow, name="slow")
    await app.start()
    try:
        await app.partners.join_follow_ups()
        assert ran == [partner.id]
        assert await steps_of(app, partner.id) == {}
    finally:
        await app.stop()


async def test_no_step_starts_once_the_bridge_is_stopping(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        blocked = Blocked()
        app.partners.on_registered(blocked, name="slow")
        partner = await emsp_registers(app, emsp)
        await blocked.started.wait()
        await app.partners.stop()
        await app.partners.run_due_follow_ups()  # e.g. the job firing during the shutdown
        await app.partners.join_follow_ups()
        assert blocked.ran == []
        assert "slow" in await steps_of(app, partner.id)


@pytest.mark.expect_errors("the follow-up steps failed")
async def test_steps_whose_run_fails_unexpectedly_stay_stored_for_the_periodic_job(
    tmp_path: Path, emsp: EmspSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        store = app.partners.store
        read_steps = store.follow_ups

        async def unreadable(**_: object) -> list[object]:
            raise OSError("disk I/O error")

        monkeypatch.setattr(store, "follow_ups", unreadable)
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()
        monkeypatch.setattr(store, "follow_ups", read_steps)
        assert set(await steps_of(app, partner.id)) == {"tokens", "locations", "tariffs"}

        # Not due before the lease of the registering process has run out...
        await app.partners.run_due_follow_ups()
        assert set(await steps_of(app, partner.id)) == {"tokens", "locations", "tariffs"}
        # ...then the job runs them.
        app.partners._clock = lambda: utc_now() + timedelta(hours=1)
        await app.partners.run_due_follow_ups()
        assert await steps_of(app, partner.id) == {}


@pytest.mark.expect_errors("after registering OCPI partner \\d+: step 'broken' failed")
async def test_steps_are_dropped_when_the_partner_unregisters(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:

        async def broken(partner: Partner) -> None:
            raise RuntimeError("cannot queue")

        app.partners.on_registered(broken, name="broken")
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()
        assert await steps_of(app, partner.id) == {"broken": 1}

        result = await emsp.driver.unregister()
        assert result.ok, result.message
        assert await steps_of(app, partner.id) == {}


async def test_steps_of_a_partner_no_longer_registered_or_unknown_are_dropped(
    tmp_path: Path, emsp: EmspSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.registration")
    async with running_bridge(tmp_path, **CPO) as app:
        pending, _ = await token_a(app)
        partner = await emsp_registers(app, emsp)
        await app.partners.join_follow_ups()
        now = utc_now()
        async with app.db.transaction() as uow:
            # Left by another version of the bridge, or by a race with an unregistration.
            for partner_id, step in ((partner.id, "obsolete"), (pending.id, "locations")):
                uow.session.add(
                    FollowUpRow(
                        partner_id=partner_id, step=step, next_attempt_at=now, created_at=now
                    )
                )
        app.partners._clock = lambda: now + timedelta(seconds=1)
        await app.partners.run_due_follow_ups()
        assert await steps_of(app, partner.id) == {}
        assert await steps_of(app, pending.id) == {}
        messages = [r.getMessage() for r in caplog.records]
        assert any("'obsolete' is unknown to this version" in m for m in messages)
        assert any(f"partner {pending.id} is no longer registered" in m for m in messages)


async def test_the_operator_registering_with_an_emsp_waits_for_the_steps(
    tmp_path: Path, emsp: EmspSimulator
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        await app.apply_site(parse_site(SITE, "test"))
        partner = await app.partners.register(
            emsp.versions_url,
            emsp.driver.mint_token_a(),
            expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS"),
        )
        # Answered after the steps ran: nothing left to run, the Location queued (or sent).
        assert await steps_of(app, partner.id) == {}
        await emsp.state.wait_for(lambda: emsp.state.location("NL", "CPO", "LOC1"), 10)


def test_a_step_name_is_registered_once(tmp_path: Path) -> None:
    from tests.conftest import settings_for

    app = BridgeApp(settings_for(tmp_path))

    async def step(partner: Partner) -> None:
        return None

    app.partners.on_registered(step, name="mine")
    with pytest.raises(ValueError, match="'mine' exists already"):
        app.partners.on_registered(step, name="mine")


@pytest.mark.expect_errors("the follow-up steps failed")
async def test_the_operator_registration_stands_when_its_steps_fail_unexpectedly(
    tmp_path: Path, emsp: EmspSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_bridge(tmp_path, **CPO) as app:
        store = app.partners.store

        async def unreadable(**_: object) -> list[object]:
            raise OSError("disk I/O error")

        monkeypatch.setattr(store, "follow_ups", unreadable)
        partner = await app.partners.register(
            emsp.versions_url,
            emsp.driver.mint_token_a(),
            expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS"),
        )
        await app.partners.join_follow_ups()
        assert partner.status is PartnerStatus.REGISTERED
        monkeypatch.undo()
        assert set(await steps_of(app, partner.id)) == {"tokens", "locations", "tariffs"}
