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

A series' state is the tuple
  * a snapshot of the detectors/ online model (``detectors.make(name)``) as its
    versioned bytes (``to_bytes`` / ``detectors.from_bytes``), None before the first one,
  * the journal: the (window end ms, window mean) pairs the model learned since that
    snapshot, oldest first,
  * its trailing baseline: the last N window averages (udfs/baseline.py), and
  * the end of the last window it learned (ms),
and the operators keep one value per editor (or per partner and editor) holding
that tuple for each of its metrics: one state read and one write per row.

Idle series (``processing.state.idle.retention.s``): publishers come and go, and a
series that stops would otherwise stay in the job's state for ever. A series whose
next window ends more than the retention after its last one starts again from
nothing (a model that last learned weeks ago is no baseline for today), and the
operators drop the series of a key once the watermark has passed its last window
plus the retention (:func:`prune_idle`, udfs/correlator.py), so such a key never
comes back. flink_jobs/evaluation/offline.py applies the same rule.

Re-fired windows: a group's windows reach it in window order, so a window ending at or
before one the group has scored is a window the job had closed, fired again. That
happens after a restore: watermarks are not checkpointed, so until the first one, records
that were late before the restore are not late, and re-open a window whose result the
state already holds. Its partial value is neither scored nor learned (it would be judged
as a new window and could raise a composite for a window decided long ago); the
operators count it (``windowsRefired``) and log the first.

