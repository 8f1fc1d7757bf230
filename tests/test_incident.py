"""Composite anomaly details (ids, revenue at risk, shape, size) and partner health checks."""

from __future__ import annotations

import hashlib
import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.classifier import ClassifierConfig, MetricDeviation, classify
from detectors.events import OperationalEvent
from detectors.incident import (
    COMPOSITE_KEYS,
    MAX_DETAIL_BYTES,
    METRIC_KEYS,
    build_composite_detail,
    incident_id,
    revenue_at_risk,
)
from detectors.partner_health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    PartnerHealthConfig,
    assess_partner_editors,
    check_id,
)

START, END = 1_793_527_500.0, 1_793_527_800.0  # 2026-11-01T10:05Z .. 10:10Z
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def dev(metric: str, value: float, baseline: float, score: float = 0.99, flagged: bool = True) -> MetricDeviation:
    return MetricDeviation(metric, value, baseline, baseline * 0.9, baseline * 1.1, score, flagged)


def demand_outage() -> dict[str, MetricDeviation]:
    return {
        "rpm": dev("rpm", 1.2, 2.5),
        "fill_rate": dev("fill_rate", 0.51, 0.85),
        "partner_timeouts": dev("partner_timeouts", 40.0, 5.0),
        "revenue": dev("revenue", 6.0, 12.5),
        "bid_latency_ms": dev("bid_latency_ms", 205.0, 200.0, 0.05, False),
        "impressions": dev("impressions", 5000.0, 5000.0, 0.0, False),
    }


# --------------------------------------------------------------------------- incident_id
def test_incident_id_is_deterministic_and_documented():
    expected = "inc-" + hashlib.sha256(b"e-001|2026-11-01T10:05:00Z|DEMAND_ISSUE").hexdigest()[:20]
    assert incident_id("e-001", START, "DEMAND_ISSUE") == expected
    assert incident_id("e-001", int(START), "DEMAND_ISSUE") == expected
    assert re.fullmatch(r"inc-[0-9a-f]{20}", expected)


def test_incident_id_changes_with_each_part():
    base = incident_id("e-001", START, "DEMAND_ISSUE")
    assert len({base, incident_id("e-002", START, "DEMAND_ISSUE"), incident_id("e-001", END, "DEMAND_ISSUE"),
                incident_id("e-001", START, "PRICING_ISSUE")}) == 4


# --------------------------------------------------------------------------- revenue at risk
def test_revenue_at_risk_worked_example():
    # revenue baseline 12.5 / min, now 6.0 / min: 6.5 / min lost over a 5-minute window = 32.5.
    assert revenue_at_risk(demand_outage(), 300) == 32.5
    # Windows holding totals instead of per-minute rates: the shortfall itself.
    assert revenue_at_risk(demand_outage(), 300, rate_period_s=300) == 6.5


def test_revenue_at_risk_falls_back_to_rpm_times_impressions():
    devs = {"rpm": dev("rpm", 1.0, 2.0), "impressions": dev("impressions", 800.0, 1000.0)}
    # expected 2.0 * 1000 / 1000 = 2.0, actual 1.0 * 800 / 1000 = 0.8 per minute; x5 minutes.
    assert revenue_at_risk(devs, 300) == pytest.approx(6.0)


def test_revenue_at_risk_is_zero_without_money_metrics_or_on_a_gain():
    assert revenue_at_risk({"bid_latency_ms": dev("bid_latency_ms", 900.0, 200.0)}, 300) == 0.0
    assert revenue_at_risk({"revenue": dev("revenue", 15.0, 10.0)}, 300) == 0.0
    assert revenue_at_risk({"revenue": dev("revenue", math.nan, 10.0)}, 300) == 0.0
    with pytest.raises(ValueError):
        revenue_at_risk(demand_outage(), 0)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(value=finite, baseline=finite, rpm=finite, rpm_base=finite, imps=finite, imps_base=finite,
       window=st.floats(min_value=1, max_value=86_400), with_revenue=st.booleans())
def test_revenue_at_risk_is_never_negative(value, baseline, rpm, rpm_base, imps, imps_base, window, with_revenue):
    devs = {"rpm": dev("rpm", rpm, rpm_base), "impressions": dev("impressions", imps, imps_base)}
    if with_revenue:
        devs["revenue"] = dev("revenue", value, baseline)
    assert revenue_at_risk(devs, window) >= 0.0


