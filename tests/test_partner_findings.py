"""Partner findings: what a partner did to each editor it hurt, named in that editor's composite.

udfs.decisions.partner_window_check returns one finding per hurt editor, whatever the
partner's own status (a partner serving one editor is never judged across editors);
udfs.decisions.editor_window_composite attaches the window's findings to a DEMAND_ISSUE
and an UNKNOWN only, and never lets them change the classification. The job passes them from the
partner operator to the editor operator (udfs/correlator.py, tests/test_job_pipeline.py).
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from detectors.classifier import ClassifierConfig, MetricDeviation
from detectors.events import EventValidationError, parse_event
from detectors.partner_health import HEALTHY, UNHEALTHY
from udfs.decisions import (PARTNER_FINDING, editor_window_composite, partner_window_check, read_partner_state,
                            result_of)

SIZE_MS = 300_000
T0 = 1_793_520_000_000  # a window boundary (epoch ms)
END = T0 + 10 * SIZE_MS
CONFIG = replace(ClassifierConfig(), window_seconds=300.0, event_lookback_s=1800.0)


def dev(metric: str, value: float, baseline: float, score: float = 0.99, flagged: bool = True) -> MetricDeviation:
    return MetricDeviation(metric, value, baseline, baseline * 0.9, baseline * 1.1, score, flagged)


def results(scope_id: str, end: int, deviations: dict[str, MetricDeviation], editor: str | None = None) -> list[dict]:
    """The per-metric results udfs/metric_detector.WindowScoring hands the decisions."""
    return [result_of(scope_id, end, d, 3, editor) for _, d in sorted(deviations.items())]


def through_partner(hurt: bool) -> dict[str, MetricDeviation]:
    """One editor's traffic through a partner: timeouts x8 and bids halved when hurt."""
    if hurt:
        return {"partner_timeouts": dev("partner_timeouts", 40.0, 5.0), "bid_rate": dev("bid_rate", 0.3, 0.6)}
    return {"partner_timeouts": dev("partner_timeouts", 5.1, 5.0, 0.1, False),
            "bid_rate": dev("bid_rate", 0.6, 0.6, 0.1, False)}


def demand_window() -> dict[str, MetricDeviation]:
    return {"rpm": dev("rpm", 1.2, 2.5), "fill_rate": dev("fill_rate", 0.51, 0.85),
            "partner_timeouts": dev("partner_timeouts", 40.0, 5.0), "revenue": dev("revenue", 6.0, 12.5),
            "bid_latency_ms": dev("bid_latency_ms", 205.0, 200.0, 0.05, False)}


def latency_window() -> dict[str, MetricDeviation]:
    return {"rpm": dev("rpm", 1.4, 2.5), "bid_latency_ms": dev("bid_latency_ms", 800.0, 200.0),
            "partner_timeouts": dev("partner_timeouts", 9.0, 5.0), "revenue": dev("revenue", 7.0, 12.5),
            "fill_rate": dev("fill_rate", 0.84, 0.85, 0.05, False)}


def finding_for(editor: str, partner: str = "p-solo", end: int = END) -> dict:
    rows = results(partner, end, through_partner(True), editor)
    _, _, findings = partner_window_check(end, SIZE_MS, rows, None)
    assert len(findings) == 1
    return findings[0]


def test_a_partner_serving_one_editor_is_not_judged_but_names_itself_to_that_editor():
    detail, state, findings = partner_window_check(END, SIZE_MS, results("p-solo", END, through_partner(True), "e-1"),
                                                   None)
    # One reporting editor cannot tell a partner failure from the editor's own (min_editors = 2) ...
    assert detail is None and read_partner_state(state)[0] == HEALTHY
    # (the hurt editor's signal baselines are held, so it is named for as long as it stays hurt)
    assert list(read_partner_state(state)[1]) == ["e-1"]
    # ... but the editor learns which partner hurt it, and how.
    assert len(findings) == 1
    f = findings[0]
    assert (f["event_type"], f["timestamp_ms"], f["editor_id"], f["partner"]) == (PARTNER_FINDING, END, "e-1", "p-solo")
    d = f["details"]
    assert d["status"] == UNHEALTHY and d["partner_status"] == HEALTHY
    assert (d["editors_hurt"], d["editors_reporting"]) == (1, 1)
    assert any(s.startswith("partner_timeouts +700.0%") for s in d["signals"])


