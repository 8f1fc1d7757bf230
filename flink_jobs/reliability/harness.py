"""The reliability harness: the real job on the mini-cluster, the embedded endpoint, the fault proxy.

Every scenario runs ``python -m flink_jobs.main --source kinesis-local`` as a
child process (its own process group, so a hard kill takes the JVM and the
Python workers with it) against streams this harness creates and fills with the
simulator's traffic. Outputs are read where the job writes them: dead-letter and
late JSON-lines files, and the bus's catch-all observation queue.

Progress probes. Every ``PROBE_EVERY`` records, and 16 times at the end (keys
spread over the shards), the harness puts a numbered probe, a truncated JSON
record that the job must dead-letter as INVALID_JSON. Probes travel the same
source and parse path as the metrics; the job has read a stream up to probe n
once probe n is in the dead-letter output. They give "processed everything"
(all end probes seen), "no gap" (every probe seen) and "no re-read" (no probe
seen twice) without any hook into the job.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import boto3
from botocore.config import Config

from connectors.deadletter.writers import read_appended_lines
from flink_jobs.reliability.fuzz import FUZZ_ID_PATTERN, FuzzRecord, TrafficRecord

log = logging.getLogger("flink_jobs.reliability")

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_EVERY = 250
END_PROBES = 16
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1"}
_PROBE = re.compile(r"probe-([a-z0-9-]+?)-(\d{6})")


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, read_timeout=30))


# ----------------------------------------------------------------------------- traffic
def simulated_traffic(sim_dir: str | Path) -> list[TrafficRecord]:
    """The simulator's archive as records to put, in arrival order (metrics and events merged)."""
    from connectors.replay.kinesis import merged_archive, partition_key

    out = []
    for item in merged_archive(sim_dir):
        stream = "events" if item.kind == "events" else "metrics"
        out.append(TrafficRecord(stream, partition_key(item.record), item.payload.encode("utf-8")))
    return out


def probe(run: str, n: int) -> TrafficRecord:
    # Truncated JSON: INVALID_JSON by any reading of the contract. Keys vary so probes spread over shards.
    payload = f'{{"editor_id":"probe-{run}-{n:06d}","metric":"rpm","value":'.encode()
    return TrafficRecord("metrics", f"probe-{n % 97}", payload)


def with_probes(run: str, traffic: list[TrafficRecord]) -> tuple[list[TrafficRecord], int]:
    out, n = [], 0
    for i, record in enumerate(traffic):
        out.append(record)
        if (i + 1) % PROBE_EVERY == 0:
            out.append(probe(run, n))
            n += 1
    for _ in range(END_PROBES):
        out.append(probe(run, n))
        n += 1
    return out, n


