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
