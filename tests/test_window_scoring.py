"""udfs/metric_detector.WindowScoring: the live-model cache beside the operators' keyed state.

What a group's models score must not depend on whether they came from the cache or from the
state (a snapshot plus the journal of windows learned since), nor on how often a snapshot is
taken, and a value handed to the state must not change afterwards."""
from __future__ import annotations

import copy
import json
import math

from udfs.metric_detector import WindowScoring

END = 1_793_527_200_000
WINDOW_MS = 300_000


def _scoring(snapshot_windows: int = 12, cache_size: int = WindowScoring.CACHE_SIZE) -> WindowScoring:
    return WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6, baseline_threshold=0.25,
                         snapshot_windows=snapshot_windows, cache_size=cache_size)


def _windows(i: int) -> list[tuple[str, float, int]]:
    level = 2.5 * (1 + 0.1 * math.sin(i / 5)) * (0.3 if i == 40 else 1.0)   # a drop in window 40
    return [("rpm", level, 5), ("fill_rate", 0.8 + 0.01 * math.cos(i), 5)]


def _run(scoring: WindowScoring, groups: tuple[str, ...], windows: int, state: dict | None = None) -> list:
    state = {} if state is None else state
    results = []
    for i in range(windows):
        for g in groups:
            state[g], scored = scoring.score_windows(state.get(g), ("editor", g), g, None, END + i * WINDOW_MS,
                                                     _windows(i))
            results += scored
    return results


def test_models_restored_from_the_state_score_exactly_like_cached_ones():
    cached = _run(_scoring(), ("e-1", "e-2"), 50)
    assert any(r["is_anomaly"] for r in cached), "the drop in window 40 is seen"
    small = _scoring(cache_size=1)      # e-1 and e-2 alternate: every model comes back from the state
    state: dict = {}
    assert _run(small, ("e-1", "e-2"), 50, state) == cached
    assert _run(_scoring(cache_size=0), ("e-1", "e-2"), 50) == cached      # processing.model.cache.size=0
    rebuilds = {}
    for size in (0, 1, WindowScoring.CACHE_SIZE):     # the cache is what spares the rebuilds
        scoring = _scoring(cache_size=size)
        rebuild, rebuilds[size] = scoring._rebuild, 0

        def counted(*args, _rebuild=rebuild, _size=size):
            rebuilds[_size] += 1
            return _rebuild(*args)

        scoring._rebuild = counted
        _run(scoring, ("e-1", "e-2"), 50)
    assert rebuilds == {0: 200, 1: 200, WindowScoring.CACHE_SIZE: 4}, rebuilds
    # 50 windows, a snapshot every 12: the last state holds a snapshot and a journal of 2 windows
    snapshot, journal, _, last_end = state["e-1"]["rpm"]
    assert snapshot and [end for end, _ in journal] == [END + 48 * WINDOW_MS, END + 49 * WINDOW_MS]
    assert last_end == END + 49 * WINDOW_MS


def test_how_often_a_snapshot_is_taken_changes_nothing_that_is_scored():
    cached = _run(_scoring(), ("e-1", "e-2"), 50)
    for every in (1, 5, 49):
        scoring = _scoring(snapshot_windows=every, cache_size=1)
        assert _run(scoring, ("e-1", "e-2"), 50) == cached, every


def test_entries_written_before_the_journal_are_read_as_a_snapshot():
    scoring = _scoring(snapshot_windows=1)
    state: dict = {}
    _run(scoring, ("e-1",), 30, state)
    # as 5599c3f wrote them: (model bytes, history JSON)
    old = {metric: (snapshot, json.dumps({"v": list(values), "held": held}))
           for metric, (snapshot, journal, (values, held), _) in state["e-1"].items()}
    assert all(journal == () for _, journal, _, _ in state["e-1"].values())
    fresh = _scoring()
    first, _ = fresh.score_windows(old, ("editor", "e-1"), "e-1", None, END + 30 * WINDOW_MS, _windows(30))
    again, _ = _scoring().score_windows(state["e-1"], ("editor", "e-1"), "e-1", None, END + 30 * WINDOW_MS,
                                        _windows(30))
    assert first == again


def test_a_value_handed_to_the_state_is_never_changed_afterwards():
    scoring = _scoring()
    first, _ = scoring.score_windows(None, ("editor", "e-1"), "e-1", None, END, _windows(0))
    kept = copy.deepcopy(first)
    second, _ = scoring.score_windows(first, ("editor", "e-1"), "e-1", None, END + WINDOW_MS, _windows(1))
    assert first == kept and second is not first and second["rpm"] != first["rpm"]


