"""End-to-end evaluation: an archive through Kinesis, the job, EventBridge and the observation queue, scored.

    python -m flink_jobs.evaluate --archive DIR --labels FILE --out FILE.json [--speed 720x|max]
    python -m flink_jobs.evaluate --out FILE.json          # generates and runs the default scenario

What happens:
1. the embedded AWS endpoint starts on a free port (or ``--endpoint URL`` is used)
   and the core stack is deployed on it (2 shards, observation queues on);
2. the streaming job starts detached on the local mini-cluster, reading both
   Kinesis streams from the moment the run began (``AT_TIMESTAMP``);
3. the archive -- any archive in the input contract: a Firehose-style tree,
   a directory of .parquet / .jsonl[.gz] files, or one file -- is replayed into
   the streams at the chosen speed-up, keeping timestamps and per-editor order;
4. every event the bus delivers to the catch-all ``all-adops-events`` queue is
   collected while the job runs, until nothing new has arrived for
   ``--settle`` seconds after the replay ended;
5. the alerts are scored against the labels with
   :mod:`flink_jobs.evaluation.scoring` (its docstring has the matching rule).

The last windows of an archive only close when later data moves the watermark
past them, so incidents in the final ``window + watermark`` of an archive
cannot be detected; the simulator keeps its incidents an hour clear of the end.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from connectors.archive import EVENTS, METRICS, ArchivedRecord
from connectors.replay import KinesisReplayer, merged_archive, parse_speed
from connectors.replay.kinesis import event_time_ms, kinesis_client
from flink_jobs.evaluation import alerts_from_events, load_labels, score
from flink_jobs.evaluation.scoring import parse_time

log = logging.getLogger("flink_jobs.evaluate")

CATCH_ALL_QUEUE = "all-adops-events"
DEFAULT_SPEED = 720.0          # 24 h of event time in 2 minutes
#: Records of one editor per PutRecords call on the local endpoint: its per-call
#: cost dominates, and it never fails part of a call (reorders would be counted).
LOCAL_PER_KEY_BATCH = 20


@dataclass
class ArchiveFacts:
    """What the replay saw of the archive: enough to normalise false alarms per editor-day."""

    editors: set = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    records: dict = field(default_factory=lambda: {METRICS: 0, EVENTS: 0})

    def observe(self, items: Iterator[ArchivedRecord]) -> Iterator[ArchivedRecord]:
        for item in items:
            if item.kind in self.records:
                self.records[item.kind] += 1
            if item.kind == METRICS and isinstance(item.record, dict):
                editor = item.record.get("editor_id")
                if isinstance(editor, str):
                    self.editors.add(editor)
                ms = event_time_ms(item.record)
                if ms is not None:
                    self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
                    self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)
            yield item

    def editor_days(self, since_s: float | None = None) -> float | None:
        """Editors x days the metrics span (from ``since_s`` when given)."""
        if not self.editors or self.first_ms is None:
            return None
        first_ms = self.first_ms if since_s is None else max(self.first_ms, since_s * 1000.0)
        return len(self.editors) * max(0.0, self.last_ms - first_ms) / 86_400_000.0


class BusObserver:
    """Drains the catch-all observation queue in a background thread."""

    def __init__(self, sqs, queue_url: str, on_event: Callable[[dict], None] | None = None):
        self.sqs, self.queue_url, self.on_event = sqs, queue_url, on_event
        self.events: list[dict] = []
        self.last_arrival = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-observer", daemon=True)
        self.errors = 0

    def start(self) -> "BusObserver":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=1)
            except Exception as exc:  # the endpoint may be going away at shutdown
                self.errors += 1
                log.debug("receive_message failed: %s", exc)
                time.sleep(0.5)
                continue
            messages = response.get("Messages", [])
            if messages:
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            for message in messages:
                try:
                    event = json.loads(message["Body"])
                except ValueError:
                    continue
                self.events.append(event)
                self.last_arrival = time.monotonic()
                if self.on_event:
                    self.on_event(event)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class RunResult:
    events: list[dict]
    replay: dict
    facts: ArchiveFacts
    timings: dict
    job_state: str
    endpoint_url: str
    #: What the stack's incident workflow did with the composites (deploy.local.observe.incident_workflow_outcomes).
    incident_workflow: dict | None = None


def _aws_client(service: str, endpoint_url: str):
    import boto3

    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1",
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))


def _state(handle) -> str:
    # PyFlink reports JobStatus enums ("JobStatus.RUNNING"); keep the name.
    return str(handle.status()).rsplit(".", 1)[-1]


def run_through_system(archive: str | Path, *, endpoint_url: str | None = None, speed: float | None = DEFAULT_SPEED,
                       settle_s: float | Callable[[], float] = 45.0, max_settle_s: float = 900.0,
                       work_dir: str | Path | None = None,
                       job_overrides: list[str] = (), on_replay: Callable[[Any], None] | None = None,
                       on_event: Callable[[dict], None] | None = None,
                       on_phase: Callable[[str], None] | None = None) -> RunResult:
    """Replay ``archive`` through Kinesis -> job -> EventBridge -> catch-all queue; return what the bus delivered."""
    from deploy.local.endpoint import start_endpoint
    from deploy.local.stack import LOCAL_PARAMETERS, deploy_core_stack

    phase = on_phase or (lambda text: log.info(text))
    work = Path(work_dir or tempfile.mkdtemp(prefix="adops-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    began = time.monotonic()
    own_endpoint = None
    if endpoint_url is None:
        phase("starting the embedded AWS endpoint")
        own_endpoint = start_endpoint(port=0, log_dir=work / "aws")
        endpoint_url = own_endpoint.url
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_REGION", "us-east-1")):
        os.environ.setdefault(key, value)
    handle = None
    observer = None
    try:
        phase("deploying the core stack (streams, bus, rules, observation queues)")
        stack = deploy_core_stack(endpoint_url, LOCAL_PARAMETERS)
        queue_url = stack["observation_queues"][CATCH_ALL_QUEUE]
        sqs = _aws_client("sqs", endpoint_url)
        sqs.purge_queue(QueueUrl=queue_url)        # a reused endpoint may hold an earlier run's events
        timings["stack_s"] = time.monotonic() - began

        from flink_jobs.config import JobConfig
        from flink_jobs.main import start_job

        run_started_ms = int(time.time() * 1000) - 1000
        overrides = [
            f"kinesis.endpoint.url={endpoint_url}", f"eventbridge.endpoint.url={endpoint_url}",
            f"kinesis.metrics.stream.name={stack['metrics_stream']}",
            f"kinesis.events.stream.name={stack['events_stream']}",
            f"eventbridge.bus.name={stack['bus_name']}",
            # Only this run's records, even on an endpoint that served earlier runs.
            f"kinesis.start.position=AT_TIMESTAMP:{run_started_ms}",
            f"job.checkpoint.dir={work / 'flink-state'}",
            "deadletter.sink=file", f"deadletter.path={work / 'dead-letters'}",
            f"deadletter.late.path={work / 'late'}",
            # moto 5.2.5 answers each GetRecords by scanning its shard from the first record
            # (O(records in the shard)): polling every second instead of every 200 ms keeps the
            # embedded endpoint's CPU for the replay. Event-time results do not change.
            "kinesis.poll.interval.ms=1000",
            *job_overrides,
        ]
        phase("starting the streaming job on the local mini-cluster")
        handle = start_job(JobConfig.load(overrides=overrides), source="kinesis-local")
        deadline = time.monotonic() + 180
        while _state(handle) != "RUNNING" and time.monotonic() < deadline:
            if _state(handle) in ("FAILED", "CANCELED", "FINISHED"):
                raise RuntimeError(f"the job ended before the replay started: {_state(handle)}")
            time.sleep(0.5)
        timings["job_start_s"] = time.monotonic() - began - timings["stack_s"]
        observer = BusObserver(sqs, queue_url, on_event).start()

        phase("replaying the archive into Kinesis")
        facts = ArchiveFacts()
        replay_began = time.monotonic()
        replayer = KinesisReplayer({METRICS: stack["metrics_stream"], EVENTS: stack["events_stream"]},
                                   client=kinesis_client(endpoint_url), speed=speed,
                                   per_key_limit=LOCAL_PER_KEY_BATCH, progress=on_replay)
        stats = replayer.replay(facts.observe(merged_archive(archive)))
        timings["replay_s"] = time.monotonic() - replay_began

        # A callable settle is re-read on every check (make run lengthens it by the job's measured lag).
        settle_now = settle_s if callable(settle_s) else (lambda: settle_s)
        phase(f"waiting for the job to drain (until {settle_now():.0f} s without new bus events)")
        settle_began = time.monotonic()
        observer.last_arrival = max(observer.last_arrival, settle_began)
        next_note = settle_began + 15.0
        # Until the first bus event, the quiet time says nothing about the job (measured: a job
        # catching up on a loaded machine was still on the archive's first windows when a 30 s
        # settle ran out, and the run was scored on 0 events). So with no event yet, wait up to
        # max_settle_s; an archive with nothing to alert on costs that wait once.
        while (not observer.events or time.monotonic() - observer.last_arrival < settle_now()):
            if time.monotonic() >= next_note:
                phase(f"  ... {len(observer.events)} bus events so far, last one "
                      f"{time.monotonic() - observer.last_arrival:.0f} s ago")
                next_note += 15.0
            if time.monotonic() - settle_began > max_settle_s:
                log.warning("%s after %.0f s; scoring what arrived",
                            "still receiving events" if observer.events else "no bus event at all", max_settle_s)
                break
            state = _state(handle)
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise RuntimeError(f"the job stopped while draining: {state} {handle.failure or ''}")
            time.sleep(1.0)
        timings["settle_s"] = time.monotonic() - settle_began
        job_state = _state(handle)
        events = list(observer.events)
        return RunResult(events, stats.to_dict(), facts, timings, job_state, endpoint_url,
                         _incident_workflow(stack, events, run_started_ms / 1000.0, endpoint_url))
    finally:
        if observer is not None:
            observer.stop()
        if handle is not None:
            try:
                handle.cancel()
            except Exception as exc:  # already finished or failed
                log.debug("cancel: %s", exc)
        if own_endpoint is not None:
            own_endpoint.stop()
        timings["total_s"] = time.monotonic() - began


def _incident_workflow(stack: dict, events: list[dict], started_after_s: float, endpoint_url: str) -> dict:
    """The run's composites as the stack's incident workflow handled them; a failure to read that is
    reported in the result, not raised: the detection results stand without it."""
    from deploy.local.observe import incident_workflow_outcomes

    composites = {e["detail"]["incident_id"] for e in events
                  if e.get("detail-type") == "Composite Anomaly Detected" and "incident_id" in (e.get("detail") or {})}
    try:
        return {"composites": len(composites),
                **incident_workflow_outcomes(stack, composites, started_after_s, endpoint_url)}
    except Exception as exc:  # noqa: BLE001 - any AWS or parsing error; logged and kept in the report
        log.warning("could not read the incident workflow's outcomes: %s", exc)
        return {"composites": len(composites), "error": f"{type(exc).__name__}: {exc}"}


def quiet_spans_from_scenario(path: str | Path) -> dict[str, list[tuple[float, float]]] | None:
    """Stretches that must not alarm, from a simulator's scenario.json: each quiet editor's surge
    (or, for trend-only quiet editors, the whole period)."""
    path = Path(path)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    start = parse_time(doc["scenario"]["start"])
    end = start + float(doc["scenario"]["hours"]) * 3600.0
    spans = {}
    for editor in doc["editors"]:
        if not editor.get("quiet"):
            continue
        surge = editor.get("surge")
        spans[editor["editor_id"]] = ([(start + surge["start_s"], start + surge["end_s"])] if surge
                                      else [(start, end)])
    return spans


def surge_spans_from_scenario(path: str | Path) -> dict[str, list[tuple[float, float]]] | None:
    path = Path(path)
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    start = parse_time(doc["scenario"]["start"])
    return {e["editor_id"]: [(start + e["surge"]["start_s"], start + e["surge"]["end_s"])]
            for e in doc["editors"] if e.get("quiet") and e.get("surge")}


def warmup_end_from_scenario(path: str | Path | None) -> float | None:
    """When a simulator scenario's warm-up (no incidents, models learning) ends, epoch seconds."""
    if path is None or not Path(path).exists():
        return None
    from connectors.simulator import Scenario

    scenario = Scenario.from_dict(json.loads(Path(path).read_text())["scenario"])
    return scenario.start_epoch_s + scenario.effective_warmup_s


