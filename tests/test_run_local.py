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
    from flink_jobs.run_local import job_lag_s, lag_summary, lag_warning

    first_ms = 1_793_577_600_000                      # 2026-11-02T00:00:00Z
    # The window ending one hour of event time later is replayed 5 s (3600 / 720) after the start.
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, 720.0, arrived=107.0) == pytest.approx(2.0)
    assert job_lag_s(None, first_ms, 100.0, 720.0, arrived=107.0) is None
    assert job_lag_s("2026-11-02T01:00:00Z", first_ms, 100.0, None, arrived=107.0) is None   # --speed max

    keeping_up = lag_summary([2.0, 1.0, 3.5])
    assert keeping_up == {"events": 3, "median": 2.0, "max": 3.5}
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