Why a journal: serialising the model was a quarter of the Python time (~34 us of
~97 per series and window; flink_jobs/bench/README.md, "The 0.7x target"). The models are deterministic
(a model restored from its bytes is bit-identical, detectors/serialization.py), so
the snapshot plus the journal replayed through ``update`` IS the current model. A
new snapshot is taken every ``snapshot_windows`` windows, which bounds the journal
and a replay. The live models are also kept in a per-worker LRU cache; the state
stays the truth (a cached model is used only when the state holds exactly the
snapshot and journal it was cached with), so restores are unaffected: a model
missing from the cache (after a restore, or evicted) is rebuilt from the snapshot
and the journal. Each window is scored by the model (strictly causal: scored, then
learned) and compared with the trailing baseline (udfs/baseline.score_window, the
same sequence flink_jobs/evaluation/offline.py replays), and an editor's metrics are then
judged in its incident frame (udfs/baseline.judge_in_frame: through an incident, against
the baselines of its first window).
"""
from __future__ import annotations

import math
from typing import Iterator

import detectors
from detectors.classifier import METRICS
from udfs.baseline import frame_reference, judge_in_frame, learn_model, score_window, with_reference
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
    ...                         baseline_threshold=0.25, snapshot_windows=2)
    >>> stored, results = scoring.score_windows(None, ("editor", "e-1", None), "e-1", None,
    ...                                         1793520300000, [("rpm", 2.5, 4)])
    >>> sorted(stored), results[0]["metric"], results[0]["is_anomaly"], results[0]["sample_count"]
    (['rpm'], 'rpm', False, 4)
    >>> snapshot, journal, history, last_end = stored["rpm"]   # no snapshot yet: the journal holds the window
    >>> snapshot, journal, last_end
    (None, ((1793520300000, 2.5),), 1793520300000)
    >>> stored, _ = scoring.score_windows(stored, ("editor", "e-1", None), "e-1", None,
    ...                                   1793520600000, [("rpm", 2.4, 4)])
    >>> snapshot, journal, history, last_end = stored["rpm"]   # the second window takes a snapshot
    >>> len(snapshot) > 0, journal
    (True, ())

    A window of the group ending at or before one it has scored is not scored again (module
    docstring, "Re-fired windows"); it is counted in ``refired``:

    >>> again, results = scoring.score_windows(stored, ("editor", "e-1", None), "e-1", None,
    ...                                        1793520300000, [("rpm", 9.0, 1)])
    >>> again == stored, results, scoring.refired
    (True, [], 1)
    """

    #: Live models kept per instance (processing.model.cache.size). Measured on 2026-12-07 (the shipped
    #: ensemble, 5,000 series): about 10 KB of Python heap each, with the ~4 KB snapshot the entry keeps,
    #: so 20,000 are about 280 MB for each instance of the editor and partner operators (in thread mode,
    #: all in the TaskManager's process).
    CACHE_SIZE = 20000

    def __init__(self, detector_name: str, detector_params: dict, baseline_windows: int,
                 baseline_min_windows: int, baseline_threshold: float, snapshot_windows: int = 12,
                 idle_retention_ms: int = 0, cache_size: int = CACHE_SIZE):
        if snapshot_windows < 1:
            raise ValueError("snapshot_windows must be >= 1")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0 (0: every model rebuilt from the state)")
        self.cache_size = cache_size
        if idle_retention_ms < 0:
            raise ValueError("idle_retention_ms must be >= 0 (0: series are kept for ever)")
        self.detector_name = detector_name
        self.detector_params = dict(detector_params)
        self.baseline_windows = baseline_windows
        self.baseline_min_windows = baseline_min_windows
        self.baseline_threshold = baseline_threshold
        self.snapshot_windows = snapshot_windows
        self.idle_retention_ms = idle_retention_ms
        self.refired = 0        # windows not scored: the group had scored that window end or a later one

    def score_windows(self, stored: dict | None, series: tuple, scope_id: str, editor: str | None,
                      window_end_ms: int, windows) -> tuple[dict, list[dict]]:
        """(the new stored value, one result dict per metric, in metric-name order).

        ``stored`` maps metric -> (model snapshot, journal, history, last window end) for one series group
        (an editor, or a partner and editor), None for a new group; ``series`` names the group
        in the live-model cache; ``editor`` is the result's ``editors`` field (partner rows only).
        """
        cache = self.__dict__.setdefault("_cache", {})   # (series, metric) -> (snapshot, journal, model), LRU first
        if stored and scored_since(stored, window_end_ms):
            self.refired += 1          # a re-fired window (module docstring): its partial value is not learned
            return stored, []
        stored = dict(stored) if stored else {}
        in_frame = holds_frame(series[0])
        frame = incident_frame(stored, window_end_ms, self.idle_retention_ms) if in_frame else {}
        scored, counts = {}, {}
        for metric, value, count in sorted(windows):
            snapshot, journal, history, last_end = series_state(stored.get(metric))
            if is_idle(last_end, window_end_ms, self.idle_retention_ms):
                snapshot, journal, history = None, (), None      # idle too long: it starts again
            key = (series, metric)
            cached = cache.pop(key, None)
            if cached is not None and cached[0] == snapshot and cached[1] == journal:
                model = cached[2]          # keyed state is the truth; the cache only skips the rebuild
            else:
                model = self._rebuild(snapshot, journal)
            scored[metric], history = score_window(
                model, history, window_end_ms, value, rel_threshold=self.baseline_threshold,
                min_windows=self.baseline_min_windows, keep=self.baseline_windows)
            counts[metric] = (value, count)
            journal += ((window_end_ms, value),)
            if len(journal) >= self.snapshot_windows:
                snapshot, journal = model.to_bytes(), ()
            stored[metric] = (snapshot, journal, history, window_end_ms)
            if self.cache_size:
                if len(cache) >= self.cache_size:
                    cache.pop(next(iter(cache)))
                cache[key] = (snapshot, journal, model)
        for metric, entry in stored.items():
            if len(entry) < 4:
                # Written before the last window end was kept: taken as last seen now, so that the
                # next window's rule and the operators' idle checks agree on when it falls idle.
                stored[metric] = (*series_state(entry)[:3], window_end_ms)
        if in_frame:
            judged, frame = judge_in_frame(scored, frame)
            for metric, entry in stored.items():     # the metrics not in this window keep the frame too
                snapshot, journal, history, last_end = series_state(entry)
                if history is not None and frame_reference(history) != frame.get(metric):
                    stored[metric] = (snapshot, journal, with_reference(history, frame.get(metric)),
                                      last_end)
        else:
            judged = {metric: s.result for metric, s in scored.items()}
        results = [metric_result(scope_id, metric, window_end_ms, counts[metric][0], result, counts[metric][1], editor)
                   for metric, result in judged.items()]
        return stored, results

    def forget(self, series: tuple, metrics) -> None:
        """Drop the live models of ``series``' ``metrics`` from the cache (their state has expired)."""
        cache = self.__dict__.get("_cache", {})
        for metric in metrics:
            cache.pop((series, metric), None)

    def _rebuild(self, snapshot: bytes | None, journal: tuple):
        """The live model: the snapshot (a new model before the first one) with the journal learned again."""
        model = detectors.from_bytes(snapshot) if snapshot else detectors.make(self.detector_name,
                                                                               **self.detector_params)
        for window_end_ms, value in journal:
            learn_model(model, window_end_ms, value)
        return model


