"""Dead-letter writers without Flink: a Kinesis stream (AWS and local) and JSON-lines files.

Both take dead-letter JSON strings (`connectors.deadletter.records.dead_letter_json`)
and never raise for delivery problems: the dead-letter path must not fail the job.

Kinesis retries are bounded by a deadline (default 90 s, so a 60 s outage of the
endpoint is ridden out), with exponential backoff and equal jitter between attempts.
Every botocore error on the way (a connection refused, reset or closed without an
answer, a timeout) is retried like a throttled or failed record. What is still not
written then (or is refused for good: missing stream, access denied, or a request
botocore cannot send at all — its parameters, missing credentials, region;
`connectors.retry.is_permanent_sdk_error`) goes to the `fallback` writer — the job
passes a local JSON-lines file — and is counted in `fell_back`. Only when there is no
fallback, or it fails too, is a line counted in `dropped` (and logged with the reason).
"""
from __future__ import annotations

from connectors.batching import KINESIS_RECORD_MAX_BYTES, PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS, limited_batches
from connectors.deadletter.records import PARTITION_KEY_CHARS
from connectors.retry import equal_jitter_delay, is_permanent_sdk_error

import hashlib
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)


def line_bytes(line: str) -> bytes:
    """A dead-letter line as UTF-8, a lone surrogate (a payload's "\\ud800" decoded) written as the
    6-character escape it came from, which inside a JSON string means the same, as the file writer
    writes it. A plain encode raised UnicodeEncodeError in the Kinesis writer and sink: the job failed.

    >>> import json
    >>> json.loads(line_bytes('"' + chr(0xD800) + ' x"')) == chr(0xD800) + " x", len(line_bytes(chr(0xD800)))
    (True, 6)
    """
    return line.encode("utf-8", errors="backslashreplace")


def partition_key_for(line: str) -> str:
    # Spread dead letters over the shards; the content hash keeps a replayed line on one shard.
    return hashlib.sha256(line_bytes(line)).hexdigest()[:PARTITION_KEY_CHARS]


def _record_size(record: dict[str, Any]) -> int:
    return len(record["Data"]) + len(record["PartitionKey"].encode("utf-8"))


