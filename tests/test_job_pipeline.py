"""The streaming job end to end on the mini-cluster: Kinesis (embedded endpoint) -> job -> EventBridge -> SQS.

Two Flink job runs for the whole module (each costs ~10-40 s to start here):

run A (fresh, TRIM_HORIZON): scripted editors with 14 h of normal history, then
  one incident window each -> composite anomalies with the right problem type,
  no event for normal seasonal traffic, a partner outage -> Partner Health Check,
  a partner's own status report, a flag flipped for the partner's traffic (no editor) and a
  deployment of the whole ad server (no editor, no partner) -> suspected causes of the
  composites of the editors they reach,
  a severity-8 finding -> Security Incident, bad records -> dead letters with
  reason codes, a record behind the watermark -> late output (LATE_RECORD), a late event's
  copy -> DUPLICATE_RECORD.
  Stopped with a savepoint.
run B (restored from that savepoint at parallelism 1, CloudWatch metrics turned off): new
  records only are read — nothing of run A is re-read (no dead letter, late record or incident
  appears twice), so the Kinesis positions kept in keyed state followed their key groups to the
  one subtask left.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest

from flink_jobs import job_scenario as js
from detectors.incident import incident_id

# Generous limits: on a loaded 2-core machine a job start alone took minutes here.
pytestmark = [pytest.mark.flink, pytest.mark.aws, pytest.mark.timeout(1800)]


def put_records(stream: str, records: list[tuple[str, str]]) -> None:
    """(partition key, data) in order; PutRecords batches of 100, failed entries retried."""
    kinesis = boto3.client("kinesis")
    for i in range(0, len(records), 100):
        batch = [{"PartitionKey": k, "Data": d.encode("utf-8")} for k, d in records[i:i + 100]]
        for _ in range(10):
            resp = kinesis.put_records(StreamName=stream, Records=batch)
            if not resp.get("FailedRecordCount"):
                break
            batch = [b for b, r in zip(batch, resp["Records"]) if "ErrorCode" in r]
            time.sleep(0.2)
        else:
            raise AssertionError("PutRecords kept failing")


class Observed:
    """Everything that reached the bus, via the catch-all observation queue (which drain deletes)."""

    def __init__(self, drain, queue_url: str):
        self.drain, self.queue_url, self.events = drain, queue_url, []

    def poll(self, seconds: float) -> None:
        self.events += self.drain(self.queue_url, 10_000, timeout=seconds)

    def until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            self.poll(min(5.0, max(0.5, deadline - time.monotonic())))
        return predicate(self)

    def of_type(self, detail_type: str) -> list[dict]:
        return [e for e in self.events if e.get("detail-type") == detail_type]


def read_lines(directory: Path) -> list[dict]:
    out = []
    for f in sorted(directory.glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


@pytest.fixture(scope="module")
def scenario(core_stack, drain_sqs, tmp_path_factory, aws_endpoint):
    return run_scenario(core_stack, drain_sqs, aws_endpoint.url, tmp_path_factory.mktemp("job-state"))


def _log(msg: str) -> None:
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _private_streams(endpoint_url: str) -> tuple[str, str]:
    import boto3

    kinesis = boto3.client("kinesis", endpoint_url=endpoint_url, region_name="us-east-1")
    suffix = time.time_ns()
    names = (f"job-pipeline-metrics-{suffix}", f"job-pipeline-events-{suffix}")
    for name, shards in zip(names, (2, 1)):
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return names


def run_scenario(core_stack, drain_sqs, endpoint_url: str, state: Path) -> dict:
    from flink_jobs.config import JobConfig
    from flink_jobs.main import start_job

    dead_dir, late_dir = state / "dead-letters", state / "late"
    # Streams of its own: the session's core-stack streams also carry other tests'
    # replays (test_evaluation_e2e), which a TRIM_HORIZON reader would consume too.
    metrics_stream, events_stream = _private_streams(endpoint_url)
    overrides = [
        "job.parallelism=2",
        "job.checkpoint.interval.ms=2000",
        f"job.checkpoint.dir={state / 'checkpoints'}",
        f"kinesis.endpoint.url={endpoint_url}",
        f"kinesis.metrics.stream.name={metrics_stream}",
        f"kinesis.events.stream.name={events_stream}",
        "kinesis.start.position=TRIM_HORIZON",
        f"eventbridge.endpoint.url={endpoint_url}",
        f"eventbridge.bus.name={core_stack['bus_name']}",
        "deadletter.sink=file",
        f"deadletter.path={dead_dir}",
        f"deadletter.late.path={late_dir}",
        "processing.idle.timeout.s=3",
        "cloudwatch.metrics.enabled=true",   # as in the Managed Flink template (off in the local defaults)
    ]
    cfg = JobConfig.load(environ={}, overrides=overrides)
    observed = Observed(drain_sqs, core_stack["observation_queues"]["all-adops-events"])
    start = js.window_start(time.time())
    records, incidents = [], {}
    for editor in js.INCIDENTS:
        recs, incidents[editor] = js.editor_records(editor, start)
        records += [(editor, json.dumps(r)) for r in recs]
    for editor in js.PARTNER_EDITORS:
        recs, _ = js.editor_records(editor, start, partner=js.PARTNER)
        records += [(editor, json.dumps(r)) for r in recs]
    # Time order across editors: a shard's records must not run ahead of each other by more
    # than the watermark delay, or the slower editor's records would be late.
    records.sort(key=lambda kv: js.timestamp_ms(json.loads(kv[1])))
    bad = js.bad_records(incidents["e-normal"])
    incident_start = incidents["e-pricing"]
    events = [
        {"event_type": "config_change", "timestamp": (incident_start - 240) * 1000, "editor_id": "e-pricing",
         "details": {"change": "floor price raised to 3.00"}},
        {"event_type": "security_finding", "timestamp": (incident_start + 30) * 1000, "editor_id": "e-normal",
         "severity": 8, "details": {"finding_id": "sec-test-0001", "title": "credential stuffing on ad server"}},
        {"event_type": "security_finding", "timestamp": (incident_start + 40) * 1000, "editor_id": "e-normal",
         "severity": 3, "details": {"finding_id": "sec-test-low", "title": "low severity noise"}},
        {"event_type": "nonsense", "timestamp": (incident_start + 50) * 1000},
        unpaired_surrogate_event(incident_start),
        # partner-wide: names no editor; the partner operator passes it to the partner's editors
        {"event_type": "partner_status", "timestamp": (incidents["e-demand"] + 60) * 1000, "partner": js.PARTNER,
         "details": {"status": "DEGRADED", "message": "elevated bid timeouts"}},
        # a change made for the partner, naming no editor: it goes the same way
        partner_flag(incidents["e-demand"]),
        # platform-wide: names neither an editor nor a partner; every editor gets it
        platform_deployment(incidents["e-latency"]),
    ]

    handle = start_job(cfg, "kinesis-local")
    _log(f"run A started: job {handle.job_id}")
    try:
        put_records(events_stream, [(e.get("editor_id", "x"), json.dumps(e)) for e in events])
        put_records(metrics_stream, records + [("e-normal", raw) for raw, _ in bad])
        wanted = {"e-demand", "e-latency", "e-pricing", *js.PARTNER_EDITORS}
        got_all = observed.until(
            lambda o: wanted <= {e["detail"]["editor_id"] for e in o.of_type("Composite Anomaly Detected")}
            and o.of_type("Security Incident Detected") and o.of_type("Partner Health Check"),
            timeout=600)
        _log(f"run A: expected events seen: {got_all}; observed {len(observed.events)} events: "
             f"{[(e.get('detail-type'), e['detail'].get('editor_id') or e['detail'].get('partner')) for e in observed.events]}")
        # A record far behind the watermark, read after the watermark has moved.
        late = {"editor_id": "e-normal", "metric": "rpm", "value": 2.5, "timestamp": (start + 60) * 1000}
        late_event = {"event_type": "config_change", "timestamp": (start + 60) * 1000, "editor_id": "e-normal",
                      "details": {"change": "late"}}
        put_records(metrics_stream, [("e-normal", json.dumps(late))])
        # twice: the copy is a duplicate of an event the job uses, not a second late one
        put_records(events_stream, [("e-normal", json.dumps(late_event))] * 2)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(read_lines(late_dir) if late_dir.exists() else []) < 2:
            time.sleep(1)
        observed.poll(3)
        _log(f"run A: status {handle.status()}, stopping with a savepoint")
        savepoint = handle.stop(savepoint=True)
        _log(f"run A: savepoint {savepoint}")
        run_a = {"observed": list(observed.events), "dead": read_lines(dead_dir),
                 "late": read_lines(late_dir) if late_dir.exists() else [], "savepoint": savepoint,
                 "got_all": got_all, "operators": handle.operators}
    except BaseException:
        try:
            handle.cancel()
        finally:
            raise

    # Run B: restored. New input = one more normal window for every editor + one new bad record.
    more = []
    w = js.WARMUP_WINDOWS + 1 + js.AFTER_WINDOWS
    for editor in js.INCIDENTS:
        recs, _ = js.editor_records(editor, start, windows=range(w, w + 2))
        more += [(editor, json.dumps(r)) for r in recs]
    more.sort(key=lambda kv: js.timestamp_ms(json.loads(kv[1])))
    new_bad = '{"editor_id": "e-restart", "metric": "rpm", "value": "restart"'
    # Run B with the CloudWatch metrics turned off: a setting that must not change the job's
    # operators, or the savepoint would not restore whole (flink_jobs/restore_points.py). And
    # rescaled, as Managed Flink's autoscaling restores a snapshot at another parallelism: Flink
    # redistributes the keyed state by key group (the reliability harness's restart_rescale
    # compares 8 simulated hours' incidents with a clean run's after 2 -> 3, or 2 -> 1 with
    # --rescale-to 1).
    cfg_b = JobConfig.load(environ={}, overrides=[*overrides, "cloudwatch.metrics.enabled=false", "job.parallelism=1"])
    handle_b = start_job(cfg_b, "kinesis-local", restore=savepoint)
    try:
        put_records(metrics_stream, more + [("e-normal", new_bad)])
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not any(d["raw"] == new_bad for d in read_lines(dead_dir)):
            time.sleep(1)
        observed.events = []
        observed.poll(8)
        run_b = {"observed": list(observed.events), "dead": read_lines(dead_dir), "late": read_lines(late_dir),
                 "restored_from": handle_b.restored_from, "operators": handle_b.operators,
                 "parallelism": handle_b.settings.parallelism}
    finally:
        handle_b.cancel()
    return {"a": run_a, "b": run_b, "incidents": incidents, "bad": bad, "late": late, "late_event": late_event,
            "new_bad": new_bad, "start": start}


def partner_flag(incident_start_s: int) -> dict:
    """A feature flag flipped for the partner's traffic 90 s into its outage window: a partner, no editor."""
    return {"event_type": "feature_flag", "timestamp": (incident_start_s + 90) * 1000, "partner": js.PARTNER,
            "details": {"flag": "bid-request-compression", "enabled": True}}


