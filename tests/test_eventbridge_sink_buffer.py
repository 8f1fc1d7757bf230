"""The sinks' keyed flush buffer (connectors.flink_buffer) after a checkpoint restore.

PyFlink 2.2 registers a Python timer in Java through a separate mailbox action that a
checkpoint does not wait for, so a checkpoint can hold a buffer (and stats naming its
flush timer) without the timer. These tests drive BufferedBatchFunction with in-memory
state and a fake timer service — the restored checkpoint is simply state without a
registered timer — no Flink job needed.
"""
from __future__ import annotations

import threading
from typing import Any

from connectors.flink_buffer import BufferedBatchFunction


class _Value:
    def __init__(self, store: dict, key_fn, name: str):
        self.store, self.key_fn, self.name = store, key_fn, name

    def value(self):
        return self.store.get((self.name, self.key_fn()))

    def update(self, value):
        self.store[(self.name, self.key_fn())] = value

    def clear(self):
        self.store.pop((self.name, self.key_fn()), None)


class _List(_Value):
    def get(self):
        return list(self.store.get((self.name, self.key_fn()), []))

    def add(self, value):
        self.store.setdefault((self.name, self.key_fn()), []).append(value)


class _RuntimeContext:
    def __init__(self, store: dict, key_fn):
        self.store, self.key_fn = store, key_fn

    def get_list_state(self, descriptor):
        return _List(self.store, self.key_fn, descriptor.name)

    def get_state(self, descriptor):
        return _Value(self.store, self.key_fn, descriptor.name)


class _Timers:
    def __init__(self):
        self.now = 1_000_000
        self.registered: set[tuple[Any, int]] = set()  # processing-time timers
        self.event_registered: set[tuple[Any, int]] = set()  # event-time timers
        self.key = None

    def current_processing_time(self):
        return self.now

    def register_processing_time_timer(self, t):
        self.registered.add((self.key, t))

    def delete_processing_time_timer(self, t):
        self.registered.discard((self.key, t))

    def register_event_time_timer(self, t):
        self.event_registered.add((self.key, t))


class _Ctx:
    def __init__(self, timers: _Timers):
        self.timers = timers

    def timer_service(self):
        return self.timers

    def get_current_key(self):
        return self.timers.key


class _Collecting(BufferedBatchFunction):
    def __init__(self, **options):
        super().__init__(max_batch_entries=10, max_batch_bytes=1 << 20, flush_interval_ms=200, state_name="t",
                         **options)
        self.delivered: list[list[str]] = []

    def element_to_item(self, value):
        return str(value)

    def item_size(self, item):
        return len(item)

    def deliver(self, items):
        self.delivered.append(items)
        return iter(())


class _Operator:
    """One operator instance (one process lifetime) over a state store that survives it."""

    def __init__(self, store: dict, timers: _Timers):
        self.timers = timers
        self.fn = _Collecting()
        self.fn.open(_RuntimeContext(store, lambda: self.timers.key))
        self.ctx = _Ctx(timers)

    def element(self, key, value):
        self.timers.key = key
        list(self.fn.process_element(value, self.ctx))

    def fire_due_timers(self):
        for key, t in sorted(self.timers.registered, key=lambda kt: kt[1]):
            if t <= self.timers.now:
                self.timers.registered.discard((key, t))
                self.timers.key = key
                list(self.fn.on_timer(t, self.ctx))

    def end_of_input(self):
        """The final watermark (Long.MAX_VALUE) of a bounded input: every event-time timer fires;
        processing-time timers never fire again (Flink finishes the operator without them)."""
        for key, t in sorted(self.timers.event_registered, key=lambda kt: kt[1]):
            self.timers.event_registered.discard((key, t))
            self.timers.key = key
            list(self.fn.on_timer(t, self.ctx))
        self.timers.registered.clear()


def test_buffer_flushes_by_timer_while_running():
    timers = _Timers()
    op = _Operator({}, timers)
    op.element(1, "a")
    op.element(1, "b")
    assert op.fn.delivered == []
    timers.now += 200
    op.fire_due_timers()
    assert op.fn.delivered == [["a", "b"]]