def test_a_state_rolled_back_behind_the_cached_model_is_scored_from_the_state():
    # As after a restore from an older checkpoint while the cache lives on: the same snapshot, a
    # shorter journal. The cached model has learned windows the state has not; it must not be used.
    scoring = _scoring()
    state: dict = {}
    first = _run(scoring, ("e-1",), 40, state)
    rolled_back = copy.deepcopy(state)
    for i in range(40, 44):
        state["e-1"], scored = scoring.score_windows(state["e-1"], ("editor", "e-1"), "e-1", None,
                                                     END + i * WINDOW_MS, _windows(i))
        first += scored
    assert rolled_back["e-1"]["rpm"][0] == state["e-1"]["rpm"][0], "same snapshot, longer journal"
    again = []
    for i in range(40, 44):
        rolled_back["e-1"], scored = scoring.score_windows(rolled_back["e-1"], ("editor", "e-1"), "e-1", None,
                                                           END + i * WINDOW_MS, _windows(i))
        again += scored
    assert again == first[-len(again):]


def test_a_series_sitting_at_zero_gets_a_baseline_of_zero_not_a_sliver_either_side():
    """An error rate that goes to 0 and stays there (ordinary for hours): the model's level halves
    towards 0 and expected -1.2e-8 after 30 windows, -5e-324 later. Shown, that was a baseline of
    "-0.0" with the reading of 0 at "+100 %" from it, a reading of 0.5 at "+4e9 %", and an
    "Infinity" the sink had to null. The contract's metrics are never negative, and a baseline
    below the details' six decimals is 0: a reading of 0 is never more than -100 % from it."""
    import random

    from detectors.classifier import MetricDeviation
    from detectors.incident import metric_snapshot

    rng = random.Random(0)
    scoring, stored, shown = _scoring(), None, []
    for i in range(420):
        value = max(0.0, rng.gauss(3.0, 1.0)) if i < 300 else 0.0
        stored, (result,) = scoring.score_windows(stored, ("editor", "e-1"), "e-1", None, END + i * WINDOW_MS,
                                                  [("error_rate", value, 3)])
        assert result["baseline"] >= 0.0 and result["lower"] >= 0.0 and result["upper"] >= 0.0, (i, result)
        if i >= 300:
            at_zero = MetricDeviation("error_rate", 0.0, result["baseline"], result["lower"], result["upper"],
                                      result["score"], result["is_anomaly"])
            shown.append(metric_snapshot(at_zero))
    assert all(s["deviation_pct"] in (None, -100.0) for s in shown), [s for s in shown if s["deviation_pct"]
                                                                       not in (None, -100.0)][:3]
    assert shown[-1]["baseline"] == 0.0 and shown[-1]["deviation_pct"] is None     # it did get there


def _incident_windows(i: int) -> list[tuple[str, float, int]]:
    """An editor's day: rpm and revenue drop by half and fill rate by 15 % in windows 60-69, and
    fill rate is missing from window 64 (a metric need not report in every window)."""
    hurt = 60 <= i < 70
    wobble = 1 + 0.02 * math.sin(i * 1.7)
    windows = [("rpm", 2.5 * wobble * (0.5 if hurt else 1.0), 5), ("revenue", 1.2 * wobble * (0.5 if hurt else 1.0), 5)]
    if i != 64:
        windows.append(("fill_rate", 0.8 * wobble * (0.85 if hurt else 1.0), 5))
    return windows


def test_an_incident_is_judged_against_the_baselines_of_its_first_window():
    """The model learns an incident's level within a few windows: against its current expected values
    the later windows of an outage looked small or normal (the revenue at risk falling to 0 while the
    outage went on, the pattern changing mid-incident). The editor's incident frame holds every
    metric's baseline and band from the first anomalous window until the editor is back to normal."""
    from udfs.metric_detector import incident_frame

    scoring, stored, by_window, frames = _scoring(), None, {}, {}
    for i in range(80):
        stored, results = scoring.score_windows(stored, ("editor", "e-1"), "e-1", None, END + i * WINDOW_MS,
                                                _incident_windows(i))
        by_window[i] = {r["metric"]: r for r in results}
        frames[i] = incident_frame(stored)
    assert not any(r["is_anomaly"] for i in range(60) for r in by_window[i].values())
    onset = by_window[60]
    assert onset["rpm"]["is_anomaly"] and onset["rpm"]["baseline"] > 2.3
    for i in range(61, 70):          # every window of the outage: against the onset's baselines
        assert by_window[i]["rpm"]["is_anomaly"], i
        for metric in ("rpm", "revenue"):
            assert by_window[i][metric]["baseline"] == onset[metric]["baseline"], (i, metric)
        if i != 64:
            assert by_window[i]["fill_rate"]["baseline"] == onset["fill_rate"]["baseline"], i
    assert "fill_rate" in frames[64]               # kept through the window it was missing from
    assert not any(r["is_anomaly"] for r in by_window[70].values())      # back: not read against the outage's level
    assert by_window[70]["rpm"]["baseline"] == onset["rpm"]["baseline"]
    assert frames[69] and frames[70] == {} and all(len(e[2]) == 2 for e in stored.values())


