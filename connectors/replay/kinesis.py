"""Replay an archive into Kinesis: original payloads, per-key order, paced by event time.

Order. Records of one partition key (the editor, else the partner, else the
event type) reach the stream in archive order. PutRecords does not keep order
across a partial failure (a failed record retried after a later one of the same
key succeeded lands behind it), so by default (``per_key_limit=1``) a batch
holds **at most one record per key**: a failed record is put back at the head
of its key's queue and nothing of that key was sent after it. That is a
guarantee, and batches still fill when many keys interleave (50 editors -> ~50
records per call).

Endpoints with a high cost per call (the embedded moto server: a new HTTP
connection and thread per request, plus ~37 µs of its CPU per record measured
with deploy/local's PutRecords fast path) can allow more records per key per batch (``per_key_limit=N``). Order then holds unless a call partially
fails: such an inversion is counted (``ReplayStats.reordered``) and, for the
next ``strict_after_failure_s`` seconds, batches fall back to one record per
key, because failures come in bursts (throttling).

Skew. A record left behind (its key is at the limit for this call) may be
overtaken by later records of other keys by at most ``max_skew_s`` of event
time (default 10 s, a third of the job's 30 s watermark delay). Without that
bound a replay that falls behind its schedule keeps sending the sparse keys
and starves the busy ones, and the consumer's watermark -- the highest event
time seen minus a delay -- passes the starved records: they arrive "late".

Pacing. Each record is due at ``start + (t - t0) / speed`` where ``t`` is the
event time read so far (late, out-of-order samples are due as soon as they are
read, like they arrived), so 24 h at 720x take two minutes; with no speed
(``max``) records go as fast as the endpoint takes them. ``t`` takes a jump of
more than a day only once the next time confirms it, and ``t0`` is the median of
the first five times (``connectors.event_time.EventTimeProgress``; records
before both are known are due at once), so one record stamped in 9999 or in
1970 neither holds the rest back nor sets the start: until 2026-12-06 a record of 9999 in the middle of an
archive held every later record back for about 11 years at 720x. Times are
read by the job's rule (``connectors.event_time``); a timestamp the job
dead-letters paces nothing.

Payloads are the archived records unchanged: timestamps stay what they were.

Lines of unknown kind. In a flat file or directory (outside ``metrics/`` and
``events/``) each line's kind comes from its fields. A line that is not UTF-8,
not JSON, or an object without ``metric``/``value``/``event_type`` has none; it
goes to the metrics stream, as its archived bytes, where the job's parse
dead-letters it with its reason (INVALID_ENCODING, INVALID_JSON,
MISSING_FIELD), as it would any bad line of a ``metrics/`` file. So the dead
letters show every bad line of the file. They are counted
(``ReplayStats.unrecognised``) and summed up in a warning; without a metrics
stream (``--only events``) they are not sent, and counted as
``unrecognised_not_replayed``. Until 2026-12-06 such lines were dropped with no
count and no log (a 4-line file with 3 bad lines replayed 1 record).
"""
from __future__ import annotations

import heapq
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from connectors.archive import EVENTS, METRICS, ArchivedRecord, iter_archive
from connectors.aws import make_client
from connectors.batching import KINESIS_RECORD_MAX_BYTES, PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS
from connectors.event_time import EventTimeProgress, timestamp_ms

log = logging.getLogger(__name__)

MAX_KEY_CHARS = 256
_RETRYABLE_CALL_ERRORS = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException",
                          "InternalFailure", "ServiceUnavailable", "InternalServerError", "KMSThrottlingException"}


def kinesis_client(endpoint_url: str | None = None, region: str | None = None):
    # Our own retry loop re-sends only what failed; botocore's would re-send the whole batch: one
    # attempt per call (until 2026-12-07 {"max_attempts": 1}, which botocore counts as one retry, let
    # it send a throttled batch again, unseen). The replayer enforces PutRecords' limits itself
    # (record and key size, 500 records, 5 MiB) and always sends bytes, so botocore's client-side
    # parameter validation (about a tenth of the replay's CPU per record in a profile) only repeats
    # those checks.
    return make_client("kinesis", endpoint_url=endpoint_url, region=region, max_attempts=1,
                       max_pool_connections=4, validate_parameters=False)


