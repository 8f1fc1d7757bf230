"""The editor correlator's window timers after a checkpoint restore, and its windows decided at once
(udfs/correlator.EditorCorrelator).

PyFlink 2.2 registers a Python timer in Java through a separate mailbox action that a
checkpoint does not wait for, so a checkpoint can hold an armed window (its results and
its `armed_windows` entry) without the window's event-time timer. Restored from it, the
window was never classified. These tests drive EditorCorrelator, with the job's real
scoring, over in-memory keyed state and a timer service that starts empty, which is
exactly such a restored checkpoint; no Flink job needed.
"""
from __future__ import annotations

from detectors.classifier import METRICS
from udfs.correlator import EditorCorrelator
from udfs.metric_detector import WindowScoring

WINDOW_S, GRACE_MS, LOOKBACK_S = 300, 1, 1800
# The job's default scoring (ensemble model, trailing baseline) judges a window anomalous once
# WARM_UP windows have been learned (measured: not after 8, yes after 12).
WARM_UP = 12
END_0, END_1, END_2, END_3 = (1_793_527_200_000 + (WARM_UP - 1 + i) * WINDOW_S * 1000 for i in range(4))
NORMAL, DROPPED = 2.5, 0.5      # rpm: a window at a fifth of its usual level


class _KeyedStore:
    def __init__(self):
        self.data: dict = {}
        self.key = None


class _Map:
    def __init__(self, store: _KeyedStore, name: str):
        self.store, self.name = store, name

    def _m(self) -> dict:
        return self.store.data.setdefault((self.name, self.store.key), {})

    def contains(self, k):
        return k in self._m()

    def put(self, k, v):
        self._m()[k] = v

    def get(self, k):
        return self._m().get(k)

    def remove(self, k):
        self._m().pop(k, None)

    def keys(self):
        return list(self._m())


class _Value:
    def __init__(self, store: _KeyedStore, name: str):
        self.store, self.name = store, name

    def value(self):
        return self.store.data.get((self.name, self.store.key))

    def update(self, v):
        self.store.data[(self.name, self.store.key)] = v

    def clear(self):
        self.store.data.pop((self.name, self.store.key), None)


class _Counter:
    def inc(self, n=1):
        pass


class _Metrics:
    def counter(self, name):
        return _Counter()


class _RuntimeContext:
    def __init__(self, store):
        self.store = store

    def get_map_state(self, descriptor):
        return _Map(self.store, descriptor.name)

    def get_state(self, descriptor):
        return _Value(self.store, descriptor.name)

    def get_metrics_group(self):
        return _Metrics()


class _Timers:
    def __init__(self, store):
        self.store = store
        self.registered: set = set()
        self.calls = 0

    def register_event_time_timer(self, t):
        self.calls += 1
        self.registered.add((self.store.key, t))


class _Ctx:
    def __init__(self, timers):
        self.timers = timers
        self.rowtime = None

    def timestamp(self):
        return self.rowtime

    def timer_service(self):
        return self.timers

    def get_current_key(self):
        return self.timers.store.key


class _Operator:
    """One EditorCorrelator instance (one process lifetime) over keyed state that survives it."""

    def __init__(self, store: _KeyedStore):
        self.store = store
        self.timers = _Timers(store)  # a new lifetime starts with no timer registered
        scoring = WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6, baseline_threshold=0.25)
        self.fn = EditorCorrelator(WINDOW_S, GRACE_MS, LOOKBACK_S, scoring)
        self.fn.open(_RuntimeContext(store))
        self.ctx = _Ctx(self.timers)
        self.fired: list[int] = []

    def window(self, editor, end_ms, rpm):
        """One window row of sql/windows/editor_windows.sql with rpm only."""
        self.store.key = editor
        metrics = [None, 0] * len(METRICS)
        metrics[2 * METRICS.index("rpm"):2 * METRICS.index("rpm") + 2] = [rpm, 5]
        self.ctx.rowtime = end_ms - 1        # the row's rowtime is window_time = window end - 1 ms
        self.fn.process_element1((editor, *metrics, end_ms - 1), self.ctx)

    def watermark(self, wm):
        for key, t in sorted(self.timers.registered, key=lambda kt: kt[1]):
            if t <= wm:
                self.timers.registered.discard((key, t))
                self.store.key = key
                list(self.fn.on_timer(t, self.ctx))
                self.fired.append(t)

    def warm_up(self, editor):
        """WARM_UP normal windows ending at END_0, each decided at once."""
        for i in range(WARM_UP):
            self.window(editor, END_0 - (WARM_UP - 1 - i) * WINDOW_S * 1000, NORMAL * (1 + 0.02 * (-1) ** i))

    def state(self, name, key):
        return self.store.data.get((name, key))


def test_a_window_armed_in_a_checkpoint_without_its_timer_is_classified_after_the_restore():
    store = _KeyedStore()
    before = _Operator(store)
    before.warm_up("e-1")
    before.window("e-1", END_1, DROPPED)        # anomalous: waits for its timer
    assert ("e-1", END_1 - 1 + GRACE_MS) in before.timers.registered
    # Checkpoint taken here, restored without the timer: a new lifetime, same state.
    after = _Operator(store)
    assert after.timers.registered == set()
    after.window("e-1", END_2, NORMAL)
    assert ("e-1", END_1 - 1 + GRACE_MS) in after.timers.registered, "the restored window's timer is re-armed"
    after.watermark(END_2 - 1_000)
    # Window 1 was taken and classified (its results left the state); window 2, normal but behind
    # window 1, waits for its own timer.
    assert END_1 - 1 + GRACE_MS in after.fired
    assert list(after.state("armed_windows", "e-1")) == [END_2]
    assert list(after.state("pending_windows", "e-1")) == [END_2]


def test_timers_are_re_registered_once_per_key_and_lifetime_not_per_row():
    store = _KeyedStore()
    op = _Operator(store)
    for editor in ("e-1", "e-2"):
        op.warm_up(editor)
        op.window(editor, END_1, DROPPED)
    # One registration per anomalous (key, window); the normal windows before registered none.
    assert op.timers.calls == 2
    again = _Operator(store)
    again.window("e-1", END_2, NORMAL)
    again.window("e-1", END_3, NORMAL)
    # e-1's first row re-arms END_1 and arms END_2 (it waits behind END_1); the next arms only END_3.
    assert again.timers.calls == 3


def test_a_normal_window_with_nothing_pending_is_decided_at_once():
    store = _KeyedStore()
    op = _Operator(store)
    store.data[("unexplained_window_end", "e-1")] = END_0 - WARM_UP * WINDOW_S * 1000   # an UNKNOWN window
    op.warm_up("e-1")
    op.window("e-1", END_1, NORMAL * 1.05)
    # No timer, nothing pending, and the unexplained mark cleared as the timer path clears it
    # for a window without anomalies (udfs.decisions.editor_window_composite -> (None, None)).
    assert op.timers.calls == 0
    assert not op.state("pending_windows", "e-1") and not op.state("armed_windows", "e-1")
    assert op.state("unexplained_window_end", "e-1") is None
    assert set(op.state("models", "e-1")) == {"rpm"}
