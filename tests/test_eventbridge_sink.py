"""EventBridgePublisher against the embedded endpoint (bus → rule → SQS shows what was delivered).

Every fault comes from the real endpoint path: the repo's fault proxy
(flink_jobs/reliability/fault_proxy.py) sits between the client and moto and answers
whole requests with the error EventBridge sends (throttling 400, 500), withholds some
entries from moto and reports them failed (partial failure), or takes the endpoint away
(an outage: refused connections); moto itself answers MalformedDetail for an entry whose
Detail is not JSON. No test answers a request in place of the endpoint.
"""
from __future__ import annotations

import inspect
import json
import random
import time

import pytest

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
    """Records every PutEvents request body the client sends; never answers one (the request goes on)."""

    def __init__(self, client):
        self.requests: list[list[dict]] = []
        client.meta.events.register("before-send.eventbridge.PutEvents", self)

    def __call__(self, request, **_):
        self.requests.append(json.loads(request.body)["Entries"])


def _delivered_ids(received):
    return sorted(dedup_key(e) for e in received)


def _ids(entries):
    return sorted(("Composite Anomaly Detected", entry_id(e)) for e in entries)


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


def test_throttling_and_server_errors_are_retried_with_backoff(aws_client, proxied_events_client, proxy, bus):
    name, queue_url = bus
    sleeps = []
    publisher = EventBridgePublisher(name, proxied_events_client, base_backoff_s=0.1, max_backoff_s=1.0,
                                     sleep=sleeps.append)
    entries = _entries(name, 4, "throttle")
    # The proxy answers the 1st request 400 ThrottlingException and the 2nd 500 InternalException
    # (rules are tried in order; each is spent after one injection); the 3rd goes on to moto.
    with proxy.fault(PUT_EVENTS, "throttle", max_injections=1), \
            proxy.fault(PUT_EVENTS, "error", max_injections=1, status=500, error_type="InternalException",
                        message="boom"):
        result = publisher.publish(entries)
    assert len(result.delivered) == 4 and not result.overflowed
    assert publisher.counters.throttled_requests == 2 and publisher.counters.retried == 8
    assert 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2  # equal jitter, doubling
    counters = proxy.counters()
    assert counters["injected"] == {f"{PUT_EVENTS}:throttle": 1, f"{PUT_EVENTS}:error": 1}
    assert counters["forwarded"] == {PUT_EVENTS: 1} and counters["delivered_entries"] == {PUT_EVENTS: 4}
    # What really reached the bus: each entry exactly once.
    assert _delivered_ids(_received(aws_client, queue_url, 4)) == _ids(entries)


def test_overflow_after_bounded_attempts_goes_to_the_handler_with_the_reason(aws_client, proxied_events_client,
                                                                            proxy, bus):
    name, queue_url = bus
    overflowed = []
    publisher = EventBridgePublisher(name, proxied_events_client, max_attempts=4, base_backoff_s=0.001,
                                     max_backoff_s=0.002,
                                     on_overflow=lambda entry, reason: overflowed.append((entry, reason)))
    entries = _entries(name, 12, "overflow")
    with proxy.fault(PUT_EVENTS, "throttle"):  # every PutEvents answered 400 ThrottlingException
        result = publisher.publish(entries)
    counters = proxy.counters()
    assert counters["injected"] == {f"{PUT_EVENTS}:throttle": 8}  # two batches, four attempts each
    assert counters["forwarded"] == {}  # none reached the endpoint
    assert [entry_id(e) for e, _ in overflowed] == [entry_id(e) for e in entries]
    assert all(reason.startswith("DELIVERY_FAILED after 4 attempts: ThrottlingException") for _, reason in overflowed)
    assert publisher.counters.failed_over == 12 and result.delivered == []
    assert _received(aws_client, queue_url, 0) == []


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


@pytest.mark.parametrize("code", ["NotAuthorizedForDetailTypeException", "InvalidAccountIdException",
                                  "RedactionFailure"])