def test_every_hurt_editor_gets_a_finding_and_the_others_none():
    rows = (results("p-1", END, through_partner(True), "e-1") + results("p-1", END, through_partner(True), "e-2")
            + results("p-1", END, through_partner(False), "e-3"))
    detail, _, findings = partner_window_check(END, SIZE_MS, rows, None)
    assert detail["partner_status"] == UNHEALTHY
    assert [f["editor_id"] for f in findings] == ["e-1", "e-2"]
    assert {f["details"]["check_id"] for f in findings} == {detail["check_id"]}
    assert {(f["details"]["editors_hurt"], f["details"]["editors_reporting"]) for f in findings} == {(2, 3)}


def test_a_demand_composite_names_the_partner_without_changing_its_verdict():
    plain, _ = editor_window_composite(END, SIZE_MS, results("e-1", END, demand_window()), [], CONFIG)
    named, _ = editor_window_composite(END, SIZE_MS, results("e-1", END, demand_window()), [finding_for("e-1")],
                                       CONFIG)
    assert plain["problem_type"] == named["problem_type"] == "DEMAND_ISSUE"
    for key in ("incident_id", "severity", "category", "metrics_affected", "metrics", "revenue_at_risk"):
        assert named[key] == plain[key], key
    cause = named["suspected_causes"][0]
    assert (cause["event_type"], cause["partner"], cause["details"]["status"]) == (PARTNER_FINDING, "p-solo",
                                                                                   UNHEALTHY)
    assert "through p-solo (UNHEALTHY for this editor)" in named["summary"]
    assert "p-solo" not in plain["summary"]
    assert named["evidence"][0] == plain["evidence"][0]      # the verdict's headline stays first
    assert named["evidence"][1].startswith("partner p-solo UNHEALTHY for this editor: partner_timeouts +700.0%")
    assert "partner-wide HEALTHY, 1 of 1 editors hurt" in named["evidence"][1]


def test_an_anomaly_no_pattern_explains_names_the_partners_that_hurt_the_editor():
    """During a partner's outage an editor whose timeouts rose through it, and little else moved, fits no
    pattern: its composite said "cause unknown" with no cause listed, while the partner check had found
    the partner hurting it in the same window. The finding is now its lead; the verdict is unchanged."""
    rows = results("e-1", END, {"partner_timeouts": dev("partner_timeouts", 40.0, 5.0),
                                "rpm": dev("rpm", 2.45, 2.5, 0.1, False),
                                "fill_rate": dev("fill_rate", 0.84, 0.85, 0.05, False)})
    plain, _ = editor_window_composite(END, SIZE_MS, rows, [], CONFIG, unexplained_end_ms=END - SIZE_MS)
    named, _ = editor_window_composite(END, SIZE_MS, rows, [finding_for("e-1")], CONFIG,
                                       unexplained_end_ms=END - SIZE_MS)
    assert plain["problem_type"] == named["problem_type"] == "UNKNOWN"
    assert plain["suspected_causes"] == [] and "p-solo" not in plain["summary"]
    for key in ("incident_id", "severity", "metrics_affected", "metrics", "revenue_at_risk"):
        assert named[key] == plain[key], key
    assert [(c["event_type"], c["partner"]) for c in named["suspected_causes"]] == [(PARTNER_FINDING, "p-solo")]
    assert ("cause unknown (fits no known pattern); partners that hurt it in the window: p-solo "
            "(UNHEALTHY for this editor)") in named["summary"]


def test_operational_events_still_follow_the_partner_findings():
    deploy = {"event_type": "partner_status", "timestamp_ms": END - 240_000, "editor_id": "e-1", "partner": "p-solo",
              "severity": None, "details": {"status": "degraded"}}
    detail, _ = editor_window_composite(END, SIZE_MS, results("e-1", END, demand_window()),
                                        [deploy, finding_for("e-1")], CONFIG)
    assert [c["event_type"] for c in detail["suspected_causes"]] == [PARTNER_FINDING, "partner_status"]
    assert "after a partner_status for p-solo at" in detail["summary"]


