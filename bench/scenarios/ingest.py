"""Scenario 2, ingest: chargers in sessions send MeterValues (1.6) / TransactionEvent Updated
(2.0.1), persisted and projected into OCPI sessions.

Three phases per run, the same fleet and frames each time:

* ``bridge-max``: every charger sends its next message as soon as the previous one is answered
  (one call in flight per connection, as OCPP-J allows): the bridge's throughput, its CPU
  seconds, messages per CPU-second. A message is answered once persisted; its OCPI session is
  updated later, by the projector. The throughput that counts is that of messages both
  answered and projected: the events the projector applied per second in the window (one
  per message), read from the bridge's database with the backlog at each end;
* ``bridge-rated``: the fleet offers ``--rate`` messages per second (each charger every
  chargers/rate seconds): reply p50/p99 at that load;
* ``ceiling-max``: the same as ``bridge-max`` against ``bench.ceiling`` (the bare ``ocpp``
  package on ``websockets``, nothing persisted), pinned to the same core.

``--phases`` runs some of them only (``--phases rated`` measures the rated load on a bridge
that has not been saturated first); such a run is exploratory: its figures never replace the
recorded ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import drive, procs, world
from bench.loadgen import (
    Charger,
    Fleet,
    close_all,
    collector_off,
    connect_all,
    raise_fd_limit,
    run_each,
    settle_heap,
)
from bench.scenarios.base import Summary, bounded, choose
from bench.site import SiteSpec
from bench.stats import LoadStats

NAME = "ingest"
HELP = "meter values as fast as the bridge takes them, vs the bare ocpp library ceiling"
TAG = "BENCH-TAG-1"
METER_ACTIONS = ("MeterValues", "TransactionEvent")
TARGET_RATE = 1500.0
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5
PHASES = {"max": "bridge-max", "rated": "bridge-rated", "ceiling": "ceiling-max"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, help="chargers in sessions (default 1000)")
    parser.add_argument("--duration", type=float, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 3)")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="offered msg/s (rated)")
    parser.add_argument("--v201-share", type=float, default=0.5, help="fraction on 2.0.1")
    parser.add_argument(
        "--phases",
        type=parse_phases,
        default=tuple(PHASES),
        help="comma-separated phases to run, of max, rated, ceiling (default all; fewer: "
        "an exploratory run, never recorded in summary.json)",
    )


def parse_phases(text: str) -> tuple[str, ...]:
    """``--phases``: known names, each once, in the order of ``PHASES``."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(PHASES)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"phases are a comma-separated list of {', '.join(PHASES)}; got {text!r}"
        )
    return tuple(name for name in PHASES if name in names)


def _count(args: argparse.Namespace) -> int:
    return int(choose(args.chargers, args.smoke, 10, 1000))


def _ids(count: int) -> list[str]:
    return [f"BENCH-CP-{i:05d}" for i in range(count)]


def prepare(options: world.Options, args: argparse.Namespace) -> Path:
    count = _count(args)
    spec = SiteSpec(chargers=_ids(count), tokens=[TAG], locations=count, tariff=True)
    return world.prepare_database(options.workdir, spec, {})


async def _phase(
    chargers: Sequence[Charger],
    transactions: dict[str, drive.Transaction],
    *,
    warmup: float,
    duration: float,
    interval: float,
    pid: int,
    database: Path | None,
) -> dict[str, Any]:
    """Meter values from every charger for warmup + duration seconds; figures of the measured
    window (messages answered, per second, per CPU-second of ``pid``, latency; events
    projected and the projection backlog if the bridge's ``database`` is given)."""
    stats = LoadStats(recording=False)
    for charger in chargers:
        charger.stats = stats
    settle_heap()
    begin = time.monotonic()
    measure_from = begin + warmup
    end = measure_from + duration
    marks: dict[str, Any] = {}

    async def mark() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        stats.recording = True
        marks["cpu0"] = procs.sample(pid).cpu_s
        marks["threads0"] = procs.thread_cpu(pid)
        marks["t0"] = time.monotonic()
        if database is not None:
            marks["log0"] = await asyncio.to_thread(_event_log, database)
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        stats.recording = False
        marks["cpu1"] = procs.sample(pid).cpu_s
        marks["threads1"] = procs.thread_cpu(pid)
        marks["t1"] = time.monotonic()
        if database is not None:
            marks["log1"] = await asyncio.to_thread(_event_log, database)

    async def send(index: int, charger: Charger) -> None:
        tx = transactions[charger.charger_id]
        # Spread the first sends over one interval so a rated fleet does not move in step,
        # and keep each charger on its own schedule, as a charger samples its meter on its
        # own clock: a late reply delays the next send, never the ones after it. (Moving
        # the schedule to the late reply instead put every charger that waited out the same
        # pause in step: a burst of the whole fleet once per interval, not an even rate.)
        next_at = begin + (index / max(1, len(chargers))) * interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() >= end:
                return
            await drive.meter(charger, tx)
            next_at += interval

    marker = asyncio.create_task(mark())
    with collector_off():
        await run_each(chargers, send)
        await marker
    elapsed = marks["t1"] - marks["t0"]
    answered = stats.answered(METER_ACTIONS)
    cpu = marks["cpu1"] - marks["cpu0"]
    projection: dict[str, Any] = {}
    if database is not None:
        (recorded0, projected0), (recorded1, projected1) = marks["log0"], marks["log1"]
        projection = {
            "events_recorded_per_s": round((recorded1 - recorded0) / elapsed, 1),
            "events_projected_per_s": round((projected1 - projected0) / elapsed, 1),
            "projection_backlog_start": recorded0 - projected0,
            "projection_backlog_end": recorded1 - projected1,
        }
    return {
        "messages": answered,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(answered / elapsed, 1),
        "cpu_s": round(cpu, 2),
        "main_thread_cpu_s": round(marks["threads1"][0] - marks["threads0"][0], 2),
        "other_threads_cpu_s": round(marks["threads1"][1] - marks["threads0"][1], 2),
        "messages_per_cpu_s": round(answered / cpu, 1) if cpu else 0.0,
        **projection,
        "load": stats.to_json(),
    }


