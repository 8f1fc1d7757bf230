"""Per (editor, metric) -- and per (partner, editor, metric) -- window scoring.

Input: an editor's window (a row of sql/windows/editor_windows.sql, or one
element of a partner row's array, sql/windows/partner_windows.sql), every metric
of the contract side by side (``m__avg``, ``m__n``). The keyed operators of udfs/correlator.py own the Flink state and
call :class:`WindowScoring` once per row: each metric present in the window is
scored by its own series' model and trailing baseline, and the per-metric
results go on to the classifier (editors) or the partner check (partners) in
the same call. So Python runs once per editor window and once per partner window,
never per record nor per metric: each crossing between the JVM and Python (row conversion, state
calls) costs more than the scoring itself (flink_jobs/benchmark.py).

A series' state is the pair
  * the detectors/ online model (``detectors.make(name)``) as its versioned
    bytes (``to_bytes`` / ``detectors.from_bytes``), and
  * its trailing baseline: the last N window averages (JSON, udfs/baseline.py),
and the operators keep one value per editor (or per partner and editor) holding
that pair for each of its metrics: one state read and one write per row. The
live models are also kept in a per-worker LRU cache; the state stays the truth
(a cached model is used only when the state holds exactly the bytes it was
written with), so restores are unaffected. Each window is scored by the model
(strictly causal: scored, then learned) and compared with the trailing baseline
(udfs/baseline.score_window, the same sequence flink_jobs/evaluation/offline.py
replays).
"""
from __future__ import annotations

import math
from typing import Iterator

import detectors
from detectors.classifier import METRICS
from udfs.baseline import score_window
from udfs.decisions import RESULT_KEYS


def metric_windows(row, first_column: int) -> Iterator[tuple[str, float, int]]:
    """(metric, window mean, sample count) for each metric with samples in a pivoted window row.

    ``first_column`` is the index of the first ``m__avg`` column (flink_jobs.main.metric_aggregates
    lays them out as avg, count per metric in METRICS order).

    >>> row = ["e-1"] + [None, 0] * 10 + ["window_time"]
    >>> row[1:3] = [2.5, 4]          # rpm
    >>> row[3:5] = [0.8, 4]          # fill_rate
    >>> list(metric_windows(row, 1))
    [('rpm', 2.5, 4), ('fill_rate', 0.8, 4)]
    """
    for i, metric in enumerate(METRICS):
        count = row[first_column + 2 * i + 1]
        if count:
            yield metric, float(row[first_column + 2 * i]), int(count)


class WindowScoring:
    """Scores one editor window's metrics against their series' models (held by the keyed
    operators of udfs/correlator.py; no Flink state here, the caller reads and writes it).

    >>> scoring = WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6,
    ...                         baseline_threshold=0.25)
    >>> stored, results = scoring.score_windows(None, ("editor", "e-1", None), "e-1", None,
    ...                                         1793520300000, [("rpm", 2.5, 4)])
    >>> sorted(stored), results[0]["metric"], results[0]["is_anomaly"], results[0]["sample_count"]
    (['rpm'], 'rpm', False, 4)
    """

    CACHE_SIZE = 20000

    def __init__(self, detector_name: str, detector_params: dict, baseline_windows: int,
                 baseline_min_windows: int, baseline_threshold: float):
        self.detector_name = detector_name
        self.detector_params = dict(detector_params)
        self.baseline_windows = baseline_windows
        self.baseline_min_windows = baseline_min_windows
        self.baseline_threshold = baseline_threshold

    def score_windows(self, stored: dict | None, series: tuple, scope_id: str, editor: str | None,
                      window_end_ms: int, windows) -> tuple[dict, list[dict]]:
        """(the new stored value, one result dict per metric, in metric-name order).

        ``stored`` maps metric -> (model bytes, history JSON) for one series group (an editor,
        or a partner and editor), None for a new group; ``series`` names the group in the
        live-model cache; ``editor`` is the result's ``editors`` field (partner rows only).
        """
        cache = self.__dict__.setdefault("_cache", {})   # (series, metric) -> (bytes, model), LRU first
        stored = dict(stored) if stored else {}
        results = []
        for metric, value, count in sorted(windows):
            blob, history = stored.get(metric, (None, None))
            key = (series, metric)
            cached = cache.pop(key, None)
            if blob and cached is not None and cached[0] == blob:
                model = cached[1]          # keyed state is the truth; the cache only skips from_bytes
            else:
                model = detectors.from_bytes(blob) if blob else detectors.make(self.detector_name,
                                                                               **self.detector_params)
            (baseline, lower, upper, score, is_anomaly), history = score_window(
                model, history, window_end_ms, value, rel_threshold=self.baseline_threshold,
                min_windows=self.baseline_min_windows, keep=self.baseline_windows)
            blob = model.to_bytes()
            stored[metric] = (blob, history)
            if len(cache) >= self.CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = (blob, model)
            results.append(dict(zip(RESULT_KEYS, (
                scope_id, metric, window_end_ms, value, _f(baseline), _f(lower), _f(upper), float(score),
                bool(is_anomaly), count, editor))))
        return stored, results


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
