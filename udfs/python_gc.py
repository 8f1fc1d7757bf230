"""The Python operators' cyclic garbage collector: how often its youngest generation is collected.

Why: the scoring operators keep tens of thousands of live models, and every window they score
leaves new long-lived containers (each series' stored entry, journal and trailing history). With
CPython's default first threshold (700 container allocations) the collector runs every few series
and, as those survivors pile up, walks the older generations too. Outside Flink, 3,000 partner
series scored for 60 windows spent 10.3 of 49.3 CPU s in the collector at the default (68.5 us per
metric window); with a first threshold of 100,000, 0.8 of 37.7 s (52.3 us) (a script not kept;
in the job, flink_jobs/bench/README.md). Nothing here makes reference cycles on purpose: the
objects are freed by reference counting as before, and the collector still runs, less often, so
garbage in cycles waits longer (in the youngest generation, up to the threshold's count of new
containers; in the older ones, ten and a hundred times as long).

The setting is the interpreter's, not the operator's. The two scoring operators
(udfs/correlator.EditorCorrelator and PartnerHealth) set it in ``open()`` to the job's one value
(``job.python.gc.threshold``). In thread mode (the local default) every Python operator of the job
shares the one interpreter the JVM embeds, so the others run under it too; and that interpreter
outlives a job in the same JVM, so 0 ("leave it") keeps whatever was set last. In process mode each
Beam worker has its own interpreter: the scoring operators' workers get the value, the others keep
CPython's 700.

>>> import gc
>>> before = gc.get_threshold()
>>> set_young_threshold(50_000)[0], gc.get_threshold()[0]
(True, 50000)
>>> set_young_threshold(0)[0]          # 0: leave the interpreter's own setting
False
>>> _ = gc.set_threshold(*before)
"""
from __future__ import annotations

import gc


def set_young_threshold(threshold: int) -> tuple[bool, tuple[int, int, int]]:
    """Set the collector's first-generation threshold to ``threshold`` (the older generations'
    thresholds are kept); 0 leaves it as it is. Returns (whether it was set, the thresholds now)."""
    if threshold < 0:
        raise ValueError("the garbage collector's threshold must be >= 0 (0: leave it as it is)")
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)
    return bool(threshold), gc.get_threshold()
