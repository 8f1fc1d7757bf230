"""End-to-end evaluation: an archive through Kinesis, the job, EventBridge and the observation queue, scored.

    python -m flink_jobs.evaluate --archive DIR --labels FILE --out FILE.json [--speed 720x|max]
    python -m flink_jobs.evaluate --out FILE.json          # generates and runs the default scenario
    python -m flink_jobs.evaluate --rescore reports/run-X --out FILE.json   # score a run's events again

What happens:
0. the labels are read and checked (file:line of any mistake) before anything runs;
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
5. the events are written (``OUT``'s name with ``.events.jsonl``), then the
   alerts are scored against the labels with :mod:`flink_jobs.evaluation.scoring`
   (its docstring has the matching rule), in the job's own window size
   (``processing.window.size.s``, ``--set`` to change it).

A run whose events may be incomplete -- the collector thread died, the drain
hit its limit while events were still arriving (or none had come), the job
stopped while draining -- is still scored and written, marked
``run_complete: false`` with the reasons in ``run_incomplete``, the headline
starts with INCOMPLETE RUN, and the exit status is 3.

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
from typing import Any, Callable, Iterable, Iterator

from connectors.archive import EVENTS, METRICS, ArchivedRecord
from connectors.deadletter.writers import read_appended_lines
from connectors.cli_numbers import finite_number, replay_speed
from connectors.replay import KinesisReplayer, merged_archive
from connectors.replay.kinesis import event_time_ms, kinesis_client
from flink_jobs.evaluation import alerts_from_events, load_labels, score
from flink_jobs.evaluation.scoring import SampleTimes, parse_time, sample_key

log = logging.getLogger("flink_jobs.evaluate")

CATCH_ALL_QUEUE = "all-adops-events"
DEFAULT_SPEED = 720.0          # 24 h of event time in 2 minutes
#: Records of one editor per PutRecords call on the local endpoint: its per-call
#: cost dominates, and it never fails part of a call (reorders would be counted).
LOCAL_PER_KEY_BATCH = 20


def _output_files(folders: Iterable[str | Path]) -> list[Path]:
    return [path for folder in folders if Path(folder).is_dir() for path in sorted(Path(folder).glob("*.jsonl"))]


def output_sizes(folders: Iterable[str | Path]) -> dict[str, int]:
    """Bytes in the job's file outputs now (the dead-letter writers append: a reused work folder
    holds an earlier run's lines)."""
    return {str(path): path.stat().st_size for path in _output_files(folders)}


@dataclass
class ArchiveFacts:
    """What the replay saw of the archive: enough to normalise false alarms per editor-day.

    The editors and the span of event time are those of the samples the job windowed (what is
    left in ``sample_times`` once :meth:`leave_out_unwindowed` has run): a record it
    dead-lettered (stamped in 9999) or dropped as late (a 1970 time read from epoch seconds)
    would otherwise stretch the span to millennia, and the false alarms per editor-day to 0."""

    records: dict = field(default_factory=lambda: {METRICS: 0, EVENTS: 0})
    #: whether an alert's window held incident data (scoring.detects) is decided on them: the samples
    #: of the records the job can window (scoring.sample_key), less those its outputs say it did not
    sample_times: SampleTimes = field(default_factory=SampleTimes)
    #: samples taken back from ``sample_times`` because the job did not window them, per reason code
    left_out: dict = field(default_factory=dict)
    #: the job's ``processing.max.payload.bytes``: a longer record is OVERSIZED_RECORD, and its dead
    #: letter's ``raw`` is cut (64 KiB), so it could not be taken back: it is not a sample at all
    max_payload_chars: int = 65536

    def observe(self, items: Iterator[ArchivedRecord]) -> Iterator[ArchivedRecord]:
        for item in items:
            if item.kind in self.records:
                self.records[item.kind] += 1
            if item.kind == METRICS and isinstance(item.record, dict):
                ms = event_time_ms(item.record)
                if ms is not None:
                    key = sample_key(item.record)
                    if key is not None and len(item.payload) <= self.max_payload_chars:
                        self.sample_times.add(*key, ms / 1000.0)
            yield item

    @property
    def editors(self) -> set[str]:
        span = self.sample_times.editor_span()
        return span[0] if span else set()

    @property
    def first_ms(self) -> float | None:
        span = self.sample_times.editor_span()
        return span[1] * 1000.0 if span else None

    @property
    def last_ms(self) -> float | None:
        span = self.sample_times.editor_span()
        return span[2] * 1000.0 if span else None

    def samples(self) -> dict[str, list[float]] | None:
        """Sorted sample times per alert entity, or None when the archive's samples were not read."""
        return self.sample_times.sorted()

    def leave_out_unwindowed(self, folders: Iterable[str | Path], before: dict[str, int] | None = None,
                             after: dict[str, int] | None = None) -> dict[str, int]:
        """Take back the samples the job dead-lettered or dropped as late, read from its file outputs
        (``deadletter.path``, ``deadletter.late.path``): no window of the job held them, so they
        must not make an alert's window "hold incident data" (scoring.detects). ``observe`` cannot
        tell them all: lateness is the job's watermark's verdict. A letter is matched to a sample by
        the same rule ``observe`` recorded it by (``sample_key``), so a letter of a record that gave
        no sample takes none back. ``before`` / ``after`` (:func:`output_sizes` when the run started
        and ended): the run's own bytes of those files, which the dead-letter writers append to (a
        reused work folder holds other runs' lines). Returns the counts per reason code."""
        for path in _output_files(folders):
            start = (before or {}).get(str(path), 0)
            end = (after or {}).get(str(path)) if after is not None else None
            if after is not None and end is None:
                continue                       # a file the run did not write
            # whole lines only: a writer may be appending one as the sizes are taken
            for line in read_appended_lines(path, start, end)[0]:
                self._leave_out(line.decode("utf-8", "replace"))
        return dict(self.left_out)

    def _leave_out(self, line: str) -> None:
        try:
            letter = json.loads(line)
            record = json.loads(letter["raw"]) if letter.get("source") == METRICS else None
        except (ValueError, TypeError, KeyError):
            return                 # not a dead letter of a metric record that parsed: observe kept no sample of it
        key = sample_key(record)
        ms = event_time_ms(record) if key is not None else None
        if ms is not None and self.sample_times.discard(*key, ms / 1000.0):
            reason = str(letter.get("reason_code"))
            self.left_out[reason] = self.left_out.get(reason, 0) + 1

    def editor_days(self, since_s: float | None = None) -> float | None:
        """Editors x days the windowed samples span (from ``since_s`` when given)."""
        span = self.sample_times.editor_span()
        if span is None:
            return None
        editors, first_s, last_s = span
        first_s = first_s if since_s is None else max(first_s, since_s)
        return len(editors) * max(0.0, last_s - first_s) / 86_400.0


