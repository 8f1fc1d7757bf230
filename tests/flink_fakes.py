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
