"""Scenario 4, OCPI reads: 10,000 Locations (and the Sessions of a few hundred completed
charging sessions) read page by page by a concurrent client as the registered eMSP, with
``GET /ocpi/cpo/2.2.1/locations`` and ``GET /ocpi/cpo/2.2.1/sessions`` at random offsets.

The database is prepared once (site applied, eMSP registered, sessions run, every push
delivered); each run starts the bridge on a copy of it. Figures: pages per second and latency
per module (the page size is the bridge's, ``OCPI_BRIDGE_OCPI_PAGE_SIZE``, default 100)."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench import drive, procs, rawhttp, world
from bench.loadgen import Charger, Fleet, close_all, connect_all
from bench.scenarios.base import Summary, bounded, choose
from bench.scenarios.cdrs import run_sessions, token_uid
from bench.site import SiteSpec, evse_uid
from bench.stats import LoadStats
from bench.stats import summarize as latency_summary

NAME = "reads"
HELP = "paginated GET /locations and /sessions by a concurrent client: pages/s and p99"
TARGET_RPS = 500.0
MODULES = ("locations", "sessions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--locations", type=int, help="Locations (default 10000)")
    parser.add_argument("--session-chargers", type=int, help="chargers making sessions (100)")
    parser.add_argument("--duration", type=float, help="measured seconds per module (20)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")


def prepare(options: world.Options, args: argparse.Namespace) -> Path:
    locations = int(choose(args.locations, args.smoke, 50, 10_000))
    count = int(choose(args.session_chargers, args.smoke, 4, 100))
    ready = options.workdir / "template"
    if (ready / "token_c.txt").exists():  # --workdir of an earlier run: reuse its database
        return ready
    ids = [f"BENCH-CP-{i:05d}" for i in range(max(count, locations))]
    spec = SiteSpec(chargers=ids, locations=locations, tariff=True)
    template = world.prepare_database(options.workdir, spec, {})
    asyncio.run(
        _make_sessions(options, template, ids[:count], 2.0 if args.smoke else 10.0, locations)
    )
    return template


async def _make_sessions(
    options: world.Options, template: Path, ids: list[str], seconds: float, locations: int
) -> None:
    """The eMSP registers with us, sessions run, every push is delivered; keep the eMSP's
    token C."""
    fleet = Fleet(ids=ids)
    stats = LoadStats()
    chargers = [Charger(cid, fleet.version(i), stats) for i, cid in enumerate(ids)]
    with (
        procs.run_emsp(template) as emsp,
        procs.run_bridge(
            template, None, {"OCPI_BRIDGE_ADMIN_TOKEN": world.ADMIN_TOKEN}, core=None
        ) as bridge,
    ):
        # The credentials POST is answered before the bridge queues the Locations for the eMSP
        # (they are queued and pushed while the sessions run, see the wait below).
        token = await world.register_emsp(bridge, emsp)
        tokens = {cid: token_uid(i) for i, cid in enumerate(ids)}
        await world.publish_tokens(emsp, list(tokens.values()))
        connected, _ = await connect_all(
            chargers, bridge.ocpp_url, rate=500.0, deadline=time.monotonic() + 120
        )
        await bounded(connected, drive.boot)
        uids = {cid: evse_uid(i) for i, cid in enumerate(ids)}
        await run_sessions(connected, uids, tokens, time.monotonic() + seconds)
        await close_all(connected)
        await world.locations_received(emsp, locations, 600)
        await world.drain_outbox(bridge, 600)
    (template / "token_c.txt").write_text(token)


async def _read(
    base: str, token: str, module: str, duration: float, concurrency: int, seed: int
) -> dict[str, Any]:
    """Random pages of ``module`` for ``duration`` seconds with ``concurrency`` workers, each on
    a keep-alive connection of its own (``bench.rawhttp``: httpx would saturate the load
    generator's core first)."""
    path = f"/ocpi/2.2.1/{module}"
    since = {"date_from": "2020-01-01T00:00:00Z"} if module == "sessions" else {}
    headers = world.ocpi_headers(token)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        first = await client.get(base + path, params=since)
        first.raise_for_status()
    total = int(first.headers.get("X-Total-Count", "0"))
    page = int(first.headers.get("X-Limit", "100"))
    rng = random.Random(seed)
    connections = [rawhttp.Connection(base, headers) for _ in range(concurrency)]
    # Every page the workers may ask for, built once.
    requests = [
        connections[0].request(path, {**since, "offset": offset, "limit": page})
        for offset in range(0, max(1, total), page)
    ]
    end = time.monotonic() + duration

    async def worker(connection: rawhttp.Connection) -> None:
        nonlocal errors
        while time.monotonic() < end:
            request = rng.choice(requests)
            started = time.perf_counter()
            try:
                answer = await asyncio.wait_for(connection.get(request), 30)
            except (OSError, TimeoutError, rawhttp.HttpError):
                errors += 1
                await connection.close()
                continue
            latencies.append(time.perf_counter() - started)
            if answer.status != 200 or b'"status_code":1000' not in answer.body:
                errors += 1

    begin = time.monotonic()
    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    elapsed = time.monotonic() - begin
    return {
        "total": total,
        "page_size": page,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        "latency": latency_summary(latencies),
    }


async def run_once(
    options: world.Options, args: argparse.Namespace, template: Path, index: int
) -> dict[str, Any]:
    duration = float(choose(args.duration, args.smoke, 2.0, 20.0))
    token = (template / "token_c.txt").read_text().strip()
    directory = world.run_dir(options.workdir, template, f"run-{index}")
    out: dict[str, Any] = {"concurrency": args.concurrency}
    with world.bridge(options, directory, {}) as bridge:
        for module in MODULES:
            before = bridge.sample()
            out[module] = await _read(
                bridge.http_url, token, module, duration, args.concurrency, index
            )
            out[module]["bridge_cpu_s"] = round(bridge.sample().cpu_s - before.cpu_s, 2)
    return out


def summarize(runs: list[dict[str, Any]], args: argparse.Namespace) -> Summary:
    medians: dict[str, float] = {}
    for module in MODULES:
        medians[f"{module}.total"] = statistics.median(r[module]["total"] for r in runs)
        medians[f"{module}.rps"] = round(
            statistics.median(r[module]["requests_per_s"] for r in runs), 1
        )
        for key in ("p50_ms", "p99_ms"):
            medians[f"{module}.{key}"] = round(
                statistics.median(r[module]["latency"][key] for r in runs), 1
            )
        medians[f"{module}.errors"] = statistics.median(r[module]["errors"] for r in runs)
    headline = "; ".join(
        f"{module} ({medians[f'{module}.total']:.0f} objects): "
        f"{medians[f'{module}.rps']:.0f} pages/s, p50 {medians[f'{module}.p50_ms']:.0f} / "
        f"p99 {medians[f'{module}.p99_ms']:.0f} ms"
        for module in MODULES
    )
    met = all(medians[f"{m}.rps"] >= TARGET_RPS for m in MODULES)
    return Summary(
        medians=medians,
        headline=f"{headline} ({args.concurrency} concurrent)",
        target=f">= {TARGET_RPS:.0f} page reads/s",
        met=met,
    )
