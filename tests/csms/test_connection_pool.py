"""The database keeps enough connections open for the HTTP server's concurrent readers: a
second round of as many concurrent reads opens no new connection (with SQLAlchemy's default
pool of 5, connections beyond it were opened and closed for every request)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event, text

from csms.store.database import DEFAULT_POOL_SIZE, Database, sqlite_file


async def concurrent_reads(db: Database, count: int) -> None:
    both_in = asyncio.Barrier(count)  # every read holds its connection at the same time

    async def read() -> None:
        async with db.read() as session:
            await (await session.connection()).execute(text("SELECT 1"))
            await both_in.wait()

    await asyncio.gather(*(read() for _ in range(count)))


async def opened_by(db: Database, rounds: int, count: int) -> list[int]:
    opened: list[int] = []
    event.listen(db.engine.sync_engine, "connect", lambda *_: opened.append(1))
    per_round = []
    for _ in range(rounds):
        before = len(opened)
        await concurrent_reads(db, count)
        per_round.append(len(opened) - before)
    return per_round


async def test_concurrent_readers_up_to_the_pool_size_keep_their_connections(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    try:
        assert await opened_by(db, 3, DEFAULT_POOL_SIZE) == [DEFAULT_POOL_SIZE, 0, 0]
    finally:
        await db.dispose()


async def test_the_pool_size_is_a_parameter(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=2)
    try:
        # Beyond the pool, overflow connections are opened for each round and closed again.
        assert await opened_by(db, 2, 4) == [4, 2]
    finally:
        await db.dispose()


async def test_an_in_memory_database_keeps_its_one_connection() -> None:
    db = Database("sqlite+aiosqlite://", pool_size=3)
    try:
        await db.create_schema()
        async with db.read() as session:
            assert (await (await session.connection()).execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()


def test_only_a_file_is_a_sqlite_file() -> None:
    assert sqlite_file("sqlite+aiosqlite:////var/lib/b.db") == "/var/lib/b.db"
    assert sqlite_file("sqlite+aiosqlite:///./b.db") == "./b.db"
    for url in (
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file:b?mode=memory&uri=true",
        "postgresql+asyncpg://u@h/db",
    ):
        assert sqlite_file(url) is None, url
