"""The boto3 Kinesis poller (connectors.kinesis.poller) against the embedded endpoint over HTTP.

The endpoint is the session's ``aws_endpoint`` (moto with deploy/local/patches, so
SplitShard behaves as on AWS: moto 5.2.5 keeps routing new records to the closed parent).

Faults are the service's own error responses, injected at botocore's HTTP layer
(`before-send` returns the 400 response Kinesis sends), so the poller sees the
ClientError it would see on AWS; nothing of the poller is replaced.
"""
from __future__ import annotations

import json
import time

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import NoCredentialsError, ParamValidationError

from connectors.aws import make_client
from connectors.kinesis.flink_source import spread_group_key, subtask_of
from flink_fakes import KeyedRuntimeContext, KeyedStore, RuntimeContext
from connectors.kinesis.poller import (
    ExponentialBackoff,
    ShardPosition,
    StartPosition,
    StreamReader,
    group_by_lineage,
    list_shards,
    parse_records_before_botocore,
    positions_from_text,
    positions_to_text,
)


@pytest.fixture()
def kinesis(aws_client):
    return aws_client("kinesis", max_attempts=3)


@pytest.fixture()
def new_stream(kinesis, unique_name):
    """new_stream(shards) -> the name of a new stream with that many shards."""
    def create(shards: int) -> str:
        name = unique_name("src")
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        return name

    return create


def _put(kinesis, stream, start, count, keys=17):
    for batch_start in range(start, start + count, 500):
        kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"n": n, "key": f"k{n % keys}"}).encode(), "PartitionKey": f"k{n % keys}"}
            for n in range(batch_start, min(start + count, batch_start + 500))])


def _numbers(records):
    return [json.loads(r.payload)["n"] for r in records]


def _assert_exactly_once_in_key_order(records, expected, keys=17):
    numbers = _numbers(records)
    assert len(numbers) == len(set(numbers)), "a record was read twice"
    assert sorted(numbers) == sorted(expected), "records lost or unexpected"
    by_key: dict[int, list[int]] = {}
    for n in numbers:
        by_key.setdefault(n % keys, []).append(n)
    assert all(v == sorted(v) for v in by_key.values()), "a partition key's records came out of order"


def _reader(aws_client, stream, start="TRIM_HORIZON", **kwargs):
    client = parse_records_before_botocore(aws_client("kinesis", raw_timestamps=True))   # as the job's reader
    kwargs.setdefault("backoff", ExponentialBackoff(base_s=0.005, cap_s=0.02))
    reader = StreamReader(client, stream, start, **kwargs)
    reader.discover()
    return reader


class ServiceErrors:
    """Answers chosen GetRecords (or ``operation``) calls with the 400 error response Kinesis sends,
    before they reach the server; `plan(call_number) -> error code or None`."""

    def __init__(self, client, plan, operation="GetRecords"):
        self.plan = plan
        self.calls = 0
        self.injected: dict[str, int] = {}
        client.meta.events.register(f"before-send.kinesis.{operation}", self)

    def __call__(self, request, **_):
        self.calls += 1
        code = self.plan(self.calls)
        if not code:
            return None
        self.injected[code] = self.injected.get(code, 0) + 1
        body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()

        class Raw:
            def stream(self, **_):
                yield body

        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1",
                                              "x-amzn-RequestId": "injected"}, Raw())


def test_list_shards_follows_pagination(kinesis, new_stream):
    stream = new_stream(5)
    shards = list_shards(kinesis, stream, page_size=2)
    assert [s.shard_id for s in shards] == [f"shardId-00000000000{i}" for i in range(5)]


def test_multi_shard_read_returns_every_record_once_in_key_order(aws_client, kinesis, new_stream):
    stream = new_stream(4)
    _put(kinesis, stream, 0, 3000)
    reader = _reader(aws_client, stream, max_records_per_call=400)
    records = reader.read_available()
    _assert_exactly_once_in_key_order(records, range(3000))
    assert {r.shard_id for r in records} == {f"shardId-00000000000{i}" for i in range(4)}
    assert reader.metrics.records_read == 3000
    assert all(r.encoding_valid and r.arrival_ms > 1_600_000_000_000 for r in records)
    # Bounded records per call: no call returned more than asked.
    assert reader.metrics.get_records_calls >= 3000 // 400


def test_resume_from_stored_positions_reads_only_what_follows(aws_client, kinesis, new_stream):
    stream = new_stream(2)
    _put(kinesis, stream, 0, 1000)
    first = _reader(aws_client, stream, max_records_per_call=150)
    part = first.poll_once() + first.poll_once()
    assert 0 < len(part) < 1000
    # What a checkpoint stores and a restore hands back.
    stored = positions_to_text(first.positions)
    _put(kinesis, stream, 1000, 200)
    resumed = _reader(aws_client, stream, positions=positions_from_text(stored))
    rest = resumed.read_available()
    _assert_exactly_once_in_key_order(part + rest, range(1200))
    assert not set(_numbers(part)) & set(_numbers(rest))


