"""The live run's own pieces without Flink: the bus collector on the real local endpoint (faults
injected by the fault proxy), the drain's verdicts, the labels read before the run, the events
written before scoring, the job's window, and --rescore of a run's output.

The Flink job is stubbed where a piece only needs its status (the drain) or its events (evaluate):
what those pieces do with them is under test, not the job.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import flink_jobs.evaluate as ev
from connectors.simulator import Scenario, generate
from flink_jobs.evaluation import Incident
from flink_jobs.evaluation.scoring import iso, parse_time
from flink_jobs.reliability.fault_proxy import FaultProxy

DELETE_BATCH = "AmazonSQS.DeleteMessageBatch"


@pytest.fixture(autouse=True)
def _never_the_real_run(monkeypatch):
    """No test here starts the job: one that reached the real run would fail, not run Flink."""
    def refuse(archive, **kwargs):
        raise AssertionError("the real run (endpoint + Flink job) was started")

    monkeypatch.setattr(ev, "run_through_system", refuse)


def _sqs(url: str):
    import boto3
    from botocore.config import Config

    # No retries: the error the collector sees is one that outlasted them in a run.
    return boto3.client("sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}))


@pytest.fixture()
def queue(aws_endpoint, unique_name):
    sqs = _sqs(aws_endpoint.url)
    # 1 s visibility: a message whose delete failed comes back within the test.
    url = sqs.create_queue(QueueName=unique_name("collector"), Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    yield sqs, url
    sqs.delete_queue(QueueUrl=url)


def _send(sqs, url, n, start=0):
    for i in range(start, start + n):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": f"ev-{i}", "detail-type": "x", "detail": {}}))


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.aws
def test_a_failed_delete_loses_nothing_and_counts_the_error_and_the_redelivery_once(aws_endpoint, queue):
    sqs, url = queue
    with FaultProxy(aws_endpoint.url) as proxy:
        proxy.set_mode(DELETE_BATCH, "error", max_injections=1)
        observer = ev.BusObserver(_sqs(proxy.url), url).start()
        try:
            _send(sqs, url, 3)
            assert _wait(lambda: len(observer.events) >= 3), "the batch whose delete failed is kept"
            _send(sqs, url, 2, start=3)          # the collector goes on after the error
            assert _wait(lambda: len(observer.events) >= 5), "the collector survived the error"
            time.sleep(2.5)                      # a redelivery would be back by now
        finally:
            observer.stop()
    assert sorted(e["id"] for e in observer.events) == [f"ev-{i}" for i in range(5)], "each event once"
    stats = observer.stats()
    assert stats["errors"] == 1 and stats["errors_by_call"] == {"delete_message_batch": 1}
    assert "InternalFailure" in stats["last_error"] and stats["died"] is None and not observer.dead
    assert stats["redeliveries_skipped"] >= 1
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") is None, "deleted after all"


@pytest.mark.aws
def test_a_failing_callback_and_an_unreadable_message_keep_the_collector_going(aws_endpoint, queue):
    sqs, url = queue
    seen = []

    def on_event(event):
        seen.append(event["id"])
        if event["id"] == "ev-0":
            raise RuntimeError("progress bar closed")

    observer = ev.BusObserver(_sqs(aws_endpoint.url), url, on_event).start()
    try:
        _send(sqs, url, 1)
        sqs.send_message(QueueUrl=url, MessageBody="not json")
        _send(sqs, url, 2, start=1)
        assert _wait(lambda: len(observer.events) == 3), "the collector survived the callback's error"
    finally:
        observer.stop()
    assert seen == ["ev-0", "ev-1", "ev-2"]
    stats = observer.stats()
    assert stats["errors_by_call"] == {"on_event": 1} and stats["unreadable_messages"] == 1
    assert stats["unreadable_examples"] == ["not json"]


class _Job:
    """The job's handle as the drain sees it (only its status)."""

    def __init__(self, state="RUNNING"):
        self.state, self.failure = state, None

    def status(self):
        return f"JobStatus.{self.state}"


class _Stop(BaseException):
    """Something no handler of the collector foresaw."""