# ----------------------------------------------------------------------------- streams
class StreamPair:
    """A metrics and an events stream created for one run."""

    def __init__(self, url: str, run: str, shards: int = 2):
        self.kinesis = client("kinesis", url)
        self.metrics = f"reliability-{run}-metrics"
        self.events = f"reliability-{run}-events"
        for name in (self.metrics, self.events):
            self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        self.refused: list[TrafficRecord] = []

    def name(self, stream: str) -> str:
        return self.metrics if stream == "metrics" else self.events

    def put(self, records: Iterable[TrafficRecord], *, pace_per_s: float | None = None,
            gate: threading.Event | None = None, stop: threading.Event | None = None) -> int:
        """PutRecords in order, at most pace_per_s records/s; waits while ``gate`` is clear.

        Records go straight to the endpoint (never through the fault proxy), in
        batches of consecutive records per stream; a partial failure is retried
        for the failed records only, which could reorder a key, so it is counted
        (``reordered_batches``) rather than hidden.
        """
        batch: list[TrafficRecord] = []
        started, sent, size = time.monotonic(), 0, 0

        def flush():
            nonlocal batch, sent, size, started
            if gate is not None and not gate.is_set():
                paused = time.monotonic()
                gate.wait()
                started += time.monotonic() - paused  # the pause does not count toward the pace
            by_stream: dict[str, list[TrafficRecord]] = {}
            for r in batch:
                by_stream.setdefault(r.stream, []).append(r)
            for stream, items in by_stream.items():
                self._put_batch(self.name(stream), items)
            sent += len(batch)
            batch, size = [], 0
            if pace_per_s:
                ahead = sent / pace_per_s - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

        step = 400 if not pace_per_s else max(1, int(pace_per_s / 10))  # ~10 batches/s when paced
        for record in records:
            if stop is not None and stop.is_set():
                return sent
            if record.fuzz is not None and not record.fuzz.putable:
                self._check_refused(record)
                continue
            if len(batch) >= step or size + len(record.payload) > 4_000_000:
                flush()
            batch.append(record)
            size += len(record.payload) + len(record.partition_key)
        if batch:
            flush()
        return sent

    reordered_batches = 0

    def _put_batch(self, stream: str, items: list[TrafficRecord]):
        pending = items
        for attempt in range(20):
            response = self.kinesis.put_records(StreamName=stream, Records=[
                {"Data": r.payload, "PartitionKey": r.partition_key} for r in pending])
            if not response.get("FailedRecordCount"):
                return
            self.reordered_batches += 1
            pending = [r for r, o in zip(pending, response["Records"]) if o.get("ErrorCode")]
            time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"could not put {len(pending)} records into {stream}")


    def _check_refused(self, record: TrafficRecord):
        from botocore.exceptions import ClientError

        try:
            self.kinesis.put_record(StreamName=self.name(record.stream), Data=record.payload,
                                    PartitionKey=record.partition_key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ValidationException", "InvalidArgumentException"):
                self.refused.append(record)
                return
            raise
        raise AssertionError(f"Kinesis accepted a {len(record.payload)}-byte record over the 1 MiB limit")

    def split_all_shards(self, stream: str) -> list[str]:
        split = []
        for shard in self.kinesis.list_shards(StreamName=stream)["Shards"]:
            if "EndingSequenceNumber" in shard["SequenceNumberRange"]:
                continue
            low, high = int(shard["HashKeyRange"]["StartingHashKey"]), int(shard["HashKeyRange"]["EndingHashKey"])
            self.kinesis.split_shard(StreamName=stream, ShardToSplit=shard["ShardId"],
                                     NewStartingHashKey=str((low + high) // 2))
            split.append(shard["ShardId"])
        return split


class Feeder(threading.Thread):
    """Puts a run's traffic at a steady rate while the job runs, like live producers."""

    def __init__(self, streams: StreamPair, records: list[TrafficRecord], pace_per_s: float):
        super().__init__(daemon=True, name="reliability-feeder")
        self.streams, self.records, self.pace_per_s = streams, records, pace_per_s
        self.gate, self.stop_event = threading.Event(), threading.Event()
        self.gate.set()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            self.sent = self.streams.put(self.records, pace_per_s=self.pace_per_s, gate=self.gate,
                                         stop=self.stop_event)
        except BaseException as exc:  # reported by the scenario, never swallowed
            self.error = exc


# ----------------------------------------------------------------------------- outputs
@dataclass
class Outputs:
    dead_letters: list[dict] = field(default_factory=list)
    late: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # EventBridge events seen on the catch-all queue
    probe_first_seen: dict[int, float] = field(default_factory=dict)
    probe_copies: Counter = field(default_factory=Counter)


class OutputWatcher:
    """Tails the dead-letter / late files and drains the catch-all queue of one run."""

    def __init__(self, run: str, dl_dir: Path, late_dir: Path, sqs, queue_url: str):
        self.run, self.dl_dir, self.late_dir, self.sqs, self.queue_url = run, dl_dir, late_dir, sqs, queue_url
        self.out = Outputs()
        self._offsets: dict[Path, int] = {}
        self._lock = threading.Lock()

    def _read_new(self, directory: Path, into: list):
        for path in sorted(directory.glob("*.jsonl")) if directory.exists() else []:
            lines, self._offsets[path] = read_appended_lines(path, self._offsets.get(path, 0))
            for line in lines:
                if line.strip():
                    letter = json.loads(line)
                    into.append(letter)
                    m = _PROBE.search(letter.get("raw", ""))
                    if m and m.group(1) == self.run:
                        n = int(m.group(2))
                        self.out.probe_copies[n] += 1
                        self.out.probe_first_seen.setdefault(n, time.monotonic())

    def _drain_queue(self):
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return
            for m in got:
                self.out.events.append(json.loads(m["Body"]))
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])

    def poll(self):
        with self._lock:
            self._read_new(self.dl_dir, self.out.dead_letters)
            self._read_new(self.late_dir, self.out.late)
            self._drain_queue()

    def wait_for_probes(self, probes: Iterable[int], timeout_s: float, alive: Callable[[], bool] = lambda: True,
                        ) -> bool:
        wanted = set(probes)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if wanted <= set(self.out.probe_first_seen):
                return True
            if not alive():
                return False
            time.sleep(0.5)
        return False

    def settle(self, quiet_s: float = 12.0, max_s: float = 120.0):
        """Keep draining until neither files nor the queue have changed for quiet_s."""
        deadline = time.monotonic() + max_s
        last_change, last_sizes = time.monotonic(), None
        while time.monotonic() < deadline:
            self.poll()
            sizes = (len(self.out.dead_letters), len(self.out.late), len(self.out.events))
            if sizes != last_sizes:
                last_sizes, last_change = sizes, time.monotonic()
            elif time.monotonic() - last_change >= quiet_s:
                return
            time.sleep(0.5)


def wait_until_stable(read: Callable[[], object], quiet_s: float, max_s: float, poll_s: float = 0.5,
                      ) -> dict:
    """Poll ``read()`` until its value has not changed for ``quiet_s``, at most ``max_s``.

    Returns {"stable": bool, "waited_s", "last_change_s" (seconds after the start at which
    the value last changed, 0.0 if it never did), "value"}."""
    started = time.monotonic()
    value, last_change = read(), started
    while True:
        now = time.monotonic()
        if now - last_change >= quiet_s:
            stable = True
            break
        if now - started >= max_s:
            stable = False
            break
        time.sleep(poll_s)
        current = read()
        if current != value:
            value, last_change = current, time.monotonic()
    return {"stable": stable, "waited_s": round(time.monotonic() - started, 1),
            "last_change_s": round(last_change - started, 1), "value": value}


# ----------------------------------------------------------------------------- the job
def _flink_log_text(client_log: Path, flink_log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in [client_log, *sorted(flink_log_dir.glob("*.log*"))]
                     if p.exists())


def count_failures(client_log: Path, flink_log_dir: Path) -> dict:
    text = _flink_log_text(client_log, flink_log_dir)
    return {
        "job_failed": len(re.findall(r"switched from state \w+ to FAILED", text)),
        "job_restarting": len(re.findall(r"switched from state \w+ to RESTARTING", text)),
        "task_failures": len(re.findall(r"switched from \w+ to FAILED", text)),
    }


def count_state_transitions(client_log: Path, flink_log_dir: Path) -> int:
    """Every job state transition in the log (CREATED -> RUNNING at least): 0 means the log was
    not found, and then zero failures would say nothing."""
    return len(re.findall(r"switched from state \w+ to \w+", _flink_log_text(client_log, flink_log_dir)))


class JobProcess:
    """``python -m flink_jobs.main`` in its own process group (so a kill -9 takes the whole job)."""

    #: Jobs started and not killed or stopped yet (:meth:`kill_leftovers`).
    running: list["JobProcess"] = []

    def __init__(self, run_dir: Path, overrides: list[str], *, restore: str | None = None, tag: str = "job"):
        self.log_path = run_dir / f"{tag}.log"
        # The mini-cluster's own log (job and task state transitions) goes to log4j's file under
        # FLINK_LOG_DIR, not to the client's stdout: one directory per launch, read by failures().
        self.flink_log_dir = run_dir / f"{tag}-flink-log"
        args = [sys.executable, "-m", "flink_jobs.main", "--source", "kinesis-local"]
        for o in overrides:
            args += ["--set", o]
        if restore:
            args += ["--restore", restore]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ADOPS__")}
        env.update(AWS_ENV)
        env.pop("AWS_ENDPOINT_URL", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["FLINK_LOG_DIR"] = str(self.flink_log_dir)
        self._log = open(self.log_path, "ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=str(REPO_ROOT), start_new_session=True)
        JobProcess.running.append(self)

    @classmethod
    def kill_leftovers(cls) -> int:
        """Kill every job still running; how many there were. A scenario that raised before its own
        kill left its job (its own session, which neither the harness's close nor a Ctrl-C reaches)
        using the two cores while the next scenarios were measured."""
        left = [job for job in cls.running if job.alive()]
        for job in list(cls.running):
            job.kill_hard()
        return len(left)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_submitted(self, timeout_s: float = 180.0) -> bool:
        """Until flink_jobs.main prints the submitted job's id (the sources start right after)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.alive():
            if b'{"job_id"' in self.log_path.read_bytes():
                return True
            time.sleep(0.25)
        return False

    def kill_hard(self):
        """SIGKILL the job's whole process group: client, mini-cluster JVM, Python workers."""
        # Only while the client runs: once it has exited and been reaped, its pid, and so the group's
        # id, may belong to another process.
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        self._log.close()
        if self in JobProcess.running:
            JobProcess.running.remove(self)

    def stop_with_savepoint(self, timeout_s: float = 120.0) -> str | None:
        """SIGTERM: flink_jobs.main stops the job with a savepoint and prints its path."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill_hard()
            return None
        self.kill_hard()        # it has exited: closes the log, and it is no longer running
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith('{"savepoint"'):
                return json.loads(line)["savepoint"]
        return None

    def failures(self) -> dict:
        """Job failures as Flink's log shows them: job FAILED / RESTARTING transitions and task
        failures, read from the mini-cluster's log4j file(s) under ``flink_log_dir`` (and the
        client's output); `state_transitions_seen` shows the log was read."""
        return count_failures(self.log_path, self.flink_log_dir)

    def state_transitions_seen(self) -> int:
        return count_state_transitions(self.log_path, self.flink_log_dir)


# ----------------------------------------------------------------------------- analysis helpers
def incident_key(event: dict) -> tuple[str, str | None]:
    from connectors.eventbridge.publisher import dedup_key

    return dedup_key(event)


def incident_summary(events: list[dict]) -> dict:
    """Ids, copies, and ids whose copies disagree (a duplicate that is not the same incident); and the
    groupings the job keeps in state, to compare after restores: each composite's ``episode`` block and
    each Partner Health Check's ``outage`` block (under "episodes", by id).

    >>> s = incident_summary([
    ...     {"detail-type": "Composite Anomaly Detected", "detail": {"incident_id": "inc-1", "episode": {"composites": 2}}},
    ...     {"detail-type": "Partner Health Check", "detail": {"check_id": "phc-1", "outage": {"checks": 3}}},
    ...     {"detail-type": "Partner Health Check", "detail": {"check_id": "phc-2", "partner_status": "HEALTHY"}}])
    >>> sorted(s["keys"]), s["episodes"]
    ([('Composite Anomaly Detected', 'inc-1'), ('Partner Health Check', 'phc-1'), ('Partner Health Check', 'phc-2')], \
{('Composite Anomaly Detected', 'inc-1'): {'composites': 2}, ('Partner Health Check', 'phc-1'): {'checks': 3}})
    """
    by_key: dict[tuple, list[dict]] = {}
    for e in events:
        by_key.setdefault(incident_key(e), []).append(e.get("detail") or {})
    conflicting = []
    for key, details in by_key.items():
        canon = {json.dumps({k: v for k, v in d.items() if k not in ("detected_at",)}, sort_keys=True)
                 for d in details}
        if len(canon) > 1:
            conflicting.append(key)
    return {
        "keys": set(by_key),
        "copies": sum(len(v) for v in by_key.values()),
        "duplicate_copies": sum(len(v) - 1 for v in by_key.values()),
        "conflicting_ids": conflicting,
        # The composites' episode blocks and the partner checks' outage blocks: the editor and the partner
        # operators' state must survive restores.
        "episodes": {key: details[0].get("episode") or details[0]["outage"] for key, details in by_key.items()
                     if "episode" in details[0] or "outage" in details[0]},
    }


def fuzz_match(fuzz: list[FuzzRecord], letters: list[dict]) -> dict:
    """Which fuzz records appear in the given dead-letter / late lines, and with which codes."""
    by_id: dict[str, list[str]] = {}
    by_raw: dict[str, list[str]] = {}
    for letter in letters:
        raw = letter.get("raw", "")
        m = FUZZ_ID_PATTERN.search(raw[:400])
        if m:
            by_id.setdefault(m.group(0), []).append(letter.get("reason_code"))
        else:
            by_raw.setdefault(raw, []).append(letter.get("reason_code"))
    found: dict[str, list[str]] = {}
    for record in fuzz:
        if record.traceable:
            codes = by_id.get(record.fuzz_id)
        else:
            candidates = by_raw.get(record.payload.decode("utf-8", errors="replace"))
            codes = [candidates.pop(0)] if candidates else None
        if codes:
            found[record.fuzz_id] = codes
    return found


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