def platform_deployment(incident_start_s: int) -> dict:
    """A deployment of the whole ad server two minutes into the incident window: no editor, no partner."""
    return {"event_type": "deployment", "timestamp": (incident_start_s + 120) * 1000,
            "details": {"service": "ad-server", "version": "2026.12.07-1"}}


def unpaired_surrogate_event(incident_start_s: int) -> dict:
    """A change on the quiet editor whose details hold a lone surrogate: json.dumps writes it as the escape
    "\ud800" (ASCII, valid JSON, no Unicode text). The parse dead-letters it as INVALID_ENCODING."""
    return {"event_type": "config_change", "timestamp": (incident_start_s - 200) * 1000, "editor_id": "e-normal",
            "details": {"change": "note \ud800"}}


def composites(run) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in run["observed"]:
        if e.get("detail-type") == "Composite Anomaly Detected":
            out.setdefault(e["detail"]["editor_id"], []).append(e)
    return out


@pytest.mark.parametrize("editor, problem_type", [
    ("e-demand", "DEMAND_ISSUE"), ("e-latency", "LATENCY_ISSUE"), ("e-pricing", "PRICING_ISSUE")])
def test_incident_window_is_classified(scenario, editor, problem_type):
    assert scenario["a"]["got_all"], "not every expected event reached the bus in time"
    events = composites(scenario["a"]).get(editor, [])
    assert events, f"no composite anomaly for {editor}"
    ws = scenario["incidents"][editor]
    detail = events[0]["detail"]
    assert events[0]["source"] == "adops.analytics"
    assert detail["problem_type"] == problem_type, detail["evidence"]
    assert detail["incident_id"] == incident_id(editor, ws, problem_type)
    assert detail["window_start"] == js._iso(ws) and detail["window_end"] == js._iso(ws + js.WINDOW_S)
    assert isinstance(detail["metrics_affected"], int) and detail["metrics_affected"] >= 1
    assert "rpm" in detail["affected_metrics"]
    rpm = detail["metrics"]["rpm"]
    assert rpm["value"] < rpm["baseline"] and rpm["score"] > 0
    assert detail["revenue_at_risk"] > 0
    # one event per editor and window: every composite of this editor is for the incident window
    assert {e["detail"]["window_start"] for e in events} == {js._iso(ws)}
    # ... so it is the first (and only) composite of its episode (udfs.decisions.composite_episode)
    assert detail["episode"] == {"episode_id": detail["incident_id"], "started_at": detail["window_start"],
                                 "composites": 1, "escalated": False}


