"""udfs/metric_detector.WindowScoring: the live-model cache beside the operators' keyed state.

What a group's models score must not depend on whether they came from the cache or from the
state's bytes, and a value handed to the state must not change afterwards."""
from __future__ import annotations

import copy
import math

from udfs.metric_detector import WindowScoring

END = 1_793_527_200_000
WINDOW_MS = 300_000


def _scoring() -> WindowScoring:
    return WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6, baseline_threshold=0.25)


def _windows(i: int) -> list[tuple[str, float, int]]:
    level = 2.5 * (1 + 0.1 * math.sin(i / 5)) * (0.3 if i == 40 else 1.0)   # a drop in window 40
    return [("rpm", level, 5), ("fill_rate", 0.8 + 0.01 * math.cos(i), 5)]


def _run(scoring: WindowScoring, groups: tuple[str, ...], windows: int) -> list:
    state: dict = {}
    results = []
    for i in range(windows):
        for g in groups:
            state[g], scored = scoring.score_windows(state.get(g), ("editor", g), g, None, END + i * WINDOW_MS,
                                                     _windows(i))
            results += scored
    return results


def test_models_restored_from_the_state_score_exactly_like_cached_ones():
    cached = _run(_scoring(), ("e-1", "e-2"), 50)
    assert any(r["is_anomaly"] for r in cached), "the drop in window 40 is seen"
    small = _scoring()
    small.CACHE_SIZE = 1       # e-1 and e-2 alternate: every model comes back from the state's bytes
    assert _run(small, ("e-1", "e-2"), 50) == cached


def test_a_value_handed_to_the_state_is_never_changed_afterwards():
    scoring = _scoring()
    first, _ = scoring.score_windows(None, ("editor", "e-1"), "e-1", None, END, _windows(0))
    kept = copy.deepcopy(first)
    second, _ = scoring.score_windows(first, ("editor", "e-1"), "e-1", None, END + WINDOW_MS, _windows(1))
    assert first == kept and second is not first and second["rpm"] != first["rpm"]
