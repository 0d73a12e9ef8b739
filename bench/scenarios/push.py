"""Scenario 3, push latency: chargers change status at a fixed total rate with one eMSP
simulator registered; the time from a StatusNotification sent to the eMSP receiving the
Location PATCH of that EVSE (both clocks are this machine's wall clock; the simulator records
milliseconds), and the outbox depth sampled every half second."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import time
from collections import defaultdict
from datetime import datetime
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
from bench.site import SiteSpec, evse_uid
from bench.stats import LoadStats
from bench.stats import summarize as latency_summary

NAME = "push"
HELP = "status changes at a fixed rate: StatusNotification to eMSP PATCH p50/p99, outbox depth"
TARGET_P99_MS = 250.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, help="chargers (default 1000)")
    parser.add_argument("--rate", type=float, help="status changes per second (default 50)")
    parser.add_argument("--duration", type=float, help="seconds of status changes (default 30)")
    parser.add_argument("--v201-share", type=float, default=0.5, help="fraction on 2.0.1")


def _count(args: argparse.Namespace) -> int:
    return int(choose(args.chargers, args.smoke, 10, 1000))


def _ids(count: int) -> list[str]:
    return [f"BENCH-CP-{i:05d}" for i in range(count)]


def prepare(options: world.Options, args: argparse.Namespace) -> Path:
    count = _count(args)
    return world.prepare_database(
        options.workdir, SiteSpec(chargers=_ids(count), locations=count), {}
    )


def _parse_at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def match_latencies(
    sent: list[tuple[str, float]], patches: list[dict[str, Any]]
) -> tuple[list[float], int]:
    """For each (EVSE uid, wall time sent), the delay to the first PATCH of that EVSE received
    at or after it (the simulator's millisecond clock: 1 ms of slack); answer the delays and
    how many sends got no PATCH."""
    by_evse: dict[str, list[float]] = defaultdict(list)
    for request in patches:
        if request.get("method") != "PATCH":
            continue
        uid = str(request.get("path", "")).rstrip("/").rsplit("/", 1)[-1]
        by_evse[uid].append(_parse_at(str(request["at"])))
    delays: list[float] = []
    missing = 0
    for uid, at in sent:
        times = sorted(by_evse.get(uid, []))
        index = bisect.bisect_left(times, at - 0.001)
        if index == len(times):
            missing += 1
        else:
            delays.append(max(0.0, times[index] - at))
    return delays, missing


async def run_once(
    options: world.Options, args: argparse.Namespace, template: Path, index: int
) -> dict[str, Any]:
    count = _count(args)
    rate = float(choose(args.rate, args.smoke, 5.0, 50.0))
    duration = float(choose(args.duration, args.smoke, 3.0, 30.0))
    raise_fd_limit(count + 1000)
    fleet = Fleet(ids=_ids(count), v201_share=args.v201_share)
    stats = LoadStats()
    chargers = [Charger(cid, fleet.version(i), stats) for i, cid in enumerate(fleet.ids)]
    directory = world.run_dir(options.workdir, template, f"run-{index}")
    sent: list[tuple[str, float]] = []
    with (
        procs.run_emsp(directory, core=world.client_core(options)) as emsp,
        world.bridge(options, directory, {}) as bridge,
    ):
        await world.register_emsp(bridge, emsp)
        # The Locations are queued after the registration's answer: wait for all of them.
        await world.locations_received(emsp, len(chargers), 120)
        connected, _ = await connect_all(
            chargers, bridge.ocpp_url, rate=500.0, deadline=time.monotonic() + 300
        )
        await bounded(connected, drive.boot)
        await bounded(connected, lambda c: drive.status(c, True))
        settled = await world.drain_outbox(bridge, 120, quiet_s=5.0)
        phase = LoadStats()  # the status changes only (boots and first statuses left out)
        for charger in connected:
            charger.stats = phase
        settle_heap()
        cpu_before = bridge.sample().cpu_s
        begin = time.monotonic()
        end = begin + duration
        period = len(connected) / rate  # each charger changes every `period` seconds

        async def toggle(position: int, charger: Charger) -> None:
            available = True
            uid = evse_uid(fleet.ids.index(charger.charger_id))
            next_at = begin + position / rate
            while next_at < end:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                available = not available
                sent.append((uid, time.time()))
                await drive.status(charger, available)
                next_at += period

        async with world.sampling(bridge, 0.5, probe=True) as samples:
            with collector_off():
                await run_each(connected, toggle)
                cpu_phase = bridge.sample().cpu_s - cpu_before
                drained = await world.drain_outbox(bridge, 60)
        patches = await world.received(emsp, "locations")
        await close_all(connected)
    delays, missing = match_latencies(sent, patches)
    depths = [pending for _, _, pending in samples if pending >= 0]
    return {
        "chargers": count,
        "connected": len(connected),
        "rate_per_s": rate,
        "duration_s": duration,
        "settled_before": settled,
        "bridge_cpu_share": round(cpu_phase / duration, 3),
        "drained_after": drained,
        "status_changes": len(sent),
        "patches_matched": len(delays),
        "patches_missing": missing,
        "status_to_patch": latency_summary(delays),
        "outbox_depth_max": max(depths, default=0),
        "outbox_depth_mean": round(statistics.mean(depths), 1) if depths else 0.0,
        "status_reply": phase.to_json(),
        "load": stats.to_json(),
    }


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, float]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    return {
        "status_changes": med([r["status_changes"] for r in runs]),
        "p50_ms": med([r["status_to_patch"]["p50_ms"] for r in runs]),
        "p99_ms": med([r["status_to_patch"]["p99_ms"] for r in runs]),
        "max_ms": med([r["status_to_patch"]["max_ms"] for r in runs]),
        "missing": med([r["patches_missing"] for r in runs]),
        "outbox_depth_max": med([r["outbox_depth_max"] for r in runs]),
        "outbox_depth_mean": med([r["outbox_depth_mean"] for r in runs]),
        "bridge_cpu_share": med([r["bridge_cpu_share"] for r in runs]),
        "status_reply_p50_ms": med([r["status_reply"]["latency"]["all"]["p50_ms"] for r in runs]),
        "status_reply_p99_ms": med([r["status_reply"]["latency"]["all"]["p99_ms"] for r in runs]),
    }


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary:
    medians = summarize_runs(runs)
    first = runs[0]
    headline = (
        f"{first['chargers']} chargers, {first['rate_per_s']:.0f} changes/s: "
        f"status-to-PATCH p50 {medians['p50_ms']:.0f} / p99 {medians['p99_ms']:.0f} ms "
        f"(max {medians['max_ms']:.0f}), {medians['missing']:.0f} missing; StatusNotification "
        f"reply p50 {medians['status_reply_p50_ms']:.0f} / p99 "
        f"{medians['status_reply_p99_ms']:.0f} ms; bridge CPU {medians['bridge_cpu_share']:.0%}; "
        f"outbox depth "
        f"max {medians['outbox_depth_max']:.0f}, mean {medians['outbox_depth_mean']:.1f}"
    )
    met = medians["p99_ms"] < TARGET_P99_MS and medians["missing"] == 0
    return Summary(
        medians=medians,
        headline=headline,
        target=f"p99 < {TARGET_P99_MS:.0f} ms at 1000 chargers",
        met=met,
    )
