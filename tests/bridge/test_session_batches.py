"""Sessions projected from a batch of events end as if each event had been a batch of its own:
the sessions' timelines are decoded once per batch and written back once (or before a step
that reads them), the sessions of the meter values are looked up once per batch. Same stored
sessions (timeline, document, what was PATCHed), same CDR, same outbox rows."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from bridge.identity import CpoIdentity
from bridge.main import BridgeApp
from bridge.mapping import sessions as mapping
from bridge.mapping.sessions import POWER_IMPORT
from bridge.ocpi.locations import TokenType
from bridge.ocpi.sessions import CdrToken, SessionStatus
from bridge.sessions import CommandSession, SessionPolicy, SessionService
from bridge.store.outbox import OutboxRow
from bridge.store.sessions import delete_points, points_of, session_of_transaction
from bridge.store.tables import AuthorizationRow, CdrRow, SessionPointRow, SessionRow
from bridge.tariffs import tariffs_by_ids
from csms.domain.events import (
    ChargingStateChanged,
    ConnectorStatusChanged,
    DomainEvent,
    MeterValuesSampled,
    TransactionAuthorized,
    TransactionEnded,
    TransactionStarted,
)
from csms.domain.model import (
    ENERGY_IMPORT_REGISTER,
    AuthorizationStatus,
    ChargingState,
    ConnectorStatus,
    EvseRef,
    IdToken,
    MeterReading,
    SignedMeterValue,
)
from csms.store.sqlite_driver import OneHopConnection
from tests.conftest import all_rows, running_bridge
from tests.e2e.test_location_status import CPO, LOC201, Evse, Loc, site_toml
from tests.e2e.test_sessions import TARIFF

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
PARTNER = 7
COMMAND = 42
EVSE_1 = EvseRef(ocpp_evse_id=1, connector_id=1)
LOC16 = Loc("LOC-16", tuple(Evse(f"CP16-{n}", "CP16", n) for n in (1, 2, 3)))


def site_text() -> str:
    text = site_toml(["CP16", "CS201"], [LOC16, LOC201])
    text = text.replace("max_amperage = 16 }", 'max_amperage = 16, tariff_ids = ["T1"] }')
    return text + TARIFF


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def meter(
    charger_id: str,
    ref: str,
    seconds: int,
    wh: int,
    *,
    start_wh: int | None,
    signed: bool = False,
    evse: int = 1,
) -> MeterValuesSampled:
    signature = SignedMeterValue(data=f"signed-{wh}", signing_method="ECDSA")
    readings = (
        MeterReading(
            sampled_at=at(seconds),
            measurand=ENERGY_IMPORT_REGISTER,
            value=Decimal(wh),
            unit="Wh",
            signed=signature if signed else None,
        ),
        MeterReading(
            sampled_at=at(seconds),
            measurand=POWER_IMPORT,
            value=Decimal("7000.5") + seconds,
            unit="W",
        ),
    )
    return MeterValuesSampled(
        charger_id=charger_id,
        occurred_at=at(seconds),
        evse=EvseRef(ocpp_evse_id=evse, connector_id=1),
        transaction_ref=ref,
        readings=readings,
        energy_wh=wh - start_wh if start_wh is not None else None,
    )


def token_first(
    ref: str, seconds: int, evse: EvseRef, decision: str, meter_start_wh: int
) -> TransactionStarted:
    """A transaction of CP16 started with the token of ``decision-<decision>``, accepted."""
    return TransactionStarted(
        charger_id="CP16",
        occurred_at=at(seconds),
        transaction_ref=ref,
        evse=evse,
        id_token=IdToken(value=f"TOKEN-{decision.upper()}"),
        authorization=AuthorizationStatus.ACCEPTED,
        authorization_ref=f"decision-{decision}",
        meter_start_wh=meter_start_wh,
    )


def events() -> list[DomainEvent]:
    """Session A (CP16): token first, ACTIVE from the start, a meter value every 10 s (a PATCH
    every 30 s), suspended and resumed by connector statuses, ended, a late meter value.
    Session B (CS201): cable first (PENDING, internal, metered), then authorized, metered.
    Session C (CP16): cable first, then the token of a START_SESSION: merged into the
    command's session, metered on. Session D (CP16): authorized, but on no EVSE until its
    first meter value (which places and activates it: a PUT of the timeline)."""
    a: list[tuple[int, DomainEvent]] = [
        (
            0,
            token_first("A1", 0, EVSE_1, "a", meter_start_wh=10_000),
        ),
    ]
    a += [
        (s, meter("CP16", "A1", s, 10_000 + 40 * s, start_wh=10_000, signed=s == 120))
        for s in range(10, 200, 10)
    ]
    a += [
        (
            65,
            ConnectorStatusChanged(
                charger_id="CP16",
                occurred_at=at(65),
                evse=EVSE_1,
                status=ConnectorStatus.SUSPENDED_EV,
                previous_status=ConnectorStatus.CHARGING,
            ),
        ),
        (
            95,
            ConnectorStatusChanged(
                charger_id="CP16",
                occurred_at=at(95),
                evse=EVSE_1,
                status=ConnectorStatus.CHARGING,
                previous_status=ConnectorStatus.SUSPENDED_EV,
            ),
        ),
        (
            205,
            TransactionEnded(
                charger_id="CP16",
                occurred_at=at(205),
                transaction_ref="A1",
                evse=EVSE_1,
                meter_stop_wh=10_000 + 40 * 205,
                energy_wh=40 * 205,
                reason="Local",
            ),
        ),
        (215, meter("CP16", "A1", 215, 30_000, start_wh=10_000)),  # after the end: ignored
    ]
    b: list[tuple[int, DomainEvent]] = [
        (
            3,
            TransactionStarted(
                charger_id="CS201",
                occurred_at=at(3),
                transaction_ref="B1",
                evse=EVSE_1,
                id_token=None,
                authorization=None,
                meter_start_wh=None,
            ),
        ),
    ]
    b += [(s, meter("CS201", "B1", s, 50_000 + 25 * s, start_wh=None)) for s in range(7, 240, 15)]
    b += [
        (
            33,
            ChargingStateChanged(
                charger_id="CS201",
                occurred_at=at(33),
                transaction_ref="B1",
                evse=EVSE_1,
                state=ChargingState.SUSPENDED_EV,
            ),
        ),
        (
            44,  # a change seen by B's authorization (no meter value of a PENDING session between)
            ConnectorStatusChanged(
                charger_id="CS201",
                occurred_at=at(44),
                evse=EVSE_1,
                status=ConnectorStatus.SUSPENDED_EVSE,
                previous_status=ConnectorStatus.SUSPENDED_EV,
            ),
        ),
        (
            48,
            TransactionAuthorized(
                charger_id="CS201",
                occurred_at=at(48),
                transaction_ref="B1",
                evse=EVSE_1,
                id_token=IdToken(value="TOKEN-B"),
                authorization=AuthorizationStatus.ACCEPTED,
                authorization_ref="decision-b",
            ),
        ),
        (
            81,
            ChargingStateChanged(
                charger_id="CS201",
                occurred_at=at(81),
                transaction_ref="B1",
                evse=EVSE_1,
                state=ChargingState.CHARGING,
            ),
        ),
    ]
    c: list[tuple[int, DomainEvent]] = [
        (
            4,
            TransactionStarted(
                charger_id="CP16",
                occurred_at=at(4),
                transaction_ref="C1",
                evse=EvseRef(ocpp_evse_id=2, connector_id=1),
                id_token=None,
                authorization=None,
                meter_start_wh=1_000,
            ),
        ),
        (
            52,
            TransactionAuthorized(
                charger_id="CP16",
                occurred_at=at(52),
                transaction_ref="C1",
                evse=EvseRef(ocpp_evse_id=2, connector_id=1),
                id_token=IdToken(value="TOKEN-C"),
                authorization=AuthorizationStatus.ACCEPTED,
                authorization_ref="decision-c",
            ),
        ),
    ]
    c += [
        (s, meter("CP16", "C1", s, 1_000 + 30 * s, start_wh=1_000, evse=2))
        for s in range(9, 200, 11)
    ]
    d: list[tuple[int, DomainEvent]] = [
        (
            6,
            token_first("D1", 6, EvseRef(ocpp_evse_id=0, connector_id=0), "d", 5_000),
        ),
    ]
    d += [
        (s, meter("CP16", "D1", s, 5_000 + 20 * s, start_wh=5_000, evse=3))
        for s in range(12, 150, 20)
    ]
    timeline = sorted(a + b + c + d, key=lambda item: item[0])
    return [event for _, event in timeline]


def decision(
    reference: str, charger_id: str, token: str, command_id: int | None = None
) -> AuthorizationRow:
    return AuthorizationRow(
        id=reference,
        charger_id=charger_id,
        id_token=token,
        id_token_kind="ISO14443",
        status="Accepted",
        source="token",
        partner_id=PARTNER,
        cdr_token=CdrToken(
            country_code="DE",
            party_id="EMS",
            uid=token,
            type=TokenType.RFID,
            contract_id=f"DE-EMS-{token}",
        ).model_dump_json(),
        auth_method="WHITELIST",
        command_id=command_id,
        decided_at=T0,
    )


class _RolledBack(Exception):
    pass


async def project_in_batches(
    app: BridgeApp,
    identity: CpoIdentity,
    batches: Sequence[Sequence[DomainEvent]],
    *,
    rolled_back: frozenset[int] = frozenset(),
    after: Callable[[BridgeApp, int], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Project ``batches`` (one transaction each, rolled back after projecting for the
    indexes in ``rolled_back``) with a clock that stands still; what is stored then."""
    await app.push_worker.stop()  # the partner is made up: nothing is sent
    service = SessionService(
        identity=lambda: identity,
        tariffs=tariffs_by_ids,
        policy=SessionPolicy(currency="EUR", patch_interval_s=30),
        clock=lambda: NOW,
    )
    async with app.db.transaction() as uow:
        uow.session.add(decision("decision-a", "CP16", "TOKEN-A"))
        uow.session.add(decision("decision-b", "CS201", "TOKEN-B"))
        uow.session.add(decision("decision-c", "CP16", "TOKEN-C", command_id=COMMAND))
        uow.session.add(decision("decision-d", "CP16", "TOKEN-D"))
        # C: the cable first, then the token of an eMSP's START_SESSION, whose PENDING session
        # takes the transaction over (the transaction's own row is deleted).
        await service.open_for_command(
            uow.session,
            CommandSession(
                command_id=COMMAND,
                partner_id=PARTNER,
                status=SessionStatus.PENDING,
                cdr_token=CdrToken(
                    country_code="DE",
                    party_id="EMS",
                    uid="TOKEN-C",
                    type=TokenType.RFID,
                    contract_id="DE-EMS-TOKEN-C",
                ).model_dump_json(),
                authorization_reference="start-c",
                charger_id="CP16",
                ocpp_evse_id=2,
                ocpp_connector_id=1,
            ),
        )
    for index, batch in enumerate(batches):
        try:
            async with app.db.transaction() as uow:
                await service.project(uow.session, batch, uow)
                if index in rolled_back:
                    raise _RolledBack
        except _RolledBack:
            pass
        if after is not None:
            await after(app, index)
    sessions = await all_rows(app, SessionRow, order_by=col(SessionRow.id))
    cdrs = await all_rows(app, CdrRow, order_by=col(CdrRow.id))
    outbox = await all_rows(app, OutboxRow, order_by=col(OutboxRow.id))
    # Each session's points in timeline order: by time, then as appended (row id).
    points = sorted(
        await all_rows(app, SessionPointRow, order_by=col(SessionPointRow.id)),
        key=lambda point: (point.session_id, point.at),
    )
    stored = {
        "sessions": [row.model_dump(mode="json") for row in sessions],
        "points": [row.model_dump(mode="json", exclude={"id"}) for row in points],
        "cdrs": [row.model_dump(mode="json") for row in cdrs],
        "outbox": [row.model_dump(mode="json", exclude={"id"}) for row in outbox],
    }
    # The tariff's last_updated is when this app applied the site file: the same for all.
    tariff_updated = json.loads(sessions[0].tariffs or "")[0]["last_updated"]
    text = json.dumps(stored).replace(tariff_updated, "(the site's time)")
    same: dict[str, Any] = json.loads(text)
    return same


