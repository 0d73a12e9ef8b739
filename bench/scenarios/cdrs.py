"""Scenario 5, sessions to CDRs: chargers run short sessions back to back (start, two meter
values, stop) under a tariff with every dimension (FLAT, ENERGY, TIME, PARKING_TIME), with a
token the eMSP simulator pushed; figures: sessions completed per second end to end (CDRs the
eMSP received over the time from the first start to the last CDR) and stop-to-CDR latency
(the k-th stop of an EVSE paired with the k-th CDR of that EVSE)."""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import drive, procs, world
from bench.loadgen import Charger, Fleet, close_all, connect_all, raise_fd_limit, run_each
from bench.scenarios.base import Summary, bounded, choose
from bench.site import SiteSpec, evse_uid
from bench.stats import LoadStats
from bench.stats import summarize as latency_summary

NAME = "cdrs"
HELP = "sessions completed per second end to end (stop -> CDR at the eMSP), full tariff"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chargers", type=int, help="chargers running sessions (default 200)")
    parser.add_argument("--duration", type=float, help="seconds of sessions (default 30)")
    parser.add_argument("--v201-share", type=float, default=0.5, help="fraction on 2.0.1")


def _count(args: argparse.Namespace) -> int:
    return int(choose(args.chargers, args.smoke, 4, 200))


def token_uid(index: int) -> str:
    """The eMSP's RFID token used by charger ``index``."""
    return f"BENCH-TOK-{index:05d}"


def _ids(count: int) -> list[str]:
    return [f"BENCH-CP-{i:05d}" for i in range(count)]


def prepare(options: world.Options, args: argparse.Namespace) -> Path:
    count = _count(args)
    spec = SiteSpec(chargers=_ids(count), locations=count, tariff=True)
    return world.prepare_database(options.workdir, spec, {})


async def run_sessions(
    chargers: list[Charger], uids: dict[str, str], tokens: dict[str, str], end: float
) -> list[tuple[str, float]]:
    """Sessions back to back on every charger until ``end``; answer (EVSE uid, wall time of the
    stop sent) of each completed session."""
    stops: list[tuple[str, float]] = []

    async def loop(_: int, charger: Charger) -> None:
        serial = 0
        while time.monotonic() < end:
            serial += 1
            tx = await drive.start(charger, tokens[charger.charger_id], serial, serial * 10_000)
            await drive.meter(charger, tx, 2000)
            await drive.meter(charger, tx, 2000)
            sent = time.time()
            await drive.stop(charger, tx)
            stops.append((uids[charger.charger_id], sent))

    await run_each(chargers, loop)
    return stops


def _parse_at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pair_cdrs(
    stops: list[tuple[str, float]], posts: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """Stop-to-CDR delays (k-th stop of an EVSE with its k-th CDR) and every CDR's time."""
    cdrs: dict[str, list[float]] = defaultdict(list)
    times: list[float] = []
    for request in posts:
        body = request.get("body")
        if request.get("method") != "POST" or not isinstance(body, dict):
            continue
        at = _parse_at(str(request["at"]))
        cdrs[str(body.get("cdr_location", {}).get("evse_uid", ""))].append(at)
        times.append(at)
    sent: dict[str, list[float]] = defaultdict(list)
    for uid, at in stops:
        sent[uid].append(at)
    delays = []
    for uid, stop_times in sent.items():
        for stop_at, cdr_at in zip(sorted(stop_times), sorted(cdrs.get(uid, [])), strict=False):
            delays.append(max(0.0, cdr_at - stop_at))
    return delays, times


async def run_once(
    options: world.Options, args: argparse.Namespace, template: Path, index: int
) -> dict[str, Any]:
    count = _count(args)
    duration = float(choose(args.duration, args.smoke, 3.0, 30.0))
    raise_fd_limit(count + 1000)
    fleet = Fleet(ids=_ids(count), v201_share=args.v201_share)
    stats = LoadStats()
    chargers = [Charger(cid, fleet.version(i), stats) for i, cid in enumerate(fleet.ids)]
    uids = {cid: evse_uid(i) for i, cid in enumerate(fleet.ids)}
    tokens = {cid: token_uid(i) for i, cid in enumerate(fleet.ids)}
    directory = world.run_dir(options.workdir, template, f"run-{index}")
    settings = {"OCPI_BRIDGE_SESSION_PATCH_INTERVAL": "30"}
    with (
        procs.run_emsp(directory, core=world.client_core(options)) as emsp,
        world.bridge(options, directory, settings) as bridge,
    ):
        await world.register_emsp(bridge, emsp)
        # The Locations are queued after the registration's answer: wait for all of them.
        await world.locations_received(emsp, len(chargers), 120)
        await world.publish_tokens(emsp, list(tokens.values()))
        connected, _ = await connect_all(
            chargers, bridge.ocpp_url, rate=500.0, deadline=time.monotonic() + 300
        )
        await bounded(connected, drive.boot)
        await world.drain_outbox(bridge, 120)
        before = bridge.sample()
        first_start = time.time()
        stops = await run_sessions(connected, uids, tokens, time.monotonic() + duration)
        # A CDR is queued once its session's end is projected: the outbox may be empty before.
        await world.objects_held(emsp, "cdrs", len(stops), 120)
        drained = await world.drain_outbox(bridge, 120)
        after = bridge.sample()
        posts = await world.received(emsp, "cdrs")
        await close_all(connected)
    delays, cdr_times = pair_cdrs(stops, posts)
    span = (max(cdr_times) - first_start) if cdr_times else 0.0
    return {
        "chargers": count,
        "connected": len(connected),
        "duration_s": duration,
        "sessions_stopped": len(stops),
        "cdrs_received": len(cdr_times),
        "drained_after": drained,
        "sessions_per_s": round(len(cdr_times) / span, 2) if span else 0.0,
        "stop_to_cdr": latency_summary(delays),
        "bridge_cpu_s": round(after.cpu_s - before.cpu_s, 2),
        "load": stats.to_json(),
    }


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, float]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    return {
        "sessions_per_s": med([r["sessions_per_s"] for r in runs]),
        "sessions_stopped": med([r["sessions_stopped"] for r in runs]),
        "cdrs_received": med([r["cdrs_received"] for r in runs]),
        "stop_to_cdr_p50_ms": med([r["stop_to_cdr"]["p50_ms"] for r in runs]),
        "stop_to_cdr_p99_ms": med([r["stop_to_cdr"]["p99_ms"] for r in runs]),
    }


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary:
    medians = summarize_runs(runs)
    headline = (
        f"{runs[0]['chargers']} chargers: {medians['sessions_per_s']:.1f} sessions/s to CDR "
        f"({medians['cdrs_received']:.0f} CDRs for {medians['sessions_stopped']:.0f} stops); "
        f"stop-to-CDR p50 {medians['stop_to_cdr_p50_ms']:.0f} / "
        f"p99 {medians['stop_to_cdr_p99_ms']:.0f} ms"
    )
    return Summary(medians=medians, headline=headline, target="(no target set)", met=None)
