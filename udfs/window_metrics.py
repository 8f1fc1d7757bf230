"""Editor windows -> CloudWatch window items (connectors/cloudwatch): what the agents'
`get_editor_metrics` tool reads back (namespace AdOps, dimension EditorId).

One item per editor window row (sql/windows/editor_windows.sql): each metric with samples,
its mean and sample count, stamped with the window's start. A window row's record
timestamp is its rowtime, window_time = window end - 1 ms. With `cloudwatch.metrics.enabled`
off it emits nothing: the operator stays in the job so that the switch does not change the
job's topology (flink_jobs/main.py says why).
"""
from __future__ import annotations

from pyflink.datastream import ProcessFunction

from connectors.cloudwatch.datums import window_item
from udfs.correlator import METRICS_AT
from udfs.metric_detector import metric_windows


class EditorWindowMetrics(ProcessFunction):
    def __init__(self, window_size_s: int, enabled: bool = True):
        self.window_size_ms = window_size_s * 1000
        self.enabled = enabled

    def process_element(self, row, ctx):
        if not self.enabled:
            return
        start = int(ctx.timestamp()) + 1 - self.window_size_ms
        metrics = list(metric_windows(row, METRICS_AT))
        if metrics:
            yield window_item(row[0], start, metrics)
