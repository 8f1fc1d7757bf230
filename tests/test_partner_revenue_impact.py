"""Partner Health Check revenue impact: the revenue a partner's degradation puts at risk in a window.

detectors.partner_health.partner_revenue_impact / assess_partner_window and
udfs.decisions.partner_window_check (the function the job's PartnerHealth
operator and the offline replay call), on hand-built per-editor deviations;
flink_jobs.evaluation.offline.read_windows (the mirror of
sql/windows/*.sql) on a tiny archive for where the per-partner revenue goes.
"""
from __future__ import annotations

import gzip
import json

import pytest

from detectors.classifier import MetricDeviation as D
from detectors.partner_health import (HEALTHY, UNHEALTHY, PartnerHealthConfig, assess_partner_window,
                                      hold_references, partner_revenue_impact)
from flink_jobs.evaluation.offline import JobParameters, read_windows
from udfs.decisions import partner_window_check, read_partner_state, result_of

WINDOW_S = 300.0
T0 = 1_793_520_000_000  # a window boundary (epoch ms)


def fine(revenue: float | None = 2.0, revenue_value: float | None = None) -> dict[str, D]:
    """An editor's traffic through the partner within its band; revenue per minute (baseline, value)."""
    out = {"partner_timeouts": D("partner_timeouts", 10.0, 10.0, 6.0, 14.0, 0.1, False),
           "bid_rate": D("bid_rate", 0.6, 0.6, 0.5, 0.7, 0.1, False)}
    if revenue is not None:
        value = revenue if revenue_value is None else revenue_value
        out["revenue"] = D("revenue", value, revenue, 0.8 * revenue, 1.2 * revenue, 0.1, False)
    return out


def outage(revenue_baseline: float | None = 2.0, revenue_value: float = 0.2) -> dict[str, D]:
    """The partner stopped bidding for this editor: timeouts x10, bid rate -90 %, its revenue gone with them."""
    out = {"partner_timeouts": D("partner_timeouts", 100.0, 10.0, 6.0, 14.0, 0.99, True),
           "bid_rate": D("bid_rate", 0.06, 0.6, 0.5, 0.7, 0.99, True)}
    if revenue_baseline is not None:
        out["revenue"] = D("revenue", revenue_value, revenue_baseline, 0.8 * revenue_baseline,
                           1.2 * revenue_baseline, 0.99, True)
    return out


def test_a_healthy_partner_puts_nothing_at_risk_even_when_an_editors_revenue_dips():
    # e-2's revenue through the partner is 40 % down, but the partner answers and bids as usual for it:
    # that is the editor's own business (or noise), not the partner's.
    by_editor = {"e-1": fine(), "e-2": fine(2.0, revenue_value=1.2), "e-3": fine(5.0)}
    detail, references = assess_partner_window("p-1", 0, WINDOW_S, by_editor)
    assert detail["partner_status"] == HEALTHY
    assert detail["impact_assessment"] == {"revenue_impact": 0.0, "editors_affected": 0}
    assert references == {}


def test_an_editors_own_revenue_problem_is_not_charged_to_the_partner():
    # a floor set too low on every editor: revenue through the partner halves, partner signals are fine
    by_editor = {e: fine(3.0, revenue_value=1.5) for e in ("e-1", "e-2", "e-3")}
    detail, _ = assess_partner_window("p-1", 0, WINDOW_S, by_editor)
    assert detail["partner_status"] == HEALTHY and detail["impact_assessment"]["revenue_impact"] == 0.0


def test_a_degraded_partner_costs_the_hurt_editors_revenue_shortfall_bounded_by_their_baseline():
    by_editor = {"e-1": outage(2.0, 0.2), "e-2": outage(4.0, 0.0), "e-3": fine(10.0, revenue_value=6.0)}
    detail, references = assess_partner_window("p-1", 0, WINDOW_S, by_editor)
    assert detail["partner_status"] == UNHEALTHY and detail["editors_affected"] == ["e-1", "e-2"]
    impact = detail["impact_assessment"]["revenue_impact"]
    # (2.0 - 0.2) + (4.0 - 0.0) per minute over 5 minutes; e-3 (not hurt) adds nothing
    assert impact == pytest.approx((1.8 + 4.0) * 5)
    assert 0 < impact <= (2.0 + 4.0) * WINDOW_S / 60
    held_signals = {"bid_rate": (0.6, 0.5, 0.7), "partner_timeouts": (10.0, 6.0, 14.0)}
    # and revenue's band, for the check's metrics block (test_the_revenue_block_reads_the_held_revenue_band)
    assert references == {"e-1": (2.0, 1, {**held_signals, "revenue": (2.0, 1.6, 2.4)}),
                          "e-2": (4.0, 1, {**held_signals, "revenue": (4.0, 3.2, 4.8)})}