def test_trim_horizon_reads_the_backlog_latest_only_new_records(aws_client, kinesis, new_stream):
    stream = new_stream(2)
    _put(kinesis, stream, 0, 300)
    oldest = _reader(aws_client, stream, "TRIM_HORIZON")
    newest = _reader(aws_client, stream, "LATEST")
    assert newest.poll_once() == []  # takes LATEST iterators now
    time.sleep(0.01)
    _put(kinesis, stream, 300, 120)
    assert sorted(_numbers(oldest.read_available())) == list(range(420))
    assert sorted(_numbers(newest.read_available())) == list(range(300, 420))


def test_at_timestamp_starts_at_the_first_record_put_at_or_after_it(aws_client, kinesis, new_stream):
    stream = new_stream(1)
    _put(kinesis, stream, 0, 50)
    time.sleep(0.05)
    cut_ms = int(time.time() * 1000)
    time.sleep(0.05)
    _put(kinesis, stream, 50, 30)
    reader = _reader(aws_client, stream, StartPosition.parse(f"AT_TIMESTAMP:{cut_ms}"))
    assert sorted(_numbers(reader.read_available())) == list(range(50, 80))
    assert StartPosition.parse("AT_TIMESTAMP:2026-11-01T10:00:00Z").timestamp_ms == 1793527200000


def test_split_mid_read_reads_parent_to_its_end_before_children(aws_client, kinesis, new_stream):
    stream = new_stream(1)
    _put(kinesis, stream, 0, 800)
    reader = _reader(aws_client, stream, max_records_per_call=100)
    records = reader.poll_once() + reader.poll_once()
    assert len(records) == 200
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2 ** 127))
    _put(kinesis, stream, 800, 700)  # into the two children
    reader.discover()  # the Flink fan-out re-lists shards every discovery interval
    assert reader.readable_shards() == ["shardId-000000000000"]  # children wait for the parent
    records += reader.read_available()
    _assert_exactly_once_in_key_order(records, range(1500))
    parent_positions = [i for i, r in enumerate(records) if r.shard_id == "shardId-000000000000"]
    child_positions = [i for i, r in enumerate(records) if r.shard_id != "shardId-000000000000"]
    assert max(parent_positions) < min(child_positions), "a child was read before its parent was drained"
    assert reader.positions["shardId-000000000000"].finished
    assert reader.metrics.shards_finished == 1
    # The family is one lineage group, so one Flink key orders it.
    groups = group_by_lineage(list_shards(kinesis, stream))
    assert list(groups) == ["shardId-000000000000"] and len(groups["shardId-000000000000"]) == 3
    # A restart from the stored positions reads nothing again.
    resumed = _reader(aws_client, stream, positions=positions_from_text(positions_to_text(reader.positions)))
    assert resumed.read_available() == []


def test_children_of_a_followed_shard_are_read_from_their_start_whatever_the_start_position(
        aws_client, kinesis, new_stream):
    stream = new_stream(1)
    reader = _reader(aws_client, stream, "LATEST")
    assert reader.poll_once() == []  # LATEST iterator on the open shard
    _put(kinesis, stream, 0, 3)
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2 ** 127))
    _put(kinesis, stream, 3, 5)  # into the children, before the reader knows them
    reader.discover()
    records = reader.read_available()
    _put(kinesis, stream, 8, 2)
    records += reader.read_available()
    # With the configured LATEST for the children too, 3-7 were lost (read: 0-2, 8, 9).
    _assert_exactly_once_in_key_order(records, range(10))
    assert reader.positions["shardId-000000000000"].followed_open
    # ... and a restart knows it: a child without a stored position still starts at its beginning
    restored = positions_from_text(positions_to_text(reader.positions))
    assert restored["shardId-000000000000"].followed_open


def test_a_split_older_than_a_latest_start_is_not_read_back(aws_client, kinesis, new_stream):
    stream = new_stream(1)
    _put(kinesis, stream, 0, 3)
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2 ** 127))
    _put(kinesis, stream, 3, 5)  # before the reader starts
    reader = _reader(aws_client, stream, "LATEST")
    assert reader.read_available() == []  # the closed parent is never followed; the children start at LATEST
    time.sleep(0.01)
    _put(kinesis, stream, 8, 4)
    _assert_exactly_once_in_key_order(reader.read_available(), range(8, 12))
    assert not reader.positions["shardId-000000000000"].followed_open


