"""ChargingProfiles (CPO as RECEIVER) end to end over real sockets, for both OCPP versions: the
eMSP simulator PUTs, GETs and DELETEs the profile of its running session, the charger simulator
receives SetChargingProfile (TxProfile of the transaction), GetCompositeSchedule and
ClearChargingProfile, and the results reach the eMSP's ``response_url`` through the outbox.
Chargers that reject, fail, keep silent or are offline, sessions that are unknown, another
eMSP's or ended, and invalid requests are covered too.

The CPO PUTs the session's ActiveChargingProfile to the eMSP's chargingprofiles SENDER endpoint
after its profile was set or cleared (both versions) and when a 2.0.1 station reports an
external limit set or cleared (NotifyChargingLimit, ClearedChargingLimit), only for sessions
on which that eMSP had a profile accepted, and not to an eMSP without that endpoint. Requests
of one kind for one session within ``charging_profile_min_interval`` are ``TOO_OFTEN``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from bridge.chargingprofiles import ChargingProfilePolicy, ChargingProfileService
from bridge.main import BridgeApp
from bridge.store.tables import (
    ActiveProfileUpdateRow,
    ChargingProfileRequestRow,
    ProjectorOffsetRow,
    SessionRow,
)
from csms.clock import utc_now
from csms.store.tables import EventRow
from simulators.emsp.models import ActiveChargingProfile
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import DEFAULT_ENDPOINTS, SentChargingProfileRequest
from simulators.emsp.wire import ModuleID
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_location_status import CPO, FAST, until
from tests.e2e.test_ocpi_registration import emsp_registers, token_a_for, versions_url
from tests.e2e.test_sessions import FLOWS, TOKEN, site_text

CALL_TIMEOUT = 0.5
PROFILE_A: dict[str, Any] = {
    "charging_rate_unit": "A",
    "charging_profile_period": [
        {"start_period": 0, "limit": 16.7},
        {"start_period": 1800, "limit": 8},
    ],
}
PROFILE_W: dict[str, Any] = {
    "charging_rate_unit": "W",
    "charging_profile_period": [{"start_period": 0, "limit": 11000.05}],
}
VERSIONS = ["1.6", "2.0.1"]


# The EVSE maximum of the site's connectors (AC_3_PHASE, 230 V, 16 A): 3 x 230 x 16 W.
EVSE_MAXIMUM_W = Decimal(11040)
WITHOUT_CHARGINGPROFILES = tuple(e for e in DEFAULT_ENDPOINTS if e[0] != ModuleID.CHARGINGPROFILES)


@asynccontextmanager
async def profile_world(
    tmp_path: Path,
    version: str,
    *,
    emsp_settings: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[BridgeApp, EmspSimulator, Any, Any, str, AsyncExitStack]]:
    """A bridge, a registered eMSP and a charger of ``version`` running a transaction of the
    eMSP's token: (app, emsp, charger simulator, transaction id, session id, stack). No
    TOO_OFTEN unless ``charging_profile_min_interval`` is given."""
    start, _ = FLOWS[version]
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    bridge_settings: dict[str, Any] = {
        "site_file": str(site),
        "session_patch_interval": 0,
        "ocpp_call_timeout": CALL_TIMEOUT,
        "charging_profile_min_interval": 0,
        **CPO,
        **FAST,
        **settings,
    }
    async with AsyncExitStack() as stack:
        emsp = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="EMS", **(emsp_settings or {}))
        )
        app = await stack.enter_async_context(running_bridge(tmp_path, **bridge_settings))
        await emsp_registers(app, emsp)
        _, published = await emsp.driver.publish_token(TOKEN, whitelist="ALLOWED")
        assert published is not None
        assert published.ok, published.describe()
        sim, tx = await start(app, stack)
        session_id = await active_session(app)
        yield app, emsp, sim, tx, session_id, stack


async def active_session(app: BridgeApp) -> str:
    async def published() -> str | None:
        rows = await all_rows(app, SessionRow)
        return next((r.id for r in rows if r.document is not None), None)

    return await until(published)


def sync_result(sent: SentChargingProfileRequest) -> tuple[str, int]:
    assert sent.ok, sent.problem
    assert sent.response_data is not None
    return sent.response_data.result.value, sent.response_data.timeout


async def result_of(emsp: EmspSimulator, sent: SentChargingProfileRequest) -> Any:
    return await emsp.state.wait_for_charging_profile_result(sent.request_id, timeout=5)


def numbers(value: Any) -> Any:
    """The simulators parse fractions as Decimal: compare as plain JSON numbers."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def tx_profile(version: str, call: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The charging profile and its (first) schedule of a SetChargingProfile request."""
    if version == "1.6":
        profile = call["csChargingProfiles"]
        return profile, profile["chargingSchedule"]
    profile = call["chargingProfile"]
    return profile, profile["chargingSchedule"][0]