def _event_log(database: Path) -> tuple[int, int]:
    """(last event recorded, last event the sessions projection applied) in the running
    bridge's database (read-only; WAL lets it read while the bridge writes)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        recorded = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        projected = db.execute(
            'SELECT coalesce(min("offset"), 0) FROM ocpi_projector_offsets'
        ).fetchone()[0]
    return int(recorded), int(projected)


async def _fleet_run(
    base_url: str,
    fleet: Fleet,
    pid: int,
    args: argparse.Namespace,
    phases: dict[str, float],
    database: Path | None = None,
) -> dict[str, Any]:
    """Connect, boot, start one transaction per charger, then run each phase (name: interval)."""
    setup = LoadStats()
    chargers = [Charger(cid, fleet.version(i), setup) for i, cid in enumerate(fleet.ids)]
    connected, _ = await connect_all(
        chargers, base_url, rate=500.0, deadline=time.monotonic() + 300
    )
    booted = await bounded(connected, drive.boot)
    transactions: dict[str, drive.Transaction] = {}

    async def begin(charger: Charger) -> None:
        transactions[charger.charger_id] = await drive.start(charger, TAG, 1, 1000)

    started = await bounded(connected, begin)
    ready = [c for c in connected if c.charger_id in transactions]
    out: dict[str, Any] = {
        "connected": len(connected),
        "booted": booted,
        "transactions": started,
        "setup": setup.to_json(),
    }
    warmup = float(choose(args.warmup, args.smoke, 0.5, 3.0))
    duration = float(choose(args.duration, args.smoke, 2.0, 20.0))
    for name, interval in phases.items():
        out[name] = await _phase(
            ready,
            transactions,
            warmup=warmup,
            duration=duration,
            interval=interval,
            pid=pid,
            database=database,
        )
    await close_all(connected)
    return out


def _projected(database: Path) -> dict[str, int]:
    """OCPI sessions the bridge projected (read from its stopped SQLite database)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        sessions = db.execute("SELECT count(*) FROM ocpi_sessions").fetchone()[0]
        active = db.execute(
            "SELECT count(*) FROM ocpi_sessions WHERE status = 'ACTIVE'"
        ).fetchone()[0]
    return {"ocpi_sessions": int(sessions), "active": int(active)}


async def run_once(
    options: world.Options, args: argparse.Namespace, template: Path, index: int
) -> dict[str, Any]:
    count = _count(args)
    raise_fd_limit(count + 1000)
    fleet = Fleet(ids=_ids(count), v201_share=args.v201_share)
    directory = world.run_dir(options.workdir, template, f"run-{index}")
    intervals = {"bridge-max": 0.0, "bridge-rated": count / args.rate}
    phases = {PHASES[name]: intervals[PHASES[name]] for name in args.phases if name != "ceiling"}
    result: dict[str, Any] = {"phases": list(args.phases)}
    if phases:
        with world.bridge(options, directory, {}) as bridge:
            result |= await _fleet_run(
                bridge.ocpp_url, fleet, bridge.pid, args, phases, directory / "bench.db"
            )
            rss = bridge.sample().rss_kib
        result["bridge_rss_mib"] = round(rss / 1024, 1)
        try:
            result["projection"] = _projected(directory / "bench.db")
        except sqlite3.Error as exc:
            result["projection"] = {"error": str(exc)}
    if "ceiling" in args.phases:
        with procs.run_ceiling(options.workdir, core=world.bridge_core(options)) as (pid, port):
            ceiling = await _fleet_run(
                f"ws://127.0.0.1:{port}/ocpp", fleet, pid, args, {"ceiling-max": 0.0}
            )
        result["ceiling-max"] = ceiling["ceiling-max"]
    if "bridge-max" in result and "ceiling-max" in result:
        bridge_rate = answered_and_projected(result["bridge-max"])
        ceiling_rate = result["ceiling-max"]["messages_per_s"]
        result["ratio_bridge_to_ceiling"] = (
            round(bridge_rate / ceiling_rate, 3) if ceiling_rate else 0
        )
    return result