async def test_a_batch_of_events_stores_what_one_event_per_batch_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = events()
    runs: dict[str, list[list[DomainEvent]]] = {
        "one batch": [log],
        "batches of 4": [log[i : i + 4] for i in range(0, len(log), 4)],
        # Other cuts put other steps (PATCHes, a connector's status, the end, the late meter
        # value) in one batch with the meter values before them.
        "batches of 3": [log[i : i + 3] for i in range(0, len(log), 3)],
        "batches of 7": [log[i : i + 7] for i in range(0, len(log), 7)],
        # No session's row loaded with the batch's views: each loaded when a step needs it.
        "batches of 4, rows one by one": [log[i : i + 4] for i in range(0, len(log), 4)],
        "one event each": [[event] for event in log],
    }
    stored: dict[str, dict[str, Any]] = {}
    identity: CpoIdentity | None = None
    async with AsyncExitStack() as stack:
        for name, batches in runs.items():
            world = tmp_path / name.replace(" ", "-").replace(",", "")
            world.mkdir()
            site = world / "site.toml"
            site.write_text(site_text(), encoding="utf-8")
            app = await stack.enter_async_context(running_bridge(world, site_file=str(site), **CPO))
            identity = identity or app.identity()
            with monkeypatch.context() as patch:
                if name.endswith("one by one"):
                    patch.setattr(SessionService, "_row_wanted", lambda *_: False)
                stored[name] = await project_in_batches(app, identity, batches)

    reference = stored["one event each"]
    sessions = {row["transaction_ref"]: row for row in reference["sessions"]}
    assert sessions["A1"]["status"] == "COMPLETED"
    assert sessions["B1"]["status"] == "ACTIVE"
    assert sessions["C1"]["status"] == "ACTIVE"
    assert sessions["C1"]["command_id"] == COMMAND  # merged into the command's session
    assert sessions["D1"]["status"] == "ACTIVE"  # placed by its first meter value
    assert len(reference["sessions"]) == 4
    first_put = next(
        json.loads(row["body"])
        for row in reference["outbox"]
        if row["method"] == "PUT" and row["path"].endswith(sessions["D1"]["id"])
    )
    assert first_put["kwh"] == 0.24  # D's PUT has the meter value that placed it
    assert sessions["A1"]["periods_sent"] > 1
    methods = [(row["module"], row["method"]) for row in reference["outbox"]]
    assert methods.count(("sessions", "PATCH")) >= 6
    assert ("cdrs", "POST") in methods
    assert len(reference["cdrs"]) == 1
    assert "signed-14800" in sessions["A1"]["usage"]
    for name in runs:
        assert stored[name] == reference, name


