"""Episodes: an editor's consecutive composites grouped, so a consumer can page once per incident.

udfs.decisions.composite_episode (detectors.incident.next_episode) gives each composite an
``episode`` block; the operator keeps one state string per editor (udfs/correlator.py) and the
offline replay the same (flink_jobs/evaluation/offline.py).
"""
from __future__ import annotations

import json
from dataclasses import replace

from detectors.classifier import ClassifierConfig, MetricDeviation
from detectors.incident import EPISODE_MAX_GAP_WINDOWS, incident_id
from udfs.decisions import composite_episode, editor_window_composite, result_of

SIZE_MS = 300_000
T0 = 1_793_520_000_000  # a window boundary (epoch ms): 2026-11-01T08:00Z
CONFIG = replace(ClassifierConfig(), window_seconds=300.0, event_lookback_s=1800.0)


def composite(window: int, rpm: float = 1.2) -> tuple[dict, int]:
    """The DEMAND_ISSUE composite of window ``window`` after T0 (rpm lower is more severe), and its end."""
    end = T0 + (window + 1) * SIZE_MS
    devs = {"rpm": MetricDeviation("rpm", rpm, 2.5, 2.25, 2.75, 0.99, True),
            "fill_rate": MetricDeviation("fill_rate", 0.51, 0.85, 0.8, 0.9, 0.99, True)}
    rows = [result_of("e-1", end, d, 2) for d in devs.values()]
    detail, _ = editor_window_composite(end, SIZE_MS, rows, [], CONFIG)
    assert detail is not None and detail["problem_type"] == "DEMAND_ISSUE"
    return detail, end


def run(windows: list[int], **rpm_by_window) -> list[dict]:
    state, out = None, []
    for w in windows:
        detail, end = composite(w, rpm_by_window.get(f"w{w}", 1.2))
        detail, state = composite_episode(detail, end, SIZE_MS, state)
        out.append(detail)
    return out


def test_a_lone_composite_is_the_first_of_its_own_episode():
    [d] = run([3])
    assert d["episode"] == {"episode_id": d["incident_id"], "started_at": d["window_start"], "composites": 1,
                            "escalated": False}
    assert "Ongoing" not in d["summary"]


def test_consecutive_windows_continue_one_episode_and_say_so():
    ds = run([3, 4, 5])
    first = ds[0]["incident_id"]
    assert [d["episode"]["episode_id"] for d in ds] == [first] * 3
    assert [d["episode"]["composites"] for d in ds] == [1, 2, 3]
    assert {d["episode"]["started_at"] for d in ds} == {ds[0]["window_start"]}
    assert ds[2]["summary"].endswith("Ongoing since 08:15Z: composite 3 of this episode.")
    # every window keeps its own deterministic incident id (the contract)
    assert len({d["incident_id"] for d in ds}) == 3


def test_a_quiet_window_does_not_split_an_episode_but_a_longer_pause_does():
    assert EPISODE_MAX_GAP_WINDOWS == 1
    ds = run([3, 5, 8])
    assert [d["episode"]["composites"] for d in ds] == [1, 2, 1]
    assert ds[2]["episode"]["episode_id"] == ds[2]["incident_id"] != ds[0]["incident_id"]


def test_only_a_more_severe_composite_is_escalated():
    ds = run([3, 4, 5, 6], w4=0.3, w6=0.3)
    severities = [d["severity"] for d in ds]
    assert severities[1] != severities[0] and severities[3] == severities[1], severities
    assert [d["episode"]["escalated"] for d in ds] == [False, True, False, False]
    assert ds[1]["summary"].endswith("composite 2 of this episode, escalated.")


def test_a_window_decided_again_gets_the_same_block():
    detail, end = composite(3)
    first, state = composite_episode(detail, end, SIZE_MS, None)
    again, state_again = composite_episode(composite(3)[0], end, SIZE_MS, state)
    assert again["episode"] == first["episode"] and json.loads(state_again) == json.loads(state)


def test_the_episode_id_is_the_first_windows_incident_id():
    ds = run([3, 4])
    assert ds[1]["episode"]["episode_id"] == incident_id("e-1", (T0 + 3 * SIZE_MS) / 1000.0, "DEMAND_ISSUE")