def score_run(incidents, result: "RunResult", *, window_s: float = 300.0, scenario_json=None,
              warmup_hours: float | None = None) -> dict:
    alerts = alerts_from_events(result.events)
    surges = surge_spans_from_scenario(scenario_json) if scenario_json else None
    if warmup_hours is not None:
        warmup_end = (result.facts.first_ms / 1000.0 + warmup_hours * 3600.0) if result.facts.first_ms else None
    else:
        warmup_end = warmup_end_from_scenario(scenario_json)
    report = score(incidents, alerts, window_s=window_s, quiet_spans=surges, warmup_end_s=warmup_end,
                   editor_days=result.facts.editor_days(since_s=warmup_end),
                   editor_days_including_warmup=result.facts.editor_days())
    if scenario_json:
        quiet = quiet_spans_from_scenario(scenario_json) or {}
        report["quiet_editors_any_time"] = {
            "editors": len(quiet),
            "alerts": sum(1 for a in alerts if a.editor_id in quiet)}
    return report


def evaluate(archive: str | Path, labels: str | Path, *, scenario_json: str | Path | None = None,
             window_s: float = 300.0, warmup_hours: float | None = None, **run_kwargs) -> dict:
    """Run the archive through the system and score it: the JSON report."""
    # Labels are read after the run: `make run` generates the scenario while the job starts.
    result = run_through_system(archive, **run_kwargs)
    report = score_run(load_labels(labels), result, window_s=window_s, scenario_json=scenario_json,
                       warmup_hours=warmup_hours)
    report["run"] = {
        "archive": str(archive), "labels": str(labels),
        "archive_records": result.facts.records, "editors": len(result.facts.editors),
        "event_time_span_h": round((result.facts.last_ms - result.facts.first_ms) / 3_600_000.0, 2)
        if result.facts.first_ms is not None else None,
        "replay": result.replay, "timings_s": {k: round(v, 1) for k, v in result.timings.items()},
        "bus_events_received": len(result.events), "job_state_at_end": result.job_state,
        "bus_events_by_type": _count(e.get("detail-type") for e in result.events),
        "incident_workflow": result.incident_workflow,
    }
    report["events"] = result.events
    return report


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def headline(report: dict) -> str:
    ttd = report["time_to_detect"]["windows"]
    lines = [
        f"incidents {report['incidents']}, detected {report['detected']}, "
        f"false-alarm episodes {report['false_alarm_episodes']} ({report['false_alarm_alerts']} alerts)",
        f"precision {report['precision']}  recall {report['recall']}  F1 {report['f1']}  "
        f"type accuracy {report['type_accuracy']}",
        f"time to detect (windows): median {ttd['median']}  p90 {ttd['p90']}  max {ttd['max']}",
        f"false-alarm episodes per editor-day {report['false_alarm_episodes_per_editor_day']}",
    ]
    if report.get("warmup_end"):
        w = report["including_warmup"]
        lines.append(f"(after the models' warm-up, which ended {report['warmup_end']}; counting the "
                     f"{report['warmup_false_alarm_alerts']} warm-up alerts too: precision {w['precision']}, "
                     f"F1 {w['f1']}, {w['false_alarm_episodes_per_editor_day']} episodes per editor-day)")
    if report.get("quiet_editors"):
        lines.append(f"alerts on quiet editors during surges: {report['quiet_editors']['alerts_during_quiet_stretches']}")
    workflow = (report.get("run") or {}).get("incident_workflow")
    if workflow:
        lines.append(f"incident workflow: {workflow_line(workflow)}")
    return "\n".join(lines)


