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
    EventBridge and dead-letter sinks can feed every bucket a heartbeat element
    (`is_heartbeat`, `bucket_heartbeats`; `heartbeat_interval_ms=1000` of their attach
    functions, for unbounded jobs) that does the two checks above without buffering anything.
"""
from __future__ import annotations

import zlib
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
    from connectors.kinesis.flink_source import _tick_stream

    return (
        _tick_stream(env, interval_ms, f"{name}-heartbeat")
        .flat_map(lambda _tick: [heartbeat_for_bucket(b) for b in range(buckets)], output_type=output_type)
        .name(f"{name}-heartbeat").uid(f"{name}-heartbeat")
        # Default parallelism (not 1): the key_by after the union is a forward edge, which
        # needs every input at the same parallelism (ticks reach it rebalanced).
    )


class BufferedBatchFunction(KeyedProcessFunction):
    """Subclasses implement `element_to_item`, `item_size` and `deliver`."""

    def __init__(self, max_batch_entries: int, max_batch_bytes: int, flush_interval_ms: int,
                 state_name: str) -> None:
        self.max_batch_entries = max_batch_entries
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval_ms = flush_interval_ms
        self.state_name = state_name

    # -- to implement
    def element_to_item(self, value: Any) -> str:
        raise NotImplementedError

    def item_size(self, item: str) -> int:
        raise NotImplementedError

    def deliver(self, items: list[str]) -> Iterable[Any]:
        """Send the batch; yields outputs (main and side) for Flink."""
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

    def _check_buffer(self, ctx: Any):
        stats = self._buffer_stats.value()
        key = ctx.get_current_key()
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
        stats = self._buffer_stats.value()
        if stats is None or stats[0] <= 0:
            return  # nothing buffered (flushed by size, or by an overdue element)
        # The end-of-input timer (END_OF_INPUT_MS) is later than any flush timer: it always flushes.
        if stats[2] >= 0 and timestamp < stats[2]:
            return  # a leftover timer of an earlier buffer; this buffer's own timer is later
        yield from self._flush(ctx)

    def _flush(self, ctx: Any):
        items = list(self._buffer.get() or [])
        stats = self._buffer_stats.value()
        if stats is not None and stats[2] >= 0:
            try:
                ctx.timer_service().delete_processing_time_timer(stats[2])
            except Exception:  # timer already fired
                pass
        # Deliver before clearing: if delivery is interrupted by a failure, the
        # restored checkpoint still holds the items.
        if items:
            yield from self.deliver(items)
        self._buffer.clear()
        self._buffer_stats.clear()
