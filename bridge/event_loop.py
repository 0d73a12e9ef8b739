"""Which event loop ``ocpi-bridge serve`` runs on and which HTTP parser uvicorn uses.

uvloop (libuv) handles more OCPP messages per CPU-second than asyncio's own loop; it is optional
(no Windows build), so ``auto`` falls back to asyncio when it cannot be imported. The same goes
for uvicorn's httptools parser and its pure-Python h11 one."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopName = Literal["auto", "asyncio", "uvloop"]
HttpParser = Literal["httptools", "h11"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")


class EventLoopUnavailable(RuntimeError):
    """The event loop asked for cannot be used in this Python environment."""


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def loop_factory(name: str) -> LoopFactory | None:
    """The factory of the event loop named ``name``; ``None`` means asyncio's default loop.

    ``auto`` is uvloop when it can be imported, else asyncio; an explicit ``uvloop`` that cannot
    be imported raises ``EventLoopUnavailable``."""
    if name == "asyncio":
        return None
    if name not in ("auto", "uvloop"):
        raise ValueError(f"unknown event loop {name!r} (auto, asyncio or uvloop)")
    try:
        import uvloop
    except ImportError as exc:
        if name == "auto":
            return None
        raise EventLoopUnavailable(
            f"event loop uvloop is not available ({exc}); install uvloop or set "
            "OCPI_BRIDGE_EVENT_LOOP=asyncio"
        ) from exc
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """Run ``main`` to completion on a new loop made by ``factory`` (see ``loop_factory``)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: the kind of ``loop``, for the logs."""
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"


def http_parser() -> HttpParser:
    """uvicorn's HTTP implementation: the httptools parser when importable, else h11."""
    return "httptools" if _importable("httptools") else "h11"
