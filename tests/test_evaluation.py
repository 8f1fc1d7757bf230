"""Matching and scoring on hand-made cases (no Flink, no AWS)."""
from __future__ import annotations

import json
import random

import pytest

from flink_jobs.evaluation import Incident, alerts_from_events, load_labels, score
from flink_jobs.evaluation.scoring import SampleTimes, iso

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


def test_a_security_finding_at_the_grace_spans_end_is_out_as_the_window_starting_there():
    """The grace span is [start, end + one window) for windows and instants alike."""
    inc = editor_incident("i1", "e-1", T, T + 1200, "SECURITY_ISSUE")         # ends on a window boundary
    inside = finding("e-1", T + 1200 + W - 1, "fnd-in")
    at_end = finding("e-1", T + 1200 + W, "fnd-out")
    report = score([inc], alerts_from_events([inside, at_end]), window_s=W)
    assert report["detected"] == 1 and report["false_alarm_alerts"] == 1
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(1200 + W - 1)
    report = score([inc], alerts_from_events([at_end]), window_s=W)
    assert report["detected"] == 0 and report["false_alarm_alerts"] == 1


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


# --- labels are validated with file:line (no silent wrong day, type or editor list) --------------

GOOD = {"incident_id": "a", "scope": "editor", "problem_type": "LATENCY_ISSUE", "start": "2026-11-02T12:00:00Z",
        "end": "2026-11-02T12:30:00Z", "editor_id": "e-1"}
PARTNER = {"incident_id": "p", "scope": "partner", "problem_type": "DEMAND_ISSUE", "start": "2026-11-02T12:00:00Z",
           "end": "2026-11-02T12:30:00Z", "partner": "p-1"}


@pytest.mark.parametrize("lines, message", [
    ([{**GOOD, "start": 1793620800, "end": 1793622600}],
     r":1: start 1793620800 is not a plausible time in epoch milliseconds \(2000-2099\) \(it looks like epoch seconds"),
    ([{**GOOD, "end": 1793622600000000}], r":1: end 1793622600000000 is not a plausible time"),
    ([{**GOOD, "start": "12:00 yesterday"}], r":1: start '12:00 yesterday' is not an ISO-8601 time"),
    ([{**GOOD, "start": True}], r":1: start must be an ISO-8601 time or epoch milliseconds, not True"),
    ([{**GOOD, "problem_type": "LATENCY"}], r":1: label a: problem_type must be one of DEMAND_ISSUE, .*not 'LATENCY'"),
    ([{**GOOD, "problem_type": "latency_issue"}], r":1: label a: problem_type must be one of"),
    ([{**GOOD, "problem_type": "UNKNOWN"}], r":1: label a: problem_type must be one of"),
    ([GOOD, {**GOOD, "editor_id": "e-2"}], r":2: incident_id 'a' is already used on line 1"),
    ([{**GOOD, "incident_id": 7}, {**GOOD, "incident_id": "7"}], r":2: incident_id '7' is already used on line 1"),
    ([{**PARTNER, "editors": "e-10"}], r":1: label p: editors must be a list of editor ids \(strings\), not 'e-10'"),
    ([{**PARTNER, "editors": ["e-1", 3]}], r":1: label p: editors must be a list of editor ids"),
    ([{**GOOD, "editors": ["e-2"]}], r":1: label a: an editor incident has no editors"),
    ([{**GOOD, "editor_id": 5}], r":1: label a: editor_id must be a non-empty string, not 5"),
    ([{**GOOD, "incident_id": None}], r":1: incident_id must be a non-empty string or an integer, not None"),
    (["just a string"], r":1: a label must be a JSON object, not str"),
    ([GOOD, [1, 2]], r":2: a label must be a JSON object, not list"),
    ([], r": no labeled incident \(the file is empty\)"),
])
def test_a_label_that_would_be_scored_wrong_is_refused_with_file_and_line(tmp_path, lines, message):
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    with pytest.raises(ValueError, match=f"labels.jsonl{message}"):
        load_labels(path)


def test_a_line_that_is_not_json_names_its_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{\"incident_id\": \n")
    with pytest.raises(ValueError, match=r"labels.jsonl:2: not valid JSON"):
        load_labels(path)


