"""Shard split on the project's embedded endpoint (deploy/local): does it behave like Kinesis?

On AWS, SplitShard closes the parent (it keeps its records, gets no new ones) and
new records go to the two open children. moto 5.2.5 keeps routing every new
record to the *closed parent* (``Stream.get_shard_for_key`` returns the first
shard whose hash range matches, closed or not), so a Kinesis consumer, which
finishes a closed parent at its EndingSequenceNumber and moves on to the
children, loses every record put after it caught up. These tests failed on the
endpoint until deploy/local/patches/kinesis (commit a2f6a96) made SplitShard
behave as on AWS; they guard that patch.
"""
from __future__ import annotations

import json

import boto3
import pytest

from connectors.kinesis.poller import StreamReader

pytestmark = pytest.mark.aws


def _kinesis(url):
    return boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def test_records_put_after_a_split_go_to_the_open_children(aws_endpoint):
    kinesis = _kinesis(aws_endpoint.url)
    kinesis.create_stream(StreamName="reliability-split-routing", ShardCount=1)
    kinesis.split_shard(StreamName="reliability-split-routing", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2**127))
    shard_ids = {kinesis.put_record(StreamName="reliability-split-routing", Data=b"x",
                                    PartitionKey=f"key-{i}")["ShardId"] for i in range(20)}
    assert "shardId-000000000000" not in shard_ids, "records were put into the closed parent shard"


def test_a_reader_loses_no_record_across_a_split_on_the_embedded_endpoint(aws_endpoint):
    kinesis = _kinesis(aws_endpoint.url)
    kinesis.create_stream(StreamName="reliability-split-reader", ShardCount=1)

    def put(start, count):
        kinesis.put_records(StreamName="reliability-split-reader", Records=[
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"k{n % 7}"} for n in range(start, start + count)])

    put(0, 200)
    reader = StreamReader(kinesis, "reliability-split-reader", "TRIM_HORIZON")
    reader.discover()
    got = reader.read_available()
    kinesis.split_shard(StreamName="reliability-split-reader", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2**127))
    reader.discover()  # the job's fan-out lists shards every few seconds while records keep coming
    got += reader.read_available()
    put(200, 200)
    reader.discover()
    got += reader.read_available()
    numbers = sorted(json.loads(r.payload)["n"] for r in got)
    assert numbers == list(range(400)), f"{400 - len(set(numbers))} records lost across the split"
