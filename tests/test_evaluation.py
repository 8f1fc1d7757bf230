"""Matching and scoring on hand-made cases (no Flink, no AWS)."""
from __future__ import annotations

import json

import pytest

from flink_jobs.evaluation import Incident, alerts_from_events, load_labels, score
from flink_jobs.evaluation.scoring import iso

W = 300.0
T = 1793613600.0      # 2026-11-02T10:00:00Z, a window boundary


def composite(editor, ws, problem_type="DEMAND_ISSUE", incident_id=None):
    return {"source": "adops.analytics", "detail-type": "Composite Anomaly Detected",
            "detail": {"incident_id": incident_id or f"inc-{editor}-{ws}-{problem_type}", "editor_id": editor,
                       "window_start": iso(ws), "window_end": iso(ws + W), "problem_type": problem_type,
                       "severity": "HIGH"}}


def partner_check(partner, ws, status="UNHEALTHY"):
    return {"source": "adops.monitoring", "detail-type": "Partner Health Check",
            "detail": {"check_id": f"chk-{partner}-{ws}", "partner": partner, "partner_status": status,
                       "window_start": iso(ws), "window_end": iso(ws + W),
                       "impact_assessment": {"revenue_impact": 5000.0, "editors_affected": 3}}}


def finding(editor, at, finding_id="fnd-1"):
    return {"source": "adops.security", "detail-type": "Security Incident Detected",
            "detail": {"finding_id": finding_id, "severity": 8.0, "editor_id": editor, "title": "bots",
                       "details": {}, "detected_at": iso(at)}}


def editor_incident(iid, editor, start, end, problem_type):
    return Incident(iid, "editor", problem_type, start, end, editor_id=editor)


def test_partner_incident_matches_partner_checks_and_affected_editors_but_counts_once():
    inc = Incident("p1", "partner", "DEMAND_ISSUE", T + 60, T + 1800, partner="p-01", editors=("e-1", "e-2"))
    events = [partner_check("p-01", T), composite("e-2", T + W), composite("e-1", T + 2 * W),
              composite("e-9", T + W),                      # not affected: a false alarm
              partner_check("p-02", T)]                     # other partner: a false alarm
    report = score([inc], alerts_from_events(events), window_s=W, editor_days=3.0)
    assert report["detected"] == 1 and report["matched_alerts"] == 3
    assert report["false_alarm_alerts"] == 2 and report["false_alarm_episodes"] == 2
    assert report["precision"] == pytest.approx(1 / 3, abs=1e-4) and report["recall"] == 1.0
    assert report["f1"] == pytest.approx(0.5, abs=1e-4)
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(W - 60)
    assert report["type_accuracy"] == 1.0
    assert report["false_alarm_episodes_per_editor_day"] == pytest.approx(2 / 3, abs=1e-4)


def test_overlapping_and_duplicate_alerts_detect_once_and_the_majority_names_the_type():
    inc = editor_incident("i1", "e-1", T + 100, T + 1500, "LATENCY_ISSUE")
    events = [composite("e-1", T, "PRICING_ISSUE"), composite("e-1", T + W, "LATENCY_ISSUE"),
              composite("e-1", T + W, "LATENCY_ISSUE"),                       # duplicate delivery
              composite("e-1", T + 2 * W, "LATENCY_ISSUE"), composite("e-1", T + 3 * W, "UNKNOWN")]
    report = score([inc], alerts_from_events(events), window_s=W)
    assert report["alerts"] == 4 and report["detected"] == 1 and report["false_alarm_alerts"] == 0
    outcome = report["outcomes"][0]
    assert outcome["predicted_type"] == "LATENCY_ISSUE" and outcome["matched_alerts"] == 4
    assert outcome["time_to_detect_windows"] == pytest.approx((W - 100) / W)   # the first window already caught it
    assert report["precision"] == 1.0 and report["f1"] == 1.0