def test_every_per_entry_error_the_api_calls_non_retryable_is_dead_lettered_at_once(
        aws_client, proxied_events_client, proxy, bus, code):
    """These three were retried for about a minute before their dead letter (15 requests), holding
    up the bucket's later events; the API's model lists them as non-retryable."""
    name, queue_url = bus
    overflowed, sleeps = [], []
    publisher = EventBridgePublisher(name, proxied_events_client, sleep=sleeps.append,
                                     on_overflow=lambda e, r: overflowed.append((e, r)))
    entries = _entries(name, 4, f"refused-{code}")
    with proxy.fault(PUT_EVENTS, "partial_failure", failed_fraction=0.25, entry_error=code):
        result = publisher.publish(entries)
    assert [r for _, r in overflowed] == [f"DELIVERY_FAILED (permanent) {code}: {code} (injected)"]
    assert publisher.counters.requests == 1 and publisher.counters.retried == 0 and sleeps == []
    assert len(result.delivered) == 3 and len(_received(aws_client, queue_url, 3)) == 3


@pytest.mark.parametrize("refusal", ["missing bus", "AccessDeniedException"])
def test_a_request_refused_for_good_is_sent_once_and_its_entries_overflow_with_the_reason(
        aws_client, proxied_events_client, proxy, bus, refusal):
    """A bus that does not exist or a role without events:PutEvents answers every retry the same:
    retrying held the batch (and the bucket's later events) for about a minute, 15 requests, before
    the dead letters that a fixed configuration would have needed at once."""
    name, queue_url = bus
    overflowed, sleeps = [], []
    target = f"{name}-missing" if refusal == "missing bus" else name
    publisher = EventBridgePublisher(target, proxied_events_client, sleep=sleeps.append,
                                     on_overflow=lambda e, r: overflowed.append((e, r)))
    entries = [dict(e, EventBusName=target) for e in _entries(name, 3, "refused-request")]
    if refusal == "missing bus":  # the endpoint itself (moto, as EventBridge) answers 400 ResourceNotFoundException
        result = publisher.publish(entries)
        code, forwarded = "ResourceNotFoundException", {PUT_EVENTS: 1}
    else:  # the proxy answers 400 AccessDeniedException, as EventBridge does for a role without the right
        with proxy.fault(PUT_EVENTS, "error", status=400, error_type=refusal, message="not authorized"):
            result = publisher.publish(entries)
        code, forwarded = refusal, {}
    assert publisher.counters.requests == 1 and proxy.counters()["forwarded"] == forwarded and sleeps == []
    assert publisher.counters.throttled_requests == 0 and publisher.counters.retried == 0
    assert result.delivered == [] and [entry_id(e) for e, _ in overflowed] == [entry_id(e) for e in entries]
    assert all(r.startswith(f"DELIVERY_FAILED after 1 attempts: {code}: ") for _, r in overflowed)
    if refusal == "missing bus":
        assert all("does not exist" in r for _, r in overflowed)
    assert _received(aws_client, queue_url, 0) == []


def test_an_answer_with_fewer_results_than_entries_resends_them_all(aws_client, events_client, bus):
    """Results are matched to entries by position: with one missing nobody can tell which entry
    was accepted, so every one is re-sent (downstream deduplicates on the id). Taking such an
    answer as "nothing left to retry" reported entries neither delivered nor dead-lettered."""
    name, queue_url = bus
    client = events_client
    tap = PutEventsTap(client)
    cut = []

    def drop_last_result(response_dict, **_):
        # The answer as it comes off the wire, before botocore parses it: the first one loses a result.
        if cut or response_dict["status_code"] != 200:
            return
        body = json.loads(response_dict["body"])
        cut.append(body["Entries"].pop())
        response_dict["body"] = json.dumps(body).encode()

    client.meta.events.register("before-parse.eventbridge.PutEvents", drop_last_result)
    sleeps = []
    publisher = EventBridgePublisher(name, client, sleep=sleeps.append)
    entries = _entries(name, 4, "short-answer")
    result = publisher.publish(entries)
    assert len(cut) == 1 and len(tap.requests) == 2 and len(sleeps) == 1
    assert [entry_id(e) for e in tap.requests[1]] == [entry_id(e) for e in entries]
    assert [entry_id(e) for e in result.delivered] == [entry_id(e) for e in entries] and not result.overflowed
    assert publisher.counters.sent == 4 and publisher.counters.retried == 4
    # The endpoint accepted all four both times: each id reached the bus twice, none is missing.
    received = _received(aws_client, queue_url, 8)
    assert len(received) == 8 and set(_delivered_ids(received)) == set(_ids(entries))