def put_records_batches(records: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Order-keeping batches within 500 records and 5 MiB (data + partition keys)."""
    return limited_batches(records, max_items=PUT_RECORDS_MAX_RECORDS, max_bytes=PUT_RECORDS_MAX_BYTES,
                           size_of=_record_size)


@dataclass
class WriterCounters:
    written: int = 0  # lines accepted by this writer's own output
    retried: int = 0  # records re-sent (each re-send counts)
    fell_back: int = 0  # lines handed to the fallback writer after the retries were exhausted
    dropped: int = 0  # lines neither written nor accepted by a fallback (logged)
    requests: int = 0


# Retry codes AWS answers for requests no retry can fix (the stream or the permission is missing).
PERMANENT_REQUEST_ERRORS = frozenset({"ResourceNotFoundException", "AccessDeniedException",
                                      "ValidationException", "UnrecognizedClientException",
                                      "InvalidSignatureException"})


class KinesisDeadLetterWriter:
    """PutRecords of dead-letter lines, batched, retrying failed records with backoff until
    `deadline_s` after a batch's first attempt; then the lines go to `fallback` (see module
    docstring). `fallback` is any object with `write(lines) -> int` (JsonLinesDeadLetterWriter)."""

    def __init__(self, client: Any, stream_name: str, *, deadline_s: float = 90.0,
                 max_attempts: int | None = None, base_backoff_s: float = 0.1,
                 max_backoff_s: float = 8.0, fallback: Any | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if deadline_s < 0 or (max_attempts is not None and max_attempts < 1):
            raise ValueError("deadline_s must be >= 0 and max_attempts >= 1")
        self.client = client
        self.stream_name = stream_name
        self.deadline_s = deadline_s
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.fallback = fallback
        self.counters = WriterCounters()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    def backoff_delay(self, attempt: int) -> float:
        """Equal jitter: a wait in [d/2, d], d = min(cap, base * 2**attempt)."""
        return equal_jitter_delay(attempt, self.base_backoff_s, self.max_backoff_s, self._rng)

    def write(self, lines: Sequence[str]) -> int:
        """Write the lines; returns how many were written to the stream (the rest fell back
        or, without a fallback, were dropped; see `counters`)."""
        records = []
        for line in lines:
            record = {"Data": line_bytes(line), "PartitionKey": partition_key_for(line)}
            if _record_size(record) > KINESIS_RECORD_MAX_BYTES:
                # Cannot happen for lines built by dead_letter_json (records.MAX_LINE_BYTES).
                self._give_up([record], f"record of {_record_size(record)} bytes exceeds the Kinesis limit")
                continue
            records.append(record)
        written_before = self.counters.written
        for batch in put_records_batches(records):
            self._put_batch(batch)
        return self.counters.written - written_before

    def _put_batch(self, batch: list[dict[str, Any]]) -> None:
        pending = batch
        last_error = ""
        started = self._clock()
        attempt = 0
        while True:
            self.counters.requests += 1
            try:
                response = self.client.put_records(StreamName=self.stream_name, Records=pending)
            except ClientError as exc:
                last_error = exc.response.get("Error", {}).get("Code", "ClientError")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status < 500 and last_error in PERMANENT_REQUEST_ERRORS:
                    break
            except BotoCoreError as exc:
                # No answer (connection refused / reset / closed, timeout): retried. A request
                # botocore will not send (parameters, credentials, region) is refused every time.
                last_error = type(exc).__name__
                if is_permanent_sdk_error(exc):
                    last_error = f"{last_error}: {exc} (a configuration error: not retried)"
                    break
            else:
                outcomes = response.get("Records") or []
                retry = [record for record, outcome in zip(pending, outcomes) if outcome.get("ErrorCode")]
                if len(outcomes) != len(pending):
                    retry = pending
                self.counters.written += len(pending) - len(retry)
                if not retry:
                    return
                last_error = next((o.get("ErrorCode") for o in outcomes if o.get("ErrorCode")), "partial")
                pending = retry
            attempt += 1
            if self.max_attempts is not None and attempt >= self.max_attempts:
                last_error += f" (after {attempt} attempts)"
                break
            delay = self.backoff_delay(attempt - 1)
            if self._clock() - started + delay > self.deadline_s:
                last_error += f" (retry deadline {self.deadline_s:g}s reached after {attempt} attempts)"
                break
            self.counters.retried += len(pending)
            self._sleep(delay)
        self._give_up(pending, last_error)

    def _give_up(self, records: list[dict[str, Any]], reason: str) -> None:
        lines = [record["Data"].decode("utf-8") for record in records]
        if self.fallback is not None:
            try:
                written = self.fallback.write(lines)     # a JSON-lines writer returns 0 when it cannot write
            except Exception:  # noqa: BLE001 - a failing fallback must not fail the job either
                log.exception("dead-letter fallback failed for %d lines", len(lines))
                written = 0
            if written == len(lines):
                self.counters.fell_back += len(lines)
                log.warning("%d dead letters not written to %s (%s); written to the fallback output",
                            len(lines), self.stream_name, reason)
                return
        self.counters.dropped += len(lines)
        log.error("%d dead letters not written to %s: %s", len(lines), self.stream_name, reason)


class JsonLinesDeadLetterWriter:
    """Appends dead-letter lines to a local file (one JSON object per line)."""

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.counters = WriterCounters()
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        self._file = self._open()

    def _open(self):
        # A lone surrogate (a payload's "\ud800" decoded) is written as the 6-character escape it
        # came from, which inside a JSON string means the same: the line stays JSON, the batch is kept.
        return open(self.path, "a", encoding="utf-8", errors="backslashreplace")

    def write(self, lines: Sequence[str]) -> int:
        """Append the lines; the number written: all of them, or 0 when the file cannot take them
        (a full or read-only disk). Then they are counted in ``dropped`` and logged with the error,
        the file is cut back to where it was (no half line), and nothing is raised: the job goes on."""
        self.counters.requests += 1
        # Lines are compact JSON: a newline inside would break the format.
        text = "".join(line.replace("\n", "\\n") + "\n" for line in lines)
        at = None
        try:
            at = self._file.tell()
            self._file.write(text)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        except (OSError, ValueError) as exc:     # ValueError: the file could not be reopened last time
            self._cut_back(at)
            self.counters.dropped += len(lines)
            log.error("%d dead letters not written to %s: %s; the first: %.2000s", len(lines), self.path, exc,
                      lines[0] if lines else "")
            return 0
        self.counters.written += len(lines)
        return len(lines)

    def _cut_back(self, at: int | None) -> None:
        # The text that did not fit is dropped from the buffer by reopening the file; what reached
        # the file past ``at`` is cut off, so a later line does not continue a half-written one.
        try:
            self._file.close()
        except OSError:
            pass                      # its buffer could not be written either: that is the failure
        try:
            self._file = self._open()
            if at is not None:
                self._file.truncate(at)
        except OSError:
            log.exception("dead-letter file %s could not be reopened", self.path)

    def close(self) -> None:
        self._file.close()


def read_appended_lines(path: str | os.PathLike, start: int = 0, end: int | None = None) -> tuple[list[bytes], int]:
    """The whole lines a JSON-lines writer appended between byte offsets ``start`` and ``end`` (None:
    the file's end), and the offset after the last of them: a writer may be halfway through a line."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(None if end is None else max(0, end - start))
    complete = data[:data.rfind(b"\n") + 1]
    return complete.splitlines(), start + len(complete)


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """All dead-letter records in a JSON-lines file (tests, reports)."""
    import json

    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
