"""The job's entry point refuses what it cannot run with a clear message, not a planner trace.

`python -m flink_jobs.main --source kinesis` needs the official Kinesis connector JAR, which only
Maven Central has; where it is not loaded (this machine, any laptop without it) the job must say
so and name the way out, exit 2, before anything runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.flink]
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(any("kinesis" in jar.name for jar in (REPO / "lib").glob("*.jar")),
                    reason="the official Kinesis connector JAR is in lib/, so the source plans")
def test_the_official_kinesis_source_without_its_jar_is_a_clear_configuration_error():
    result = subprocess.run([sys.executable, "-m", "flink_jobs.main", "--source", "kinesis", "--dry-run"],
                            cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("configuration error: job.source 'kinesis'"), message
    assert "flink-sql-connector-aws-kinesis-streams" in message and "--source kinesis-local" in message
    assert "Traceback" not in result.stderr and "Py4JJavaError" not in result.stderr
