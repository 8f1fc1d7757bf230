"""(iv) Security findings with severity >= threshold -> Security Incident Detected.

Events are a low-volume stream (a few per editor and hour), so this is a plain
Python flat_map on the parsed events (sql/parse/events.sql did the validation).
finding_id is deterministic: the record's own details.finding_id when it has one,
otherwise a hash of editor, partner, timestamp and details, so a replayed or
re-read finding gets the same EventBridge id.
"""
from __future__ import annotations

import json

from connectors.eventbridge.flink_sink import eventbridge_row
from pyflink.datastream import FlatMapFunction

from detectors.events import iso_z
from detectors.incident import stable_id
from udfs.correlator import SECURITY, _details


def security_detail(event_type, timestamp_ms, editor_id, partner, severity, details_json, min_severity) -> dict | None:
    """The DESIGN.md security incident detail, or None when the event is not a qualifying finding.

    >>> d = security_detail("security_finding", 1793527500000, "e-1", None, 8.0, '{"title": "bot traffic"}', 7)
    >>> d["title"], d["severity"], d["finding_id"].startswith("fnd-")
    ('bot traffic', 8.0, True)
    >>> security_detail("security_finding", 0, "e-1", None, 5.0, None, 7) is None
    True
    """
    if event_type != "security_finding" or severity is None or severity < min_severity:
        return None
    details = _details(details_json)
    finding_id = details.get("finding_id")
    finding_id = str(finding_id) if finding_id else stable_id(
        "fnd-", editor_id or "", partner or "", iso_z(timestamp_ms / 1000.0), json.dumps(details, sort_keys=True))
    title = details.get("title") or details.get("type") or f"security finding (severity {severity:g})"
    detail = {"finding_id": finding_id, "severity": float(severity), "title": str(title)[:256],
              "details": details, "detected_at": iso_z(timestamp_ms / 1000.0)}
    if editor_id:
        detail["editor_id"] = editor_id
    if partner:
        detail["partner"] = partner
    return detail


class SecurityFindings(FlatMapFunction):
    def __init__(self, min_severity: float):
        self.min_severity = min_severity

    def flat_map(self, row):
        detail = security_detail(row[0], row[1], row[2], row[3], row[4], row[5], self.min_severity)
        if detail is not None:
            yield eventbridge_row(SECURITY[0], SECURITY[1], detail)