def _checkpoint_without_the_timer():
    """State as a checkpoint taken before PyFlink's timer registration mail ran holds it."""
    store: dict = {}
    timers = _Timers()
    op = _Operator(store, timers)
    op.element(3, "restored-1")
    op.element(3, "restored-2")
    snapshot = {k: (list(v) if isinstance(v, list) else v) for k, v in store.items()}
    return snapshot


def test_restored_buffer_whose_timer_was_not_checkpointed_is_flushed_by_the_next_element():
    store = _checkpoint_without_the_timer()
    timers = _Timers()  # restored job: no timer registered (it was not in the checkpoint)
    timers.now += 5_000
    op = _Operator(store, timers)
    op.element(3, "after-restore")
    op.fire_due_timers()
    timers.now += 200
    op.fire_due_timers()
    delivered = [item for batch in op.fn.delivered for item in batch]
    # Before the fix: the stats still named the lost timer, no new timer was registered,
    # and all three waited for the bucket to fill up (10 entries) — for hours in a job.
    assert sorted(delivered) == ["after-restore", "restored-1", "restored-2"]
    assert store.get(("t-buffer", 3)) in (None, [])


def test_restored_buffer_is_rearmed_even_when_its_timer_is_not_yet_overdue():
    store = _checkpoint_without_the_timer()
    timers = _Timers()
    op = _Operator(store, timers)  # restored at once: the stored timer is not yet due
    op.element(3, "after-restore")
    assert op.fn.delivered == []
    assert timers.registered, "the stored flush timer must be registered again"
    timers.now += 200
    op.fire_due_timers()
    assert sorted(x for b in op.fn.delivered for x in b) == ["after-restore", "restored-1", "restored-2"]


def test_every_element_of_a_bucket_is_delivered_when_timers_get_lost_repeatedly():
    # A timer registration lost at every checkpoint/restore cycle: nothing may stay behind
    # once a later element of the same bucket arrives.
    store: dict = {}
    sent = []
    for cycle in range(3):  # fewer than 10 entries: a size flush must not rescue them
        timers = _Timers()
        timers.now += cycle * 10_000
        op = _Operator(store, timers)
        op.element(0, f"c{cycle}-a")
        op.element(0, f"c{cycle}-b")
        sent += [f"c{cycle}-a", f"c{cycle}-b"]
        delivered = [x for b in op.fn.delivered for x in b]
        store.setdefault("delivered", []).extend(delivered)
        # "kill -9": timers vanish, state (buffer + stats) stays
    timers = _Timers()
    timers.now += 100_000
    op = _Operator(store, timers)
    op.element(0, "last")
    timers.now += 200
    op.fire_due_timers()
    store["delivered"].extend(x for b in op.fn.delivered for x in b)
    assert sorted(store["delivered"]) == sorted(sent + ["last"])


def test_a_stale_timer_of_an_earlier_buffer_does_not_flush_a_newer_one_early():
    timers = _Timers()
    op = _Operator({}, timers)
    for i in range(10):  # fills the bucket: flushed by size, its timer deleted
        op.element(5, f"x{i}")
    assert len(op.fn.delivered) == 1
    first_timer = timers.now + 200
    timers.now += 100
    op.element(5, "y")
    timers.key = 5
    list(op.fn.on_timer(first_timer, op.ctx))  # a leftover firing of the first buffer's timer
    assert len(op.fn.delivered) == 1
    timers.now += 200
    op.fire_due_timers()
    assert op.fn.delivered[-1] == ["y"]


class _WithHeartbeat(_Collecting):
    def is_heartbeat(self, value):
        return value == "HEARTBEAT"


def test_heartbeat_flushes_a_restored_timerless_bucket_that_gets_no_new_element():
    store = _checkpoint_without_the_timer()
    timers = _Timers()
    timers.now += 5_000
    op = _Operator(store, timers)
    op.fn = _WithHeartbeat()
    op.fn.open(_RuntimeContext(store, lambda: op.timers.key))
    op.element(3, "HEARTBEAT")  # the sink's periodic heartbeat to every bucket
    assert [x for b in op.fn.delivered for x in b] == ["restored-1", "restored-2"]
    op.element(3, "HEARTBEAT")
    assert len(op.fn.delivered) == 1  # nothing buffered, nothing sent; heartbeats are never buffered


