"""A keyed, checkpointed buffer that flushes in batches — the shape both sinks share.

Elements are appended to ListState (so a checkpoint holds everything not yet
delivered and a restart re-delivers it: at-least-once, deduplicated downstream by
the records' deterministic ids), and flushed when the buffer reaches
`max_batch_entries` or `max_batch_bytes`, or when a processing-time timer
`flush_interval_ms` after the first buffered element fires.

End of a bounded input. Flink fires no processing-time timer once a bounded input
has ended (the operator finishes without waiting for them), so a buffer's last
batch would be lost in an archive replay. Every buffer therefore also holds an
event-time timer at the largest timestamp (`END_OF_INPUT_MS`): only the final
watermark that Flink emits when every input has ended (Long.MAX_VALUE; also sent by
stop-with-savepoint --drain) reaches it, so it flushes exactly then and never
during an unbounded run. Registering the same (key, time) timer again is a no-op,
so a key holds at most one such timer.

Keys are buckets (`stable_bucket`): a handful per subtask, so batches fill up
while the work still spreads over the parallel instances.

Flush timers and checkpoints (PyFlink 2.2). A timer registered from Python reaches
the Java timer service only through a separate mailbox action
("PythonTimerRegistration", BeamPythonFunctionRunner); `prepareSnapshotPreBarrier`
flushes the bundle — so the buffer and its stats (holding the timer's timestamp)
are in the checkpoint — but does not drain those pending registrations. A
checkpoint taken between the two holds a buffer whose timer does not exist; after
a restore from it that timer never fires, and with the old logic (register only
when the stats say "no timer") the bucket then flushed only when it filled up:
incidents sat in it for hours and were lost when the job stopped. Hence:
  * the first element a key sees in this process (so: after every restore)
    re-registers the stored timer (registering an existing (key, time) timer is a
    no-op in Flink; a timestamp in the past fires at once);
  * an element that finds its buffer's timer overdue by more than the flush
    interval flushes the buffer itself instead of trusting the timer;
  * a timer flushes whatever is buffered unless it is older than the buffer's own
    timer (a leftover of a buffer already flushed by size).
  * PyFlink offers no way to visit every key after a restore, so a restored,
    timer-less bucket that never received another element would stay buffered: the
    EventBridge, CloudWatch and dead-letter sinks can feed every bucket a heartbeat element
    (`is_heartbeat`, `bucket_heartbeats`; `heartbeat_interval_ms=1000` of their attach
    functions, for unbounded jobs) that does the two checks above without buffering anything.

Concurrent flushes (`max_in_flight` > 1, the EventBridge and CloudWatch sinks). Timers of different keys
fire one after another on the operator's thread, so with a blocking `deliver` a burst of
windows closing together made each bucket wait for every earlier bucket's request (the
p99 of the sink's buffer wait was 2.4 s with 60 editors, measured 2026-11-25). A
subclass that splits `deliver` into `send` (the request, run on a worker thread; no
Flink calls) and `emit` (the outputs, on the operator's thread) instead gets its batch
sent by a thread pool while the operator goes on. As in Flink's own AsyncSinkWriter the
batch stays in the keyed ListState until its request has completed, so a checkpoint
taken meanwhile still holds it and a restore sends it again (at-least-once, same ids).
One request per key is in flight at a time: elements arriving meanwhile are buffered
behind it and sent when it completes. Completion is polled by a processing-time timer
every `poll_interval_ms` (and checked by every element and heartbeat of the key); the
end-of-input timer waits for it, since no processing-time timer fires after that.
After a restore nothing is in flight in memory: the stored timer is overdue and the
usual overdue / heartbeat checks send the whole buffer again.
"""
from __future__ import annotations

import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor


# Long.MAX_VALUE: the watermark Flink emits when every input of the operator has ended.
END_OF_INPUT_MS = (1 << 63) - 1


