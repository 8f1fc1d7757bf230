"""The CloudWatch metrics sink as a PyFlink operator.

    attach_cloudwatch_metrics_sink(items, "AdOps", endpoint_url=..., region=...)

Input: a DataStream of `connectors.cloudwatch.datums.window_item` strings (one per
editor window; udfs/window_metrics.py makes them from the editor windows).
Keyed by bucket and buffered in the checkpointed ListState of connectors.flink_buffer,
like the EventBridge and dead-letter sinks (at-least-once: a restart re-sends what was
buffered; CloudWatch keeps a repeated datum as more samples of the same mean, so a
window's average is unchanged, though over a period of several windows it weighs
twice); flushed at 100 windows (at most 1,000 datums: one request; the publisher splits a
batch by bytes itself) or `flush_interval_ms` after the first buffered item. Each bucket's request runs on a worker thread ("Concurrent
flushes" there): the editor windows feed this sink and the incident correlator alike,
so a CloudWatch outage, retried for up to `deadline_s`, must not hold the operator
thread and back-pressure the incidents. Metrics (group "cloudwatch"): counters
metricsPublished, metricsOutOfRange, metricsUnpublishable, metricsDropped,
putMetricDataRequests.

`enabled=False` (`cloudwatch.metrics.enabled` off): the job keeps this operator so that the
switch leaves its topology, and so its savepoints, unchanged (flink_jobs/main.py). Its
input then carries nothing; window items restored from a savepoint taken while it was on
are dropped, counted (metricsDropped) and logged, not sent: off means no PutMetricData.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from pyflink.datastream import DataStream, RuntimeContext

from connectors.cloudwatch.datums import MAX_DATUMS_PER_WINDOW
from connectors.flink_buffer import BufferedBatchFunction, TextHeartbeats

log = logging.getLogger(__name__)

# The sink's own heartbeat items; never sent.
HEARTBEATS = TextHeartbeats("cloudwatch")


class CloudWatchMetricsSink(BufferedBatchFunction):
    def __init__(self, namespace: str, endpoint_url: str | None, region: str | None,
                 flush_interval_ms: int, deadline_s: float, max_in_flight: int = 2, enabled: bool = True) -> None:
        from connectors.batching import PUT_METRIC_DATA_MAX_DATUMS

        # The publisher splits a batch by datums and bytes itself; the buffer only bounds a flush
        # to one request's worth of windows.
        super().__init__(PUT_METRIC_DATA_MAX_DATUMS // MAX_DATUMS_PER_WINDOW, 1 << 30, flush_interval_ms,
                         "cloudwatch", max_in_flight=max_in_flight)
        self.namespace = namespace
        self.endpoint_url = endpoint_url
        self.region = region
        self.deadline_s = deadline_s
        self.enabled = enabled

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        from connectors.aws import make_client

        # The datums are built by connectors.cloudwatch.datums and CloudWatch validates them again;
        # botocore's client-side check would only repeat that (connectors.aws.make_client).
        self._client = make_client("cloudwatch", endpoint_url=self.endpoint_url, region=self.region, max_attempts=1,
                                   max_pool_connections=max(10, self.max_in_flight),
                                   validate_parameters=False) if self.enabled else None
        group = runtime_context.get_metrics_group().add_group("cloudwatch")
        self._counters = {name: group.counter(metric) for name, metric in (
            ("published", "metricsPublished"), ("out_of_range", "metricsOutOfRange"),
            ("unpublishable", "metricsUnpublishable"),
            ("dropped", "metricsDropped"), ("requests", "putMetricDataRequests"))}

    def is_heartbeat(self, value: str) -> bool:
        return HEARTBEATS.is_heartbeat(value)

    def element_to_item(self, value: str) -> str:
        return value

    def item_size(self, item: str) -> int:
        return len(item)

    def send(self, items: list[str]) -> Any:
        """PutMetricData with retries, on a worker thread. A publisher per batch: its counters
        belong to this request alone."""
        from connectors.cloudwatch.datums import to_datums
        from connectors.cloudwatch.publisher import MetricDataPublisher, MetricsCounters

        if not self.enabled:
            dropped = sum(len(to_datums(item)[2]) for item in items)
            log.warning("CloudWatch metrics are off (cloudwatch.metrics.enabled): %d window metrics restored "
                        "from a savepoint taken while they were on are dropped, not published", dropped)
            return MetricsCounters(dropped=dropped)
        publisher = MetricDataPublisher(self._client, self.namespace, deadline_s=self.deadline_s)
        publisher.publish(items)
        return publisher.counters

    def emit(self, items: list[str], outcome: Any) -> Iterable[Any]:
        for name, counter in self._counters.items():
            counter.inc(getattr(outcome, name))
        return ()


def attach_cloudwatch_metrics_sink(
    items: DataStream,
    namespace: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    flush_interval_ms: int = 1000,
    buckets: int = 2,
    deadline_s: float = 90.0,
    name: str = "cloudwatch-metrics",
    heartbeat_interval_ms: int = 0,
    max_in_flight: int = 2,
    enabled: bool = True,
) -> DataStream:
    """PutMetricData every window item of `items` to `namespace` (module docstring).
    heartbeat_interval_ms: see `TextHeartbeats.key_by_bucket`. enabled=False: the operator
    publishes nothing (module docstring)."""
    sink = CloudWatchMetricsSink(namespace, endpoint_url, region, flush_interval_ms, deadline_s,
                                 max_in_flight=min(max_in_flight, buckets), enabled=enabled)
    return HEARTBEATS.attach(items, sink, buckets, heartbeat_interval_ms, name)
