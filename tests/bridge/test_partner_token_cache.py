"""The token -> partner cache of every OCPI request and the partner cache of the outbox worker:
answered without a query while no partner changed, never stale when this bridge rotates,
updates or invalidates tokens, and stale for at most ``RECHECK_S`` when another process (the
CLI on the same database) made the change. Real bridge, real SQLite file, real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from bridge.main import BridgeApp
from bridge.partners import ExpectedRole, Partner
from bridge.registration import PartnerService
from bridge.store.partners import RECHECK_S, GenerationCache, PartnerChanged, PartnerStore
from csms.clock import utc_now
from csms.store.database import Database
from simulators.emsp.server import EmspSimulator
from tests.conftest import running_bridge, settings_for

CPO = {"country_code": "NL", "party_id": "CPO"}


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0, country_code="DE", party_id="EMS") as sim:
        yield sim


@pytest.fixture
async def cpo(tmp_path: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(tmp_path, **CPO) as app:
        yield app


def header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


async def versions_status(app: BridgeApp, token: str) -> int:
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"http://127.0.0.1:{app.http_port}/ocpi/versions",
            headers={"Authorization": header(token)},
        )
    return answer.status_code


async def status_within(app: BridgeApp, token: str, expected: int, seconds: float) -> float:
    """Seconds until requests with ``token`` are answered ``expected`` (fails after
    ``seconds``)."""
    started = time.monotonic()
    while (status := await versions_status(app, token)) != expected:
        waited = time.monotonic() - started
        assert waited < seconds, f"still {status} after {waited:.2f} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def registered(app: BridgeApp, sim: EmspSimulator) -> tuple[Partner, str]:
    """The simulator registers; the partner and the token it presents to us (C)."""
    pending = await app.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="EMS")
    )
    assert pending.token_accept is not None
    result = await sim.driver.register(
        f"http://127.0.0.1:{app.http_port}/ocpi/versions", pending.token_accept
    )
    assert result.ok, result.message
    await app.partners.join_follow_ups()
    assert sim.state.peer is not None
    return await app.partners.get(pending.id), sim.state.peer.token_we_present


class PartnerQueries:
    """Counts the statements that read ``ocpi_partners`` (the lookups the caches save)."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        self._engine = db.engine.sync_engine

    def __enter__(self) -> PartnerQueries:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM ocpi_partners" in statement:
            self.count += 1


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[PartnerStore]:
    """A second store on the same database file, as the CLI uses it from another process."""
    db = Database(settings_for(tmp_path).database_url)
    store = PartnerStore(db)
    yield store
    store.close()


