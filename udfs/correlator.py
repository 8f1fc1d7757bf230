"""(ii) Per editor and (iii) per demand partner: score a window's metrics, align them, decide.

``EditorCorrelator`` is keyed by editor_id, with two inputs (a KeyedCoProcessFunction):
  1. the editor's window rows of sql/windows/editor_windows.sql, one per window with
     every metric side by side: each metric is scored at once against its own model
     and trailing baseline (udfs/metric_detector.WindowScoring, state ``models``);
  2. the editor's operational events (config changes, deployments, flags,
     partner status, security findings), kept in state for ``lookback`` seconds.
A window's results wait for an event-time timer at the window's end (+ grace):
the window row reaches this operator before the watermark that closes the window
(the window operator emits the windows, then forwards the watermark), and the
timer fires only when the events input's watermark has passed the window end
too, so the events that belong to the window are there.
udfs.decisions.editor_window_composite classifies (detectors.classifier) and,
when any metric is anomalous and the classifier calls it an incident, ONE
composite anomaly (detectors.incident) is emitted for the editor and window.
The decisions are pure functions so flink_jobs/evaluation/offline.py replays
exactly them. This replaces the seed's three-way equality join on timestamps.

``PartnerHealth`` is keyed by partner: one row per (partner, editor) and window
from sql/windows/partner_windows.sql, scored against that editor's own series
through the partner (state ``models``, one entry per editor), and the partner is
judged when its window's timer fires.

Scoring and deciding share one operator because every Python operator a row
passes through costs a JVM -> Python -> JVM crossing, more than the scoring.
"""
from __future__ import annotations

import json
from dataclasses import replace

from pyflink.common import Types
from pyflink.datastream import KeyedCoProcessFunction, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from detectors.classifier import ClassifierConfig
from udfs.decisions import details_of, editor_window_composite, partner_window_check
from udfs.metric_detector import WindowScoring, metric_windows
from connectors.eventbridge.flink_sink import EVENTBRIDGE_INPUT_TYPE as OUTPUT_TYPE, eventbridge_row

# Output rows are the EventBridge sink's input (connectors.eventbridge.flink_sink):
# Row(source, detail_type, detail JSON, emitted_at_ms); emitted_at_ms is the
# processing time at which the watermark passed the window end (timer fired).
COMPOSITE = ("adops.analytics", "Composite Anomaly Detected")
PARTNER_HEALTH = ("adops.monitoring", "Partner Health Check")
SECURITY = ("adops.security", "Security Incident Detected")

EVENT_FIELDS = ["event_type", "timestamp_ms", "editor_id", "partner", "severity", "details", "payload"]
EVENT_TYPE = Types.ROW_NAMED(
    EVENT_FIELDS,
    [Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.STRING(), Types.STRING()],
)


