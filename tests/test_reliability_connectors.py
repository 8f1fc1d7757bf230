"""The connectors under faults injected by the loopback proxy, in front of the embedded endpoint.

EventBridge publisher: survives throttling, partial failures and an outage, and
after bounded retries with backoff overflows to the dead-letter output.
Kinesis poller: expired iterators, throughput exceeded and a shard split, with
no record lost and none read twice.

The endpoint is the session's ``aws_endpoint``: moto with deploy/local/patches, so SplitShard
behaves as on AWS (moto 5.2.5 does not; ``test_reliability_endpoint_split`` shows the difference).
"""
from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from connectors.aws import make_client
from connectors.deadletter.records import dead_letter_json
from connectors.deadletter.writers import JsonLinesDeadLetterWriter, KinesisDeadLetterWriter
from connectors.eventbridge.publisher import EventBridgePublisher, dedup_key, entry_id, make_entry
from connectors.kinesis.poller import ExponentialBackoff, StreamReader
from flink_fakes import RuntimeContext
from flink_jobs.reliability.fault_proxy import KINESIS_GET_RECORDS, PUT_EVENTS, FaultProxy


@pytest.fixture()
def proxy(aws_endpoint):
    with FaultProxy(aws_endpoint.url, seed=21) as p:
        yield p


@pytest.fixture()
def direct(aws_client):
    """direct(service) -> a client straight to the endpoint (no proxy, no faults) to set up and check.

    One attempt, botocore's default 60 s timeouts: a slow answer on a loaded machine is not the fault under test.
    """
    return lambda service: aws_client(service, connect_timeout_s=60, read_timeout_s=60)


def _connector_client(service, url):
    # As the job builds them: the connector's own retry loop, botocore's reduced.
    return make_client(service, endpoint_url=url, region="us-east-1", connect_timeout_s=1, read_timeout_s=5)


@pytest.fixture()
def bus(bus_with_queue):
    """A bus with a catch-all rule into a queue: what reached EventBridge, copies included."""
    return bus_with_queue(["adops.analytics"])


def _delivered_keys(direct, queue_url, expected, timeout=15.0):
    sqs = direct("sqs")
    keys = []
    deadline = time.monotonic() + timeout
    idle_rounds = 0
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            keys.append(dedup_key(json.loads(m["Body"])))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        idle_rounds = 0 if got else idle_rounds + 1
        if len(keys) >= expected and idle_rounds >= 3:
            break
        if not got:
            time.sleep(0.1)
    return keys


def _incident_entries(bus_name, n, tag):
    return [make_entry(bus_name, "adops.analytics", "Composite Anomaly Detected",
                       {"incident_id": f"inc-{tag}-{i:04d}", "editor_id": f"e-{i % 7:03d}", "severity": "HIGH"})
            for i in range(n)]


class SleepRecorder:
    """Real sleeps, recorded, so the backoff schedule can be checked."""

    def __init__(self):
        self.delays = []

    def __call__(self, seconds):
        self.delays.append(seconds)
        time.sleep(seconds)


def test_publisher_delivers_every_entry_exactly_once_under_throttling(proxy, bus, direct):
    name, queue_url = bus
    publisher = EventBridgePublisher(name, _connector_client("events", proxy.url), base_backoff_s=0.02,
                                     max_backoff_s=0.2)
    entries = _incident_entries(name, 60, "throttle")
    with proxy.fault(PUT_EVENTS, "throttle", rate=0.5):
        result = publisher.publish(entries)
    assert not result.overflowed
    keys = _delivered_keys(direct, queue_url, 60)
    assert Counter(k[1] for k in keys) == Counter(entry_id(e) for e in entries)  # each exactly once
    assert proxy.counters()["injected"][f"{PUT_EVENTS}:throttle"] >= 3
    assert publisher.counters.throttled_requests >= 1


def test_publisher_resends_only_failed_entries_of_a_partial_failure(proxy, bus, direct):
    name, queue_url = bus
    publisher = EventBridgePublisher(name, _connector_client("events", proxy.url), base_backoff_s=0.02,
                                     max_backoff_s=0.2)
    entries = _incident_entries(name, 50, "partial")
    with proxy.fault(PUT_EVENTS, "partial_failure", rate=0.7, failed_fraction=0.4):
        result = publisher.publish(entries)
    assert not result.overflowed
    failed_by_proxy = proxy.counters()["failed_entries"][PUT_EVENTS]
    assert failed_by_proxy >= 5
    assert publisher.counters.partial_failures == failed_by_proxy
    keys = _delivered_keys(direct, queue_url, 50)
    assert Counter(k[1] for k in keys) == Counter(entry_id(e) for e in entries)


