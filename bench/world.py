"""Set up what a scenario runs against: a work directory, a prepared SQLite database, the
bridge, the eMSP simulator registered with the credentials handshake, and OCPI calls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs, pyspy
from bench.site import SiteSpec, site_toml

ADMIN_TOKEN = "bench-admin-token-0123456789"
EMSP_COUNTRY, EMSP_PARTY = "DE", "EMS"


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options every scenario shares."""

    runs: int
    smoke: bool
    pin: bool
    profile: Path | None
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)  # extra OCPI_BRIDGE_* of each run
    py_spy: Path | None = None  # directory of py-spy recordings of each measured bridge


def bridge_core(options: Options) -> int | None:
    """The core the bridge is pinned to (0), or None when not pinning."""
    return 0 if options.pin else None


def client_core(options: Options) -> int | None:
    """The core of the load generator and the eMSP simulator (1)."""
    return 1 if options.pin else None


def prepare_database(workdir: Path, spec: SiteSpec, settings: Mapping[str, str]) -> Path:
    """Start the bridge once with the site file (applying it) and stop it: answer the directory
    holding the database, to copy for each run (a 10k-Location site takes long to apply)."""
    template = workdir / "template"
    template.mkdir(parents=True, exist_ok=True)
    site = template / "site.toml"
    site.write_text(site_toml(spec), encoding="utf-8")
    with procs.run_bridge(template, site, settings, core=None):
        pass
    return template


def run_dir(workdir: Path, template: Path, name: str) -> Path:
    """A fresh directory holding a copy of the template database."""
    target = workdir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in template.glob("bench.db*"):
        shutil.copy2(path, target / path.name)
    return target


@contextlib.contextmanager
def bridge(
    options: Options, directory: Path, settings: Mapping[str, str]
) -> Iterator[procs.Bridge]:
    """The bridge on the prepared database, pinned and optionally profiled."""
    profile = None
    if options.profile is not None:
        profile = options.profile.with_name(f"{options.profile.stem}-{directory.name}.prof")
    with procs.run_bridge(
        directory,
        None,
        {"OCPI_BRIDGE_ADMIN_TOKEN": ADMIN_TOKEN, **settings, **options.settings},
        core=bridge_core(options),
        profile=profile,
    ) as running:
        spy = None
        if options.py_spy is not None:
            spy = pyspy.start(running.pid, options.py_spy / f"{directory.name}.txt")
        try:
            yield running
        finally:
            if spy is not None:
                procs.stop(running.process)
                spy.wait(30)


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def ocpi_headers(token: str) -> dict[str, str]:
    """Headers of an eMSP calling the bridge's OCPI API with token C."""
    encoded = base64.b64encode(token.encode()).decode()
    return {
        "Authorization": f"Token {encoded}",
        "OCPI-from-country-code": EMSP_COUNTRY,
        "OCPI-from-party-id": EMSP_PARTY,
        "OCPI-to-country-code": "NL",
        "OCPI-to-party-id": "CPO",
    }


async def register_emsp(running: procs.Bridge, emsp: procs.Emsp) -> str:
    """Credentials handshake (the eMSP registers with us); answer the token the eMSP presents."""
    async with httpx.AsyncClient(timeout=60) as client:
        added = await client.post(
            f"{running.http_url}/admin/partners",
            json={"country_code": EMSP_COUNTRY, "party_id": EMSP_PARTY, "role": "EMSP"},
            headers=admin_headers(),
        )
        added.raise_for_status()
        data = added.json()["data"]
        registered = await client.post(
            f"{emsp.url}/_sim/register",
            json={"versions_url": data["versions_url"], "token": data["token_a"]},
        )
        registered.raise_for_status()
        return await _token_c(client, emsp, registered.text)


async def bridge_registers(running: procs.Bridge, emsp: procs.Emsp) -> str:
    """Credentials handshake the other way (we register with the eMSP, ``POST
    /admin/partners/register`` with a token A the simulator minted); answer the token the eMSP
    presents. The credentials POST the eMSP sends when it registers waits for the bridge to
    queue every Location, which exceeds the simulator's 5 s timeout with 10,000 Locations."""
    async with httpx.AsyncClient(timeout=600) as client:
        minted = (await client.post(f"{emsp.url}/_sim/token-a")).json()
        answer = await client.post(
            f"{running.http_url}/admin/partners/register",
            json={
                "versions_url": minted["versions_url"],
                "token": minted["token"],
                "country_code": EMSP_COUNTRY,
                "party_id": EMSP_PARTY,
                "role": "EMSP",
            },
            headers=admin_headers(),
        )
        answer.raise_for_status()
        return await _token_c(client, emsp, answer.text)