def test_suspected_causes_carry_recent_events(scenario):
    detail = composites(scenario["a"])["e-pricing"][0]["detail"]
    causes = detail["suspected_causes"]
    # newest first: the platform's deployment, then its own config change before it
    assert [c["event_type"] for c in causes] == ["deployment", "config_change"]
    assert causes[1]["details"]["change"].startswith("floor price")


def test_a_platform_deployment_is_a_cause_of_every_editors_composite(scenario):
    """An event naming neither an editor nor a partner reaches every editor (udfs/platform_events.py)."""
    deployment = platform_deployment(scenario["incidents"]["e-latency"])
    by_editor = composites(scenario["a"])
    assert set(by_editor) == {"e-demand", "e-latency", "e-pricing", *js.PARTNER_EDITORS}
    for editor, events in by_editor.items():
        cited = [c for c in events[0]["detail"]["suspected_causes"] if c["event_type"] == "deployment"]
        assert [(c["details"], "editor_id" in c, "partner" in c) for c in cited] == \
            [(deployment["details"], False, False)], (editor, events[0]["detail"]["suspected_causes"])
    # and it is the latency incident's linked event: the classifier's corroboration
    latency = by_editor["e-latency"][0]["detail"]
    assert any(line.startswith("linked event: deployment at ") for line in latency["evidence"]), latency["evidence"]