def test_expired_iterators_and_throughput_exceeded_lose_and_duplicate_nothing(aws_client, kinesis, new_stream):
    stream = new_stream(2)
    _put(kinesis, stream, 0, 2000)
    sleeps = []
    reader = _reader(aws_client, stream, max_records_per_call=100)
    reader._sleep = sleeps.append  # shard pollers take it on creation: record backoffs, do not wait
    pattern = ["ExpiredIteratorException", None, "ProvisionedThroughputExceededException",
               "ProvisionedThroughputExceededException", None, None]
    faults = ServiceErrors(reader.client, lambda call: pattern[call % len(pattern)])
    records = reader.read_available()
    _assert_exactly_once_in_key_order(records, range(2000))
    assert faults.injected["ExpiredIteratorException"] >= 5
    assert faults.injected["ProvisionedThroughputExceededException"] >= 10
    assert reader.metrics.iterator_refreshes == faults.injected["ExpiredIteratorException"]
    assert reader.metrics.throttles == faults.injected["ProvisionedThroughputExceededException"]
    # Two throttles in a row: first wait in [base/2, base], second in [base, 2 base], cap 0.02.
    assert len(sleeps) == reader.metrics.throttles
    assert all(0.0025 <= s <= 0.02 for s in sleeps) and max(sleeps) > 0.005


def test_a_shard_that_stays_throttled_yields_nothing_and_resumes_later(aws_client, kinesis, new_stream):
    stream = new_stream(1)
    _put(kinesis, stream, 0, 100)
    reader = _reader(aws_client, stream, max_attempts_per_poll=3)
    throttled = {"on": True}
    faults = ServiceErrors(reader.client,
                           lambda call: "ProvisionedThroughputExceededException" if throttled["on"] else None)
    assert reader.poll_once() == []  # bounded: 3 attempts, then give the tick back, no exception
    assert faults.injected["ProvisionedThroughputExceededException"] == 3
    throttled["on"] = False
    assert sorted(_numbers(reader.read_available())) == list(range(100))


def test_an_open_shard_answered_not_found_is_read_on_when_the_stream_is_back(aws_client, kinesis, new_stream):
    """ResourceNotFoundException for an open shard (the endpoint restarted, the stream briefly
    missing) marked the shard finished, and everything it got afterwards was lost; from GetRecords
    it failed the job. Only a closed shard can be trimmed away; an open one is tried again."""
    stream = new_stream(1)
    _put(kinesis, stream, 0, 50)
    reader = _reader(aws_client, stream, max_attempts_per_poll=3)
    reader._sleep = lambda s: None
    missing = {"on": True}
    not_found = lambda call: "ResourceNotFoundException" if missing["on"] else None     # noqa: E731
    ServiceErrors(reader.client, not_found, "GetShardIterator")
    assert reader.poll_once() == [] and reader.read_available() == []
    assert not any(p.finished for p in reader.positions.values())
    missing["on"] = False                            # the stream is back
    first = reader.read_available()
    _put(kinesis, stream, 50, 50)
    missing["on"] = True
    faults = ServiceErrors(reader.client, not_found)                  # GetRecords, the iterator held
    assert reader.poll_once() == [] and faults.injected["ResourceNotFoundException"] == 1
    missing["on"] = False
    _assert_exactly_once_in_key_order(first + reader.read_available(), range(100))
    assert not any(p.finished for p in reader.positions.values())


def test_a_closed_shard_answered_not_found_is_finished_only_once_the_stream_no_longer_lists_it(
        aws_client, kinesis, new_stream):
    """A "not found" for a closed shard finished it: right for a parent retention has trimmed away,
    but a parent still being drained when the stream was briefly missing (an endpoint restarting)
    lost its unread tail, and the finished flag is checkpointed, so no restore brought it back
    (20 of 40 records lost). The shard is now finished only when ListShards no longer lists it."""
    def split_with_a_backlog():
        """A reader of a 1-shard stream split after 30 records, 10 more in the children."""
        stream = new_stream(1)
        _put(kinesis, stream, 0, 30)
        kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000",
                            NewStartingHashKey=str(2 ** 127))
        _put(kinesis, stream, 30, 10)
        reader = _reader(aws_client, stream, max_records_per_call=10, max_attempts_per_poll=3)
        reader._sleep = lambda s: None
        return reader

    reader = split_with_a_backlog()
    first = reader.poll_once()
    assert _numbers(first) == list(range(10))                    # the parent, closed, read in part
    faults = ServiceErrors(reader.client, lambda call: "ResourceNotFoundException" if call == 1 else None)
    records = first + reader.read_available()
    assert faults.injected == {"ResourceNotFoundException": 1}
    _assert_exactly_once_in_key_order(records, range(40))

    # Retention trims the closed parent: every call on it is "not found", and ListShards leaves it out.
    reader = split_with_a_backlog()
    parent = "shardId-000000000000"

    def trimmed(request, **_):
        if parent.encode() in (request.body or b""):
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(
                json.dumps({"__type": "ResourceNotFoundException", "message": "trimmed"}).encode()))
        return None

    def unlisted(parsed, **_):
        parsed["Shards"] = [shard for shard in parsed.get("Shards", []) if shard["ShardId"] != parent]

    reader.client.meta.events.register("before-send.kinesis.GetShardIterator", trimmed)
    reader.client.meta.events.register("after-call.kinesis.ListShards", unlisted)
    _assert_exactly_once_in_key_order(reader.read_available(), range(30, 40))   # the children, after it
    assert reader.positions[parent].finished


