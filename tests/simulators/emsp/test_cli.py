"""The CLI against a running simulator (in this loop; the CLI runs in a thread) and the
``serve`` command in a subprocess."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
from typer.testing import CliRunner

from simulators.emsp.__main__ import cli
from simulators.emsp.server import EmspSimulator
from tests.simulators.emsp.fake_cpo import FakeCpo


async def run_cli(sim: EmspSimulator, *args: str) -> tuple[int, Any]:
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli, [*args, "--sim-url", sim.base_url], catch_exceptions=False
    )
    try:
        output = json.loads(result.stdout)
    except ValueError:
        output = result.output
    return result.exit_code, output


async def test_cli_registers_adds_a_token_and_pulls_when_a_cpo_is_there(
    emsp: EmspSimulator,
) -> None:
    cpo = FakeCpo(locations=3)
    await cpo.start()
    try:
        code, out = await run_cli(
            emsp, "register", "--versions-url", cpo.versions_url, "--token", cpo.token_a
        )
        assert (code, out["ok"]) == (0, True)

        code, out = await run_cli(emsp, "add-token", "TAG1", "--whitelist", "NEVER", "--invalid")
        assert code == 0
        assert out["token"]["valid"] is False
        assert cpo.tokens["NL/EMS/TAG1/RFID"]["whitelist"] == "NEVER"

        code, out = await run_cli(emsp, "pull", "locations")
        assert code == 0
        assert out["count"] == 3

        body = json.dumps({"token": "TAG1", "location_id": "L00"})
        code, out = await run_cli(emsp, "command", "START_SESSION", "--json", body)
        assert code == 0
        assert out["response"]["data"]["result"] == "ACCEPTED"

        code, out = await run_cli(emsp, "rotate")
        assert (code, out["ok"]) == (0, True)
        code, out = await run_cli(emsp, "unregister")
        assert (code, out["ok"]) == (0, True)
    finally:
        await cpo.stop()


async def test_cli_mints_token_a_and_shows_state_faults_and_received(
    emsp: EmspSimulator,
) -> None:
    code, out = await run_cli(emsp, "token-a")
    assert code == 0
    assert out["token"] in emsp.state.token_a

    code, out = await run_cli(
        emsp, "faults", "--module", "sessions", "--http", "500", "--count", "1"
    )
    assert code == 0
    assert out["faults"][0]["count"] == 1
    assert emsp.state.faults.rules[0].module == "sessions"

    code, out = await run_cli(emsp, "state")
    assert code == 0
    assert out["registered"] is False
    assert len(out["faults"]) == 1

    code, out = await run_cli(emsp, "faults", "--clear")
    assert (code, out) == (0, {"faults": []})

    async with httpx.AsyncClient() as http:
        await http.get(emsp.versions_url)
    code, out = await run_cli(emsp, "received", "--module", "versions")
    assert code == 0
    assert out[-1]["http_status"] == 401


async def test_cli_exits_1_when_the_action_fails(emsp: EmspSimulator) -> None:
    code, out = await run_cli(emsp, "rotate")
    assert code == 1
    assert out["message"] == "not registered"


async def test_serve_prints_its_urls_and_stops_on_sigterm_when_run_as_a_process() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.emsp",
        "serve",
        "--port",
        "0",
        "--party",
        "XYZ",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        urls = json.loads(line)
        async with httpx.AsyncClient() as http:
            state = (await http.get(urls["control_url"] + "/state")).json()
        assert state["identity"]["party_id"] == "XYZ"
        assert state["versions_url"] == urls["versions_url"]
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