def test_valid_labels_keep_loading_numeric_ids_epoch_ms_and_partner_editors(tmp_path):
    path = tmp_path / "labels.jsonl"
    lines = [{**GOOD, "incident_id": 7, "start": 1793620800000, "end": 1793622600000.0},
             {**PARTNER, "editors": ["e-1", "e-2"], "magnitude": {"fill": 0.1}}, PARTNER | {"incident_id": "q"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second, third = load_labels(path)
    assert first.incident_id == "7" and first.start_s == 1793620800.0 and first.end_s == 1793622600.0
    assert second.editors == ("e-1", "e-2") and third.editors == ()


# --- one alert is credited to one incident ---------------------------------------------------------

N = 1793620800.0      # 2026-11-02T12:00:00Z


def test_one_alert_between_back_to_back_incidents_detects_one_of_them():
    """LATENCY 12:00-12:30 and CONFIGURATION 12:31:40-13:00 on one editor; one LATENCY alert 12:30-12:35:
    it overlaps the first's grace window and the second's start, and names the first's type."""
    incidents = [editor_incident("L", "e-1", N, N + 1800, "LATENCY_ISSUE"),
                 editor_incident("C", "e-1", N + 1900, N + 3600, "CONFIGURATION_ISSUE")]
    report = score(incidents, alerts_from_events([composite("e-1", N + 1800, "LATENCY_ISSUE")]), window_s=W)
    assert report["detected"] == 1 and report["recall"] == 0.5 and report["matched_alerts"] == 1
    by_id = {o["incident_id"]: o for o in report["outcomes"]}
    assert by_id["L"]["detected"] and by_id["L"]["predicted_type"] == "LATENCY_ISSUE"
    assert not by_id["C"]["detected"] and by_id["C"]["matched_alerts"] == 0
    assert report["type_accuracy"] == 1.0


def test_one_composite_during_a_partner_outage_detects_the_editor_incident_it_names_only():
    outage = Incident("P", "partner", "DEMAND_ISSUE", N, N + 3600, partner="p-1", editors=("e-1", "e-2"))
    latency = editor_incident("L", "e-1", N, N + 3600, "LATENCY_ISSUE")
    report = score([outage, latency], alerts_from_events([composite("e-1", N, "LATENCY_ISSUE")]), window_s=W)
    assert report["detected"] == 1 and report["alerts"] == 1 and report["matched_alerts"] == 1
    by_id = {o["incident_id"]: o for o in report["outcomes"]}
    assert by_id["L"]["detected"] and not by_id["P"]["detected"]
    assert report["confusion"] == {"DEMAND_ISSUE": {"MISSED": 1}, "LATENCY_ISSUE": {"LATENCY_ISSUE": 1}}


def test_without_a_type_match_the_alert_goes_to_the_incident_its_window_overlaps_most():
    # Same type both: the window [12:30, 12:35) holds nothing of the first (it ended 12:30) and
    # 3 min 20 s of the second; then the earliest breaks a tie.
    first = editor_incident("A", "e-1", N, N + 1800, "LATENCY_ISSUE")
    second = editor_incident("B", "e-1", N + 1900, N + 3600, "LATENCY_ISSUE")
    report = score([first, second], alerts_from_events([composite("e-1", N + 1800, "LATENCY_ISSUE")]), window_s=W)
    assert [o["incident_id"] for o in report["outcomes"] if o["detected"]] == ["B"]
    twin = editor_incident("A2", "e-1", N, N + 1800, "LATENCY_ISSUE")
    report = score([twin, first], alerts_from_events([composite("e-1", N, "LATENCY_ISSUE")]), window_s=W)
    assert [o["incident_id"] for o in report["outcomes"] if o["detected"]] == ["A"]


# --- matched alerts are the alerts credited to an incident ---------------------------------------

def test_warmup_alerts_are_not_counted_as_matched():
    """The published make run: 79 alerts, one (e-019 at 02:10) in the warm-up matching nothing."""
    inc = editor_incident("i1", "e-1", T + 7200, T + 8000, "LATENCY_ISSUE")
    events = [composite("e-9", T), composite("e-1", T + 7200, "LATENCY_ISSUE"),
              composite("e-1", T + 7200 + W, "LATENCY_ISSUE"), composite("e-1", T + 7200 + 2 * W, "LATENCY_ISSUE")]
    report = score([inc], alerts_from_events(events), window_s=W, warmup_end_s=T + 3600)
    assert report["alerts"] == 4 and report["warmup_false_alarm_alerts"] == 1 and report["false_alarm_alerts"] == 0
    assert report["matched_alerts"] == 3 and report["alert_precision"] == 0.75
    assert report["matched_alerts"] == sum(o["matched_alerts"] for o in report["outcomes"])


# --- time to detect counts the first window holding incident data -------------------------------

def test_a_window_that_ends_seconds_after_the_start_without_incident_samples_does_not_detect():
    """sim-7-007 of a make run: incident from 19:04:57, first alert [19:00, 19:05) whose samples of
    the editor are all before 19:04:57; the next window's alert is the detection."""
    start = T + 3600 * 9 + 297                                    # 19:04:57
    inc = editor_incident("i7", "e-14", start, start + 5400, "CONFIGURATION_ISSUE")
    edge = composite("e-14", T + 3600 * 9, "INFRASTRUCTURE_ISSUE")    # [19:00, 19:05)
    inside = composite("e-14", T + 3600 * 9 + W, "CONFIGURATION_ISSUE")
    samples = {"editor:e-14": [T + 3600 * 9 + 264, start + 11, start + 51, start + 400]}   # 19:04:24, 19:05:08, ...
    report = score([inc], alerts_from_events([edge, inside]), window_s=W, samples=samples)
    outcome = report["outcomes"][0]
    assert outcome["time_to_detect_s"] == pytest.approx(303.0)
    assert outcome["first_alert"] == inside["detail"]["incident_id"]
    assert outcome["matched_alerts"] == 2 and outcome["detecting_alerts"] == 1
    assert outcome["predicted_type"] == "CONFIGURATION_ISSUE", "the window without incident data does not vote"
    assert report["false_alarm_alerts"] == 0, "it overlaps the incident: not a false alarm either"
    assert report["time_to_detect"]["detection"] == "first window holding a sample of the incident"
    # A window with a sample from the incident is a detection however small the overlap.
    report = score([inc], alerts_from_events([edge, inside]), window_s=W,
                   samples={"editor:e-14": [start + 1, start + 51]})
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(3.0)
    # Only its window's edge and no sample at all: credited, not detected.
    report = score([inc], alerts_from_events([edge]), window_s=W, samples=samples)
    assert report["detected"] == 0 and report["false_alarm_alerts"] == 0 and report["matched_alerts"] == 1
    # Without samples the report says what the time to detect then counts.
    report = score([inc], alerts_from_events([edge, inside]), window_s=W)
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(3.0)
    assert report["time_to_detect"]["detection"].startswith("first credited window (no archive samples")
    assert report["time_to_detect"]["measure"].startswith("event time: first detecting alert's window_end")


def test_a_partner_check_detects_on_the_partners_samples():
    inc = Incident("p1", "partner", "DEMAND_ISSUE", T + 240, T + 1800, partner="p-01", editors=("e-1",))
    events = [partner_check("p-01", T), partner_check("p-01", T + W)]
    report = score([inc], alerts_from_events(events), window_s=W,
                   samples={"partner:p-01": [T + 100, T + 400], "editor:e-1": [T + 250]})
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(2 * W - 240)


def test_sample_times_take_back_exactly_one_recorded_sample_whatever_the_order():
    """Discards binary-search times sorted at the first discard; adds may come between discards,
    out of order. The result must be what removing one equal value from a plain list gives."""
    rng = random.Random(7)
    times, expected, answers = SampleTimes(), {}, []
    for _ in range(3_000):
        editor, at_s = rng.choice(["e-1", "e-2"]), float(rng.randrange(40))
        if rng.random() < 0.6:
            times.add(editor, "p-1", at_s)
            for entity in (f"editor:{editor}", "partner:p-1"):
                expected.setdefault(entity, []).append(at_s)
        else:
            found = False
            for entity in (f"editor:{editor}", "partner:p-1"):
                if at_s in expected.get(entity, []):
                    expected[entity].remove(at_s)
                    found = True
            answers.append(times.discard(editor, "p-1", at_s) == found)
    assert all(answers) and len(answers) > 1_000
    assert times.sorted() == {entity: sorted(values) for entity, values in expected.items()}
