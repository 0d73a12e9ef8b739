"""Scenario 1, connections: N chargers boot and heartbeat against one bridge on SQLite.

Figures: chargers held to the end, bridge RSS per connected charger (RSS held minus RSS before
the first connection, over the chargers held), handshake rate (WebSocket upgrades completed per
second, connect rate capped by ``--connect-rate``), boot rate and heartbeat reply latency."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench import drive, world
from bench.loadgen import Charger, Fleet, close_all, connect_all, raise_fd_limit, run_each
from bench.scenarios.base import Summary, bounded, choose
from bench.site import SiteSpec
from bench.stats import LoadStats

NAME = "connections"
HELP = "N chargers boot and heartbeat: chargers held, RSS per charger, handshake rate"
TARGET_CHARGERS = 10_000
TARGET_KIB = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", help="comma-separated counts (default 1000,5000,10000)")
    parser.add_argument("--hold", type=float, help="seconds held after the boots (default 30)")
    parser.add_argument("--heartbeat", type=float, help="heartbeat interval s (default 60)")
    parser.add_argument("--connect-rate", type=float, default=1000.0, help="connects/s cap")
    parser.add_argument("--v201-share", type=float, default=0.5, help="fraction on 2.0.1")


def _counts(args: argparse.Namespace) -> list[int]:
    text = choose(args.chargers, args.smoke, "20", "1000,5000,10000")
    return [int(part) for part in str(text).split(",") if part.strip()]


def _ids(count: int) -> list[str]:
    return [f"BENCH-CP-{i:05d}" for i in range(count)]


def _settings(args: argparse.Namespace) -> dict[str, str]:
    heartbeat = choose(args.heartbeat, args.smoke, 1.0, 60.0)
    return {"OCPI_BRIDGE_HEARTBEAT_INTERVAL": str(max(1, int(heartbeat)))}


def prepare(options: world.Options, args: argparse.Namespace) -> Path:
    spec = SiteSpec(chargers=_ids(max(_counts(args))))
    return world.prepare_database(options.workdir, spec, _settings(args))


async def _measure(
    options: world.Options, args: argparse.Namespace, template: Path, index: int, count: int
) -> dict[str, Any]:
    raise_fd_limit(count + 1000)
    hold = choose(args.hold, args.smoke, 2.0, 30.0)
    heartbeat = choose(args.heartbeat, args.smoke, 1.0, 60.0)
    stats = LoadStats()
    fleet = Fleet(ids=_ids(count), v201_share=args.v201_share)
    chargers = [Charger(cid, fleet.version(i), stats) for i, cid in enumerate(fleet.ids)]
    directory = world.run_dir(options.workdir, template, f"run-{count}-{index}")
    with world.bridge(options, directory, _settings(args)) as bridge:
        await asyncio.sleep(1.0)
        before = bridge.sample()
        deadline = time.monotonic() + 600
        connected, connect_s = await connect_all(
            chargers, bridge.ocpp_url, rate=args.connect_rate, deadline=deadline
        )
        started = time.perf_counter()
        booted = await bounded(connected, drive.boot)
        boot_s = time.perf_counter() - started
        after_boot = bridge.sample()
        hold_end = time.monotonic() + hold
        rng = random.Random(index)

        async def beat(_: int, charger: Charger) -> None:
            # A random phase within the interval: N / interval heartbeats per second, only
            # those falling inside the hold are sent.
            next_at = time.monotonic() + rng.uniform(0, heartbeat)
            while next_at < hold_end:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await charger.call("Heartbeat", {})
                next_at += heartbeat

        async with world.sampling(bridge, 1.0) as samples:
            await run_each(connected, beat)
        held_sample = bridge.sample()
        held = sum(1 for c in connected if c.connected)
        await close_all(connected)
    rss_held = statistics.median([rss for _, rss, _ in samples[-5:]] or [held_sample.rss_kib])
    return {
        "chargers": count,
        "connected": len(connected),
        "booted": booted,
        "held": held,
        "handshake_rate_per_s": round(len(connected) / connect_s, 1) if connect_s else 0.0,
        "boot_rate_per_s": round(booted / boot_s, 1) if boot_s else 0.0,
        "rss_before_mib": round(before.rss_kib / 1024, 1),
        "rss_held_mib": round(rss_held / 1024, 1),
        "rss_per_charger_kib": round((rss_held - before.rss_kib) / held, 2) if held else 0.0,
        "bridge_cpu_s_connect_boot": round(after_boot.cpu_s - before.cpu_s, 2),
        "bridge_cpu_s_hold": round(held_sample.cpu_s - after_boot.cpu_s, 2),
        "hold_s": hold,
        "heartbeat_s": heartbeat,
        "load": stats.to_json(),
    }


async def run_once(
    options: world.Options, args: argparse.Namespace, template: Path, index: int
) -> dict[str, Any]:
    """One run of every charger count (smallest first)."""
    return {
        str(count): await _measure(options, args, template, index, count) for count in _counts(args)
    }


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary:
    medians: dict[str, float] = {}
    parts = []
    met: bool | None = None
    for count in _counts(args):
        rows = [run[str(count)] for run in runs]
        for key in ("held", "rss_per_charger_kib", "handshake_rate_per_s", "boot_rate_per_s"):
            medians[f"{count}.{key}"] = round(statistics.median(r[key] for r in rows), 2)
        parts.append(
            f"{count}: held {medians[f'{count}.held']:.0f}, "
            f"{medians[f'{count}.rss_per_charger_kib']:.1f} KiB/charger, "
            f"{medians[f'{count}.handshake_rate_per_s']:.0f} handshakes/s, "
            f"{medians[f'{count}.boot_rate_per_s']:.0f} boots/s"
        )
        if count >= TARGET_CHARGERS:
            met = (
                medians[f"{count}.held"] >= count
                and medians[f"{count}.rss_per_charger_kib"] <= TARGET_KIB
            )
    return Summary(
        medians=medians,
        headline="; ".join(parts),
        target=f"{TARGET_CHARGERS} held at <= {TARGET_KIB:.0f} KiB each",
        met=met,
    )
