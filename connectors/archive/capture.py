"""A local stand-in for Firehose: read a live Kinesis stream and archive it by hour.

Polls every shard with GetRecords (from the oldest record or from now), keeps
each shard's last sequence number so an expired iterator resumes where it
stopped, backs off on throttling, follows shard splits/merges (a closed shard's
children are picked up on the next discovery), and writes the records to an
:class:`~connectors.archive.ArchiveWriter` partitioned by their arrival time
(``ApproximateArrivalTimestamp``), flushing a part file every
``buffer_interval_s`` like Firehose's buffer interval.

What is archived is the traffic as it came: each record's payload text is handed
to the writer (``ArchiveWriter.add(payload=...)``), which keeps it whole in a
JSON-lines archive, and in Parquet whenever the record does not fit the typed
columns (a record that fits is stored as its typed fields: ``connectors/archive/formats.py``).
So a record the job dead-letters -- a ``NaN`` or ``1e999`` value
(NON_FINITE_VALUE), a wrong type -- is archived as read and dead-lettered again on replay. Until 2026-12-06 such a record made the
write of its whole partition buffer fail after the buffer was taken: with the
default settings the capture stopped with ``ValueError: Out of range float
values`` and nothing was archived; with small parts the error was taken for "not
JSON" and the valid records buffered with it were lost.

What cannot be archived is a payload whose kind cannot be told: not UTF-8, not
JSON, or not a metric/event object (no ``metric``/``value``/``event_type``),
since the archive is split into ``metrics/`` and ``events/``. Each such record
is logged (shard, sequence number, reason, start of the payload) and counted:
``CaptureStats.undecodable`` in total, ``CaptureStats.skipped`` per reason.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from connectors.aws import make_client

from .formats import kind_of
from .store import ArchiveWriter

log = logging.getLogger(__name__)

_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"}


def kinesis_client(endpoint_url: str | None = None, region: str | None = None):
    # one attempt per call: the loop below backs off a throttled shard itself
    return make_client("kinesis", endpoint_url=endpoint_url, region=region, max_attempts=1)


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None = None
    last_sequence: str | None = None
    closed: bool = False          # read to its end: no record will come from it again
    backoff_s: float = 0.0
    next_poll: float = 0.0
    parents: tuple[str, ...] = ()
    ending_sequence: str | None = None      # the shard was closed by a split or merge (ListShards)

    def read_to_end(self, response: dict) -> bool:
        """Whether this GetRecords answer leaves nothing to read: no next iterator (AWS, at the end of a
        closed shard), or a closed shard read up to its last sequence number or caught up with nothing
        left (moto hands out iterators on a closed shard for ever)."""
        if response.get("NextShardIterator") is None:
            return True
        if self.ending_sequence is None:
            return False
        if self.last_sequence is not None and int(self.last_sequence) >= int(self.ending_sequence):
            return True
        return not response["Records"] and response.get("MillisBehindLatest") == 0


@dataclass
class CaptureStats:
    records: int = 0
    undecodable: int = 0        # records read but not archived (each logged), whatever the reason
    skipped: Counter = field(default_factory=Counter)    # the same, per reason
    throttled: int = 0
    expired_iterators: int = 0
    shards: set = field(default_factory=set)


def capture_stream(stream: str, writer: ArchiveWriter, *, client=None, from_start: bool = True,
                   idle_exit_s: float | None = 30.0, max_records: int | None = None,
                   buffer_interval_s: float = 60.0, poll_interval_s: float = 0.2,
                   should_stop: Callable[[], bool] = lambda: False) -> CaptureStats:
    """Archive ``stream`` until it has been idle ``idle_exit_s`` seconds, ``max_records`` are read, or stopped."""
    client = client or kinesis_client()
    stats = CaptureStats()
    shards: dict[str, _Shard] = {}
    last_data = last_flush = last_discovery = time.monotonic()

    def discover() -> None:
        # Without from_start, every shard the first listing finds starts at LATEST, children of an
        # old split too; only a child that appears later (a split during the capture) starts from
        # its beginning, as its records come after its parent's.
        later = bool(shards)
        kwargs: dict[str, Any] = {"StreamName": stream}
        while True:
            page = client.list_shards(**kwargs)
            for shard in page["Shards"]:
                ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
                if shard["ShardId"] in shards:
                    shards[shard["ShardId"]].ending_sequence = ending
                    continue
                start = "TRIM_HORIZON" if from_start or (later and "ParentShardId" in shard) else "LATEST"
                iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                     ShardIteratorType=start)["ShardIterator"]
                parents = tuple(shard[k] for k in ("ParentShardId", "AdjacentParentShardId") if shard.get(k))
                shards[shard["ShardId"]] = _Shard(shard["ShardId"], iterator, parents=parents,
                                                  ending_sequence=ending)
                stats.shards.add(shard["ShardId"])
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}

    # Whatever stops the capture (a stop, the limit, the idle exit, or an error such as a dropped
    # connection), what was read is written: the writer buffers up to buffer_interval_s of records.
    try:
        discover()
        while not should_stop():
            now = time.monotonic()
            got_any = False
            for shard in shards.values():
                if shard.closed or now < shard.next_poll:
                    continue
                # A child after its parents: a key's records before a split are in the parent, those
                # after it in a child, and the archive keeps the order it reads (a replay keeps it per
                # key). Polled together, a child's records were archived before the parent's tail.
                if any(p in shards and not shards[p].closed for p in shard.parents):
                    continue
                try:
                    response = client.get_records(ShardIterator=shard.iterator, Limit=10_000)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code in _THROTTLED:
                        stats.throttled += 1
                        shard.backoff_s = min(5.0, max(0.2, shard.backoff_s * 2))
                        shard.next_poll = now + shard.backoff_s
                        continue
                    if code == "ExpiredIteratorException":
                        stats.expired_iterators += 1
                        kind = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                                 "StartingSequenceNumber": shard.last_sequence} if shard.last_sequence
                                else {"ShardIteratorType": "TRIM_HORIZON" if from_start else "LATEST"})
                        shard.iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard.shard_id,
                                                                   **kind)["ShardIterator"]
                        continue
                    raise
                shard.backoff_s = 0.0
                for item in response["Records"]:
                    refused = _archive(writer, item)
                    if refused is not None:
                        stats.undecodable += 1
                        stats.skipped[refused[0]] += 1
                        log.warning("shard %s sequence %s: not archived, %s (%s); payload starts %r", shard.shard_id,
                                    item["SequenceNumber"], refused[0], refused[1], item["Data"][:120])
                    shard.last_sequence = item["SequenceNumber"]
                    stats.records += 1
                    got_any = True
                    if max_records is not None and stats.records >= max_records:
                        return stats
                shard.iterator = response.get("NextShardIterator")
                if shard.read_to_end(response):
                    shard.closed = True
            now = time.monotonic()
            if got_any:
                last_data = now
            if now - last_flush >= buffer_interval_s:
                writer.flush()
                last_flush = now
            if now - last_discovery >= 10.0 or all(s.closed for s in shards.values()):
                discover()
                last_discovery = now
            if idle_exit_s is not None and now - last_data >= idle_exit_s:
                break
            if not got_any:
                time.sleep(poll_interval_s)
    finally:
        writer.flush()
    return stats


def _archive(writer: ArchiveWriter, item: dict) -> tuple[str, str] | None:
    """Add one Kinesis record to the archive; None when done, else (reason, detail) why it could not be."""
    data = item["Data"]
    arrival = item["ApproximateArrivalTimestamp"].timestamp()
    try:
        # Decoded here, strictly: json.loads(bytes) would also take UTF-16/32, which the job does not.
        # A leading BOM is dropped, as json.loads(bytes) did before: kept, the archived text would not
        # parse back (json.loads refuses a BOM in text), and a Parquet raw row would stop the reading.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return "not UTF-8", str(exc)
    try:
        record = json.loads(text)
    except ValueError as exc:
        return "not JSON", str(exc)
    except RecursionError:
        return "not JSON", "nested deeper than Python's JSON parser goes"
    if kind_of(record) is None:
        return "neither a metric nor an event", "no metric, value or event_type field"
    try:
        writer.add(record, arrival, payload=text)
    except ValueError as exc:
        return "not archivable", str(exc)
    return None
