"""PutMetricData of the job's per-editor window means — Flink-free.

Why the job publishes them: the agents' first check, `get_editor_metrics`
(deploy/lambda/get_editor_metrics), reads an editor's recent metrics from CloudWatch
(namespace `AdOps`, dimension `EditorId`), and the job is the one part of the system
that has them: its 5-minute editor windows (sql/windows/editor_windows.sql). Each
window gives one datum per metric with samples: `Values=[window mean]`,
`Counts=[samples]`, `Timestamp` = the window's start. CloudWatch then answers, for any
period, `Average` weighted by samples, `SampleCount`, and `Minimum` / `Maximum` of the
window means (not of the raw samples, which the job does not keep).

An editor window is carried through Flink as one compact JSON item
(`connectors.cloudwatch.datums.window_item`: all its metrics, so the sink's keyed buffer
holds one entry per window, not one per metric) and becomes PutMetricData datums only here.

Limits (CloudWatch API reference): 1,000 datums and 1 MB per request; a timestamp
more than two weeks old or more than two hours ahead is refused, and so is a dimension
value that is not 1-1024 printable ASCII characters — the whole request fails with
InvalidParameterValue. Such datums are therefore skipped before sending and counted
(`out_of_range`, `unpublishable`): a replay of traffic older than two weeks publishes
nothing, and an editor id the job accepts but CloudWatch does not (any non-empty string
is a valid editor id) costs only that editor's datums.

Retries: throttling, 5xx and connection errors (any botocore error but missing
credentials and parameter validation), with equal-jitter exponential backoff until `deadline_s` (90 s, as the other sinks: a 60 s outage is ridden out).
What is still unsent then, or refused for good (access denied, validation), is
dropped, counted (`dropped`) and logged. These are a derived view of records the job
has already counted: windows, incidents and dead letters do not depend on them.
"""
from __future__ import annotations

from connectors.batching import PUT_METRIC_DATA_MAX_BYTES, PUT_METRIC_DATA_MAX_DATUMS, limited_batches
from connectors.cloudwatch.datums import datum_size, publishable_dimension, to_datums
from connectors.retry import equal_jitter_delay, is_permanent_sdk_error

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

#: What deploy/lambda/get_editor_metrics reads.
DEFAULT_NAMESPACE = "AdOps"
MAX_AGE_MS = 14 * 24 * 3600 * 1000  # CloudWatch refuses datums older than two weeks
MAX_AHEAD_MS = 2 * 3600 * 1000  # and more than two hours in the future

PERMANENT_REQUEST_ERRORS = frozenset({"AccessDenied", "AccessDeniedException", "InvalidParameterValue",
                                      "InvalidParameterCombination", "MissingParameter",
                                      "UnrecognizedClientException", "InvalidSignatureException"})


@dataclass
class MetricsCounters:
    published: int = 0  # datums CloudWatch accepted
    out_of_range: int = 0  # skipped: older than two weeks or more than two hours ahead
    unpublishable: int = 0  # skipped: an editor id CloudWatch refuses as a dimension value
    dropped: int = 0  # not accepted after the retries, or refused for good (logged)
    requests: int = 0
    retried_requests: int = 0


class MetricDataPublisher:
    """PutMetricData of `window_item`s in batches within the API limits (module docstring).

    `client` is a boto3 "cloudwatch" client (connectors.aws.make_client), best built with
    max_attempts=1 so this class is the only retry loop. Never raises for delivery problems.
    """

    def __init__(self, client: Any, namespace: str = DEFAULT_NAMESPACE, *, deadline_s: float = 90.0,
                 base_backoff_s: float = 0.25, max_backoff_s: float = 8.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 wall_clock_ms: Callable[[], float] = lambda: time.time() * 1000,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.deadline_s = deadline_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.counters = MetricsCounters()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._rng = rng or random.Random()

    def backoff_delay(self, attempt: int) -> float:
        """Equal jitter: a wait in [d/2, d], d = min(cap, base * 2**attempt)."""
        return equal_jitter_delay(attempt, self.base_backoff_s, self.max_backoff_s, self._rng)

    def publish(self, items: Sequence[str]) -> int:
        """Send the items' datums; returns how many CloudWatch accepted (the rest: see `counters`)."""
        now_ms = self._wall_clock_ms()
        datums = []
        for item in items:
            editor_id, start_ms, item_datums = to_datums(item)
            if not publishable_dimension(editor_id):
                # CloudWatch would refuse the whole request over it, with every other editor's datums.
                self.counters.unpublishable += len(item_datums)
            elif now_ms - MAX_AGE_MS < start_ms <= now_ms + MAX_AHEAD_MS:
                datums += item_datums
            else:
                self.counters.out_of_range += len(item_datums)
        published_before = self.counters.published
        for batch in limited_batches(datums, max_items=PUT_METRIC_DATA_MAX_DATUMS,
                                     max_bytes=PUT_METRIC_DATA_MAX_BYTES, size_of=datum_size):
            self._send(batch)
        return self.counters.published - published_before

    def _send(self, datums: list[dict[str, Any]]) -> None:
        started = self._clock()
        attempt = 0
        while True:
            self.counters.requests += 1
            try:
                self.client.put_metric_data(Namespace=self.namespace, MetricData=datums)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                last_error = f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
                if status < 500 and code in PERMANENT_REQUEST_ERRORS:
                    break
            except BotoCoreError as exc:
                # Connection refused / reset / closed, timeouts: worth retrying; a request botocore
                # cannot send at all (parameters, credentials, region) is refused every time.
                last_error = f"{type(exc).__name__}: {exc}"
                if is_permanent_sdk_error(exc):
                    break
            except Exception as exc:  # noqa: BLE001 - metrics must never fail the job (module docstring)
                log.exception("PutMetricData failed unexpectedly")
                last_error = f"{type(exc).__name__}: {exc}"
                break
            else:
                self.counters.published += len(datums)
                return
            delay = self.backoff_delay(attempt)
            attempt += 1
            if self._clock() - started + delay > self.deadline_s:
                last_error += f" (retry deadline {self.deadline_s:g}s reached after {attempt} attempts)"
                break
            self.counters.retried_requests += 1
            self._sleep(delay)
        self.counters.dropped += len(datums)
        log.error("%d window metrics not published to CloudWatch namespace %s: %s",
                  len(datums), self.namespace, last_error)