def test_the_offline_replay_scores_an_editor_as_the_job_does():
    """flink_jobs.evaluation.offline scores each series through the day, then each editor's windows in
    its frame; the job does both in one call per window. The two must agree, a missing metric included."""
    from flink_jobs.evaluation.offline import ArchiveWindows, JobParameters, score_series

    scoring, stored, job = _scoring(), None, []
    series: dict = {}
    for i in range(80):
        end = END + i * WINDOW_MS
        stored, results = scoring.score_windows(stored, ("editor", "e-1"), "e-1", None, end, _incident_windows(i))
        job += results
        for metric, value, count in _incident_windows(i):
            series.setdefault(("editor", "e-1", metric, None), []).append((end, value, count))
    windows = ArchiveWindows(series=series, events=[], editors={"e-1"}, first_ms=END, last_ms=END + 80 * WINDOW_MS,
                             metric_records=0, late_records=0)
    offline = score_series(windows, JobParameters())
    key = lambda r: (r["window_end_ms"], r["metric"])   # noqa: E731
    assert sorted(offline, key=key) == sorted(job, key=key)
    assert any(r["is_anomaly"] for r in job)


def test_a_level_that_lasts_longer_than_the_trailing_baseline_holds_it_out_ends_the_frame():
    """A frozen band must not outlive the incident: a drop that lasts is the editor's new normal once the
    trailing baseline has held it out for its ``baseline_windows`` (12) and learns it again."""
    from udfs.metric_detector import incident_frame

    scoring, stored, anomalous = _scoring(), None, []
    for i in range(100):
        level = 2.5 * (1 + 0.02 * math.sin(i * 1.7)) * (0.5 if i >= 60 else 1.0)    # for good from window 60
        stored, (result,) = scoring.score_windows(stored, ("editor", "e-1"), "e-1", None, END + i * WINDOW_MS,
                                                  [("rpm", level, 5)])
        anomalous.append(result["is_anomaly"])
    assert anomalous[60:72] == [True] * 12          # held against the frame while the trailing baseline holds it out
    assert not any(anomalous[72:]) and incident_frame(stored) == {}


def test_a_metric_the_incident_has_not_moved_keeps_its_models_seasonal_judgement():
    """Against a band frozen at the incident's first window, a quiet metric's ordinary rise over the
    next hour (which its model expects: the time of day) would read as an anomaly and keep the frame,
    and composites, going. Until the incident moves it, it is anomalous only as scored."""
    from udfs.baseline import ScoredWindow, judge_in_frame

    risen = trailing_verdict_for(14.0)                 # outside the trailing band of the last hour (10)
    frame = {"rpm": (10.0, 9.0, 11.0, True), "impressions": (10.0, 9.0, 11.0, False)}
    as_scored = ScoredWindow((13.8, 12.5, 15.1, 0.1, False), risen, True)     # its model expects the rise
    results, after = judge_in_frame({"impressions": as_scored, "rpm": as_scored}, frame)
    assert results["impressions"] == (10.0, 9.0, 11.0, 0.1, False)    # shown against the frame, judged as scored
    assert results["rpm"][4] is True                                   # moved: judged against the frame
    assert after["impressions"][3] is False
    # once it is anomalous as scored, the incident has moved it
    flagged = ScoredWindow((11.0, 10.0, 12.0, 0.99, True), risen, True)
    results, after = judge_in_frame({"impressions": flagged}, frame)
    assert results["impressions"][4] is True and after["impressions"] == (10.0, 9.0, 11.0, True)


def trailing_verdict_for(value: float):
    from udfs.baseline import trailing_verdict

    return trailing_verdict([10.0] * 12, value, 0.25, 6)


def test_the_offline_replay_drops_a_frame_the_jobs_idle_checks_drop():
    """An editor that falls silent mid-incident (a publisher whose ad server is down sends nothing) for
    longer than processing.state.idle.retention.s: the job's idle checks drop its series, frame and all,
    and it comes back with none; the replay, which has no timers, must not judge it against the old one."""
    from flink_jobs.evaluation.offline import ArchiveWindows, JobParameters, score_series
    from udfs.metric_detector import prune_idle

    retention_s = 1800                                   # six windows
    scoring = WindowScoring("ensemble", {}, baseline_windows=12, baseline_min_windows=6, baseline_threshold=0.25,
                            idle_retention_ms=retention_s * 1000)
    silent = range(63, 71)                               # from the incident's fourth window, eight windows
    stored, job, series = None, [], {}
    for i in range(100):
        end = END + i * WINDOW_MS
        if stored:                                       # the idle checks, at the watermark before the window
            stored = prune_idle(stored, end - 1, retention_s * 1000)[0] or None
        if i in silent:
            continue
        windows = _incident_windows(i)
        stored, results = scoring.score_windows(stored, ("editor", "e-1"), "e-1", None, end, windows)
        job += results
        for metric, value, count in windows:
            series.setdefault(("editor", "e-1", metric, None), []).append((end, value, count))
    archive = ArchiveWindows(series=series, events=[], editors={"e-1"}, first_ms=END, last_ms=END + 100 * WINDOW_MS,
                             metric_records=0, late_records=0)
    offline = score_series(archive, JobParameters(state_idle_retention_s=retention_s))
    key = lambda r: (r["window_end_ms"], r["metric"])   # noqa: E731
    assert sorted(offline, key=key) == sorted(job, key=key)
    assert any(r["is_anomaly"] for r in job if r["window_end_ms"] < END + 63 * WINDOW_MS)