def stable_bucket(text: str, buckets: int) -> int:
    """Same bucket in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8")) % buckets


def bucket_heartbeats(env: Any, interval_ms: int, buckets: int, name: str,
                      heartbeat_for_bucket: Callable[[int], Any], output_type: Any) -> Any:
    """A DataStream of `heartbeat_for_bucket(b)` for every bucket b every `interval_ms` (>= 1 s):
    lets the buffer of every bucket check its flush timer after a restore. Unbounded: only for
    jobs with unbounded sources (a bounded job would never finish)."""
    from connectors.flink_runtime import tick_stream

    return (
        tick_stream(env, interval_ms, f"{name}-heartbeat")
        .flat_map(lambda _tick: [heartbeat_for_bucket(b) for b in range(buckets)], output_type=output_type)
        .name(f"{name}-heartbeat").uid(f"{name}-heartbeat")
        # Default parallelism (not 1): the key_by after the union is a forward edge, which
        # needs every input at the same parallelism (ticks reach it rebalanced).
    )


class TextHeartbeats:
    """Bucket keys for a sink whose elements are JSON strings (dead letters, CloudWatch window
    items), and the heartbeat strings it feeds every bucket: a NUL-led prefix and the bucket
    number, which no JSON object starts with.

    >>> beats = TextHeartbeats("deadletter")
    >>> beats.is_heartbeat(beats.heartbeat(3)), beats.bucket_of(beats.heartbeat(3), 4), beats.is_heartbeat("{}")
    (True, 3, False)
    """

    def __init__(self, sink: str) -> None:
        self.prefix = f"\x00adops.{sink}-heartbeat:"

    def heartbeat(self, bucket: int) -> str:
        return f"{self.prefix}{bucket}"

    def is_heartbeat(self, value: str) -> bool:
        return value.startswith(self.prefix)

    def bucket_of(self, value: str, buckets: int) -> int:
        if self.is_heartbeat(value):
            return int(value[len(self.prefix):]) % buckets
        return stable_bucket(value, buckets)

    def key_by_bucket(self, stream: Any, buckets: int, heartbeat_interval_ms: int, name: str) -> Any:
        """`stream` keyed by bucket; heartbeat_interval_ms > 0 (1000 with unbounded sources) first
        unions a heartbeat per bucket every interval (`bucket_heartbeats`). Leave it at 0 for
        bounded jobs that must finish."""
        if heartbeat_interval_ms > 0:
            stream = stream.union(bucket_heartbeats(stream.get_execution_environment(), heartbeat_interval_ms,
                                                    buckets, name, self.heartbeat, Types.STRING()))
        return stream.key_by(lambda value: self.bucket_of(value, buckets), key_type=Types.INT())

    def attach(self, stream: Any, function: "BufferedBatchFunction", buckets: int, heartbeat_interval_ms: int,
               name: str) -> Any:
        """`function`, a sink of this class's JSON strings, over `stream` keyed by bucket
        (`key_by_bucket`); named `name`, which is also its uid: its state's key in savepoints."""
        return (self.key_by_bucket(stream, buckets, heartbeat_interval_ms, name)
                .process(function, output_type=Types.STRING()).name(name).uid(name))