def test_a_hurt_editor_without_revenue_per_partner_adds_nothing_so_the_impact_is_a_lower_bound():
    by_editor = {"e-1": outage(2.0, 0.5), "e-2": outage(None)}
    detail, references = assess_partner_window("p-1", 0, WINDOW_S, by_editor)
    assert detail["partner_status"] == UNHEALTHY and detail["impact_assessment"]["editors_affected"] == 2
    assert detail["impact_assessment"]["revenue_impact"] == pytest.approx(1.5 * 5)
    # e-2 is held too, for its signals' baselines; it has no revenue reference
    assert {e: r for e, (r, _, _) in references.items()} == {"e-1": 2.0, "e-2": None}


def test_revenue_above_its_baseline_is_no_loss():
    assert partner_revenue_impact({"e-1": outage(2.0, 3.0)}, ["e-1"], WINDOW_S) == 0.0


def _rows(window_end_ms: int, by_editor: dict[str, dict[str, D]]) -> list[dict]:
    """The per-metric results the partner operator scores (udfs/metric_detector.py): one per (editor, metric)."""
    return [result_of("p-1", window_end_ms, d, 1, editor) for editor, per_metric in by_editor.items()
            for d in per_metric.values()]


def test_a_lasting_outage_keeps_costing_while_the_model_baseline_follows_it_down():
    """The online model's expected revenue falls to the outage level within a few windows (measured on
    the simulated outages); the impact is held against the revenue of the first hurt window."""
    state = None
    impacts = []
    # the model's baseline of the editors' revenue through the partner: 2.0 before, then following the drop
    for k, adapted_baseline in enumerate([2.0, 1.2, 0.5, 0.25, 0.2, 0.2]):
        end = T0 + (k + 1) * 300_000
        by_editor = {"e-1": outage(adapted_baseline, 0.2), "e-2": outage(adapted_baseline, 0.2)}
        detail, state, _ = partner_window_check(end, 300_000, _rows(end, by_editor), state)
        assert detail is not None and detail["partner_status"] == UNHEALTHY
        impacts.append(detail["impact_assessment"]["revenue_impact"])
    assert impacts == [pytest.approx(2 * 1.8 * 5)] * 6
    held_signals = {"bid_rate": (0.6, 0.5, 0.7), "partner_timeouts": (10.0, 6.0, 14.0), "revenue": (2.0, 1.6, 2.4)}
    status, held, outage_state = read_partner_state(state)
    assert (status, held) == (UNHEALTHY, {"e-1": (2.0, 6, held_signals), "e-2": (2.0, 6, held_signals)})
    assert outage_state["checks"] == 6
    # recovery: the all-clear carries no impact, and the state is the bare status again
    end = T0 + 7 * 300_000
    detail, state, findings = partner_window_check(end, 300_000, _rows(end, {"e-1": fine(), "e-2": fine()}), state)
    assert findings == []
    assert detail["partner_status"] == HEALTHY and detail["impact_assessment"]["revenue_impact"] == 0.0
    assert state == HEALTHY
    # a healthy steady state stays silent
    end = T0 + 8 * 300_000
    assert partner_window_check(end, 300_000, _rows(end, {"e-1": fine(), "e-2": fine()}), state) == (None, HEALTHY, [])