def holds_frame(kind: str) -> bool:
    """Whether a series group of this kind ("editor", or "partner": a partner's editor) holds an
    incident frame (udfs.baseline.judge_in_frame). An editor's does; a partner's editors' do not:
    the partner check holds the references of the editors it finds hurt itself, and judges their
    recovery by them (detectors/partner_health.py).

    >>> holds_frame("editor"), holds_frame("partner")
    (True, False)
    """
    return kind == "editor"


def incident_frame(stored: dict | None, window_end_ms: int | None = None, retention_ms: int = 0) -> dict[str, tuple]:
    """The editor's open incident frame (metric -> held (baseline, lower, upper, moved)) its series' histories
    hold, for the window ending ``window_end_ms``; empty when none is open. A series idle too long by then
    (:func:`is_idle`) is left out, as the operators' idle checks drop it (:func:`prune_idle`), whether or
    not their timer has fired yet, so that the offline replay, which has no timers, holds the same frame.

    >>> stored = {"rpm": (None, (), ((10.0,), 1, (10.0, 9.0, 11.0, True)), 600), "fill_rate": (None, (), ((0.8,), 0), 600)}
    >>> incident_frame(stored), incident_frame(stored, 600 + 3001, retention_ms=3000)
    ({'rpm': (10.0, 9.0, 11.0, True)}, {})
    """
    frame = {}
    for metric, entry in (stored or {}).items():
        _, _, history, last_end = series_state(entry)
        reference = frame_reference(history)
        if reference is not None and not (window_end_ms is not None and is_idle(last_end, window_end_ms, retention_ms)):
            frame[metric] = reference
    return frame


def scored_since(stored: dict | None, window_end_ms: int) -> bool:
    """Whether a series of the group has learned a window ending at or after ``window_end_ms`` (a
    plain loop: it runs for every window row; entries older than the last window end have none)."""
    for entry in (stored or {}).values():
        if len(entry) > 3 and entry[3] >= window_end_ms:
            return True
    return False


def last_window_end(stored: dict | None) -> int | None:
    """The end of the last window a series group (an editor, or a partner's editor) learned; None if
    none of its entries says (a new group, or entries written before the last end was kept).

    >>> last_window_end({"rpm": (None, (), None, 600), "fill_rate": (None, (), None, 900)}), last_window_end(None)
    (900, None)
    """
    last = None
    for entry in (stored or {}).values():       # a plain loop: it runs for every partner row's editors
        if len(entry) > 3 and (last is None or entry[3] > last):
            last = entry[3]
    return last