async def test_timelines_kept_between_batches_follow_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running session's timeline is decoded once and kept from batch to batch; a batch
    whose transaction is rolled back after projecting (its timelines already changed in
    memory) leaves nothing of itself: projected again, its events count once."""
    log = events()
    batches = [log[i : i + 3] for i in range(0, len(log), 3)]
    decoded: list[str] = []
    decode = mapping.Usage.from_json

    def counting(text: str, points: Iterable[mapping.Point] = ()) -> mapping.Usage:
        decoded.append(text)
        return decode(text, points)

    stored: dict[str, dict[str, Any]] = {}
    async with AsyncExitStack() as stack:
        for name in ("committed", "one rolled back"):
            world = tmp_path / name.replace(" ", "-")
            world.mkdir()
            site = world / "site.toml"
            site.write_text(site_text(), encoding="utf-8")
            app = await stack.enter_async_context(running_bridge(world, site_file=str(site), **CPO))
            if name == "committed":
                monkeypatch.setattr(mapping.Usage, "from_json", staticmethod(counting))
                stored[name] = await project_in_batches(app, app.identity(), batches)
                monkeypatch.setattr(mapping.Usage, "from_json", staticmethod(decode))
            else:
                # Batch 5 is projected, rolled back, then projected again.
                again = [*batches[:6], batches[5], *batches[6:]]
                stored[name] = await project_in_batches(
                    app, app.identity(), again, rolled_back=frozenset({5})
                )
    meter_values = sum(isinstance(event, MeterValuesSampled) for event in log)
    # Far fewer decodes than meter values: the steps that read a row themselves (start,
    # authorization, merge, end, PENDING sessions) decode; a running session's meter values
    # in later batches use the kept timeline.
    assert len(decoded) < meter_values / 2, (len(decoded), meter_values)
    assert stored["one rolled back"] == stored["committed"]


async def test_sessions_of_a_batch_are_loaded_by_id_even_when_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch loads the sessions of its meter values in one query on their ids (one IN list,
    not the pairs of two): the id derived from the transaction or, for a transaction that
    took over the session a command made first (C1), the id learned when it was last looked
    up by transaction. A batch of meter values of known sessions looks up none."""
    import bridge.sessions as service_module

    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    batches: list[list[tuple[str, str]]] = []
    statements: list[str] = []
    load = service_module._Batch.load

    async def counting(session: Any, charger_id: str, transaction_ref: str) -> SessionRow | None:
        batches[-1].append((charger_id, transaction_ref))
        return await session_of_transaction(session, charger_id, transaction_ref)

    async def loading(batch: Any, events: Sequence[DomainEvent], *args: Any) -> None:
        batches.append([])
        await load(batch, events, *args)

    monkeypatch.setattr(service_module, "session_of_transaction", counting)
    monkeypatch.setattr(service_module._Batch, "load", loading)
    log = events()
    later = [e for e in log if isinstance(e, MeterValuesSampled) and e.occurred_at > at(150)]
    earlier = [e for e in log if e not in later]
    async with running_bridge(tmp_path, site_file=str(site), **CPO) as app:

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "FROM ocpi_sessions" in statement and "ocpi_sessions.id IN" in statement:
                statements.append(statement)

        read = OneHopConnection.read

        async def reading(connection: OneHopConnection, sql: str, parameters: Any) -> list[Any]:
            seen(None, None, sql)  # prepared reads, without SQLAlchemy's events
            return await read(connection, sql, parameters)

        event.listen(app.db.engine.sync_engine, "before_cursor_execute", seen)
        monkeypatch.setattr(OneHopConnection, "read", reading)
        await project_in_batches(app, app.identity(), [earlier, later[:3], later[3:]])
    assert {e.transaction_ref for e in later[3:]} >= {"A1", "B1", "C1"}
    assert ("CP16", "C1") in batches[0]  # taken over in the first batch
    assert batches[-1] == []  # every session found by id, C1's included
    views = [statement for statement in statements if "ocpi_sessions.document" not in statement]
    assert len(views) == 3  # one load of the sessions' views per batch
    assert all("transaction_ref IN" not in statement for statement in statements)


