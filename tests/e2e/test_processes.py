"""The commands a user runs, as separate processes: `ocpi-bridge serve` with the example site,
the simulator CLI against it, and the operator CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_BRIDGE_")}
    env.update(
        OCPI_BRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        OCPI_BRIDGE_OCPP_PORT="0",
        OCPI_BRIDGE_HTTP_PORT="0",
        **extra,
    )
    return env


def _cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ocpi-bridge"), *args],
        env=_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def _serving(
    tmp_path: Path, **extra: str
) -> Iterator[tuple[subprocess.Popen[str], int, int, list[str]]]:
    """``ocpi-bridge serve`` with the example site; yields the process, its OCPP and HTTP
    ports, and the log lines it wrote up to the one reporting them."""
    process = subprocess.Popen(
        [str(BIN / "ocpi-bridge"), "serve", "--site", str(ROOT / "examples" / "site.toml")],
        env=_env(tmp_path, **extra),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    ready = None
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        ready = re.search(
            r"ready: OCPP ws://127\.0\.0\.1:(\d+)/ocpp/.*http://127\.0\.0\.1:(\d+)", line
        )
        if ready:
            break
    if ready is None:
        process.kill()
        pytest.fail("ocpi-bridge serve did not report its ports:\n" + "".join(lines))
    try:
        yield process, int(ready.group(1)), int(ready.group(2)), lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    with _serving(tmp_path) as (process, ocpp_port, http_port, _):
        yield process, ocpp_port, http_port


def _charger(ocpp_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The charger simulator against the served bridge, as EXAMPLE-CP-1 of the example site."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "simulators.charger",
            "--url",
            f"ws://127.0.0.1:{ocpp_port}/ocpp",
            "--id",
            "EXAMPLE-CP-1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_serve_runs_the_example_site_and_stops_cleanly_on_sigterm(served, tmp_path):
    process, ocpp_port, _ = served
    session = _charger(
        ocpp_port,
        "--ocpp",
        "1.6",
        "--password",
        "example-cp1-password",
        "--scenario",
        "session",
        "--id-tag",
        "DEMO-TAG-01",
    )
    assert session.returncode == 0, session.stderr
    lines = [json.loads(line) for line in session.stdout.splitlines()]
    start = next(line["response"] for line in lines if line["action"] == "StartTransaction")
    assert start["idTagInfo"]["status"] == "Accepted"

    refused = _charger(ocpp_port, "--password", "wrong-password-0000", "--scenario", "boot")
    assert refused.returncode != 0
    assert "401" in refused.stderr

    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0

    listed = _cli(tmp_path, "chargers", "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("EXAMPLE-CP-1"))
    assert "\tbasic\tAccepted\toffline\t1.6\tocpi-bridge-sim\t" in row


def test_health_endpoint_answers_on_the_http_port(served):
    import httpx

    _, _, http_port = served
    assert httpx.get(f"http://127.0.0.1:{http_port}/health").json()["status"] == "ok"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_runs_on_the_configured_event_loop(tmp_path, loop):
    import httpx

    with _serving(tmp_path, OCPI_BRIDGE_EVENT_LOOP=loop) as (process, ocpp_port, http_port, log):
        assert any(f"event loop {loop}, HTTP parser httptools" in line for line in log), log
        assert httpx.get(f"http://127.0.0.1:{http_port}/health").json()["status"] == "ok"
        boot = _charger(
            ocpp_port, "--ocpp", "1.6", "--password", "example-cp1-password", "--scenario", "boot"
        )
        assert boot.returncode == 0, boot.stderr
        lines = [json.loads(line) for line in boot.stdout.splitlines()]
        answer = next(line["response"] for line in lines if line["action"] == "BootNotification")
        assert answer["status"] == "Accepted"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


@pytest.mark.timeout(60)
def test_serve_tunes_the_garbage_collector_once_started(tmp_path):
    """Start-up objects frozen, the young generations collected less often and survivors of
    full collections frozen (see ``bridge.heap``), right after the ready line."""
    with _serving(tmp_path) as (process, _, _, _):
        assert process.stderr is not None
        after_ready = []
        while len(after_ready) < 20:  # the next lines (no timing: a missing one times out)
            after_ready.append(process.stderr.readline())
            if "garbage collection:" in after_ready[-1] or not after_ready[-1]:
                break
        tuned = [line for line in after_ready if "garbage collection:" in line]
        assert tuned, after_ready
        assert re.search(
            r"(\d+) start-up objects exempted, thresholds \(10000, 100, \d+\), survivors frozen",
            tuned[0],
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


@pytest.mark.timeout(60)
def test_serve_reclaims_the_whole_heap_every_interval(tmp_path):
    """Survivors frozen, the whole heap is collected every OCPI_BRIDGE_GC_RECLAIM_INTERVAL
    seconds (``bridge.heap.reclaim``), and the process says what it freed and how long it took.
    """
    with _serving(tmp_path, OCPI_BRIDGE_GC_RECLAIM_INTERVAL="0.5") as (process, _, _, _):
        assert process.stderr is not None
        seen = []
        while len(seen) < 200:  # lines until two reclaims (no timing: a missing one times out)
            seen.append(process.stderr.readline())
            if sum("garbage collection: reclaimed" in line for line in seen) >= 2:
                break
            assert seen[-1], seen
        reclaimed = [line for line in seen if "garbage collection: reclaimed" in line]
        assert len(reclaimed) == 2, seen
        assert re.search(r"reclaimed \d+ objects in \d+ ms, \d+ exempted", reclaimed[0])
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


@pytest.mark.timeout(60)
def test_serve_can_leave_survivors_to_the_collector(tmp_path):
    with _serving(tmp_path, OCPI_BRIDGE_GC_FREEZE_SURVIVORS="false") as (process, _, _, _):
        assert process.stderr is not None
        line = ""
        for _ in range(20):
            line = process.stderr.readline()
            if "garbage collection:" in line or not line:
                break
        assert "survivors collected again" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_chargers_add_generates_a_password_and_lists_the_charger(tmp_path):
    added = _cli(tmp_path, "chargers", "add", "CP-9")
    assert added.returncode == 0, added.stderr
    assert re.search(r"generated password: \S{16,40}", added.stdout)
    again = _cli(tmp_path, "chargers", "add", "CP-9", "--no-auth")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    listed = _cli(tmp_path, "chargers", "list")
    assert "CP-9\tbasic\tAccepted\toffline" in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("chargers", "add", "CP-1", "--password", "short"), "16 to 40"),
        (("chargers", "add", "bad:id", "--no-auth"), "invalid charger id"),
        (("chargers", "add", "CP-1", "--no-auth", "--password", "x" * 20), "exclude"),
        (("tokens", "add", "T" * 21), "at most 20"),
    ],
)
def test_cli_refuses_bad_input_with_a_clear_message(tmp_path, args, message):
    result = _cli(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_tokens_add_and_list(tmp_path):
    assert _cli(tmp_path, "tokens", "add", "RFID-1", "--status", "Blocked").returncode == 0
    assert "RFID-1\tBlocked" in _cli(tmp_path, "tokens", "list").stdout


def test_serve_refuses_a_bad_site_file(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text('[[chargers]]\nid = "A"\nboot_status = "Maybe"\n')
    result = _cli(tmp_path, "serve", "--site", str(bad))
    assert result.returncode == 2
    assert "chargers[0].boot_status" in result.stderr


def test_serve_refuses_a_site_with_a_bad_location_and_registers_nothing(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text(
        '[[chargers]]\nid = "CP-OK"\nallow_no_auth = true\n\n'
        '[[locations]]\nid = "L1"\naddress = "a"\ncity = "b"\ncountry = "NLD"\n'
        'time_zone = "Europe/Amsterdam"\n'
        'coordinates = { latitude = "52.1", longitude = "4.00000" }\n'
    )
    result = _cli(tmp_path, "serve", "--site", str(bad))
    assert result.returncode == 2
    assert "locations[0] (id 'L1'): coordinates.latitude" in result.stderr
    assert "CP-OK" not in _cli(tmp_path, "chargers", "list").stdout


def test_settings_are_read_from_a_config_file(tmp_path):
    config = tmp_path / "bridge.env"
    config.write_text(f"OCPI_BRIDGE_DATABASE_URL=sqlite:///{tmp_path / 'from-file.db'}\n")
    env = _env(tmp_path, OCPI_BRIDGE_CONFIG_FILE=str(config))
    del env["OCPI_BRIDGE_DATABASE_URL"]
    result = subprocess.run(
        [str(BIN / "ocpi-bridge"), "chargers", "add", "CP-F", "--no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-file.db").exists()


def test_serve_refuses_a_site_with_an_invalid_charger_id(tmp_path):
    bad = tmp_path / "site.toml"
    bad.write_text('[[chargers]]\nid = "bad:id"\nallow_no_auth = true\n')
    result = _cli(tmp_path, "serve", "--site", str(bad))
    assert result.returncode == 2
    assert "invalid charger id" in result.stderr


@pytest.fixture
def emsp_process() -> Iterator[str]:
    """``python -m simulators.emsp serve`` on a free port; yields its control base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.emsp", "serve", "--port", "0", "--party", "EMS"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        first = json.loads(process.stdout.readline())
        yield first["control_url"].removesuffix("/_sim")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def _emsp(sim_url: str, *args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        [sys.executable, "-m", "simulators.emsp", *args, "--sim-url", sim_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return result


def test_partner_onboarding_as_documented_in_the_readme(served, emsp_process, tmp_path):
    _, _, http_port = served
    public = {"OCPI_BRIDGE_PUBLIC_URL": f"http://127.0.0.1:{http_port}"}

    # A. The eMSP registers with us using the token A we mint.
    added = _cli(tmp_path, "partners", "add", "--country", "NL", "--party", "EMS", **public)
    assert added.returncode == 0, added.stderr
    token_a = re.search(r"token A:\s+(\S+)", added.stdout)
    versions_url = re.search(r"versions URL:\s+(\S+)", added.stdout)
    assert token_a is not None
    assert versions_url is not None
    assert versions_url.group(1) == f"http://127.0.0.1:{http_port}/ocpi/versions"
    registered = _emsp(
        emsp_process,
        "register",
        "--versions-url",
        versions_url.group(1),
        "--token",
        token_a.group(1),
    )
    assert registered["ok"], registered
    listed = _cli(tmp_path, "partners", "list", **public)
    assert "\t".join(["1", "REGISTERED", "partner", "NL/EMS (EMSP)"]) in listed.stdout

    rotated = _cli(tmp_path, "partners", "rotate", "1", **public)
    assert rotated.returncode == 0, rotated.stderr
    assert "tokens rotated" in rotated.stdout
    assert _emsp(emsp_process, "state")["peer"] is not None

    unregistered = _cli(tmp_path, "partners", "unregister", "1", **public)
    assert unregistered.returncode == 0, unregistered.stderr
    assert _emsp(emsp_process, "state")["peer"] is None

    # B. We register with the eMSP using the token A it mints (our server answers its calls).
    minted = _emsp(emsp_process, "token-a")
    ours = _cli(
        tmp_path,
        "partners",
        "register",
        "--versions-url",
        minted["versions_url"],
        "--token",
        minted["token"],
        "--country",
        "NL",
        "--party",
        "EMS",
        **public,
    )
    assert ours.returncode == 0, ours.stderr
    assert "partner 2 registered: NL/EMS (EMSP)" in ours.stdout
    assert "credentials" in ours.stdout
    shown = _cli(tmp_path, "partners", "show", "2", **public)
    assert "REGISTERED" in shown.stdout

    # Operator mistakes: a clear message and exit code, nothing stored.
    refused = _cli(
        tmp_path,
        "partners",
        "register",
        "--versions-url",
        "http://127.0.0.1:1/ocpi/versions",
        "--token",
        "whatever",
        **public,
    )
    assert refused.returncode == 1
    assert "error: OCPI 3001" in refused.stderr
    bad = _cli(tmp_path, "partners", "add", "--country", "NLD", "--party", "EMS", **public)
    assert bad.returncode == 2
    missing = _cli(tmp_path, "partners", "rotate", "9", **public)
    assert missing.returncode == 1
    assert "no partner 9" in missing.stderr
    assert _cli(tmp_path, "partners", "list", **public).stdout.count("\n") == 3