def test_a_held_reference_expires_after_the_configured_windows():
    config = PartnerHealthConfig.from_dict({"revenue_reference_windows": 2})
    held: dict = {}
    for _ in range(3):
        held = hold_references({"e-1": outage(0.5, 0.2)}, ["e-1"], held, config.revenue_reference_windows,
                               config.signals)
    assert held == {"e-1": (None, 3, None)}       # the revenue and the signals' references alike
    # expired: the shortfall is against the current (adapted) baseline again
    assert partner_revenue_impact({"e-1": outage(0.5, 0.2)}, ["e-1"], WINDOW_S, {"e-1": None}) == pytest.approx(1.5)


def test_the_partner_stays_down_while_the_models_signal_baselines_follow_the_outage():
    """Measured on the simulated outages: the online model learns an outage's bid rate and timeouts within
    a few windows, and against its current baseline the partner was called HEALTHY while still down (up
    to 42 min before the end). Each hurt editor is judged against the baselines of the window it was
    first hurt in, until its signals are back: then, and only then, the all-clear."""
    def down(adapted: float) -> dict[str, D]:
        # the partner's outage values, against a model baseline (and band) moved `adapted` of the way to them
        bid, timeouts = 0.6 + adapted * (0.06 - 0.6), 10.0 + adapted * (100.0 - 10.0)
        return {"partner_timeouts": D("partner_timeouts", 100.0, timeouts, 0.6 * timeouts, 1.4 * timeouts, 0.2, False),
                "bid_rate": D("bid_rate", 0.06, bid, 0.83 * bid, 1.17 * bid, 0.2, False)}

    assert assess_partner_window("p-1", 0, WINDOW_S, {"e-1": down(1.0), "e-2": down(1.0)})[0]["partner_status"] \
        == HEALTHY                                  # what the current baseline alone says by the end
    state, statuses, outages = None, [], []
    for k, adapted in enumerate([0.0, 0.5, 0.9, 1.0, 1.0, 1.0]):
        end = T0 + (k + 1) * 300_000
        detail, state, findings = partner_window_check(end, 300_000, _rows(end, {"e-1": down(adapted),
                                                                                 "e-2": down(adapted)}), state)
        statuses.append(detail["partner_status"])
        outages.append(detail["outage"])
        assert [f["editor_id"] for f in findings] == ["e-1", "e-2"]
    assert statuses == [UNHEALTHY] * 6
    # one outage: every check names the first one's id and counts itself
    first_check = outages[0]["outage_id"]
    assert [(o["outage_id"], o["checks"], o["ended"]) for o in outages] == [(first_check, n, False)
                                                                          for n in range(1, 7)]
    assert "bid_rate -90.0% vs baseline (unhealthy)" in detail["reasons"][0] + detail["reasons"][1]
    # back to normal, while the model's baseline is still at the outage's level: the all-clear
    back = {"partner_timeouts": D("partner_timeouts", 10.0, 100.0, 60.0, 140.0, 0.9, True),
            "bid_rate": D("bid_rate", 0.6, 0.06, 0.05, 0.07, 0.9, True)}
    end = T0 + 7 * 300_000
    detail, state, findings = partner_window_check(end, 300_000, _rows(end, {"e-1": back, "e-2": back}), state)
    assert detail["partner_status"] == HEALTHY and findings == [] and state == HEALTHY
    # the all-clear says which outage it ends
    ended = detail["outage"]
    assert (ended["outage_id"], ended["checks"], ended["ended"]) == (first_check, 6, True)


def test_a_status_restored_from_before_references_existed_is_read():
    end = T0 + 300_000
    detail, state, _ = partner_window_check(end, 300_000, _rows(end, {"e-1": fine(), "e-2": fine()}), "UNHEALTHY")
    assert detail["partner_status"] == HEALTHY and state == HEALTHY     # the all-clear after a restore


