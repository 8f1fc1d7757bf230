"""How flink_jobs.main wires the EventBridge sink's flush aids, checked on the job plan
(`python -m flink_jobs.main --dry-run`, no job runs).

Unbounded sources get the sink heartbeat (connectors.flink_buffer: it flushes buckets
restored from a checkpoint without their flush timer). Bounded sources must not get it:
the heartbeat never ends, so the job would never finish; they flush at end of input.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.flink, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parent.parent
HEARTBEAT_OPERATOR = '"eventbridge-sink-heartbeat"'


def _start_plan(source: str, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "flink_jobs.main", "--source", source, "--dry-run"]
    for override in overrides:
        cmd += ["--set", override]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _plan(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err[-3000:]
    return out


def test_heartbeat_is_on_for_unbounded_sources_only_and_configurable(tmp_path):
    (tmp_path / "metrics").mkdir()
    archive = ("archive", f"archive.metrics.path={tmp_path / 'metrics'}")
    # Started together: each plan starts a JVM, slow on a loaded machine.
    procs = {
        "kinesis-local": _start_plan("kinesis-local"),
        "kinesis-local, heartbeat 0": _start_plan("kinesis-local", "eventbridge.heartbeat.interval.ms=0"),
        "archive": _start_plan(*archive),
    }
    plans = {name: _plan(proc) for name, proc in procs.items()}
    assert HEARTBEAT_OPERATOR in plans["kinesis-local"]
    assert HEARTBEAT_OPERATOR not in plans["kinesis-local, heartbeat 0"]
    assert HEARTBEAT_OPERATOR not in plans["archive"]
