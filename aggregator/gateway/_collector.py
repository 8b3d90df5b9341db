"""The cyclic garbage collector, set for a long-running gateway process.

With CPython's default thresholds (700, 10, 10), every middle-generation pass
promotes the objects of the requests then in flight to the oldest generation,
so under load a full collection runs a few times a second; each one walks every
cached part and none finds garbage (reference counting frees a request's
objects). That was a third of the gateway's CPU on cache misses
(bench/RESULTS.md). A larger young generation promotes far fewer objects, and
freezing what start-up built keeps it out of every walk.

The gateway's own processes call this; an application embedding the library
owns its process and its collector.
"""

from __future__ import annotations

import gc


def tune_collector(young_threshold: int) -> None:
    """Freeze what exists now and collect the young generation every
    ``young_threshold`` allocations; 0 leaves the collector as it is."""
    if young_threshold == 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