# --------------------------------------------------------------------------- composite detail
def build(devs=None, events=(), **kw):
    devs = devs or demand_outage()
    classification = classify(devs, list(events), window_end_s=END)
    return build_composite_detail("e-001", START, END, devs, list(events), classification, **kw), classification


def test_composite_detail_has_exactly_the_documented_shape():
    detail, c = build()
    assert tuple(detail) == COMPOSITE_KEYS
    json.dumps(detail, allow_nan=False)  # strict JSON: no NaN / Infinity anywhere
    assert detail["incident_id"] == incident_id("e-001", START, "DEMAND_ISSUE")
    assert (detail["window_start"], detail["window_end"]) == ("2026-11-01T10:05:00Z", "2026-11-01T10:10:00Z")
    assert (detail["problem_type"], detail["category"], detail["severity"]) == (c.problem_type, c.category, c.severity)
    assert detail["metrics_affected"] == len(detail["affected_metrics"]) == 4
    assert detail["affected_metrics"] == ["fill_rate", "partner_timeouts", "revenue", "rpm"]
    assert set(detail["metrics"]) == set(demand_outage())
    for block in detail["metrics"].values():
        assert tuple(block) == METRIC_KEYS
    assert detail["metrics"]["rpm"] == {"value": 1.2, "baseline": 2.5, "lower": 2.25, "upper": 2.75, "score": 0.99,
                                        "deviation_pct": -52.0}
    assert detail["revenue_at_risk"] == 32.5
    assert detail["evidence"] == c.evidence


def test_summary_reads_like_a_sentence_for_an_adops_engineer():
    detail, _ = build(events=[OperationalEvent("partner_status", END - 420, partner="p-alpha",
                                               details={"status": "degraded"})])
    summary = detail["summary"]
    assert summary.startswith("DEMAND_ISSUE on e-001 (")
    for needle in ("fill_rate -40% vs baseline 0.85", "rpm -52% vs baseline 2.5", "likely a demand-partner outage",
                   "partner_status at 10:03Z", "revenue at risk 32.50"):
        assert needle in summary, needle
    assert summary.endswith(".") and "\n" not in summary


def test_the_summary_shows_the_largest_of_equally_scored_moves_first():
    """Scores are often all 1.0 in an incident, and ties went to the metrics' names: "bid_rate -5%" was
    shown and "rpm -52%" left among the "N more"."""
    devs = {**demand_outage(), "bid_rate": dev("bid_rate", 0.57, 0.6), "win_rate": dev("win_rate", 0.19, 0.2)}
    devs = {m: dev(m, d.value, d.baseline, 0.99 if d.is_anomaly else d.score, d.is_anomaly) for m, d in devs.items()}
    detail, _ = build(devs)
    shown = detail["summary"].split(": ", 1)[1].split("; ")[:5]
    assert shown[:4] == ["partner_timeouts +700% vs baseline 5", "revenue -52% vs baseline 12.5",
                         "rpm -52% vs baseline 2.5", "fill_rate -40% vs baseline 0.85"], shown
    assert shown[4] == f"{detail['metrics_affected'] - 4} more"
    # a move from a zero baseline has no percentage, and is no smaller for it
    devs["error_rate"] = MetricDeviation("error_rate", 0.3, 0.0, 0.0, 0.01, 0.99, True)
    detail, _ = build(devs)
    assert detail["summary"].split(": ", 1)[1].startswith("error_rate 0.3 vs baseline 0; "), detail["summary"]


