"""What the connectors' operators use of Flink's runtime context, in memory.

Some tests drive an operator's own code (`open`, then its element calls) against the embedded
endpoint without a Flink job: a job would cost a mini-cluster start, and the test could not
choose what each call sees. Only the runtime context is stood in for, by these classes.
"""
from __future__ import annotations


class Metric:
    """A counter (`inc`, counted in `count`) or a distribution (`update`, kept in `values`)."""

    def __init__(self):
        self.count, self.values = 0, []

    def inc(self, n=1):
        self.count += n

    def update(self, value):
        self.values.append(value)


class MetricGroup:
    """Every group is this one; its metrics by name in `metrics`."""

    def __init__(self):
        self.metrics: dict[str, Metric] = {}

    def add_group(self, _name):
        return self

    def counter(self, name):
        return self.metrics.setdefault(name, Metric())

    distribution = counter


class OneKeyState:
    """Keyed state of a single key: a ValueState (`value`, `update`, `clear`) and a ListState (`get`, `add`)."""

    def __init__(self):
        self.data = None

    def value(self):
        return self.data

    def update(self, value):
        self.data = value

    def get(self):
        return list(self.data or [])

    def add(self, value):
        self.data = (self.data or []) + [value]

    def clear(self):
        self.data = None


class RuntimeContext:
    """Subtask 0: its metrics in `metrics`, one `OneKeyState` per state descriptor name in `states`."""

    def __init__(self):
        self.metrics = MetricGroup()
        self.states: dict[str, OneKeyState] = {}

    def get_metrics_group(self):
        return self.metrics

    def get_state(self, descriptor):
        return self.states.setdefault(descriptor.name, OneKeyState())

    get_list_state = get_state

    def get_index_of_this_subtask(self):
        return 0


class KeyedStore:
    """Keyed state of many keys, for operators keyed by something: ``data[(state name, key)]``, and
    ``key``, the current key (set by the driver before each call, as Flink does)."""

    def __init__(self):
        self.data: dict = {}
        self.key = None


class KeyedMapState:
    """A MapState of the store's current key."""

    def __init__(self, store: KeyedStore, name: str):
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

    def items(self):
        return list(self._m().items())

    def is_empty(self):
        return not self._m()

    def clear(self):
        self.store.data.pop((self.name, self.store.key), None)


class KeyedValueState:
    """A ValueState of the store's current key."""

    def __init__(self, store: KeyedStore, name: str):
        self.store, self.name = store, name

    def value(self):
        return self.store.data.get((self.name, self.store.key))

    def update(self, v):
        self.store.data[(self.name, self.store.key)] = v

    def clear(self):
        self.store.data.pop((self.name, self.store.key), None)


class KeyedRuntimeContext:
    """A keyed operator's runtime context over a `KeyedStore`; its metrics in `metrics`."""

    def __init__(self, store: KeyedStore):
        self.store = store
        self.metrics = MetricGroup()

    def get_map_state(self, descriptor):
        return KeyedMapState(self.store, descriptor.name)

    def get_state(self, descriptor):
        return KeyedValueState(self.store, descriptor.name)

    def get_metrics_group(self):
        return self.metrics


class EventTimeTimers:
    """A timer service that keeps (key, time) pairs, as Flink does (one timer per pair); `calls`
    counts the registrations. It starts empty, as after a restore that lost the timers."""

    def __init__(self, store: KeyedStore):
        self.store = store
        self.registered: set = set()
        self.calls = 0
        self.watermark = -2 ** 63           # Flink's watermark before the first one (Long.MIN_VALUE)

    def current_watermark(self):
        return self.watermark

    def register_event_time_timer(self, t):
        self.calls += 1
        self.registered.add((self.store.key, t))


class KeyedContext:
    """The context of an element or a timer call: the row's timestamp, the timers, the current key."""

    def __init__(self, timers: EventTimeTimers):
        self.timers = timers
        self.rowtime = None

    def timestamp(self):
        return self.rowtime

    def timer_service(self):
        return self.timers

    def get_current_key(self):
        return self.timers.store.key


def fire_timers(timers: EventTimeTimers, watermark: int, on_timer, ctx: KeyedContext) -> list[tuple]:
    """Fire every timer at or before ``watermark`` through ``on_timer(t, ctx)``, in time order, as the
    watermark passing them does, including those registered meanwhile. Returns (key, time, what it
    emitted) for each timer fired."""
    fired = []
    timers.watermark = max(timers.watermark, watermark)
    while True:
        if len(fired) > 100_000:
            raise AssertionError("timers keep registering timers that are due at once: the watermark never settles")
        due = sorted((kt for kt in timers.registered if kt[1] <= watermark), key=lambda kt: (kt[1], str(kt[0])))
        if not due:
            return fired
        key, t = due[0]
        timers.registered.discard((key, t))
        timers.store.key = key
        # list(None) fails, as Flink's process mode fails on an on_timer that returns nothing
        fired.append((key, t, list(on_timer(t, ctx))))
