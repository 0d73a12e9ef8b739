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
    from bridge.heap import GENERATION_0_THRESHOLD, GENERATION_1_EVERY, tune_for_serving

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
        "young": GENERATION_0_THRESHOLD,
        "frozen": frozen,
        "freeze_count": gc.get_freeze_count(),
        "tracked": len(gc.get_objects()),
        "collected": gc.collect(),
    }))
    """
)


def test_start_up_objects_are_exempted_and_the_young_generations_are_collected_less_often():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    # Everything loaded so far is frozen: collections visit only what came after.
    assert found["frozen"] == found["freeze_count"] > 50_000
    assert found["tracked"] < found["frozen"] / 10
    assert found["after"] == [found["young"], found["every"], found["before"][2]]
    assert found["young"] > found["before"][0]
    assert found["every"] > found["before"][1]
    assert found["collected"] >= 2  # the two nodes of the new cycle


SURVIVORS = textwrap.dedent(
    """
    import gc, json, weakref
    import bridge.main  # what a serving process has loaded
    from bridge.heap import reclaim, tune_for_serving

    tune_for_serving(freeze_survivors=True)
    tune_for_serving(freeze_survivors=True)  # twice: one hook
    hooks = sum(1 for hook in gc.callbacks if getattr(hook, "__module__", "") == "bridge.heap")

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    frozen_before = gc.get_freeze_count()
    gc.collect()  # a full collection: the cycle is alive, so it survives and is frozen
    frozen_after = gc.get_freeze_count()
    tracked_nodes = sum(isinstance(o, Node) for o in gc.get_objects())
    del a, b  # garbage now, but frozen: full collections no longer see it
    missed = gc.collect()
    kept = alive() is not None
    done = reclaim()
    print(json.dumps({
        "hooks": hooks,
        "grew": frozen_after - frozen_before,
        "tracked_nodes": tracked_nodes,
        "kept_until_reclaim": kept,
        "missed": missed,
        "freed_by_reclaim": alive() is None,
        "reclaimed": done.collected,
        "frozen": done.frozen,
        "freeze_count": gc.get_freeze_count(),
        "seconds": done.seconds,
    }))
    """
)


def test_survivors_of_full_collections_are_frozen_and_reclaim_frees_their_cycles():
    done = subprocess.run(
        [sys.executable, "-c", SURVIVORS], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert found["hooks"] == 1
    assert found["grew"] >= 2  # the two nodes, and whatever else was alive
    assert found["tracked_nodes"] == 0  # in the permanent generation, not in the collector's
    # A cycle that became garbage once frozen is kept by ordinary collections...
    assert found["kept_until_reclaim"] is True
    # ... and freed by the next reclaim, which freezes what is left again.
    assert found["freed_by_reclaim"] is True
    assert found["reclaimed"] >= 2
    assert found["frozen"] == found["freeze_count"] > 50_000
    assert found["seconds"] > 0


def test_without_freezing_survivors_a_cycle_dropped_later_is_collected():
    script = textwrap.dedent(
        """
        import gc, json, weakref
        from bridge.heap import tune_for_serving

        tune_for_serving()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        gc.collect()
        del a, b
        collected = gc.collect()
        print(json.dumps({"collected": collected, "freed": alive() is None}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert found["freed"] is True
    assert found["collected"] >= 2