def test_invalid_traffics_revenue_at_risk_is_what_the_surplus_impressions_earned():
    """Bots inflate revenue in the window; what is at risk is the advertisers' clawback of what the
    impressions above baseline earned (detectors.revenue.revenue_at_risk). Until 2026-12-07 a
    SECURITY_ISSUE said "revenue at risk 0.00" whenever its revenue had not fallen."""
    surge = {
        "impressions": dev("impressions", 600.0, 150.0),
        "rpm": dev("rpm", 1.0, 2.5),
        "revenue": dev("revenue", 0.6, 0.4, 0.5, False),     # per minute: up, as bots earn a little
        "error_rate": dev("error_rate", 0.01, 0.01, 0.0, False),
    }
    detail, c = build(surge)
    assert c.problem_type == "SECURITY_ISSUE"
    # 0.6 per minute x 5 minutes x 450 / 600 of the impressions above baseline
    assert detail["revenue_at_risk"] == 2.25
    assert detail["revenue_at_risk_known"] is True
    assert ("revenue at risk 2.25 in the window (the larger of the shortfall and what the 75% of impressions "
            "above baseline earned, clawed back if invalid)") in detail["summary"]
    assert detail["evidence"][-1].startswith("revenue at risk 2.25 in the 5-min window (the larger of")
    # When the shortfall is the larger, it is the figure: revenue halved, a quarter of the impressions extra.
    halved = {**surge, "impressions": dev("impressions", 200.0, 150.0), "revenue": dev("revenue", 0.2, 0.4)}
    detail, c = build(halved)
    assert (c.problem_type, detail["revenue_at_risk"]) == ("SECURITY_ISSUE", 1.0)     # 0.2 x 5, not 0.2 x 5 x 1/4
    # Any other problem type is at risk of its shortfall only, impressions above baseline or not.
    slow = {"bid_latency_ms": dev("bid_latency_ms", 500.0, 200.0), "impressions": dev("impressions", 300.0, 150.0),
            "revenue": dev("revenue", 0.4, 0.4, 0.0, False), "rpm": dev("rpm", 1.3, 2.6)}
    detail, c = build(slow)
    assert (c.problem_type, detail["revenue_at_risk"]) == ("LATENCY_ISSUE", 0.0)
    assert "clawed back" not in detail["summary"]


def test_many_changes_made_for_partners_push_neither_the_editors_own_events_nor_a_report_out():
    """The job passes a change made for a partner to every editor of the partner: twenty of them in the
    look-back must not cost a demand outage's composite the editor's own deployment, nor the failing
    partner's own report, which the summary cites (it weighs most), saying whose it is."""
    changes = [OperationalEvent("config_change", END - 60 - i, partner=f"p-{i + 10}",
                                details={"change": "timeout lowered"}) for i in range(20)]
    deployment = OperationalEvent("deployment", END - 900, editor_id="e-001", details={"version": "2.1"})
    report = OperationalEvent("partner_status", END - 600, partner="p-1", details={"status": "DEGRADED"})
    finding = OperationalEvent("partner_health", END - 1, editor_id="e-001", partner="p-1",
                               details={"status": "UNHEALTHY", "signals": []})
    events = changes + [deployment, report]
    classification = classify(demand_outage(), events, window_end_s=END)
    detail = build_composite_detail("e-001", START, END, demand_outage(), events, classification,
                                    partner_findings=[finding])
    causes = detail["suspected_causes"]
    assert len(causes) == 20 and causes[0]["event_type"] == "partner_health"
    assert [c["event_type"] for c in causes[-2:]] == ["partner_status", "deployment"]   # newest first
    assert "after p-1's partner_status at 10:00Z" in detail["summary"]


def test_the_cause_a_pattern_links_is_kept_and_cited_from_the_events_themselves():
    # An infrastructure fault among twenty changes made for partners (which it does not link): the
    # network's deployment, which it links and the classification cites, stays among the causes.
    changes = [OperationalEvent("config_change", END - 60 - i, partner=f"p-{i}", details={"change": "timeout"})
               for i in range(20)]
    deployment = OperationalEvent("deployment", END - 1200, details={"service": "ad-server"})
    faults = {"error_rate": dev("error_rate", 0.05, 0.01), "cache_hit_rate": dev("cache_hit_rate", 0.4, 0.9),
              "bid_latency_ms": dev("bid_latency_ms", 450.0, 200.0), "rpm": dev("rpm", 2.5, 2.5, 0.0, False)}
    detail, c = build(faults, events=changes + [deployment])
    assert c.problem_type == "INFRASTRUCTURE_ISSUE"
    assert len(detail["suspected_causes"]) == 20 and detail["suspected_causes"][-1]["event_type"] == "deployment"
    assert "after a network-wide deployment at 09:50Z" in detail["summary"]
    # A floor change whose details are too long to list whole is still the one the pricing pattern
    # weighs most, so the summary cites it, not a newer change that names no price.
    floor = OperationalEvent("config_change", END - 600, editor_id="e-001",
                             details={"notes": "x" * 5000, "setting": "price_floor", "new_value": 0.1})
    slots = OperationalEvent("config_change", END - 120, editor_id="e-001", details={"setting": "ad_slots"})
    detail, c = build({"rpm": dev("rpm", 1.5, 2.5), "revenue": dev("revenue", 1.5, 2.5)}, events=[floor, slots])
    assert c.problem_type == "PRICING_ISSUE"
    assert detail["suspected_causes"][1]["details"]["truncated"] is True
    assert "after a config_change at 10:00Z" in detail["summary"]


