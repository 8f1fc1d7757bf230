"""Editor windows as CloudWatch datums, free of the AWS SDK (the job's planning process on
Managed Flink imports udfs/window_metrics.py, which uses `window_item`, without botocore).

An editor window travels through Flink as one compact JSON item (all its metrics, so the
sink's keyed buffer holds one entry per window, not one per metric); `to_datums` makes the
PutMetricData datums of it: `Values=[window mean]`, `Counts=[samples]`, `Timestamp` = the
window's start, dimension `EditorId`.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterable

EDITOR_DIMENSION = "EditorId"
#: Datums per editor window at most (one per metric of the input contract), for the sink's batches.
MAX_DATUMS_PER_WINDOW = 10
# A datum's size in a request, over-estimated: the SDK's CBOR (or query) encoding of the
# field names, dimension and timestamp stays well under this, plus the metric and editor names.
DATUM_OVERHEAD_BYTES = 200


def window_item(editor_id: str, window_start_ms: int, metrics: Iterable[tuple[str, float, int]]) -> str:
    """One editor window, (metric, mean, samples) of each metric with samples, as the compact
    JSON the Flink buffer keeps.

    >>> window_item("e-1", 1793520000000, [("rpm", 2.5, 12), ("fill_rate", 0.8, 12)])
    '{"e":"e-1","t":1793520000000,"m":[["rpm",2.5,12],["fill_rate",0.8,12]]}'
    """
    return json.dumps({"e": editor_id, "t": int(window_start_ms),
                       "m": [[metric, float(mean), int(samples)] for metric, mean, samples in metrics]},
                      separators=(",", ":"))


def to_datums(item: str) -> tuple[str, int, list[dict[str, Any]]]:
    """(editor id, window start in ms, its PutMetricData datums: one per metric) of a `window_item`.

    >>> editor, start_ms, (rpm, fill_rate) = to_datums(window_item("e-1", 1793520000000, [("rpm", 2.5, 12), ("fill_rate", 0.8, 12)]))
    >>> editor, start_ms, rpm["MetricName"], rpm["Dimensions"], rpm["Values"], rpm["Counts"]
    ('e-1', 1793520000000, 'rpm', [{'Name': 'EditorId', 'Value': 'e-1'}], [2.5], [12])
    >>> rpm["Timestamp"].isoformat(), fill_rate["MetricName"]
    ('2026-11-01T08:00:00+00:00', 'fill_rate')
    """
    data = json.loads(item)
    editor_id, start_ms = data["e"], int(data["t"])
    timestamp = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.timezone.utc)
    dimensions = [{"Name": EDITOR_DIMENSION, "Value": editor_id}]
    return editor_id, start_ms, [{"MetricName": metric, "Dimensions": dimensions, "Timestamp": timestamp,
                                  "Values": [mean], "Counts": [samples]} for metric, mean, samples in data["m"]]


def datum_size(datum: dict[str, Any]) -> int:
    return DATUM_OVERHEAD_BYTES + 2 * (len(datum["MetricName"]) + len(datum["Dimensions"][0]["Value"]))


def publishable_dimension(value: str) -> bool:
    """CloudWatch's rule for a dimension value: 1-1024 printable ASCII characters, not only blanks.

    >>> [publishable_dimension(v) for v in ("e-001", "", "   ", "e-\ufffd", "e\x01", "e" * 1025)]
    [True, False, False, False, False, False]
    """
    return 0 < len(value) <= 1024 and value.isascii() and value.isprintable() and not value.isspace()