class BusObserver:
    """Drains the catch-all observation queue in a background thread.

    A message is deleted only once its event is recorded, and no error of one call stops the
    thread: an endpoint hiccup under load (a read timeout on the delete) used to kill it with the
    batch just received lost, and the run went on to score what had arrived as if complete.
    A message whose delete failed comes back after the visibility timeout; its MessageId says it
    is recorded already. Errors are counted (:meth:`stats`); the quiet time before scoring is
    measured between successful receives only (:attr:`last_ok`), so a collector that cannot read
    the queue never looks like a drained job. If the thread dies all the same, :attr:`failure` says why.
    """

    def __init__(self, sqs, queue_url: str, on_event: Callable[[dict], None] | None = None):
        self.sqs, self.queue_url, self.on_event = sqs, queue_url, on_event
        self.events: list[dict] = []
        self.last_arrival = time.monotonic()
        #: When a receive last succeeded: the queue was seen empty of anything newer up to then.
        self.last_ok = self.last_arrival
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-observer", daemon=True)
        self.errors = 0
        self.errors_by_call: dict[str, int] = {}
        self.last_error: str | None = None
        self.failure: str | None = None
        self.unreadable: list[str] = []      # bodies that are not a JSON object (kept, reported)
        self.redelivered = 0
        self._recorded_ids: set[str] = set()

    def start(self) -> "BusObserver":
        self._thread.start()
        return self

    @property
    def dead(self) -> bool:
        """The thread ended without being stopped: nothing is collected any more."""
        return self.failure is not None or (self._thread.ident is not None and not self._thread.is_alive()
                                            and not self._stop.is_set())

    def _error(self, call: str, exc: BaseException) -> None:
        self.errors += 1
        self.errors_by_call[call] = self.errors_by_call.get(call, 0) + 1
        self.last_error = f"{call}: {type(exc).__name__}: {exc}"
        if not self._stop.is_set():          # at shutdown the endpoint may be going away
            log.warning("bus collector: %s (%d errors so far)", self.last_error, self.errors)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.poll()
        except BaseException as exc:  # noqa: BLE001 - recorded: the run is reported incomplete
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("bus collector stopped: %s", self.failure)

    def poll(self) -> None:
        """One receive, record, delete round."""
        try:
            response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=1)
        except Exception as exc:  # noqa: BLE001 - any endpoint error: counted, retried
            self._error("receive_message", exc)
            time.sleep(0.5)
            return
        handled = []
        for message in response.get("Messages", []):
            message_id = message.get("MessageId")
            if message_id is not None and message_id in self._recorded_ids:
                self.redelivered += 1             # recorded before; its delete had failed
                handled.append(message)
                continue
            try:
                event = json.loads(message["Body"])
                if not isinstance(event, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, KeyError, TypeError):
                self.unreadable.append(str(message.get("Body"))[:2000])
            else:
                self.events.append(event)
                self.last_arrival = time.monotonic()
                if self.on_event:
                    try:
                        self.on_event(event)
                    except Exception as exc:  # noqa: BLE001 - progress display only; the event is kept
                        self._error("on_event", exc)
            if message_id is not None:
                self._recorded_ids.add(message_id)
            handled.append(message)
        if handled:
            try:
                result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(handled)])
                for failed in result.get("Failed", []) if isinstance(result, dict) else []:
                    self._error("delete_message_batch", RuntimeError(f"entry {failed}"))
            except Exception as exc:  # noqa: BLE001 - recorded already; a redelivery is skipped
                self._error("delete_message_batch", exc)
        # After the round: events of this response are recorded before the quiet time moves on.
        self.last_ok = time.monotonic()

    def stats(self) -> dict:
        return {"events": len(self.events), "errors": self.errors, "errors_by_call": dict(self.errors_by_call),
                "last_error": self.last_error, "redeliveries_skipped": self.redelivered,
                "unreadable_messages": len(self.unreadable), "unreadable_examples": self.unreadable[:3],
                "died": self.failure}

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
    #: The job's window (processing.window.size.s of the job's own configuration): the scorer's too.
    window_s: float = 300.0
    #: Why the events may not be all the job sent (empty: the run drained as it should).
    incomplete: list[str] = field(default_factory=list)
    collector: dict = field(default_factory=dict)
    #: The job's dead-letter and late folders, and the bytes an earlier run left there (rescoring reads them).
    job_outputs: dict = field(default_factory=dict)