def series_state(entry: tuple | None) -> tuple[bytes | None, tuple, tuple | str | None, int | None]:
    """(snapshot, journal, history, last window end) of one metric's stored entry; None for a new series.

    Entries written before the journal existed (2026-12-05) are (model bytes, history): a snapshot
    with an empty journal. Entries written before idle series expired (2026-12-06) have no last
    window end: None. :meth:`WindowScoring.score_windows` gives them the end of the first window
    of their group it scores.

    >>> series_state(None)
    (None, (), None, None)
    >>> series_state((b"AD...", '{"v": [2.5], "held": 0}'))
    (b'AD...', (), '{"v": [2.5], "held": 0}', None)
    >>> series_state((b"AD...", (), ((2.5,), 0), 1793520300000))[3]
    1793520300000
    """
    if entry is None:
        return None, (), None, None
    if len(entry) == 2:
        return entry[0], (), entry[1], None
    if len(entry) == 3:
        return (*entry, None)
    return entry


def is_idle(last_end_ms: int | None, window_end_ms: int, retention_ms: int) -> bool:
    """Whether a series that last learned the window ending ``last_end_ms`` has been idle too long by
    ``window_end_ms``: more than the retention between the two window ends (0: never).

    >>> day = 86_400_000
    >>> is_idle(0, 7 * day, 7 * day), is_idle(0, 7 * day + 300_000, 7 * day), is_idle(0, 10 ** 15, 0)
    (False, True, False)
    """
    return bool(retention_ms) and last_end_ms is not None and window_end_ms - last_end_ms > retention_ms


def prune_idle(stored: dict | None, watermark_ms: int, retention_ms: int) -> tuple[dict, list[str], int | None]:
    """(the series kept, the metrics dropped, when the next of those kept falls idle) of one series
    group's stored value at a watermark; the caller writes the kept value back when it differs.

    A series is dropped once the watermark is at or past its last window end plus the retention:
    any later window of it would start again anyway (:func:`is_idle`). An entry without a last
    window end (written by older code, and no window of its group scored since a restore) is kept,
    stamped with the watermark: from then on the next window's rule and these checks agree on it,
    as :meth:`WindowScoring.score_windows` makes them agree when it stamps such entries.

    >>> kept, dropped, due = prune_idle({"rpm": (None, (), None, 1000), "fill_rate": (None, (), None, 5000)},
    ...                                 watermark_ms=4000, retention_ms=3000)
    >>> sorted(kept), dropped, due
    (['fill_rate'], ['rpm'], 8000)
    >>> prune_idle({"rpm": (None, (), None, 1000)}, 9000, 3000)
    ({}, ['rpm'], None)
    >>> prune_idle({"rpm": (b"model", (), None)}, 9000, 3000)      # older code's entry
    ({'rpm': (b'model', (), None, 9000)}, [], 12000)
    """
    kept, dropped = {}, []
    for metric, entry in (stored or {}).items():
        snapshot, journal, history, last_end = series_state(entry)
        if last_end is None:
            kept[metric] = (snapshot, journal, history, watermark_ms)
        elif last_end + retention_ms <= watermark_ms:
            dropped.append(metric)
        else:
            kept[metric] = entry
    due = min((series_state(e)[3] for e in kept.values()), default=None)
    return kept, dropped, None if due is None else due + retention_ms


def metric_result(scope_id: str, metric: str, window_end_ms: int, value: float, result: tuple, count: int,
                  editor: str | None) -> dict:
    """One metric's result dict (udfs.decisions.RESULT_KEYS) from a (baseline, lower, upper, score,
    is_anomaly) result; the operators and flink_jobs/evaluation/offline.py build them alike.

    >>> metric_result("e-1", "rpm", 600, 2.5, (2.4, float("nan"), 2.9, 0.1, False), 3, None)["lower"] is None
    True
    """
    baseline, lower, upper, score, is_anomaly = result
    return dict(zip(RESULT_KEYS, (scope_id, metric, window_end_ms, value, _f(baseline), _f(lower), _f(upper),
                                  float(score), bool(is_anomaly), count, editor)))


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
