"""`make run`'s own pieces that need no Flink: the scenario generated in a side process."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from flink_jobs.run_local import _ScenarioGeneration


def test_default_scenario_generated_in_its_own_process_is_the_default_scenario(tmp_path):
    from connectors.simulator import Scenario, default_scenario

    summary = _ScenarioGeneration(seed=3, out=tmp_path / "scenario").wait()
    written = json.loads((tmp_path / "scenario" / "scenario.json").read_text())
    assert Scenario.from_dict(written["scenario"]) == default_scenario(seed=3)
    assert summary["records"]["metrics"] > 0 and summary["incidents"] >= 6
    labels = (tmp_path / "scenario" / "labels.jsonl").read_text().splitlines()
    assert len(labels) == summary["incidents"]


def test_a_failed_generation_says_why(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(RuntimeError, match="generating the default scenario failed"):
        _ScenarioGeneration(seed=3, out=blocker / "scenario").wait()


def test_job_lag_is_measured_against_the_replay_schedule():
    from flink_jobs.run_local import ReplayProgress, job_lag_s, lag_summary, lag_warning

    first_ms = 1_793_577_600_000                      # 2026-11-02T00:00:00Z
    # The window ending one hour of event time later is replayed 5 s (3600 / 720) after the start.
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, 720.0, arrived=107.0) == pytest.approx((2.0, 0.0))
    # A replay that fell behind put that window's end at 106 s, not 105 s: the job's lag counts from then.
    puts = ReplayProgress()
    for event_ms, at in ((first_ms, 100.0), (first_ms + 3_599_000, 105.5), (first_ms + 3_600_500, 106.0)):
        puts.note(event_ms, at)
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, 720.0, 107.0, puts.reached) == pytest.approx((1.0, 1.0))
    # ahead of the schedule it cannot be (the replay waits for it): the schedule stays the floor
    early = ReplayProgress()
    early.note(first_ms + 3_600_000, 104.0)
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, 720.0, 107.0, early.reached) == pytest.approx((2.0, 0.0))
    assert job_lag_s(None, first_ms, 100.0, 720.0, arrived=107.0) is None
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, None, arrived=107.0) is None   # --speed max

    keeping_up = lag_summary([2.0, 1.0, 3.5])
    assert keeping_up == {"events": 3, "median": 2.0, "max": 3.5}
    assert lag_summary([2.0, 1.0, 3.5, 9.0])["median"] == 2.8      # the middle two's mean, not the upper one
    assert lag_warning(keeping_up, speed=720.0) is None
    assert "no window result" in lag_warning(lag_summary([]), speed=720.0)
    assert lag_warning(lag_summary([]), speed=None) is None


def test_the_drain_wait_grows_with_the_jobs_lag():
    from flink_jobs.run_local import drain_wait_s

    assert drain_wait_s(20.0, []) == 20.0
    assert drain_wait_s(20.0, [-0.3, 2.0]) == 22.0
    assert drain_wait_s(20.0, [5.0, 73.0, 40.0]) == 93.0


def test_the_job_log_folder_is_flink_log_dir_else_pyflinks_own(monkeypatch, tmp_path):
    """Where the CLI and make run say Flink's own log is (make run sets FLINK_LOG_DIR to its output
    folder's flink-log/ before the mini-cluster's JVM starts)."""
    import pyflink

    from flink_jobs.main import local_flink_log_dir

    monkeypatch.delenv("FLINK_LOG_DIR", raising=False)
    assert local_flink_log_dir() == Path(pyflink.__file__).resolve().parent / "log"
    monkeypatch.setenv("FLINK_LOG_DIR", str(tmp_path / "mine"))
    assert local_flink_log_dir() == tmp_path / "mine"


@pytest.fixture()
def no_run(monkeypatch):
    """The run (endpoint + Flink job) replaced: these tests are about what make run does around it."""
    import flink_jobs.evaluate as ev

    calls: list = []

    def refuse(archive, **kwargs):
        calls.append(archive)
        raise AssertionError("the run started")

    monkeypatch.setattr(ev, "run_through_system", refuse)
    monkeypatch.setenv("FLINK_LOG_DIR", "/nonexistent-flink-log")
    return calls


def test_bad_labels_are_refused_before_the_run(tmp_path, capsys, no_run):
    from flink_jobs.run_local import main

    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"incident_id": "a", "scope": "editor", "problem_type": "LATENCY_ISSUE", '
                      '"start": 1793620800, "end": 1793622600, "editor_id": "e-1"}\n')
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--archive", str(tmp_path), "--labels", str(labels), "--out", str(out),
              "--endpoint", "http://127.0.0.1:9"])
    assert info.value.code == 2
    assert "labels.jsonl:1: start 1793620800 is not a plausible time" in capsys.readouterr().err
    assert no_run == [] and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--speed", "fast"], "speed must be a number like 60x"),
    (["--seed", "-1"], "must be at least 0"),
    (["--settle", "nan"], "must be a finite number of seconds"),
])
def test_bad_options_are_refused_before_anything_starts(tmp_path, capsys, no_run, argv, message):
    """--speed was read after the scenario's generation had started (a traceback, and a generator
    left filling the output folder); --seed -1 failed in the generator, after the job had started."""
    from flink_jobs.run_local import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["--out", str(out), "--endpoint", "http://127.0.0.1:9", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert no_run == [] and not out.exists()


def test_an_earlier_runs_folder_is_not_generated_into(tmp_path, capsys, no_run):
    from flink_jobs.run_local import main

    out = tmp_path / "run"
    (out / "scenario" / "metrics").mkdir(parents=True)
    (out / "scenario" / "labels.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as info:
        main(["--out", str(out), "--endpoint", "http://127.0.0.1:9"])
    assert info.value.code == 2
    assert "holds an earlier scenario (labels.jsonl, metrics)" in capsys.readouterr().err and no_run == []


def test_an_incomplete_run_is_written_flagged_and_exits_non_zero(tmp_path, capsys, monkeypatch):
    """The collector died mid-run: make run still writes what arrived, says so, and exits 3."""
    import flink_jobs.evaluate as ev
    from connectors.simulator import Scenario, generate
    from flink_jobs.run_local import main

    archive = tmp_path / "sim"
    generate(Scenario(editors=2, partners=2, hours=2.0, seed=1, editor_cadence_s=(60.0, 90.0),
                      partner_cadence_s=(120.0, 180.0), warmup_hours=0.5), archive)
    reason = "the bus collector stopped (ConnectionError: reset) after 0 events"

    def cut_run(path, **kwargs):
        kwargs["before_replay"]()
        return ev.RunResult([], {}, ev.ArchiveFacts(), {}, "RUNNING", "", window_s=300.0, incomplete=[reason])

    monkeypatch.setattr(ev, "run_through_system", cut_run)
    monkeypatch.setenv("FLINK_LOG_DIR", str(tmp_path / "flink-log"))
    out = tmp_path / "out"
    code = main(["--archive", str(archive), "--labels", str(archive / "labels.jsonl"), "--out", str(out),
                 "--endpoint", "http://127.0.0.1:9"])
    assert code == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_complete"] is False and summary["run_incomplete"] == [reason]
    assert (out / "bus_events.jsonl").exists() and "INCOMPLETE RUN" in (out / "report.html").read_text()
    captured = capsys.readouterr()
    assert captured.out.startswith("INCOMPLETE RUN") and reason in captured.err