def test_suspected_causes_are_the_editors_events_of_the_last_30_minutes():
    events = [
        OperationalEvent("config_change", END - 5 * 60, editor_id="e-001", details={"key": "floor"}),
        OperationalEvent("deployment", END - 29 * 60, editor_id="e-001"),
        OperationalEvent("deployment", END - 31 * 60, editor_id="e-001"),      # too old
        OperationalEvent("feature_flag", END - 60, editor_id="e-999"),         # another editor
        OperationalEvent("feature_flag", END + 60, editor_id="e-001"),         # after the window
        OperationalEvent("partner_status", END - 120, partner="p-alpha"),      # partner-wide
    ]
    detail, _ = build(events=events)
    causes = detail["suspected_causes"]
    assert [c["event_type"] for c in causes] == ["partner_status", "config_change", "deployment"]
    assert causes[1] == {"event_type": "config_change", "timestamp": "2026-11-01T10:05:00Z", "editor_id": "e-001",
                         "details": {"key": "floor"}}
    narrower, _ = build(events=events, config=ClassifierConfig(event_lookback_s=600))
    assert [c["event_type"] for c in narrower["suspected_causes"]] == ["partner_status", "config_change"]


def test_a_partner_reporting_itself_well_is_no_suspected_cause():
    """A partner back to HEALTHY ends an outage; listed among the causes it could push a real one past the cap."""
    events = [OperationalEvent("partner_status", END - 60 - i, partner="p-alpha", details={"status": status})
              for i, status in enumerate(["HEALTHY", "ok", "DEGRADED", "Recovered"])]
    events.append(OperationalEvent("config_change", END - 600, editor_id="e-001", details={"key": "floor"}))
    detail, _ = build(events=events)
    assert [(c["event_type"], c["details"].get("status")) for c in detail["suspected_causes"]] == \
        [("partner_status", "DEGRADED"), ("config_change", None)]


def test_the_percentage_shown_is_the_one_its_value_and_baseline_give():
    """The classifier floors a tiny baseline (error_rate: 0.005) so a small move does not look huge;
    the detail showed that floored figure next to the real baseline (0.008 vs 0.002 read +120%)."""
    devs = demand_outage()
    devs["error_rate"] = MetricDeviation("error_rate", 0.008, 0.002, 0.0, 0.004, 0.99, True)
    devs["cache_hit_rate"] = MetricDeviation("cache_hit_rate", 0.4, 0.0, 0.0, 0.1, 0.99, True)
    detail, classification = build(devs)
    assert detail["metrics"]["error_rate"]["deviation_pct"] == 300.0
    assert detail["metrics"]["cache_hit_rate"]["deviation_pct"] is None   # no percentage of zero
    assert "error_rate +300% vs baseline 0.002" in detail["summary"]
    assert any(e.startswith("error_rate 0.008 vs baseline 0.002 (+300.0%") for e in classification.evidence)


def test_a_partner_checks_reasons_give_the_percentage_its_metrics_block_shows():
    from detectors.partner_health import PartnerHealthConfig, assess_signal

    deviation = MetricDeviation("partner_timeouts", 0.008, 0.002, 0.0, 0.004, 0.99, True)
    spec = {"direction": 1, "degraded": 0.5, "unhealthy": 1.0}
    assessment = assess_signal(deviation, spec, floor=0.01)
    assert assessment.describe() == "partner_timeouts +300.0% vs baseline (degraded)"   # was +60.0% (floored)
    zero = assess_signal(MetricDeviation("partner_timeouts", 3.0, 0.0, 0.0, 1.0, 0.99, True), spec, floor=1.0)
    assert zero.describe() == "partner_timeouts from a zero baseline (unhealthy)"


