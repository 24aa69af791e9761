"""While a worker runs, Python's garbage collector looks at young objects less often.

Why: a busy worker allocates many short-lived container objects per episode (events,
commits, futures), and the collector's youngest generation is collected after every 700 net
allocations by default, each collection also walking every object still in flight. In W9 (c)
(1,000 orchestrations x 5 entity calls, one process) the collector took ~350 ms of a 1.8 s
run (gc.callbacks), and turning it off made the run 20-25 % faster. Collecting the young
generation after 50,000 allocations instead cut the collector's time to 25-40 ms and made the
run 12 % faster side by side (docs/benchmarks.md), and cycles are still collected: the older
generations follow at their usual ratios.

This changes process-wide state, so it is done with care: only ever raised (a process that
collects even less often, or not at all, is left as it is), counted over the workers of the
process, and restored when the last one stops unless someone else changed it meanwhile.
``WorkerOptions.gc_young_threshold = None`` leaves the collector alone.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, int, int] | None = None  # the thresholds to restore
_set: tuple[int, int, int] | None = None  # the thresholds we set


def hold(young_threshold: int) -> None:
    """A worker starts: collect the young generation after ``young_threshold`` allocations."""
    global _holders, _saved, _set
    with _lock:
        if _holders == 0:
            current = gc.get_threshold()
            if gc.isenabled() and 0 < current[0] < young_threshold:
                _saved, _set = current, (young_threshold, current[1], current[2])
                gc.set_threshold(*_set)
        _holders += 1


def release() -> None:
    """A worker stopped; the last one puts the thresholds back."""
    global _holders, _saved, _set
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0 and _saved is not None:
            if gc.get_threshold() == _set:
                gc.set_threshold(*_saved)
            _saved = _set = None
