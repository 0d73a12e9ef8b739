"""The token -> partner cache of every OCPI request and the partner cache of the outbox worker:
answered without a query while no partner changed, never stale when tokens rotate, are
updated or are invalidated, whichever process (this bridge or the CLI on the same database)
made the change. Real bridge, real SQLite file, real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from bridge.main import BridgeApp
from bridge.partners import ExpectedRole, Partner
from bridge.registration import PartnerService
from bridge.store.partners import GenerationCache, PartnerStore
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


async def test_a_token_unregistered_by_another_process_is_refused_at_once(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    assert await versions_status(cpo, token) == 200
    assert (await cpo.partners.store.get(partner.id)) == partner

    await other_process.unregister(partner.id, authenticated_with=None, now=utc_now())

    assert await versions_status(cpo, token) == 401
    gone = await cpo.partners.store.get(partner.id)
    assert gone is not None
    assert gone.token_accept is None


async def test_a_rotation_started_by_another_process_accepts_its_new_token_at_once(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    assert await versions_status(cpo, token) == 200
    assert await versions_status(cpo, "the-next-token-0123456789") == 401

    assert await other_process.begin_rotation(partner.id, "the-next-token-0123456789")

    assert await versions_status(cpo, "the-next-token-0123456789") == 200
    assert await versions_status(cpo, token) == 200  # both, until the partner confirms
    await other_process.abort_rotation(partner.id, "the-next-token-0123456789")
    assert await versions_status(cpo, "the-next-token-0123456789") == 401


async def test_without_a_readable_generation_every_request_reads_the_database(
    cpo: BridgeApp, emsp: EmspSimulator, other_process: PartnerStore
) -> None:
    partner, token = await registered(cpo, emsp)
    async with cpo.db.transaction() as uow:
        connection = await uow.session.connection()
        await connection.execute(text("DROP TABLE ocpi_partner_generation"))
    assert cpo.partners.store.generation() is None
    with PartnerQueries(cpo.db) as queries:
        assert await versions_status(cpo, token) == 200
        assert await versions_status(cpo, token) == 200
    assert queries.count == 2
    # The next start creates the table again, counting from 0; the caches follow it.
    await cpo.db.create_schema()
    assert cpo.partners.store.generation() == 0
    await other_process.unregister(partner.id, authenticated_with=None, now=utc_now())
    assert cpo.partners.store.generation() == 1
    assert await versions_status(cpo, token) == 401


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
