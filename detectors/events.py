"""Operational events (the ``adops-events-stream`` contract) as typed values.

:func:`parse_event` turns a raw event record into an :class:`OperationalEvent`
(the offline replay of flink_jobs/evaluation, tools); a record that breaks the
contract raises :class:`EventValidationError`, whose ``reason_code`` is one of
DESIGN.md's dead-letter codes and whose message names the offending field. The
streaming job validates events in SQL instead (sql/parse/events.sql); its
timestamp rule, in Python, is connectors.event_time, which the offline replay
applies first.

>>> e = parse_event('{"event_type": "config_change", "timestamp": "2026-11-01T10:02:00Z",'
...                 ' "editor_id": "e-001", "details": {"key": "floor_price"}}')
>>> e.event_type, e.timestamp_s, e.editor_id
('config_change', 1793527320.0, 'e-001')
>>> try:
...     parse_event({"event_type": "reboot", "timestamp": 0})
... except EventValidationError as err:
...     print(err.reason_code, "-", err)
UNKNOWN_EVENT_TYPE - event_type 'reboot' is not one of config_change, deployment, feature_flag, partner_status, security_finding
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

EVENT_TYPES = ("config_change", "deployment", "feature_flag", "partner_status", "security_finding")
#: Event types that change an editor's own setup: the usual suspects of a
#: configuration breakage (and of a floor-price misconfiguration).
CHANGE_EVENT_TYPES = frozenset({"config_change", "deployment", "feature_flag"})

MAX_SEVERITY = 10.0
#: A partner_status ``details.status`` that reports the partner well (again): the end of an
#: outage, not a cause of anything.
GOOD_PARTNER_STATUSES = frozenset({"HEALTHY", "OK", "UP", "RECOVERED", "RESOLVED", "NORMAL"})


@dataclass(frozen=True)
class OperationalEvent:
    """One operational event: something that happened, which may explain an anomaly.

    ``severity`` is the 0-10 score of security findings (None for other events).
    ``details`` is free-form context copied from the record (never interpreted,
    except that the classifier looks for floor/price keywords in it).
    """

    event_type: str
    timestamp_s: float
    editor_id: str | None = None
    partner: str | None = None
    severity: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The event in the shape used by ``suspected_causes`` (ISO-8601 Z timestamp)."""
        out: dict[str, Any] = {"event_type": self.event_type, "timestamp": iso_z(self.timestamp_s)}
        if self.editor_id is not None:
            out["editor_id"] = self.editor_id
        if self.partner is not None:
            out["partner"] = self.partner
        if self.severity is not None:
            out["severity"] = self.severity
        out["details"] = dict(self.details)
        return out

    @property
    def reports_recovery(self) -> bool:
        """A partner's status report that says it is well: neither a suspected cause (detectors.incident)
        nor the classifier's corroboration of an outage.

        >>> OperationalEvent("partner_status", 0.0, partner="p-1", details={"status": "healthy"}).reports_recovery
        True
        >>> OperationalEvent("partner_status", 0.0, partner="p-1", details={"status": "DEGRADED"}).reports_recovery
        False
        """
        return self.event_type == "partner_status" and \
            str(self.details.get("status", "")).upper() in GOOD_PARTNER_STATUSES


class EventValidationError(ValueError):
    """A raw event record broke the contract. ``reason_code`` is a DESIGN.md dead-letter code."""

    def __init__(self, reason_code: str, reason: str):
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason


def routed_scope(event_type: str, editor_id: str | None, partner: str | None) -> int:
    """Whose an event is, as the streaming job routes it: 0 the editor's own (it names the editor), 1 a
    partner's status report (naming only the partner), 2 another event naming only a partner (a change
    made for it), 3 one naming neither (the network's). The editor operator caps its events per scope
    (udfs.decisions.bounded_events), and a composite keeps them in this order past its cap of causes
    (detectors.incident).

    >>> [routed_scope(t, e, p) for t, e, p in (("deployment", "e-1", "p-1"), ("partner_status", None, "p-1"),
    ...                                         ("config_change", None, "p-1"), ("deployment", None, None))]
    [0, 1, 2, 3]
    """
    if editor_id is not None:
        return 0
    if partner is None:
        return 3
    return 1 if event_type == "partner_status" else 2


