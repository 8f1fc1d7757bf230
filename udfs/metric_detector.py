"""(i) Per (editor, metric) — and per (partner, metric) — window scoring, in keyed state.

Input: one row per key and window from sql/windows/*.sql (runs once per window,
never per record). Keyed state, one value per key (``scorer``): the pair
  * the detectors/ online model (``detectors.make(name)``) as its versioned
    bytes (``to_bytes`` / ``detectors.from_bytes``), and
  * the key's trailing baseline: the last N window averages (JSON).
One state rather than two because PyFlink pays per state and key: in process mode
a read that misses its cache and every write (flushed to the JVM at the end of each
bundle) is a round trip over the Beam state API, in thread mode (the local default)
each is a call into the JVM, and the scorer runs once per window of every key. Keys written by the earlier two-state layout (``model`` + ``history``)
are read from it once and moved. The live model is also kept in a per-worker
LRU cache; the state stays the truth (the cached model is used only when the
state holds exactly the bytes it was written with), so restores are unaffected.
Each window is scored by the model (strictly causal: scored, then learned) and
compared with the trailing baseline (udfs/baseline.py); the per-metric result is
emitted for the correlator (editors) or the partner-health check (partners).
"""
from __future__ import annotations

import math

from pyflink.common import Row, Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

import detectors
from udfs.baseline import score_window

WINDOW_ROW_FIELDS = ["scope_id", "metric", "avg_value", "min_value", "max_value", "sum_value",
                     "sample_count", "editors", "window_time"]

# Per-metric result: what the correlator / partner check needs to build MetricDeviation.
RESULT_FIELDS = ["scope_id", "metric", "window_end_ms", "value", "baseline", "lower", "upper",
                 "score", "is_anomaly", "sample_count", "editors"]
RESULT_TYPE = Types.ROW_NAMED(
    RESULT_FIELDS,
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(),
     Types.DOUBLE(), Types.DOUBLE(), Types.BOOLEAN(), Types.LONG(), Types.STRING()],
)

# Partner rows (``editors`` set) leave on this side output, editor rows on the main output:
# one split inside the operator instead of two Python filters after it, each of which would
# take every result row across the JVM/Python boundary again.
PARTNER_RESULTS = OutputTag("partner-results", RESULT_TYPE)


class WindowScorer(KeyedProcessFunction):
    """Keyed by ``scope_id|metric``; emits one RESULT_TYPE row per input window row: editor
    windows on the main output, partner windows on ``PARTNER_RESULTS``."""

    def __init__(self, detector_name: str, detector_params: dict, baseline_windows: int,
                 baseline_min_windows: int, baseline_threshold: float):
        self.detector_name = detector_name
        self.detector_params = dict(detector_params)
        self.baseline_windows = baseline_windows
        self.baseline_min_windows = baseline_min_windows
        self.baseline_threshold = baseline_threshold

    CACHE_SIZE = 20000
    # Counter increments are Java calls; they are passed on in batches (and at close), so the
    # metrics lag by at most this many windows.
    COUNTER_BATCH = 64

    def open(self, runtime_context: RuntimeContext):
        self._cache: dict = {}   # key -> (state bytes, live model): least recently used first
        self.state = runtime_context.get_state(ValueStateDescriptor("scorer", Types.PICKLED_BYTE_ARRAY()))
        self.legacy_model = runtime_context.get_state(ValueStateDescriptor("model", Types.PICKLED_BYTE_ARRAY()))
        self.legacy_history = runtime_context.get_state(ValueStateDescriptor("history", Types.STRING()))
        self.windows_scored = runtime_context.get_metrics_group().counter("windowsScored")
        self.anomalies = runtime_context.get_metrics_group().counter("metricAnomalies")
        self._scored_pending = self._anomalies_pending = 0

    def _count(self, is_anomaly: bool) -> None:
        self._scored_pending += 1
        self._anomalies_pending += is_anomaly
        if self._scored_pending >= self.COUNTER_BATCH:
            self._flush_counters()

    def _flush_counters(self) -> None:
        if self._scored_pending:
            self.windows_scored.inc(self._scored_pending)
        if self._anomalies_pending:
            self.anomalies.inc(self._anomalies_pending)
        self._scored_pending = self._anomalies_pending = 0

    def close(self):
        if hasattr(self, "_scored_pending"):
            self._flush_counters()

    def _stored(self) -> tuple[bytes | None, str | None]:
        stored = self.state.value()
        if stored is not None:
            return stored
        blob = self.legacy_model.value()
        if blob is None:
            return None, None
        history = self.legacy_history.value()
        self.legacy_model.clear()
        self.legacy_history.clear()
        return blob, history

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        blob, history = self._stored()
        # The cache key names the same series as the operator's key (flink_jobs/main.py key_by),
        # built from the row: asking the context for the key is a call into the JVM.
        key = (row.scope_kind, row.scope_id, row.metric, row.editors)
        cached = self._cache.pop(key, None)
        if blob and cached is not None and cached[0] == blob:
            model = cached[1]          # keyed state is the truth; the cache only skips from_bytes
        else:
            model = detectors.from_bytes(blob) if blob else detectors.make(self.detector_name, **self.detector_params)
        window_end_ms = int(ctx.timestamp()) + 1      # rowtime = window_time = window_end - 1 ms
        value = float(row.avg_value)
        # udfs.baseline.score_window: the same sequence the offline replay runs (flink_jobs/evaluation/offline.py)
        (baseline, lower, upper, score, is_anomaly), history = score_window(
            model, history, window_end_ms, value, rel_threshold=self.baseline_threshold,
            min_windows=self.baseline_min_windows, keep=self.baseline_windows)
        blob = model.to_bytes()
        self.state.update((blob, history))
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (blob, model)
        self._count(bool(is_anomaly))
        result = Row(row.scope_id, row.metric, window_end_ms, value, _f(baseline), _f(lower), _f(upper),
                     float(score), bool(is_anomaly), int(row.sample_count), row.editors)
        if row.editors is None:
            yield result
        else:
            yield PARTNER_RESULTS, result


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