def test_an_overflow_handler_that_raises_does_not_stop_the_rest_of_the_batch(aws_client, events_client, bus,
                                                                             caplog):
    """The handler is the caller's (the Flink sink's dead-letter output); if it fails for one entry,
    the entries after it must still be delivered or overflowed, not lost with an exception out of
    publish(), which never raises for delivery problems."""
    name, queue_url = bus
    handed = []

    def failing_handler(entry, reason):
        handed.append(entry_id(entry))
        raise RuntimeError("dead-letter output unavailable")

    publisher = EventBridgePublisher(name, events_client, on_overflow=failing_handler)
    too_big = _entries(name, 1, "raise-huge", detail_bytes=PUT_EVENTS_MAX_BYTES)[0]
    good = _entries(name, 2, "raise")
    malformed = dict(good[0], Detail='{"incident_id": "inc-raise-malformed", not json')
    # The huge entry overflows before any batch; the malformed one inside a batch, before good[1].
    result = publisher.publish([too_big, good[0], malformed, good[1]])
    assert handed == [entry_id(too_big), None]  # the malformed Detail has no readable id
    assert [entry_id(e) for e in result.delivered] == [entry_id(e) for e in good]
    assert [r.split(":")[0] for _, r in result.overflowed] == ["OVERSIZED_ENTRY",
                                                               "DELIVERY_FAILED (permanent) MalformedDetail"]
    assert publisher.counters.failed_over == 2 and publisher.counters.sent == 2
    assert caplog.text.count("on_overflow failed") == 2
    assert _delivered_ids(_received(aws_client, queue_url, 2)) == _ids(good)


# Wall-clock seconds per publisher second in the outage test: the publisher runs with its default
# schedule (attempts, backoffs, 90 s deadline) on a clock 20x faster than the wall clock.
TIME_SCALE = 0.05


def test_default_settings_ride_out_a_30_second_outage(aws_client, proxied_events_client, proxy, bus):
    name, queue_url = bus
    outage_s = 30.0
    # The publisher's waits and its deadline clock run 20x fast, so 30 s of its time is 1.5 s of
    # wall time; the proxy refuses connections for those 1.5 s (a real outage, then moto again).
    publisher = EventBridgePublisher(name, proxied_events_client, rng=random.Random(5),
                                     sleep=lambda s: time.sleep(s * TIME_SCALE),
                                     clock=lambda: time.monotonic() / TIME_SCALE)
    defaults = {p.name: p.default for p in inspect.signature(EventBridgePublisher).parameters.values()}
    settings = ("max_attempts", "base_backoff_s", "max_backoff_s", "deadline_s")
    assert [getattr(publisher, k) for k in settings] == [defaults[k] for k in settings]
    entries = _entries(name, 5, "outage")
    started = time.monotonic()
    proxy.outage(outage_s * TIME_SCALE, style="refuse")
    result = publisher.publish(entries)
    elapsed = (time.monotonic() - started) / TIME_SCALE
    assert len(result.delivered) == 5 and not result.overflowed
    assert elapsed >= outage_s and publisher.counters.throttled_requests >= 5
    counters = proxy.counters()
    # Every attempt during the outage was refused; the one after it reached moto with all 5 entries.
    assert counters["forwarded"] == {PUT_EVENTS: 1} and counters["delivered_entries"] == {PUT_EVENTS: 5}
    assert publisher.counters.requests == publisher.counters.throttled_requests + 1
    assert _delivered_ids(_received(aws_client, queue_url, 5)) == _ids(entries)


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


def test_details_never_carry_a_number_json_cannot_write():
    """A number too big for a double (1e999, valid JSON; Flink's JSON_QUERY writes it 1E+999) read as
    infinity, and json.dumps wrote a bare `Infinity`: PutEvents refuses such a detail for good."""
    from connectors.eventbridge.flink_sink import eventbridge_row
    from udfs.decisions import security_detail

    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON: {text}"))

    finding = security_detail("security_finding", 1793527500000, "e-1", None, 8.0,
                              '{"title": "bots", "x": 1E+999, "n": [-1e999, 2]}', 7)
    row = eventbridge_row("adops.security", "Security Incident Detected", finding)
    assert strict(row[2])["details"] == {"title": "bots", "x": "1E+999", "n": ["-1e999", 2]}
    # and whatever else a detail might hold: non-finite numbers go out as null, never as a bare token
    row = eventbridge_row("adops.analytics", "Composite Anomaly Detected",
                          {"incident_id": "inc-1", "metrics": [{"score": float("nan")}], "r": float("inf")})
    assert strict(row[2]) == {"incident_id": "inc-1", "metrics": [{"score": None}], "r": None}