def profile_id_of(version: str, profile: dict[str, Any]) -> int:
    return int(profile["chargingProfileId"] if version == "1.6" else profile["id"])


async def pushed(emsp: EmspSimulator, session_id: str, count: int) -> list[ActiveChargingProfile]:
    """The ActiveChargingProfiles PUT for the session, once there are ``count``: exactly."""
    received = await emsp.state.wait_for_active_charging_profiles(session_id, count)
    assert len(received) == count, [p.charging_profile for p in received]
    return received


def limits(active: ActiveChargingProfile) -> tuple[str, list[tuple[int, Decimal]]]:
    """(unit, [(start_period, limit)]) of an ActiveChargingProfile."""
    profile = active.charging_profile
    periods = profile.charging_profile_period or []
    return profile.charging_rate_unit.value, [(p.start_period, p.limit) for p in periods]


async def asked_for_the_active_profile(app: BridgeApp, sim: Any) -> None:
    """The charger was asked (once more) for its composite schedule for an update."""
    asked = await sim.wait_for_call("GetCompositeSchedule")
    assert asked["duration"] == app.settings.charging_profile_active_duration


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_set_get_and_clear_a_profile_when_the_charger_accepts(
    tmp_path: Path, version: str
) -> None:
    async with profile_world(tmp_path, version) as (app, emsp, sim, tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        result, timeout = sync_result(sent)
        assert result == "ACCEPTED"
        assert timeout >= CALL_TIMEOUT + app.settings.command_result_margin

        call = await sim.wait_for_call("SetChargingProfile")
        profile, schedule = tx_profile(version, call)
        assert profile["chargingProfilePurpose"] == "TxProfile"
        assert profile["chargingProfileKind"] == "Relative"
        assert profile["stackLevel"] == 50
        assert profile["transactionId"] == tx
        assert (call["connectorId"] if version == "1.6" else call["evseId"]) == 1
        assert schedule["chargingRateUnit"] == "A"
        assert numbers(schedule["chargingSchedulePeriod"]) == [
            {"startPeriod": 0, "limit": 16.7},
            {"startPeriod": 1800, "limit": 8},
        ]
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        first_id = profile_id_of(version, profile)
        # The profile changed what the charger allows: the eMSP is PUT the session's
        # ActiveChargingProfile, the charger's composite schedule (the transaction started
        # long ago: the 8 A period of the Relative profile is the one in force).
        (active,) = await pushed(emsp, session_id, 1)
        await asked_for_the_active_profile(app, sim)
        assert limits(active) == ("A", [(0, Decimal(8))])
        assert active.charging_profile.duration == app.settings.charging_profile_active_duration

        # A second PUT replaces the session's profile: same id, watts kept, limit rounded.
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert sync_result(sent)[0] == "ACCEPTED"
        profile, schedule = tx_profile(version, await sim.wait_for_call("SetChargingProfile"))
        assert profile_id_of(version, profile) == first_id
        assert schedule["chargingRateUnit"] == "W"
        assert numbers(schedule["chargingSchedulePeriod"]) == [{"startPeriod": 0, "limit": 11000.1}]
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        active = (await pushed(emsp, session_id, 2))[-1]
        await asked_for_the_active_profile(app, sim)
        assert limits(active) == ("W", [(0, Decimal("11000.1"))])

        # GET: the charger's composite schedule of the session's EVSE.
        sent = await emsp.driver.get_active_charging_profile(session_id, 900)
        assert sync_result(sent)[0] == "ACCEPTED"
        asked = await sim.wait_for_call("GetCompositeSchedule")
        assert asked["duration"] == 900
        assert (asked["connectorId"] if version == "1.6" else asked["evseId"]) == 1
        active = await result_of(emsp, sent)
        assert active.result.value == "ACCEPTED"
        assert active.profile is not None
        # The session's profile (11000.1 W) is the lowest limit from now on.
        charging_profile = active.profile.charging_profile
        assert charging_profile.charging_rate_unit.value == "W"
        assert charging_profile.charging_profile_period[0].start_period == 0
        assert charging_profile.charging_profile_period[0].limit == Decimal("11000.1")

        # DELETE: our profile id is cleared; a second DELETE finds nothing on the charger.
        sent = await emsp.driver.clear_charging_profile(session_id)
        assert sync_result(sent)[0] == "ACCEPTED"
        cleared = await sim.wait_for_call("ClearChargingProfile")
        assert cleared == (
            {"id": first_id} if version == "1.6" else {"chargingProfileId": first_id}
        )
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        # No profile is active any more (the charger answers Rejected): the EVSE maximum.
        active = (await pushed(emsp, session_id, 3))[-1]
        await asked_for_the_active_profile(app, sim)
        assert limits(active) == ("W", [(0, EVSE_MAXIMUM_W)])
        assert active.charging_profile.duration is None
        sent = await emsp.driver.clear_charging_profile(session_id)
        assert sync_result(sent)[0] == "ACCEPTED"
        assert (await result_of(emsp, sent)).result.value == "UNKNOWN"

        rows = await all_rows(app, ChargingProfileRequestRow, order_by=ChargingProfileRequestRow.id)
        assert [(r.kind, r.result) for r in rows] == [
            ("SET", "ACCEPTED"),
            ("SET", "ACCEPTED"),
            ("ACTIVE", "ACCEPTED"),
            ("CLEAR", "ACCEPTED"),
            ("CLEAR", "UNKNOWN"),
        ]
        assert all(r.session_id == session_id and r.answered_at is not None for r in rows)
        updates = await all_rows(app, ActiveProfileUpdateRow, order_by=ActiveProfileUpdateRow.id)
        assert [(u.reason, u.outcome) for u in updates] == [
            ("profile set", "SENT"),
            ("profile set", "SENT"),
            ("profile cleared", "SENT"),
        ]
        assert len(await pushed(emsp, session_id, 3)) == 3  # the UNKNOWN clear changed nothing


# --- chargers that do not accept ------------------------------------------------------------


def rejects(sim: Any, action: str) -> None:
    sim.answers[action] = {"status": "Rejected"}


def not_supported(sim: Any, action: str) -> None:
    sim.call_error_actions[action] = "NotSupported"


def silent(sim: Any, action: str) -> None:
    sim.silent_actions.add(action)


FAULTS = {"rejects": rejects, "not-supported": not_supported, "silent": silent}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("version", VERSIONS)
async def test_a_profile_is_rejected_when_the_charger_does_not_accept(
    tmp_path: Path, version: str, fault: str
) -> None:
    async with profile_world(tmp_path, version) as (app, emsp, sim, _tx, session_id, _):
        FAULTS[fault](sim, "SetChargingProfile")
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert sync_result(sent)[0] == "ACCEPTED"
        await sim.wait_for_call("SetChargingProfile")
        assert (await result_of(emsp, sent)).result.value == "REJECTED"
        (row,) = await all_rows(app, ChargingProfileRequestRow)
        assert row.result == "REJECTED"
        expected = {"rejects": "Rejected", "not-supported": "NotSupported", "silent": "Timeout"}
        assert row.detail is not None
        assert row.detail.startswith(expected[fault])


@pytest.mark.parametrize("fault", ["rejects", "silent"])
async def test_get_and_clear_are_rejected_when_the_charger_does_not_accept(
    tmp_path: Path, fault: str
) -> None:
    async with profile_world(tmp_path, "2.0.1") as (_app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 1)  # the update after the PUT asked the charger already
        FAULTS[fault](sim, "GetCompositeSchedule")
        FAULTS[fault](sim, "ClearChargingProfile")
        get = await emsp.driver.get_active_charging_profile(session_id, 600)
        clear = await emsp.driver.clear_charging_profile(session_id)
        assert sync_result(get)[0] == sync_result(clear)[0] == "ACCEPTED"
        active = await result_of(emsp, get)
        assert (active.result.value, active.profile) == ("REJECTED", None)
        assert (await result_of(emsp, clear)).result.value == "REJECTED"


async def test_clearing_a_session_that_never_had_a_profile_is_unknown_without_a_call(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "1.6") as (_app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.clear_charging_profile(session_id)
        assert sync_result(sent)[0] == "ACCEPTED"
        assert (await result_of(emsp, sent)).result.value == "UNKNOWN"
        assert [a for a, _ in sim.received_calls if a == "ClearChargingProfile"] == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_requests_are_rejected_at_once_when_the_charger_is_offline(
    tmp_path: Path, version: str
) -> None:
    async with profile_world(tmp_path, version) as (app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 1)
        await sim.disconnect()
        charger_id = "CP16" if version == "1.6" else "CS201"

        async def offline() -> bool:
            return not app.registry.is_connected(charger_id)

        await until(offline)
        for sent in (
            await emsp.driver.set_charging_profile(session_id, PROFILE_A),
            await emsp.driver.get_active_charging_profile(session_id, 600),
            await emsp.driver.clear_charging_profile(session_id),
        ):
            assert sync_result(sent) == ("REJECTED", 0)
        assert len(await all_rows(app, ChargingProfileRequestRow)) == 1


# --- ActiveChargingProfile updates to the eMSP ---------------------------------------------

EXTERNAL_4000_W = {
    "id": 7,
    "chargingRateUnit": "W",
    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4000}],
}
EXTERNAL_3000_W = {
    "id": 8,
    "chargingRateUnit": "W",
    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3000}],
}


