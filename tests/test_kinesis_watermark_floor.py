"""Per-shard watermarking of the boto3 Kinesis source (connectors.kinesis.poller.StreamReader).

The Flink reader puts `StreamReader.lagging_event_ms` on every row as `watermark_floor_ms`
and the Table's watermark is min(event time, floor) - delay, so a shard that lags (a
backlog, throttling, a split whose children are not listed yet) holds the watermark of its
subtask instead of seeing its records declared late. These tests check the floor itself
against the embedded endpoint; the reliability harness (`python -m flink_jobs.reliability
--only source_faults`) measures its effect on the whole job.
"""
from __future__ import annotations

import json

import pytest

from connectors.kinesis.poller import UNKNOWN_LAG_FLOOR_MS, ExponentialBackoff, StreamReader
from test_kinesis_source import ServiceErrors

pytestmark = pytest.mark.aws

BASE_MS = 1_793_527_200_000
SHARD_0_HASH, SHARD_1_HASH = "1", str(2 ** 127 + 1)  # explicit hash keys: one per half of a 2-shard stream


def _put(kinesis, stream, hash_key, first_ms, count, step_ms):
    for start in range(0, count, 500):
        kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"n": n, "timestamp": first_ms + n * step_ms}).encode(),
             "PartitionKey": "k", "ExplicitHashKey": hash_key}
            for n in range(start, min(count, start + 500))])


def _reader(aws_client, stream, **kwargs):
    reader = StreamReader(aws_client("kinesis", raw_timestamps=True), stream, "TRIM_HORIZON",
                          backoff=ExponentialBackoff(base_s=0.005, cap_s=0.02), **kwargs)
    reader.discover()
    return reader


def _dense_and_sparse_stream(kinesis, stream, records_per_shard):
    """Shard 0 dense (1 s apart), shard 1 sparse (60 s apart): a batch of 100 covers 100 s
    of the first and 100 min of the second, so the sparse shard races ahead."""
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS, records_per_shard, 1_000)
    _put(kinesis, stream, SHARD_1_HASH, BASE_MS, records_per_shard, 60_000)


def test_floor_is_the_slowest_shard_with_a_backlog_and_none_once_caught_up(aws_client, unique_name):
    kinesis = aws_client("kinesis")
    stream = unique_name("floor")
    _dense_and_sparse_stream(kinesis, stream, 600)
    reader = _reader(aws_client, stream, max_records_per_call=100)
    dense, sparse = "shardId-000000000000", "shardId-000000000001"

    assert len(reader.poll_once()) == 200
    assert reader.has_unread_backlog()
    assert reader.shard_event_ms[dense] < reader.shard_event_ms[sparse]
    assert reader.lagging_event_ms() == reader.shard_event_ms[dense]
    # The floor is a time the dense shard has really reached (its batch median), not a guess.
    assert BASE_MS <= reader.lagging_event_ms() <= BASE_MS + 99 * 1_000

    assert len(reader.read_available()) == 1000
    assert not reader.has_unread_backlog()
    assert reader.lagging_event_ms() is None  # caught up: the rows' own event times rule again


def test_a_throttled_shard_keeps_holding_the_floor(aws_client, unique_name):
    kinesis = aws_client("kinesis")
    stream = unique_name("floor-throttled")
    _dense_and_sparse_stream(kinesis, stream, 50)
    reader = _reader(aws_client, stream, max_records_per_call=100, max_attempts_per_poll=2)
    reader.read_available()
    assert reader.lagging_event_ms() is None
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS + 50_000, 50, 1_000)
    # Every GetRecords of this round is refused (the poller gives up after 2 attempts).
    faults = ServiceErrors(reader.client, lambda call: "ProvisionedThroughputExceededException")
    assert reader.poll_once() == []
    assert faults.injected["ProvisionedThroughputExceededException"] == 4
    assert reader.throttled_shards == {"shardId-000000000000", "shardId-000000000001"}
    assert reader.has_unread_backlog()
    assert reader.lagging_event_ms() == min(reader.shard_event_ms.values())
    faults.plan = lambda call: None
    assert len(reader.read_available()) == 50
    assert reader.lagging_event_ms() is None


def test_a_shard_throttled_before_its_time_is_known_holds_the_floor_after_a_restore(aws_client, unique_name):
    """A restore keeps positions, not the shards' times. A shard ten minutes behind, throttled in
    its first polls, was left out of the floor, so its caught-up sibling's time moved the watermark
    and the behind shard's records then came out late."""
    kinesis = aws_client("kinesis")
    stream = unique_name("floor-restored")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS, 20, 1_000)
    _put(kinesis, stream, SHARD_1_HASH, BASE_MS, 20, 1_000)
    before = _reader(aws_client, stream, max_records_per_call=100)
    before.read_available()
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS + 20_000, 50, 1_000)              # behind
    _put(kinesis, stream, SHARD_1_HASH, BASE_MS + 600_000, 50, 1_000)             # ten minutes ahead
    restored = _reader(aws_client, stream, max_records_per_call=100, max_attempts_per_poll=1,
                       positions=before.positions)
    behind = "shardId-000000000000"
    faults = ServiceErrors(restored.client, lambda call: "ProvisionedThroughputExceededException"
                           if call % 2 == 1 else None)         # the first shard polled is throttled
    assert [json.loads(r.payload)["timestamp"] for r in restored.poll_once()][:1] == [BASE_MS + 600_000]
    assert faults.injected and restored.throttled_shards == {behind} and behind not in restored.shard_event_ms
    assert restored.lagging_event_ms() == UNKNOWN_LAG_FLOOR_MS
    faults.plan = lambda call: None
    restored.poll_once()
    assert restored.lagging_event_ms() is None                      # both read to their ends