@pytest.mark.aws
def test_a_dead_collector_ends_the_drain_as_incomplete_instead_of_scoring_after_the_quiet(aws_endpoint, queue):
    sqs, url = queue

    def on_event(event):
        raise _Stop("unforeseen")

    observer = ev.BusObserver(_sqs(aws_endpoint.url), url, on_event)
    hook, threading.excepthook = threading.excepthook, lambda args: None
    try:
        observer.start()
        _send(sqs, url, 1)
        assert _wait(lambda: observer.dead)
    finally:
        threading.excepthook = hook
    began = time.monotonic()
    reasons = ev.drain(observer, _Job(), lambda: 30.0, 60.0, lambda text: None, poll_s=0.05)
    assert time.monotonic() - began < 5.0, "not after the settle time"
    assert len(reasons) == 1 and "collector stopped" in reasons[0] and "_Stop: unforeseen" in reasons[0]


@pytest.mark.aws
def test_the_drain_limit_and_a_stopped_job_are_reported_not_scored_as_complete(aws_endpoint, queue):
    sqs, url = queue
    observer = ev.BusObserver(_sqs(aws_endpoint.url), url).start()
    stop = threading.Event()

    def trickle():                          # a job still sending when the limit runs out
        i = 0
        while not stop.is_set():
            _send(sqs, url, 1, start=i)
            i += 1
            time.sleep(0.3)

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        reasons = ev.drain(observer, _Job(), lambda: 2.0, 3.0, lambda text: None, poll_s=0.1)
        assert len(reasons) == 1 and reasons[0].startswith("cut short: bus events were still arriving")
        stop.set()
        sender.join()
        assert ev.drain(observer, _Job("FAILED"), lambda: 30.0, 60.0, lambda text: None,
                        poll_s=0.1) == ["the job stopped while draining: FAILED"]
        # Quiet for the settle time: drained, nothing to report.
        assert ev.drain(observer, _Job(), lambda: 2.0, 30.0, lambda text: None, poll_s=0.1) == []
    finally:
        stop.set()
        observer.stop()


class _Restarting(_Job):
    """A job in a restart loop: RESTARTING, then RUNNING for a moment, and so on."""

    def __init__(self, states):
        super().__init__()
        self.states = iter(states)

    def status(self):
        self.state = next(self.states, self.state)
        return super().status()


def test_a_job_seen_restarting_is_reported_not_scored_as_drained():
    """A failing job that Flink restarts looks merely quiet: the drain took the quiet for the end
    and the run was scored as complete, with fewer alerts."""
    class Quiet:                             # a queue that answers, empty
        def receive_message(self, **kw):
            time.sleep(0.05)
            return {}

    observer = ev.BusObserver(Quiet(), "q").start()
    observer.events.append({"id": "one event already in"})
    try:
        watch = ev.JobWatch(_Restarting(["RUNNING", "RESTARTING", "RUNNING", "RESTARTING", "RUNNING"]),
                            every_s=0.0)
        reasons = ev.drain(observer, watch.handle, lambda: 0.5, 30.0, lambda text: None, poll_s=0.05, watch=watch)
        steady = ev.drain(observer, _Job(), lambda: 0.5, 30.0, lambda text: None, poll_s=0.05)
    finally:
        observer.stop()
    assert len(reasons) == 1 and "RESTARTING (2x)" in reasons[0], reasons
    assert steady == []


def test_no_event_at_all_within_the_limit_is_reported_too():
    class Idle:                              # a queue that answers, empty
        def receive_message(self, **kw):
            time.sleep(0.05)
            return {}

    observer = ev.BusObserver(Idle(), "q").start()
    try:
        reasons = ev.drain(observer, _Job(), lambda: 1.0, 1.0, lambda text: None, poll_s=0.05)
    finally:
        observer.stop()
    assert len(reasons) == 1 and reasons[0].startswith("no bus event at all in 1 s")


# --- evaluate(): labels before the run, events before scoring ------------------------------------

T = 1793620800.0      # 2026-11-02T12:00:00Z