def test_a_latency_problem_ignores_partner_findings():
    """An editor's slow bidding times out through every partner: its partners' findings are
    symptoms, so the composite is exactly the one without them."""
    rows = results("e-1", END, latency_window())
    plain, _ = editor_window_composite(END, SIZE_MS, rows, [], CONFIG)
    with_findings, _ = editor_window_composite(END, SIZE_MS, rows, [finding_for("e-1", p) for p in ("p-1", "p-2")],
                                               CONFIG)
    assert plain["problem_type"] == "LATENCY_ISSUE"
    assert with_findings == plain


def test_only_the_windows_own_findings_are_attached():
    rows = results("e-1", END, demand_window())
    plain, _ = editor_window_composite(END, SIZE_MS, rows, [], CONFIG)
    earlier, _ = editor_window_composite(END, SIZE_MS, rows, [finding_for("e-1", end=END - SIZE_MS)], CONFIG)
    later, _ = editor_window_composite(END, SIZE_MS, rows, [finding_for("e-1", end=END + SIZE_MS)], CONFIG)
    assert earlier == plain and later == plain


def test_the_events_stream_cannot_pose_as_a_partner_finding():
    with pytest.raises(EventValidationError) as err:
        parse_event({"event_type": PARTNER_FINDING, "timestamp": END, "editor_id": "e-1", "partner": "p-1"})
    assert err.value.reason_code == "UNKNOWN_EVENT_TYPE"


def test_after_a_gap_in_the_partners_traffic_its_hurt_editors_from_before_do_not_count_again():
    """Reported: absence was counted in the partner's rows, so after six hours without any, editors
    hurt before the gap counted again as absent and hurt, and the checks of the first windows back
    (two healthy editors only) said UNHEALTHY and went on with the old outage. And (review) editors
    back from a short gap still hurt keep the outage going: their held baselines are not dropped."""
    import json
    import math

    from correlator_driver import WINDOW_MS, PartnerDriver
    from flink_fakes import KeyedStore

    def normal(i, k):
        return {"bid_rate": 0.6 * (1 + 0.02 * math.sin(i + k)), "win_rate": 0.3 * (1 + 0.02 * math.cos(i + k)),
                "partner_timeouts": 2.0 * (1 + 0.05 * math.sin(i * k)), "revenue": 1.0 + 0.02 * math.sin(i)}

    hurt = {"bid_rate": 0.05, "win_rate": 0.02, "partner_timeouts": 30.0, "revenue": 0.1}
    editors = ["e-A", "e-B", "e-C", "e-D"]
    start = 1_793_520_000_000
    op = PartnerDriver(KeyedStore(), idle_retention_ms=7 * 86_400_000)

    def window(i, rows):
        op.window("p-1", start + i * WINDOW_MS, rows)
        op.watermark(start + i * WINDOW_MS - 1)

    for i in range(1, 40):
        window(i, {e: normal(i, k) for k, e in enumerate(editors)})
    for i in range(40, 43):        # an outage on A and B
        window(i, {e: hurt if e in ("e-A", "e-B") else normal(i, k) for k, e in enumerate(editors)})
    checks = lambda: [json.loads(e[2]) for e in op.emitted if not isinstance(e, tuple)]
    before = checks()
    assert [c["partner_status"] for c in before] == ["UNHEALTHY"] * 3
    for i in range(43 + 72, 43 + 76):     # six hours of nothing; then only C and D, healthy
        window(i, {e: normal(i, k) for k, e in enumerate(editors) if e in ("e-C", "e-D")})
    (back,) = checks()[len(before):]
    assert back["partner_status"] == "HEALTHY" and back["editors_affected"] == []
    assert back["outage"]["ended"] and back["outage"]["outage_id"] == before[0]["outage"]["outage_id"]

    op = PartnerDriver(KeyedStore(), idle_retention_ms=7 * 86_400_000)
    for i in range(1, 40):
        window(i, {e: normal(i, k) for k, e in enumerate(editors)})
    for i in range(40, 50):        # ten windows of outage on A and B: the models learn its level
        window(i, {e: hurt if e in ("e-A", "e-B") else normal(i, k) for k, e in enumerate(editors)})
    for i in range(54, 58):        # four windows of nothing; A and B come back still hurt
        window(i, {e: hurt if e in ("e-A", "e-B") else normal(i, k) for k, e in enumerate(editors)})
    statuses = [(c["partner_status"], c["outage"]["outage_id"]) for c in checks()]
    assert statuses == [("UNHEALTHY", statuses[0][1])] * 14, statuses