def test_grace_window_accepts_the_window_just_after_and_not_the_one_after_that():
    inc = editor_incident("i1", "e-1", T, T + 1200, "CONFIGURATION_ISSUE")      # ends on a window boundary
    just_after = composite("e-1", T + 1200, "CONFIGURATION_ISSUE")               # [end, end + W): overlaps grace
    too_late = composite("e-1", T + 1200 + W, "CONFIGURATION_ISSUE")             # starts at end + W: no overlap
    report = score([inc], alerts_from_events([just_after, too_late]), window_s=W)
    assert report["detected"] == 1 and report["false_alarm_alerts"] == 1
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(1200 + W)
    report = score([inc], alerts_from_events([too_late]), window_s=W)
    assert report["detected"] == 0 and report["recall"] == 0.0 and report["f1"] == 0.0
    assert report["confusion"] == {"CONFIGURATION_ISSUE": {"MISSED": 1}}


def test_window_ending_exactly_at_the_start_does_not_match():
    inc = editor_incident("i1", "e-1", T + W, T + 3 * W, "PRICING_ISSUE")
    report = score([inc], alerts_from_events([composite("e-1", T, "PRICING_ISSUE")]), window_s=W)
    assert report["detected"] == 0 and report["false_alarm_alerts"] == 1


def test_wrong_type_is_detected_but_not_accurate_and_shows_in_the_confusion_matrix():
    incidents = [editor_incident("i1", "e-1", T, T + 900, "PRICING_ISSUE"),
                 editor_incident("i2", "e-2", T, T + 900, "SECURITY_ISSUE")]
    events = [composite("e-1", T, "DEMAND_ISSUE"), finding("e-2", T + 600)]
    report = score(incidents, alerts_from_events(events), window_s=W)
    assert report["detected"] == 2 and report["type_accuracy"] == 0.5
    assert report["confusion"]["PRICING_ISSUE"] == {"DEMAND_ISSUE": 1}
    assert report["confusion"]["SECURITY_ISSUE"] == {"SECURITY_ISSUE": 1}
    assert report["per_type"]["PRICING_ISSUE"]["type_accuracy"] == 0.0


def test_false_alarm_episodes_group_adjacent_windows_per_editor():
    events = [composite("e-5", T + k * W) for k in (0, 1, 2)] + [composite("e-5", T + 10 * W)] + \
             [composite("e-6", T), partner_check("p-1", T, status="HEALTHY")]       # HEALTHY is not an alert
    report = score([], alerts_from_events(events), window_s=W, editor_days=10.0)
    assert report["alerts"] == 5 and report["false_alarm_episodes"] == 3
    assert report["precision"] == 0.0 and report["recall"] is None
    assert [e["episode_alerts"] for e in report["false_alarms"]] == [3, 1, 1]


def test_alarms_during_quiet_stretches_are_reported():
    events = [composite("e-q", T + W), composite("e-q", T + 20 * W), composite("e-x", T)]
    report = score([], alerts_from_events(events), window_s=W, quiet_spans={"e-q": [(T, T + 5 * W)]})
    assert report["quiet_editors"]["alerts_during_quiet_stretches"] == 1
    assert report["quiet_editors"]["alerts_on_quiet_editors"] == 2


def test_labels_file_is_validated(tmp_path):
    good = {"incident_id": "a", "scope": "partner", "problem_type": "DEMAND_ISSUE", "start": "2026-11-02T10:00:00Z",
            "end": 1793617200000, "partner": "p-1", "editors": ["e-1"]}
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(good) + "\n\n")
    [incident] = load_labels(path)
    assert incident.end_s == 1793617200.0 and incident.editors == ("e-1",)
    path.write_text(json.dumps({**good, "partner": None}) + "\n")
    with pytest.raises(ValueError, match="labels.jsonl:1: .*needs partner"):
        load_labels(path)


def test_warmup_alarms_are_reported_apart_and_also_in_the_including_warmup_figures():
    inc = editor_incident("i1", "e-1", T + 7200, T + 8000, "LATENCY_ISSUE")
    events = [composite("e-2", T), composite("e-3", T + 2 * W), composite("e-1", T + 7200, "LATENCY_ISSUE"),
              composite("e-4", T + 7200)]
    report = score([inc], alerts_from_events(events), window_s=W, warmup_end_s=T + 3600, editor_days=4.0)
    assert report["warmup_false_alarm_alerts"] == 2
    assert report["false_alarm_alerts"] == 1 and report["precision"] == 0.5
    assert report["including_warmup"]["false_alarm_episodes"] == 3
    assert report["including_warmup"]["precision"] == 0.25