async def _token_c(client: httpx.AsyncClient, emsp: procs.Emsp, answer: str) -> str:
    state = (await client.get(f"{emsp.url}/_sim/state")).json()
    if not state.get("peer"):
        raise RuntimeError(f"the eMSP simulator is not registered: {answer[:500]}")
    token: str = state["peer"]["token_we_present"]
    return token


async def publish_tokens(emsp: procs.Emsp, uids: list[str]) -> None:
    """The eMSP creates ALLOWED RFID tokens and pushes each to the bridge (8 at once)."""
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(uid: str) -> None:
            async with gate:
                answer = await client.post(
                    f"{emsp.url}/_sim/tokens", json={"uid": uid, "whitelist": "ALLOWED"}
                )
                answer.raise_for_status()

        await asyncio.gather(*(one(uid) for uid in uids))


async def outbox_pending(client: httpx.AsyncClient, running: procs.Bridge) -> int:
    """Pushes waiting in the bridge's outbox (every partner)."""
    answer = await client.get(f"{running.http_url}/admin/outbox/summary", headers=admin_headers())
    answer.raise_for_status()
    return sum(int(p["pending"]) for p in answer.json()["data"]["partners"])


async def drain_outbox(running: procs.Bridge, limit_s: float, *, quiet_s: float = 0.0) -> bool:
    """Wait until the outbox is empty (True) or ``limit_s`` seconds passed (False); with
    ``quiet_s``, until it has stayed empty that long (work still queued behind the pushes,
    such as the projection of what booting chargers reported, has come through)."""
    deadline = time.monotonic() + limit_s
    empty_since: float | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            if await outbox_pending(client, running) == 0:
                now = time.monotonic()
                empty_since = now if empty_since is None else empty_since
                if now - empty_since >= quiet_s:
                    return True
            else:
                empty_since = None
            await asyncio.sleep(0.5)
    return False


async def objects_held(emsp: procs.Emsp, module: str, expected: int, limit_s: float) -> bool:
    """Wait until the eMSP simulator holds ``expected`` objects of ``module`` (True), or
    ``limit_s`` seconds passed (False): the outbox alone may look empty before the bridge has
    queued them all."""
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=30) as client:
        while time.monotonic() < deadline:
            state = (await client.get(f"{emsp.url}/_sim/state")).json()
            if int(state.get("counts", {}).get(module, 0)) >= expected:
                return True
            await asyncio.sleep(0.5)
    return False


async def locations_received(emsp: procs.Emsp, expected: int, limit_s: float) -> None:
    """Wait until the eMSP simulator holds ``expected`` Locations."""
    if not await objects_held(emsp, "locations", expected, limit_s):
        raise RuntimeError(f"the eMSP simulator did not receive {expected} Locations in {limit_s}s")


async def received(emsp: procs.Emsp, module: str) -> list[dict[str, Any]]:
    """Requests the eMSP simulator received on one module."""
    async with httpx.AsyncClient(timeout=120) as client:
        answer = await client.get(f"{emsp.url}/_sim/received", params={"module": module})
        answer.raise_for_status()
        body = answer.json()
    rows = body if isinstance(body, list) else body.get("received", body.get("data", []))
    return list(rows)


@contextlib.asynccontextmanager
async def sampling(
    running: procs.Bridge, period: float, probe: bool = False
) -> AsyncIterator[list[tuple[float, int, int]]]:
    """Sample (time, RSS KiB, outbox pending or -1) of the bridge every ``period`` seconds."""
    samples: list[tuple[float, int, int]] = []

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                pending = -1
                if probe:
                    with contextlib.suppress(httpx.HTTPError):
                        pending = await outbox_pending(client, running)
                samples.append((time.monotonic(), running.sample().rss_kib, pending))
                await asyncio.sleep(period)

    task = asyncio.create_task(loop())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