def workflow_line(workflow: dict) -> str:
    """One line on what the stack's incident workflow did with the run's composites.

    >>> workflow_line({"composites": 68, "executions": {"SUCCEEDED": 32}, "episodes_notified": 15,
    ...                "outcomes": {"covered_by_episode": 16, "notified": 16}})
    '32 of 68 composites matched its rule (SUCCEEDED 32); 16 notified in 15 episodes, 16 covered by their episode'
    """
    if "error" in workflow:
        return f"not read ({workflow['error']})"
    executions, outcomes = workflow.get("executions", {}), workflow.get("outcomes", {})
    statuses = ", ".join(f"{k} {v}" for k, v in executions.items()) or "none"
    others = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in outcomes.items()
                       if k not in ("notified", "covered_by_episode"))
    return (f"{sum(executions.values())} of {workflow['composites']} composites matched its rule ({statuses}); "
            f"{outcomes.get('notified', 0)} notified in {workflow.get('episodes_notified', 0)} episodes, "
            f"{outcomes.get('covered_by_episode', 0)} covered by their episode" + (f", {others}" if others else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flink_jobs.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", help="archive to replay (default: generate the default scenario)")
    parser.add_argument("--labels", help="labels JSON lines (required with --archive)")
    parser.add_argument("--scenario", help="simulator scenario.json (quiet editors); default: next to the labels")
    parser.add_argument("--out", required=True, help="JSON report path")
    parser.add_argument("--speed", default=f"{DEFAULT_SPEED:g}x", help="replay speed-up, e.g. 720x, or max")
    parser.add_argument("--endpoint", default=None, help="use this AWS endpoint instead of starting one")
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds without new bus events after the replay before scoring")
    parser.add_argument("--window", type=float, default=300.0, help="window size in seconds (matching grace)")
    parser.add_argument("--warmup-hours", type=float, default=None,
                        help="hours at the start whose unmatched alerts are reported apart "
                             "(default: the simulator scenario's warm-up, else none)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="job property override (repeatable)")
    parser.add_argument("--work-dir", default=None, help="where the run keeps its state and logs")
    parser.add_argument("--rescore", default=None, metavar="REPORT_OR_EVENTS",
                        help="score the bus events of an earlier run (its JSON report, or JSON lines of "
                             "events) against --archive/--labels again, without running anything")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.archive and not args.labels:
        parser.error("--labels is required with --archive")

    if args.rescore:
        if not args.archive:
            parser.error("--rescore needs --archive and --labels (editors and time span come from the archive)")
        text = Path(args.rescore).read_text()
        events = (json.loads(text)["events"] if text.lstrip().startswith("{\n") or args.rescore.endswith(".json")
                  else [json.loads(line) for line in text.splitlines() if line.strip()])
        facts = ArchiveFacts()
        for _ in facts.observe(merged_archive(args.archive)):
            pass
        scenario_json = args.scenario or (Path(args.labels).parent / "scenario.json")
        scenario_json = scenario_json if Path(scenario_json).exists() else None
        result = RunResult(events, {}, facts, {}, "not run (rescored)", "")
        report = score_run(load_labels(args.labels), result, window_s=args.window, scenario_json=scenario_json,
                           warmup_hours=args.warmup_hours)
        report["events"] = events
        Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(headline(report))
        return 0

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="adops-eval-"))
    archive, labels, scenario_json = args.archive, args.labels, args.scenario
    if archive is None:
        from connectors.simulator import default_scenario, generate

        archive = work / "scenario"
        log.info("generating the default scenario into %s", archive)
        generate(default_scenario(), archive)
        labels = archive / "labels.jsonl"
    if scenario_json is None and (Path(labels).parent / "scenario.json").exists():
        scenario_json = Path(labels).parent / "scenario.json"
    began = time.monotonic()

    def phase(text: str) -> None:
        # print, not logging: PyFlink's start-up reconfigures the root logger.
        print(f"[{time.monotonic() - began:7.1f}s] {text}", file=sys.stderr, flush=True)

    def replay_progress(stats) -> None:
        if stats.calls % 200 == 0:
            phase(f"replayed {stats.total} records")

    report = evaluate(archive, labels, scenario_json=scenario_json, window_s=args.window,
                      warmup_hours=args.warmup_hours, endpoint_url=args.endpoint, speed=parse_speed(args.speed), settle_s=args.settle,
                      work_dir=work, job_overrides=args.overrides, on_phase=phase, on_replay=replay_progress)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(headline(report))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