def test_a_closed_shard_not_read_yet_is_not_finished_by_an_empty_answer_while_behind(
        aws_client, kinesis, new_stream):
    """Kinesis may answer GetRecords with no records, the same position and MillisBehindLatest > 0
    while it steps over a stretch of a shard that holds none. Only an empty answer at the tip
    (behind 0) shows that a closed shard never held a record; finishing the parent on any empty
    answer lost every record it held and let its children be read first."""
    stream = new_stream(1)
    _put(kinesis, stream, 0, 5)
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2 ** 127))
    _put(kinesis, stream, 5, 5)  # into the children
    reader = _reader(aws_client, stream)
    parent = "shardId-000000000000"
    empty_pages = []

    def empty_page_while_behind(request, **_):
        if empty_pages:
            return None
        iterator = json.loads(request.body)["ShardIterator"]
        empty_pages.append(iterator)
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Body(json.dumps(
            {"Records": [], "NextShardIterator": iterator, "MillisBehindLatest": 60_000}).encode()))

    reader.client.meta.events.register("before-send.kinesis.GetRecords", empty_page_while_behind)
    assert reader.poll_once() == [] and len(empty_pages) == 1      # the parent's first answer
    assert not reader.positions[parent].finished and reader.readable_shards() == [parent]
    records = reader.read_available()
    _assert_exactly_once_in_key_order(records, range(10))
    assert [r.shard_id for r in records[:5]] == [parent] * 5, "the parent's records first"
    assert reader.positions[parent].finished


@pytest.mark.parametrize("error", [ParamValidationError(report="Invalid type for parameter ShardIterator"),
                                   NoCredentialsError()], ids=lambda error: type(error).__name__)
def test_a_configuration_error_is_raised_not_retried(aws_client, kinesis, new_stream, error):
    """A request botocore cannot send (its parameters, no credentials) fails the same way every time:
    retried, it looked like a throttled shard, tick after tick, with nothing read and no error
    anywhere. Raised out of poll_once, it fails the reading task with the reason."""
    stream = new_stream(1)
    _put(kinesis, stream, 0, 3)
    reader = _reader(aws_client, stream)
    sleeps, calls = [], []
    reader._sleep = sleeps.append

    def refuse(**_):  # as botocore does for a request it will not build or sign: nothing is sent
        calls.append(1)
        raise error

    reader.client.meta.events.register("before-send.kinesis.GetRecords", refuse)
    with pytest.raises(type(error)):
        reader.poll_once()
    assert len(calls) == 1 and sleeps == []
    assert reader.metrics.transient_errors == 0 and reader.metrics.throttles == 0
    assert not reader.positions["shardId-000000000000"].finished


class _Body:
    def __init__(self, body):
        self.body = body

    def stream(self, **_):
        yield self.body


def test_bytes_that_are_not_utf8_are_passed_on_marked(aws_client, kinesis, new_stream):
    stream = new_stream(1)
    kinesis.put_record(StreamName=stream, Data=b'{"editor_id": "e-1"}', PartitionKey="a")
    kinesis.put_record(StreamName=stream, Data=b'{"editor_id": "\xff\xfe"}', PartitionKey="a")
    records = _reader(aws_client, stream).read_available()
    assert [r.encoding_valid for r in records] == [True, False]
    assert records[0].payload == '{"editor_id": "e-1"}'  # text, not parsed
    assert "\ufffd" in records[1].payload


def test_positions_round_trip_and_start_position_validation():
    positions = {"shardId-000000000001": ShardPosition("shardId-000000000001", "49", True),
                 "shardId-000000000000": ShardPosition("shardId-000000000000", None, False)}
    again = positions_from_text(positions_to_text(positions))
    assert again == positions
    with pytest.raises(ValueError):
        StartPosition.parse("EARLIEST")
    with pytest.raises(ValueError):
        StartPosition.parse("AT_TIMESTAMP:2026-11-01T10:00:00")  # no zone


