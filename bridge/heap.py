"""The garbage collector in a long-running bridge process (``ocpi-bridge serve``).

CPython's collection of its oldest generation visits every container object, and it stops the
event loop while it runs. Most objects of a running bridge are made once at start-up and live
as long as the process (modules, classes, the compiled OCPP schema checks, SQLAlchemy's and
pydantic's models), and the rest are mostly the chargers' connections, which live as long as
the connection. In the ingest benchmark (1,000 chargers, 1,000 messages per second) such a
collection came every 5 seconds and took about 200 ms: that was the reply p99.

``tune_for_serving`` therefore

* moves what exists once the bridge has started into the permanent generation, which no
  collection visits (the objects are still freed by reference counting; reference cycles among
  them would stay, and start-up objects are never discarded): 200 -> about 120 ms;
* collects the youngest generation once 10,000 objects more are alive instead of 700
  (``GENERATION_0_THRESHOLD``). What it holds when collected is mostly what the messages in
  flight are made of, so a collection visits about as many objects whether it comes often or
  seldom, and each one moves the survivors on. In the ingest benchmark (1,000 messages per
  second) collections took about 3.6 s of the bridge's CPU in 75 s (3,432 of the youngest
  generation, 62 of the middle one) with 700, and 0.7 s (65 of the youngest, none of the
  middle one) with 10,000; each takes 1-35 ms, about 8 on average;
* collects the middle generation 10 times less often (``GENERATION_1_EVERY``). The oldest
  generation is collected once the objects moved into it since its last collection reach a
  quarter of its size, and what moves there are the objects alive when the middle one is
  collected (messages in flight, mostly): fewer collections of it move fewer of them. In the
  same benchmark, 3 collections of the oldest generation in 48 s instead of one every 5 s; a
  collection of the middle one takes 20-30 ms instead of about 6 (and with the youngest
  collected at 10,000, none came in 75 s);
* with ``freeze_survivors``, moves what survives each collection of the oldest generation into
  the permanent generation too, right after it (``gc.callbacks``): the next one visits only
  what came since, not every connection again. What survives a full collection is alive, so
  nothing that is garbage then is kept. What is kept is what becomes garbage later while in a
  reference cycle, mostly the objects of a closed connection: ``reclaim`` collects the whole
  heap, frozen objects included, and the serving process runs it every
  ``OCPI_BRIDGE_GC_RECLAIM_INTERVAL`` seconds. In the ingest benchmark (1,000 chargers), a
  collection of the oldest generation took 120-220 ms before and 37-48 ms with it (with
  10,000 chargers connecting, 0.4-1.5 s growing before, 0.1-0.4 s with it); ``reclaim`` takes
  what one took before, and found 0-40 objects to free after 20 s of steady load.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

GENERATION_0_THRESHOLD = 10_000
"""Objects made (less those freed) since the youngest generation's last collection that start
the next one (CPython: 700)."""

GENERATION_1_EVERY = 100
"""Collections of the youngest generation per collection of the middle one (CPython: 10)."""


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What one ``reclaim`` did."""

    collected: int
    """Unreachable objects found (as ``gc.collect`` counts them)."""
    frozen: int
    """Objects in the permanent generation afterwards."""
    seconds: float
    """How long the collection stopped the process."""


def tune_for_serving(*, freeze_survivors: bool = False) -> int:
    """Collect, exempt every object left from later collections, and collect the young
    generations less often; with ``freeze_survivors``, exempt the survivors of every later
    collection of the oldest generation as well. Answer how many objects were exempted."""
    gc.collect()
    gc.freeze()
    _, _, threshold2 = gc.get_threshold()
    gc.set_threshold(GENERATION_0_THRESHOLD, GENERATION_1_EVERY, threshold2)
    if freeze_survivors and _freeze_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full_collection)
    frozen = gc.get_freeze_count()
    log.info(
        "garbage collection: %d start-up objects exempted, thresholds %s, survivors %s",
        frozen,
        gc.get_threshold(),
        "frozen" if freeze_survivors else "collected again",
    )
    return frozen


def reclaim() -> Reclaimed:
    """Collect the whole heap once, the permanent generation included, then exempt what
    survived again. It stops the process as long as a full collection of everything takes."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    done = Reclaimed(
        collected=collected,
        frozen=gc.get_freeze_count(),
        seconds=time.perf_counter() - started,
    )
    log.info(
        "garbage collection: reclaimed %d objects in %.0f ms, %d exempted",
        done.collected,
        done.seconds * 1000,
        done.frozen,
    )
    return done


def _freeze_after_full_collection(phase: str, info: dict[str, Any]) -> None:
    """``gc.callbacks`` hook: once a collection of the oldest generation has finished,
    everything left in the collector's generations is alive; move it out of their way."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()