def test_heartbeat_rearms_a_restored_timer_that_is_not_yet_due():
    store = _checkpoint_without_the_timer()
    timers = _Timers()
    op = _Operator(store, timers)
    op.fn = _WithHeartbeat()
    op.fn.open(_RuntimeContext(store, lambda: op.timers.key))
    op.element(3, "HEARTBEAT")
    assert op.fn.delivered == [] and timers.registered
    timers.now += 200
    op.fire_due_timers()
    assert [x for b in op.fn.delivered for x in b] == ["restored-1", "restored-2"]


def test_end_of_a_bounded_input_flushes_every_buffered_bucket():
    # An archive replay: the last elements arrive and the input ends before any flush timer
    # fires. Before the fix only processing-time timers existed and these were never sent.
    timers = _Timers()
    op = _Operator({}, timers)
    op.element(1, "a")
    op.element(2, "b")
    op.element(2, "c")
    assert op.fn.delivered == []
    op.end_of_input()
    assert sorted(tuple(b) for b in op.fn.delivered) == [("a",), ("b", "c")]


def test_end_of_input_after_a_timer_flush_sends_nothing_twice():
    timers = _Timers()
    op = _Operator({}, timers)
    op.element(1, "a")
    timers.now += 200
    op.fire_due_timers()
    op.element(1, "b")  # a new buffer: its end-of-input timer is the same (key, time), one timer
    assert len(timers.event_registered) == 1
    op.end_of_input()
    assert op.fn.delivered == [["a"], ["b"]]


def test_restored_buffer_is_flushed_at_end_of_input_once_an_element_rearms_it():
    store = _checkpoint_without_the_timer()
    timers = _Timers()
    op = _Operator(store, timers)
    op.element(3, "after-restore")
    op.end_of_input()
    assert [x for b in op.fn.delivered for x in b] == ["restored-1", "restored-2", "after-restore"]


def test_dead_letter_sinks_recognise_their_heartbeat_and_route_it_to_its_bucket():
    from connectors.deadletter.flink_sinks import HEARTBEATS, FileDeadLetterSink
    from connectors.deadletter.records import dead_letter_json

    line = dead_letter_json("INVALID_JSON", "not JSON", "metrics", "{oops")
    sink = FileDeadLetterSink("/nonexistent", 200, 10)
    assert not sink.is_heartbeat(line)
    for bucket in range(4):
        heartbeat = HEARTBEATS.heartbeat(bucket)
        assert sink.is_heartbeat(heartbeat)
        assert HEARTBEATS.bucket_of(heartbeat, 4) == bucket  # every bucket gets its own heartbeat
    assert 0 <= HEARTBEATS.bucket_of(line, 4) < 4



def test_file_dead_letter_sinks_sharing_a_directory_write_separate_files(tmp_path):
    """The job's record, encoding and late sinks can all point at deadletter.path; two
    writers appending to one file could interleave partial lines."""
    from connectors.deadletter.flink_sinks import FileDeadLetterSink

    class _Counter:
        def inc(self, n=1):
            pass

    class _Metrics:
        def add_group(self, name):
            return self

        def counter(self, name):
            return _Counter()

    class _SinkContext(_RuntimeContext):
        def get_index_of_this_subtask(self):
            return 0

        def get_metrics_group(self):
            return _Metrics()

    names = ["deadletter-records", "deadletter-metrics-encoding", "deadletter-late"]
    sinks = [FileDeadLetterSink(str(tmp_path), 200, 10, name) for name in names]
    for sink in sinks:
        sink.open(_SinkContext({}, lambda: 0))
    try:
        for name, sink in zip(names, sinks):
            list(sink.deliver([f'{{"from": "{name}"}}']))
    finally:
        for sink in sinks:
            sink.close()
    files = {path.name: path.read_text() for path in tmp_path.iterdir()}
    assert files == {f"dead-letters-{name}-0.jsonl": f'{{"from": "{name}"}}\n' for name in names}


# -- concurrent flushes (max_in_flight > 1): send on worker threads, emit on the operator's