async def projected(app: BridgeApp) -> None:
    """Wait until the chargingprofiles projector has applied every event logged so far."""
    async with app.db.read() as read:
        last = (await read.exec(select(func.max(EventRow.id)))).one() or 0

    async def caught_up() -> bool:
        name = ProjectorOffsetRow.name == "chargingprofiles"
        rows = await all_rows(app, ProjectorOffsetRow, name)
        return bool(rows) and rows[0].offset >= last

    await until(caught_up)


async def test_the_emsp_gets_the_active_profile_when_the_station_reports_an_external_limit(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "2.0.1") as (app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        (active,) = await pushed(emsp, session_id, 1)
        assert limits(active) == ("W", [(0, Decimal("11000.1"))])
        await asked_for_the_active_profile(app, sim)

        # The site's EMS limits the EVSE to 4000 W: the composite schedule the eMSP is PUT
        # now has the lower limit of the two.
        await sim.notify_charging_limit("EMS", evse_id=1, schedule=[EXTERNAL_4000_W])
        active = (await pushed(emsp, session_id, 2))[-1]
        await asked_for_the_active_profile(app, sim)
        assert limits(active) == ("W", [(0, Decimal(4000))])
        assert active.charging_profile.duration == app.settings.charging_profile_active_duration
        assert abs(active.start_date_time - utc_now()) < timedelta(minutes=1)

        # The EMS lifts it: the eMSP's own profile is the limit again.
        await sim.cleared_charging_limit("EMS", evse_id=1)
        active = (await pushed(emsp, session_id, 3))[-1]
        await asked_for_the_active_profile(app, sim)
        assert limits(active) == ("W", [(0, Decimal("11000.1"))])

        # A limit on the whole station (no evseId) concerns the session too.
        await sim.notify_charging_limit("SO", schedule=[EXTERNAL_3000_W])
        active = (await pushed(emsp, session_id, 4))[-1]
        assert limits(active) == ("W", [(0, Decimal(3000))])

        updates = await all_rows(app, ActiveProfileUpdateRow, order_by=ActiveProfileUpdateRow.id)
        assert [(u.reason, u.outcome) for u in updates] == [
            ("profile set", "SENT"),
            ("EMS limit set", "SENT"),
            ("EMS limit cleared", "SENT"),
            ("SO limit set", "SENT"),
        ]
        assert all(u.session_id == session_id and u.done_at is not None for u in updates)


async def test_no_active_profile_is_sent_for_a_session_without_an_accepted_profile(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "2.0.1") as (app, emsp, sim, _tx, session_id, _):
        # A profile the charger rejects does not count as set.
        rejects(sim, "SetChargingProfile")
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert (await result_of(emsp, sent)).result.value == "REJECTED"

        await sim.notify_charging_limit("EMS", evse_id=1, schedule=[EXTERNAL_4000_W])
        await sim.cleared_charging_limit("EMS", evse_id=1)
        await projected(app)

        assert await all_rows(app, ActiveProfileUpdateRow) == []
        assert emsp.state.active_charging_profile_history == {}
        assert [a for a, _ in sim.received_calls if a == "GetCompositeSchedule"] == []


async def test_a_request_within_the_interval_is_too_often_and_reaches_no_charger(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "1.6", charging_profile_min_interval=3600) as (
        app,
        emsp,
        sim,
        _tx,
        session_id,
        _,
    ):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert sync_result(sent)[0] == "ACCEPTED"
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 1)

        again = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert sync_result(again) == ("TOO_OFTEN", 0)
        assert (again.response.http_status, again.response.status_code) == (200, 1000)
        assert "retry in" in (again.response.status_message or "")

        # The interval is per kind of request: a GET and a DELETE are accepted, once.
        get = await emsp.driver.get_active_charging_profile(session_id, 600)
        assert sync_result(get)[0] == "ACCEPTED"
        assert sync_result(await emsp.driver.get_active_charging_profile(session_id, 600)) == (
            "TOO_OFTEN",
            0,
        )
        assert (await result_of(emsp, get)).result.value == "ACCEPTED"
        clear = await emsp.driver.clear_charging_profile(session_id)
        assert sync_result(clear)[0] == "ACCEPTED"
        assert sync_result(await emsp.driver.clear_charging_profile(session_id)) == (
            "TOO_OFTEN",
            0,
        )
        assert (await result_of(emsp, clear)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 2)

        assert [a for a, _ in sim.received_calls if a == "SetChargingProfile"] == [
            "SetChargingProfile"
        ]
        assert [a for a, _ in sim.received_calls if a == "ClearChargingProfile"] == [
            "ClearChargingProfile"
        ]
        rows = await all_rows(app, ChargingProfileRequestRow, order_by=ChargingProfileRequestRow.id)
        assert [(r.kind, r.result) for r in rows] == [
            ("SET", "ACCEPTED"),
            ("ACTIVE", "ACCEPTED"),
            ("CLEAR", "ACCEPTED"),
        ]