async def test_a_known_token_is_answered_from_the_cache_while_no_partner_changes(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    partner, token = await registered(cpo, emsp)
    assert await cpo.partners.authenticate(header(token)) is not None
    with PartnerQueries(cpo.db) as queries:
        for _ in range(3):
            caller = await cpo.partners.authenticate(header(token))
            assert caller is not None
            assert caller.partner.id == partner.id
            assert caller.token == token
            assert await cpo.partners.store.get(partner.id) == partner
    assert queries.count == 0


async def test_the_list_of_partners_is_answered_from_the_cache_while_no_partner_changes(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, _ = await registered(cpo, emsp)
    assert [p.id for p in await cpo.partners.store.list_all()] == [partner.id]
    with PartnerQueries(cpo.db) as queries:
        for _ in range(3):
            assert await cpo.partners.store.list_all() == [partner]
    assert queries.count == 0

    # A partner added by this process is listed at once, one added by another process
    # within the recheck time.
    mine = await cpo.partners.add(
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="MIN")
    )
    assert [p.id for p in await cpo.partners.store.list_all()] == [partner.id, mine.id]
    theirs = await other_process.add_pending(
        token_a="a-token-from-the-other-process-0123",
        expected=ExpectedRole(role="EMSP", country_code="DE", party_id="THR"),
        encode_token=True,
        now=utc_now(),
    )
    started = time.monotonic()
    while len(await cpo.partners.store.list_all()) < 3:
        assert time.monotonic() - started < RECHECK_S + 0.5
        await asyncio.sleep(0.02)
    listed = await cpo.partners.store.list_all()
    assert [p.id for p in listed] == [partner.id, mine.id, theirs.id]
    listed.clear()  # the caller's copy: the cache keeps its own
    assert len(await cpo.partners.store.list_all()) == 3


async def test_after_a_credentials_put_the_old_token_is_refused_and_the_new_one_accepted(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    _, old = await registered(cpo, emsp)
    assert await versions_status(cpo, old) == 200  # now cached

    result = await emsp.driver.rotate()  # PUT credentials: we issue a new token
    assert result.ok, result.message
    assert emsp.state.peer is not None
    new = emsp.state.peer.token_we_present
    assert new != old

    assert await versions_status(cpo, old) == 401
    assert await versions_status(cpo, new) == 200


async def test_after_a_credentials_delete_the_token_is_refused(
    cpo: BridgeApp, emsp: EmspSimulator
) -> None:
    _, token = await registered(cpo, emsp)
    assert await versions_status(cpo, token) == 200
    result = await emsp.driver.unregister()
    assert result.ok, result.message
    assert await versions_status(cpo, token) == 401


async def test_a_token_unregistered_by_another_process_is_refused_within_the_recheck_time(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    assert await versions_status(cpo, token) == 200
    assert (await cpo.partners.store.get(partner.id)) == partner

    await other_process.unregister(partner.id, authenticated_with=None, now=utc_now())

    await status_within(cpo, token, 401, RECHECK_S + 0.5)
    gone = await cpo.partners.store.get(partner.id)
    assert gone is not None
    assert gone.token_accept is None


async def test_a_rotation_started_by_another_process_is_seen_within_the_recheck_time(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    assert await versions_status(cpo, token) == 200
    assert await versions_status(cpo, "the-next-token-0123456789") == 401

    assert await other_process.begin_rotation(partner.id, "the-next-token-0123456789")

    await status_within(cpo, "the-next-token-0123456789", 200, RECHECK_S + 0.5)
    assert await versions_status(cpo, token) == 200  # both, until the partner confirms
    await other_process.abort_rotation(partner.id, "the-next-token-0123456789")
    await status_within(cpo, "the-next-token-0123456789", 401, RECHECK_S + 0.5)


async def test_without_a_readable_generation_every_request_reads_the_database(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    async with cpo.db.transaction() as uow:
        connection = await uow.session.connection()
        await connection.execute(text("DROP TABLE ocpi_partner_generation"))
    cpo.partners.store.recheck()  # not a partner write: it would be read within RECHECK_S
    assert cpo.partners.store.generation() is None
    with PartnerQueries(cpo.db) as queries:
        assert await versions_status(cpo, token) == 200
        assert await versions_status(cpo, token) == 200
    assert queries.count == 2
    # The next start creates the table again, counting from 0; the caches follow it.
    await cpo.db.create_schema()
    assert cpo.partners.store.generation() == 0
    await other_process.unregister(partner.id, authenticated_with=None, now=utc_now())
    await status_within(cpo, token, 401, RECHECK_S + 0.5)


async def test_an_in_memory_database_is_never_cached(tmp_path: Path) -> None:
    db = Database("sqlite+aiosqlite://")
    await db.create_schema()
    try:
        store = PartnerStore(db)
        service = PartnerService(store, client=None, identity=lambda: None)  # type: ignore[arg-type]
        pending = await service.add(expected=None)
        assert pending.token_accept is not None
        assert store.generation() is None
        with PartnerQueries(db) as queries:
            for _ in range(2):
                caller = await service.authenticate(header(pending.token_accept))
                assert caller is not None
                assert caller.partner.id == pending.id
        assert queries.count == 2
    finally:
        await db.dispose()


def test_a_value_read_while_the_generation_moved_is_not_kept() -> None:
    generation = [1]
    cache: GenerationCache[str, str] = GenerationCache(lambda: generation[0], max_size=2)

    assert cache.lookup("a") == (None, 1)
    generation[0] = 2  # a partner changed while "a" was read from the database
    cache.keep("a", "stale", 1)
    assert cache.lookup("a") == (None, 2)

    cache.keep("a", "fresh", 2)
    assert cache.lookup("a") == ("fresh", 2)
    generation[0] = 3
    assert cache.lookup("a") == (None, 3)  # any change forgets everything


def test_a_full_cache_starts_over() -> None:
    cache: GenerationCache[str, str] = GenerationCache(lambda: 7, max_size=2)
    for key in ("a", "b", "c"):
        _, at = cache.lookup(key)
        cache.keep(key, key.upper(), at)
    assert cache.lookup("c") == ("C", 7)
    assert cache.lookup("a") == (None, 7)


def test_nothing_is_kept_without_a_generation() -> None:
    cache: GenerationCache[str, str] = GenerationCache(lambda: None)
    assert cache.lookup("a") == (None, None)
    cache.keep("a", "A", None)
    assert cache.lookup("a") == (None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[PartnerStore, PartnerStore, Clock]]:
    """This process's store (on a clock the test moves) and another process's, one file."""
    url = settings_for(tmp_path).database_url
    ours_db, theirs_db = Database(url), Database(url)
    await ours_db.create_schema()
    clock = Clock()
    ours = PartnerStore(ours_db, recheck_s=0.5, monotonic=clock)
    theirs = PartnerStore(theirs_db)
    try:
        yield ours, theirs, clock
    finally:
        for store in (ours, theirs):
            store.close()
            await store.db.dispose()


async def test_a_write_of_this_process_is_seen_at_the_next_call(
    two_stores: tuple[PartnerStore, PartnerStore, Clock],
) -> None:
    ours, _, _ = two_stores
    assert ours.generation() == 0
    partner = await ours.add_pending(
        token_a="a" * 32, expected=None, encode_token=True, now=utc_now()
    )
    assert ours.generation() == 1  # the clock did not move
    assert await ours.begin_rotation(partner.id, "b" * 32) is False  # pending: refused, bumped
    assert ours.generation() == 2
    await ours.delete(partner.id)
    assert ours.generation() == 3


async def test_a_write_of_another_process_is_seen_once_the_recheck_time_passed(
    two_stores: tuple[PartnerStore, PartnerStore, Clock],
) -> None:
    ours, theirs, clock = two_stores
    assert ours.generation() == 0
    await theirs.add_pending(token_a="a" * 32, expected=None, encode_token=True, now=utc_now())
    assert ours.generation() == 0  # not read again: the value is 0 s old
    clock.now += 0.49
    assert ours.generation() == 0
    clock.now += 0.01
    assert ours.generation() == 1
    await theirs.add_pending(token_a="c" * 32, expected=None, encode_token=True, now=utc_now())
    clock.now -= 5  # a clock that went back never keeps the old value
    assert ours.generation() == 2


async def test_a_failed_write_of_this_process_reads_again(
    two_stores: tuple[PartnerStore, PartnerStore, Clock],
) -> None:
    ours, theirs, _ = two_stores
    partner = await ours.add_pending(
        token_a="a" * 32, expected=None, encode_token=True, now=utc_now()
    )
    assert ours.generation() == 1
    await theirs.unregister(partner.id, authenticated_with=None, now=utc_now())
    assert ours.generation() == 1
    with pytest.raises(PartnerChanged):
        await ours.unregister(partner.id, authenticated_with=None, now=utc_now())
    assert ours.generation() == 2  # the other process's change, read after our attempt