def test_group_keys_spread_the_first_shards_over_the_subtasks():
    # Subtasks PyFlink 2.2.1 actually sent these keys to (key_by(..., Types.STRING()), parallelism 2,
    # max parallelism 128), observed on a mini-cluster: the model of Flink's key routing must agree.
    observed = {"shardId-000000000000#13": 1, "shardId-000000000001#1": 1, "shardId-000000000002#20": 1,
                "a": 1, "b": 1, "shardId-000000000003#3": 0, "c": 0, "hello": 0, "shardId-000000000000": 0,
                "shardId-000000000000#12": 0, "shardId-000000000002#8": 0, "shardId-000000000003#9": 1}
    assert {k: subtask_of(k, 2) for k in observed} == observed
    keys = [spread_group_key(f"shardId-{i:012d}") for i in range(4)]
    assert {subtask_of(k, 2) for k in keys[:2]} == {0, 1}
    assert {subtask_of(k, 4) for k in keys} == {0, 1, 2, 3}
    assert keys == [spread_group_key(f"shardId-{i:012d}") for i in range(4)]  # stable across runs


def test_moto_get_records_fastpath_answers_exactly_like_moto(in_process_moto, unique_name):
    # The shared endpoint always runs the fastpath; switching it off and on needs a server in this process.
    from deploy.local.patches.kinesis import get_records_fastpath as moto_fastpath

    kinesis = make_client("kinesis", endpoint_url=in_process_moto(), region="us-east-1", max_attempts=3)
    stream = unique_name("src")
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    _put(kinesis, stream, 0, 700)
    kinesis.put_record(StreamName=stream, Data=b'{"n": 700, "raw": "\xff"}', PartitionKey="k0")

    def everything():
        out = []
        for shard in list_shards(kinesis, stream):
            iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard.shard_id,
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for _ in range(5):
                response = kinesis.get_records(ShardIterator=iterator, Limit=300)
                out.append({k: v for k, v in response.items() if k != "ResponseMetadata"})
                iterator = response["NextShardIterator"]
        return out

    assert not moto_fastpath.is_applied()  # else "plain" below would already be the fast path
    plain = everything()
    moto_fastpath.apply()
    try:
        assert moto_fastpath.is_applied()
        fast = everything()
    finally:
        moto_fastpath.revert()
    assert sum(len(r["Records"]) for r in plain) == 701
    # Iterators encode the position, so they match too; MillisBehindLatest is computed the same way.
    assert fast == plain


def test_the_readers_record_parsing_gives_what_botocore_gives(aws_client, kinesis, new_stream):
    """reader_client's GetRecords answers equal botocore's own parse of the same answers: records with
    Data as bytes (one not UTF-8), an empty answer at the tip, 200 bodies the hook leaves to botocore
    (a record without Data, a null or unknown member, a byte-order mark), and a service error (left
    to botocore's ClientError)."""
    stream = new_stream(2)
    _put(kinesis, stream, 0, 300)
    kinesis.put_record(StreamName=stream, Data=b'{"n": 300, "raw": "\xff"}', PartitionKey="k0")
    plain = aws_client("kinesis", raw_timestamps=True)
    parsed_first = parse_records_before_botocore(aws_client("kinesis", raw_timestamps=True))
    hook_records = []
    parsed_first.meta.events.register(   # registered after the hook: sees what it handed to botocore
        "before-parse.kinesis.GetRecords",
        lambda customized_response_dict, **_: hook_records.append(len(customized_response_dict.get("Records", ()))))

    def answers(client, iterators):
        out = []
        for iterator in iterators:
            for _ in range(3):   # 200 records, the rest, then nothing (at the tip)
                response = client.get_records(ShardIterator=iterator, Limit=200)
                out.append({k: v for k, v in response.items() if k != "ResponseMetadata"})
                iterator = response["NextShardIterator"]
        return out

    iterators = [kinesis.get_shard_iterator(StreamName=stream, ShardId=shard.shard_id,
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
                 for shard in list_shards(kinesis, stream)]
    expected = answers(plain, iterators)
    assert answers(parsed_first, iterators) == expected
    assert sum(len(a["Records"]) for a in expected) == 301 and any(not a["Records"] for a in expected)
    assert b"\xff" in b"".join(r["Data"] for a in expected for r in a["Records"])
    assert sum(hook_records) == 301, "the records did not come from the hook"

    def injected(status, body):
        def answer(request, **_):
            class Raw:
                def stream(self, **_):
                    yield body if isinstance(body, bytes) else json.dumps(body).encode()

            return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1",
                                                     "x-amzn-RequestId": "injected"}, Raw())
        return answer

    def answer_with(*records):
        return {"Records": list(records), "NextShardIterator": "i", "MillisBehindLatest": 0}

    record = {"Data": "eyJuIjogMX0=", "PartitionKey": "k", "SequenceNumber": "1", "ApproximateArrivalTimestamp": 1.5}
    left_to_botocore = [answer_with({"PartitionKey": "k", "SequenceNumber": "1"}),      # no Data
                        answer_with(record, {**record, "EncryptionType": None}),         # a null member
                        answer_with(record, {**record, "Unmodelled": 1}),                # a member the model lacks
                        b"\xef\xbb\xbf" + json.dumps(answer_with(record)).encode()]     # a byte-order mark
    error = {"__type": "ExpiredIteratorException", "message": "injected"}
    for status, body in [(200, body) for body in left_to_botocore] + [(400, error)]:
        outcomes = []
        for client in (plain, parsed_first):
            handler = injected(status, body)
            client.meta.events.register("before-send.kinesis.GetRecords", handler)
            try:
                response = client.get_records(ShardIterator=iterators[0])
                outcomes.append({k: v for k, v in response.items() if k != "ResponseMetadata"})
            except client.exceptions.ExpiredIteratorException as exc:
                outcomes.append(exc.response["Error"])
            finally:
                client.meta.events.unregister("before-send.kinesis.GetRecords", handler)
        assert outcomes[0] == outcomes[1], (status, outcomes)
    assert outcomes[0]["Code"] == "ExpiredIteratorException"


