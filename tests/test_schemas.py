"""The JSON Schemas of connectors/schemas accept the contract's examples and reject what the contract forbids.

Examples of the bus details are built by the real producers (detectors.incident,
detectors.partner_health) and dead letters by connectors.deadletter, so a schema
that drifts from the code fails here.
"""
from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from connectors.deadletter.records import RAW_LIMIT_BYTES, dead_letter_json
from connectors.schemas import SCHEMA_NAMES, load_schema, validator


def _errors(name, obj):
    return [e.message for e in validator(name).iter_errors(obj)]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_is_a_valid_draft_2020_12_schema(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


GOOD_METRICS = [
    {"editor_id": "e-001", "metric": "rpm", "value": 2.5, "timestamp": "2026-11-01T10:05:00Z"},
    {"editor_id": "e-001", "metric": "fill_rate", "value": 0, "timestamp": 1793527500000},
    {"editor_id": "e-002", "metric": "partner_timeouts", "value": 12, "timestamp": "2026-11-01T10:05:00.123+01:00",
     "partner": "p-alpha", "dimensions": {"geo": "FR", "device": "mobile"}},
    # null reads as absent, as in the job
    {"editor_id": "e-003", "metric": "win_rate", "value": 1, "timestamp": "1970-01-01T00:00:00.001Z",
     "partner": None, "dimensions": None},
]
BAD_METRICS = [
    ({"metric": "rpm", "value": 1, "timestamp": 1}, "editor_id"),                       # missing field
    ({"editor_id": "e", "metric": "ctr", "value": 1, "timestamp": 1}, "ctr"),          # unknown metric
    ({"editor_id": "e", "metric": "rpm", "value": "1.0", "timestamp": 1}, "number"),   # wrong type
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "2026-11-01T10:05:00"}, "timestamp"),  # no zone
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": 1.5}, "timestamp"),  # epoch ms must be int
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": 1, "dimensions": {"a": 1}}, "string"),
    # what the job dead-letters (sql/parse/metrics.sql, timestamp_reason.sql, iso_timestamp.sql) the schema refuses too
    ({"editor_id": "e", "metric": "fill_rate", "value": 1.5, "timestamp": 1}, "value"),          # a rate above 1
    ({"editor_id": "e", "metric": "rpm", "value": -1, "timestamp": 1}, "value"),
    ({"editor_id": "e", "metric": "impressions", "value": 2e9, "timestamp": 1}, "value"),     # max.metric.value
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": 0}, "timestamp"),           # not after 1970
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "1969-12-31T23:59:59Z"}, "timestamp"),
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "2026-13-01T10:05:00Z"}, "timestamp"),
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "2026-11-01T25:00:00Z"}, "timestamp"),
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "2026-11-01T23:59:60Z"}, "timestamp"),
    ({"editor_id": "e", "metric": "rpm", "value": 1, "timestamp": "2026-11-01T10:05:00+19:00"}, "timestamp"),
]


@pytest.mark.parametrize("record", GOOD_METRICS)
def test_metric_records_of_the_contract_are_valid(record):
    assert _errors("metric_record", record) == []


@pytest.mark.parametrize("record,expected", BAD_METRICS)
def test_metric_records_breaking_the_contract_are_rejected(record, expected):
    # The error must point at the offending field (by path or in its message).
    errors = [f"{e.json_path} {e.message}" for e in validator("metric_record").iter_errors(record)]
    assert errors and any(expected in e for e in errors), errors


def test_event_records():
    assert _errors("event_record", {"event_type": "deployment", "timestamp": "2026-11-01T10:00:00Z",
                                    "editor_id": "e-001", "details": {"version": "1.2"}}) == []
    assert _errors("event_record", {"event_type": "security_finding", "timestamp": 1793527500000,
                                    "severity": 8.5, "partner": "p-x"}) == []
    assert _errors("event_record", {"event_type": "partner_status", "timestamp": 1, "editor_id": None,
                                    "partner": None, "severity": None, "details": None}) == []
    assert _errors("event_record", {"event_type": "reboot", "timestamp": 1})
    assert _errors("event_record", {"event_type": "security_finding", "timestamp": 1, "severity": 11})
    assert _errors("event_record", {"event_type": "security_finding", "timestamp": 1, "severity": -1})
    # 0-10 scores findings; another event's severity on its own scale is kept, as the job keeps it
    assert _errors("event_record", {"event_type": "deployment", "timestamp": 1, "severity": 50}) == []
    assert _errors("event_record", {"event_type": "deployment"})
    assert _errors("event_record", {"event_type": "deployment", "timestamp": 1, "details": "x"})


