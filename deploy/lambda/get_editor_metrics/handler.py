"""Action group tool: an editor's recent metrics from CloudWatch, in the namespace the job writes them to
(``METRICS_NAMESPACE``, which deploy/cloudformation/cloud-only.yaml sets from the parameter that also
sets the job's ``cloudwatch.namespace``; AdOps, the job's default, when unset)."""
from __future__ import annotations

import datetime as dt
import math
import os
from typing import Any

from action_group import ToolError, aws_client, dispatch, require_id, require_int

DEFAULT_NAMESPACE = "AdOps"
#: Datapoints one answer holds at most, over all its metrics: about 130 bytes each as sent, so that the answer
#: stays within what an agent's tool call takes (action_group.MAX_BODY_BYTES). A longer span gets a
#: coarser period, said in the answer, rather than a cut: the agent still sees the whole span.
MAX_DATAPOINTS = 150
METRICS = ("rpm", "fill_rate", "bid_latency_ms", "error_rate", "partner_timeouts",
           "cache_hit_rate", "impressions", "revenue", "bid_rate", "win_rate")


def get_editor_metrics(args: dict[str, Any]) -> dict[str, Any]:
    editor_id = require_id(args, "editor_id")
    minutes = require_int(args, "minutes", 5, 1440, default=60)
    period = require_int(args, "period_seconds", 60, 3600, default=300)
    if period % 60:
        # CloudWatch refuses a standard-resolution period that is not a multiple of 60, which the
        # agent would only see as a 502; a 400 tells it what to send instead.
        raise ToolError(400, f"'period_seconds' must be a multiple of 60 (CloudWatch's standard resolution), "
                             f"got {period}; e.g. {max(60, period // 60 * 60)}")
    wanted = args.get("metrics") or ",".join(METRICS)
    names = [m.strip() for m in str(wanted).split(",") if m.strip()]
    unknown = sorted(set(names) - set(METRICS))
    if unknown:
        raise ToolError(400, f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    asked = period
    period = max(period, math.ceil(minutes * 60 * len(names) / MAX_DATAPOINTS / 60) * 60)
    end = dt.datetime.now(dt.timezone.utc)
    start = end - dt.timedelta(minutes=minutes)
    cloudwatch = aws_client("cloudwatch")
    namespace = os.environ.get("METRICS_NAMESPACE") or DEFAULT_NAMESPACE
    result: dict[str, Any] = {}
    for name in names:
        stats = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName=name, Dimensions=[{"Name": "EditorId", "Value": editor_id}],
            StartTime=start, EndTime=end, Period=period, Statistics=["Average", "Minimum", "Maximum"],
        )["Datapoints"]
        points = sorted(stats, key=lambda p: p["Timestamp"])
        result[name] = [
            {"timestamp": p["Timestamp"].isoformat(), "average": _short(p["Average"]), "min": _short(p["Minimum"]),
             "max": _short(p["Maximum"])}
            for p in points
        ]
    answer = {"editor_id": editor_id, "from": start.isoformat(), "to": end.isoformat(),
              "period_seconds": period, "metrics": result,
              "empty_metrics": [n for n in names if not result[n]]}
    if period != asked:
        answer["period_note"] = (f"{asked} s asked; {period} s so that {minutes} min of {len(names)} metrics fit the "
                                 f"{MAX_DATAPOINTS} datapoints an answer holds (ask for fewer metrics or a shorter "
                                 f"span for a finer period)")
    return answer


def _short(x: float) -> float:
    """Seven significant digits: what an agent reads, in a third of the characters of a float's repr."""
    return float(f"{x:.7g}")


ROUTES = {("GET", "/editors/{editor_id}/metrics"): get_editor_metrics}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dispatch(event, ROUTES)
