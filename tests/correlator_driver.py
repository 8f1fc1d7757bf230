"""Drivers of the job's keyed Python operators (udfs/correlator.py, udfs/platform_events.py) without a Flink job.

Each driver is one operator instance, one process lifetime, over in-memory keyed state
(tests/flink_fakes.KeyedStore) that outlives it, as a checkpoint does, with the job's real
scoring. It feeds rows in the shapes sql/windows/editor_windows.sql and partner_windows.sql
give, and moves the watermark, which fires the due timers in time order.
"""
from __future__ import annotations

import json

from detectors.classifier import METRICS
from flink_fakes import EventTimeTimers, KeyedContext, KeyedRuntimeContext, KeyedStore, fire_timers
from udfs.correlator import EditorCorrelator, PartnerHealth
from udfs.decisions import ROUTED_PARTNER_EVENT, read_routed_payload
from udfs.metric_detector import WindowScoring
from udfs.platform_events import PLATFORM_KEY, PlatformEvents

WINDOW_S, GRACE_MS, LOOKBACK_S = 300, 1, 1800
WINDOW_MS = WINDOW_S * 1000


def scoring(idle_retention_ms: int = 0) -> WindowScoring:
    """The job's default scoring: the ensemble model and the trailing baseline."""
    return WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6, baseline_threshold=0.25,
                         idle_retention_ms=idle_retention_ms)


def metric_columns(metrics: dict[str, float], samples: int = 5) -> list:
    """The (m__avg, m__n) columns of every metric, in METRICS order, for the metrics given."""
    columns = [None, 0] * len(METRICS)
    for metric, value in metrics.items():
        i = 2 * METRICS.index(metric)
        columns[i:i + 2] = [value, samples]
    return columns


class _Driver:
    def __init__(self, store: KeyedStore, fn):
        self.store = store
        self.timers = EventTimeTimers(store)  # a new lifetime starts with no timer registered
        self.fn = fn
        self.runtime = KeyedRuntimeContext(store)
        self.fn.open(self.runtime)
        self.ctx = KeyedContext(self.timers)
        self.fired: list[int] = []
        self.emitted: list = []

    def _row(self, key, end_ms: int, call, row) -> None:
        self.store.key = key
        self.ctx.rowtime = end_ms - 1        # a window row's rowtime is window_time = window end - 1 ms
        self.emitted += list(call(row, self.ctx) or ())

    def watermark(self, wm: int) -> None:
        for _, t, out in fire_timers(self.timers, wm, self.fn.on_timer, self.ctx):
            self.fired.append(t)
            self.emitted += out

    def state(self, name, key):
        return self.store.data.get((name, key))

    def keys_with_state(self) -> set:
        """The keys holding any state (an empty map counts as none)."""
        return {key for (_, key), value in self.store.data.items() if value not in (None, {}, [])}

    def counter(self, name: str) -> int:
        self.fn.close()        # counters are passed on in batches, and at close
        return self.runtime.metrics.counter(name).count


class EditorDriver(_Driver):
    """One EditorCorrelator."""

    def __init__(self, store: KeyedStore, idle_retention_ms: int = 0):
        super().__init__(store, EditorCorrelator(WINDOW_S, GRACE_MS, LOOKBACK_S, scoring(idle_retention_ms)))

    def window(self, editor: str, end_ms: int, rpm: float | None = None, **metrics: float) -> None:
        """One row of sql/windows/editor_windows.sql: rpm (and any other metric given) in the window."""
        if rpm is not None:
            metrics["rpm"] = rpm
        self._row(editor, end_ms, self.fn.process_element1, (editor, *metric_columns(metrics), end_ms - 1))

    def event(self, editor: str, timestamp_ms: int, event_type: str = "deployment") -> None:
        """One operational event of the editor (the events input, udfs.correlator.EVENT_FIELDS)."""
        self.store.key = editor
        self.emitted += list(self.fn.process_element2(
            (event_type, timestamp_ms, editor, None, None, json.dumps({"change": "test"}), None), self.ctx) or ())


    def events_input(self, row) -> None:
        """One row of the events input as it comes (an editor's event, a partner finding, a routed event)."""
        self.store.key = row[2]
        self.emitted += list(self.fn.process_element2(row, self.ctx) or ())


class PartnerDriver(_Driver):
    """One PartnerHealth."""

    def __init__(self, store: KeyedStore, idle_retention_ms: int = 0):
        super().__init__(store, PartnerHealth(WINDOW_S, scoring(idle_retention_ms), GRACE_MS, LOOKBACK_S))

    def window(self, partner: str, end_ms: int, editors: dict[str, dict[str, float]]) -> None:
        """One row of sql/windows/partner_windows.sql: each editor's metrics through the partner."""
        windows = [[editor, *metric_columns(metrics)] for editor, metrics in editors.items()]
        self._row(partner, end_ms, self.fn.process_element1, (partner, json.dumps(windows), end_ms - 1))

    def event(self, partner: str, timestamp_ms: int, status: str = "DEGRADED", event_type: str = "partner_status",
              details: dict | None = None) -> None:
        """One partner-wide event (the second input: no editor), a partner_status by default."""
        self.store.key = partner
        self.ctx.rowtime = timestamp_ms
        details = {"status": status} if details is None else details
        self.emitted += list(self.fn.process_element2(
            (event_type, timestamp_ms, None, partner, None, json.dumps(details), None), self.ctx) or ())

    def routed(self) -> list:
        """The partner-wide events it passed on, as rows of the editor operator's events input."""
        return [row for tag, row in (e for e in self.emitted if isinstance(e, tuple) and len(e) == 2)
                if read_routed_payload(row[6])[0] == ROUTED_PARTNER_EVENT]


class PlatformDriver(_Driver):
    """One PlatformEvents (one key). ``sent`` keeps each copy it passed on with the watermark it went out at."""

    def __init__(self, store: KeyedStore, idle_retention_ms: int = 0):
        super().__init__(store, PlatformEvents(WINDOW_S, GRACE_MS, LOOKBACK_S, idle_retention_ms))
        self.sent: list[tuple] = []

    def _note_sent(self) -> None:
        self.sent += [(row, self.timers.watermark) for row in self.emitted[len(self.sent):]]

    def window(self, editor: str, end_ms: int) -> None:
        """One editor's window row (the operator reads its editor and its end)."""
        self._row(PLATFORM_KEY, end_ms, self.fn.process_element1, (editor, *metric_columns({"rpm": 2.5}), end_ms - 1))
        self._note_sent()

    def event(self, timestamp_ms: int, event_type: str = "deployment") -> None:
        """One platform-wide event: no editor, no partner."""
        self.store.key = PLATFORM_KEY
        self.ctx.rowtime = timestamp_ms
        self.emitted += list(self.fn.process_element2(
            (event_type, timestamp_ms, None, None, None, json.dumps({"service": "ad-server"}), None), self.ctx) or ())
        self._note_sent()

    def routed(self) -> list[tuple]:
        """(editor, event time) of each copy passed on, in order."""
        return [(row[2], row[1]) for row in self.emitted]
