"""The job as planned (what `python -m flink_jobs.main --dry-run` builds; no job runs): how its
sinks' flush aids are wired, and that its operator ids do not depend on operational settings.

Unbounded sources get the sinks' heartbeat (connectors.flink_buffer: it flushes buckets
restored from a checkpoint without their flush timer). Bounded sources must not get it:
the heartbeat never ends, so the job would never finish; they flush at end of input.

Operator ids are the keys of each operator's state in a savepoint; Flink SQL's operators get
theirs hashed from the job's topology, so no operational setting may add or remove an operator
(flink_jobs/restore_points.py says why).
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.flink, pytest.mark.timeout(1800)]
HEARTBEAT_OPERATORS = ('"eventbridge-sink-heartbeat"', '"cloudwatch-metrics-heartbeat"')
# Planning creates the checkpoint directory: one per test process, removed when it exits.
_STATE = Path(tempfile.gettempdir()) / f"adops-test-job-plan-{os.getpid()}"
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
BASE = ("job.parallelism=2", "deadletter.sink=file", "eventbridge.heartbeat.interval.ms=1000",
        f"job.checkpoint.dir={_STATE / 'checkpoints'}", f"deadletter.path={_STATE / 'dead'}")

# What an operator of a deployment may change between two runs of it, all at once (a job graph
# costs seconds to build); each differs from BASE.
OPERATIONAL_SETTINGS = (
    "cloudwatch.metrics.enabled=true", "cloudwatch.namespace=Other", "cloudwatch.flush.interval.ms=5000",
    "deadletter.sink=kinesis", "deadletter.retry.deadline.s=30",
    "eventbridge.flush.interval.ms=250", "eventbridge.max.in.flight=1", "eventbridge.heartbeat.interval.ms=5000",
    "job.checkpoint.interval.ms=60000", "kinesis.max.records.per.get=500", "kinesis.poll.interval.ms=1000",
    'processing.detector.params={"warmup": 24}', "processing.events.lookback.s=600",
    "processing.model.snapshot.windows=6", "processing.watermark.delay.s=120",
)


@functools.lru_cache(maxsize=None)
def _planned(source: str, *overrides: str) -> tuple[str, dict[str, str]]:
    """(execution plan JSON, operator id -> task name) of the job, planned in this process (one JVM
    for every plan; a --dry-run subprocess each took ~25 s on a loaded machine)."""
    from flink_jobs.config import JobConfig
    from flink_jobs.main import Settings, build_pipeline, create_environments, planned_job

    cfg = JobConfig.load(environ={}, overrides=[*BASE, *overrides])
    settings = Settings.from_config(cfg)
    env, t_env = create_environments(settings, managed=False)
    build_pipeline(env, t_env, cfg, settings, source)
    stream_graph, operators = planned_job(env, settings.name)   # as start_job submits it
    return str(stream_graph.getStreamingPlanAsJSON()), operators


def test_heartbeat_is_on_for_unbounded_sources_only_and_configurable(tmp_path):
    (tmp_path / "metrics").mkdir()
    plans = {
        "kinesis-local": _planned("kinesis-local")[0],
        "kinesis-local, heartbeat 0": _planned("kinesis-local", "eventbridge.heartbeat.interval.ms=0")[0],
        "archive": _planned("archive", f"archive.metrics.path={tmp_path / 'metrics'}")[0],
    }
    for operator in HEARTBEAT_OPERATORS:   # the CloudWatch sink's too, with its metrics off (the default)
        assert operator in plans["kinesis-local"]
        assert operator not in plans["kinesis-local, heartbeat 0"]
        assert operator not in plans["archive"]


def test_operational_settings_keep_every_operator_id():
    base = _planned("kinesis-local")[1]
    assert len(base) > 50   # every operator of the job, the SQL ones included
    changed = _planned("kinesis-local", *OPERATIONAL_SETTINGS)[1]
    assert set(changed) == set(base), sorted({base[i][:100] for i in set(base) - set(changed)})
    # A rescale up keeps every id (Managed Flink's autoscaling restores a snapshot at the new parallelism).
    assert set(_planned("kinesis-local", "job.parallelism=3")[1]) == set(base)
    # Down to 1, the operators that chain differently get other ids: the tick sources (datagen: the
    # Kinesis readers' polls, the heartbeats), whose parallelism is fixed, and what follows them. None
    # holds state; the SQL aggregates keep theirs. tests/test_job_pipeline.py restores a savepoint
    # taken at 2 into the job at 1, and checks that every operator holding state is there.
    rescaled = set(base) - set(_planned("kinesis-local", "job.parallelism=1")[1])
    assert rescaled and not [base[i] for i in rescaled if "Aggregate" in base[i] or "get-records" in base[i]]
    # The check can fail: a setting that does add an operator (the heartbeat source, built only
    # with a non-zero interval) changes ids far beyond that operator, the SQL ones among them.
    gone = set(base) - set(_planned("kinesis-local", "eventbridge.heartbeat.interval.ms=0")[1])
    assert len(gone) > 20 and any("OverAggregate" in base[i] or "WindowAggregate" in base[i] for i in gone)


def test_every_branch_judges_lateness_in_the_task_of_the_duplicate_marking():
    """sql/parse/late.sql: the windows' branches and the late output each evaluate the second late
    test in a Calc of their own. They agree on every row only because they read the materialized
    stream in the duplicate marking's task (chained after its hash exchange, no other exchange in
    between), so each sees the same watermarks between the same rows."""
    tasks = set(_planned("kinesis-local")[1].values())
    metrics = [t for t in tasks if t.startswith("OverAggregate") and "LocalWindowAggregate" in t]
    events = [t for t in tasks if t.startswith("OverAggregate") and "events-valid" in t]
    assert len(metrics) == 1 and len(events) == 1, sorted(t[:120] for t in tasks)
    # editor windows, partner windows and the late/dead-letter lines; events: the Python operators' input and the lines
    assert metrics[0].count("*anonymous_datastream_source$") == 3, metrics[0]
    assert metrics[0].count("LocalWindowAggregate") == 2, metrics[0]
    assert events[0].count("*anonymous_datastream_source$") == 2, events[0]


def test_a_restore_point_whose_metadata_cannot_be_read_is_left_to_flinks_own_check(tmp_path, caplog):
    import logging

    from flink_jobs.restore_points import check_restore_operators

    (tmp_path / "_metadata").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="flink_jobs.restore_points"):
        check_restore_operators(str(tmp_path), {})   # no operator at all: any state read would be refused
    assert "were not checked" in caplog.text
    assert "Exception" in caplog.text.split("were not checked", 1)[1]   # Flink's own reason, not py4j's
