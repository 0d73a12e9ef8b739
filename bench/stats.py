"""Latency samples, percentiles and counters of one load run."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (0 when empty)."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


def summarize(samples_s: Iterable[float]) -> dict[str, float]:
    """count, p50, p90, p99 and max in milliseconds of latency samples in seconds."""
    ordered = sorted(samples_s)
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p90_ms": round(percentile(ordered, 0.90) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2),
    }


@dataclass
class LoadStats:
    """What the load generator saw: reply latency per action, errors and disconnects."""

    latency: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    disconnects: int = 0
    connect_failures: int = 0
    server_calls: Counter[str] = field(default_factory=Counter)
    recording: bool = True

    def record(self, action: str, seconds: float) -> None:
        """One answered call (only while recording: warm-up and drain are left out)."""
        if self.recording:
            self.latency[action].append(seconds)

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    def answered(self, actions: Iterable[str] | None = None) -> int:
        """Answered calls recorded (of ``actions`` if given)."""
        keys = self.latency.keys() if actions is None else actions
        return sum(len(self.latency.get(key, ())) for key in keys)

    def to_json(self) -> dict[str, Any]:
        every = [s for samples in self.latency.values() for s in samples]
        return {
            "latency": {"all": summarize(every)}
            | {action: summarize(samples) for action, samples in sorted(self.latency.items())},
            "errors": dict(self.errors),
            "disconnects": self.disconnects,
            "connect_failures": self.connect_failures,
            "server_calls": dict(self.server_calls),
        }


def median_of(runs: list[Mapping[str, Any]], key: str) -> float:
    """Median of a numeric figure over runs (runs without it are skipped)."""
    values = [float(run[key]) for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 3) if values else 0.0
