"""The simulator: deterministic, realistic enough to be worth detecting on, and honestly labeled."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from connectors.archive import data_files, read_records
from connectors.simulator import PROBLEM_TYPES, Scenario, default_scenario, generate, plan

SMALL = Scenario(editors=12, partners=4, hours=8.0, seed=3, editor_cadence_s=(20.0, 60.0),
                 partner_cadence_s=(60.0, 120.0))


def _epoch(ts) -> float:
    if isinstance(ts, int):
        return ts / 1000.0
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-small")
    summary = generate(SMALL, out)
    return out, summary, read_records(out, "metrics"), read_records(out, "events")


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(small, tmp_path):
    out = small[0]
    again = tmp_path / "again"
    generate(SMALL, again)
    assert _digest(out) == _digest(again)
    other = tmp_path / "other"
    generate(Scenario(**{**SMALL.to_dict(), "seed": 4}), other)
    assert _digest(out)["labels.jsonl"] != _digest(other)["labels.jsonl"]


def test_records_follow_the_input_contract(small):
    out, summary, metrics, events = small
    assert len(metrics) == summary["records"]["metrics"] and len(events) == summary["records"]["events"] > 0
    allowed = {"rpm", "fill_rate", "bid_latency_ms", "error_rate", "partner_timeouts", "cache_hit_rate",
               "impressions", "revenue", "bid_rate", "win_rate"}
    assert {r["metric"] for r in metrics} == allowed
    styles = {type(r["timestamp"]) for r in metrics}
    assert styles == {int, str}, "both ISO-8601 and epoch-ms timestamps appear"
    for r in metrics[:5000]:
        assert isinstance(r["editor_id"], str) and np.isfinite(r["value"])
        if isinstance(r["timestamp"], str):
            assert r["timestamp"].endswith("Z")
    assert {r["metric"] for r in metrics if "partner" in r} == {"partner_timeouts", "bid_rate", "win_rate", "revenue"}
    assert {e["event_type"] for e in events} <= {"config_change", "deployment", "feature_flag", "partner_status",
                                                  "security_finding"}
    assert any(Path(p).match("metrics/year=*/month=*/day=*/hour=*/part-*.parquet") for p in data_files(out))


def test_sampling_intervals_vary_and_some_samples_arrive_out_of_order(small):
    metrics = small[2]
    per_series = defaultdict(list)
    for r in metrics:
        per_series[(r["editor_id"], r["metric"], r.get("partner"))].append(_epoch(r["timestamp"]))
    medians = [np.median(np.diff(sorted(ts))) for ts in per_series.values() if len(ts) > 3]
    assert min(medians) < 30 and max(medians) > 50
    # one wrapper beacon carries every partner's samples of an editor: they share timestamps
    beacon = defaultdict(set)
    for r in metrics:
        if "partner" in r and r["metric"] != "revenue":
            beacon[(r["editor_id"], r["timestamp"])].add((r["partner"], r["metric"]))
    partners_of = defaultdict(set)
    for r in metrics:
        if "partner" in r:
            partners_of[r["editor_id"]].add(r["partner"])
    assert all(len(v) == 3 * len(partners_of[e]) for (e, _), v in beacon.items())
    times = [_epoch(r["timestamp"]) for r in metrics]
    running_max = np.maximum.accumulate(times)
    behind = running_max - np.array(times)
    late_share = float(np.mean(behind > 30))
    assert 0.002 < late_share < 0.05 and behind.max() <= 260


def test_labels_are_well_formed_and_every_problem_type_is_present(small):
    out = small[0]
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert {l["problem_type"] for l in labels} == set(PROBLEM_TYPES)
    scenario_doc = json.loads((out / "scenario.json").read_text())
    quiet = set(scenario_doc["quiet_editors"])
    assert quiet
    for l in labels:
        assert {"incident_id", "scope", "problem_type", "start", "end"} <= set(l)
        start, end = _epoch(l["start"]), _epoch(l["end"])
        assert end > start
        if l["scope"] == "editor":
            assert l["editor_id"] not in quiet
        else:
            assert l["scope"] == "partner" and l["partner"] and l["editors"]
            assert not quiet & set(l["editors"])
    # incidents on one editor never overlap
    spans = defaultdict(list)
    for l in labels:
        for editor in [l.get("editor_id")] if l["scope"] == "editor" else l["editors"]:
            spans[editor].append((_epoch(l["start"]), _epoch(l["end"])))
    for intervals in spans.values():
        intervals.sort()
        assert all(a[1] < b[0] for a, b in zip(intervals, intervals[1:]))


def test_revenue_is_rpm_times_impressions_over_a_thousand(small):
    by_minute = defaultdict(dict)
    for r in small[2]:
        if r["metric"] in ("rpm", "impressions", "revenue") and "partner" not in r:
            by_minute[(r["editor_id"], int(_epoch(r["timestamp"]) // 60))][r["metric"]] = r["value"]
    checked = 0
    for values in by_minute.values():
        if len(values) == 3:
            assert values["revenue"] == pytest.approx(values["rpm"] * values["impressions"] / 1000, rel=1e-4, abs=2e-6)
            checked += 1
    assert checked > 50


def test_revenue_per_partner_is_the_editors_revenue_split_on_the_same_report_line(small):
    """The ad server's revenue per demand partner: one sample per partner the editor uses, at the time of
    each editor revenue sample, adding up to it."""
    totals, parts, partners_of = {}, defaultdict(dict), defaultdict(set)
    for r in small[2]:
        if r["metric"] == "revenue":
            key = (r["editor_id"], r["timestamp"])
            if "partner" in r:
                parts[key][r["partner"]] = r["value"]
            else:
                totals[key] = r["value"]
        if "partner" in r:
            partners_of[r["editor_id"]].add(r["partner"])
    assert parts and set(parts) == set(totals)
    for (editor, ts), split in parts.items():
        assert set(split) == partners_of[editor]
        assert all(v >= 0 for v in split.values())
        assert sum(split.values()) == pytest.approx(totals[(editor, ts)], rel=1e-4, abs=len(split) * 1e-6)


def test_signatures_of_each_incident_type_show_in_the_data(small):
    out = small[0]
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    samples = defaultdict(list)
    for r in small[2]:
        key = (r["editor_id"], r["metric"] + ("@" + r["partner"] if "partner" in r else ""))
        samples[key].append((_epoch(r["timestamp"]), r["value"]))

    def ratio(editor, metric, start, end):
        during = [v for t, v in samples[(editor, metric)] if start + 300 <= t <= end - 300]
        before = [v for t, v in samples[(editor, metric)] if start - 3600 <= t <= start - 300]
        return np.mean(during) / max(np.mean(before), 1e-9)

    expected = {"LATENCY_ISSUE": {"bid_latency_ms": (2.0, None)},
                "PRICING_ISSUE": {"rpm": (None, 0.75), "fill_rate": (0.95, None)},
                "CONFIGURATION_ISSUE": {"impressions": (None, 0.8)},
                "INFRASTRUCTURE_ISSUE": {"cache_hit_rate": (None, 0.9), "bid_latency_ms": (1.3, None)},
                "SECURITY_ISSUE": {"impressions": (1.6, None), "rpm": (None, 0.75)}}
    for l in labels:
        start, end = _epoch(l["start"]), _epoch(l["end"])
        if l["scope"] == "partner":
            partner = l["partner"]
            editor = l["editors"][0]
            assert ratio(editor, f"partner_timeouts@{partner}", start, end) > 5
            assert ratio(editor, f"bid_rate@{partner}", start, end) < 0.3
            # the partner's part of the editor's revenue goes with its bids; the other partners' parts stay
            assert ratio(editor, f"revenue@{partner}", start, end) < 0.3
            for other in {k[1].split("@")[1] for k in samples if k[0] == editor and k[1].startswith("revenue@")} - {partner}:
                assert 0.6 < ratio(editor, f"revenue@{other}", start, end) < 1.6
            continue
        for metric, (low, high) in expected[l["problem_type"]].items():
            r = ratio(l["editor_id"], metric, start, end)
            assert (low is None or r > low) and (high is None or r < high), (l, metric, r)


def test_daily_seasonality_and_long_tailed_sizes_in_the_default_world():
    sim = plan(default_scenario())
    market = plan(Scenario(editors=200, partners=8, seed=1))
    sizes = np.array([e.impressions_per_min for e in market.editors])
    assert sizes.max() / np.median(sizes) > 5, "a few editors are much bigger than the typical one"
    top_tenth = np.sort(sizes)[-20:].sum() / sizes.sum()
    assert top_tenth > 0.3, "the biggest 10 % of editors carry a large share of the traffic"
    assert {l["problem_type"] for l in sim.labels} == set(PROBLEM_TYPES)
    assert any(e.surge for e in sim.editors if e.quiet) and any(e.impressions_trend for e in sim.editors if e.quiet)


def test_daily_seasonality_shows_in_impressions(tmp_path):
    scenario = Scenario(editors=3, partners=2, hours=24.0, seed=11, editor_cadence_s=(60.0, 60.0),
                        partner_cadence_s=(600.0, 600.0), incidents_per_type=0.0, partner_outages=0.0,
                        quiet_editor_fraction=0.0)
    generate(scenario, tmp_path)
    hourly = defaultdict(list)
    for r in read_records(tmp_path, "metrics"):
        if r["metric"] == "impressions":
            hourly[(r["editor_id"], int(_epoch(r["timestamp"]) // 3600) % 24)].append(r["value"])
    for editor in {k[0] for k in hourly}:
        means = [np.mean(hourly[(editor, h)]) for h in range(24)]
        assert max(means) / min(means) > 1.4, "peak hour well above the trough"


TINY = Scenario(editors=2, partners=2, hours=2.0, seed=1, editor_cadence_s=(60.0, 90.0),
                partner_cadence_s=(120.0, 180.0), warmup_hours=0.5)


def test_a_second_scenario_is_not_written_over_a_first_unless_asked(tmp_path):
    """Seed 1 then seed 2 into one folder used to leave both days' parts under seed 2's labels."""
    out = tmp_path / "sim"
    generate(TINY, out)
    first = _digest(out)
    seed2 = Scenario(**{**TINY.to_dict(), "seed": 2})
    with pytest.raises(ValueError, match=r"holds an earlier scenario \(events, labels.jsonl, metrics, "
                                                   r"scenario.json\).*pass --overwrite"):
        generate(seed2, out)
    assert _digest(out) == first, "a refusal changes nothing"
    generate(seed2, out, overwrite=True)
    fresh = tmp_path / "fresh"
    generate(seed2, fresh)
    assert _digest(out) == _digest(fresh), "overwrite leaves exactly seed 2's files"


def test_overwrite_removes_nothing_but_a_scenario(tmp_path):
    out = tmp_path / "sim"
    generate(TINY, out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"files that are not a scenario's \(notes.txt\)"):
        generate(TINY, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "scenario.json").exists()


def test_the_cli_refuses_a_used_folder_with_a_message_and_overwrites_on_request(tmp_path, capsys):
    from connectors.simulator.__main__ import main

    out = tmp_path / "sim"
    argv = ["--out", str(out), "--editors", "2", "--partners", "2", "--hours", "1", "--cadence", "60-90",
            "--partner-cadence", "120-180", "--warmup-hours", "0.2"]
    assert main([*argv, "--seed", "1"]) == 0
    with pytest.raises(SystemExit) as info:
        main([*argv, "--seed", "2"])
    assert info.value.code == 2 and "holds an earlier scenario" in capsys.readouterr().err
    assert json.loads((out / "scenario.json").read_text())["scenario"]["seed"] == 1
    assert main([*argv, "--seed", "2", "--overwrite"]) == 0
    assert json.loads((out / "scenario.json").read_text())["scenario"]["seed"] == 2
    assert all(p.name == "part-00000.parquet" for p in out.rglob("part-*")), "no second day's parts"


def test_a_scenario_too_small_for_a_type_says_which_it_left_out(tmp_path):
    """Incidents that found no room were dropped without a word; the README promised every type."""
    summary = generate(Scenario(editors=3, partners=2, hours=3.0, warmup_hours=1.0, seed=3), tmp_path / "small")
    placed = set(summary["incidents_by_type"])
    assert summary["incident_types_not_placed"] and not placed & set(summary["incident_types_not_placed"])
    assert json.loads((tmp_path / "small" / "scenario.json").read_text())["incident_types_not_placed"] == \
        summary["incident_types_not_placed"]
