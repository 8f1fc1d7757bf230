"""Dead-letter writers without Flink: a Kinesis stream (AWS and local) and JSON-lines files.

Both take dead-letter JSON strings (`connectors.deadletter.records.dead_letter_json`)
and never raise for delivery problems: the dead-letter path must not fail the job.
What cannot be written after the bounded retries is counted in `dropped` and logged.
"""
from __future__ import annotations

from connectors.batching import limited_batches

import hashlib
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from botocore.exceptions import ClientError, ConnectionError as BotocoreConnectionError
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

log = logging.getLogger(__name__)

MAX_RECORDS_PER_PUT = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # data + partition key
TRANSIENT_EXCEPTIONS = (BotocoreConnectionError, ConnectTimeoutError, ReadTimeoutError)


def partition_key_for(line: str) -> str:
    # Spread dead letters over the shards; the content hash keeps a replayed line on one shard.
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:32]


def _record_size(record: dict[str, Any]) -> int:
    return len(record["Data"]) + len(record["PartitionKey"].encode("utf-8"))


def put_records_batches(records: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """Order-keeping batches within 500 records and 5 MiB (data + partition keys)."""
    return limited_batches(records, max_items=MAX_RECORDS_PER_PUT, max_bytes=MAX_REQUEST_BYTES,
                           size_of=_record_size)


@dataclass
class WriterCounters:
    written: int = 0
    retried: int = 0
    dropped: int = 0
    requests: int = 0


class KinesisDeadLetterWriter:
    """PutRecords of dead-letter lines, batched, retrying failed records with backoff."""

    def __init__(self, client: Any, stream_name: str, *, max_attempts: int = 8,
                 base_backoff_s: float = 0.1, max_backoff_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.stream_name = stream_name
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.counters = WriterCounters()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** attempt)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def write(self, lines: Sequence[str]) -> int:
        """Write the lines; returns how many were written."""
        records = []
        for line in lines:
            record = {"Data": line.encode("utf-8"), "PartitionKey": partition_key_for(line)}
            if _record_size(record) > MAX_RECORD_BYTES:
                # Cannot happen for records built by dead_letter_json (raw <= 64 KiB).
                log.error("dead letter of %d bytes exceeds the Kinesis record limit; dropped",
                          _record_size(record))
                self.counters.dropped += 1
                continue
            records.append(record)
        written_before = self.counters.written
        for batch in put_records_batches(records):
            self._put_batch(batch)
        return self.counters.written - written_before

    def _put_batch(self, batch: list[dict[str, Any]]) -> None:
        pending = batch
        last_error = ""
        for attempt in range(self.max_attempts):
            if attempt:
                self.counters.retried += len(pending)
                self._sleep(self._delay(attempt - 1))
            self.counters.requests += 1
            try:
                response = self.client.put_records(StreamName=self.stream_name, Records=pending)
            except ClientError as exc:
                last_error = exc.response.get("Error", {}).get("Code", "ClientError")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status < 500 and last_error in ("ResourceNotFoundException", "AccessDeniedException",
                                                   "ValidationException"):
                    break
                continue
            except TRANSIENT_EXCEPTIONS as exc:
                last_error = type(exc).__name__
                continue
            outcomes = response.get("Records") or []
            retry = [record for record, outcome in zip(pending, outcomes) if outcome.get("ErrorCode")]
            if len(outcomes) != len(pending):
                retry = pending
            self.counters.written += len(pending) - len(retry)
            if not retry:
                return
            last_error = next((o.get("ErrorCode") for o in outcomes if o.get("ErrorCode")), "partial")
            pending = retry
        self.counters.dropped += len(pending)
        log.error("%d dead letters not written to %s: %s", len(pending), self.stream_name, last_error)


class JsonLinesDeadLetterWriter:
    """Appends dead-letter lines to a local file (one JSON object per line)."""

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self.counters = WriterCounters()
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def write(self, lines: Sequence[str]) -> int:
        # Lines are compact JSON: a newline inside would break the format.
        self._file.write("".join(line.replace("\n", "\\n") + "\n" for line in lines))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.counters.written += len(lines)
        self.counters.requests += 1
        return len(lines)

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """All dead-letter records in a JSON-lines file (tests, reports)."""
    import json

    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