def _aws_client(service: str, endpoint_url: str):
    import boto3

    from connectors.aws import local_credentials

    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1",
                        **local_credentials(endpoint_url))


def _state(handle) -> str:
    # PyFlink reports JobStatus enums ("JobStatus.RUNNING"); keep the name.
    return str(handle.status()).rsplit(".", 1)[-1]


class JobWatch:
    """The job's states seen during the replay and the drain, at most once a second: a job that
    fails and is restarted (Flink restarts it from its last checkpoint, for ever by default) may
    look merely quiet to the drain, and its run must not be scored as complete."""

    UNSETTLED = ("RESTARTING", "FAILING", "CANCELLING", "SUSPENDED", "RECONCILING", "INITIALIZING", "CREATED")

    def __init__(self, handle, every_s: float = 1.0) -> None:
        self.handle, self.every_s = handle, every_s
        self.seen: dict[str, int] = {}        # a state the job should not be in after it ran -> times seen
        self._next = 0.0

    def check(self, *_: Any, force: bool = False) -> str | None:
        """The job's state now (None when sampled less than ``every_s`` ago, unless ``force``); a
        replay progress callback."""
        now = time.monotonic()
        if now < self._next and not force:
            return None
        self._next = now + self.every_s
        state = _state(self.handle)
        if state in self.UNSETTLED:
            self.seen[state] = self.seen.get(state, 0) + 1
        return state

    def reason(self) -> str | None:
        if not self.seen:
            return None
        states = ", ".join(f"{state} ({n}x)" for state, n in sorted(self.seen.items()))
        return (f"the job was not running throughout the replay and the drain: seen {states} (not yet "
                "running, or failed and restarted from its last checkpoint): what it sent may be "
                "incomplete, see its log")


#: Job properties the evaluation sets itself (run_through_system checks it sets these and no others):
#: its endpoint, streams, bus, start position, checkpoints and the dead-letter and late files it reads
#: back to tell windowed samples from the others.
EVALUATION_PROPERTIES = ("kinesis.endpoint.url", "eventbridge.endpoint.url", "kinesis.metrics.stream.name",
                         "kinesis.events.stream.name", "eventbridge.bus.name", "kinesis.start.position",
                         "job.checkpoint.dir", "deadletter.sink", "deadletter.path", "deadletter.late.path")


def check_before_run(parser: argparse.ArgumentParser, labels: str | None, job_overrides: list[str]) -> None:
    """Refuse bad labels or a bad job override now (``parser.error``, exit 2): found after the run,
    either costs its 3-10 minutes, and the labels' mistake used to cost its events too. The job's
    settings are checked as the job checks them at its start (flink_jobs.main.Settings): until
    2026-12-07 only the window size was, so a bad one failed after the endpoint, the stack and the
    scenario, as a traceback. An override of a property the evaluation sets itself is refused: it
    won (``--set deadletter.sink=kinesis`` left no dead-letter files to read, and the dead letters
    counted as windowed samples)."""
    from flink_jobs.config import JobConfig
    from flink_jobs.main import Settings, kinesis_local_options

    try:
        if labels:
            load_labels(labels)
        owned = sorted({o.split("=", 1)[0].strip() for o in job_overrides} & set(EVALUATION_PROPERTIES))
        if owned:
            raise ValueError(f"--set {', '.join(owned)}: the evaluation sets these itself (its endpoint, streams, "
                             f"checkpoints, and the dead-letter and late files it reads back)")
        config = JobConfig.load(overrides=list(job_overrides))
        kinesis_local_options(config, Settings.from_config(config))     # the source the evaluation runs
    except ValueError as exc:       # ConfigError is one
        parser.error(str(exc))


def job_window_s(job_overrides: list[str] = ()) -> float:
    """The job's window size (``processing.window.size.s``) with these overrides: the scorer's
    grace window and time-to-detect unit must be the windows the job emits."""
    from flink_jobs.config import JobConfig

    return float(JobConfig.load(overrides=list(job_overrides)).get_int("processing", "window.size.s",
                                                                        minimum=1, maximum=86400))


