"""EventBridgePublisher against the embedded endpoint (bus → rule → SQS shows what was delivered).

Partial failures come from the real endpoint: the repo's fault proxy
(flink_jobs/reliability/fault_proxy.py) withholds some entries from moto and reports
them failed, and moto itself answers MalformedDetail for an entry whose Detail is not
JSON. Whole-request faults are injected at botocore's HTTP layer (`before-send`): the
error response EventBridge sends (throttling 400, 500) or the connection error botocore
raises for a refused connection.
"""
from __future__ import annotations

import json
import time

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from connectors.aws import make_client
from connectors.batching import PUT_EVENTS_MAX_BYTES
from connectors.eventbridge.publisher import (
    EventBridgePublisher,
    batches,
    dedup_key,
    entry_id,
    entry_size,
    make_entry,
)
from flink_jobs.reliability.fault_proxy import PUT_EVENTS, FaultProxy

EVENTS_CLIENT_OPTIONS = {"max_attempts": 1, "connect_timeout_s": 1, "read_timeout_s": 5}


@pytest.fixture()
def bus(bus_with_queue):
    """(bus name, queue url): a bus whose catch-all rule copies every event to a queue."""
    return bus_with_queue(["adops.analytics", "adops.monitoring"])


@pytest.fixture()
def events_client(aws_client):
    """A fresh events client per test (each test taps its requests); botocore does not retry."""
    return aws_client("events", **EVENTS_CLIENT_OPTIONS)


@pytest.fixture()
def proxy(aws_endpoint):
    """The fault proxy in front of the embedded endpoint: forwards unchanged unless a fault is switched on."""
    with FaultProxy(aws_endpoint.url, seed=5) as p:
        yield p


@pytest.fixture()
def proxied_events_client(proxy):
    """An events client whose requests go through the proxy to the real endpoint; botocore does not retry."""
    return make_client("events", endpoint_url=proxy.url, region="us-east-1", **EVENTS_CLIENT_OPTIONS)


def _received(aws_client, queue_url, expected, timeout=15.0):
    sqs = aws_client("sqs")
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expected:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    time.sleep(0.3)  # anything beyond `expected` would be a duplicate
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        got.append(json.loads(message["Body"]))
    return got


def _entries(bus_name, n, tag, detail_bytes=0):
    return [make_entry(bus_name, "adops.analytics", "Composite Anomaly Detected",
                       {"incident_id": f"inc-{tag}-{i:04d}", "editor_id": f"e-{i % 5:03d}",
                        "padding": "x" * detail_bytes})
            for i in range(n)]


class PutEventsTap:
    """Records every PutEvents request body and optionally answers it itself."""

    def __init__(self, client, respond=None):
        self.requests: list[list[dict]] = []
        self.respond = respond
        client.meta.events.register("before-send.eventbridge.PutEvents", self)

    def __call__(self, request, **_):
        entries = json.loads(request.body)["Entries"]
        self.requests.append(entries)
        answer = self.respond(len(self.requests), entries) if self.respond else None
        if answer is None:
            return None
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        payload = json.dumps(body).encode()

        class Raw:
            def stream(self, **_):
                yield payload

        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.1"}, Raw())




def test_entry_size_is_computed_as_eventbridge_does():
    entry = {"Source": "adops.analytics", "DetailType": "Composite Anomaly Detected", "Detail": '{"a":"é"}',
             "Resources": ["r1", "r22"], "EventBusName": "ignored-in-size"}
    assert entry_size(entry) == 15 + 26 + 10 + 2 + 3
    assert entry_size(dict(entry, Time="2026-11-01T10:00:00Z")) == entry_size(entry) + 14


def test_batches_keep_order_within_ten_entries_and_256_kib():
    small = _entries("b", 25, "small")
    assert [len(b) for b in batches(small)] == [10, 10, 5]
    big = _entries("b", 5, "big", detail_bytes=100_000)
    grouped = list(batches(big))
    assert [len(b) for b in grouped] == [2, 2, 1]
    assert all(sum(entry_size(e) for e in b) <= PUT_EVENTS_MAX_BYTES for b in grouped)
    assert [entry_id(e) for b in grouped for e in b] == [entry_id(e) for e in big]