def test_normal_seasonal_traffic_raises_nothing(scenario):
    by_editor = composites(scenario["a"])
    assert "e-normal" not in by_editor
    # 14 h of daily-cycle history on every editor: nothing before the incident windows
    for editor, events in by_editor.items():
        for e in events:
            assert e["detail"]["window_start"] >= js._iso(scenario["incidents"]["e-demand"]), (editor, e["detail"])


def test_partner_outage_is_reported(scenario):
    checks = [e for e in scenario["a"]["observed"] if e.get("detail-type") == "Partner Health Check"]
    assert checks and all(e["source"] == "adops.monitoring" for e in checks)
    bad = [e["detail"] for e in checks if e["detail"]["partner_status"] != "HEALTHY"]
    # the outage window only (the warm-up was healthy and silent) ...
    assert [d["window_start"] for d in bad] == [js._iso(scenario["incidents"]["e-demand"])], bad
    detail = bad[0]
    assert detail["partner"] == js.PARTNER and detail["partner_status"] in ("DEGRADED", "UNHEALTHY")
    assert detail["editors_affected"] == sorted(js.PARTNER_EDITORS)
    assert detail["impact_assessment"]["editors_affected"] == 2
    # ... and one all-clear when it recovered, which names the outage it ends
    healthy = [e["detail"] for e in checks if e["detail"]["partner_status"] == "HEALTHY"]
    assert [d["window_start"] for d in healthy] == [js._iso(scenario["incidents"]["e-demand"] + js.WINDOW_S)]
    assert detail["outage"] == {"outage_id": detail["check_id"], "started_at": detail["window_start"], "checks": 1,
                                "escalated": False, "ended": False}
    assert healthy[0]["outage"] == {**detail["outage"], "ended": True}