def test_publisher_rides_out_an_endpoint_outage(proxy, bus, direct):
    name, queue_url = bus
    publisher = EventBridgePublisher(name, _connector_client("events", proxy.url))  # production defaults
    entries = _incident_entries(name, 20, "outage")
    proxy.outage(6.0, style="refuse")
    started = time.monotonic()
    result = publisher.publish(entries)
    elapsed = time.monotonic() - started
    assert not result.overflowed
    assert elapsed >= 5.5  # it really waited for the endpoint to come back
    keys = _delivered_keys(direct, queue_url, 20)
    assert sorted(k[1] for k in keys) == sorted(entry_id(e) for e in entries)


def test_publisher_overflows_to_dead_letters_after_bounded_retries_with_backoff(proxy, bus, direct, unique_name):
    stream = unique_name("dl-overflow")
    name, _ = bus
    kinesis = direct("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    dead_letters = KinesisDeadLetterWriter(direct("kinesis"), stream)

    def overflow(entry, reason):
        dead_letters.write([dead_letter_json("DELIVERY_FAILED", reason, "eventbridge", entry["Detail"])])

    sleeps = SleepRecorder()
    publisher = EventBridgePublisher(name, _connector_client("events", proxy.url), max_attempts=5,
                                     base_backoff_s=0.05, max_backoff_s=0.4, on_overflow=overflow, sleep=sleeps)
    entries = _incident_entries(name, 12, "exhausted")
    with proxy.fault(PUT_EVENTS, "throttle"):
        result = publisher.publish(entries)
    assert len(result.overflowed) == 12 and publisher.counters.failed_over == 12
    # Two batches (10 + 2), five attempts each: bounded. Waits grow then cap.
    assert publisher.counters.requests == 10
    first_batch = sleeps.delays[:4]
    assert all(0.025 <= d <= 0.05 for d in first_batch[:1]) and all(0.2 <= d <= 0.4 for d in first_batch[3:])
    assert first_batch[3] > first_batch[0]
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    letters = [json.loads(r["Data"]) for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    assert {letter["reason_code"] for letter in letters} == {"DELIVERY_FAILED"}
    assert sorted(json.loads(letter["raw"])["incident_id"] for letter in letters) == sorted(
        entry_id(e) for e in entries)


def _stream_lines(kinesis, stream):
    lines = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        lines += [r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    return lines


def test_dead_letter_writer_rides_out_an_endpoint_outage(proxy, direct, tmp_path, unique_name):
    # Issue #6 item 4 scaled down: a 4 s outage against a 15 s retry deadline (production: 30 s
    # outages, 90 s deadline). The old writer gave up after 8 attempts.
    stream = unique_name("dl-outage")
    kinesis = direct("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    writer = KinesisDeadLetterWriter(_connector_client("kinesis", proxy.url), stream, deadline_s=15,
                                     base_backoff_s=0.1, max_backoff_s=1.0, fallback=fallback)
    lines = [dead_letter_json("INVALID_JSON", f"outage {i}", "metrics", "{") for i in range(30)]
    proxy.outage(4.0, style="refuse")
    started = time.monotonic()
    assert writer.write(lines) == 30
    assert time.monotonic() - started >= 3.5  # it really waited for the endpoint
    assert writer.counters.fell_back == 0 and writer.counters.dropped == 0
    assert sorted(_stream_lines(kinesis, stream)) == sorted(lines)


def test_dead_letter_writer_falls_back_to_the_file_when_the_outage_outlasts_its_deadline(proxy, direct,
                                                                                       tmp_path, unique_name):
    stream = unique_name("dl-fallback")
    kinesis = direct("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    writer = KinesisDeadLetterWriter(_connector_client("kinesis", proxy.url), stream, deadline_s=1.5,
                                     base_backoff_s=0.1, max_backoff_s=0.5, fallback=fallback)
    lines = [dead_letter_json("INVALID_JSON", f"fallback {i}", "metrics", "{") for i in range(30)]
    proxy.outage(4.0, style="503")
    started = time.monotonic()
    assert writer.write(lines) == 0
    elapsed = time.monotonic() - started
    proxy.wait_outage_over(10)
    fallback.close()
    assert elapsed < 3.5  # bounded by the deadline, not by the outage
    assert writer.counters.fell_back == 30 and writer.counters.dropped == 0
    assert [line for line in (tmp_path / "fallback.jsonl").read_text().splitlines()] == lines
    assert _stream_lines(kinesis, stream) == []


def test_botocore_does_not_retry_behind_the_connectors_back(proxy):
    """connectors.aws.make_client(max_attempts=1) must mean one HTTP call per connector attempt."""
    events = make_client("events", endpoint_url=proxy.url, region="us-east-1", max_attempts=1)
    with proxy.fault(PUT_EVENTS, "throttle"):
        with pytest.raises(Exception):
            events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
    assert proxy.counters()["injected"][f"{PUT_EVENTS}:throttle"] == 1


def _put_numbered(kinesis, stream, start, count):
    for i in range(start, start + count, 100):
        kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"n": n, "key": f"k{n % 13}"}).encode(), "PartitionKey": f"k{n % 13}"}
            for n in range(i, min(i + 100, start + count))])