def _composite(editor, ws, problem_type="LATENCY_ISSUE", window=300.0):
    return {"source": "adops.analytics", "detail-type": "Composite Anomaly Detected", "id": f"{editor}-{ws}",
            "detail": {"incident_id": f"inc-{editor}-{ws}", "editor_id": editor, "problem_type": problem_type,
                       "window_start": iso(ws), "window_end": iso(ws + window), "severity": "HIGH"}}


def _label(**over):
    return json.dumps({"incident_id": "a", "scope": "editor", "problem_type": "LATENCY_ISSUE",
                       "start": iso(T), "end": iso(T + 1800), "editor_id": "e-1", **over}) + "\n"


@pytest.fixture()
def stub_run(monkeypatch):
    """run_through_system without the job: records that it ran, returns these events."""
    calls: list[dict] = []

    def fake(archive, **kwargs):
        calls.append(kwargs)
        if kwargs.get("before_replay"):
            kwargs["before_replay"]()
        return ev.RunResult([_composite("e-1", T)], {}, ev.ArchiveFacts(), {}, "RUNNING", "", window_s=300.0)

    monkeypatch.setattr(ev, "run_through_system", fake)
    return calls


def test_bad_labels_fail_before_the_run_starts(tmp_path, stub_run):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(_label(start=1793620800))               # epoch seconds
    with pytest.raises(ValueError, match=r"labels.jsonl:1: start 1793620800 is not a plausible time"):
        ev.evaluate(tmp_path, labels)
    assert stub_run == [], "the run must not start on labels that cannot be scored"


def test_labels_written_while_the_job_starts_are_checked_before_the_replay(tmp_path, stub_run):
    labels = tmp_path / "labels.jsonl"
    written = []

    def generated():                          # make run: the scenario is ready when the replay starts
        labels.write_text(_label(problem_type="LATENCY"))
        written.append(True)

    with pytest.raises(ValueError, match="labels.jsonl:1: .*problem_type must be one of"):
        ev.evaluate(tmp_path, labels, labels_later=True, before_replay=generated)
    assert written == [True] and len(stub_run) == 1


def test_the_events_are_written_before_scoring_so_a_scoring_error_keeps_them(tmp_path, stub_run):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(_label())
    broken_scenario = tmp_path / "scenario.json"
    broken_scenario.write_text("{not json")
    events_path = tmp_path / "out" / "bus_events.jsonl"
    with pytest.raises(ValueError) as info:
        ev.evaluate(tmp_path, labels, scenario_json=broken_scenario, events_path=events_path)
    assert [json.loads(l)["id"] for l in events_path.read_text().splitlines()] == [f"e-1-{T}"]
    assert any(f"--rescore {events_path}" in note for note in info.value.__notes__)


def test_an_incomplete_run_says_so_in_the_figures_and_the_headline(tmp_path, monkeypatch):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(_label())
    monkeypatch.setattr(ev, "run_through_system", lambda archive, **kw: ev.RunResult(
        [_composite("e-1", T)], {}, ev.ArchiveFacts(), {}, "RUNNING", "", window_s=300.0,
        incomplete=["the bus collector stopped (ConnectionError: x) after 1 events"]))
    report = ev.evaluate(tmp_path, labels)
    assert report["run_complete"] is False and report["run"]["complete"] is False
    assert report["run_incomplete"] == ["the bus collector stopped (ConnectionError: x) after 1 events"]
    assert ev.headline(report).startswith("INCOMPLETE RUN: the figures below are scored on part of")


# --- the job's window ----------------------------------------------------------------------------

def test_the_scorer_uses_the_jobs_window():
    assert ev.job_window_s([]) == 300.0
    assert ev.job_window_s(["processing.window.size.s=60"]) == 60.0
    # A 60 s job's window [12:32, 12:33) after a 30 min incident: two of its windows late, beyond a
    # grace of one 60 s window, but inside one of 300 s, so a scorer that ignored the job's window
    # would count it as the detection.
    labels = [Incident("a", "editor", "LATENCY_ISSUE", T, T + 1800, editor_id="e-1")]
    late = [_composite("e-1", T + 1920, window=60.0)]
    result = ev.RunResult(late, {}, ev.ArchiveFacts(), {}, "RUNNING", "", window_s=60.0)
    report = ev.score_run(labels, result)
    assert report["window_seconds"] == 60.0 and report["detected"] == 0 and report["false_alarm_alerts"] == 1
    as_if_300 = ev.score_run(labels, ev.RunResult(late, {}, ev.ArchiveFacts(), {}, "RUNNING", "", window_s=300.0))
    assert as_if_300["detected"] == 1   # the case the test tells apart