def test_shard_discovery_failures_are_logged_not_silent(aws_endpoint, refused_url, unique_name, caplog):
    """A wrong endpoint (or stream) must not look like a quiet stream: the discovery operator warns,
    at most once a minute while it keeps failing, and says when the shards are listed again."""
    from connectors.kinesis.flink_source import ShardFanOut

    stream = unique_name("discovery")
    fan_out = ShardFanOut(stream, refused_url, "us-east-1", shard_discovery_interval_ms=500, max_parallelism=128)
    fan_out.open(RuntimeContext())
    fan_out._client = make_client("kinesis", endpoint_url=refused_url, region="us-east-1", max_attempts=1,
                                  connect_timeout_s=0.5)
    with caplog.at_level("WARNING", logger="connectors.kinesis.flink_source"):
        fan_out._discover()
        fan_out._discover()                      # within the minute: counted, not logged again
        assert fan_out._discovery_failures.count == 2
        [warning] = [r.getMessage() for r in caplog.records]
        assert f"cannot list the shards of stream {stream!r} at {refused_url}" in warning
        assert "EndpointConnectionError" in warning and "nothing is read from it" in warning
        caplog.clear()
        client = make_client("kinesis", endpoint_url=aws_endpoint.url, region="us-east-1")
        client.create_stream(StreamName=stream, ShardCount=2)
        fan_out._client = client
        fan_out._discover()
        [recovered] = [r.getMessage() for r in caplog.records]
        assert f"the shards of stream {stream!r} are listed again" in recovered
        assert fan_out._discoveries.count == 1 and len(json.loads(fan_out._groups[0][1])) >= 1