def _read_all(reader, idle_polls=3, limit=400):
    out, idle = [], 0
    for _ in range(limit):
        batch = reader.poll_once()
        out.extend(batch)
        idle = 0 if batch or reader._has_newly_readable() else idle + 1
        if idle >= idle_polls:
            break
    return out


def _check_exactly_once_in_key_order(records, expected_n):
    numbers = [json.loads(r.payload)["n"] for r in records]
    assert len(numbers) == len(set(numbers)), "a record was read twice"
    assert sorted(numbers) == list(range(expected_n)), "a record was lost"
    by_key = {}
    for n in numbers:
        by_key.setdefault(n % 13, []).append(n)
    assert all(v == sorted(v) for v in by_key.values()), "a partition key's records came out of order"


def test_poller_survives_expired_iterators_and_throughput_exceeded(proxy, direct, unique_name):
    stream = unique_name("src-faults")
    direct("kinesis").create_stream(StreamName=stream, ShardCount=2)
    _put_numbered(direct("kinesis"), stream, 0, 1500)
    reader = StreamReader(_connector_client("kinesis", proxy.url), stream, "TRIM_HORIZON",
                          max_records_per_call=50, backoff=ExponentialBackoff(base_s=0.01, cap_s=0.05))
    reader.discover()
    proxy.set_mode(KINESIS_GET_RECORDS, "expired_iterator", rate=0.2)
    proxy.set_mode(KINESIS_GET_RECORDS, "throughput_exceeded", rate=0.25)
    records = _read_all(reader)
    proxy.clear()
    _check_exactly_once_in_key_order(records, 1500)
    injected = proxy.counters()["injected"]
    assert injected[f"{KINESIS_GET_RECORDS}:expired_iterator"] >= 5
    assert injected[f"{KINESIS_GET_RECORDS}:throughput_exceeded"] >= 5
    assert reader.metrics.iterator_refreshes == injected[f"{KINESIS_GET_RECORDS}:expired_iterator"]


def test_poller_reads_across_a_shard_split_without_loss_or_rereading(proxy, direct, unique_name):
    stream = unique_name("src-split")
    kinesis = direct("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    _put_numbered(kinesis, stream, 0, 600)
    reader = StreamReader(_connector_client("kinesis", proxy.url), stream, "TRIM_HORIZON",
                          max_records_per_call=100, backoff=ExponentialBackoff(base_s=0.01, cap_s=0.05))
    reader.discover()
    proxy.set_mode(KINESIS_GET_RECORDS, "expired_iterator", rate=0.15)
    first = [r for _ in range(3) for r in reader.poll_once()]  # part of the parent read
    assert 0 < len(first) < 600
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2**127))
    _put_numbered(kinesis, stream, 600, 600)
    reader.discover()  # the job's fan-out re-lists shards periodically
    rest = _read_all(reader)
    records = first + rest
    _check_exactly_once_in_key_order(records, 1200)
    shards_used = {r.shard_id for r in records}
    assert shards_used == {"shardId-000000000000", "shardId-000000000001", "shardId-000000000002"}
    # Restart from the saved positions: nothing is read again.
    resumed = StreamReader(_connector_client("kinesis", proxy.url), stream, "TRIM_HORIZON",
                           positions=reader.positions)
    resumed.discover()
    assert _read_all(resumed) == []