async def test_the_active_profile_is_not_sent_to_an_emsp_without_a_chargingprofiles_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with profile_world(
        tmp_path, "2.0.1", emsp_settings={"endpoints": WITHOUT_CHARGINGPROFILES}
    ) as (app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"

        async def skipped() -> ActiveProfileUpdateRow | None:
            rows = await all_rows(app, ActiveProfileUpdateRow)
            return rows[0] if rows and rows[0].done_at is not None else None

        update = await until(skipped)
        assert update.outcome == "SKIPPED"
        assert update.detail is not None
        assert "offers no chargingprofiles SENDER endpoint" in update.detail
        assert any(
            r.levelname == "WARNING" and "not sent" in r.getMessage() for r in caplog.records
        )
        # The charger is not even asked, and nothing is PUT.
        assert [a for a, _ in sim.received_calls if a == "GetCompositeSchedule"] == []
        assert emsp.state.active_charging_profile_history == {}


def another_service(app: BridgeApp, **policy: Any) -> ChargingProfileService:
    """A second ChargingProfileService on the same database: the next run of the process."""
    return ChargingProfileService(
        app.db,
        chargers=app.registry,
        sessions=app.session_reader,
        partners=app.partners.store.get,
        policy=ChargingProfilePolicy(call_timeout_s=CALL_TIMEOUT, **policy),
        on_enqueued=app.push_committed,
        clock=utc_now,
    )


async def pending_update(app: BridgeApp) -> ActiveProfileUpdateRow:
    async def recorded() -> ActiveProfileUpdateRow | None:
        pending = col(ActiveProfileUpdateRow.done_at).is_(None)
        rows = await all_rows(app, ActiveProfileUpdateRow, pending)
        return rows[0] if rows else None

    return await until(recorded)


async def test_an_update_left_by_a_stopped_process_is_sent_after_the_next_start(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "2.0.1") as (app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 1)
        await app.charging_profiles.stop()

        # The limit change is recorded, but nothing carries it out any more ...
        await sim.notify_charging_limit("EMS", evse_id=1, schedule=[EXTERNAL_4000_W])
        update = await pending_update(app)
        assert (update.reason, update.attempts) == ("EMS limit set", 0)

        # ... until the next run starts.
        next_run = another_service(app)
        next_run.start()
        try:
            active = (await pushed(emsp, session_id, 2))[-1]
        finally:
            await next_run.stop()
        assert limits(active) == ("W", [(0, Decimal(4000))])
        (update,) = await all_rows(
            app, ActiveProfileUpdateRow, ActiveProfileUpdateRow.id == update.id
        )
        assert update.outcome == "SENT"


async def test_an_update_is_asked_again_when_the_charger_does_not_answer_then_given_up(
    tmp_path: Path,
) -> None:
    async with profile_world(tmp_path, "2.0.1") as (app, emsp, sim, _tx, session_id, _):
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_W)
        assert (await result_of(emsp, sent)).result.value == "ACCEPTED"
        await pushed(emsp, session_id, 1)
        await asked_for_the_active_profile(app, sim)
        await app.charging_profiles.stop()
        service = another_service(app, update_retry_s=0.05, update_max_attempts=3)
        service.start()
        try:
            # Silent at the first question, answering at the second: sent.
            silent(sim, "GetCompositeSchedule")
            await sim.notify_charging_limit("EMS", evse_id=1, schedule=[EXTERNAL_4000_W])
            await pending_update(app)
            service.wake()  # the projector wakes the app's (stopped) service
            await sim.wait_for_call("GetCompositeSchedule")
            sim.silent_actions.discard("GetCompositeSchedule")
            active = (await pushed(emsp, session_id, 2))[-1]
            assert limits(active) == ("W", [(0, Decimal(4000))])

            # Silent every time: given up after the last attempt, nothing sent.
            silent(sim, "GetCompositeSchedule")
            await sim.cleared_charging_limit("EMS", evse_id=1)
            await pending_update(app)
            service.wake()

            async def given_up() -> ActiveProfileUpdateRow | None:
                rows = await all_rows(
                    app, ActiveProfileUpdateRow, order_by=ActiveProfileUpdateRow.id
                )
                return rows[-1] if rows[-1].outcome == "FAILED" else None

            failed = await until(given_up)
        finally:
            await service.stop()
        assert (failed.reason, failed.attempts) == ("EMS limit cleared", 3)
        assert failed.detail is not None
        assert failed.detail.startswith("Timeout")
        updates = await all_rows(app, ActiveProfileUpdateRow, order_by=ActiveProfileUpdateRow.id)
        assert [(u.reason, u.attempts, u.outcome) for u in updates] == [
            ("profile set", 0, "SENT"),
            ("EMS limit set", 1, "SENT"),
            ("EMS limit cleared", 3, "FAILED"),
        ]
        assert len(emsp.state.active_charging_profile_history[session_id]) == 2