def test_ticks_queued_behind_a_poll_are_answered_by_it(aws_endpoint, kinesis, new_stream):
    """Ticks come at a fixed rate; while polls are slower than the interval they queue in front of
    the reader. A tick made more than a poll interval before the last poll began is answered by
    that poll: no GetRecords, nothing emitted, nothing lost. A tick made later (or stamped by a
    fan-out clock less than an interval behind) still polls, and so does any tick once a poll
    interval has passed since the last poll ended. After a poll that read nothing, a tick made
    before it began (or in its first millisecond) is dropped, and any other tick waits until half
    an interval has passed since it ended."""
    from pyflink.common import Row

    from connectors.kinesis.flink_source import KinesisGroupReader, ShardFanOut

    def put(values):
        kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"v": v}).encode(), "PartitionKey": str(v)} for v in values])

    def payloads(rows):
        return [json.loads(row[0])["v"] for row in rows if row[0]]

    def made_before_the_poll(tick, ms):
        return Row(tick[0], tick[1], tick[2], reader._last_poll[tick[0]][0] - ms)

    interval_ms = 3000
    stream = new_stream(1)
    put(range(5))
    fan_out = ShardFanOut(stream, aws_endpoint.url, "us-east-1", shard_discovery_interval_ms=60_000,
                          max_parallelism=128)
    fan_out.open(RuntimeContext())
    reader = KinesisGroupReader(stream, aws_endpoint.url, "us-east-1", "TRIM_HORIZON", 1000, "metrics",
                                poll_interval_ms=interval_ms)
    reader.open(RuntimeContext())
    get_records = []
    reader._client.meta.events.register("before-send.kinesis.GetRecords", lambda **_: get_records.append(1))

    [tick] = fan_out.process_element(None, None)
    assert payloads(reader.process_element(tick, None)) == [0, 1, 2, 3, 4]
    polls = len(get_records)
    put([5, 6])
    for age_ms in (interval_ms, interval_ms + 1, 60_000):      # queued while that poll ran
        assert list(reader.process_element(made_before_the_poll(tick, age_ms), None)) == []
    assert len(get_records) == polls and reader._counters["answeredTicks"].count == 3

    # Stamped less than an interval before the poll began (a fan-out clock behind the reader's): polls.
    assert payloads(reader.process_element(made_before_the_poll(tick, interval_ms // 2), None)) == [5, 6]
    assert len(get_records) > polls and reader._counters["answeredTicks"].count == 3

    put([7])
    old = made_before_the_poll(tick, 60_000)
    assert list(reader.process_element(old, None)) == []          # answered by the poll just made
    began_ms, ended, read_nothing = reader._last_poll[tick[0]]     # ... a poll interval ago: polls
    reader._last_poll[tick[0]] = (began_ms, ended - interval_ms / 1000, read_nothing)
    assert payloads(reader.process_element(old, None)) == [7]
    assert reader._counters["answeredTicks"].count == 4

    # Caught up: a poll that reads nothing drops the ticks queued right behind it (no burst of empty
    # calls): those made before it began (a burst from the tick source) and those within half an
    # interval of its end. Not the next tick after that, which comes less than an interval after the
    # poll ended: dropping it too polled every other tick.
    [fresh] = fan_out.process_element(None, None)
    [burst] = fan_out.process_element(None, None)          # made with it, before its poll began
    assert payloads(reader.process_element(fresh, None)) == []
    calls = len(get_records)
    [after] = fan_out.process_element(None, None)
    put([8])
    assert list(reader.process_element(after, None)) == [] and len(get_records) == calls   # too soon
    began_ms, ended, read_nothing = reader._last_poll[tick[0]]
    reader._last_poll[tick[0]] = (began_ms, ended - 0.6 * interval_ms / 1000, read_nothing)
    assert list(reader.process_element(burst, None)) == [] and len(get_records) == calls   # answered
    assert payloads(reader.process_element(after, None)) == [8] and len(get_records) > calls
    assert reader._counters["answeredTicks"].count == 4


def test_the_benchmarks_arrival_map_writes_each_shards_edges_once_even_for_a_one_record_shard(tmp_path):
    """connectors.kinesis.benchmark times a shard from its first to its last record; a shard holding one
    record has both edges on that record, and the same sequence number on another shard is no edge."""
    from connectors.kinesis.benchmark import _ArrivalMap

    arrivals = _ArrivalMap(str(tmp_path), {"shard-0": ("1", "9"), "shard-1": ("1", "1")})
    arrivals.open(RuntimeContext())
    for shard, seq in [("shard-0", "1"), ("shard-0", "5"), ("shard-1", "1"), ("shard-0", "9"), ("shard-2", "1")]:
        arrivals.map((None, shard, seq))
    arrivals.close()
    lines = [json.loads(line) for line in (tmp_path / "progress-0.jsonl").read_text().splitlines()]
    assert [(line["shard"], line["edge"]) for line in lines] == [
        ("shard-0", "first"), ("shard-1", "first"), ("shard-1", "last"), ("shard-0", "last")]


def test_a_connection_closed_without_an_answer_is_retried_not_raised(aws_client, kinesis, new_stream):
    """ConnectionClosedError (the server hung up without answering) was not among the errors the
    reader retried, and the reader's client makes one attempt: it raised out of poll_once and
    failed the task, restart after restart while a proxy kept cutting connections."""
    from botocore.exceptions import ConnectionClosedError

    stream = new_stream(1)
    _put(kinesis, stream, 0, 50)
    reader = _reader(aws_client, stream)
    reader._sleep = lambda _: None
    calls = []

    def hang_up(request, **_):
        calls.append(1)
        if len(calls) % 2:
            raise ConnectionClosedError(endpoint_url=request.url)

    reader.client.meta.events.register("before-send.kinesis.GetRecords", hang_up)
    assert sorted(_numbers(reader.read_available())) == list(range(50))
    assert reader.metrics.transient_errors >= 1


def test_a_latest_reader_restored_before_its_first_record_reads_what_came_meanwhile(aws_client, kinesis,
                                                                                      new_stream):
    """A LATEST shard that had emitted nothing was checkpointed with no position, and a restore took a
    fresh LATEST iterator: every record put since (during the downtime too) was skipped, on a sparse
    stream (the events) for a long time. The position now keeps when LATEST was taken."""
    stream = new_stream(2)
    _put(kinesis, stream, 0, 40)                     # before the start: LATEST skips these
    time.sleep(5.2)                                  # more than the clock margin (LATEST_CLOCK_MARGIN_MS)
    first = _reader(aws_client, stream, "LATEST")
    assert first.poll_once() == []                   # LATEST iterators taken, nothing emitted yet
    stored = positions_to_text(first.positions)      # the checkpoint
    _put(kinesis, stream, 40, 60)                    # while the job is down
    restored = _reader(aws_client, stream, "LATEST", positions=positions_from_text(stored))
    assert sorted(_numbers(restored.read_available())) == list(range(40, 100))
    # Once a shard has emitted a record, its sequence number is where a restore resumes: the
    # records after it, none of those before (not the start time's again).
    again = positions_to_text(restored.positions)
    _put(kinesis, stream, 100, 20)
    second = _reader(aws_client, stream, "LATEST", positions=positions_from_text(again))
    assert sorted(_numbers(second.read_available())) == list(range(100, 120))


def test_a_group_the_fan_out_no_longer_lists_stops_holding_the_watermark(aws_endpoint, kinesis, new_stream):
    """A split family gets another key once retention trims its root from ListShards, and the fan-out
    stops ticking the old key. Its reader, last seen behind (a backlog), held this subtask's
    watermark floor at that time until a restart: every window of the job stopped closing."""
    from pyflink.common import Row
    from pyflink.datastream import OutputTag

    from connectors.kinesis.flink_source import KinesisGroupReader, ShardFanOut

    stream = new_stream(2)
    hash_keys = ("0", str(2 ** 127 + 1))           # one per shard of a 2-shard stream

    def put(shard: int, timestamps):
        kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"timestamp": t}).encode(), "PartitionKey": "k", "ExplicitHashKey": hash_keys[shard]}
            for t in timestamps])

    def records(rows):
        return [row for row in rows if row[0] is not None and not isinstance(row[0], OutputTag)]

    put(0, [1_000, 2_000, 3_000])                   # the family that will be re-keyed: read one by one
    put(1, [9_000_000])
    fan_out = ShardFanOut(stream, aws_endpoint.url, "us-east-1", shard_discovery_interval_ms=60_000,
                          max_parallelism=128)
    fan_out.open(RuntimeContext())
    reader = KinesisGroupReader(stream, aws_endpoint.url, "us-east-1", "TRIM_HORIZON", 1, "metrics")
    store = KeyedStore()            # each group key's positions apart, as Flink keeps them
    reader.open(KeyedRuntimeContext(store))
    ticks = sorted(fan_out.process_element(None, None), key=lambda t: json.loads(t[1])[0]["starting_hash_key"] != "0")
    assert len(ticks) == 2
    for tick in ticks:
        store.key = tick[0]
        list(reader.process_element(tick, None))
    assert reader._watermark_floor_ms() == 1_000, "the first family has a backlog: it holds the floor"
    # The fan-out's next ListShards no longer lists the first family (its root trimmed, its shards
    # under another key now): only the second group is ticked, with that discovery's time.
    kept = ticks[1]
    store.key = kept[0]
    discovery, tick_ms = kept[2] + 10_000, kept[3] + 10_000
    put(1, [9_100_000])
    assert records(reader.process_element(Row(kept[0], kept[1], discovery, tick_ms), None))
    put(1, [9_200_000])
    rows = records(reader.process_element(Row(kept[0], kept[1], discovery, tick_ms + 5_000), None))
    assert [json.loads(row[0])["timestamp"] for row in rows] == [9_200_000]
    # The floor is the live group's own (it reads one record a call, so it is taken as behind), no
    # longer the retired group's 1,000.
    assert rows[0][-1] == 9_200_000
    assert reader._counters["groupsRetired"].count == 1