def test_non_finite_numbers_become_null():
    devs = demand_outage()
    devs["bid_latency_ms"] = MetricDeviation("bid_latency_ms", math.nan, 200.0, math.nan, math.inf, math.nan, False)
    detail, _ = build(devs)
    assert detail["metrics"]["bid_latency_ms"] == {"value": None, "baseline": 200.0, "lower": None, "upper": None,
                                                   "score": None, "deviation_pct": None}
    json.dumps(detail, allow_nan=False)
    devs["cache_hit_rate"] = MetricDeviation("cache_hit_rate", 0.9, None, None, None, None, False)
    detail, _ = build(devs)
    assert detail["metrics"]["cache_hit_rate"]["baseline"] is None
    assert detail["metrics"]["cache_hit_rate"]["deviation_pct"] is None


def test_detail_stays_under_the_eventbridge_limit():
    huge = {"blob": "x" * 50_000}
    events = [OperationalEvent("config_change", END - i, editor_id="e-001", details=huge) for i in range(200)]
    detail, c = build(events=events)
    assert len(json.dumps(detail).encode()) < MAX_DETAIL_BYTES < 256 * 1024
    assert 0 < len(detail["suspected_causes"]) <= 20
    assert detail["suspected_causes"][0]["details"]["truncated"] is True
    long_evidence = type(c)(c.problem_type, c.category, c.severity, ["y" * 100_000] * 100, c.affected_metrics)
    detail = build_composite_detail("e-001", START, END, demand_outage(), [], long_evidence)
    assert len(json.dumps(detail).encode()) < MAX_DETAIL_BYTES
    assert all(len(e) <= 500 for e in detail["evidence"])


def test_a_non_incident_has_no_composite_detail():
    devs = {"rpm": dev("rpm", 2.5, 2.5, 0.0, False)}
    with pytest.raises(ValueError, match="not an incident"):
        build_composite_detail("e-001", START, END, devs, [], classify(devs, []))


# --------------------------------------------------------------------------- partner health
def partner(**metrics) -> dict:
    devs = {name: dev(name, value, base, score=0.99 if flagged else 0.1, flagged=flagged)
            for name, (value, base, flagged) in metrics.items()}
    return assess_partner("p-alpha", START, END, devs, ["e-002", "e-001", "e-002"], 123.456)


def assess_partner(name, start, end, devs, editors, impact, config=None) -> dict:
    """The job's check (every editor judged on its own series) with the same deviations on each
    editor, so the partner's status is that of one editor's signals (at least two editors report)."""
    editors = sorted(set(editors)) or ["e-001", "e-002"]
    return assess_partner_editors(name, start, end, {e: devs for e in editors}, impact, config)


NORMAL = dict(partner_timeouts=(10.0, 10.0, False), bid_rate=(0.9, 0.9, False), win_rate=(0.2, 0.2, False),
              fill_rate=(0.8, 0.8, False))


def test_partner_status_transitions():
    assert partner(**NORMAL)["partner_status"] == HEALTHY
    # One signal a bit off: degraded.
    assert partner(**{**NORMAL, "win_rate": (0.16, 0.2, True)})["partner_status"] == DEGRADED
    # Two signals off at once: the partner is failing, not slow.
    assert partner(**{**NORMAL, "win_rate": (0.16, 0.2, True),
                      "bid_rate": (0.75, 0.9, True)})["partner_status"] == UNHEALTHY
    # One signal far off on its own: timeouts tripled.
    assert partner(**{**NORMAL, "partner_timeouts": (35.0, 10.0, True)})["partner_status"] == UNHEALTHY


def test_partner_moves_in_the_good_direction_are_healthy():
    better = dict(partner_timeouts=(2.0, 10.0, True), bid_rate=(1.0, 0.8, True), win_rate=(0.3, 0.2, True))
    assert partner(**better)["partner_status"] == HEALTHY


def test_partner_thresholds_are_configurable():
    devs = {"fill_rate": dev("fill_rate", 0.7, 0.8, 0.5, False)}  # -12.5 %
    assert assess_partner("p", START, END, devs, [], 0.0)["partner_status"] == DEGRADED
    lenient = PartnerHealthConfig.from_dict({"signals": {"fill_rate": {"degraded": 0.2}}})
    assert assess_partner("p", START, END, devs, [], 0.0, lenient)["partner_status"] == HEALTHY
    strict = PartnerHealthConfig.from_dict({"signals": {"fill_rate": {"unhealthy": 0.12}}})
    assert assess_partner("p", START, END, devs, [], 0.0, strict)["partner_status"] == UNHEALTHY