# --- sessions the caller may not touch ------------------------------------------------------


async def test_unknown_foreign_and_ended_sessions_are_unknown_session(tmp_path: Path) -> None:
    _, stop = FLOWS["1.6"]
    async with profile_world(tmp_path, "1.6") as (app, emsp, sim, tx, session_id, stack):
        for sent in (
            await emsp.driver.set_charging_profile("NO-SUCH-SESSION", PROFILE_A),
            await emsp.driver.get_active_charging_profile("NO-SUCH-SESSION", 600),
            await emsp.driver.clear_charging_profile("NO-SUCH-SESSION"),
        ):
            assert sync_result(sent) == ("UNKNOWN_SESSION", 0)

        # Another eMSP, registered too, may not touch (or learn about) this eMSP's session.
        other = await stack.enter_async_context(
            EmspSimulator(port=0, country_code="DE", party_id="OTH")
        )
        _, token_a = await token_a_for(app, "OTH")
        assert (await other.driver.register(versions_url(app), token_a)).ok
        for sent in (
            await other.driver.set_charging_profile(session_id, PROFILE_A),
            await other.driver.get_active_charging_profile(session_id, 600),
            await other.driver.clear_charging_profile(session_id),
        ):
            assert sync_result(sent) == ("UNKNOWN_SESSION", 0)

        # An ended session takes no profile any more.
        await stop(sim, tx)

        async def ended() -> bool:
            (row,) = await all_rows(app, SessionRow)
            return row.ended_at is not None

        await until(ended)
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert sync_result(sent) == ("UNKNOWN_SESSION", 0)
        assert await all_rows(app, ChargingProfileRequestRow) == []
        assert [a for a, _ in sim.received_calls if a == "SetChargingProfile"] == []


