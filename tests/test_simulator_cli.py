"""The simulator's command line refuses bad sizes itself (exit code 2, which argument, what is expected).

They used to reach numpy and end in a traceback far from the argument: --hours -1 "negative
dimensions are not allowed", --cadence 0 ZeroDivisionError, --cadence 60-10 "high - low < 0",
--editors 0 "high <= 0".
"""
from __future__ import annotations

import json

import pytest

from connectors.simulator.__main__ import main


@pytest.mark.parametrize("argv, message", [
    (["--hours", "-1"], "argument --hours: must be a finite number of hours > 0"),
    (["--hours", "0"], "argument --hours: must be a finite number of hours > 0"),
    (["--hours", "nan"], "argument --hours: must be a finite number of hours > 0"),
    (["--cadence", "0"], "argument --cadence: intervals must be finite and at least 0.001 s"),
    (["--cadence", "60-10"], "argument --cadence: the range's low end must not be above its high end"),
    (["--cadence", "1e-9"], "argument --cadence: intervals must be finite and at least 0.001 s"),
    (["--cadence=-5-10"], "argument --cadence: expected seconds as LOW-HIGH or one number"),
    (["--partner-cadence", "0-30"], "argument --partner-cadence: intervals must be finite and at least"),
    (["--editors", "0"], "argument --editors: must be at least 1"),
    (["--partners", "0"], "argument --partners: must be at least 1"),
    (["--seed", "-1"], "argument --seed: must be at least 0"),
    (["--warmup-hours", "-2"], "argument --warmup-hours: must be a finite number of hours >= 0"),
    (["--start", "2026-11-02T00:00:00+01:00"], "argument --start: expected a UTC time as YYYY-MM-DDTHH:MM:SSZ"),
])
def test_bad_arguments_are_refused_with_a_message_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "sim"
    with pytest.raises(SystemExit) as exited:
        main(["--out", str(out), "--editors", "2", "--hours", "0.2", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_the_checks_take_what_is_valid(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["--out", str(out), "--editors", "1", "--partners", "1", "--hours", "0.2", "--seed", "0",
                 "--cadence", "20-60", "--partner-cadence", "1.5e2", "--warmup-hours", "0",
                 "--start", "2026-11-03T00:00:00Z", "--format", "jsonl"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"]["metrics"] > 0
    scenario = json.loads((out / "scenario.json").read_text())["scenario"]
    assert (scenario["editor_cadence_s"], scenario["partner_cadence_s"]) == ([20.0, 60.0], [150.0, 150.0])
    assert (scenario["seed"], scenario["warmup_hours"], scenario["start"]) == (0, 0.0, "2026-11-03T00:00:00Z")
