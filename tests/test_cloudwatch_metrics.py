"""The job's CloudWatch publisher against the embedded endpoint, read back by the agents' metrics tool."""
from __future__ import annotations

import time
import uuid

import pytest
from botocore.exceptions import ClientError

from connectors.cloudwatch.datums import window_item
from connectors.cloudwatch.publisher import MAX_AGE_MS, MetricDataPublisher
from test_deploy_lambda_tools import call

pytestmark = pytest.mark.aws

WINDOW_MS = 300_000


class _Clock:
    """A monotonic clock that the publisher's sleeps advance (no real waiting)."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def _requests_to(client, answer=None):
    """Counts PutMetricData requests (datums per request); answer(n) may raise instead of sending the n-th."""
    sizes: list[int] = []

    def provide_params(params, **_):
        sizes.append(len(params["MetricData"]))
        if answer is not None:
            answer(len(sizes))

    client.meta.events.register("provide-client-params.cloudwatch.PutMetricData", provide_params)
    return sizes


def _window_start(minutes_ago: int) -> int:
    return (int(time.time() * 1000) - minutes_ago * 60_000) // WINDOW_MS * WINDOW_MS


def test_window_means_are_read_back_by_get_editor_metrics_weighted_by_samples(aws_client):
    editor = f"e-{uuid.uuid4().hex[:8]}"
    first, second = _window_start(20), _window_start(15)
    publisher = MetricDataPublisher(aws_client("cloudwatch"))
    published = publisher.publish([
        window_item(editor, first, [("rpm", 2.0, 10)]),
        window_item(editor, second, [("rpm", 1.0, 30), ("fill_rate", 0.8, 30)]),
        # CloudWatch refuses a whole request holding a datum older than two weeks: skipped, counted.
        window_item(editor, int(time.time() * 1000) - MAX_AGE_MS - WINDOW_MS, [("rpm", 9.0, 5), ("fill_rate", 0.1, 5)]),
    ])
    assert published == 3
    assert (publisher.counters.out_of_range, publisher.counters.dropped) == (2, 0)
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics",
                        {"editor_id": editor, "minutes": "60", "period_seconds": "3600", "metrics": "rpm,fill_rate"})
    assert status == 200, body
    (rpm,) = body["metrics"]["rpm"]
    assert rpm["average"] == pytest.approx((2.0 * 10 + 1.0 * 30) / 40)   # per sample, not per window
    assert (rpm["min"], rpm["max"]) == (1.0, 2.0)                        # of the window means
    assert body["metrics"]["fill_rate"][0]["average"] == pytest.approx(0.8)
    assert body["empty_metrics"] == []


def test_get_editor_metrics_reads_the_namespace_it_is_given(aws_client, monkeypatch):
    """The tool reads METRICS_NAMESPACE (the template sets it from the job's namespace), AdOps unset."""
    editor = f"e-{uuid.uuid4().hex[:8]}"
    publisher = MetricDataPublisher(aws_client("cloudwatch"), namespace="AdOpsStaging")
    assert publisher.publish([window_item(editor, _window_start(20), [("rpm", 3.0, 10)])]) == 1
    query = {"editor_id": editor, "minutes": "60", "period_seconds": "3600", "metrics": "rpm"}
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", query)
    assert status == 200 and body["empty_metrics"] == ["rpm"]          # not in AdOps
    monkeypatch.setenv("METRICS_NAMESPACE", "AdOpsStaging")
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", query)
    assert status == 200 and body["metrics"]["rpm"][0]["average"] == pytest.approx(3.0)


def test_batches_stay_within_a_thousand_datums(aws_client):
    client = aws_client("cloudwatch")
    sizes = _requests_to(client)
    start = _window_start(30)
    # 250 editor windows of ten metrics each: 2,500 datums.
    items = [window_item(f"e-batch-{n}", start, [(f"m{m}", 1.0 + m, 1) for m in range(10)]) for n in range(250)]
    assert MetricDataPublisher(client).publish(items) == 2500
    assert sizes == [1000, 1000, 500]


def test_throttling_is_retried_with_backoff_then_published(aws_client):
    client = aws_client("cloudwatch")

    def throttle_twice(n):
        if n <= 2:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutMetricData")

    sizes = _requests_to(client, throttle_twice)
    clock = _Clock()
    publisher = MetricDataPublisher(client, sleep=clock.sleep, clock=clock)
    assert publisher.publish([window_item("e-throttled", _window_start(10), [("rpm", 2.0, 3)])]) == 1
    assert sizes == [1, 1, 1] and len(clock.sleeps) == 2 and clock.sleeps[1] > 0
    assert (publisher.counters.retried_requests, publisher.counters.dropped) == (2, 0)


def test_an_unreachable_endpoint_is_retried_until_the_deadline_then_dropped_and_counted(aws_client, refused_url):
    from connectors.aws import make_client

    clock = _Clock()
    publisher = MetricDataPublisher(make_client("cloudwatch", endpoint_url=refused_url), deadline_s=30,
                                    sleep=clock.sleep, clock=clock)
    assert publisher.publish([window_item("e-down", _window_start(10), [("rpm", 2.0, 3)])]) == 0
    assert publisher.counters.dropped == 1 and publisher.counters.requests > 3
    assert sum(clock.sleeps) <= 30


def test_a_permanent_refusal_is_not_retried(aws_client):
    client = aws_client("cloudwatch")

    def deny(n):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutMetricData")

    sizes = _requests_to(client, deny)
    clock = _Clock()
    publisher = MetricDataPublisher(client, sleep=clock.sleep, clock=clock)
    assert publisher.publish([window_item("e-denied", _window_start(10), [("rpm", 2.0, 3)])]) == 0
    assert sizes == [1] and clock.sleeps == [] and publisher.counters.dropped == 1


def test_an_editor_id_cloudwatch_refuses_costs_only_that_editors_datums(aws_client):
    """The job accepts any non-empty editor id; CloudWatch refuses a whole request over one
    dimension value that is not printable ASCII, so such a window is skipped and counted."""
    editor = f"e-{uuid.uuid4().hex[:8]}"
    start = _window_start(10)
    publisher = MetricDataPublisher(aws_client("cloudwatch"))
    published = publisher.publish([window_item("e-\ufffd", start, [("rpm", 2.0, 3)]),
                                   window_item(editor, start, [("rpm", 2.0, 3), ("fill_rate", 0.8, 3)])])
    assert published == 2
    assert (publisher.counters.unpublishable, publisher.counters.dropped) == (1, 0)


def test_a_closed_connection_is_retried_not_raised(aws_client):
    from botocore.exceptions import ConnectionClosedError

    client = aws_client("cloudwatch")

    def close_first(n):
        if n == 1:
            raise ConnectionClosedError(endpoint_url="http://cloudwatch")

    sizes = _requests_to(client, close_first)
    clock = _Clock()
    publisher = MetricDataPublisher(client, sleep=clock.sleep, clock=clock)
    assert publisher.publish([window_item("e-reset", _window_start(10), [("rpm", 2.0, 3)])]) == 1
    assert sizes == [1, 1] and publisher.counters.retried_requests == 1


def test_switched_off_the_sink_sends_nothing_and_counts_what_a_savepoint_held():
    """cloudwatch.metrics.enabled off: the operators stay in the job (the job's operator ids must not
    depend on it, tests/test_job_plan.py); the window operator emits nothing, and window items
    restored from a savepoint taken while it was on are dropped and counted, with no client."""
    from connectors.cloudwatch.flink_sink import CloudWatchMetricsSink
    from udfs.window_metrics import EditorWindowMetrics

    sink = CloudWatchMetricsSink("AdOps", None, None, flush_interval_ms=1000, deadline_s=1.0, enabled=False)
    items = [window_item("e-1", 1793520000000, [("rpm", 2.5, 12), ("fill_rate", 0.8, 12)]),
             window_item("e-2", 1793520000000, [("rpm", 1.5, 6)])]
    counters = sink.send(items)   # no client was made: it would fail the call if it tried to send
    assert (counters.dropped, counters.published, counters.requests) == (3, 0, 0)

    class _Context:
        def timestamp(self):
            return 1793520300000 - 1

    row = ["e-1", 2.5, 4] + [None, 0] * 9 + ["window_time"]    # rpm's mean and count, no other metric
    assert list(EditorWindowMetrics(300).process_element(row, _Context())) == [
        window_item("e-1", 1793520000000, [("rpm", 2.5, 4)])]
    assert list(EditorWindowMetrics(300, enabled=False).process_element(row, _Context())) == []