def test_the_partners_editors_composites_name_the_partner(scenario):
    """The partner operator's findings reach the editor operator before the outage window's timer
    fires (udfs/correlator.py): each hurt editor's DEMAND_ISSUE names the partner first."""
    by_editor = composites(scenario["a"])
    for editor in js.PARTNER_EDITORS:
        details = [e["detail"] for e in by_editor.get(editor, [])]
        assert [d["problem_type"] for d in details] == ["DEMAND_ISSUE"], (editor, details)
        cause = details[0]["suspected_causes"][0]
        assert (cause["event_type"], cause["partner"], cause["editor_id"]) == ("partner_health", js.PARTNER, editor)
        assert cause["details"]["status"] in ("DEGRADED", "UNHEALTHY")
        assert cause["details"]["partner_status"] in ("DEGRADED", "UNHEALTHY")
        assert f"through {js.PARTNER} (" in details[0]["summary"]
        # the partner's own status report, which names no editor, reached the editors it serves
        reported = [c for c in details[0]["suspected_causes"] if c["event_type"] == "partner_status"]
        assert [(c["partner"], c["details"]["status"], "editor_id" in c) for c in reported] == \
            [(js.PARTNER, "DEGRADED", False)], details[0]["suspected_causes"]
        # and so did the flag flipped for the partner's traffic (udfs.decisions.PARTNER_WIDE_EVENT_TYPES)
        flagged = [c for c in details[0]["suspected_causes"] if c["event_type"] == "feature_flag"]
        assert [(c["partner"], c["details"], "editor_id" in c) for c in flagged] == \
            [(js.PARTNER, partner_flag(scenario["incidents"]["e-demand"])["details"], False)]
    # the other editors have no partner traffic, so nothing names a partner to them
    for editor in ("e-demand", "e-latency", "e-pricing"):
        assert all(c["event_type"] not in ("partner_health", "partner_status") and c.get("partner") is None
                   for e in by_editor[editor] for c in e["detail"]["suspected_causes"])


def test_high_severity_finding_becomes_security_incident(scenario):
    found = [e for e in scenario["a"]["observed"] if e.get("detail-type") == "Security Incident Detected"]
    assert [e["detail"]["finding_id"] for e in found] == ["sec-test-0001"]   # severity 3 is not forwarded
    assert found[0]["source"] == "adops.security" and found[0]["detail"]["severity"] == 8.0
    assert found[0]["detail"]["editor_id"] == "e-normal"


def test_bad_records_land_in_dead_letters_with_reason_codes(scenario):
    dead = scenario["a"]["dead"]
    for raw, code in scenario["bad"]:
        matching = [d for d in dead if d["raw"] == raw[:65536]]
        assert len(matching) == 1, (code, raw[:120], len(matching))
        assert matching[0]["reason_code"] == code, raw[:120]
        assert matching[0]["source"] == "metrics" and matching[0]["reason"]
    assert any(d["reason_code"] == "UNKNOWN_EVENT_TYPE" and d["source"] == "events" for d in dead)
    surrogate = json.dumps(unpaired_surrogate_event(scenario["incidents"]["e-pricing"]))
    assert [(d["reason_code"], d["source"]) for d in dead if d["raw"] == surrogate] == [("INVALID_ENCODING", "events")]
    oversized = [d for d in dead if d["reason_code"] == "OVERSIZED_RECORD"][0]
    assert len(oversized["raw"]) == 65536
    assert oversized["raw_truncated"] is True and oversized["raw_size_chars"] > 70000
    # every line the job wrote fits the documented shape (connectors/schemas/dead_letter_record)
    from connectors.schemas import validator

    check = validator("dead_letter_record")
    assert [(d["reason_code"], e.message) for d in dead for e in check.iter_errors(d)] == []
    # the event time only where the timestamp was read: none for an unreadable one
    assert all("event_time" not in d for d in dead if d["reason_code"] in ("INVALID_TIMESTAMP", "OVERSIZED_RECORD"))


def test_late_record_goes_to_late_output(scenario):
    """A late metric record's window has closed; a late event is still used (a suspected cause), and
    its letter says so."""
    by_source = {d["source"]: d for d in scenario["a"]["late"]}
    assert len(scenario["a"]["late"]) == 2 and set(by_source) == {"metrics", "events"}
    late = [by_source["metrics"]]
    assert json.loads(late[0]["raw"]) == scenario["late"] and json.loads(by_source["events"]["raw"]) == scenario["late_event"]
    assert late[0]["reason_code"] == by_source["events"]["reason_code"] == "LATE_RECORD"
    assert "processing.watermark.delay.s allows" in late[0]["reason"] and "still used" in by_source["events"]["reason"]
    # The event's second copy is a duplicate of an event the job used: a DUPLICATE_RECORD dead letter, not
    # a second LATE_RECORD "still used as a suspected cause" (which it is not: only valid events are read).
    copies = [d for d in scenario["a"]["dead"] if d["raw"] == json.dumps(scenario["late_event"])]
    assert [(d["reason_code"], d["source"]) for d in copies] == [("DUPLICATE_RECORD", "events")]
    from connectors.schemas import validator

    assert list(validator("dead_letter_record").iter_errors(late[0])) == []
    assert late[0]["event_time"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(scenario["late"]["timestamp"] / 1000)))


