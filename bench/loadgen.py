"""The load generator: thousands of simulated chargers in one asyncio process.

Each charger is one raw ``websockets`` client connection speaking OCPP-J with frames built from
templates (``bench.frames``); replies are matched to calls by their unique id and timed with
``time.perf_counter``. Calls the central system sends (GetConfiguration, GetBaseReport...) are
answered. Only 127.0.0.1 is ever targeted; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import resource
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import frames
from bench.stats import LoadStats

CALL_TIMEOUT_S = 30.0


class LoadError(RuntimeError):
    """The load generator was asked for something it does not do."""


def require_loopback(url: str) -> None:
    """Refuse any target but 127.0.0.1: this generator is for benchmarks on this machine."""
    host = urlsplit(url).hostname
    if host != "127.0.0.1":
        raise LoadError(f"the load generator only targets 127.0.0.1, not {host!r}")


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit toward ``wanted`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class CallFailed(Exception):
    """A call got a CALLERROR, timed out or lost its connection."""


class Charger:
    """One simulated charger (one WebSocket connection)."""

    def __init__(self, charger_id: str, version: str, stats: LoadStats) -> None:
        self.charger_id = charger_id
        self.version = version
        self.stats = stats
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[str, tuple[float, str, asyncio.Future[str]]] = {}
        self.closing = False
        self.connected = False

    async def connect(self, base_url: str, open_timeout: float = 60.0) -> None:
        """Open the WebSocket (profile 0: no password) and start reading."""
        require_loopback(base_url)
        self._ws = await connect(
            f"{base_url}/{self.charger_id}",
            subprotocols=[frames.SUBPROTOCOL[self.version]],  # type: ignore[list-item]
            compression=None,
            open_timeout=open_timeout,
            ping_interval=None,
            max_queue=None,
        )
        self.connected = True
        self._reader = asyncio.create_task(self._read(), name=f"read-{self.charger_id}")

    def message_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    async def call(self, action: str, payload: dict[str, Any]) -> str:
        """Send a JSON-encoded CALL; answer the reply's raw text."""
        message_id = self.message_id()
        return await self.send(message_id, action, frames.call(message_id, action, payload))

    async def send(self, message_id: str, action: str, frame: str) -> str:
        """Send a ready frame whose id is ``message_id``; wait for its CALLRESULT."""
        ws = self._ws
        if ws is None or not self.connected:
            raise CallFailed("not connected")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = (time.perf_counter(), action, future)
        try:
            await ws.send(frame)
            return await asyncio.wait_for(future, CALL_TIMEOUT_S)
        except TimeoutError:
            self.stats.error(f"{action}:timeout")
            raise CallFailed("timeout") from None
        except ConnectionClosed:
            raise CallFailed("connection closed") from None
        finally:
            self._pending.pop(message_id, None)

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self._dispatch(text)
        except ConnectionClosed:
            pass
        finally:
            self.connected = False
            if not self.closing:
                self.stats.disconnects += 1
            for _, _, future in self._pending.values():
                if not future.done():
                    future.set_exception(CallFailed("connection closed"))

    def _dispatch(self, text: str) -> None:
        head, _, rest = text.partition('"')
        kind = head.strip("[ ,")
        if kind == "2":
            self._answer(text)
            return
        message_id = rest[: rest.find('"')]
        pending = self._pending.get(message_id)
        if pending is None:
            self.stats.error("unmatched-reply")
            return
        started, action, future = pending
        if future.done():
            return
        if kind == "3":
            self.stats.record(action, time.perf_counter() - started)
            future.set_result(text)
        else:
            self.stats.error(f"{action}:CallError")
            future.set_exception(CallFailed(text[:300]))

    def _answer(self, text: str) -> None:
        try:
            _, message_id, action, _payload = json.loads(text)
        except ValueError:
            self.stats.error("bad-server-call")
            return
        self.stats.server_calls[action] += 1
        reply = frames.answer_server_call(action)
        if reply is None:
            frame = json.dumps([4, message_id, "NotImplemented", "", {}])
        else:
            frame = json.dumps([3, message_id, reply], separators=(",", ":"))
        if self._ws is not None:
            task = asyncio.create_task(self._ws.send(frame))
            task.add_done_callback(_ignore_result)

    async def close(self) -> None:
        self.closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, kw_only=True)
class Fleet:
    """Who the simulated chargers are."""

    ids: Sequence[str]
    v201_share: float = 0.5  # fraction speaking OCPP 2.0.1, spread evenly

    def version(self, index: int) -> str:
        """OCPP version of charger ``index`` (the mix spread evenly over the indexes)."""
        share = self.v201_share
        return frames.V201 if int((index + 1) * share) > int(index * share) else frames.V16


async def connect_all(
    chargers: Sequence[Charger],
    base_url: str,
    *,
    rate: float,
    concurrency: int = 256,
    deadline: float,
) -> tuple[list[Charger], float]:
    """Open every connection at most ``rate`` per second and ``concurrency`` at once; answer the
    connected ones and the seconds from the first attempt to the last completed handshake."""
    gate = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    done_at = start

    async def one(index: int, charger: Charger) -> bool:
        nonlocal done_at
        await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        async with gate:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await charger.connect(base_url, open_timeout=min(60.0, remaining))
            except Exception as exc:
                charger.stats.connect_failures += 1
                charger.stats.error(f"connect:{type(exc).__name__}")
                return False
            done_at = time.perf_counter()
            return True

    results = await asyncio.gather(*(one(i, c) for i, c in enumerate(chargers)))
    connected = [c for c, ok in zip(chargers, results, strict=True) if ok]
    return connected, done_at - start


async def run_each(
    chargers: Sequence[Charger], work: Callable[[int, Charger], Awaitable[None]]
) -> None:
    """Run ``work`` for every charger concurrently; a failed call ends that charger's work."""

    async def guarded(index: int, charger: Charger) -> None:
        with contextlib.suppress(CallFailed):
            await work(index, charger)

    await asyncio.gather(*(guarded(i, c) for i, c in enumerate(chargers)))


async def close_all(chargers: Sequence[Charger]) -> None:
    """Close every connection (in batches, so closing is not a burst of 10k handshakes)."""
    for batch in range(0, len(chargers), 500):
        await asyncio.gather(*(c.close() for c in chargers[batch : batch + 500]))


def settle_heap() -> None:
    """Before a measured phase: collect, then exempt every object alive (the fleet, its
    connections) from later collections. A collection of the oldest generation pauses the
    load generator, and every reply in flight is then timed that much longer: with 1,000
    chargers, about 115 ms every 15 to 25 seconds, a pause the bridge did not make. The
    objects are still freed by reference counting; the process is short-lived."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No garbage collection in the load generator while the block runs (a measured phase):
    even with its heap settled, a collection of the youngest generations visits the objects
    of every call in flight (up to 20 ms with 1,000 chargers, and a full one, when its turn
    comes, 80), and every reply in flight is timed that much longer. What the phase leaves in
    reference cycles is collected once it ends. The collector's state before is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def sleep_until(moment: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``moment``."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))