def test_revenue_per_partner_goes_to_the_partner_window_only(tmp_path):
    """The ad server's revenue per partner is a part of the editor's revenue: the editor's revenue window
    averages its own totals only, while per-partner-only metrics still make the editor's mean over partners
    (the offline mirror of sql/windows/editor_windows.sql's WHERE; tests/test_sql_windows.py runs that
    SQL against it)."""
    m = lambda ms, metric, value, **kw: {"editor_id": "e-1", "metric": metric, "value": value,
                                         "timestamp": T0 + ms, **kw}
    folder = tmp_path / "metrics"
    folder.mkdir()
    with gzip.open(folder / "part-0000.jsonl.gz", "wt") as f:
        for r in [m(10_000, "revenue", 10.0), m(10_000, "revenue", 6.0, partner="p-1"),
                  m(10_000, "revenue", 4.0, partner="p-2"), m(20_000, "bid_rate", 0.4, partner="p-1"),
                  m(20_000, "bid_rate", 0.8, partner="p-2"), m(700_000, "revenue", 9.0)]:
            f.write(json.dumps(r) + "\n")
    w = read_windows(tmp_path, JobParameters())
    assert w.series[("editor", "e-1", "revenue", None)] == [(T0 + 300_000, 10.0, 1)]
    assert w.series[("partner", "p-1", "revenue", "e-1")] == [(T0 + 300_000, 6.0, 1)]
    assert w.series[("partner", "p-2", "revenue", "e-1")] == [(T0 + 300_000, 4.0, 1)]
    assert w.series[("editor", "e-1", "bid_rate", None)] == [(T0 + 300_000, pytest.approx(0.6), 2)]


def test_an_editor_missing_from_one_window_neither_ends_the_outage_nor_loses_its_references():
    """e-2 sent nothing through the partner in one window of its outage: the partner was judged on
    e-1 and e-3 alone (1 of 2 hurt), an all-clear went out, a new outage opened a window later, and
    e-2 came back judged against a baseline that had followed the outage down. An absent editor now
    counts at its last level for up to ABSENT_WINDOWS_COUNTED windows, and keeps its references."""
    from udfs.decisions import ABSENT_WINDOWS_COUNTED, partner_state_fields

    state, details = None, []
    for k, editors in enumerate([("e-1", "e-2", "e-3"), ("e-1", "e-2", "e-3"), ("e-1", "e-3"), ("e-1", "e-2", "e-3")]):
        end = T0 + (k + 1) * 300_000
        by_editor = {e: (fine() if e == "e-3" else outage()) for e in editors}
        detail, state, _ = partner_window_check(end, 300_000, _rows(end, by_editor), state)
        details.append(detail)
    assert [d["partner_status"] for d in details] == [UNHEALTHY] * 4
    assert len({d["outage"]["outage_id"] for d in details}) == 1 and not any(d["outage"].get("ended") for d in details)
    assert details[2]["editors_absent"] == ["e-2"] and "e-2: no traffic through the partner" in " ".join(
        details[2]["reasons"])
    assert read_partner_state(state)[1]["e-2"][0] == 2.0          # judged against the revenue of before
    # an editor gone for longer than that no longer counts: the partner is judged on those that report
    for k in range(4, 5 + ABSENT_WINDOWS_COUNTED):
        end = T0 + (k + 1) * 300_000
        detail, state, _ = partner_window_check(end, 300_000, _rows(end, {"e-1": outage(), "e-3": fine()}), state)
    assert detail["partner_status"] == HEALTHY and detail["outage"]["ended"]
    assert "e-2" not in partner_state_fields(state)[3]


def test_the_revenue_impact_reads_the_rates_in_the_classifiers_rate_period():
    """Revenue samples are rates per ``classifier.rate_period_s`` (detectors.revenue); the partner check
    assumed per minute whatever that said, so with totals per 5-minute window (rate_period_s=300) it
    reported five times the editors' shortfall. The job's partner operator and the offline replay now
    take the classifier's period."""
    from dataclasses import replace

    from detectors.classifier import ClassifierConfig
    from flink_jobs.evaluation.offline import ArchiveWindows, decide
    from flink_jobs.main import Settings, scoring_operators
    from flink_jobs.config import JobConfig

    by_editor = {"e-1": outage(2.0, 0.2), "e-2": outage(4.0, 0.0)}
    per_window = PartnerHealthConfig(rate_period_s=WINDOW_S)
    detail, _ = assess_partner_window("p-1", 0, WINDOW_S, by_editor, config=per_window)
    assert detail["impact_assessment"]["revenue_impact"] == pytest.approx(1.8 + 4.0)
    end = T0 + 300_000
    detail, _, _ = partner_window_check(end, 300_000, _rows(end, by_editor), None, per_window)
    assert detail["impact_assessment"]["revenue_impact"] == pytest.approx(1.8 + 4.0)
    # the job: one setting, the classifier's, for both operators
    settings = Settings.from_config(JobConfig.load(overrides=["classifier.rate_period_s=300"], environ={}))
    partner_operator, _ = scoring_operators(settings)
    assert partner_operator.config == per_window
    partner_operator, _ = scoring_operators(Settings.from_config(JobConfig.load(environ={})))
    assert partner_operator.config == PartnerHealthConfig()
    # the offline replay
    windows = ArchiveWindows(series={}, events=[], editors={"e-1", "e-2"}, first_ms=T0, last_ms=end,
                             metric_records=0, late_records=0)
    [check] = [e["detail"] for e in decide(windows, _rows(end, by_editor), JobParameters(),
                                           replace(ClassifierConfig(), rate_period_s=WINDOW_S))
               if e["detail-type"] == "Partner Health Check"]
    assert check["impact_assessment"]["revenue_impact"] == pytest.approx(1.8 + 4.0)


