"""The fault proxy in front of the embedded endpoint: every fault mode, counted, and real."""
from __future__ import annotations

import json
import socket
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from flink_jobs.reliability.fault_proxy import FaultProxy

# botocore must not hide the injected faults behind its own retries here.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=10)


@pytest.fixture()
def proxy(aws_endpoint):
    with FaultProxy(aws_endpoint.url, seed=7) as p:
        yield p


def _client(service, url):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=NO_RETRIES)


@pytest.fixture()
def bus(bus_with_queue):
    """A bus whose rule copies every event to a queue, so delivered events can be counted."""
    return bus_with_queue(["test.reliability"])


def _drain(sqs, queue_url, expected, timeout=10.0):
    ids = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        for m in got:
            ids.append(json.loads(m["Body"])["detail"]["n"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        if not got and len(ids) >= expected:
            break
        if not got:
            time.sleep(0.1)
    return ids


def _entries(bus, ns):
    return [{"Source": "test.reliability", "DetailType": "t", "Detail": json.dumps({"n": n}), "EventBusName": bus}
            for n in ns]


def test_requests_pass_through_unchanged_without_faults(proxy, unique_name):
    kinesis = _client("kinesis", proxy.url)
    stream = unique_name("pass")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    assert kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["OpenShardCount"] == 1
    assert proxy.counters()["forwarded"]["Kinesis_20131202.CreateStream"] == 1
    assert proxy.counters()["injected"] == {}


def test_put_events_throttling_has_the_aws_error_shape_and_is_counted(proxy, bus):
    bus_name, _ = bus
    events = _client("events", proxy.url)
    with proxy.fault("AWSEvents.PutEvents", "throttle", max_injections=2):
        for _ in range(2):
            with pytest.raises(ClientError) as err:
                events.put_events(Entries=_entries(bus_name, [1]))
            assert err.value.response["Error"]["Code"] == "ThrottlingException"
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert events.put_events(Entries=_entries(bus_name, [1]))["FailedEntryCount"] == 0  # exhausted
    assert proxy.counters()["injected"] == {"AWSEvents.PutEvents:throttle": 2}


def test_rate_is_seeded_and_roughly_honoured(aws_endpoint):
    def injected_pattern():
        with FaultProxy(aws_endpoint.url, seed=3) as p:
            kinesis = _client("kinesis", p.url)
            p.set_mode("Kinesis_20131202.ListStreams", "throttle", rate=0.3)
            pattern = []
            for _ in range(60):
                try:
                    kinesis.list_streams()
                    pattern.append(0)
                except ClientError:
                    pattern.append(1)
            return pattern

    first, second = injected_pattern(), injected_pattern()
    assert first == second
    assert 8 <= sum(first) <= 30


def test_partial_failure_really_withholds_the_failed_entries(proxy, bus, aws_client):
    bus_name, queue_url = bus
    events = _client("events", proxy.url)
    with proxy.fault("AWSEvents.PutEvents", "partial_failure", failed_fraction=0.4):
        response = events.put_events(Entries=_entries(bus_name, range(10)))
    assert response["FailedEntryCount"] == 4
    failed = [i for i, e in enumerate(response["Entries"]) if "ErrorCode" in e]
    ok = [i for i, e in enumerate(response["Entries"]) if "EventId" in e]
    assert len(failed) == 4 and len(ok) == 6 and sorted(failed + ok) == list(range(10))
    assert {response["Entries"][i]["ErrorCode"] for i in failed} <= {"ThrottlingException", "InternalFailure"}
    delivered = _drain(aws_client("sqs"), queue_url, expected=6)
    assert sorted(delivered) == ok  # only the entries reported successful reached the bus
    assert proxy.counters()["failed_entries"] == {"AWSEvents.PutEvents": 4}


def test_partial_failure_of_kinesis_put_records(proxy, unique_name):
    kinesis = _client("kinesis", proxy.url)
    stream = unique_name("partial")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    with proxy.fault("Kinesis_20131202.PutRecords", "partial_failure", failed_fraction=0.5):
        response = kinesis.put_records(StreamName=stream,
                                       Records=[{"Data": str(i).encode(), "PartitionKey": "k"} for i in range(6)])
    assert response["FailedRecordCount"] == 3
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    stored = [r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    assert stored == [str(i) for i, r in enumerate(response["Records"]) if "SequenceNumber" in r]


def test_kinesis_expired_iterator_and_throughput_exceeded(proxy, unique_name):
    kinesis = _client("kinesis", proxy.url)
    stream = unique_name("faults")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="k")
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    for kind, code in [("expired_iterator", "ExpiredIteratorException"),
                       ("throughput_exceeded", "ProvisionedThroughputExceededException")]:
        with proxy.fault("Kinesis_20131202.GetRecords", kind, max_injections=1):
            with pytest.raises(ClientError) as err:
                kinesis.get_records(ShardIterator=iterator)
            assert err.value.response["Error"]["Code"] == code
    assert len(kinesis.get_records(ShardIterator=iterator)["Records"]) == 1
    assert proxy.counters()["injected"] == {
        "Kinesis_20131202.GetRecords:expired_iterator": 1,
        "Kinesis_20131202.GetRecords:throughput_exceeded": 1,
    }


def test_prefix_rules_and_fault_duration(proxy):
    kinesis = _client("kinesis", proxy.url)
    proxy.set_mode("Kinesis_20131202.*", "error", status=500, error_type="InternalFailure", duration_s=0.5)
    with pytest.raises(ClientError) as err:
        kinesis.list_streams()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    time.sleep(0.6)
    kinesis.list_streams()  # the rule timed out


def test_refusing_outage_refuses_connections_then_recovers(proxy):
    kinesis = _client("kinesis", proxy.url)
    kinesis.list_streams()  # an open keep-alive connection must be cut too
    proxy.outage(1.0, style="refuse")
    with pytest.raises(EndpointConnectionError):
        kinesis.list_streams()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    assert proxy.wait_outage_over(timeout=5)
    kinesis.list_streams()


def test_503_outage_answers_service_unavailable(proxy):
    events = _client("events", proxy.url)
    proxy.outage(0.5, style="503")
    with pytest.raises(ClientError) as err:
        events.list_event_buses()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert proxy.wait_outage_over(timeout=5)
    events.list_event_buses()
    assert proxy.counters()["outage_responses"] == 1


def test_only_loopback_upstreams_are_accepted():
    with pytest.raises(ValueError):
        FaultProxy("http://example.com:4566")
