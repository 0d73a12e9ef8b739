"""Shared fixtures: a real bridge on 127.0.0.1 with free ports and a fresh SQLite file, raw
OCPP clients over real sockets, and a guard that fails tests which log unexpected errors."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bridge.main import BridgeApp
from bridge.settings import Settings
from csms.store.database import Database

PASSWORD = "test-password-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_errors(*patterns): ERROR log records matching a pattern are expected"
    )


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _fail_on_unexpected_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    collector = _ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    marker = request.node.get_closest_marker("expect_errors")
    patterns = [re.compile(p) for p in (marker.args if marker else ())]
    unexpected = [
        r
        for r in collector.records
        if not any(p.search(r.getMessage()) or p.search(r.name) for p in patterns)
    ]
    if unexpected:
        lines = "\n".join(f"{r.name}: {r.getMessage()}" for r in unexpected)
        pytest.fail(f"unexpected ERROR log records:\n{lines}")


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bridge.db'}",
        "host": "127.0.0.1",
        "ocpp_port": 0,
        "http_port": 0,
        "heartbeat_interval": 60,
        "ocpp_call_timeout": 2.0,
        "site_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_bridge(tmp_path: Path, **overrides: Any) -> AsyncIterator[BridgeApp]:
    app = BridgeApp(settings_for(tmp_path, **overrides))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@asynccontextmanager
async def file_database(path: Path, **options: Any) -> AsyncIterator[Database]:
    """A SQLite file database with its schema (group commit, as the bridge runs it), disposed
    of afterwards."""
    database = Database(f"sqlite+aiosqlite:///{path}", **options)
    await database.create_schema()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file database of the test's own (modules needing other options define theirs)."""
    async with file_database(tmp_path / "test.db") as database:
        yield database


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(tmp_path) as app:
        yield app


def ocpp_url(app: BridgeApp, charger_id: str = "") -> str:
    base = f"ws://127.0.0.1:{app.ocpp.port}/ocpp"
    return f"{base}/{charger_id}" if charger_id else base


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def add_charger(app: BridgeApp, charger_id: str, password: str | None = PASSWORD) -> None:
    await app.chargers.register(charger_id, password=password, allow_no_auth=password is None)


@asynccontextmanager
async def raw_charger(
    app: BridgeApp,
    charger_id: str,
    *,
    password: str | None = PASSWORD,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
) -> AsyncIterator[ClientConnection]:
    headers = basic_auth(charger_id, password) if password else {}
    async with connect(
        ocpp_url(app, charger_id),
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        additional_headers=headers,
        compression=None,
        open_timeout=5,
    ) as ws:
        yield ws


async def exchange(ws: ClientConnection, frame: list[Any] | str, timeout: float = 5) -> list[Any]:
    """Send one frame and return the parsed answer."""
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    return await receive(ws, timeout)


async def receive(ws: ClientConnection, timeout: float = 5) -> list[Any]:
    import asyncio

    answer = await asyncio.wait_for(ws.recv(), timeout)
    decoded: list[Any] = json.loads(answer)
    return decoded


def call(action: str, payload: dict[str, Any], unique_id: str = "m1") -> list[Any]:
    return [2, unique_id, action, payload]


BOOT = {"chargePointVendor": "TestVendor", "chargePointModel": "TM-1"}


async def all_rows(app: BridgeApp, model: Any, *where: Any, order_by: Any = None) -> list[Any]:
    """Rows of ``model`` as persisted (read through a fresh session)."""
    from sqlmodel import select

    stmt = select(model).where(*where) if where else select(model)
    if order_by is not None:
        stmt = stmt.order_by(order_by)
    async with app.db.read() as session:
        return list((await session.exec(stmt)).all())


async def event_types(app: BridgeApp, charger_id: str) -> list[str]:
    from csms.store.tables import EventRow

    rows = await all_rows(app, EventRow, EventRow.charger_id == charger_id, order_by=EventRow.id)
    return [row.type for row in rows]
