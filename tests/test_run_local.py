"""`make run`'s own pieces that need no Flink: the scenario generated in a side process."""
from __future__ import annotations

import json

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