def test_delivers_every_entry_in_order_with_its_deterministic_id(aws_client, events_client, bus):
    name, queue_url = bus
    client = events_client
    tap = PutEventsTap(client)
    publisher = EventBridgePublisher(name, client)
    entries = _entries(name, 23, "order")
    result = publisher.publish(entries)
    assert [entry_id(e) for e in result.delivered] == [entry_id(e) for e in entries]
    assert [len(r) for r in tap.requests] == [10, 10, 3]
    assert publisher.counters.sent == 23 and publisher.counters.retried == 0
    received = _received(aws_client, queue_url, 23)
    assert sorted(dedup_key(e) for e in received) == sorted(
        ("Composite Anomaly Detected", entry_id(e)) for e in entries)
    # No Resources: that field is for AWS resource ARNs, and the id is not one.
    assert all(not e.get("resources") for e in received)


def test_partial_failure_resends_only_the_failed_entries(aws_client, proxied_events_client, proxy, bus):
    name, queue_url = bus
    client = proxied_events_client
    tap = PutEventsTap(client)  # observes the requests only; they all go to the proxy and on to moto
    answers = []
    client.meta.events.register("after-call.eventbridge.PutEvents",
                                lambda parsed, **_: answers.append(parsed["Entries"]))
    publisher = EventBridgePublisher(name, client, base_backoff_s=0.01, max_backoff_s=0.05)
    entries = _entries(name, 10, "partial")
    # The first request: 3 of its 10 entries are withheld from moto and answered failed (retryable codes).
    with proxy.fault(PUT_EVENTS, "partial_failure", failed_fraction=0.3, max_injections=1):
        result = publisher.publish(entries)
    failed = [i for i, outcome in enumerate(answers[0]) if "ErrorCode" in outcome]
    assert len(failed) == 3
    assert len(tap.requests) == 2 and not result.overflowed
    assert [entry_id(e) for e in tap.requests[1]] == [entry_id(entries[i]) for i in failed]
    assert publisher.counters.partial_failures == 3 and publisher.counters.retried == 3
    assert publisher.counters.sent == 10
    counters = proxy.counters()
    assert counters["forwarded"] == {PUT_EVENTS: 2}
    assert counters["failed_entries"] == {PUT_EVENTS: 3} and counters["delivered_entries"] == {PUT_EVENTS: 10}
    # What really reached the bus: every entry exactly once (7 on the first request, the 3 re-sent on the second).
    received = _received(aws_client, queue_url, 10)
    assert sorted(dedup_key(e) for e in received) == sorted(
        ("Composite Anomaly Detected", entry_id(e)) for e in entries)


def test_throttling_and_server_errors_are_retried_with_backoff(aws_client, events_client, bus):
    name, queue_url = bus
    client = events_client
    answers = {1: (400, {"__type": "ThrottlingException", "message": "Rate exceeded"}),
               2: (500, {"__type": "InternalException", "message": "boom"})}
    PutEventsTap(client, lambda call, entries: answers.get(call))
    sleeps = []
    publisher = EventBridgePublisher(name, client, base_backoff_s=0.1, max_backoff_s=1.0, sleep=sleeps.append)
    entries = _entries(name, 4, "throttle")
    result = publisher.publish(entries)
    assert len(result.delivered) == 4 and not result.overflowed
    assert publisher.counters.throttled_requests == 2 and publisher.counters.retried == 8
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2  # equal jitter, doubling
    assert len(_received(aws_client, queue_url, 4)) == 4