def iso_z(timestamp_s: float) -> str:
    """Epoch seconds as ISO-8601 UTC with a ``Z`` (milliseconds only when needed).

    >>> iso_z(1793527500.0), iso_z(1793527500.25)
    ('2026-11-01T10:05:00Z', '2026-11-01T10:05:00.250Z')
    """
    moment = datetime.fromtimestamp(timestamp_s, tz=timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(raw: Any, field_name: str = "timestamp") -> float:
    """Contract timestamp (ISO-8601 with a zone, or integer epoch milliseconds) -> epoch seconds.

    >>> parse_timestamp("2026-11-01T11:05:00+01:00"), parse_timestamp(1793527500000)
    (1793527500.0, 1793527500.0)
    """
    if isinstance(raw, bool):
        raise EventValidationError("WRONG_TYPE", f"{field_name} must be an ISO-8601 string or epoch ms integer, got a boolean")
    if isinstance(raw, int):
        return raw / 1000.0
    if isinstance(raw, str):
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise EventValidationError("INVALID_TIMESTAMP", f"{field_name} {raw!r} is not ISO-8601") from None
        if moment.tzinfo is None:
            raise EventValidationError("INVALID_TIMESTAMP", f"{field_name} {raw!r} has no time zone")
        return moment.timestamp()
    raise EventValidationError(
        "WRONG_TYPE", f"{field_name} must be an ISO-8601 string or epoch ms integer, got {type(raw).__name__}"
    )


def _optional_str(record: Mapping[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventValidationError("WRONG_TYPE", f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise EventValidationError("OUT_OF_RANGE_VALUE", f"{name} must not be empty")
    return value


def _optional_severity(record: Mapping[str, Any]) -> float | None:
    """A number; 0-10 for a security finding (the contract scores findings only, as the job checks)."""
    value = record.get("severity")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventValidationError("WRONG_TYPE", f"severity must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise EventValidationError("NON_FINITE_VALUE", f"severity must be finite, got {value!r}")
    if record.get("event_type") == "security_finding" and not 0.0 <= value <= MAX_SEVERITY:
        raise EventValidationError("OUT_OF_RANGE_VALUE", f"a security finding's severity {value!r} is outside 0-10")
    return float(value)


def parse_event(raw: str | bytes | Mapping[str, Any], *, now_s: float | None = None,
                max_future_s: float = 300.0) -> OperationalEvent:
    """Validate one events-stream record (JSON text or an already-decoded dict).

    With ``now_s`` given, a timestamp more than ``max_future_s`` ahead of it is
    rejected as FUTURE_TIMESTAMP (clock skew beyond that is a producer bug).
    """
    if isinstance(raw, (str, bytes, bytearray)):
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise EventValidationError("INVALID_JSON", f"record is not valid JSON: {err}") from None
    else:
        record = raw
    if not isinstance(record, Mapping):
        raise EventValidationError("WRONG_TYPE", f"record must be a JSON object, got {type(record).__name__}")
    for required in ("event_type", "timestamp"):
        if record.get(required) is None:
            raise EventValidationError("MISSING_FIELD", f"required field {required!r} is missing")
    event_type = record["event_type"]
    if not isinstance(event_type, str):
        raise EventValidationError("WRONG_TYPE", f"event_type must be a string, got {type(event_type).__name__}")
    if event_type not in EVENT_TYPES:
        raise EventValidationError(
            "UNKNOWN_EVENT_TYPE", f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}"
        )
    timestamp_s = parse_timestamp(record["timestamp"])
    if now_s is not None and timestamp_s > now_s + max_future_s:
        raise EventValidationError(
            "FUTURE_TIMESTAMP", f"timestamp {iso_z(timestamp_s)} is more than {max_future_s:g} s in the future"
        )
    details = record.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, Mapping):
        raise EventValidationError("WRONG_TYPE", f"details must be an object, got {type(details).__name__}")
    return OperationalEvent(
        event_type=event_type,
        timestamp_s=timestamp_s,
        editor_id=_optional_str(record, "editor_id"),
        partner=_optional_str(record, "partner"),
        severity=_optional_severity(record),
        details=dict(details),
    )
