"""flink_jobs/evaluation/offline.py: the job's per-window decisions replayed in pure Python, then scored.

No Flink, no AWS. The replay calls the very functions the job's operators call
(udfs.baseline.score_window, udfs.decisions.*); these tests check the parts
around them -- late rule and windows, the model cache, the scoring -- on small
archives. Agreement with a real run of the job (the same events, by id) is checked in
tests/test_evaluation_e2e.py.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import detectors
from connectors.simulator import Scenario, generate
from flink_jobs.evaluation import Incident, alerts_from_events, offline, score
from flink_jobs.evaluation.offline import JobParameters, evaluate_offline, read_windows
from flink_jobs.evaluation.scoring import iso
from udfs import correlator, decisions, metric_detector

T0 = 1_793_520_000_000  # a window boundary (epoch ms)


def _write(archive: Path, kind: str, records: list[dict]) -> None:
    folder = archive / kind
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "part-0000.jsonl.gz", "wt") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_windows_follow_the_jobs_late_rule_and_partner_rows_are_per_editor(tmp_path):
    m = lambda ms, metric, value, **kw: {"editor_id": kw.pop("editor", "e-1"), "metric": metric, "value": value,
                                         "timestamp": T0 + ms, **kw}
    _write(tmp_path, "metrics", [
        m(10_000, "rpm", 1.0),
        m(20_000, "rpm", 3.0),
        m(30_000, "bid_rate", 0.5, partner="p-1"),
        m(40_000, "bid_rate", 0.7, partner="p-1", editor="e-2"),
        m(400_000, "rpm", 5.0),            # next window; the watermark is now 370 s
        m(100_000, "rpm", 100.0),          # 300 s behind the newest record: LATE_RECORD, dropped
        m(390_000, "rpm", 7.0),            # out of order but ahead of the watermark: kept
        m(700_000, "rpm", 9.0),            # moves the watermark past the second window's end
        {"editor_id": "e-1", "metric": "rpm", "value": "oops", "timestamp": T0},  # dead letter, skipped
    ])
    w = read_windows(tmp_path, JobParameters())
    assert w.late_records == 1 and w.metric_records == 8
    assert w.series[("editor", "e-1", "rpm", None)] == [(T0 + 300_000, 2.0, 2), (T0 + 600_000, 6.0, 2)]
    # the third window (700 s) is still open: the final watermark (670 s) has not passed its end
    assert w.series[("partner", "p-1", "bid_rate", "e-1")] == [(T0 + 300_000, 0.5, 1)]
    assert w.series[("partner", "p-1", "bid_rate", "e-2")] == [(T0 + 300_000, 0.7, 1)]
    assert w.series[("editor", "e-2", "bid_rate", None)] == [(T0 + 300_000, 0.7, 1)]


def test_an_event_stamped_with_a_quoted_epoch_is_read_as_the_job_reads_it(tmp_path):
    """The job takes an epoch written as a string of digits (connectors.event_time); the offline
    replay handed the record to parse_event, which refuses it, and left the event out."""
    _write(tmp_path, "events", [
        {"event_type": "deployment", "timestamp": str(T0 + 60_000), "editor_id": "e-1"},
        {"event_type": "deployment", "timestamp": T0 + 120_000, "editor_id": "e-1"},
        {"event_type": "deployment", "timestamp": "yesterday", "editor_id": "e-1"}])        # dead-lettered
    w = read_windows(tmp_path, JobParameters())
    assert [e["timestamp_ms"] for e in w.events] == [T0 + 60_000, T0 + 120_000]


def test_one_record_stamped_far_ahead_or_far_behind_neither_stretches_the_span_nor_makes_the_rest_late(tmp_path):
    """The job dead-letters a record stamped in 9999 (FUTURE_TIMESTAMP) and never lets its watermark
    pass the clock; the offline replay took it as the newest time, so every later record was late,
    and its editor-days ran to millennia (false alarms per editor-day about 0). A 1970 time (epoch
    seconds) is late, and must not stretch the span either."""
    m = lambda ms, **kw: {"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": ms, **kw}
    records = [m(T0 + i * 60_000) for i in range(0, 100)]
    records.insert(10, m("9999-01-01T00:00:00Z"))
    records.insert(20, m(1_793_520_600))              # epoch seconds: January 1970
    _write(tmp_path, "metrics", records)
    w = read_windows(tmp_path, JobParameters())
    assert w.future_records == 1 and w.late_records == 1 and w.metric_records == 101
    assert (w.first_ms, w.last_ms) == (T0, T0 + 99 * 60_000)
    assert w.editor_days() == pytest.approx(99 / (24 * 60))
    assert sum(count for (_, _, count) in w.series[("editor", "e-1", "rpm", None)]) == 95   # up to 95 min closed


def test_the_records_the_job_dead_letters_are_in_no_window_and_still_move_the_watermark(tmp_path):
    """The offline replay windowed an rpm of -50, a fill rate of 1.7, a metric outside the contract and
    dimensions that are not strings (the job dead-letters each), and let only valid records move its
    watermark, while the job's source watermark reads every row's time."""
    m = lambda ms, metric, value, **kw: {"editor_id": "e-1", "metric": metric, "value": value,
                                         "timestamp": T0 + ms, **kw}
    _write(tmp_path, "metrics", [
        m(10_000, "rpm", 2.0), m(20_000, "rpm", -50.0), m(30_000, "fill_rate", 1.7), m(40_000, "ctr", 0.1),
        m(50_000, "rpm", 9.0, dimensions={"n": 1}), m(60_000, "impressions", 2e9),
        m(500_000, "rpm", -1.0),           # dead-lettered, but its time moves the watermark to 470 s
        m(400_000, "rpm", 4.0),            # behind it: LATE_RECORD
        m(900_000, "rpm", 3.0),
    ])
    w = read_windows(tmp_path, JobParameters())
    assert w.series == {("editor", "e-1", "rpm", None): [(T0 + 300_000, 2.0, 1)]}
    assert w.late_records == 1


def test_a_late_sample_is_not_one_a_window_holds(tmp_path):
    """scoring.detects asks whether an alert's window held incident data: a sample the job dropped
    as late was in no window, so it must not count (it made a window ending 3 s after an incident's
    start "detect" it, 3 s after the start instead of one window later)."""
    m = lambda ms: {"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": T0 + ms}
    _write(tmp_path, "metrics", [m(120_000), m(360_000), m(299_000), m(480_000), m(720_000)])
    w = read_windows(tmp_path, JobParameters())
    assert w.late_records == 1
    assert w.sample_times.sorted() == {"editor:e-1": [(T0 + ms) / 1000 for ms in (120_000, 360_000, 480_000, 720_000)]}
    incident = Incident("i1", "editor", "CONFIGURATION_ISSUE", (T0 + 297_000) / 1000, (T0 + 900_000) / 1000,
                        editor_id="e-1")
    composite = lambda ws: {"source": "adops.analytics", "detail-type": "Composite Anomaly Detected",
                            "detail": {"incident_id": f"inc-{ws}", "editor_id": "e-1", "severity": "LOW",
                                       "problem_type": "CONFIGURATION_ISSUE", "window_start": iso(ws),
                                       "window_end": iso(ws + 300)}}
    alerts = alerts_from_events([composite(T0 / 1000), composite(T0 / 1000 + 300)])
    report = score([incident], alerts, window_s=300.0, samples=w.sample_times.sorted())
    # the first window (its last windowed sample at 120 s) overlaps the incident but held none of it
    assert report["detected"] == 1 and report["false_alarm_alerts"] == 0
    assert report["outcomes"][0]["time_to_detect_s"] == pytest.approx(303.0)


def test_the_replay_and_the_job_share_their_decision_functions():
    # One source of truth: the operators import the functions the replay calls.
    assert correlator.editor_window_composite is decisions.editor_window_composite is offline.editor_window_composite
    assert correlator.partner_window_check is decisions.partner_window_check is offline.partner_window_check
    assert correlator.composite_episode is decisions.composite_episode is offline.composite_episode
    assert metric_detector.score_window is offline.score_window
    assert metric_detector.judge_in_frame is offline.judge_in_frame
    assert metric_detector.holds_frame is offline.holds_frame
    assert metric_detector.metric_result is offline.metric_result


@pytest.fixture(scope="module")
def small_day(tmp_path_factory):
    archive = tmp_path_factory.mktemp("offline") / "sim"
    summary = generate(Scenario(editors=6, partners=3, hours=6.0, seed=21, editor_cadence_s=(30.0, 60.0),
                                partner_cadence_s=(60.0, 120.0)), archive)
    return archive, summary, tmp_path_factory.mktemp("offline-cache")


def test_small_simulated_day_is_replayed_and_scored(small_day, tmp_path, monkeypatch):
    archive, summary, cache = small_day
    for stale in cache.glob("models-*.pkl"):  # whatever ran before, this test starts from an empty cache
        stale.unlink()
    # 6 h of data: the ensemble must start scoring after 2 h (as in tests/test_evaluation_e2e.py)
    params = JobParameters.from_job_config(['processing.detector.params={"warmup": 24}'])
    # Every model the replay builds, counted (the configuration's check builds one before); the real
    # detectors still do the scoring.
    built = []
    real_make = detectors.make
    monkeypatch.setattr(detectors, "make", lambda *a, **kw: built.append(a) or real_make(*a, **kw))
    report = evaluate_offline(archive, params=params, cache_dir=cache)
    assert len(built) == report["run"]["keys_scored"] > 0  # one model per key: the first run scored
    assert report["run"]["metric_records"] == summary["records"]["metrics"]
    assert report["incidents"] == summary["incidents"]
    # the scenario's incidents are clear: the replay catches and names most of them
    assert report["detected"] >= summary["incidents"] - 1 and report["type_accuracy"] >= 0.75
    assert report["quiet_editors"]["alerts_during_quiet_stretches"] == 0
    # detection is judged on the archive's samples, as in the live run (not the first credited window)
    assert report["time_to_detect"]["detection"] == "first window holding a sample of the incident"
    # every bus event has the shape the EventBridge rules and the scorer read
    kinds = {(e["source"], e["detail-type"]) for e in report["events"]}
    assert ("adops.analytics", "Composite Anomaly Detected") in kinds
    assert all(e["detail"].get("incident_id") or e["detail"].get("check_id") or e["detail"].get("finding_id")
               for e in report["events"])

    # The models' outputs are cached: a second replay reads them back and decides the same,
    # building no model and leaving the cache file as it was (not rewritten).
    [cached] = cache.glob("models-*.pkl")
    written = cached.stat()
    built.clear()
    again = evaluate_offline(archive, params=params, cache_dir=cache)
    assert built == []
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert again["events"] == report["events"]
    # ... and other detector settings are another cache entry, scored afresh, not a stale read.
    other = JobParameters.from_job_config(['processing.detector.params={"warmup": 30}'])
    built.clear()                                   # the configuration's check built one
    evaluate_offline(archive, params=other, cache_dir=cache)
    assert len(built) == report["run"]["keys_scored"]
    assert len(list(cache.glob("models-*.pkl"))) == 2


def test_cli_writes_the_report(small_day, tmp_path, capsys):
    archive, _, cache = small_day
    out = tmp_path / "eval.json"
    assert offline.main(["--archive", str(archive), "--set", 'processing.detector.params={"warmup": 24}',
                         "--cache", str(cache), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["run"]["mode"] == "offline" and "precision" in capsys.readouterr().out


def test_the_offline_replay_decides_as_the_job_is_configured(tmp_path):
    """The classifier property group reaches the offline decisions, and a metric record the job
    dead-letters for its partner's type (WRONG_TYPE) is not averaged into a window offline either."""
    import json as _json

    from detectors.classifier import DOWN, ClassifierConfig
    from flink_jobs.evaluation.offline import JobParameters, classifier_config_of, read_windows

    params = JobParameters.from_job_config(["classifier.thresholds.rpm.down=0.3", "processing.window.size.s=60"])
    config = classifier_config_of(params)
    assert config.threshold("rpm", DOWN) == 0.3 and config.window_seconds == 60.0
    assert classifier_config_of(JobParameters()).threshold("rpm", DOWN) == ClassifierConfig().threshold("rpm", DOWN)

    folder = tmp_path / "metrics"
    folder.mkdir()
    base = {"editor_id": "e-1", "metric": "rpm", "timestamp": 1793527200000}
    lines = [dict(base, value=1.0), dict(base, value=100.0, partner=5), dict(base, value=100.0, partner={"x": 1}),
             dict(base, value=100.0, partner=""), dict(base, value=3.0, partner=None),
             dict(base, value=0.5, timestamp=1793527200000 + 3_600_000)]   # moves the watermark past the window
    (folder / "part-0.jsonl").write_text("".join(_json.dumps(line) + "\n" for line in lines))
    windows = read_windows(tmp_path, JobParameters())
    (end, mean, count), = windows.series[("editor", "e-1", "rpm", None)][:1]
    assert (mean, count) == (2.0, 2)   # 1.0 and the null-partner 3.0; the three bad partners are out