def test_overflow_after_bounded_attempts_goes_to_the_handler_with_the_reason(events_client, bus):
    name, _ = bus
    client = events_client
    tap = PutEventsTap(client, lambda call, entries: (400, {"__type": "ThrottlingException", "message": "no"}))
    overflowed = []
    publisher = EventBridgePublisher(name, client, max_attempts=4, base_backoff_s=0.001, max_backoff_s=0.002,
                                     on_overflow=lambda entry, reason: overflowed.append((entry, reason)))
    entries = _entries(name, 12, "overflow")
    result = publisher.publish(entries)
    assert len(tap.requests) == 8  # two batches, four attempts each
    assert [entry_id(e) for e, _ in overflowed] == [entry_id(e) for e in entries]
    assert all(reason.startswith("DELIVERY_FAILED after 4 attempts: ThrottlingException") for _, reason in overflowed)
    assert publisher.counters.failed_over == 12 and result.delivered == []


def test_oversized_and_permanently_rejected_entries_are_not_retried(aws_client, proxied_events_client, proxy,
                                                                    bus):
    name, queue_url = bus
    overflowed = []
    publisher = EventBridgePublisher(name, proxied_events_client, base_backoff_s=0.01, max_backoff_s=0.05,
                                     on_overflow=lambda e, r: overflowed.append((e, r)))
    too_big = _entries(name, 1, "huge", detail_bytes=PUT_EVENTS_MAX_BYTES)[0]
    good = _entries(name, 2, "perm")
    # Detail that is not JSON: the endpoint itself (moto, as EventBridge) rejects that entry with MalformedDetail.
    malformed = dict(good[0], Detail='{"incident_id": "inc-perm-malformed", not json')
    result = publisher.publish([too_big, good[0], malformed, good[1]])
    assert [(e["Detail"], r.split(":")[0]) for e, r in overflowed] == [
        (too_big["Detail"], "OVERSIZED_ENTRY"), (malformed["Detail"], "DELIVERY_FAILED (permanent) MalformedDetail")]
    # One request, never repeated: the huge entry was not sent, the malformed one not retried.
    counters = proxy.counters()
    assert counters["forwarded"] == {PUT_EVENTS: 1} and counters["delivered_entries"] == {PUT_EVENTS: 2}
    assert publisher.counters.requests == 1 and publisher.counters.retried == 0
    assert publisher.counters.partial_failures == 1 and publisher.counters.failed_over == 2
    assert [entry_id(e) for e in result.delivered] == [entry_id(e) for e in good]
    received = _received(aws_client, queue_url, 2)
    assert sorted(dedup_key(e) for e in received) == sorted(("Composite Anomaly Detected", entry_id(e)) for e in good)


def test_default_settings_ride_out_a_30_second_outage(aws_client, events_client, bus):
    name, queue_url = bus
    client = events_client
    clock = {"now": 0.0}
    outage_ends = 30.0
    # Refused connections while the (simulated) clock is inside the outage; the
    # waits advance that clock instead of the test's wall time.
    PutEventsTap(client, lambda call, entries: EndpointConnectionError(endpoint_url=client.meta.endpoint_url)
                 if clock["now"] < outage_ends else None)
    publisher = EventBridgePublisher(name, client, sleep=lambda s: clock.__setitem__("now", clock["now"] + s),
                                     clock=lambda: clock["now"])
    entries = _entries(name, 5, "outage")
    result = publisher.publish(entries)
    assert len(result.delivered) == 5 and not result.overflowed
    assert clock["now"] >= outage_ends and publisher.counters.throttled_requests >= 5
    assert len(_received(aws_client, queue_url, 5)) == 5


def test_total_deadline_bounds_the_retries(refused_url):
    refused = make_client("events", endpoint_url=refused_url, region="us-east-1", **EVENTS_CLIENT_OPTIONS)
    clock = {"now": 0.0}
    overflowed = []
    publisher = EventBridgePublisher("b", refused, max_attempts=100, base_backoff_s=1, max_backoff_s=4,
                                     on_overflow=lambda e, r: overflowed.append(r), deadline_s=20,
                                     sleep=lambda s: clock.__setitem__("now", clock["now"] + s),
                                     clock=lambda: clock["now"])
    publisher.publish(_entries("b", 1, "deadline"))
    assert clock["now"] <= 20 and "deadline 20" in overflowed[0]
    assert "EndpointConnectionError" in overflowed[0]
    assert 3 < publisher.counters.requests < 100
