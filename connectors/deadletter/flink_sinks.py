"""Attach a dead-letter sink to a DataStream of dead-letter JSON strings.

    attach_deadletter_kinesis_sink(dead_letters, "adops-dead-letters", endpoint_url=..., region=...,
                                   fallback_directory="/path/dir", retry_deadline_s=90)
    attach_deadletter_file_sink(dead_letters, "/path/dir")

Both use the keyed ListState buffer of `connectors.flink_buffer` (checkpointed;
at-least-once), so a dead letter buffered when the job stops is written after the
restart. Files: one `dead-letters-<name>-<subtask>.jsonl` per sink and subtask (no
two writers on one file: the job's record, encoding and late sinks may share a
directory); lines are flushed on every batch, so tests can read them while the job
runs. Flink's own FileSink also works in PyFlink 2.2 (flink-connector-files ships
in pyflink/lib) but only finalises part files on checkpoints, which makes a local
run's output invisible until then; hence this writer.

The Kinesis sink retries until `retry_deadline_s`; what is still unwritten then goes
to `fallback_directory`/dead-letters-fallback-<name>-<subtask>.jsonl (metric
deadletter.deadLettersFellBack) rather than being dropped. Only if that file cannot
be written either is a line dropped (deadletter.deadLettersDropped, logged). The file
sink counts the same way: a batch its file cannot take (a full or read-only disk) is
dropped, counted and logged with the error, and the job goes on
(`writers.JsonLinesDeadLetterWriter`).
"""
from __future__ import annotations

import os
from typing import Any, Iterable

from pyflink.datastream import DataStream, RuntimeContext

from connectors.flink_buffer import BufferedBatchFunction, TextHeartbeats
from connectors.flink_runtime import subtask_index

# The sinks' own heartbeat lines; never written.
HEARTBEATS = TextHeartbeats("deadletter")


class KinesisDeadLetterSink(BufferedBatchFunction):
    def __init__(self, stream_name: str, endpoint_url: str | None, region: str | None,
                 flush_interval_ms: int, max_batch_records: int, *, retry_deadline_s: float = 90.0,
                 fallback_directory: str | None = None, name: str = "deadletter-kinesis") -> None:
        from connectors.batching import PUT_RECORDS_MAX_BYTES

        super().__init__(max_batch_records, PUT_RECORDS_MAX_BYTES, flush_interval_ms, "deadletter-kinesis")
        self.stream_name = stream_name
        self.endpoint_url = endpoint_url
        self.region = region
        self.retry_deadline_s = retry_deadline_s
        self.fallback_directory = fallback_directory
        self.name = name

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        from connectors.aws import make_client
        from connectors.deadletter.writers import KinesisDeadLetterWriter

        from connectors.deadletter.writers import JsonLinesDeadLetterWriter

        # max_attempts=1: the writer's deadline-bounded loop is the only retry loop.
        client = make_client("kinesis", endpoint_url=self.endpoint_url, region=self.region, max_attempts=1)
        self._fallback = None
        if self.fallback_directory:
            subtask = subtask_index(runtime_context)
            self._fallback = JsonLinesDeadLetterWriter(os.path.join(
                self.fallback_directory, f"dead-letters-fallback-{self.name}-{subtask}.jsonl"))
        self._writer = KinesisDeadLetterWriter(client, self.stream_name, deadline_s=self.retry_deadline_s,
                                               fallback=self._fallback)
        group = runtime_context.get_metrics_group().add_group("deadletter")
        self._written = group.counter("deadLettersWritten")
        self._fell_back = group.counter("deadLettersFellBack")
        self._dropped = group.counter("deadLettersDropped")

    def close(self) -> None:
        if getattr(self, "_fallback", None):
            self._fallback.close()

    def is_heartbeat(self, value: str) -> bool:
        return HEARTBEATS.is_heartbeat(value)

    def element_to_item(self, value: str) -> str:
        return value

    def item_size(self, item: str) -> int:
        from connectors.deadletter.writers import line_bytes, partition_key_for

        return len(line_bytes(item)) + len(partition_key_for(item))

    def deliver(self, items: list[str]) -> Iterable[Any]:
        counters = self._writer.counters
        fell_back_before, dropped_before = counters.fell_back, counters.dropped
        self._written.inc(self._writer.write(items))
        self._fell_back.inc(counters.fell_back - fell_back_before)
        self._dropped.inc(counters.dropped - dropped_before)
        return ()


class FileDeadLetterSink(BufferedBatchFunction):
    def __init__(self, directory: str, flush_interval_ms: int, max_batch_records: int,
                 name: str = "deadletter-file") -> None:
        super().__init__(max_batch_records, 8 * 1024 * 1024, flush_interval_ms, "deadletter-file")
        self.directory = directory
        self.name = name

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        from connectors.deadletter.writers import JsonLinesDeadLetterWriter

        subtask = subtask_index(runtime_context)
        self._writer = JsonLinesDeadLetterWriter(
            os.path.join(self.directory, f"dead-letters-{self.name}-{subtask}.jsonl"))
        group = runtime_context.get_metrics_group().add_group("deadletter")
        self._written = group.counter("deadLettersWritten")
        self._dropped = group.counter("deadLettersDropped")     # the file could not take them (logged)

    def close(self) -> None:
        if getattr(self, "_writer", None):
            self._writer.close()

    def is_heartbeat(self, value: str) -> bool:
        return HEARTBEATS.is_heartbeat(value)

    def element_to_item(self, value: str) -> str:
        return value

    def item_size(self, item: str) -> int:
        return len(item)

    def deliver(self, items: list[str]) -> Iterable[Any]:
        written = self._writer.write(items)
        self._written.inc(written)
        self._dropped.inc(len(items) - written)
        return ()


def attach_deadletter_kinesis_sink(
    dead_letters: DataStream,
    stream_name: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    flush_interval_ms: int = 500,
    max_batch_records: int = 500,
    buckets: int = 4,
    name: str = "deadletter-kinesis",
    retry_deadline_s: float = 90.0,
    fallback_directory: str | None = None,
    heartbeat_interval_ms: int = 0,
) -> DataStream:
    """PutRecords every dead-letter JSON string to `stream_name` (batched <= 500 / 5 MiB, retried
    until `retry_deadline_s`, then written to `fallback_directory`; module docstring).
    heartbeat_interval_ms: see `TextHeartbeats.key_by_bucket`."""
    sink = KinesisDeadLetterSink(stream_name, endpoint_url, region, flush_interval_ms, max_batch_records,
                                 retry_deadline_s=retry_deadline_s, fallback_directory=fallback_directory, name=name)
    return HEARTBEATS.attach(dead_letters, sink, buckets, heartbeat_interval_ms, name)


def attach_deadletter_file_sink(
    dead_letters: DataStream,
    directory: str,
    *,
    flush_interval_ms: int = 500,
    max_batch_records: int = 1000,
    buckets: int = 4,
    name: str = "deadletter-file",
    heartbeat_interval_ms: int = 0,
) -> DataStream:
    """Append every dead-letter JSON string to `directory`/dead-letters-<name>-<subtask>.jsonl.
    heartbeat_interval_ms: see `TextHeartbeats.key_by_bucket`."""
    sink = FileDeadLetterSink(directory, flush_interval_ms, max_batch_records, name)
    return HEARTBEATS.attach(dead_letters, sink, buckets, heartbeat_interval_ms, name)
