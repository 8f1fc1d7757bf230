"""A local stand-in for Firehose: read a live Kinesis stream and archive it by hour.

Polls every shard with GetRecords (from the oldest record or from now), keeps
each shard's last sequence number so an expired iterator resumes where it
stopped, backs off on throttling, follows shard splits/merges (a closed shard's
children are picked up on the next discovery), and writes the records to an
:class:`~connectors.archive.ArchiveWriter` partitioned by their arrival time
(``ApproximateArrivalTimestamp``), flushing a part file every
``buffer_interval_s`` like Firehose's buffer interval.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .store import ArchiveWriter

log = logging.getLogger(__name__)

_THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"}


def kinesis_client(endpoint_url: str | None = None, region: str | None = None):
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_KINESIS") or os.environ.get("AWS_ENDPOINT_URL")
    credentials = {}
    if endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return boto3.client("kinesis", endpoint_url=endpoint_url, region_name=region,
                        config=Config(retries={"max_attempts": 1}), **credentials)


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None = None
    last_sequence: str | None = None
    closed: bool = False
    backoff_s: float = 0.0
    next_poll: float = 0.0


@dataclass
class CaptureStats:
    records: int = 0
    undecodable: int = 0
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
        kwargs: dict[str, Any] = {"StreamName": stream}
        while True:
            page = client.list_shards(**kwargs)
            for shard in page["Shards"]:
                if shard["ShardId"] not in shards:
                    # A child shard starts from its beginning: its records come after its parent's.
                    start = "TRIM_HORIZON" if from_start or "ParentShardId" in shard and shards else "LATEST"
                    iterator = client.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                         ShardIteratorType=start)["ShardIterator"]
                    shards[shard["ShardId"]] = _Shard(shard["ShardId"], iterator)
                    stats.shards.add(shard["ShardId"])
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}

    discover()
    while not should_stop():
        now = time.monotonic()
        got_any = False
        for shard in shards.values():
            if shard.closed or now < shard.next_poll:
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
                arrival = item["ApproximateArrivalTimestamp"].timestamp()
                try:
                    record = json.loads(item["Data"])
                    writer.add(record, arrival)
                except (ValueError, UnicodeDecodeError):
                    stats.undecodable += 1
                    log.warning("shard %s sequence %s: not a JSON record, skipped", shard.shard_id,
                                item["SequenceNumber"])
                shard.last_sequence = item["SequenceNumber"]
                stats.records += 1
                got_any = True
                if max_records is not None and stats.records >= max_records:
                    writer.flush()
                    return stats
            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
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
    writer.flush()
    return stats