class BufferedBatchFunction(KeyedProcessFunction):
    """Subclasses implement `element_to_item`, `item_size` and `deliver` (or, for concurrent
    flushes with `max_in_flight` > 1, `send` and `emit`: see the module docstring)."""

    def __init__(self, max_batch_entries: int, max_batch_bytes: int, flush_interval_ms: int,
                 state_name: str, *, max_in_flight: int = 1, poll_interval_ms: int = 20) -> None:
        self.max_batch_entries = max_batch_entries
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval_ms = flush_interval_ms
        self.state_name = state_name
        self.max_in_flight = max_in_flight
        self.poll_interval_ms = poll_interval_ms

    # -- to implement
    def element_to_item(self, value: Any) -> str:
        raise NotImplementedError

    def item_size(self, item: str) -> int:
        raise NotImplementedError

    def deliver(self, items: list[str]) -> Iterable[Any]:
        """Send the batch; yields outputs (main and side) for Flink. Defaults to `send` + `emit`."""
        return self.emit(items, self.send(items))

    def send(self, items: list[str]) -> Any:
        """Concurrent flushes: deliver the batch and return its outcome. Runs on a worker thread,
        so it must not touch Flink (state, timers, metrics) nor raise for delivery problems."""
        raise NotImplementedError

    def emit(self, items: list[str], outcome: Any) -> Iterable[Any]:
        """Concurrent flushes: the outputs for a batch `send` has delivered (operator thread)."""
        raise NotImplementedError

    def is_heartbeat(self, value: Any) -> bool:
        """A periodic element that only re-arms/flushes this key's buffer (see module docstring)."""
        return False

    def reject(self, value: Any, error: Exception) -> Iterable[Any]:
        """An element that cannot become an item; yield outputs for it (e.g. a dead letter).
        The default re-raises: only sinks with a dead-letter path may swallow elements."""
        raise error

    # -- Flink
    def open(self, runtime_context: RuntimeContext) -> None:
        self._buffer = runtime_context.get_list_state(
            ListStateDescriptor(f"{self.state_name}-buffer", Types.STRING())
        )
        # (entries, bytes, timer timestamp or -1) of the buffer, to decide flushes
        # without reading the whole list on every element.
        self._buffer_stats = runtime_context.get_state(
            ValueStateDescriptor(f"{self.state_name}-stats",
                                 Types.TUPLE([Types.INT(), Types.LONG(), Types.LONG()]))
        )
        # Keys that have seen an element since this instance was opened (in memory,
        # so empty after every restore): their stored timer is known to be registered.
        self._seen_keys: set[Any] = set()
        # key -> (request, number of buffered items it sends): the buffer's first items.
        self._in_flight: dict[Any, tuple[Future, int]] = {}
        self._pool = (ThreadPoolExecutor(self.max_in_flight, thread_name_prefix=f"{self.state_name}-flush")
                      if self.max_in_flight > 1 else None)

    def close(self) -> None:
        if getattr(self, "_pool", None) is not None:
            # Requests still running finish on their own; their batches are still in state.
            self._pool.shutdown(wait=False, cancel_futures=True)

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context):
        if self.is_heartbeat(value):
            yield from self._check_buffer(ctx)
            return
        try:
            item = self.element_to_item(value)
            size = self.item_size(item)
        except Exception as error:  # noqa: BLE001 - one bad element must not fail the job
            yield from self.reject(value, error)
            return
        key = ctx.get_current_key()
        if key in self._in_flight:
            if not self._in_flight[key][0].done():
                self._queue_behind_request(item, size)
                return
            yield from self._complete(ctx, start_next=False)
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        entries, total_bytes, timer_at = self._buffer_stats.value() or (0, 0, -1)
        rearm = False
        if entries and timer_at >= 0 and ctx.get_current_key() not in self._seen_keys:
            # First element of this key since open(): a restored buffer whose timer
            # registration may not have made it into the checkpoint (module docstring).
            rearm = True
        self._seen_keys.add(ctx.get_current_key())
        overdue = entries and timer_at >= 0 and now >= timer_at + self.flush_interval_ms
        if entries and (overdue or total_bytes + size > self.max_batch_bytes):
            yield from self._flush(ctx)
            if key in self._in_flight:
                self._queue_behind_request(item, size)
                return
            entries, total_bytes, timer_at, rearm = 0, 0, -1, False
        self._buffer.add(item)
        entries, total_bytes = entries + 1, total_bytes + size
        if entries >= self.max_batch_entries:
            yield from self._flush(ctx)
            return
        if timer_at < 0:
            timer_at = now + self.flush_interval_ms
            rearm = True
        if rearm:
            timers.register_processing_time_timer(timer_at)
            timers.register_event_time_timer(END_OF_INPUT_MS)
        self._buffer_stats.update((entries, total_bytes, timer_at))

    def _queue_behind_request(self, item: str, size: int) -> None:
        """Buffer an item behind the key's running request; it is sent when that completes."""
        entries, total_bytes, timer_at = self._buffer_stats.value()
        self._buffer.add(item)
        self._buffer_stats.update((entries + 1, total_bytes + size, timer_at))

    def _check_buffer(self, ctx: Any):
        key = ctx.get_current_key()
        if key in self._in_flight:
            if self._in_flight[key][0].done():
                yield from self._complete(ctx, start_next=True)
            return
        stats = self._buffer_stats.value()
        if stats is None or stats[0] <= 0 or stats[2] < 0:
            self._seen_keys.add(key)
            return
        timers = ctx.timer_service()
        if timers.current_processing_time() >= stats[2] + self.flush_interval_ms:
            yield from self._flush(ctx)
        elif key not in self._seen_keys:
            timers.register_processing_time_timer(stats[2])
            timers.register_event_time_timer(END_OF_INPUT_MS)
        self._seen_keys.add(key)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        in_flight = self._in_flight.get(ctx.get_current_key())
        if in_flight is not None:
            if timestamp == END_OF_INPUT_MS:
                in_flight[0].result()  # no processing-time timer fires after this: wait here
                yield from self._complete(ctx, start_next=False)
                yield from self._flush(ctx, blocking=True)
            elif in_flight[0].done():
                yield from self._complete(ctx, start_next=True)
            else:
                self._poll_later(ctx)
            return
        stats = self._buffer_stats.value()
        if stats is None or stats[0] <= 0:
            return  # nothing buffered (flushed by size, or by an overdue element)
        # The end-of-input timer (END_OF_INPUT_MS) is later than any flush timer: it always flushes.
        if stats[2] >= 0 and timestamp < stats[2]:
            return  # a leftover timer of an earlier buffer; this buffer's own timer is later
        yield from self._flush(ctx, blocking=timestamp == END_OF_INPUT_MS)

    def _flush(self, ctx: Any, blocking: bool = False):
        items = list(self._buffer.get() or [])
        stats = self._buffer_stats.value()
        if stats is not None and stats[2] >= 0:
            try:
                ctx.timer_service().delete_processing_time_timer(stats[2])
            except Exception:  # timer already fired
                pass
        if items and self._pool is not None and not blocking:
            # Sent on a worker thread; the items stay buffered (and checkpointed) until it completes.
            self._in_flight[ctx.get_current_key()] = (self._pool.submit(self.send, items), len(items))
            self._poll_later(ctx, (len(items), stats[1] if stats else 0))
            return
        # Deliver before clearing: if delivery is interrupted by a failure, the
        # restored checkpoint still holds the items.
        if items:
            yield from self.deliver(items)
        self._buffer.clear()
        self._buffer_stats.clear()

    def _poll_later(self, ctx: Any, counts: tuple[int, int] | None = None) -> None:
        """Check the key's running request again in poll_interval_ms. The stats name that poll as
        the buffer's timer: after a restore (nothing in flight any more) it is overdue, so the
        next element or heartbeat sends the buffer again. (The end-of-input timer needs no new
        registration: the buffer's first element registered it, and it fires only at the end.)"""
        timers = ctx.timer_service()
        poll_at = timers.current_processing_time() + self.poll_interval_ms
        entries, total_bytes = counts if counts is not None else self._buffer_stats.value()[:2]
        timers.register_processing_time_timer(poll_at)
        self._buffer_stats.update((entries, total_bytes, poll_at))

    def _complete(self, ctx: Any, start_next: bool):
        """The key's request has completed: emit its outputs and drop its items from the buffer.
        Items buffered behind it are sent at once (start_next) — they have waited a whole request
        already — or left for the caller to handle."""
        request, count = self._in_flight.pop(ctx.get_current_key())
        items = list(self._buffer.get() or [])
        sent, rest = items[:count], items[count:]
        yield from self.emit(sent, request.result())
        if not rest:
            self._buffer.clear()
            self._buffer_stats.clear()
            return
        self._buffer.update(rest)
        now = ctx.timer_service().current_processing_time()
        # timer_at = now: the rest is due (an element or heartbeat flushes it if no timer does).
        self._buffer_stats.update((len(rest), sum(self.item_size(i) for i in rest), now))
        if start_next:
            yield from self._flush(ctx)
        else:
            ctx.timer_service().register_processing_time_timer(now)
