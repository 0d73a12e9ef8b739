"""The pure parts of the benchmark suite: percentiles, the version mix, the loopback guard and
the matching of pushes to the messages that caused them."""

from __future__ import annotations

import argparse
import gc

import pytest

from bench import frames
from bench.loadgen import Fleet, LoadError, collector_off, require_loopback
from bench.scenarios import ingest
from bench.scenarios.cdrs import pair_cdrs
from bench.scenarios.ingest import answered_and_projected
from bench.scenarios.push import match_latencies
from bench.site import SiteSpec, site_toml
from bench.stats import percentile, summarize


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.99) == 0.0
    assert summarize([0.001, 0.002])["max_ms"] == 2.0


def test_fleet_spreads_the_version_mix() -> None:
    fleet = Fleet(ids=[str(i) for i in range(10)], v201_share=0.3)
    versions = [fleet.version(i) for i in range(10)]
    assert versions.count(frames.V201) == 3
    only_16 = Fleet(ids=["a", "b"], v201_share=0.0)
    assert {only_16.version(0), only_16.version(1)} == {frames.V16}


@pytest.mark.parametrize("url", ["ws://10.0.0.1:9000/ocpp", "ws://localhost:9000/ocpp"])
def test_the_load_generator_only_targets_127_0_0_1(url: str) -> None:
    with pytest.raises(LoadError):
        require_loopback(url)
    require_loopback("ws://127.0.0.1:9000/ocpp")


def test_hot_path_frames_are_valid_json() -> None:
    import json

    meter = json.loads(frames.meter_16("7", 42, 1234))
    assert meter[:3] == [2, "7", "MeterValues"]
    assert meter[3]["meterValue"][0]["sampledValue"][0]["value"] == "1234"
    updated = json.loads(frames.updated_201("8", "TX-1", 3, 99))
    assert updated[3]["seqNo"] == 3
    assert updated[3]["meterValue"][0]["sampledValue"][0]["value"] == 99


def test_status_pushes_are_matched_to_the_first_patch_after_the_send() -> None:
    patches = [
        {"method": "PATCH", "path": "/x/L1/E1", "at": "2026-01-01T00:00:01.100Z"},
        {"method": "PATCH", "path": "/x/L1/E1", "at": "2026-01-01T00:00:03.050Z"},
        {"method": "PUT", "path": "/x/L2", "at": "2026-01-01T00:00:01.000Z"},
    ]
    base = 1767225600.0  # 2026-01-01T00:00:00Z
    delays, missing = match_latencies(
        [("E1", base + 1.0), ("E1", base + 3.0), ("E2", base)], patches
    )
    assert [round(d, 3) for d in delays] == [0.1, 0.05]
    assert missing == 1


def test_cdrs_are_paired_in_order_per_evse() -> None:
    posts = [
        {
            "method": "POST",
            "at": "2026-01-01T00:00:02Z",
            "body": {"cdr_location": {"evse_uid": "E"}},
        },
        {
            "method": "POST",
            "at": "2026-01-01T00:00:05Z",
            "body": {"cdr_location": {"evse_uid": "E"}},
        },
    ]
    base = 1767225600.0
    delays, times = pair_cdrs([("E", base + 1), ("E", base + 4)], posts)
    assert delays == [1.0, 1.0]
    assert len(times) == 2


def test_site_binds_every_location_to_a_charger() -> None:
    text = site_toml(SiteSpec(chargers=["A", "B"], locations=2, tariff=True))
    assert text.count("[[locations]]") == 2
    assert 'charger = "B"' in text
    assert "PARKING_TIME" in text


def test_ingest_counts_only_messages_also_projected() -> None:
    """A bridge that answers faster than it projects is credited with what it projected."""
    lagging = {"messages_per_s": 2000.0, "events_projected_per_s": 900.0}
    keeping_up = {"messages_per_s": 1500.0, "events_projected_per_s": 1530.0}  # backlog eaten
    assert answered_and_projected(lagging) == 900.0
    assert answered_and_projected(keeping_up) == 1500.0
    # A result recorded before the projection was read: answered only.
    assert answered_and_projected({"messages_per_s": 1400.0}) == 1400.0


def _phase(rate: float, p99_ms: float) -> dict[str, object]:
    latency = {"all": {"p50_ms": p99_ms / 4, "p99_ms": p99_ms}}
    return {
        "messages_per_s": rate,
        "events_projected_per_s": rate,
        "messages_per_cpu_s": rate,
        "projection_backlog_end": 3,
        "load": {"latency": latency},
    }


def test_ingest_phases_option_parses_a_subset_in_order() -> None:
    assert ingest.parse_phases("ceiling, max") == ("max", "ceiling")
    assert ingest.parse_phases("rated") == ("rated",)
    for bad in ("", "rated,fast", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            ingest.parse_phases(bad)


def test_ingest_partial_run_is_summarized_but_never_recorded() -> None:
    """A run of some phases reports what it measured; only a full run may replace the
    recorded figures and judge the target."""
    args = argparse.Namespace(rate=1500.0, phases=("rated",))
    partial = ingest.summarize([{"bridge-rated": _phase(1490.0, 30.0)}], args)
    assert partial.recorded is False
    assert partial.met is None
    assert partial.medians["rated_p99_ms"] == 30.0
    assert "bridge_max_msg_per_s" not in partial.medians
    assert partial.headline.startswith("at 1500 msg/s offered: 1490 msg/s")

    full = argparse.Namespace(rate=1500.0, phases=tuple(ingest.PHASES))
    run = {
        "bridge-max": _phase(1700.0, 500.0),
        "bridge-rated": _phase(1490.0, 30.0),
        "ceiling-max": _phase(2300.0, 400.0),
    }
    complete = ingest.summarize([run], full)
    assert complete.recorded is True
    assert complete.met is True
    assert complete.medians["ratio"] == round(1700 / 2300, 2)
    run["bridge-rated"] = _phase(1490.0, 60.0)
    assert ingest.summarize([run], full).met is False


def test_collector_is_off_for_a_measured_phase_and_restored_after() -> None:
    assert gc.isenabled()
    with collector_off():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_off():
        raise RuntimeError("a phase that fails")
    assert gc.isenabled()
    gc.disable()  # off already before: left off
    try:
        with collector_off():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