class _WindowCollector:
    """Shared state handling: a window's scored results, an event-time timer per window.

    Each scored row is its own map entry (``<window end>|<editor>`` -> its results as a
    JSON list; the editor part is empty for the editor operator, which gets one row per
    window), so adding one costs O(1): a partner's window holds a row per editor using
    it, and keeping a window's results as one list re-read and re-wrote the whole list
    on every row, O(n^2) per window (measured 13.9 ms per result at 1,700 results).
    ``armed`` remembers which window ends have a timer, so a window registers exactly
    one (registering from Python on every result is what PyFlink 2.2 failed on in an
    earlier attempt; see connectors/flink_buffer.py). Results are read back only when
    the window's timer fires.

    Restores: PyFlink 2.2 registers a Python timer in Java through a separate mailbox
    action that a checkpoint does not wait for (connectors/flink_buffer.py), so a
    checkpoint can hold an ``armed`` window whose timer it lacks; restored from it, that
    window would never be classified. So the first row a key receives after ``open()``
    registers the timer of every window it has armed again (registering an existing
    (key, time) timer is a no-op; one overdue fires at the next watermark): once per key
    and process lifetime, not per row.
    """

    # Counter increments are Java calls; they are passed on in batches (and at close), so the
    # metrics lag by at most this many windows.
    COUNTER_BATCH = 64

    def _open_windows(self, runtime_context: RuntimeContext):
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("pending_results", Types.STRING(), Types.STRING()))
        self.armed = runtime_context.get_map_state(
            MapStateDescriptor("armed_windows", Types.LONG(), Types.BOOLEAN()))
        # Keys that have received a row since this instance was opened (in memory, so
        # empty after every restore): their armed windows' timers are known to exist.
        self._keys_since_open: set = set()
        # (key, window end) pairs this instance has seen armed in state: every later row of
        # the window skips the state lookup (each is a call into the JVM). Empty after a
        # restore, like the set above, so the state stays the truth.
        self._armed_seen: set = set()
        group = runtime_context.get_metrics_group()
        self.windows_scored = group.counter("windowsScored")
        self.anomalies = group.counter("metricAnomalies")
        self._scored_pending = self._anomalies_pending = 0

    def _count(self, results: list[dict]) -> None:
        self._scored_pending += len(results)
        self._anomalies_pending += sum(1 for r in results if r["is_anomaly"])
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

    def _add_results(self, key: str, end: int, editor: str | None, results: list[dict], ctx):
        if not results:
            return
        self._count(results)
        if key not in self._keys_since_open:
            self._keys_since_open.add(key)
            for armed_end in list(self.armed.keys()):
                ctx.timer_service().register_event_time_timer(int(armed_end) - 1 + self.grace_ms)
        if (key, end) not in self._armed_seen:
            if not self.armed.contains(end):
                self.armed.put(end, True)
                ctx.timer_service().register_event_time_timer(end - 1 + self.grace_ms)
            self._armed_seen.add((key, end))
        self.pending.put(f"{end}|{editor or ''}", json.dumps(results))

    def _take(self, timestamp: int, key: str) -> tuple[int, list[dict]]:
        end = int(timestamp) + 1 - self.grace_ms
        self._armed_seen.discard((key, end))
        if not self.armed.contains(end):
            return end, []
        self.armed.remove(end)
        prefix = f"{end}|"
        keys = sorted(k for k in self.pending.keys() if k.startswith(prefix))
        results = []
        for k in keys:
            stored = json.loads(self.pending.get(k))
            # A list per scored row; one dict per metric in checkpoints from before the rows were pivoted.
            results.extend(stored if isinstance(stored, list) else [stored])
            self.pending.remove(k)
        return end, results


# The first ``m__avg`` column of each window row (sql/windows/*.sql): after editor_id, and
# after partner, editor_id.
EDITOR_ROW_METRICS_AT = 1
PARTNER_ROW_METRICS_AT = 2
# State of a series group (an editor, or a partner's editor): metric -> (model bytes, history JSON).
MODELS_TYPE = Types.PICKLED_BYTE_ARRAY()


