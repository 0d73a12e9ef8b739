"""The processes under test: ``ocpi-bridge serve``, the eMSP simulator and the bare-library
ceiling server, each a subprocess on 127.0.0.1 whose CPU time and RSS are read from /proc."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
_READY = re.compile(r"ready: OCPP ws://127\.0\.0\.1:(\d+)/ocpp/.*http://127\.0\.0\.1:(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system) and resident memory of one process at one instant."""

    cpu_s: float
    rss_kib: int


def sample(pid: int) -> ProcSample:
    """Read /proc/<pid>/stat (utime, stime) and /proc/<pid>/status (VmRSS)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return ProcSample(cpu_s=cpu, rss_kib=rss)


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the main thread (the event loop) and of every other thread together (the
    aiosqlite worker, the frame log...), from /proc/<pid>/task/<tid>/stat."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        if task.name == str(pid):
            main += cpu
        else:
            other += cpu
    return main, other


def pinned(command: Sequence[str], core: int | None) -> list[str]:
    """``command`` under ``taskset -c core`` when asked and available."""
    if core is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", str(core), *command]


def pin_self(cores: set[int] | None) -> None:
    """Pin the benchmark (load generator) process to ``cores`` when the machine has them."""
    if cores and cores <= os.sched_getaffinity(0):
        os.sched_setaffinity(0, cores)


def _wait_for(
    pattern: re.Pattern[str], log: Path, process: subprocess.Popen[bytes]
) -> re.Match[str]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if log.exists():
            found = pattern.search(log.read_text(errors="replace"))
            if found:
                return found
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"process did not become ready (exit {process.poll()}):\n{tail}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL when it does not stop in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class Bridge:
    """A running ``ocpi-bridge serve``."""

    process: subprocess.Popen[bytes]
    ocpp_port: int
    http_port: int
    env: dict[str, str]
    log: Path

    @property
    def pid(self) -> int:
        """PID of the bridge itself (taskset execs it, so the PID is the same)."""
        return self.process.pid

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def sample(self) -> ProcSample:
        return sample(self.pid)

    def cli(self, *args: str) -> str:
        """Run an ``ocpi-bridge`` operator command against the same database."""
        done = subprocess.run(
            [str(BIN / "ocpi-bridge"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ocpi-bridge {' '.join(args)} failed: {done.stderr}")
        return done.stdout


def bridge_env(workdir: Path, settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of the bridge and its CLI: a fresh SQLite database in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPI_BRIDGE_")}
    env.update(
        OCPI_BRIDGE_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        OCPI_BRIDGE_HOST="127.0.0.1",
        OCPI_BRIDGE_OCPP_PORT="0",
        OCPI_BRIDGE_HTTP_PORT="0",
        OCPI_BRIDGE_COUNTRY_CODE="NL",
        OCPI_BRIDGE_PARTY_ID="CPO",
    )
    env.update(settings)
    return env


@contextlib.contextmanager
def run_bridge(
    workdir: Path,
    site: Path | None,
    settings: Mapping[str, str],
    *,
    core: int | None = 0,
    profile: Path | None = None,
) -> Iterator[Bridge]:
    """Start ``ocpi-bridge serve`` (optionally under cProfile), wait for its ready line."""
    env = bridge_env(workdir, settings)
    if profile is None:
        command = [str(BIN / "ocpi-bridge"), "serve"]
    else:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile)]
        command += [str(BIN / "ocpi-bridge"), "serve"]
    if site is not None:
        command += ["--site", str(site)]
    log = workdir / "bridge.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(command, core), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        ready = _wait_for(_READY, log, process)
        yield Bridge(process, int(ready.group(1)), int(ready.group(2)), env, log)
    finally:
        stop(process, timeout=120 if profile else 30)


@dataclass
class Emsp:
    """A running eMSP simulator."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def run_emsp(workdir: Path, *, core: int | None = None) -> Iterator[Emsp]:
    """Start ``python -m simulators.emsp serve`` on a free port (country DE, party EMS)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "simulators.emsp",
        "serve",
        "--port",
        str(port),
        "--country",
        "DE",
        "--party",
        "EMS",
        "--max-limit",
        "1000",
    ]
    log = workdir / "emsp.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(command, core), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        _wait_for(re.compile(rf"(Uvicorn running|127\.0\.0\.1:{port})"), log, process)
        yield Emsp(process, port)
    finally:
        stop(process)


@contextlib.contextmanager
def run_ceiling(workdir: Path, *, core: int | None = 0) -> Iterator[tuple[int, int]]:
    """Start the bare ``ocpp`` + ``websockets`` server (bench.ceiling): (pid, port)."""
    log = workdir / "ceiling.log"
    command = [sys.executable, "-m", "bench.ceiling", "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            pinned(command, core), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        ready = _wait_for(re.compile(r"ceiling listening on (\d+)"), log, process)
        yield process.pid, int(ready.group(1))
    finally:
        stop(process)