class EmptyPageWhileBehind:
    """Answers the next GetRecords as Kinesis does while stepping over a stretch of a shard with no
    records: 200, no records, the same position, MillisBehindLatest > 0 (neither local endpoint
    answers so: both report 0 on an empty page)."""

    def __init__(self, client):
        self.armed = False
        client.meta.events.register("before-send.kinesis.GetRecords", self)

    def __call__(self, request, **_):
        if not self.armed:
            return None
        self.armed = False
        from botocore.awsrequest import AWSResponse

        iterator = json.loads(request.body)["ShardIterator"]
        body = json.dumps({"Records": [], "NextShardIterator": iterator, "MillisBehindLatest": 60_000}).encode()

        class Raw:
            def stream(self, **_):
                yield body

        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, Raw())


def test_an_empty_page_while_behind_is_a_backlog_not_caught_up(aws_client, unique_name):
    """The shard dropped out of the lagging set on such a page: it no longer held the floor, and
    its records behind the empty stretch could come out late."""
    kinesis = aws_client("kinesis")
    stream = unique_name("floor-empty-page")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS, 150, 1_000)
    reader = _reader(aws_client, stream, max_records_per_call=100)
    page = EmptyPageWhileBehind(reader.client)
    assert len(reader.poll_once()) == 100 and reader.has_unread_backlog()
    page.armed = True
    assert reader.poll_once() == [] and reader.has_unread_backlog()
    assert reader.lagging_event_ms() is not None
    assert len(reader.read_available()) == 50 and not reader.has_unread_backlog()


def test_a_split_parent_holds_the_floor_until_its_children_are_known_and_they_inherit_it(
        aws_client, unique_name):
    kinesis = aws_client("kinesis")
    stream = unique_name("floor-split")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS, 300, 1_000)
    reader = _reader(aws_client, stream, max_records_per_call=100)
    parent = "shardId-000000000000"
    reader.poll_once()
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2 ** 127))
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS + 300_000, 100, 1_000)  # into the children
    # Without a new ListShards the reader reads the parent to its end and knows no child.
    reader.read_available()
    assert reader.positions[parent].finished
    assert reader.finished_without_children() == [parent]
    parent_ms = reader.shard_event_ms[parent]
    assert reader.lagging_event_ms(also=[parent]) == parent_ms
    reader.discover()
    assert reader.finished_without_children() == []
    children = sorted(s for s in reader.shards if s != parent)
    assert reader.readable_shards() == children
    # A child that cannot be read yet (throttled) lags from where its parent ended.
    faults = ServiceErrors(reader.client, lambda call: "ProvisionedThroughputExceededException")
    reader.max_attempts_per_poll = 1
    for child in children:
        reader._poller(child).max_attempts_per_poll = 1
    assert reader.poll_once() == []
    assert faults.injected
    assert all(reader.shard_event_ms[c] == parent_ms for c in children)
    assert reader.lagging_event_ms() == parent_ms


def test_a_large_batch_is_timed_by_the_median_of_an_even_sample(aws_client, unique_name, monkeypatch):
    """A 1,000-record batch: its event time is the median of EVENT_TIME_SAMPLE payloads spread over
    it (each payload parsed in Python costs), still a time the shard has reached, near the whole
    batch's median, and not moved by a few far-ahead records."""
    from connectors.kinesis import poller

    kinesis = aws_client("kinesis")
    stream = unique_name("floor-sample")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS, 990, 1_000)
    _put(kinesis, stream, SHARD_0_HASH, BASE_MS + 12 * 3_600_000, 10, 1_000)  # ten records 12 h ahead
    parsed = []
    monkeypatch.setattr(poller, "payload_event_time_ms",
                        lambda payload, parse=poller.payload_event_time_ms: parsed.append(1) or parse(payload))
    reader = _reader(aws_client, stream, max_records_per_call=1_000)
    assert len(reader.poll_once()) == 1_000
    assert len(parsed) <= poller.EVENT_TIME_SAMPLE
    whole_batch_median_ms = BASE_MS + 499 * 1_000
    assert abs(reader.shard_event_ms["shardId-000000000000"] - whole_batch_median_ms) <= 20 * 1_000


def test_payloads_the_job_dead_letters_never_fail_the_reader(aws_client, unique_name):
    """The reader parses payload times itself (floor, pacing) before the SQL validates. A timestamp
    Python's int() refuses ('²' is a digit to str.isdigit; 5,000 digits are over int()'s limit), or a
    payload nested deeper than json.loads goes, used to raise out of poll_once: the task failed, was
    restored to the position before the record, read it again and failed again, for ever. Each is
    handed on (the SQL dead-letters it) and the good record's time still counts."""
    kinesis = aws_client("kinesis")
    stream = unique_name("floor-bad")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    bad = ['{"timestamp": "\u00b2"}', '{"timestamp": "%s"}' % ("9" * 5_000),
           '{"timestamp": 1, "x": %s%s}' % ("[" * 5_000, "]" * 5_000), '{"timestamp": 1.7935272e12}']
    good = json.dumps({"timestamp": BASE_MS})
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": payload.encode(), "PartitionKey": "k"} for payload in bad + [good]])
    reader = _reader(aws_client, stream)
    assert [r.payload for r in reader.poll_once()] == bad + [good]
    assert reader.shard_event_ms["shardId-000000000000"] == BASE_MS
