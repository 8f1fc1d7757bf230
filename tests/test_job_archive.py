"""The archive source (JSON lines, gzipped) through the Managed Flink package, as Managed Flink runs it.

One bounded job: the package that `python -m deploy.packaging build` writes, unpacked, runs
`main.py --source archive` with a Python that has PyFlink and what PyFlink requires, and
nothing else of the job's (no river, scipy or boto3), as on the service. The mini-cluster
starts the Python workers as separate processes, as a cluster does (PyFlink's own switch
for that, `_python_worker_execution_mode=process`; by default a local run hosts them in the
client process, where the client's path would hide a missing dependency). So the job's
Python dependencies reach the workers only through the package's wheelhouse
(python.requirements) and its code only through python.files.

The job reads a .jsonl.gz replay, finishes by itself (end of input closes every window),
delivers the incidents to EventBridge (flushed at end of input; the partner outage's editors
with the partner named) and writes the archive's bad line as a dead letter.
It runs in PyFlink's process mode, the one the Managed Flink template uses; every other job in the
suite runs in the local default, thread mode (job.python.execution.mode).
"""
from __future__ import annotations

import gzip
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

from flink_jobs import job_scenario as js

# Generous limits: on a loaded 2-core machine a job start alone took minutes here.
pytestmark = [pytest.mark.flink, pytest.mark.aws, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parent.parent


SERVICE_SINKS_PLAN = """
import sys
sys.path.insert(0, "job")
from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from connectors.deadletter.flink_sinks import attach_deadletter_kinesis_sink
from connectors.eventbridge.flink_sink import EVENTBRIDGE_INPUT_TYPE, attach_eventbridge_sink

env = StreamExecutionEnvironment.get_execution_environment()
env.set_parallelism(1)   # from_collection runs at 1; the heartbeats join it on forward edges
lines = env.from_collection(["line"], type_info=Types.STRING())
attach_deadletter_kinesis_sink(lines, "adops-dead-letter-stream", region="us-east-1", heartbeat_interval_ms=1000)
events = lines.map(lambda line: None, output_type=EVENTBRIDGE_INPUT_TYPE)
attach_eventbridge_sink(events, "adops-production-events", region="us-east-1", heartbeat_interval_ms=1000)
print(env.get_execution_plan())
"""


def distribution_closure(name: str) -> list[importlib.metadata.Distribution]:
    """``name`` and every distribution it requires, transitively, as installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [name]
    while pending:
        key = canonicalize_name(pending.pop())
        if key in found:
            continue
        dist = found[key] = importlib.metadata.distribution(key)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return list(found.values())


def pyflink_only_python(base: Path) -> Path:
    """A Python that has this venv's PyFlink and what PyFlink requires, and nothing else.

    A new venv (with pip: Flink installs python.requirements with it) whose one .pth file
    points at a folder of links to those distributions' files in this venv; the rest of the
    venv (river, scipy, boto3, this repository) is not on its path.
    """
    view = base / "pyflink-site-packages"
    view.mkdir(parents=True)
    for dist in distribution_closure("apache-flink"):
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}:
            if not (view / top).exists():
                (view / top).symlink_to(dist.locate_file(top))
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / "bin" / "python"
    site_dir = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    (Path(site_dir) / "pyflink-only.pth").write_text(f"{view}\n")
    return python


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
    # Flink's filesystem source reads an archive's files in no fixed order, and with a watermark that
    # followed the records, a file of a later hour read first made an earlier hour's records late:
    # 120,811 of a simulated day's 151,948 (sql/sources/archive_watermark.sql). This file does the same
    # within itself, whatever the order: a sample ten hours ahead, then 20,000 samples of two hours (read
    # over more than one 200 ms watermark interval). No archive record is late now.
    filler_start = start - 86400
    with gzip.open(archive / "part-0002.jsonl.gz", "wt") as f:
        f.write(json.dumps({"editor_id": "e-fill-archive", "metric": "rpm", "value": 2.0,
                            "timestamp": (filler_start + 36000) * 1000}) + "\n")
        for n in range(20_000):
            f.write(json.dumps({"editor_id": "e-fill-archive", "metric": "rpm", "value": 2.0,
                                "timestamp": filler_start * 1000 + n * 360}) + "\n")   # 360 ms apart: no two alike
    package = tmp_path / "adops-flink.zip"
    build = subprocess.run([sys.executable, "-m", "deploy.packaging", "build", "--skip-jars", "--out", str(package)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    unpacked = tmp_path / "package"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(unpacked)
    python = pyflink_only_python(tmp_path / "python")
    for module, importable in (("pyflink.table", True), ("river", False), ("scipy", False), ("boto3", False),
                               ("udfs", False)):
        probe = subprocess.run([python, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True)
        assert (probe.returncode == 0) == importable, (module, probe.stderr[-500:])

    # What the service's run plans beyond its source (the official connector, whose JAR is not
    # here): the Kinesis dead-letter sink and both sinks' heartbeats, which an unbounded source
    # turns on and the bounded run below leaves off. Planned by the same PyFlink-only client.
    plan = subprocess.run([python, "-c", SERVICE_SINKS_PLAN], cwd=unpacked, capture_output=True, text=True,
                          timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "eventbridge-sink-heartbeat" in plan.stdout and "deadletter-kinesis-heartbeat" in plan.stdout

    dead = tmp_path / "dead"
    cmd = [str(python), str(unpacked / "main.py"), "--source", "archive",
           "--set", f"archive.metrics.path={archive}",
           "--set", "job.parallelism=1",
           "--set", "job.python.execution.mode=process",
           "--set", f"job.checkpoint.dir={tmp_path / 'ckpt'}",
           "--set", f"eventbridge.bus.name={core_stack['bus_name']}",
           "--set", f"deadletter.path={dead}", "--set", f"deadletter.late.path={tmp_path / 'late'}",
           # No flush timer fires within the run: whatever reaches the sinks is delivered only
           # by their end-of-input flush (connectors.flink_buffer), which is what this checks.
           "--set", "eventbridge.flush.interval.ms=600000"]
    flink_log = tmp_path / "flink-log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(ADOPS__EVENTBRIDGE__ENDPOINT_URL=aws_endpoint.url, FLINK_LOG_DIR=str(flink_log),
               _python_worker_execution_mode="process")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    assert lines[0]["source"] == "archive" and lines[-1] == {"final_state": "FINISHED"}
    assert lines[0]["python_execution_mode"] == "process" and lines[0]["packaged_dependencies"] is True
    # The workers were separate processes of that Python, with the wheelhouse installed for them
    # and the package's code folder on their path.
    log = "\n".join(p.read_text(errors="replace") for p in flink_log.glob("*.log"))
    assert f"Python interpreter path: {python}" in log
    installed = [l for l in log.splitlines() if "Successfully installed" in l]
    assert installed and all(f"{name}-" in installed[0] for name in ("river", "scipy", "boto3")), installed
    assert "python-files/job/job" in log

    dl = [json.loads(l) for f in dead.glob("*.jsonl") for l in f.read_text().splitlines()]
    assert [(d["reason_code"], d["raw"]) for d in dl] == [("WRONG_TYPE", bad_line)]
    late = [l for f in (tmp_path / "late").glob("*.jsonl") for l in f.read_text().splitlines()]
    assert late == [], f"{len(late)} archive records went to the late output, e.g. {late[:1]}"

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
