"""The harness's own bookkeeping for the sink-fault scenario, and its command line (no job, no endpoint).

The scenario kills the job only once the sink has drained (``wait_until_stable``), and
tells lost events from overflowed ones by the ids in the DELIVERY_FAILED dead letters
(``_overflowed_key``) and from the sink's receipts (``_sink_receipts``).
"""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from connectors.deadletter.records import dead_letter_json
from connectors.eventbridge.publisher import make_entry
from flink_jobs.reliability.harness import wait_until_stable
from flink_jobs.reliability.scenarios import _overflowed_key, _sink_receipts


def test_wait_until_stable_waits_for_growth_to_stop_for_the_quiet_period():
    started = time.monotonic()
    # Grows for ~0.5 s (like a sink delivering the last entries after a fault), then stays.
    read = lambda: min(int((time.monotonic() - started) / 0.1), 5)  # noqa: E731
    outcome = wait_until_stable(read, quiet_s=0.4, max_s=5.0, poll_s=0.02)
    assert outcome["stable"] is True
    assert outcome["value"] == 5
    assert outcome["last_change_s"] >= 0.4
    assert outcome["waited_s"] >= outcome["last_change_s"] + 0.4 - 0.05


def test_wait_until_stable_gives_up_at_its_bound_while_the_value_keeps_changing():
    counter = itertools.count()
    outcome = wait_until_stable(lambda: next(counter), quiet_s=0.3, max_s=0.6, poll_s=0.02)
    assert outcome["stable"] is False
    assert 0.6 <= outcome["waited_s"] < 1.5


def test_overflowed_key_reads_both_shapes_of_delivery_failed_dead_letters():
    detail = {"incident_id": "inc-0123456789abcdef0123", "editor_id": "e-003"}
    entry = make_entry("bus", "adops.analytics", "Composite Anomaly Detected", detail)
    retries_exhausted = json.loads(dead_letter_json(
        "DELIVERY_FAILED", "DELIVERY_FAILED after 15 attempts", "eventbridge", json.dumps(entry)))
    not_sendable = json.loads(dead_letter_json(
        "DELIVERY_FAILED", "not sendable", "eventbridge",
        json.dumps({"source": "adops.analytics", "detail_type": "Composite Anomaly Detected",
                    "detail": json.dumps(detail)})))
    expected = ("Composite Anomaly Detected", "inc-0123456789abcdef0123")
    assert _overflowed_key(retries_exhausted) == expected
    assert _overflowed_key(not_sendable) == expected
    assert _overflowed_key({"raw": "{not json"}) == ("", None)


def test_sink_receipts_are_read_from_every_subtask_file_relative_to_the_start(tmp_path):
    path = tmp_path / "receipts.jsonl"
    for subtask, (event_id, delivered_ms) in enumerate([("inc-a", 1_000_012_500), ("inc-b", 1_000_045_000)]):
        (tmp_path / f"receipts.jsonl.{subtask}").write_text(json.dumps(
            {"id": event_id, "detail_type": "Composite Anomaly Detected", "emitted_at_ms": 1_000_000_000,
             "received_at_ms": 1_000_000_100, "flush_started_ms": delivered_ms - 2000,
             "delivered_at_ms": delivered_ms, "latency_ms": delivered_ms - 1_000_000_000}) + "\n")
    receipts = _sink_receipts(path, started_wall=1_000_000.0)
    assert sorted((r["id"], r["delivered_s"], r["flush_started_s"]) for r in receipts) == [
        ("inc-a", 12.5, 10.5), ("inc-b", 45.0, 43.0)]


def test_failures_are_read_from_the_flink_log_not_only_the_client_output(tmp_path):
    from flink_jobs.reliability.harness import count_failures, count_state_transitions

    client_log = tmp_path / "job.log"
    client_log.write_text('{"job_id": "abc"}\nTraceback ... (a botocore retry log line)\n')
    flink_logs = tmp_path / "job-flink-log"
    flink_logs.mkdir()
    # Lines as Flink 2.2's log4j file writes them (JobMaster / Execution loggers).
    (flink_logs / "flink-root-python-host.log").write_text(
        "INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph - Job adops (abc) switched from state "
        "CREATED to RUNNING.\n"
        "INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph - scorer (1/2) (a_0_0) switched from "
        "RUNNING to FAILED on localhost.\n"
        "INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph - Job adops (abc) switched from state "
        "RUNNING to RESTARTING.\n"
        "INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph - Job adops (abc) switched from state "
        "RESTARTING to RUNNING.\n")
    assert count_failures(client_log, flink_logs) == {"job_failed": 0, "job_restarting": 1, "task_failures": 1}
    assert count_state_transitions(client_log, flink_logs) == 3
    # The client's output alone holds no transition: the old reading could never count a failure.
    assert count_state_transitions(client_log, tmp_path / "absent") == 0


def test_a_rescale_to_the_jobs_own_parallelism_is_refused_before_anything_starts(monkeypatch, capsys):
    import pytest

    from flink_jobs.reliability import __main__ as cli

    def no_harness(*args, **kwargs):
        raise AssertionError("the harness started")

    monkeypatch.setattr(cli, "Harness", no_harness)
    for refused in ("2", "0", "129"):   # the job runs at 2; the max parallelism is 128
        with pytest.raises(SystemExit):
            cli.main(["--out", "unused.json", "--rescale-to", refused])
        assert f"--rescale-to {refused}: expected another parallelism than the job's 2" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="the harness started"):   # an accepted value gets as far as the harness
        cli.main(["--out", "unused.json", "--rescale-to", "3"])


def test_a_scenario_that_raises_before_its_kill_leaves_no_job_running(tmp_path, monkeypatch):
    """A job runs in its own session: when a scenario raised before _finish killed it (the job did not
    start reading, a feeder error), it went on using the cores while the next scenarios were measured."""
    import subprocess
    import sys

    from flink_jobs.reliability import harness, scenarios

    real_popen = subprocess.Popen
    # the job's process group, without Flink: a client and a child that outlives it
    monkeypatch.setattr(harness.subprocess, "Popen", lambda args, **kw: real_popen(
        [sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                               "'import time; time.sleep(300)']); time.sleep(300)"], **kw))
    started = []

    def a_step_that_fails():
        started.append(harness.JobProcess(tmp_path, [], tag=f"job-{len(started)}"))
        raise RuntimeError("the job did not start reading")

    runner = object.__new__(scenarios.Harness)
    runner.simulation = {"records": 0, "incidents": 0, "incidents_by_type": {}}
    runner.clean = lambda: {}
    for name in ("backlog", "source_faults"):
        monkeypatch.setattr(runner, name, a_step_that_fails, raising=False)
    figures = runner.run_all(bad_records=0, outage_s=0, only={"backlog", "source_faults"})
    assert figures["backlog"] == {"error": "RuntimeError: the job did not start reading"}
    assert len(started) == 2 and harness.JobProcess.running == []
    for job in started:
        assert not job.alive()
        deadline = time.monotonic() + 10
        while _live_members(job.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _live_members(job.process.pid) == []        # its child too


def _live_members(group: int) -> list[int]:
    """The processes of a process group that are not zombies (a container's init may not reap them)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