def test_paced_polls_of_a_retired_group_stay_counted_and_later_ones_are_counted_too():
    # pacedPolls is reported as the sum over the readers' alignments; retiring a group removed its
    # alignment from the sum, so the metric stood still until the others made up the difference.
    from types import SimpleNamespace

    from connectors.kinesis.flink_source import KinesisGroupReader

    reader = KinesisGroupReader("s", "http://127.0.0.1:9", "us-east-1", "TRIM_HORIZON", 1, "metrics")
    reader.open(RuntimeContext())
    old, live = SimpleNamespace(paced=5), SimpleNamespace(paced=0)
    reader._alignments = {"old": old, "live": live}
    reader._report_metrics()
    reader._group_discovery = {"old": 1, "live": 2}
    reader._newest_discovery = (2, 100)
    reader._retire_unlisted_groups("live", 2, 200)     # a later tick of discovery 2: "old" is not listed
    assert "old" not in reader._alignments
    live.paced = 3
    reader._report_metrics()
    assert reader._counters["pacedPolls"].count == 8


def test_groups_are_retired_when_every_tick_carries_a_new_discovery():
    """With shard discovery at every tick (its interval at or under the poll interval) each tick
    carried a newer discovery, the retirement waited for a second tick of one discovery, and no
    group was ever retired: an unlisted group's lagging shard held the watermark for ever."""
    from connectors.kinesis.flink_source import KinesisGroupReader

    reader = KinesisGroupReader("s", "http://127.0.0.1:9", "us-east-1", "TRIM_HORIZON", 1, "metrics")
    reader.open(RuntimeContext())
    reader._retire_unlisted_groups("old", 1, 100)
    reader._retire_unlisted_groups("live", 1, 100)
    for n in range(2, 5):                            # "old" is no longer listed from discovery 2 on
        reader._retire_unlisted_groups("live", n, 100 * n)
    assert set(reader._group_discovery) == {"live"}
    assert reader._counters["groupsRetired"].count == 1