def _p(phase: dict[str, Any], key: str) -> float:
    latency = phase["load"]["latency"]["all"]
    return float(latency[key])


def answered_and_projected(phase: dict[str, Any]) -> float:
    """Messages per second both answered and projected in the window (answered only, for a
    result recorded before the projection was read)."""
    answered = float(phase["messages_per_s"])
    return min(answered, float(phase.get("events_projected_per_s", answered)))


_FIGURES: dict[str, Callable[[dict[str, Any]], float]] = {
    "msg_per_s": answered_and_projected,
    "answered_per_s": lambda phase: float(phase["messages_per_s"]),
    "backlog_end": lambda phase: float(phase.get("projection_backlog_end", 0)),
    "msg_per_cpu_s": lambda phase: float(phase["messages_per_cpu_s"]),
    "p50_ms": lambda phase: _p(phase, "p50_ms"),
    "p99_ms": lambda phase: _p(phase, "p99_ms"),
}
"""The figures of a bridge phase, by what they are."""
_MAX_KEYS = {
    "msg_per_s": "bridge_max_msg_per_s",
    "answered_per_s": "bridge_max_answered_per_s",
    "backlog_end": "bridge_max_backlog_end",
    "msg_per_cpu_s": "bridge_msg_per_cpu_s",
    "p50_ms": "bridge_max_p50_ms",
    "p99_ms": "bridge_max_p99_ms",
}
"""The names the medians of ``bridge-max`` are recorded under (summary.json)."""
_RATED_KEYS = {
    "msg_per_s": "rated_msg_per_s",
    "msg_per_cpu_s": "rated_msg_per_cpu_s",
    "backlog_end": "rated_backlog_end",
    "p50_ms": "rated_p50_ms",
    "p99_ms": "rated_p99_ms",
}


def _med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def _phase_medians(phases: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, float]:
    """The median over runs of each figure in ``keys``, under the name it gives."""
    return {
        name: _med([_FIGURES[figure](phase) for phase in phases]) for figure, name in keys.items()
    }


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary:

    ran = set(args.phases)
    medians: dict[str, float] = {}
    parts = []
    if "max" in ran:
        medians |= _phase_medians([r["bridge-max"] for r in runs], _MAX_KEYS)
        parts.append(
            f"bridge {medians['bridge_max_msg_per_s']:.0f} msg/s answered and projected "
            f"({medians['bridge_max_answered_per_s']:.0f} answered, projection backlog "
            f"{medians['bridge_max_backlog_end']:.0f} events at the end; "
            f"{medians['bridge_msg_per_cpu_s']:.0f} msg/CPU-s, p50 "
            f"{medians['bridge_max_p50_ms']:.0f} / p99 {medians['bridge_max_p99_ms']:.0f} ms "
            f"saturated)"
        )
    if "rated" in ran:
        medians |= _phase_medians([r["bridge-rated"] for r in runs], _RATED_KEYS)
        medians["rated_offered_msg_per_s"] = float(args.rate)
        parts.append(
            f"at {args.rate:.0f} msg/s offered: {medians['rated_msg_per_s']:.0f} msg/s "
            f"(backlog {medians['rated_backlog_end']:.0f}, "
            f"{medians['rated_msg_per_cpu_s']:.0f} msg/CPU-s), "
            f"p50 {medians['rated_p50_ms']:.1f} / p99 {medians['rated_p99_ms']:.1f} ms"
        )
    if "ceiling" in ran:
        ceiling = [r["ceiling-max"] for r in runs]
        medians |= {
            "ceiling_msg_per_s": _med([p["messages_per_s"] for p in ceiling]),
            "ceiling_msg_per_cpu_s": _med([p["messages_per_cpu_s"] for p in ceiling]),
        }
        parts.append(f"bare ocpp ceiling {medians['ceiling_msg_per_s']:.0f} msg/s")
    if {"max", "ceiling"} <= ran:
        medians["ratio"] = _med(
            [
                answered_and_projected(r["bridge-max"]) / r["ceiling-max"]["messages_per_s"]
                if r["ceiling-max"]["messages_per_s"]
                else 0.0
                for r in runs
            ]
        )
        parts.append(f"ratio {medians['ratio']:.2f}")
    complete = ran == set(PHASES)
    met = complete and (
        medians["bridge_max_msg_per_s"] >= TARGET_RATE
        and medians["rated_msg_per_s"] >= 0.98 * TARGET_RATE
        and medians["rated_p99_ms"] < TARGET_P99_MS
        and medians["ratio"] >= TARGET_RATIO
    )
    target = (
        f">= {TARGET_RATE:.0f} persisted and projected msg/s, p99 < {TARGET_P99_MS:.0f} ms at "
        f"that rate, ratio >= {TARGET_RATIO}"
    )
    return Summary(
        medians=medians,
        headline="; ".join(parts),
        target=target,
        met=met if complete else None,
        recorded=complete,
    )