@pytest.mark.parametrize("override, message", [
    # passed the old check (the window only) and failed after the endpoint, the stack and the scenario
    ("processing.detector=nope", "unknown detector 'nope'"),
    ("classifier.rate_period_s=0", "rate_period_s=0.0 must be a positive number"),
    ("job.checkpoint.interval.ms=5", "checkpoint.interval.ms=5"),
    ("classifier.bogus=1", "unknown classifier config keys: bogus"),
    # won over the evaluation's own: no dead-letter files to read back, dead letters counted as windowed
    ("deadletter.sink=kinesis", "deadletter.sink: the evaluation sets these itself"),
    ("kinesis.endpoint.url=http://127.0.0.1:9", "kinesis.endpoint.url: the evaluation sets these itself"),
    # the boto3 Kinesis source's own settings (the source the evaluation runs)
    ("job.parallelism=200", "--source kinesis-local runs at most 128"),
    ("kinesis.poll.interval.ms=0", "kinesis.poll.interval.ms"),
    ("kinesis.max.records.per.get=0", "kinesis.max.records.per.get"),
])
def test_the_cli_checks_the_jobs_settings_before_anything_starts(tmp_path, capsys, monkeypatch, override, message):
    from flink_jobs import run_local

    started = []
    monkeypatch.setattr(ev, "run_through_system", lambda *a, **kw: started.append(a))
    for main in (ev.main, run_local.main):
        with pytest.raises(SystemExit) as info:
            main(["--out", str(tmp_path / "r"), "--set", override])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert started == []


def test_the_cli_refuses_a_window_of_its_own(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        ev.main(["--out", str(tmp_path / "r.json"), "--window", "60"])
    assert info.value.code == 2
    assert "--set processing.window.size.s=N" in capsys.readouterr().err


# --- --rescore ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """What make run leaves: scenario/, summary.json (no events), bus_events.jsonl."""
    out = tmp_path_factory.mktemp("run")
    archive = out / "scenario"
    generate(Scenario(editors=3, partners=2, hours=3.0, seed=5, editor_cadence_s=(60.0, 90.0),
                      partner_cadence_s=(120.0, 180.0), warmup_hours=1.0), archive)
    label = json.loads((archive / "labels.jsonl").read_text().splitlines()[0])
    editor = label.get("editor_id") or label["editors"][0]
    ws = parse_time(label["start"]) // 300 * 300 + 300
    events = [_composite(editor, ws, label["problem_type"])]
    (out / "bus_events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (out / "summary.json").write_text(json.dumps({"window_seconds": 300.0, "run_complete": True,
                                                  "run_incomplete": [],
                                                  "run": {"archive": str(archive),
                                                          "labels": str(archive / "labels.jsonl")}}))
    return out


def test_rescore_takes_the_run_folder_or_its_events_file(run_folder, tmp_path, capsys):
    for source in (run_folder, run_folder / "bus_events.jsonl"):
        out = tmp_path / "rescored.json"
        assert ev.main(["--rescore", str(source), "--out", str(out)]) == 0
        report = json.loads(out.read_text())
        assert report["detected"] == 1 and report["alerts"] == 1 and len(report["events"]) == 1
        assert report["rescored"]["labels"].endswith("labels.jsonl")
    assert "detected 1" in capsys.readouterr().out