def test_a_rate_period_that_is_not_positive_is_refused_when_the_configuration_loads():
    """revenue_at_risk divides by it: 0 passed the job's start-time check and raised ValueError in the
    editor operator at its first anomaly."""
    from detectors.classifier import ClassifierConfig

    for bad in ("0", "-60", "nan"):
        with pytest.raises(ValueError, match="rate_period_s"):
            ClassifierConfig.from_properties({"rate_period_s": bad})
        with pytest.raises(ValueError, match="rate_period_s"):
            PartnerHealthConfig.from_dict({"rate_period_s": bad})
    assert PartnerHealthConfig.from_dict({"rate_period_s": 300}).rate_period_s == 300.0


def test_the_revenue_block_reads_the_held_revenue_band():
    """The check's metrics block showed revenue against its current baseline, which had followed the
    outage down: the outage's revenue looked normal, and every all-clear's recovery a jump (+211 % to
    +947 % over ten simulated days) while its revenue_impact was measured against the held references."""
    state = None
    for k, adapted in enumerate([2.0, 1.0, 0.3]):
        end = T0 + (k + 1) * 300_000
        by_editor = {"e-1": outage(adapted, 0.2), "e-2": outage(adapted, 0.2)}
        detail, state, _ = partner_window_check(end, 300_000, _rows(end, by_editor), state)
    revenue = detail["metrics"]["revenue"]
    assert revenue["baseline"] == 2.0 and revenue["deviation_pct"] == -90.0 and revenue["editors_outside_band"] == 2
    # the all-clear: revenue back at 2.1 against a model baseline still at the outage's level
    end = T0 + 4 * 300_000
    back = {e: fine(0.3, revenue_value=2.1) for e in ("e-1", "e-2")}
    detail, _, _ = partner_window_check(end, 300_000, _rows(end, back), state)
    assert detail["partner_status"] == HEALTHY
    assert detail["metrics"]["revenue"]["deviation_pct"] == 5.0 and detail["metrics"]["revenue"]["editors_outside_band"] == 0


def test_an_editor_recovering_inside_its_held_band_is_not_counted_hurt():
    """The detector flags a recovery against the band that followed the outage (timeouts falling from 474
    to 25 while the held band is [0, 26.3]); that flag counted the editor hurt through the all-clear."""
    state = None
    for k in range(3):
        end = T0 + (k + 1) * 300_000
        detail, state, _ = partner_window_check(end, 300_000, _rows(end, {e: outage() for e in ("e-1", "e-2")}),
                                                state)
    assert detail["partner_status"] == UNHEALTHY
    end = T0 + 4 * 300_000
    recovering = fine()
    # 13.0 is within the held band [6, 14] but 30 % over its baseline of 10 (a DEGRADED move), and the
    # model, whose band followed the outage up, flags the fall
    recovering["partner_timeouts"] = D("partner_timeouts", 13.0, 90.0, 70.0, 110.0, 0.99, True)
    detail, _, findings = partner_window_check(end, 300_000, _rows(end, {"e-1": recovering, "e-2": fine()}), state)
    assert detail["partner_status"] == HEALTHY and detail["editors_affected"] == [] and findings == []
