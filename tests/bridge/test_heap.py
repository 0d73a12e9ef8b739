"""Garbage collection tuned for ``ocpi-bridge serve`` (``bridge.heap``), in a process of its
own: the test process's collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, json
    import bridge.main  # what a serving process has loaded
    from bridge.heap import GENERATION_1_EVERY, tune_for_serving

    before = gc.get_threshold()
    frozen = tune_for_serving()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after start-up: still collected
    del a, b
    print(json.dumps({
        "before": before,
        "after": gc.get_threshold(),
        "every": GENERATION_1_EVERY,
        "frozen": frozen,
        "freeze_count": gc.get_freeze_count(),
        "tracked": len(gc.get_objects()),
        "collected": gc.collect(),
    }))
    """
)


def test_start_up_objects_are_exempted_and_the_middle_generation_is_collected_less_often():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    # Everything loaded so far is frozen: collections visit only what came after.
    assert found["frozen"] == found["freeze_count"] > 50_000
    assert found["tracked"] < found["frozen"] / 10
    assert found["after"] == [found["before"][0], found["every"], found["before"][2]]
    assert found["every"] > found["before"][1]
    assert found["collected"] >= 2  # the two nodes of the new cycle