def parse_speed(text: str | float | None) -> float | None:
    """'60x' / '60' -> 60.0; 'max' / None -> None (as fast as possible)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("max", "")):
        return None
    number = str(text).strip().lower().removesuffix("x")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"speed must be a number like 60x, or 'max'; got {text!r}") from None
    # NaN would make every due time NaN (never due, or always, depending on the comparison).
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"speed must be a finite positive number like 60x, or 'max'; got {text!r}")
    return value


def event_time_ms(record: Any) -> int | None:
    """The record's event time in epoch ms by the job's rule (connectors.event_time), or None when the
    job would dead-letter its timestamp (or it has none)."""
    return timestamp_ms(record.get("timestamp")) if isinstance(record, dict) else None


def partition_key(record: Any) -> str:
    if isinstance(record, dict):
        for field_name in ("editor_id", "partner", "event_type"):
            value = record.get(field_name)
            if isinstance(value, str) and value:
                return value[:MAX_KEY_CHARS]
    return "unkeyed"


@dataclass
class _Pending:
    stream: str
    key: str
    data: bytes
    due: float          # wall-clock (monotonic) time it may be sent
    event_ms: int | None
    attempts: int = 0
    first_failed_at: float | None = None    # clock() at its first failed put


@dataclass
class ReplayStats:
    records: dict[str, int] = field(default_factory=dict)     # per stream
    calls: int = 0
    retried_records: int = 0
    failed_calls: int = 0
    skipped_oversized: int = 0
    unrecognised: int = 0               # lines of unknown kind sent to the metrics stream (module docstring)
    unrecognised_not_replayed: int = 0  # the same, when there was no metrics stream to send them to
    reordered: int = 0      # records that reached the stream ahead of an earlier failed one of their key
    first_event_ms: int | None = None
    last_event_ms: int | None = None    # the newest event time read so far (the schedule's clock)
    put_event_ms: int | None = None     # the newest event time of a record Kinesis accepted
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.records.values())

    def to_dict(self) -> dict:
        return {"records": dict(self.records), "total": self.total, "calls": self.calls,
                "retried_records": self.retried_records, "failed_calls": self.failed_calls,
                "skipped_oversized": self.skipped_oversized, "unrecognised": self.unrecognised,
                "unrecognised_not_replayed": self.unrecognised_not_replayed,
                "reordered": self.reordered, "first_event_ms": self.first_event_ms,
                "last_event_ms": self.last_event_ms, "put_event_ms": self.put_event_ms,
                "seconds": round(self.seconds, 2),
                "records_per_s": round(self.total / self.seconds, 1) if self.seconds else None}


def merged_archive(path, kinds: Iterable[str] = (METRICS, EVENTS)) -> Iterator[ArchivedRecord]:
    """Metrics and events of an archive interleaved by event time, each kind in its own archive order.

    Lines of unknown kind (kind None, module docstring) come in the metrics' order, or the first
    kind's when metrics are not asked for, so that a replayer sees and counts them.
    """
    kinds = list(kinds)
    with_unknown = METRICS if METRICS in kinds else (kinds[0] if kinds else None)

    def keyed(kind: str):
        progress = EventTimeProgress()    # a time in 9999 must not sort the rest of its kind last
        for item in iter_archive(path, kind, unrecognised=kind == with_unknown,
                                 report_left_out=kind == kinds[0]):     # one warning, not one per kind
            ms = event_time_ms(item.record)
            reached = progress.add(ms)
            yield (reached if reached is not None else ms or 0), item
    # heapq.merge only compares the heads, so each input's own order is kept
    # even where it is not sorted by time (late records).
    for _, item in heapq.merge(*(keyed(k) for k in kinds), key=lambda pair: pair[0]):
        yield item


class KinesisReplayer:
    """Puts archived records into Kinesis streams (one per record kind), batched, paced and in per-key order."""

    def __init__(self, streams: dict[str, str], *, client=None, speed: float | None = None,
                 retry_deadline_s: float = 120.0, lookahead: int = 20_000, per_key_limit: int = 1,
                 strict_after_failure_s: float = 10.0, max_skew_s: float = 10.0,
                 progress: Callable[[ReplayStats], None] | None = None, sleep=time.sleep, clock=time.monotonic):
        self.streams = streams
        self.client = client or kinesis_client()
        self.speed = speed
        # A record is retried until this long after its first failure: longer than the job's sinks
        # ride out (90 s), so a stall of the endpoint does not end a replay the job would survive.
        self.retry_deadline_s = retry_deadline_s
        self.per_key_limit = max(1, int(per_key_limit))
        self.strict_after_failure_s = strict_after_failure_s
        self.max_skew_ms = max_skew_s * 1000.0
        self._strict_until = float("-inf")
        self.lookahead = lookahead
        self.progress = progress
        self.sleep = sleep
        self.clock = clock
        self.stats = ReplayStats(records={s: 0 for s in streams.values()})

    def replay(self, items: Iterable[ArchivedRecord]) -> ReplayStats:
        began = self.clock()
        source = iter(items)
        pending: deque[_Pending] = deque()
        exhausted = False
        # The pacing clock: one record stamped 9999 (or 1970) neither holds every later record
        # back for years nor sets the start (connectors.event_time.EventTimeProgress).
        progress = EventTimeProgress()
        while True:
            while not exhausted and len(pending) < self.lookahead:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                if item.kind is None:
                    # Unknown kind: to the metrics stream, whose parse dead-letters it with its reason.
                    stream = self.streams.get(METRICS)
                    if stream is None:
                        self.stats.unrecognised_not_replayed += 1
                        continue
                    self.stats.unrecognised += 1
                else:
                    stream = self.streams.get(item.kind)
                    if stream is None:
                        continue                     # a kind the caller did not ask to replay
                # surrogateescape: the archived bytes of a line that is not UTF-8 (archive.formats.read_jsonl)
                data = item.payload.encode("utf-8", "surrogateescape")
                key = partition_key(item.record)
                if len(data) + len(key.encode("utf-8")) > KINESIS_RECORD_MAX_BYTES:
                    self.stats.skipped_oversized += 1
                    log.warning("record of %s skipped: %d bytes is over Kinesis' 1 MiB record limit", key, len(data))
                    continue
                ms = event_time_ms(item.record)
                high_ms = progress.add(ms)
                if ms is not None and high_ms is not None and ms > high_ms:
                    ms = high_ms                          # a time in 9999 bounds no skew either
                start_ms = progress.start
                due = began
                if start_ms is not None and high_ms is not None:
                    self.stats.first_event_ms, self.stats.last_event_ms = start_ms, high_ms
                    if self.speed is not None:
                        due += max(0.0, (high_ms - start_ms) / 1000.0 / self.speed)
                pending.append(_Pending(stream, key, data, due, ms))
            if not pending:
                break
            now = self.clock()
            if pending[0].due > now:
                self.sleep(min(pending[0].due - now, 0.25))
                continue
            batch = self._take_batch(pending, now)
            self._send(batch, pending)
            if self.progress:
                self.progress(self.stats)
        self.stats.seconds = self.clock() - began
        if self.stats.unrecognised:
            log.warning("%d line(s) whose kind could not be told (not UTF-8, not JSON, or no metric/value/"
                        "event_type field) were sent to the metrics stream %s, where the job dead-letters "
                        "each with its reason", self.stats.unrecognised, self.streams.get(METRICS))
        if self.stats.unrecognised_not_replayed:
            log.warning("%d line(s) whose kind could not be told were NOT replayed: no metrics stream to send "
                        "them to (replay the metrics too to have them dead-lettered)",
                        self.stats.unrecognised_not_replayed)
        return self.stats

    def _take_batch(self, pending: deque[_Pending], now: float) -> list[_Pending]:
        """Due records of one stream, at most ``per_key_limit`` per key, oldest first; the rest keep their places."""
        limit = 1 if now < self._strict_until else self.per_key_limit
        batch: list[_Pending] = []
        kept: list[_Pending] = []
        taken: dict[tuple[str, str], int] = {}
        blocked: set[tuple[str, str]] = set()     # a record of the key stayed behind: so do its successors
        # Event time of the earliest record left behind: later records may overtake it by at most
        # max_skew, so a consumer's watermark (max event time seen - delay) never passes it.
        floor_ms: float | None = None
        size = 0
        stream = pending[0].stream
        scanned = 0
        while pending and len(batch) < PUT_RECORDS_MAX_RECORDS and scanned < 4 * PUT_RECORDS_MAX_RECORDS:
            item = pending[0]
            if item.due > now:
                break
            pending.popleft()
            scanned += 1
            if (floor_ms is not None and item.stream == stream and item.event_ms is not None
                    and item.event_ms > floor_ms + self.max_skew_ms):
                pending.appendleft(item)
                break
            key = (item.stream, item.key)
            item_size = len(item.data) + len(item.key)
            if (item.stream != stream or key in blocked or taken.get(key, 0) >= limit
                    or size + item_size > PUT_RECORDS_MAX_BYTES):
                kept.append(item)
                blocked.add(key)
                if item.stream == stream and item.event_ms is not None:
                    floor_ms = item.event_ms if floor_ms is None else min(floor_ms, item.event_ms)
                continue
            taken[key] = taken.get(key, 0) + 1
            batch.append(item)
            size += item_size
        pending.extendleft(reversed(kept))
        return batch

    def _send(self, batch: list[_Pending], pending: deque[_Pending]) -> None:
        stream = batch[0].stream
        self.stats.calls += 1
        try:
            response = self.client.put_records(StreamName=stream, Records=[
                {"Data": item.data, "PartitionKey": item.key} for item in batch])
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else "connection"
            if isinstance(exc, ClientError) and code not in _RETRYABLE_CALL_ERRORS:
                raise
            self.stats.failed_calls += 1
            self._requeue(batch, pending, f"PutRecords failed ({code})")
            return
        failed, put_ms = [], None
        for item, result in zip(batch, response["Records"]):
            if "ErrorCode" in result:
                failed.append(item)
            elif item.event_ms is not None and (put_ms is None or item.event_ms > put_ms):
                put_ms = item.event_ms
        sent = len(batch) - len(failed)
        self.stats.records[stream] = self.stats.records.get(stream, 0) + sent
        if put_ms is not None and (self.stats.put_event_ms is None or put_ms > self.stats.put_event_ms):
            self.stats.put_event_ms = put_ms
        if failed:
            failed_keys: set[str] = set()
            for item, result in zip(batch, response["Records"]):
                if "ErrorCode" in result:
                    failed_keys.add(item.key)
                elif item.key in failed_keys:
                    self.stats.reordered += 1
            self._strict_until = self.clock() + self.strict_after_failure_s
            self._requeue(failed, pending, f"{len(failed)} of {len(batch)} records failed")

    def _requeue(self, failed: list[_Pending], pending: deque[_Pending], why: str) -> None:
        # Failed records go back in front, in their order: with one record per key
        # per batch each is the oldest unsent record of its key, so order is kept.
        attempts = max(item.attempts for item in failed) + 1
        now = self.clock()
        for item in failed:
            item.attempts += 1
            if item.first_failed_at is None:
                item.first_failed_at = now
            elif now - item.first_failed_at >= self.retry_deadline_s:
                raise RuntimeError(f"replay gave up on a record of {item.key} after {item.attempts} attempts "
                                   f"over {now - item.first_failed_at:.0f} s: {why}")
        self.stats.retried_records += len(failed)
        pending.extendleft(reversed(failed))
        delay = min(5.0, 0.05 * 2 ** (attempts - 1)) * (0.5 + random.random() / 2)
        log.info("%s; retrying in %.2fs", why, delay)
        self.sleep(delay)


def replay_archive(path, streams: dict[str, str], **kwargs) -> ReplayStats:
    """Replay every kind of record the archive has into its stream (``{"metrics": ..., "events": ...}``)."""
    return KinesisReplayer(streams, **kwargs).replay(merged_archive(path, kinds=list(streams)))
