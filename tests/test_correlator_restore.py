"""The correlators' window timers after a checkpoint restore (udfs/correlator._WindowCollector).

PyFlink 2.2 registers a Python timer in Java through a separate mailbox action that a
checkpoint does not wait for, so a checkpoint can hold an armed window (its results and
its `armed_windows` entry) without the window's event-time timer. Restored from it, the
window was never classified. These tests drive PartnerHealth with in-memory keyed state and
a timer service that starts empty, which is exactly such a restored checkpoint; no Flink
job needed.
"""
from __future__ import annotations

from detectors.classifier import METRICS
from udfs.correlator import PartnerHealth
from udfs.metric_detector import WindowScoring

WINDOW_S, GRACE_MS = 300, 1
END_1, END_2 = 1_793_527_500_000, 1_793_527_800_000


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
    """One PartnerHealth instance (one process lifetime) over keyed state that survives it."""

    def __init__(self, store: _KeyedStore):
        self.store = store
        self.timers = _Timers(store)  # a new lifetime starts with no timer registered
        self.fn = PartnerHealth(WINDOW_S, GRACE_MS, WindowScoring("ensemble", {}, 12, 6, 0.25))
        self.fn.open(_RuntimeContext(store))
        self.ctx = _Ctx(self.timers)
        self.fired: list[int] = []

    def result(self, partner, editor, end_ms, value=0.8):
        """One (partner, editor) window row of sql/windows/partner_windows.sql with bid_rate only."""
        self.store.key = partner
        metrics = [None, 0] * len(METRICS)
        metrics[2 * METRICS.index("bid_rate"):2 * METRICS.index("bid_rate") + 2] = [value, 5]
        self.ctx.rowtime = end_ms - 1        # the row's rowtime is window_time = window end - 1 ms
        self.fn.process_element((partner, editor, *metrics, end_ms - 1), self.ctx)

    def watermark(self, wm):
        for key, t in sorted(self.timers.registered, key=lambda kt: kt[1]):
            if t <= wm:
                self.timers.registered.discard((key, t))
                self.store.key = key
                list(self.fn.on_timer(t, self.ctx))
                self.fired.append(t)


def test_a_window_armed_in_a_checkpoint_without_its_timer_is_classified_after_the_restore():
    store = _KeyedStore()
    before = _Operator(store)
    before.result("p-1", "e-001", END_1)
    before.result("p-1", "e-002", END_1)
    assert ("p-1", END_1 - 1 + GRACE_MS) in before.timers.registered
    # Checkpoint taken here, restored without the timer: a new lifetime, same state.
    after = _Operator(store)
    assert after.timers.registered == set()
    after.result("p-1", "e-001", END_2)
    assert ("p-1", END_1 - 1 + GRACE_MS) in after.timers.registered, "the restored window's timer is re-armed"
    after.watermark(END_2 - 1_000)
    # Window 1 was taken and classified (its results left the state); window 2 is still open.
    assert END_1 - 1 + GRACE_MS in after.fired
    store.key = "p-1"
    assert after.fn.armed.keys() == [END_2]
    assert all(k.startswith(f"{END_2}|") for k in after.fn.pending.keys())


def test_timers_are_re_registered_once_per_key_and_lifetime_not_per_result():
    store = _KeyedStore()
    op = _Operator(store)
    for editor in ("e-001", "e-002", "e-003"):
        op.result("p-1", editor, END_1)
    op.result("p-2", "e-001", END_1)
    # One registration per (key, window): p-1 and p-2 each arm END_1 once, nothing was armed before.
    assert op.timers.calls == 2
    again = _Operator(store)
    for editor in ("e-001", "e-002"):
        again.result("p-1", editor, END_2)
    # p-1's first result re-arms END_1 and arms END_2; the second result registers nothing.
    assert again.timers.calls == 2