# --- invalid requests -------------------------------------------------------------------------


async def test_invalid_requests_are_status_2001(tmp_path: Path) -> None:
    async with profile_world(tmp_path, "1.6") as (app, emsp, sim, _tx, session_id, _):
        path = f"/{session_id}"
        url = "http://127.0.0.1:1/results/1"
        bad_profiles: list[Any] = [
            {**PROFILE_A, "charging_rate_unit": "kW"},
            {**PROFILE_A, "charging_profile_period": []},
            {**PROFILE_A, "charging_profile_period": [{"start_period": 10, "limit": 16}]},
            {**PROFILE_A, "charging_profile_period": [{"start_period": 0, "limit": -3}]},
            {**PROFILE_A, "charging_profile_period": [{"start_period": 0.5, "limit": 16}]},
            {**PROFILE_A, "start_date_time": "not a date"},
            {**PROFILE_A, "duration": -60},
            "a string",
        ]
        for profile in bad_profiles:
            reply = await emsp.driver.call(
                "chargingprofiles",
                "PUT",
                path,
                body={"charging_profile": profile, "response_url": url},
            )
            assert (reply.http_status, reply.status_code) == (200, 2001), profile
        for body in ({"charging_profile": PROFILE_A}, {"response_url": url}, [1, 2]):
            reply = await emsp.driver.call("chargingprofiles", "PUT", path, body=body)
            assert (reply.http_status, reply.status_code) == (200, 2001), body
        for params in (
            {"response_url": url},
            {"duration": "0", "response_url": url},
            {"duration": "-5", "response_url": url},
            {"duration": "1.5", "response_url": url},
            {"duration": "soon", "response_url": url},
            {"duration": "600"},
            {"duration": "600", "response_url": "not-a-url"},
        ):
            reply = await emsp.driver.call("chargingprofiles", "GET", path, params=params)
            assert (reply.http_status, reply.status_code) == (200, 2001), params
        for delete_params in ({}, {"response_url": "/relative"}):
            reply = await emsp.driver.call("chargingprofiles", "DELETE", path, params=delete_params)
            assert (reply.http_status, reply.status_code) == (200, 2001), delete_params
        assert await all_rows(app, ChargingProfileRequestRow) == []
        assert not [a for a, _ in sim.received_calls if "Charging" in a or "Composite" in a]


