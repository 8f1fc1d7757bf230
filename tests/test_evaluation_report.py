"""The HTML report renders from a scored run: plots embedded, figures shown (no Flink needed)."""
from __future__ import annotations

import base64
import html
import json

from connectors.simulator import Scenario, generate
from flink_jobs.evaluation import alerts_from_events, load_labels, score
from flink_jobs.evaluation.scoring import iso, parse_time
from flink_jobs.report import write_report


def test_report_page_embeds_every_plot_and_the_headline_figures(tmp_path):
    archive = tmp_path / "sim"
    generate(Scenario(editors=8, partners=3, hours=4.0, seed=9, editor_cadence_s=(30.0, 60.0),
                      partner_cadence_s=(60.0, 120.0)), archive)
    labels = [json.loads(l) for l in (archive / "labels.jsonl").read_text().splitlines()]
    # Alerts as the bus would deliver them: the first two incidents caught (one mistyped), nothing else.
    events = []
    for label, problem_type in zip(labels[:2], [labels[0]["problem_type"], "UNKNOWN"]):
        editor = label.get("editor_id") or label["editors"][0]
        ws = parse_time(label["start"]) // 300 * 300
        events.append({"source": "adops.analytics", "detail-type": "Composite Anomaly Detected", "id": label["incident_id"],
                       "detail": {"incident_id": f"inc-{label['incident_id']}", "editor_id": editor,
                                  "window_start": iso(ws), "window_end": iso(ws + 300), "problem_type": problem_type,
                                  "metrics": {"rpm": {"value": 1.0, "baseline": 2.0, "lower": 1.8, "upper": 2.2}},
                                  "summary": f"{problem_type} on {editor}: rpm -50% vs baseline 2 <likely> & more"}})
    report = score(load_labels(archive / "labels.jsonl"), alerts_from_events(events), window_s=300, editor_days=8 / 6)
    report["events"] = events
    page = write_report(report, archive, archive / "labels.jsonl", tmp_path / "out" / "report.html").read_text()
    images = page.count("data:image/png;base64,")
    assert images >= 4, "timeline, at least one series, confusion matrix, time-to-detect"
    first = page.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "confusion matrix" in page.lower() and "time to detect" in page.lower()
    assert f">{report['detected']}<" in page and "precision / recall / F1" in page
    # each composite's own explanation, escaped
    assert "Composite anomalies as sent (2 of 2, in window order)" in page
    for e in events:
        assert html.escape(e["detail"]["summary"]) in page
    assert "<likely>" not in page


def _labels_file(path, labels):
    path.write_text("".join(json.dumps(label) + "\n" for label in labels))
    return path


def test_labels_the_scorer_accepts_render_a_numeric_id_and_a_partner_without_editors(tmp_path):
    """Both are valid labels (editors is optional; an id may be a number): the page used to raise
    KeyError on each."""
    archive = tmp_path / "sim"
    generate(Scenario(editors=3, partners=2, hours=3.0, seed=5, editor_cadence_s=(60.0, 90.0),
                      partner_cadence_s=(120.0, 180.0)), archive)
    t = parse_time("2026-11-02T01:00:00Z")
    labels = _labels_file(tmp_path / "labels.jsonl", [
        {"incident_id": 1, "scope": "editor", "problem_type": "LATENCY_ISSUE", "start": iso(t), "end": iso(t + 1800),
         "editor_id": "e-001"},
        {"incident_id": "P", "scope": "partner", "problem_type": "DEMAND_ISSUE", "start": iso(t),
         "end": iso(t + 1800), "partner": "p-01"}])
    events = [{"source": "adops.analytics", "detail-type": "Composite Anomaly Detected", "id": "x",
               "detail": {"incident_id": "inc-x", "editor_id": "e-001", "window_start": iso(t),
                          "window_end": iso(t + 300), "problem_type": "LATENCY_ISSUE"}},
              {"source": "adops.monitoring", "detail-type": "Partner Health Check", "id": "y",
               "detail": {"check_id": "chk-y", "partner": "p-01", "partner_status": "UNHEALTHY",
                          "window_start": iso(t), "window_end": iso(t + 300)}}]
    report = score(load_labels(labels), alerts_from_events(events), window_s=300)
    report["events"] = events
    page = write_report(report, archive, labels, tmp_path / "report.html").read_text()
    assert report["detected"] == 2 and "<td>1</td><td>LATENCY_ISSUE</td>" in page and "partner:p-01" in page
    assert page.count("data:image/png;base64,") == 4, "timeline, the editor's series, confusion, time to detect"