async def test_sessions_after_another_step_are_read_again_in_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step other than a meter value or charging state (here a new transaction's start)
    drops the batch's views of its sessions; the sessions of the meter values after it are
    then read again all at once, not one lookup by transaction each."""
    import bridge.sessions as service_module

    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    lookups: list[tuple[str, str]] = []

    async def counting(session: Any, charger_id: str, transaction_ref: str) -> SessionRow | None:
        lookups.append((charger_id, transaction_ref))
        return await session_of_transaction(session, charger_id, transaction_ref)

    log = events()
    later = [e for e in log if isinstance(e, MeterValuesSampled) and e.occurred_at > at(150)]
    earlier = [e for e in log if e not in later]
    start = token_first("E1", 160, EvseRef(ocpp_evse_id=3, connector_id=1), "a", 0)
    last = [*later[:3], start, *later[3:]]
    assert {e.transaction_ref for e in later[3:]} >= {"A1", "B1", "C1"}

    async def forget_the_first(_app: BridgeApp, index: int) -> None:
        if index == 0:
            lookups.clear()

    monkeypatch.setattr(service_module, "session_of_transaction", counting)
    async with running_bridge(tmp_path, site_file=str(site), **CPO) as app:
        stored = await project_in_batches(
            app, app.identity(), [earlier, last], after=forget_the_first
        )
    assert lookups == [("CP16", "E1")]  # the new transaction's own, none for A1, B1, C1
    sessions = {row["transaction_ref"]: row for row in stored["sessions"]}
    assert sessions["E1"]["status"] == "ACTIVE"
    assert sessions["B1"]["status"] == sessions["C1"]["status"] == "ACTIVE"


async def _as_stored_before_point_rows(app: BridgeApp) -> None:
    """Store every session as sessions were before their meter points had rows: the points
    in the ``usage`` text (``meter``), no rows."""
    async with app.db.transaction() as uow:
        for row in (await uow.session.exec(select(SessionRow))).all():
            data = json.loads(row.usage)
            points = (await points_of(uow.session, [row.id])).get(row.id, [])
            data.pop("points", None)
            data["meter"] = [
                [at.isoformat(), wh, *(None if v is None else str(v) for v in (power, current))]
                for at, wh, power, current in points
            ]
            row.usage = json.dumps(data)
            uow.session.add(row)
            await delete_points(uow.session, row.id)


async def test_points_are_appended_and_timelines_stored_with_their_points_move_to_rows(
    tmp_path: Path,
) -> None:
    """A meter value appends its point: the session's text only counts them, so storing a
    meter value does not grow with the session. Sessions stored with their points in their
    text (before points had rows) go on from there: their next change moves the points into
    rows, and everything stored in the end (timelines, PATCHes, the CDR) is the same."""
    log = events()
    batches = [log[i : i + 4] for i in range(0, len(log), 4)]
    texts: dict[int, int] = {}

    async def measure(app: BridgeApp, index: int) -> None:
        rows = await all_rows(app, SessionRow)
        texts[index] = max(len(row.usage) for row in rows)

    async def convert(app: BridgeApp, index: int) -> None:
        if index == 3:
            await _as_stored_before_point_rows(app)

    stored: dict[str, dict[str, Any]] = {}
    async with AsyncExitStack() as stack:
        for name, after in (("appended", measure), ("converted", convert)):
            world = tmp_path / name
            world.mkdir()
            site = world / "site.toml"
            site.write_text(site_text(), encoding="utf-8")
            app = await stack.enter_async_context(running_bridge(world, site_file=str(site), **CPO))
            stored[name] = await project_in_batches(app, app.identity(), batches, after=after)
    appended = stored["appended"]
    meter_values = sum(isinstance(event, MeterValuesSampled) for event in log)
    assert len(appended["points"]) >= meter_values
    assert all('"meter"' not in row["usage"] for row in appended["sessions"])
    # The longest text is that of the first batches' states and signed values, not points.
    assert max(texts.values()) < 400, texts
    assert stored["converted"] == appended


async def test_a_batch_of_meter_values_makes_four_round_trips_in_the_writers_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projector's batch of meter values of running sessions: the offsets checked, the
    sessions loaded, then their points, timelines and the new offsets written together, and
    the commit. Every round trip in the writer's turn keeps the chargers' writes waiting
    behind it: the points and the timelines were two of their own, the offsets a third."""
    site = tmp_path / "site.toml"
    site.write_text(site_text(), encoding="utf-8")
    hops: list[str] = []
    execute = OneHopConnection._execute

    async def counted(connection: OneHopConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", "?"))
        return await execute(connection, fn, *args, **kwargs)

    start = events()[0]
    assert isinstance(start, TransactionStarted)
    bridge = running_bridge(tmp_path, site_file=str(site), session_patch_interval=3600, **CPO)
    async with bridge as app:
        await app.projector.stop()  # batches run here, one at a time
        await app.push_worker.stop()  # no partner is registered: nothing to send

        async def project(*logged: DomainEvent) -> int:
            async with app.db.transaction() as uow:
                for logged_event in logged:
                    uow.record(logged_event)
            hops.clear()
            return await app.projector.catch_up()

        await project(start)
        await project(meter("CP16", "A1", 10, 10_400, start_wh=10_000))
        monkeypatch.setattr(OneHopConnection, "_execute", counted)
        assert await project(meter("CP16", "A1", 20, 10_800, start_wh=10_000)) == 1
        monkeypatch.undo()
        rows = await all_rows(app, SessionPointRow, order_by=col(SessionPointRow.at))
        (session,) = await all_rows(app, SessionRow)
    # The log read (outside the turn), the offsets, the sessions, the writes, the commit.
    assert hops == ["_run", "_run", "_run", "_write", "_commit_or_roll_back"]
    assert [row.energy_wh for row in rows] == [400, 800]
    assert json.loads(session.usage)["points"] == 2