class _SinkCtx:
    def __init__(self):
        self.event_timers, self.processing_timers = set(), set()

    def timer_service(self):
        return self

    def get_current_key(self):
        return 0

    def current_processing_time(self):
        return int(time.time() * 1000)

    def register_processing_time_timer(self, t):
        self.processing_timers.add(t)

    def delete_processing_time_timer(self, t):
        self.processing_timers.discard(t)

    def register_event_time_timer(self, t):
        self.event_timers.add(t)


def _run_sink_to_end_of_input(sink, rows, before_flush=lambda: None):
    """The Flink sink operator's code path for a bounded input: elements, then the final watermark.

    ``before_flush`` runs between buffering and the flush, e.g. to start an outage the flush
    must meet however long the set-up took on a loaded machine."""
    runtime, ctx = RuntimeContext(), _SinkCtx()
    sink.open(runtime)
    out = [o for row in rows for o in sink.process_element(row, ctx)]
    assert out == [] and len(ctx.event_timers) == 1  # buffered, end-of-input timer armed
    before_flush()
    for t in sorted(ctx.event_timers):
        out += list(sink.on_timer(t, ctx))
    return out, runtime.metrics.metrics


def test_flink_sink_sends_entries_whose_retries_are_exhausted_to_the_dead_letter_output(proxy, bus):
    from connectors.eventbridge.flink_sink import EVENTBRIDGE_DEAD_LETTER_TAG, EventBridgeBatchSink, eventbridge_row

    name, _ = bus
    sink = EventBridgeBatchSink(name, proxy.url, "us-east-1", flush_interval_ms=200, max_attempts=3,
                                base_backoff_s=0.05, max_backoff_s=0.1, deadline_s=5, latency_log_path=None)
    rows = [eventbridge_row("adops.analytics", "Composite Anomaly Detected",
                            {"incident_id": f"inc-sink-{i}", "editor_id": "e-001", "severity": "HIGH"})
            for i in range(3)]
    with proxy.fault(PUT_EVENTS, "throttle"):
        out, metrics = _run_sink_to_end_of_input(sink, rows)
    assert all(isinstance(o, tuple) and o[0] is EVENTBRIDGE_DEAD_LETTER_TAG for o in out)
    letters = [json.loads(o[1]) for o in out]
    assert [(d["reason_code"], d["source"]) for d in letters] == [("DELIVERY_FAILED", "eventbridge")] * 3
    assert all(d["reason"].startswith("DELIVERY_FAILED after 3 attempts: ThrottlingException") for d in letters)
    assert sorted(json.loads(json.loads(d["raw"])["Detail"])["incident_id"] for d in letters) == [
        "inc-sink-0", "inc-sink-1", "inc-sink-2"]
    assert metrics["eventsFailedOver"].count == 3 and metrics["eventsSent"].count == 0
    assert metrics["putEventsRequests"].count == 3


def test_flink_sink_delivers_after_the_outage_and_reports_receipts(proxy, bus, direct):
    from connectors.eventbridge.flink_sink import EventBridgeBatchSink, eventbridge_row

    name, queue_url = bus
    sink = EventBridgeBatchSink(name, proxy.url, "us-east-1", flush_interval_ms=200, max_attempts=15,
                                base_backoff_s=0.1, max_backoff_s=1.0, deadline_s=15, latency_log_path=None)
    rows = [eventbridge_row("adops.analytics", "Composite Anomaly Detected",
                            {"incident_id": f"inc-sink-ok-{i}", "editor_id": "e-001", "severity": "HIGH"})
            for i in range(3)]
    out, metrics = _run_sink_to_end_of_input(sink, rows, before_flush=lambda: proxy.outage(3.0, style="refuse"))
    assert sorted(json.loads(o)["id"] for o in out) == ["inc-sink-ok-0", "inc-sink-ok-1", "inc-sink-ok-2"]
    # The receipts split the latency: upstream, buffer wait, PutEvents (here: the outage).
    for receipt in map(json.loads, out):
        assert (receipt["emitted_at_ms"] <= receipt["received_at_ms"] <= receipt["flush_started_ms"]
                <= receipt["delivered_at_ms"])
        assert receipt["delivered_at_ms"] - receipt["flush_started_ms"] >= 2500
        assert receipt["latency_ms"] == receipt["delivered_at_ms"] - receipt["emitted_at_ms"]
    assert metrics["eventsFailedOver"].count == 0 and metrics["eventsSent"].count == 3
    assert sorted(k[1] for k in _delivered_keys(direct, queue_url, 3)) == [
        "inc-sink-ok-0", "inc-sink-ok-1", "inc-sink-ok-2"]