def test_composite_detail_built_by_the_incident_module_is_valid():
    from detectors.classifier import MetricDeviation as D, classify
    from detectors.incident import build_composite_detail

    devs = {"rpm": D("rpm", 1.2, 2.5, 2.1, 2.9, 0.97, True),
            "fill_rate": D("fill_rate", 0.45, 0.85, 0.8, 0.9, 0.96, True),
            "revenue": D("revenue", 6.0, 12.5, 11.0, 14.0, 0.98, True)}
    detail = build_composite_detail("e-001", 1793527500, 1793527800, devs, [], classify(devs, []))
    assert _errors("composite_anomaly", json.loads(json.dumps(detail))) == []
    broken = dict(detail, incident_id="incident-1", metrics_affected="3")
    assert len(_errors("composite_anomaly", broken)) == 2


def test_partner_health_detail_built_by_the_partner_module_is_valid():
    from detectors.classifier import MetricDeviation as D
    from detectors.partner_health import assess_partner_editors

    slow = {"partner_timeouts": D("partner_timeouts", 50.0, 10.0, 6.0, 14.0, 0.99, True)}
    detail = assess_partner_editors("p-alpha", 1793527500, 1793527800, {"e-002": slow, "e-001": slow},
                                    revenue_impact=412.5)
    assert detail["partner_status"] == "UNHEALTHY"
    assert _errors("partner_health", json.loads(json.dumps(detail))) == []
    assert _errors("partner_health", dict(detail, partner_status="DOWN"))


def test_partner_checks_of_an_outage_and_its_all_clear_are_valid():
    """What the job's partner operator emits (udfs.decisions.partner_window_check), the outage block included."""
    from detectors.classifier import MetricDeviation as D
    from udfs.decisions import partner_window_check, result_of

    slow = D("partner_timeouts", 50.0, 10.0, 6.0, 14.0, 0.99, True)
    fine = D("partner_timeouts", 10.0, 10.0, 6.0, 14.0, 0.1, False)
    end = 1793527800000
    down, state, _ = partner_window_check(end, 300_000, [result_of("p-1", end, slow, 3, e) for e in ("e-1", "e-2")],
                                          None)
    clear, _, _ = partner_window_check(end + 300_000, 300_000,
                                       [result_of("p-1", end + 300_000, fine, 3, e) for e in ("e-1", "e-2")], state)
    assert (down["outage"]["ended"], clear["outage"]["ended"]) == (False, True)
    for detail in (down, clear):
        assert _errors("partner_health", json.loads(json.dumps(detail))) == []
    assert _errors("partner_health", dict(down, outage={**down["outage"], "checks": 0}))


def test_dead_letters_built_by_the_connector_are_valid_and_truncated_raw_is_flagged():
    small = json.loads(dead_letter_json("INVALID_JSON", "truncated JSON", "metrics", '{"editor_id": "e-0'))
    assert _errors("dead_letter_record", small) == []
    big_raw = "é" * RAW_LIMIT_BYTES  # 2 bytes per character: twice the limit
    big = json.loads(dead_letter_json("OVERSIZED_RECORD", "too big", "metrics", big_raw))
    assert _errors("dead_letter_record", big) == []
    assert big["raw_truncated"] is True and big["raw_size_bytes"] == 2 * RAW_LIMIT_BYTES
    assert len(big["raw"].encode("utf-8")) <= RAW_LIMIT_BYTES
    assert _errors("dead_letter_record", dict(small, reason_code="bad code"))
    assert _errors("dead_letter_record", dict(small, source="kinesis"))
    assert _errors("dead_letter_record", {k: v for k, v in small.items() if k != "raw"})
    assert _errors("dead_letter_record", dict(small, raw_truncated=True))  # needs raw_size_bytes
    assert _errors("dead_letter_record", dict(small, raw_size_bytes=70000))  # needs raw_truncated
    # Only the EventBridge sink's letters keep raw beyond 64 KiB (the whole PutEvents entry).
    assert _errors("dead_letter_record", dict(small, raw="x" * 70_000))
    assert _errors("dead_letter_record", dict(small, source="eventbridge", raw="x" * 70_000)) == []
    assert _errors("dead_letter_record", dict(small, source="eventbridge", raw="x" * 532_481))


def test_dead_letters_built_in_sql_fit_the_schema():
    """The shapes sql/sinks/dead_letters.sql writes (the job's own lines are checked in test_job_pipeline)."""
    sql_line = {"reason_code": "LATE_RECORD", "reason": "record arrived behind the watermark", "source": "metrics",
                "raw": "{}", "event_time": "2026-11-01T10:05:00.000Z", "detected_at": "2026-11-01T10:06:00.000Z"}
    assert _errors("dead_letter_record", sql_line) == []
    cut = dict(sql_line, reason_code="OVERSIZED_RECORD", raw="x" * 65536, raw_truncated=True, raw_size_chars=70000)
    assert _errors("dead_letter_record", cut) == []
    assert _errors("dead_letter_record", dict(cut, raw_size_bytes=70000))  # one size, not both
    assert _errors("dead_letter_record", dict(sql_line, event_time="yesterday"))