# --- nothing is lost ----------------------------------------------------------------------------


async def past_deadline(app: BridgeApp) -> None:
    async with app.db.transaction() as uow:
        for row in (await uow.session.exec(select(ChargingProfileRequestRow))).all():
            row.deadline_at = datetime.now(UTC) - timedelta(seconds=1)
            uow.session.add(row)


@pytest.mark.parametrize("how", ["recover", "expire"])
async def test_a_request_left_unanswered_is_rejected_once(tmp_path: Path, how: str) -> None:
    async with profile_world(tmp_path, "1.6") as (app, emsp, sim, _tx, session_id, _):
        service = app.charging_profiles
        silent(sim, "SetChargingProfile")
        sent = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert sync_result(sent)[0] == "ACCEPTED"
        await sim.wait_for_call("SetChargingProfile")
        # While the charger is being asked, the request is left to its task.
        await past_deadline(app)
        assert await service.expire() == 0
        # The process stops meanwhile: the request has no result, new ones are refused ...
        await service.stop()
        (row,) = await all_rows(app, ChargingProfileRequestRow)
        assert row.result is None
        assert await service.expire() == 0
        refused = await emsp.driver.set_charging_profile(session_id, PROFILE_A)
        assert sync_result(refused) == ("REJECTED", 0)
        # ... until the next run (at start, or its periodic job past the deadline) answers it,
        # once.
        next_run = ChargingProfileService(
            app.db,
            chargers=app.registry,
            sessions=app.session_reader,
            partners=app.partners.store.get,
            policy=ChargingProfilePolicy(call_timeout_s=CALL_TIMEOUT),
            on_enqueued=app.push_committed,
            clock=utc_now,
        )
        reject = next_run.recover if how == "recover" else next_run.expire
        assert await reject() == 1
        assert await reject() == 0
        assert (await result_of(emsp, sent)).result.value == "REJECTED"
        (row,) = await all_rows(app, ChargingProfileRequestRow)
        expected = "the CPO restarted" if how == "recover" else "no answer before the deadline"
        assert (row.result, row.detail) == ("REJECTED", expected)
