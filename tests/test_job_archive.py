"""The archive source (JSON lines, gzipped) through the CLI entry point, as a subprocess.

One bounded job: `python -m flink_jobs.main --source archive` reads a .jsonl.gz
replay, finishes by itself (end of input closes every window), delivers the
incidents to EventBridge (flushed at end of input; the partner outage's editors with the partner
named) and writes the archive's bad line as a dead letter.
It runs in PyFlink's process mode, the one the Managed Flink template uses; every other job in the
suite runs in the local default, thread mode (job.python.execution.mode).
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flink_jobs import job_scenario as js

# Generous limits: on a loaded 2-core machine a job start alone took minutes here.
pytestmark = [pytest.mark.flink, pytest.mark.aws, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parent.parent


def test_archive_replay_through_cli(core_stack, drain_sqs, aws_endpoint, tmp_path):
    start = js.window_start(time.time()) - 86400      # a replay of yesterday
    records = []
    for editor in ("e-demand", "e-normal"):
        recs, _ = js.editor_records(editor, start)
        records += [r for r in recs]
    for editor in js.PARTNER_EDITORS:     # the partner outage: its findings name the partner to them
        recs, _ = js.editor_records(editor, start, partner=js.PARTNER)
        records += recs
    records.sort(key=js.timestamp_ms)
    archive = tmp_path / "archive" / "metrics"
    archive.mkdir(parents=True)
    bad_line = '{"editor_id": "e-arch", "metric": "rpm", "value": "oops", "timestamp": 1}'
    with gzip.open(archive / "part-0000.jsonl.gz", "wt") as f:
        for r in records[: len(records) // 2]:
            f.write(json.dumps({**r, "editor_id": r["editor_id"] + "-arch"}) + "\n")
    with gzip.open(archive / "part-0001.jsonl.gz", "wt") as f:
        for r in records[len(records) // 2:]:
            f.write(json.dumps({**r, "editor_id": r["editor_id"] + "-arch"}) + "\n")
        f.write(bad_line + "\n")
    dead = tmp_path / "dead"
    cmd = [sys.executable, "-m", "flink_jobs.main", "--source", "archive",
           "--set", f"archive.metrics.path={archive}",
           "--set", "job.parallelism=1",
           "--set", "job.python.execution.mode=process",
           "--set", f"job.checkpoint.dir={tmp_path / 'ckpt'}",
           "--set", f"eventbridge.bus.name={core_stack['bus_name']}",
           "--set", f"deadletter.path={dead}", "--set", f"deadletter.late.path={tmp_path / 'late'}",
           # No flush timer fires within the run: whatever reaches the sinks is delivered only
           # by their end-of-input flush (connectors.flink_buffer), which is what this checks.
           "--set", "eventbridge.flush.interval.ms=600000"]
    env = dict(os.environ, ADOPS__EVENTBRIDGE__ENDPOINT_URL=aws_endpoint.url)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    assert lines[0]["source"] == "archive" and lines[-1] == {"final_state": "FINISHED"}
    assert lines[0]["python_execution_mode"] == "process"

    dl = [json.loads(l) for f in dead.glob("*.jsonl") for l in f.read_text().splitlines()]
    assert [(d["reason_code"], d["raw"]) for d in dl] == [("WRONG_TYPE", bad_line)]

    partner_editors = sorted(f"{e}-arch" for e in js.PARTNER_EDITORS)
    got = drain_sqs(core_stack["observation_queues"]["all-adops-events"], 1 + len(partner_editors), timeout=30,
                    predicate=lambda e: e.get("detail-type") == "Composite Anomaly Detected"
                    and e["detail"]["editor_id"].endswith("-arch"))
    # A short archive is read within one watermark interval, so every window and timer fires
    # at end of input; the sink's buffer is flushed then by its end-of-input (final watermark)
    # timer: Flink fires no processing-time timer after a bounded input ends.
    by_editor = {e["detail"]["editor_id"]: e["detail"] for e in got}
    assert sorted(by_editor) == sorted(["e-demand-arch", *partner_editors]), [e["detail"]["editor_id"] for e in got]
    assert {d["problem_type"] for d in by_editor.values()} == {"DEMAND_ISSUE"}
    # In process mode too, and with every window closed by the one final watermark, the partner
    # operator's findings reach the editor operator before its timers fire (udfs/correlator.py).
    for editor in partner_editors:
        cause = by_editor[editor]["suspected_causes"][0]
        assert (cause["event_type"], cause["partner"], cause["editor_id"]) == ("partner_health", js.PARTNER, editor)
    assert all(c["event_type"] != "partner_health" for c in by_editor["e-demand-arch"]["suspected_causes"])