def max_payload_chars(config) -> int:
    """The job's ``processing.max.payload.bytes`` (a longer record is OVERSIZED_RECORD)."""
    return config.get_int("processing", "max.payload.bytes", minimum=64)


def run_through_system(archive: str | Path, *, endpoint_url: str | None = None, speed: float | None = DEFAULT_SPEED,
                       settle_s: float | Callable[[], float] = 45.0, max_settle_s: float = 900.0,
                       work_dir: str | Path | None = None,
                       job_overrides: list[str] = (), on_replay: Callable[[Any], None] | None = None,
                       on_event: Callable[[dict], None] | None = None,
                       on_phase: Callable[[str], None] | None = None,
                       before_replay: Callable[[], None] | None = None) -> RunResult:
    """Replay ``archive`` through Kinesis -> job -> EventBridge -> catch-all queue; return what the bus delivered.

    ``before_replay`` runs once the job is up, right before the first record is replayed (an
    exception there ends the run before it costs the replay and the drain). A run whose events
    may be incomplete -- the collector died, the drain was cut at ``max_settle_s``, the job
    stopped while draining -- returns what arrived with the reasons in ``incomplete``.
    """
    from deploy.local.endpoint import start_endpoint
    from deploy.local.stack import LOCAL_PARAMETERS, deploy_core_stack

    phase = on_phase or (lambda text: log.info(text))
    work = Path(work_dir or tempfile.mkdtemp(prefix="adops-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    # The job's dead letters and late records: the samples no window of the job held.
    job_outputs = {"dead_letters": str(work / "dead-letters"), "late": str(work / "late")}
    earlier_output = output_sizes(job_outputs.values())
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
        own = {
            "kinesis.endpoint.url": endpoint_url, "eventbridge.endpoint.url": endpoint_url,
            "kinesis.metrics.stream.name": stack["metrics_stream"],
            "kinesis.events.stream.name": stack["events_stream"],
            "eventbridge.bus.name": stack["bus_name"],
            # Only this run's records, even on an endpoint that served earlier runs.
            "kinesis.start.position": f"AT_TIMESTAMP:{run_started_ms}",
            "job.checkpoint.dir": work / "flink-state",
            "deadletter.sink": "file", "deadletter.path": job_outputs["dead_letters"],
            "deadletter.late.path": job_outputs["late"],
        }
        # check_before_run refuses a --set of these by that list: the two must name the same keys
        # (a key set here and missing there would be overridden by the user's --set unnoticed).
        if set(own) != set(EVALUATION_PROPERTIES):
            raise AssertionError(f"EVALUATION_PROPERTIES differs from the run's own settings: "
                                 f"{sorted(set(own) ^ set(EVALUATION_PROPERTIES))}")
        # The job's own poll interval (200 ms), as `make run` has it. Until 2026-12-07 this run
        # polled every second, from when moto 5.2.5 answered each GetRecords by scanning its shard
        # (deploy/local/patches/kinesis/get_records_fastpath.py made that O(log n)); with the
        # reader dropping every other tick then, a sparse stream's record waited ~2 s, which at
        # 720x is a window and more: an event put just before a window's end missed it.
        overrides = [f"{key}={value}" for key, value in own.items()] + list(job_overrides)
        config = JobConfig.load(overrides=overrides)
        window_s = float(config.get_int("processing", "window.size.s", minimum=1, maximum=86400))
        phase("starting the streaming job on the local mini-cluster")
        handle = start_job(config, source="kinesis-local")
        deadline = time.monotonic() + 180
        while _state(handle) != "RUNNING" and time.monotonic() < deadline:
            if _state(handle) in ("FAILED", "CANCELED", "FINISHED"):
                raise RuntimeError(f"the job ended before the replay started: {_state(handle)}")
            time.sleep(0.5)
        timings["job_start_s"] = time.monotonic() - began - timings["stack_s"]
        observer = BusObserver(sqs, queue_url, on_event).start()
        watch = JobWatch(handle)

        phase("replaying the archive into Kinesis")
        if before_replay is not None:
            before_replay()
        facts = ArchiveFacts(max_payload_chars=max_payload_chars(config))
        replay_began = time.monotonic()
        replayer = KinesisReplayer({METRICS: stack["metrics_stream"], EVENTS: stack["events_stream"]},
                                   client=kinesis_client(endpoint_url), speed=speed,
                                   per_key_limit=LOCAL_PER_KEY_BATCH,
                                   progress=lambda stats: (watch.check(), on_replay and on_replay(stats)))
        stats = replayer.replay(facts.observe(merged_archive(archive)))
        timings["replay_s"] = time.monotonic() - replay_began

        # A callable settle is re-read on every check (make run lengthens it by the job's measured lag).
        settle_now = settle_s if callable(settle_s) else (lambda: settle_s)
        phase(f"waiting for the job to drain (until {settle_now():.0f} s without new bus events)")
        settle_began = time.monotonic()
        incomplete = drain(observer, handle, settle_now, max_settle_s, phase, watch=watch)
        timings["settle_s"] = time.monotonic() - settle_began
        # The job's verdicts up to the end of the drain (the bytes written by then, whole lines only).
        output_at_end = output_sizes(job_outputs.values())
        facts.leave_out_unwindowed(job_outputs.values(), earlier_output, output_at_end)
        job_state = _state(handle)
        events = list(observer.events)
        return RunResult(events, stats.to_dict(), facts, timings, job_state, endpoint_url,
                         _incident_workflow(stack, events, run_started_ms / 1000.0, endpoint_url),
                         window_s=window_s, incomplete=incomplete, collector=observer.stats(),
                         job_outputs={**job_outputs, "bytes_before_run": earlier_output,
                                      "bytes_after_run": output_at_end,
                                      "max_payload_chars": facts.max_payload_chars})
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


def drain(observer: BusObserver, handle, settle_now: Callable[[], float], max_settle_s: float,
          phase: Callable[[str], None], *, poll_s: float = 1.0, watch: JobWatch | None = None) -> list[str]:
    """Wait until no bus event has arrived for ``settle_now()`` seconds; return why the events
    may be incomplete (empty: drained).

    Quiet counts only up to the collector's last successful receive (a collector failing to
    read looks quiet); a dead collector, the ``max_settle_s`` cut-off and a job that stopped
    are reasons, not a silent end: the caller reports them and exits non-zero. So is a job
    ``watch`` saw failing or restarting (during the replay or here).
    """
    watch = watch or JobWatch(handle, every_s=0.0)
    settle_began = time.monotonic()
    observer.last_arrival = max(observer.last_arrival, settle_began)
    next_note = settle_began + 15.0
    # Until the first bus event, the quiet time says nothing about the job (measured: a job
    # catching up on a loaded machine was still on the archive's first windows when a 30 s
    # settle ran out, and the run was scored on 0 events). So with no event yet, wait up to
    # max_settle_s; an archive with nothing to alert on costs that wait once.
    while not observer.events or observer.last_ok - observer.last_arrival < settle_now():
        now = time.monotonic()
        if observer.dead:
            reason = (f"the bus collector stopped ({observer.failure or 'thread ended'}) after "
                      f"{len(observer.events)} events: events the job sent after that were not collected")
            log.warning("%s; scoring what arrived, reported as incomplete", reason)
            return [reason]
        if now >= next_note:
            phase(f"  ... {len(observer.events)} bus events so far, last one "
                  f"{now - observer.last_arrival:.0f} s ago"
                  + (f"; collector errors {observer.errors} ({observer.last_error})" if observer.errors else ""))
            next_note += 15.0
        if now - settle_began > max_settle_s:
            if observer.events:
                reason = (f"cut short: bus events were still arriving (the last {now - observer.last_arrival:.0f} s "
                          f"ago, {settle_now():.0f} s of quiet needed) when the drain's limit of "
                          f"{max_settle_s:.0f} s ran out")
            else:
                reason = (f"no bus event at all in {max_settle_s:.0f} s after the replay: the job may not have "
                          "emitted its results yet")
            if observer.errors and now - observer.last_ok > settle_now():
                reason += f"; the collector could not read the queue since {now - observer.last_ok:.0f} s " \
                          f"({observer.last_error})"
            log.warning("%s; scoring what arrived, reported as incomplete", reason)
            return [reason]
        state = watch.check() or _state(handle)
        if state in ("FAILED", "CANCELED", "FINISHED"):
            return [f"the job stopped while draining: {state} {getattr(handle, 'failure', '') or ''}".rstrip()]
        time.sleep(poll_s)
    watch.check(force=True)             # the state at the end of the quiet, whenever it was last sampled
    return [watch.reason()] if watch.reason() else []


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


def score_run(incidents, result: "RunResult", *, window_s: float | None = None, scenario_json=None,
              warmup_hours: float | None = None) -> dict:
    """Score a run's events; ``window_s`` defaults to the window the run's job used."""
    window_s = result.window_s if window_s is None else window_s
    alerts = alerts_from_events(result.events)
    surges = surge_spans_from_scenario(scenario_json) if scenario_json else None
    if warmup_hours is not None:
        warmup_end = (result.facts.first_ms / 1000.0 + warmup_hours * 3600.0) if result.facts.first_ms else None
    else:
        warmup_end = warmup_end_from_scenario(scenario_json)
    report = score(incidents, alerts, window_s=window_s, quiet_spans=surges, warmup_end_s=warmup_end,
                   editor_days=result.facts.editor_days(since_s=warmup_end),
                   editor_days_including_warmup=result.facts.editor_days(), samples=result.facts.samples())
    # Next to the figures, not only in "run": figures of an incomplete run are not the scenario's.
    report["run_complete"] = not result.incomplete
    report["run_incomplete"] = list(result.incomplete)
    if scenario_json:
        quiet = quiet_spans_from_scenario(scenario_json) or {}
        report["quiet_editors_any_time"] = {
            "editors": len(quiet),
            "alerts": sum(1 for a in alerts if a.editor_id in quiet)}
    return report


def write_events(path: str | Path, events: list[dict], run_facts: dict | None = None) -> Path:
    """The run's bus events as JSON lines (what ``--rescore`` reads), and beside them
    (:func:`run_facts_path`) what scoring them again needs of the run: its window, whether it
    was complete, its archive, labels and job outputs. Both are written before scoring, so a
    scoring error leaves them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e, default=str) + "\n" for e in events), encoding="utf-8")
    if run_facts is not None:
        run_facts_path(path).write_text(json.dumps(run_facts, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def run_facts_path(events_path: str | Path) -> Path:
    """``OUT.events.jsonl`` -> ``OUT.events.run.json``; ``bus_events.jsonl`` -> ``bus_events.run.json``."""
    return Path(events_path).with_suffix(".run.json")


def evaluate(archive: str | Path, labels: str | Path, *, scenario_json: str | Path | None = None,
             warmup_hours: float | None = None, events_path: str | Path | None = None,
             labels_later: bool = False, **run_kwargs) -> dict:
    """Run the archive through the system and score it: the JSON report.

    The labels are read and checked before the run, so a mistake in them costs no run; with
    ``labels_later`` (make run: its scenario is generated while the job starts) right before the
    replay, still before the replay and the drain. The events are written to ``events_path``
    before scoring, so that no scoring error loses them.
    """
    incidents: list = []

    def read_labels() -> None:
        if not incidents:
            incidents.extend(load_labels(labels))

    if not labels_later:
        read_labels()
    caller_before_replay = run_kwargs.pop("before_replay", None)

    def before_replay() -> None:
        if caller_before_replay is not None:
            caller_before_replay()
        read_labels()

    result = run_through_system(archive, before_replay=before_replay, **run_kwargs)
    if events_path is not None:
        write_events(events_path, result.events, {
            "window_seconds": result.window_s, "run_complete": not result.incomplete,
            "run_incomplete": list(result.incomplete),
            "run": {"archive": str(archive), "labels": str(labels), "job_outputs": result.job_outputs}})
    try:
        report = score_run(incidents, result, scenario_json=scenario_json, warmup_hours=warmup_hours)
    except Exception as exc:
        if events_path is not None:
            exc.add_note(f"the run's {len(result.events)} bus events are in {events_path}: score them again "
                         f"with python -m flink_jobs.evaluate --rescore {events_path} --archive ... --labels ...")
        raise
    report["run"] = {
        "archive": str(archive), "labels": str(labels),
        "archive_records": result.facts.records, "editors": len(result.facts.editors),
        "event_time_span_h": round((result.facts.last_ms - result.facts.first_ms) / 3_600_000.0, 2)
        if result.facts.first_ms is not None else None,
        "replay": result.replay, "timings_s": {k: round(v, 1) for k, v in result.timings.items()},
        "bus_events_received": len(result.events), "job_state_at_end": result.job_state,
        "bus_events_by_type": _count(e.get("detail-type") for e in result.events),
        "incident_workflow": result.incident_workflow,
        "collector": result.collector,
        "complete": not result.incomplete, "incomplete": list(result.incomplete),
        # Taken back from the samples that decide whether a window held incident data (scoring.detects).
        "samples_not_windowed": dict(result.facts.left_out), "job_outputs": result.job_outputs,
    }
    if events_path is not None:
        report["run"]["events_file"] = str(events_path)
    report["events"] = result.events
    return report


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def incomplete_banner(report: dict) -> str | None:
    """The warning an incomplete run's figures carry, or None."""
    reasons = report.get("run_incomplete") or []
    if report.get("run_complete", True) and not reasons:
        return None
    return ("INCOMPLETE RUN: the figures below are scored on part of the job's events, not the "
            "scenario's result (" + "; ".join(reasons) + ")")


def headline(report: dict) -> str:
    ttd = report["time_to_detect"]["windows"]
    banner = incomplete_banner(report)
    lines = [*([banner] if banner else []),
        f"incidents {report['incidents']}, detected {report['detected']}, "
        f"false-alarm episodes {report['false_alarm_episodes']} ({report['false_alarm_alerts']} alerts)",
        f"precision {report['precision']}  recall {report['recall']}  F1 {report['f1']}  "
        f"type accuracy {report['type_accuracy']}",
        f"time to detect (windows of event time): median {ttd['median']}  p90 {ttd['p90']}  max {ttd['max']}",
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


#: Exit status of a run whose events may be incomplete (the report is written all the same):
#: its figures are not the scenario's, and a script reading only the status must not take them
#: for a result.
EXIT_INCOMPLETE = 3


class RescoreError(ValueError):
    """What --rescore was given holds no events to score."""


def read_run_events(path: str | Path) -> tuple[list[dict], dict | None]:
    """The bus events of an earlier run, and its summary when there is one.

    ``path``: a make run output folder (its ``bus_events.jsonl``, and ``summary.json``), an
    events file (JSON lines; the ``summary.json`` beside a ``bus_events.jsonl`` is read too, else
    the run's facts written with the events, :func:`run_facts_path`), or a JSON report of
    ``python -m flink_jobs.evaluate`` (it holds its events).
    """
    path = Path(path)
    if path.is_dir():
        events_file = path / "bus_events.jsonl"
        if not events_file.is_file():
            raise RescoreError(f"{path} has no bus_events.jsonl: pass a make run output folder, its "
                               "bus_events.jsonl, or a report of python -m flink_jobs.evaluate")
        path = events_file
    if not path.is_file():
        raise RescoreError(f"{path}: no such file or folder")
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("{") and not path.suffix == ".jsonl":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None                         # one event per line, read below
        if isinstance(doc, dict) and "detail-type" not in doc:
            if not isinstance(doc.get("events"), list):
                beside = path.parent / "bus_events.jsonl"
                raise RescoreError(
                    f"{path} holds no events (make run's summary.json is written without them)"
                    + (f": pass {path.parent} or {beside}" if beside.is_file() else
                       ": pass a make run output folder, its bus_events.jsonl, or a report of "
                       "python -m flink_jobs.evaluate"))
            return _checked_events(doc["events"], path), doc
    events = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except ValueError as exc:
                raise RescoreError(f"{path}:{n}: not a JSON event ({exc})") from None
    # make run's summary.json beside its bus_events.jsonl; else the run's facts written with the events
    summary_file = path.parent / "summary.json"
    if not (path.name == "bus_events.jsonl" and summary_file.is_file()):
        summary_file = run_facts_path(path)
    summary = None
    if summary_file.is_file():
        try:
            summary = json.loads(summary_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RescoreError(f"{summary_file}: the run's facts beside its events are not JSON ({exc})") from None
        if not isinstance(summary, dict):
            raise RescoreError(f"{summary_file}: the run's facts beside its events are not a JSON object")
    return _checked_events(events, path), summary


def _checked_events(events: list, path: Path) -> list[dict]:
    for n, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            raise RescoreError(f"{path}: event {n} is not a JSON object: {event!r:.80}")
    return events


def _rebased(value: str, run_dir: Path) -> str:
    """A path a run's summary names, from wherever the rescore runs. The summary writes paths as
    the run was given them (relative to where it ran: reports/run-X/work/late); when that is not
    there, the same path under the run's folder (make run keeps everything under it)."""
    path = Path(value)
    if path.exists() or path.is_absolute() or run_dir.name not in path.parts:
        return value
    parts = path.parts
    inside = parts[len(parts) - parts[::-1].index(run_dir.name):]
    candidate = run_dir.joinpath(*inside)
    return str(candidate) if candidate.exists() else value


def _rebased_outputs(outputs: dict, run_dir: Path) -> dict:
    rebased = {key: _rebased(outputs[key], run_dir) for key in ("dead_letters", "late") if outputs.get(key)}
    for sizes in ("bytes_before_run", "bytes_after_run"):
        if isinstance(outputs.get(sizes), dict):
            rebased[sizes] = {_rebased(path, run_dir): size for path, size in outputs[sizes].items()}
    return {**outputs, **rebased}


def _rescore(args, parser) -> int:
    try:
        events, summary = read_run_events(args.rescore)
    except RescoreError as exc:
        parser.error(str(exc))
    run = (summary or {}).get("run") or {}
    run_dir = Path(args.rescore) if Path(args.rescore).is_dir() else Path(args.rescore).parent
    archive = args.archive or (_rebased(run["archive"], run_dir) if run.get("archive") else None)
    labels = args.labels or (_rebased(run["labels"], run_dir) if run.get("labels") else None)
    for name, value in (("--archive", archive), ("--labels", labels)):
        if not value or not Path(value).exists():
            parser.error(f"--rescore needs {name} (editors, time span and samples come from the archive)"
                         + (f"; the run's summary names {value}, which does not exist" if value else ""))
    try:
        incidents = load_labels(labels)
    except ValueError as exc:
        parser.error(str(exc))
    # The run's window, as the job used it; an events file alone: the job's configuration's.
    window_s = (summary or {}).get("window_seconds") or job_window_s(args.overrides)
    outputs = _rebased_outputs(run.get("job_outputs") or {}, run_dir)
    from flink_jobs.config import JobConfig

    facts = ArchiveFacts(max_payload_chars=outputs.get("max_payload_chars")
                         or max_payload_chars(JobConfig.load(overrides=list(args.overrides))))
    for _ in facts.observe(merged_archive(archive)):
        pass
    job_outputs = [f for f in (outputs.get("dead_letters"), outputs.get("late")) if f]
    missing_outputs = [f for f in job_outputs if not Path(f).is_dir()]
    if missing_outputs:
        # Said, not silent: without them the samples the job did not window count as windowed.
        log.warning("the run's job outputs %s are not there: the samples the job dead-lettered or dropped as "
                    "late are not taken back, and some detections may differ from the run's", missing_outputs)
    if job_outputs:
        # The job's verdicts, if its outputs are still there (a make run folder keeps them under work/):
        # this run's bytes of them only.
        facts.leave_out_unwindowed(job_outputs, outputs.get("bytes_before_run"), outputs.get("bytes_after_run"))
    scenario_json = args.scenario or (Path(labels).parent / "scenario.json")
    scenario_json = scenario_json if Path(scenario_json).exists() else None
    # Rescoring does not complete a run: one that was cut short stays so.
    incomplete = list((summary or {}).get("run_incomplete") or run.get("incomplete") or [])
    result = RunResult(events, {}, facts, {}, "not run (rescored)", "", window_s=float(window_s),
                       incomplete=incomplete)
    report = score_run(incidents, result, scenario_json=scenario_json, warmup_hours=args.warmup_hours)
    report["rescored"] = {"events_from": str(args.rescore), "archive": str(archive), "labels": str(labels),
                          "bus_events": len(events), "samples_not_windowed": dict(facts.left_out),
                          "job_outputs_missing": missing_outputs}
    report["events"] = events
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(headline(report))
    return EXIT_INCOMPLETE if incomplete else 0


class WorkDirInUse(Exception):
    """The default work folder is there already, with an earlier run's files in it."""


def default_work_dir(out: Path) -> Path:
    """OUT's name with ``.work``, next to the report: its checkpoints, logs, dead letters and the
    generated scenario, which the report's paths name. (Until 2026-12-07 the default was a new
    ``/tmp/adops-eval-*`` folder per run, left behind by every run.) One that is there already and
    not empty is refused, never replaced: it holds what an earlier report names, and maybe the
    archive and labels this run is asked to replay.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> work = default_work_dir(root / "report.json"); work.name, list(work.iterdir())
    ('report.work', [])
    >>> (work / "checkpoints").mkdir()
    >>> default_work_dir(root / "report.json")
    Traceback (most recent call last):
    ...
    flink_jobs.evaluate.WorkDirInUse: ... holds an earlier run's files, ...: move it away, or pass another --out or --work-dir
    """
    work = out.with_name(out.stem + ".work")
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise WorkDirInUse(f"{work} holds an earlier run's files, which its report names (and maybe the archive "
                           "to replay): move it away, or pass another --out or --work-dir")
    work.mkdir(parents=True, exist_ok=True)
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flink_jobs.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", help="archive to replay (default: generate the default scenario)")
    parser.add_argument("--labels", help="labels JSON lines (required with --archive)")
    parser.add_argument("--scenario", help="simulator scenario.json (quiet editors); default: next to the labels")
    parser.add_argument("--out", required=True, help="JSON report path (the bus events also go to "
                                                      "OUT's name with .events.jsonl, written before scoring)")
    parser.add_argument("--speed", type=replay_speed, default=f"{DEFAULT_SPEED:g}x",
                        help="replay speed-up, e.g. 720x, or max")
    parser.add_argument("--endpoint", default=None, help="use this AWS endpoint instead of starting one")
    parser.add_argument("--settle", type=finite_number("seconds", 0), default=45.0,
                        help="seconds without new bus events after the replay before scoring")
    # Gone: a scorer window apart from the job's scored the job's windows with the wrong grace.
    parser.add_argument("--window", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup-hours", type=finite_number("hours", 0), default=None,
                        help="hours at the start whose unmatched alerts are reported apart "
                             "(default: the simulator scenario's warm-up, else none)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="job property override (repeatable); the scorer uses the job's "
                             "processing.window.size.s")
    parser.add_argument("--work-dir", default=None,
                        help="where the run keeps its state and logs (default: OUT's name with .work, next to "
                             "the report, whose paths name it; refused if an earlier run's files are in it)")
    parser.add_argument("--rescore", default=None, metavar="RUN",
                        help="score the bus events of an earlier run again without running anything: a make "
                             "run output folder (or its bus_events.jsonl), an .events.jsonl or a JSON report "
                             "of this command; --archive/--labels default to the run's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.window is not None:
        parser.error("--window is gone: the scorer uses the job's window, processing.window.size.s; "
                     "change both with --set processing.window.size.s=N")
    if args.rescore:
        return _rescore(args, parser)
    if args.archive and not args.labels:
        parser.error("--labels is required with --archive")
    check_before_run(parser, args.labels, args.overrides)

    try:
        work = Path(args.work_dir) if args.work_dir else default_work_dir(Path(args.out))
    except WorkDirInUse as exc:
        parser.error(str(exc))
    archive, labels, scenario_json = args.archive, args.labels, args.scenario
    if archive is None:
        from connectors.simulator import default_scenario, generate
        from connectors.simulator.generator import OutputFolderNotEmpty

        archive = work / "scenario"
        log.info("generating the default scenario into %s", archive)
        try:
            generate(default_scenario(), archive)
        except OutputFolderNotEmpty as exc:
            parser.error(f"{exc} (--work-dir of an earlier run?)")
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

    out = Path(args.out)
    events_path = out.with_name(out.stem + ".events.jsonl")
    report = evaluate(archive, labels, scenario_json=scenario_json, warmup_hours=args.warmup_hours,
                      endpoint_url=args.endpoint, speed=args.speed, settle_s=args.settle,
                      work_dir=work, job_overrides=args.overrides, on_phase=phase, on_replay=replay_progress,
                      events_path=events_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(headline(report))
    print(f"report: {args.out}\nevents: {events_path}")
    if not report["run_complete"]:
        print(f"\n{incomplete_banner(report)}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    sys.exit(main())