def test_restored_job_resumes_instead_of_rereading(scenario):
    a, b = scenario["a"], scenario["b"]
    assert a["savepoint"] and b["restored_from"].rstrip("/").endswith(a["savepoint"].split(":", 1)[-1].rstrip("/"))
    assert b["parallelism"] == 1   # run A ran at 2
    # the new bad record was read once ...
    assert sum(d["raw"] == scenario["new_bad"] for d in b["dead"]) == 1
    # ... and nothing of run A was read again: no dead letter, late record or incident twice
    assert len(b["dead"]) == len(a["dead"]) + 1
    assert len(b["late"]) == len(a["late"])
    assert not [e for e in b["observed"] if e.get("detail-type") == "Composite Anomaly Detected"]
    assert not [e for e in b["observed"] if e.get("detail-type") == "Security Incident Detected"]


def test_savepoint_and_checkpoints_record_the_execution_mode(scenario):
    from flink_jobs.restore_points import EXECUTION_MODE_MARKER, local_path, recorded_execution_mode

    # what a restore in the other mode is refused by (tests/test_config.py)
    savepoint = local_path(scenario["a"]["savepoint"])
    assert recorded_execution_mode(str(savepoint)) == "thread"
    job_dirs = [d for d in savepoint.parent.parent.iterdir() if d.is_dir() and d.name != "savepoints"]
    assert len(job_dirs) == 2  # run A and run B
    assert [(d / EXECUTION_MODE_MARKER).read_text().strip() for d in job_dirs] == ["thread", "thread"]


def test_a_restore_point_the_job_cannot_take_whole_is_refused_naming_what_it_lacks(scenario):
    from flink_jobs.config import ConfigError
    from flink_jobs.restore_points import OPERATORS_MARKER, check_restore_operators, local_path, operators_with_state

    savepoint = scenario["a"]["savepoint"]
    operators = json.loads((local_path(savepoint) / OPERATORS_MARKER).read_text())   # run A's job graph
    assert operators == scenario["a"]["operators"]
    stateful = operators_with_state(savepoint)
    assert stateful is not None, "Flink could not read the savepoint's _metadata"
    # What the check guards: the SQL windows and duplicate marking hold state, keyed by topology-hashed ids.
    assert any("WindowAggregate" in operators[i] for i in stateful)
    assert any("OverAggregate" in operators[i] for i in stateful)
    # Run B, with its CloudWatch metrics off and at parallelism 1, had every operator holding state,
    # and took the savepoint whole. Its graph is not run A's: at parallelism 1 the tick sources and
    # what chains to them get other ids (tests/test_job_plan.py), none of them holding state.
    assert set(stateful) <= set(scenario["b"]["operators"])
    assert set(scenario["b"]["operators"]) != set(operators)
    check_restore_operators(savepoint, scenario["b"]["operators"])
    lacking = {i: name for i, name in operators.items() if name != "editor-correlator"}
    with pytest.raises(ConfigError, match=r"state of 1 operator\(s\) this job does not have: editor-correlator\. "
                                          r".*start without --restore"):
        check_restore_operators(savepoint, lacking)


def test_the_agents_metrics_tool_reads_the_window_means_the_job_published(scenario):
    """get_editor_metrics (deploy/lambda), the orchestrator's first check, reads CloudWatch namespace
    AdOps; the job's CloudWatch sink (connectors/cloudwatch) wrote each editor window's means there."""
    import datetime as dt

    from test_deploy_lambda_tools import call

    incident_s = scenario["incidents"]["e-demand"]
    minutes = min(1440, int(time.time() - incident_s) // 60 + 30)
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics",
                        {"editor_id": "e-demand", "minutes": str(minutes), "period_seconds": "300",
                         "metrics": "rpm,fill_rate,bid_latency_ms"})
    assert status == 200, body
    assert body["empty_metrics"] == [], body
    rpm = {dt.datetime.fromisoformat(p["timestamp"]).timestamp(): p["average"] for p in body["metrics"]["rpm"]}
    assert incident_s in rpm, sorted(rpm)
    normal = [v for t, v in rpm.items() if t != incident_s]
    assert len(normal) >= 4
    # The scripted demand drop: rpm x0.45 in the incident window (js.INCIDENTS), one sample a window.
    assert rpm[incident_s] < 0.6 * min(normal), rpm