def test_rescore_of_the_summary_says_where_the_events_are(run_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        ev.main(["--rescore", str(run_folder / "summary.json"), "--out", str(tmp_path / "r.json")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "holds no events (make run's summary.json is written without them)" in err
    assert str(run_folder / "bus_events.jsonl") in err


def test_rescore_of_an_incomplete_run_stays_incomplete(run_folder, tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "bus_events.jsonl").write_text((run_folder / "bus_events.jsonl").read_text())
    summary = json.loads((run_folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "run_complete": False,
                                                     "run_incomplete": ["cut short: ..."]}))
    out = tmp_path / "r.json"
    assert ev.main(["--rescore", str(folder), "--out", str(out)]) == ev.EXIT_INCOMPLETE
    assert json.loads(out.read_text())["run_incomplete"] == ["cut short: ..."]


# --- samples the job did not window ------------------------------------------------------------

def _metric(ms, editor="e-1", partner=None, value=1.0):
    record = {"editor_id": editor, "metric": "bid_rate" if partner else "rpm", "value": value, "timestamp": ms}
    return {**record, "partner": partner} if partner else record


def test_samples_the_job_dead_lettered_or_dropped_late_are_taken_back(tmp_path):
    """scoring.detects: only samples a window of the job held. The job's own outputs say which it
    did not (lateness is its watermark's verdict). A letter takes back only a sample its record gave
    (scoring.sample_key), and only this run's bytes of the outputs count (the writers append)."""
    from connectors.archive import METRICS, ArchivedRecord
    from connectors.deadletter.records import dead_letter_json

    T_MS = 1_793_520_000_000
    kept, late, duplicate = _metric(T_MS + 1000), _metric(T_MS + 2000), _metric(T_MS + 3000)
    partner_sample = _metric(T_MS + 1000, partner="p-1")
    wrong = _metric(T_MS + 4000, partner="p-1", value="oops")          # gave no sample: WRONG_TYPE
    no_metric = {"editor_id": "e-1", "timestamp": T_MS + 1000}          # gave none either: MISSING_FIELD
    no_editor = {"metric": "bid_rate", "partner": "p-1", "value": 0.5, "timestamp": T_MS + 1000}
    records = [kept, late, duplicate, duplicate, partner_sample, wrong, no_metric, no_editor]
    facts = ev.ArchiveFacts()
    for _ in facts.observe(ArchivedRecord(METRICS, r, json.dumps(r)) for r in records):
        pass
    assert facts.samples() == {"editor:e-1": [T_MS / 1000 + s for s in (1, 1, 2, 3, 3)], "partner:p-1": [T_MS / 1000 + 1]}
    outputs = {"dead_letters": tmp_path / "dead-letters", "late": tmp_path / "late"}
    for folder in outputs.values():
        folder.mkdir()
    letter = lambda code, record: dead_letter_json(code, "why", "metrics", json.dumps(record)) + "\n"
    late_file, dead_file = outputs["late"] / "dead-letters-late-0.jsonl", outputs["dead_letters"] / "d-1.jsonl"
    late_file.write_text(letter("LATE_RECORD", kept))                  # an earlier run's line
    before = ev.output_sizes(outputs.values())
    with open(late_file, "a") as f:
        f.write(letter("LATE_RECORD", late))
    dead_file.write_text(letter("DUPLICATE_RECORD", duplicate) + letter("WRONG_TYPE", wrong)
                         + letter("MISSING_FIELD", no_metric) + letter("MISSING_FIELD", no_editor)
                         + "not json\n" + dead_letter_json("INVALID_JSON", "why", "metrics", "{oops") + "\n")
    after = ev.output_sizes(outputs.values())
    with open(late_file, "a") as f:                                    # a later run's line, then half of one
        f.write(letter("LATE_RECORD", partner_sample))
    with open(dead_file, "a") as f:                                    # its newline not yet written
        f.write(letter("DUPLICATE_RECORD", kept)[:-1])
    assert facts.leave_out_unwindowed(outputs.values(), before, after) == {"LATE_RECORD": 1, "DUPLICATE_RECORD": 1}
    # the first copy of the duplicate stays (the job windowed it), and so does every other sample
    assert facts.samples() == {"editor:e-1": [T_MS / 1000 + s for s in (1, 1, 3)], "partner:p-1": [T_MS / 1000 + 1]}
    # while the run is still writing (no end given), a line without its newline yet is not read
    assert facts.leave_out_unwindowed([outputs["dead_letters"]], after) == {"LATE_RECORD": 1, "DUPLICATE_RECORD": 1}
    assert facts.samples()["editor:e-1"] == [T_MS / 1000 + s for s in (1, 1, 3)]


def test_editor_days_span_the_samples_the_job_windowed(tmp_path):
    """One record stamped in 9999 (dead-lettered FUTURE_TIMESTAMP), one in 1970 (epoch seconds: late)
    and an editor whose only record the job refused: the editor-days ran to millions, and the false
    alarms per editor-day to 0. They now span what is left once the job's letters are taken back."""
    from connectors.archive import METRICS, ArchivedRecord
    from connectors.deadletter.records import dead_letter_json

    T_MS = 1_793_520_000_000
    records = [_metric(T_MS + i * 60_000) for i in range(121)]                       # two hours of e-1
    future, seconds = _metric(T_MS) | {"timestamp": "9999-01-01T00:00:00Z"}, _metric(T_MS) | {"timestamp": 1_793_520}
    refused = {"editor_id": "e-2", "metric": "rpm", "value": "oops", "timestamp": T_MS}
    facts = ev.ArchiveFacts()
    list(facts.observe(ArchivedRecord(METRICS, r, json.dumps(r)) for r in [*records, future, seconds, refused]))
    (tmp_path / "late").mkdir()
    (tmp_path / "late" / "l.jsonl").write_text(
        dead_letter_json("FUTURE_TIMESTAMP", "why", "metrics", json.dumps(future)) + "\n"
        + dead_letter_json("LATE_RECORD", "why", "metrics", json.dumps(seconds)) + "\n")
    facts.leave_out_unwindowed([tmp_path / "late"])
    assert facts.editors == {"e-1"} and facts.first_ms == T_MS and facts.last_ms == T_MS + 120 * 60_000
    assert facts.editor_days() == pytest.approx(2 / 24)


def test_a_record_longer_than_the_jobs_payload_limit_gives_no_sample():
    """OVERSIZED_RECORD: its dead letter's raw is cut, so it could not be taken back."""
    from connectors.archive import METRICS, ArchivedRecord

    record = {**_metric(1_793_520_000_000), "dimensions": {"pad": "x" * 200}}
    facts = ev.ArchiveFacts(max_payload_chars=100)
    list(facts.observe([ArchivedRecord(METRICS, record, json.dumps(record))]))
    assert facts.samples() is None and facts.records[METRICS] == 1


def _events_and_facts(folder: Path, run_folder: Path, **facts) -> Path:
    summary = json.loads((run_folder / "summary.json").read_text())
    events = [json.loads(line) for line in (run_folder / "bus_events.jsonl").read_text().splitlines()]
    return ev.write_events(folder / "eval.events.jsonl", events, {
        "window_seconds": 300.0, "run_complete": True, "run_incomplete": [], "run": summary["run"], **facts})


def test_rescore_of_an_evaluate_events_file_keeps_the_runs_window_and_incompleteness(run_folder, tmp_path):
    """python -m flink_jobs.evaluate writes OUT.events.jsonl before scoring, and beside it the run's
    facts: a rescore of that file (what a scoring error's note proposes) is the run's, not a complete
    run at the configured window."""
    events = _events_and_facts(tmp_path, run_folder, window_seconds=600.0, run_complete=False,
                               run_incomplete=["cut short: ..."])
    assert ev.run_facts_path(events) == tmp_path / "eval.events.run.json"
    out = tmp_path / "r.json"
    assert ev.main(["--rescore", str(events), "--out", str(out)]) == ev.EXIT_INCOMPLETE
    report = json.loads(out.read_text())
    assert report["run_incomplete"] == ["cut short: ..."] and report["window_seconds"] == 600.0


def test_rescore_takes_back_the_samples_the_runs_job_did_not_window(run_folder, tmp_path):
    archive = Path(json.loads((run_folder / "summary.json").read_text())["run"]["archive"])
    late_folder = tmp_path / "late"
    late_folder.mkdir()
    from connectors.deadletter.records import dead_letter_json
    from connectors.replay import merged_archive

    late = [item.record for item in merged_archive(archive) if item.kind == "metrics"][:3]
    (late_folder / "dead-letters-late-0.jsonl").write_text(
        "".join(dead_letter_json("LATE_RECORD", "late", "metrics", json.dumps(r)) + "\n" for r in late))
    events = _events_and_facts(tmp_path, run_folder, run={
        **json.loads((run_folder / "summary.json").read_text())["run"],
        "job_outputs": {"dead_letters": str(tmp_path / "none"), "late": str(late_folder)}})
    out = tmp_path / "r.json"
    assert ev.main(["--rescore", str(events), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rescored"]["samples_not_windowed"] == {"LATE_RECORD": 3}


def test_a_run_folder_rescored_from_elsewhere_finds_its_archive_and_its_jobs_outputs(run_folder, tmp_path,
                                                                                     monkeypatch):
    """make run writes its paths as it was given them, relative to where it ran (reports/run-X/...).
    Rescored from another folder, the job's outputs were silently not found, so the samples the job
    did not window counted as windowed; now they are looked for under the run's folder too."""
    import shutil

    from connectors.deadletter.records import dead_letter_json
    from connectors.replay import merged_archive

    run = tmp_path / "reports" / "run-X"
    shutil.copytree(run_folder, run)
    late = [item.record for item in merged_archive(run / "scenario") if item.kind == "metrics"][:3]
    (run / "work" / "late").mkdir(parents=True)
    late_file = run / "work" / "late" / "dead-letters-late-0.jsonl"
    late_file.write_text("".join(dead_letter_json("LATE_RECORD", "late", "metrics", json.dumps(r)) + "\n"
                                 for r in late))
    as_written = "reports/run-X/work/late/dead-letters-late-0.jsonl"
    (run / "summary.json").write_text(json.dumps({"window_seconds": 300.0, "run_complete": True, "run": {
        "archive": "reports/run-X/scenario", "labels": "reports/run-X/scenario/labels.jsonl",
        "job_outputs": {"dead_letters": "reports/run-X/work/dead-letters", "late": "reports/run-X/work/late",
                        "bytes_before_run": {}, "bytes_after_run": {as_written: late_file.stat().st_size}}}}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = tmp_path / "r.json"
    assert ev.main(["--rescore", str(run), "--out", str(out)]) == 0
    rescored = json.loads(out.read_text())["rescored"]
    assert rescored["samples_not_windowed"] == {"LATE_RECORD": 3}
    assert rescored["job_outputs_missing"] == ["reports/run-X/work/dead-letters"]     # said, not silent


def test_unreadable_run_facts_beside_the_events_are_an_error_not_ignored(run_folder, tmp_path):
    events = _events_and_facts(tmp_path, run_folder)
    ev.run_facts_path(events).write_text("{not json")
    with pytest.raises(ev.RescoreError, match=r"eval.events.run.json: the run's facts beside its events are not JSON"):
        ev.read_run_events(events)


def test_the_cli_keeps_its_work_folder_next_to_the_report(tmp_path, capsys, monkeypatch):
    """Without --work-dir, the run's state and logs go to OUT's name with .work (they were a new
    /tmp/adops-eval-* folder per run, never removed). A second run with the same --out is refused
    before anything starts, and the earlier run's files, which its report names (and maybe the
    scenario this run would replay), are left as they are."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"incident_id": "i-1", "scope": "editor", "problem_type": "DEMAND_ISSUE",
                                  "start": "2026-11-02T13:00:00Z", "end": "2026-11-02T14:00:00Z",
                                  "editor_id": "e-001"}) + "\n")
    handed = []

    class Stop(Exception):
        pass

    def fake_evaluate(*args, work_dir, **kwargs):
        handed.append(Path(work_dir))
        (Path(work_dir) / "checkpoints").mkdir()
        raise Stop

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    argv = ["--archive", str(tmp_path), "--labels", str(labels), "--out", str(tmp_path / "day1.json")]
    with pytest.raises(Stop):
        ev.main(argv)
    assert handed == [tmp_path / "day1.work"]
    with pytest.raises(SystemExit) as info:
        ev.main(argv)
    assert info.value.code == 2 and "day1.work holds an earlier run's files" in capsys.readouterr().err
    assert len(handed) == 1 and (tmp_path / "day1.work" / "checkpoints").is_dir()