def test_partner_detail_shape_and_check_id():
    detail = partner(**{**NORMAL, "partner_timeouts": (35.0, 10.0, True)})
    assert {"check_id", "partner", "partner_status", "window_start", "window_end", "impact_assessment",
            "editors_affected", "metrics"} <= set(detail)
    assert detail["check_id"] == check_id("p-alpha", START) == check_id("p-alpha", int(START))
    assert detail["check_id"] == "phc-" + hashlib.sha256(b"p-alpha|2026-11-01T10:05:00Z").hexdigest()[:20]
    assert check_id("p-beta", START) != detail["check_id"] != check_id("p-alpha", END)
    assert detail["impact_assessment"] == {"revenue_impact": 123.46, "editors_affected": 2}
    assert detail["editors_affected"] == ["e-001", "e-002"]
    assert ISO_Z.match(detail["window_start"]) and ISO_Z.match(detail["window_end"])
    assert detail["metrics"]["partner_timeouts"]["deviation_pct"] == 250.0
    assert any("partner_timeouts +250.0%" in r for r in detail["reasons"])
    json.dumps(detail, allow_nan=False)


def test_partner_revenue_impact_is_never_negative():
    assert assess_partner("p", START, END, {}, [], -50.0)["impact_assessment"]["revenue_impact"] == 0.0
    assert assess_partner("p", START, END, {}, [], math.nan)["impact_assessment"]["revenue_impact"] == 0.0


def test_partner_flag_on_a_tiny_move_is_not_degradation():
    wobble = {"bid_rate": dev("bid_rate", 0.89, 0.9, 0.99, True)}  # -1 %, flagged
    dip = {"bid_rate": dev("bid_rate", 0.81, 0.9, 0.99, True)}     # -10 %, flagged, under the 15 % threshold
    assert assess_partner("p", START, END, wobble, [], 0.0)["partner_status"] == HEALTHY
    assert assess_partner("p", START, END, dip, [], 0.0)["partner_status"] == DEGRADED


def test_shipped_partner_config_equals_the_defaults():
    from dataclasses import asdict
    from pathlib import Path

    import detectors.partner_health as ph

    shipped = Path(ph.__file__).with_name("config") / "partner_health.json"
    assert json.loads(shipped.read_text()) == asdict(PartnerHealthConfig())
    assert PartnerHealthConfig.from_json(shipped) == PartnerHealthConfig()


def test_the_summary_explains_what_it_can_and_says_what_it_cannot():
    """From a review of the alerts' text: flagged metrics against a zero baseline were left out, so an
    alert with two flagged metrics read "no metric outside its band"; the first four moves were the
    alphabetical ones, not the strongest; an unmeasurable revenue at risk read "0.00"; the cause
    cited was the newest event, even a partner back to HEALTHY, which ends an outage."""
    devs = {"rpm": dev("rpm", 1.6, 2.0, 0.95), "bid_latency_ms": dev("bid_latency_ms", 900.0, 200.0, 0.999),
            "partner_timeouts": dev("partner_timeouts", 3.0, 0.0, 0.99),
            "cache_hit_rate": dev("cache_hit_rate", 0.99, 0.9, 0.6)}
    events = [OperationalEvent("deployment", END - 25 * 60, editor_id="e-001"),
              OperationalEvent("partner_status", END - 60, editor_id="e-001", partner="p-1",
                               details={"status": "HEALTHY"})]
    detail, classification = build(devs, events)
    summary = detail["summary"]
    assert classification.problem_type == "LATENCY_ISSUE", summary
    assert summary.index("bid_latency_ms +350%") < summary.index("rpm -20%"), "the strongest move first"
    assert "partner_timeouts 3 vs baseline 0" in summary and "no metric outside its band" not in summary
    assert "after a deployment at 09:45Z" in summary and "partner_status" not in summary
    assert "revenue at risk unknown" in summary and detail["revenue_at_risk"] == 0.0
    assert detail["revenue_at_risk_known"] is False
    assert build()[0]["revenue_at_risk_known"] is True


def test_the_detail_does_not_depend_on_the_order_events_of_one_instant_arrived_in():
    events = [OperationalEvent("config_change", END - 120, editor_id="e-001", details={"key": k}) for k in "abc"]
    first, _ = build(events=events)
    again, _ = build(events=list(reversed(events)))
    assert first == again and [c["details"]["key"] for c in first["suspected_causes"]] == ["a", "b", "c"]