def test_the_replay_holds_the_events_the_editor_operators_state_holds_past_its_caps():
    """More events of one kind than the editor's state keeps (udfs.decisions.bounded_events), and held ones
    dropped later by the cause horizon: the replay's EditorStateEvents holds the same ones as the operator
    when each window is decided."""
    from correlator_driver import GRACE_MS, LOOKBACK_S, WINDOW_MS, EditorDriver
    from flink_fakes import KeyedStore

    w0 = 1_793_527_200_000
    w1, w2 = w0 + 20 * 60_000, w0 + 25 * 60_000
    arrivals = ([("config_change", w0 - 600_000 + i * 1_000, None, w0) for i in range(230)]        # own, past the cap
                + [("partner_status", w0 - 800_000 + i * 1_000, "p-1", w0) for i in range(210)]    # routed reports
                + [("deployment", w0 - 2_000_000, None, w1)]                        # older than the horizon at w1
                + [("deployment", w1 - 60_000 + i, None, w1) for i in range(5)]
                + [("deployment", w2 - 1_000, None, w2)])       # the horizon at w2 drops most reports held
    end_a, end_b = w0 + WINDOW_MS, w2 + WINDOW_MS                 # decided after w0's and w2's arrivals
    op = EditorDriver(KeyedStore())
    replayed, in_state = [], {}
    for event_type, ts, partner, watermark in arrivals:
        if watermark > w0 and end_a not in in_state:
            in_state[end_a] = sorted((e["event_type"], e["timestamp_ms"]) for e in json.loads(op.state("events", "e-1")))
        op.watermark(watermark)
        routed = partner is not None
        # a routed copy comes keyed by its editor, and is held naming none (udfs/correlator.py)
        op.events_input((event_type, ts, "e-1", partner, None, json.dumps({"n": ts}),
                         decisions.routed_payload(decisions.ROUTED_PARTNER_EVENT) if routed else None))
        replayed.append({"event_type": event_type, "timestamp_ms": ts, "editor_id": None if routed else "e-1",
                         "partner": partner, "arrived_at_watermark": watermark})
    in_state[end_b] = sorted((e["event_type"], e["timestamp_ms"]) for e in json.loads(op.state("events", "e-1")))
    state = offline.EditorStateEvents(replayed, WINDOW_MS, GRACE_MS, LOOKBACK_S * 1000)
    for end in (end_a, end_b):
        held = state.when_decided(end)
        assert sorted((e["event_type"], e["timestamp_ms"]) for e in replayed if id(e) in held) == in_state[end]
    kinds_a, kinds_b = ([k for k, _ in in_state[end]] for end in (end_a, end_b))
    assert kinds_a.count("config_change") == kinds_a.count("partner_status") == decisions.MAX_KEPT_EVENTS
    # one cap for the editor's own events (six deployments push out six changes); the horizon at w2 keeps
    # the ten newest reports, and at w1 dropped the old deployment as it came
    assert (kinds_b.count("config_change"), kinds_b.count("deployment"), kinds_b.count("partner_status")) == (194, 6, 10)
    assert ("deployment", w0 - 2_000_000) not in in_state[end_b]