def test_an_incomplete_run_is_flagged_at_the_top_of_the_page(tmp_path):
    labels = _labels_file(tmp_path / "labels.jsonl", [
        {"incident_id": "a", "scope": "editor", "problem_type": "LATENCY_ISSUE", "start": "2026-11-02T01:00:00Z",
         "end": "2026-11-02T01:30:00Z", "editor_id": "e-001"}])
    (tmp_path / "archive").mkdir()
    report = score(load_labels(labels), [], window_s=300)
    report.update(run_complete=False, run_incomplete=["cut short: bus events were still arriving"])
    page = write_report(report, tmp_path / "archive", labels, tmp_path / "report.html").read_text()
    head = page.split("<h2>")[0]
    assert "INCOMPLETE RUN" in head and "cut short: bus events were still arriving" in head


def test_the_page_names_what_a_run_shows_and_counts_a_redelivery_once(tmp_path, recwarn):
    """The job's lag, each incident's first detection, the warm-up's false alarms; a partner outage
    drawn for an editor that has data; a composite delivered twice listed once, as it is scored."""
    archive = tmp_path / "sim"
    generate(Scenario(editors=3, partners=2, hours=3.0, seed=5, editor_cadence_s=(60.0, 90.0),
                      partner_cadence_s=(120.0, 180.0)), archive)
    t = parse_time("2026-11-02T01:00:00Z")
    outage = {"incident_id": "P", "scope": "partner", "problem_type": "DEMAND_ISSUE", "start": iso(t),
              "end": iso(t + 1800), "partner": "p-01", "editors": ["e-999", "e-002"]}
    labels = _labels_file(tmp_path / "labels.jsonl", [outage])
    composite = {"source": "adops.analytics", "detail-type": "Composite Anomaly Detected", "id": "first",
                 "detail": {"incident_id": "inc-x", "editor_id": "e-002", "window_start": iso(t),
                            "window_end": iso(t + 300), "problem_type": "DEMAND_ISSUE", "summary": "demand on e-002"}}
    early = {"source": "adops.analytics", "detail-type": "Composite Anomaly Detected", "id": "early",
             "detail": {"incident_id": "inc-early", "editor_id": "e-003", "window_start": iso(t - 3000),
                        "window_end": iso(t - 2700), "problem_type": "LATENCY_ISSUE"}}
    events = [early, composite, {**composite, "id": "redelivered"}]
    report = score(load_labels(labels), alerts_from_events(events), window_s=300, warmup_end_s=t - 600)
    report["events"] = events
    report["run"] = {"job_lag_s": {"events": 3, "median": 3.1, "max": 8.7},
                     "replay_behind_schedule_s": {"events": 3, "median": 0.2, "max": 6.9}}
    page = write_report(report, archive, labels, tmp_path / "report.html").read_text()
    assert "the job&#x27;s lag" in page and "3.1 / 8.7" in page and "0.2 / 6.9" in page
    assert f"<td>{iso(t + 300)}</td><td>300</td>" in page       # the first detection's window end, TTD in s
    assert "<td>e-003</td><td>composite</td><td>LATENCY_ISSUE</td>" in page and "in the warm-up" in page
    assert "Composite anomalies as sent (2 of 2, in window order)" in page and page.count("demand on e-002") == 1
    assert not [w for w in recwarn if "legend" in str(w.message)], [str(w.message) for w in recwarn]
    # the outage's series are drawn for e-002, the first of its editors the archive has samples of
    from flink_jobs.report.html import _shown_editor, window_means
    means = window_means(archive, {"e-999", "e-002"}, 300.0)
    assert _shown_editor(outage, means, ["fill_rate", "rpm"]) == "e-002"


def test_a_partner_check_or_security_finding_delivered_twice_is_drawn_once():
    """The timeline drew every delivery; the scorer counts each id once, and so do the plots now."""
    from flink_jobs.report.html import composites_and_alert_points
    check = {"source": "adops.monitoring", "detail-type": "Partner Health Check",
             "detail": {"check_id": "chk-1", "partner": "p-01", "partner_status": "UNHEALTHY",
                        "window_start": "2026-11-02T01:00:00Z", "window_end": "2026-11-02T01:05:00Z"}}
    later = {**check, "detail": {**check["detail"], "check_id": "chk-2", "window_end": "2026-11-02T01:10:00Z"}}
    finding = {"source": "adops.security", "detail-type": "Security Incident Detected",
               "detail": {"finding_id": "f-1", "editor_id": "e-001", "detected_at": "2026-11-02T01:02:00Z"}}
    healthy = {**check, "detail": {**check["detail"], "check_id": "chk-3", "partner_status": "HEALTHY"}}
    details, points = composites_and_alert_points([check, finding, check, later, finding, healthy])
    assert details == []
    assert [(p.get("partner"), p.get("editor_id"), p["window_end"]) for p in points] == [
        ("p-01", None, "2026-11-02T01:05:00Z"), (None, "e-001", "2026-11-02T01:02:00Z"),
        ("p-01", None, "2026-11-02T01:10:00Z")]
    assert len(alerts_from_events([check, finding, check, later, finding, healthy])) == len(points)
