"""What every scenario module provides to the harness (``bench.__main__``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.loadgen import CallFailed, Charger
from bench.world import Options


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The medians of a scenario's runs and whether its target was met."""

    medians: dict[str, float]
    headline: str
    target: str
    met: bool | None
    recorded: bool = True
    """Whether the figures may replace the recorded ones (False for a partial run)."""


class ScenarioModule(Protocol):
    """A scenario: its arguments, a one-time preparation, one run, and the summary of runs."""

    NAME: str
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def prepare(self, options: Options, args: argparse.Namespace) -> Path: ...

    async def run_once(
        self, options: Options, args: argparse.Namespace, template: Path, index: int
    ) -> dict[str, Any]: ...

    def summarize(self, runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary: ...


def choose(value: Any, smoke: bool, smoke_value: Any, full_value: Any) -> Any:
    """An explicit option wins; else the smoke or the full default."""
    if value is not None:
        return value
    return smoke_value if smoke else full_value


async def bounded(
    chargers: Sequence[Charger],
    work: Callable[[Charger], Awaitable[None]],
    concurrency: int = 200,
) -> int:
    """Run ``work`` on every charger, ``concurrency`` at once; answer how many succeeded."""
    gate = asyncio.Semaphore(concurrency)

    async def one(charger: Charger) -> bool:
        async with gate:
            try:
                await work(charger)
            except CallFailed:
                return False
            return True

    return sum(await asyncio.gather(*(one(c) for c in chargers)))