class EditorCorrelator(KeyedCoProcessFunction, _WindowCollector):
    def __init__(self, window_size_s: int, grace_ms: int, lookback_s: int, scoring: WindowScoring):
        self.window_size_ms = window_size_s * 1000
        self.grace_ms = grace_ms
        self.lookback_ms = lookback_s * 1000
        self.scoring = scoring

    def open(self, runtime_context: RuntimeContext):
        self._open_windows(runtime_context)
        self.models = runtime_context.get_state(ValueStateDescriptor("models", MODELS_TYPE))
        self.events = runtime_context.get_state(ValueStateDescriptor("events", Types.STRING()))
        # End of the last window classified UNKNOWN (udfs.decisions.editor_window_composite).
        self.unexplained = runtime_context.get_state(ValueStateDescriptor("unexplained_window_end", Types.LONG()))
        self.config = replace(ClassifierConfig(), window_seconds=self.window_size_ms / 1000.0,
                              event_lookback_s=self.lookback_ms / 1000.0)
        group = runtime_context.get_metrics_group()
        self.windows_classified = group.counter("windowsClassified")
        self.composites = group.counter("compositeAnomalies")

    def process_element1(self, row, ctx):
        editor = row[0]
        end = int(ctx.timestamp()) + 1      # rowtime = window_time = window_end - 1 ms
        models, results = self.scoring.score_windows(self.models.value(), ("editor", editor), editor, None, end,
                                                     metric_windows(row, EDITOR_ROW_METRICS_AT))
        self.models.update(models)
        self._add_results(editor, end, None, results, ctx)

    def process_element2(self, row, ctx):
        stored = self.events.value()
        events = json.loads(stored) if stored else []
        events.append({"event_type": row[0], "timestamp_ms": int(row[1]), "editor_id": row[2], "partner": row[3],
                       "severity": row[4], "details": details_of(row[5])})
        # Keep what can still be a suspected cause: lookback before the newest watermark-ish time.
        horizon = max(e["timestamp_ms"] for e in events) - self.lookback_ms - self.window_size_ms
        events = [e for e in events if e["timestamp_ms"] >= horizon][-200:]
        self.events.update(json.dumps(events))

    def on_timer(self, timestamp: int, ctx):
        end, results = self._take(timestamp, ctx.get_current_key())
        if not results:
            return
        self.windows_classified.inc()
        stored = self.events.value() if any(r["is_anomaly"] for r in results) else None
        previous = self.unexplained.value()
        detail, unexplained = editor_window_composite(end, self.window_size_ms, results,
                                                      json.loads(stored) if stored else [], self.config, previous)
        if unexplained != previous:
            # A LONG ValueState cannot hold None (PyFlink fails the job at the bundle's state
            # commit with "an integer is required"): no unexplained window is a cleared state.
            if unexplained is None:
                self.unexplained.clear()
            else:
                self.unexplained.update(unexplained)
        if detail is None:
            return
        self.composites.inc()
        yield eventbridge_row(COMPOSITE[0], COMPOSITE[1], detail)


class PartnerHealth(KeyedProcessFunction, _WindowCollector):
    """(iii) Per demand partner and window -> udfs.decisions.partner_window_check.

    Its rows are one per editor reporting through the partner (sql/windows/partner_windows.sql),
    each metric scored against that editor's own history. Emits a Partner Health Check when the partner is not HEALTHY,
    and once more when it recovers (so a consumer sees the all-clear); healthy
    steady state is silent (otherwise every partner would produce an event every window).
    """

    def __init__(self, window_size_s: int, grace_ms: int, scoring: WindowScoring):
        self.window_size_ms = window_size_s * 1000
        self.grace_ms = grace_ms
        self.scoring = scoring

    def open(self, runtime_context: RuntimeContext):
        self._open_windows(runtime_context)
        self.models = runtime_context.get_map_state(MapStateDescriptor("models", Types.STRING(), MODELS_TYPE))
        # partner_window_check's state: the last status, plus the hurt editors' held revenue references
        # (the descriptor keeps its name so that savepoints taken before the references restore).
        self.last_status = runtime_context.get_state(ValueStateDescriptor("last_status", Types.STRING()))
        self.checks = runtime_context.get_metrics_group().counter("partnerChecks")

    def process_element(self, row, ctx):
        partner, editor = row[0], row[1]
        end = int(ctx.timestamp()) + 1
        models, results = self.scoring.score_windows(self.models.get(editor), ("partner", partner, editor), partner,
                                                     editor, end, metric_windows(row, PARTNER_ROW_METRICS_AT))
        self.models.put(editor, models)
        self._add_results(partner, end, editor, results, ctx)

    def on_timer(self, timestamp: int, ctx):
        end, results = self._take(timestamp, ctx.get_current_key())
        detail, state = partner_window_check(end, self.window_size_ms, results, self.last_status.value())
        if results:
            self.last_status.update(state)
        if detail is None:
            return
        self.checks.inc()
        yield eventbridge_row(PARTNER_HEALTH[0], PARTNER_HEALTH[1], detail)