class _Concurrent(_Collecting):
    """send() blocks until the test releases that batch: the test decides when a request completes."""

    def __init__(self):
        super().__init__(max_in_flight=4, poll_interval_ms=20)
        self.started: list[list[str]] = []
        self.release = threading.Event()
        self.emitted: list[list[str]] = []
        self.barrier: threading.Barrier | None = None

    deliver = BufferedBatchFunction.deliver  # send + emit

    def send(self, items):
        self.started.append(items)
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # raises BrokenBarrierError unless the other request runs too
        assert self.release.wait(timeout=5)
        return len(items)

    def emit(self, items, outcome):
        assert outcome == len(items)
        self.emitted.append(items)
        return iter(())


def _concurrent_operator(store: dict, timers: _Timers) -> _Operator:
    op = _Operator(store, timers)
    op.fn = _Concurrent()
    op.fn.open(_RuntimeContext(store, lambda: op.timers.key))
    return op


def _wait_started(fn: _Concurrent, count: int) -> None:
    for _ in range(500):
        if len(fn.started) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} requests expected to be running, {len(fn.started)} are")


def _poll_until_emitted(op: _Operator, timers: _Timers, count: int) -> None:
    for _ in range(500):
        timers.now += 20
        op.fire_due_timers()
        if len(op.fn.emitted) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} batches expected to be emitted, {len(op.fn.emitted)} were")


def test_buckets_flushing_together_send_their_requests_at_the_same_time():
    timers = _Timers()
    op = _concurrent_operator({}, timers)
    op.fn.barrier = threading.Barrier(2)  # each request waits until the other one runs too
    op.element(1, "a")
    op.element(2, "b")
    timers.now += 200
    op.fire_due_timers()  # both timers fire; neither may block the operator until its request ends
    _wait_started(op.fn, 2)
    op.fn.release.set()
    _poll_until_emitted(op, timers, 2)
    assert sorted(x for b in op.fn.emitted for x in b) == ["a", "b"]
    assert not op.fn._in_flight


def test_a_batch_stays_in_state_until_its_request_completes_and_a_restore_sends_it_again():
    store: dict = {}
    timers = _Timers()
    op = _concurrent_operator(store, timers)
    op.element(7, "in-flight")
    timers.now += 200
    op.fire_due_timers()
    _wait_started(op.fn, 1)
    op.element(7, "queued-behind")  # arrives while the request runs: buffered behind it
    assert op.fn.emitted == []
    snapshot = {k: (list(v) if isinstance(v, list) else v) for k, v in store.items()}
    assert snapshot[("t-buffer", 7)] == ["in-flight", "queued-behind"]  # a checkpoint now holds both
    op.fn.release.set()
    _poll_until_emitted(op, timers, 2)  # the request completes; the queued item goes next
    assert op.fn.emitted == [["in-flight"], ["queued-behind"]]
    assert store.get(("t-buffer", 7)) in (None, [])

    # Restored from the snapshot taken mid-request: nothing is in flight in the new process;
    # the stored poll timer is overdue, so the first heartbeat-like element sends everything again.
    timers2 = _Timers()
    timers2.now = timers.now + 5_000
    op2 = _concurrent_operator(snapshot, timers2)
    op2.fn.release.set()
    op2.element(7, "after-restore")
    _wait_started(op2.fn, 1)
    _poll_until_emitted(op2, timers2, 1)
    timers2.now += 200
    _poll_until_emitted(op2, timers2, 2)
    assert sorted(x for b in op2.fn.emitted for x in b) == ["after-restore", "in-flight", "queued-behind"]


def test_end_of_input_waits_for_the_running_request_and_sends_the_rest():
    timers = _Timers()
    op = _concurrent_operator({}, timers)
    for i in range(10):  # a full batch: sent at once by size
        op.element(4, f"x{i}")
    _wait_started(op.fn, 1)
    op.element(4, "tail")
    threading.Timer(0.2, op.fn.release.set).start()
    op.end_of_input()  # no processing-time timer fires any more: this must wait and flush
    assert op.fn.emitted == [[f"x{i}" for i in range(10)], ["tail"]]
