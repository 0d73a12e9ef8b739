"""Smoke runs of every benchmark scenario (issue #9): a few chargers for a few seconds, each
scenario as the documented command, checking the JSON result has sane content. No timing is
asserted: performance is measured by ``python -m bench``, never in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


def smoke(scenario: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``python -m bench <scenario> --smoke --runs 1`` and load its result."""
    out = tmp_path / "results"
    command = [sys.executable, "-m", "bench", scenario, "--smoke", "--runs", "1", "--no-doc"]
    done = subprocess.run(
        [*command, "--out-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = out.glob(f"{scenario}-*.json")
    result: dict[str, Any] = json.loads(path.read_text())
    assert result["scenario"] == scenario
    assert result["smoke"] is True
    assert result["machine"]["packages"]["ocpp"] != "absent"
    assert len(result["runs"]) == 1
    return result


def no_errors(load: dict[str, Any]) -> None:
    assert load["errors"] == {}
    assert load["disconnects"] == 0
    assert load["connect_failures"] == 0


@pytest.mark.timeout(120)
def test_connections_smoke(tmp_path: Path) -> None:
    run = smoke("connections", tmp_path)["runs"][0]["20"]
    assert run["held"] == run["chargers"] == 20
    assert run["booted"] == 20
    assert run["handshake_rate_per_s"] > 0
    assert run["rss_held_mib"] > 0
    assert run["load"]["latency"]["Heartbeat"]["count"] > 0
    no_errors(run["load"])


@pytest.mark.timeout(120)
def test_ingest_smoke(tmp_path: Path) -> None:
    run = smoke("ingest", tmp_path)["runs"][0]
    assert run["transactions"] == run["connected"] == 10
    assert run["projection"]["ocpi_sessions"] == 10
    for phase in ("bridge-max", "bridge-rated", "ceiling-max"):
        assert run[phase]["messages"] > 0
        assert run[phase]["cpu_s"] > 0
        no_errors(run[phase]["load"])
    for phase in ("bridge-max", "bridge-rated"):
        # Read from the running bridge's database: every message is one event to project.
        assert run[phase]["events_recorded_per_s"] > 0
        assert run[phase]["events_projected_per_s"] > 0
        assert run[phase]["projection_backlog_end"] >= 0
    assert "events_projected_per_s" not in run["ceiling-max"]
    assert run["ratio_bridge_to_ceiling"] > 0


@pytest.mark.timeout(120)
def test_push_smoke(tmp_path: Path) -> None:
    run = smoke("push", tmp_path)["runs"][0]
    assert run["status_changes"] > 0
    assert run["patches_missing"] == 0
    assert run["status_to_patch"]["count"] == run["status_changes"]
    assert run["status_reply"]["latency"]["StatusNotification"]["count"] == run["status_changes"]
    no_errors(run["load"])


@pytest.mark.timeout(120)
def test_reads_smoke(tmp_path: Path) -> None:
    run = smoke("reads", tmp_path)["runs"][0]
    assert run["locations"]["total"] == 50
    assert run["sessions"]["total"] > 0
    for module in ("locations", "sessions"):
        assert run[module]["requests"] > 0
        assert run[module]["errors"] == 0


@pytest.mark.timeout(120)
def test_cdrs_smoke(tmp_path: Path) -> None:
    run = smoke("cdrs", tmp_path)["runs"][0]
    assert run["sessions_stopped"] > 0
    assert run["cdrs_received"] == run["sessions_stopped"]
    assert run["stop_to_cdr"]["count"] == run["sessions_stopped"]
    no_errors(run["load"])
