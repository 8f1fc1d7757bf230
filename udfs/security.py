"""(iv) Security findings with severity >= threshold -> Security Incident Detected.

Events are a low-volume stream (a few per editor and hour), so this is a plain
Python flat_map on the parsed events (sql/parse/events.sql did the validation).
finding_id is deterministic: the record's own details.finding_id when it has one,
otherwise a hash of editor, partner, timestamp and details, so a replayed or
re-read finding gets the same EventBridge id.
"""
from __future__ import annotations

from connectors.eventbridge.flink_sink import eventbridge_row
from pyflink.datastream import FlatMapFunction

from udfs.correlator import SECURITY
from udfs.decisions import security_detail  # noqa: F401 (the decision lives in udfs/decisions.py)


class SecurityFindings(FlatMapFunction):
    def __init__(self, min_severity: float):
        self.min_severity = min_severity

    def flat_map(self, row):
        detail = security_detail(row[0], row[1], row[2], row[3], row[4], row[5], self.min_severity)
        if detail is not None:
            yield eventbridge_row(SECURITY[0], SECURITY[1], detail)
