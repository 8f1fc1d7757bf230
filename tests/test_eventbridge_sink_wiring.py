"""How flink_jobs.main wires the EventBridge and CloudWatch sinks' flush aids, checked on the job
plan (what `python -m flink_jobs.main --dry-run` prints, no job runs).

Unbounded sources get the sinks' heartbeat (connectors.flink_buffer: it flushes buckets
restored from a checkpoint without their flush timer). Bounded sources must not get it:
the heartbeat never ends, so the job would never finish; they flush at end of input.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.flink, pytest.mark.timeout(1800)]
HEARTBEAT_OPERATORS = ('"eventbridge-sink-heartbeat"', '"cloudwatch-metrics-heartbeat"')


def _plan(source: str, *overrides: str) -> str:
    """What `python -m flink_jobs.main --source SOURCE --dry-run` prints, planned in this process
    (one JVM for every plan; a --dry-run subprocess each took ~25 s on a loaded machine)."""
    from flink_jobs.config import JobConfig
    from flink_jobs.main import Settings, build_pipeline, create_environments

    cfg = JobConfig.load(environ={}, overrides=["cloudwatch.metrics.enabled=true", *overrides])
    settings = Settings.from_config(cfg)
    env, t_env = create_environments(settings, managed=False)
    build_pipeline(env, t_env, cfg, settings, source)
    return env.get_execution_plan()


def test_heartbeat_is_on_for_unbounded_sources_only_and_configurable(tmp_path):
    (tmp_path / "metrics").mkdir()
    plans = {
        "kinesis-local": _plan("kinesis-local"),
        "kinesis-local, heartbeat 0": _plan("kinesis-local", "eventbridge.heartbeat.interval.ms=0"),
        "archive": _plan("archive", f"archive.metrics.path={tmp_path / 'metrics'}"),
    }
    for operator in HEARTBEAT_OPERATORS:
        assert operator in plans["kinesis-local"]
        assert operator not in plans["kinesis-local, heartbeat 0"]
        assert operator not in plans["archive"]
