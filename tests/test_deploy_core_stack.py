"""The core stack on the embedded endpoint: resources exist, rules route what they should."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.local.observe import incident_workflow_outcomes
from deploy.stepfunctions.validate import PLACEHOLDER

pytestmark = pytest.mark.aws

ASL_DIR = Path(__file__).parents[1] / "deploy" / "stepfunctions"
CORE_WORKFLOW = "critical_incident_workflow.asl.json"
AGENT_WORKFLOW = "critical_incident_workflow_agents.asl.json"
#: How long an "exactly N" check keeps listening after the N arrived, for a duplicate that follows.
DUPLICATE_GRACE_S = 1.5


def composite_detail(incident_id: str, severity: str = "CRITICAL", metrics_affected: int = 3) -> dict[str, Any]:
    return {
        "incident_id": incident_id, "editor_id": "e-001",
        "window_start": "2026-11-01T10:05:00Z", "window_end": "2026-11-01T10:10:00Z",
        "severity": severity, "problem_type": "DEMAND_ISSUE", "category": "DEMAND",
        "metrics_affected": metrics_affected, "affected_metrics": ["rpm", "fill_rate", "revenue"],
        "revenue_at_risk": 1234.56, "summary": f"DEMAND_ISSUE on e-001 ({incident_id})",
    }


def put(bus: str, source: str, detail_type: str, detail: dict[str, Any]) -> None:
    resp = boto3.client("events").put_events(Entries=[{
        "EventBusName": bus, "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
    }])
    assert resp["FailedEntryCount"] == 0, resp


def by_detail(key: str, value: str):
    return lambda body: isinstance(body, dict) and body.get("detail", {}).get(key) == value


def drain_expecting(drain_sqs, queue_url: str, count: int, predicate) -> list[Any]:
    """The ``count`` matching messages and any that follow within DUPLICATE_GRACE_S: an "exactly
    ``count``" assertion on the result then fails on a duplicate instead of never seeing it."""
    found = drain_sqs(queue_url, count, predicate=predicate)
    return found + drain_sqs(queue_url, 1, timeout=DUPLICATE_GRACE_S, predicate=predicate)


def alerts_probe_queue(core_stack) -> str:
    """A new queue subscribed (raw delivery) to the critical-alerts topic: what the topic published from now on."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue_url = sqs.create_queue(QueueName=f"critical-alerts-probe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=core_stack["critical_alerts_topic_arn"], Protocol="sqs", Endpoint=queue_arn,
                  Attributes={"RawMessageDelivery": "true"})
    return queue_url


def test_drain_queue_returns_every_matching_message_it_deleted(aws_endpoint):
    """A duplicate received in the same batch as the expected message is returned, not deleted unseen:
    the "exactly one" checks below rely on it."""
    from deploy.local.observe import drain_queue

    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"drain-probe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[
        {"Id": str(n), "MessageBody": json.dumps({"n": n, "mine": n != 1})} for n in range(3)])
    got = drain_queue(queue_url, 1, timeout=10, predicate=lambda b: b["mine"], endpoint_url=aws_endpoint.url)
    assert sorted(b["n"] for b in got) == [0, 2]
    # Deleted, the one that did not match too.
    assert sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages") is None


def test_core_stack_resources_exist(core_stack):
    kinesis = boto3.client("kinesis")
    metrics = kinesis.describe_stream_summary(StreamName=core_stack["metrics_stream"])["StreamDescriptionSummary"]
    assert core_stack["metrics_stream"] == "adops-metrics-stream"
    assert metrics["OpenShardCount"] == 2  # ShardCount parameter, not the AWS default of 20
    assert metrics["RetentionPeriodHours"] == 168
    assert core_stack["events_stream"] == "adops-events-stream"
    kinesis.describe_stream_summary(StreamName=core_stack["events_stream"])
    kinesis.describe_stream_summary(StreamName=core_stack["dead_letter_stream"])

    events = boto3.client("events")
    assert core_stack["bus_name"] == "adops-production-events"
    rules = {r["Name"] for r in events.list_rules(EventBusName=core_stack["bus_name"])["Rules"]}
    assert {"multi-metric-anomaly", "demand-partner-degradation", "security-incident-detected"} <= rules
    # One queue per alerting rule, plus the catch-all all-adops-events queue (every adops.* event).
    assert set(core_stack["observation_queues"]) == {
        "multi-metric-anomaly", "demand-partner-degradation", "security-incident-detected", "all-adops-events"}

    sfn = boto3.client("stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=core_stack["state_machine_arn"])
    assert machine["name"] == "critical-incident-workflow"


def test_archive_exists_with_30_day_retention(core_stack):
    archive = boto3.client("events").describe_archive(ArchiveName=core_stack["archive_name"])
    assert archive["EventSourceArn"] == core_stack["bus_arn"]
    assert archive["RetentionDays"] == 30


def test_deploy_is_idempotent(aws_endpoint, core_stack):
    from deploy.local.stack import deploy_core_stack

    again = deploy_core_stack(aws_endpoint.url, {"ShardCount": "2", "LocalObservation": "true"})
    assert again == core_stack
    stacks = boto3.client("cloudformation").describe_stacks()["Stacks"]
    assert [s["StackName"] for s in stacks].count("adops-core") == 1


def test_matching_composite_anomaly_reaches_observation_queue(core_stack, drain_sqs):
    incident = f"inc-{uuid.uuid4().hex[:12]}"
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(incident, "HIGH", 3))
    got = drain_expecting(drain_sqs, core_stack["observation_queues"]["multi-metric-anomaly"], 1,
                          by_detail("incident_id", incident))
    assert len(got) == 1
    assert got[0]["source"] == "adops.analytics"
    assert got[0]["detail"]["metrics_affected"] == 3


@pytest.mark.parametrize("severity,metrics_affected", [("LOW", 5), ("CRITICAL", 2), ("MEDIUM", 3)])
def test_non_matching_composite_anomaly_is_not_routed(core_stack, drain_sqs, severity, metrics_affected):
    queue = core_stack["observation_queues"]["multi-metric-anomaly"]
    rejected = f"inc-{uuid.uuid4().hex[:12]}"
    control = f"inc-{uuid.uuid4().hex[:12]}"
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected",
        composite_detail(rejected, severity, metrics_affected))
    # A matching control event sent after it: once the control arrived, the
    # rejected one would have arrived too if the rule had matched it.
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(control, "CRITICAL", 4))
    seen = drain_expecting(drain_sqs, queue, 1, lambda b: b["detail"]["incident_id"] in (rejected, control))
    ids = [b["detail"]["incident_id"] for b in seen]
    assert ids == [control]


def test_rule_started_workflow_execution_succeeds_and_records_incident(core_stack, drain_sqs):
    incident = f"inc-{uuid.uuid4().hex[:12]}"
    started = time.time()
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(incident, "CRITICAL", 3))
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + 30
    execution = None
    while time.monotonic() < deadline:
        mine = [
            d for d in (sfn.describe_execution(executionArn=s["executionArn"])
                        for s in sfn.list_executions(stateMachineArn=core_stack["state_machine_arn"])["executions"])
            if json.loads(d["input"])["detail"]["incident_id"] == incident
        ]
        assert len(mine) <= 1, "one event must start exactly one execution"
        execution = mine[0] if mine else None
        if execution is not None and execution["status"] != "RUNNING":
            break
        time.sleep(0.3)
    assert execution is not None, "the rule did not start an execution"
    assert execution["status"] == "SUCCEEDED", execution
    assert execution["startDate"].timestamp() >= started - 5
    item = boto3.client("dynamodb").get_item(
        TableName=core_stack["incidents_table"], Key={"incident_id": {"S": incident}})["Item"]
    assert item["status"]["S"] == "NOTIFIED"
    assert item["severity"]["S"] == "CRITICAL"


def test_rule_publishes_to_critical_alerts_topic(core_stack, drain_sqs):
    queue_url = alerts_probe_queue(core_stack)
    incident = f"inc-{uuid.uuid4().hex[:12]}"
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(incident, "HIGH", 3))
    # Two publications reach the topic: the rule's own SNS target (the event) and
    # the workflow's NotifyHigh state (a text message naming the incident).
    bodies = drain_expecting(drain_sqs, queue_url, 2, lambda b: incident in json.dumps(b))
    events = [b for b in bodies if isinstance(b, dict)]
    texts = [b for b in bodies if isinstance(b, str)]
    assert len(events) == 1 and events[0]["detail"]["incident_id"] == incident
    assert len(texts) == 1 and texts[0].startswith("HIGH DEMAND_ISSUE on e-001 (3 metrics)")


def partner_detail(check_id: str, status: str, revenue_impact: float) -> dict[str, Any]:
    return {"check_id": check_id, "partner": "partner-x", "partner_status": status,
            "window_start": "2026-11-01T10:05:00Z", "window_end": "2026-11-01T10:10:00Z",
            "impact_assessment": {"revenue_impact": revenue_impact, "editors_affected": 4},
            "editors_affected": ["e-001", "e-002", "e-003", "e-004"], "metrics": {}}


def partner_rule_pattern(events_client) -> dict[str, Any]:
    rule = events_client.describe_rule(Name="demand-partner-degradation", EventBusName="adops-production-events")
    return json.loads(rule["EventPattern"])


def revenue_impact_bound(pattern: dict[str, Any]) -> Any:
    [matcher] = pattern["detail"]["impact_assessment"]["revenue_impact"]
    operator, bound = matcher["numeric"]
    assert operator == ">"
    return bound


def test_partner_degradation_rule_uses_the_local_threshold(core_stack, drain_sqs):
    """Locally the rule fires on simulated outages (9.1-52.4 per window), not on healthy windows (<= 4.33)."""
    from deploy.local.stack import LOCAL_PARAMETERS

    threshold = float(LOCAL_PARAMETERS["PartnerRevenueImpactThreshold"])
    bound = revenue_impact_bound(partner_rule_pattern(boto3.client("events")))
    # A JSON number in the deployed pattern: a string would never match a numeric value.
    assert isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound == threshold == 5
    queue = core_stack["observation_queues"]["demand-partner-degradation"]
    above, outage, at, healthy_level, healthy = (f"chk-{uuid.uuid4().hex[:10]}" for _ in range(5))
    bus = core_stack["bus_name"]
    put(bus, "adops.monitoring", "Partner Health Check", partner_detail(at, "DEGRADED", threshold))
    put(bus, "adops.monitoring", "Partner Health Check", partner_detail(healthy_level, "DEGRADED", 4.33))
    put(bus, "adops.monitoring", "Partner Health Check", partner_detail(healthy, "HEALTHY", 50000))
    put(bus, "adops.monitoring", "Partner Health Check", partner_detail(above, "DEGRADED", threshold + 0.5))
    put(bus, "adops.monitoring", "Partner Health Check", partner_detail(outage, "UNHEALTHY", 9.1))
    ids = (above, outage, at, healthy_level, healthy)
    seen = drain_expecting(drain_sqs, queue, 2, lambda b: b["detail"]["check_id"] in ids)
    assert sorted(b["detail"]["check_id"] for b in seen) == sorted([above, outage])


def test_partner_degradation_rule_keeps_1000_with_default_parameters(tmp_path):
    """A stack deployed without the threshold parameter (as on AWS) keeps the production 1000."""
    from deploy.local.endpoint import start_endpoint
    from deploy.local.observe import drain_queue
    from deploy.local.stack import client, deploy_core_stack

    endpoint = start_endpoint(port=0, log_dir=tmp_path)
    try:
        stack = deploy_core_stack(endpoint.url, {"ShardCount": "2", "LocalObservation": "true"})
        events = client("events", endpoint.url)
        bound = revenue_impact_bound(partner_rule_pattern(events))
        assert isinstance(bound, int) and bound == 1000
        parameters = client("cloudformation", endpoint.url).describe_stacks(
            StackName=stack["stack_name"])["Stacks"][0]["Parameters"]
        assert {"ParameterKey": "PartnerRevenueImpactThreshold", "ParameterValue": "1000"} in parameters

        queue = stack["observation_queues"]["demand-partner-degradation"]
        match, low_impact, outage_sized, healthy = (f"chk-{uuid.uuid4().hex[:10]}" for _ in range(4))
        ids = (match, low_impact, outage_sized, healthy)
        for check_id, status, impact in ((low_impact, "DEGRADED", 1000), (outage_sized, "DEGRADED", 52.4),
                                         (healthy, "HEALTHY", 50000), (match, "UNHEALTHY", 1000.5)):
            resp = events.put_events(Entries=[{
                "EventBusName": stack["bus_name"], "Source": "adops.monitoring",
                "DetailType": "Partner Health Check", "Detail": json.dumps(partner_detail(check_id, status, impact))}])
            assert resp["FailedEntryCount"] == 0, resp
        mine = lambda b: b["detail"]["check_id"] in ids  # noqa: E731
        seen = drain_queue(queue, 1, endpoint_url=endpoint.url, predicate=mine)
        seen += drain_queue(queue, 1, timeout=DUPLICATE_GRACE_S, endpoint_url=endpoint.url, predicate=mine)
        assert [b["detail"]["check_id"] for b in seen] == [match]
    finally:
        endpoint.stop()


def test_security_rule_matches_forwarded_and_guardduty_findings_with_transformer(core_stack, drain_sqs):
    queue = core_stack["observation_queues"]["security-incident-detected"]
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    alerts_url = sqs.create_queue(QueueName=f"security-alerts-probe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=core_stack["security_alerts_topic_arn"], Protocol="sqs", Endpoint=alerts_arn,
                  Attributes={"RawMessageDelivery": "true"})
    bus = core_stack["bus_name"]
    ours, guardduty, low = (f"find-{uuid.uuid4().hex[:10]}" for _ in range(3))
    put(bus, "adops.security", "Security Incident Detected",
        {"finding_id": low, "severity": 6.9, "title": f"low {low}", "details": {}, "detected_at": "2026-11-01T10:00:00Z"})
    put(bus, "adops.security", "Security Incident Detected",
        {"finding_id": ours, "severity": 8, "editor_id": "e-001", "title": f'ad "injection" \\ {ours}',
         "details": {}, "detected_at": "2026-11-01T10:00:00Z"})
    # GuardDuty publishes to the account's default bus only; the stack forwards it to the production bus.
    put("default", "aws.guardduty", "GuardDuty Finding",
        {"id": guardduty, "severity": 7.5, "title": f"crypto mining {guardduty}", "type": "CryptoCurrency:EC2/BitcoinTool.B"})
    titles = lambda b: json.dumps(b)  # noqa: E731
    mine = lambda b: any(x in titles(b) for x in (ours, guardduty, low))  # noqa: E731
    seen = drain_expecting(drain_sqs, queue, 2, mine)
    assert sorted(b["source"] for b in seen) == ["adops.security", "aws.guardduty"]
    # The SNS target gets the input transformer's concise message, not the raw event.
    alerts = drain_expecting(drain_sqs, alerts_url, 2, mine)
    assert sorted(a["source"] for a in alerts) == ["adops.security", "aws.guardduty"]
    by_source = {a["source"]: a for a in alerts}
    assert by_source["adops.security"]["alert"] == "SECURITY INCIDENT"
    assert by_source["adops.security"]["severity"] == 8
    # The finding as an object: a quote or backslash in its title made the message invalid JSON,
    # and the alert was lost (EventBridge does not escape a "<title>" in the template).
    assert by_source["adops.security"]["finding"]["title"] == f'ad "injection" \\ {ours}'
    assert by_source["adops.security"]["finding"]["editor_id"] == "e-001"
    assert by_source["aws.guardduty"]["detail_type"] == "GuardDuty Finding"
    assert by_source["aws.guardduty"]["finding"]["title"] == f"crypto mining {guardduty}"
    assert "detail" not in by_source["aws.guardduty"]


def test_update_brings_an_older_stack_up_to_the_current_template(tmp_path):
    """`up` on a long-running endpoint: a stack deployed from an older core.yaml gets the new resources."""
    from deploy.cloudformation.render import render
    from deploy.local.endpoint import start_endpoint
    from deploy.local.stack import LOCAL_PARAMETERS, client, deploy_core_stack

    older = render("core")
    for logical_id in ("SecurityHubHighSeverityRule", "AllAdopsEventsObservationRule"):
        older["Resources"].pop(logical_id)
    # ... and the revenue threshold parameter: the rule had a fixed 1000.
    older["Parameters"].pop("PartnerRevenueImpactThreshold")
    partner_rule = older["Resources"]["DemandPartnerDegradationRule"]["Properties"]
    partner_rule["Description"] = "A demand partner is degraded or unhealthy with more than 1000 of revenue impact."
    partner_rule["EventPattern"] = {
        "source": ["adops.monitoring"], "detail-type": ["Partner Health Check"],
        "detail": {"partner_status": ["DEGRADED", "UNHEALTHY"],
                   "impact_assessment": {"revenue_impact": [{"numeric": [">", 1000]}]}}}
    endpoint = start_endpoint(port=0, log_dir=tmp_path)
    try:
        params = {"ShardCount": "2", "LocalObservation": "true"}
        deploy_core_stack(endpoint.url, params, template_body=json.dumps(older))
        events = client("events", endpoint.url)
        names = lambda: {r["Name"] for r in events.list_rules(EventBusName="adops-production-events")["Rules"]}  # noqa: E731
        assert "securityhub-high-severity-finding" not in names()
        assert deploy_core_stack(endpoint.url, params)["stack_name"] == "adops-core"  # reuse: no update
        assert "securityhub-high-severity-finding" not in names()
        assert revenue_impact_bound(partner_rule_pattern(events)) == 1000
        deploy_core_stack(endpoint.url, LOCAL_PARAMETERS, update=True)  # as `python -m deploy.local up` does
        assert {"securityhub-high-severity-finding", "all-adops-events"} <= names()
        summary = client("kinesis", endpoint.url).describe_stream_summary(StreamName="adops-metrics-stream")
        assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2  # parameters kept
        # The parameter the older stack lacked takes the caller's value, not the template default.
        assert revenue_impact_bound(partner_rule_pattern(events)) == float(LOCAL_PARAMETERS["PartnerRevenueImpactThreshold"])
    finally:
        endpoint.stop()


def _executions_for(sfn, machine_arn: str, incident: str, expected: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        mine = [d for d in (sfn.describe_execution(executionArn=s["executionArn"])
                            for s in sfn.list_executions(stateMachineArn=machine_arn)["executions"])
                if json.loads(d["input"])["detail"]["incident_id"] == incident]
        if len(mine) >= expected and all(d["status"] != "RUNNING" for d in mine):
            return mine
        assert time.monotonic() < deadline, f"executions for {incident}: {[d['status'] for d in mine]}"
        time.sleep(0.3)


def test_redelivered_incident_is_recorded_once_and_not_notified_twice(core_stack):
    """At-least-once delivery: the same incident_id twice -> one record, the second run ends in AlreadyRecorded."""
    sfn = boto3.client("stepfunctions")
    incident = f"inc-{uuid.uuid4().hex[:12]}"
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(incident, "CRITICAL", 3))
    first = _executions_for(sfn, core_stack["state_machine_arn"], incident, 1)
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", composite_detail(incident, "CRITICAL", 3))
    both = _executions_for(sfn, core_stack["state_machine_arn"], incident, 2)
    assert [d["status"] for d in both] == ["SUCCEEDED", "SUCCEEDED"]
    second = next(d for d in both if d["executionArn"] != first[0]["executionArn"])
    history = sfn.get_execution_history(executionArn=second["executionArn"])["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered == ["RecordIncident", "AlreadyRecorded"]


def _entered_states(sfn, execution: dict) -> list[str]:
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def _workflow_machine(core_stack, asl_file: str, topic_arn: str | None = None) -> str:
    """A state machine from deploy/stepfunctions/<asl_file> on the core stack's table, publishing to
    the critical-alerts topic or to ``topic_arn``. The agent workflow's orchestrator Lambda does not
    exist here, so a composite it analyses ends on its failure path (a human is paged)."""
    values = {"IncidentsTableName": core_stack["incidents_table"],
              "CriticalAlertsTopicArn": topic_arn or core_stack["critical_alerts_topic_arn"],
              "InvokeOrchestratorFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:no-such-orchestrator"}
    definition = PLACEHOLDER.sub(lambda m: values[m.group(1)], (ASL_DIR / asl_file).read_text())
    return boto3.client("stepfunctions").create_state_machine(
        name=f"{asl_file.split('.')[0].replace('_', '-')}-{uuid.uuid4().hex[:8]}", definition=definition,
        roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]


def _run_to_end(sfn, machine_arn: str, event: dict, timeout: float = 120) -> tuple[dict, list[str]]:
    """Start one execution with ``event`` as its input; (its description once ended, the states it entered)."""
    arn = sfn.start_execution(stateMachineArn=machine_arn, name=f"run-{uuid.uuid4().hex[:12]}",
                              input=json.dumps(event))["executionArn"]
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"still running after {timeout} s: {_entered_states(sfn, execution)}"
        time.sleep(0.3)
    return execution, _entered_states(sfn, execution)


def _composite_event(incident: str, severity: str, episode: str | None = None, place: int = 1) -> dict:
    """A Composite Anomaly Detected event as the rule hands it to a workflow (``id`` is EventBridge's)."""
    detail = composite_detail(incident, severity, 3)
    if episode is not None:
        detail["episode"] = {"episode_id": episode, "started_at": "2026-11-01T10:00:00Z",
                             "composites": place, "escalated": False}
    return {"id": f"ev-{uuid.uuid4().hex}", "detail": detail}


def _item(core_stack, incident_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=core_stack["incidents_table"],
                                             Key={"incident_id": {"S": incident_id}})["Item"]


def test_an_episode_is_notified_once_and_again_only_when_it_gets_worse(core_stack, drain_sqs):
    """Four composites of one episode reach the workflow (HIGH, HIGH, CRITICAL, HIGH): all four are
    recorded, and the workflow notifies the first and the CRITICAL one. The first to arrive is the
    episode's second composite (its first did not match the rule), which must still be notified."""
    sfn, dynamodb = boto3.client("stepfunctions"), boto3.client("dynamodb")
    queue_url = alerts_probe_queue(core_stack)
    episode = f"inc-{uuid.uuid4().hex[:12]}"
    started = time.time() - 1
    composites, details = [], []
    for place, severity, escalated in ((2, "HIGH", False), (3, "HIGH", False), (4, "CRITICAL", True),
                                       (5, "HIGH", False)):
        incident = f"inc-{uuid.uuid4().hex[:12]}"
        detail = {**composite_detail(incident, severity, 3),
                  "episode": {"episode_id": episode, "started_at": "2026-11-01T10:00:00Z",
                              "composites": place, "escalated": escalated}}
        put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", detail)
        details.append(detail)
        # One at a time, so the order the workflow sees them in is the order above.
        [execution] = _executions_for(sfn, core_stack["state_machine_arn"], incident, 1)
        assert execution["status"] == "SUCCEEDED", execution
        composites.append((incident, _entered_states(sfn, execution)))

    notified = [incident for incident, states in composites if "MarkNotified" in states]
    covered = [incident for incident, states in composites if "MarkCoveredByEpisode" in states]
    assert notified == [composites[0][0], composites[2][0]]
    assert covered == [composites[1][0], composites[3][0]]
    assert composites[1][1] == ["RecordIncident", "InEpisode", "RankSeverity", "RankHigh",
                                "ClaimEpisodeNotification", "MarkCoveredByEpisode"]
    table = core_stack["incidents_table"]
    statuses = [dynamodb.get_item(TableName=table, Key={"incident_id": {"S": i}})["Item"]["status"]["S"]
                for i, _ in composites]
    assert statuses == ["NOTIFIED", "COVERED_BY_EPISODE", "NOTIFIED", "COVERED_BY_EPISODE"]
    item = dynamodb.get_item(TableName=table, Key={"incident_id": {"S": f"episode#{episode}"}})["Item"]
    assert (item["notifications"]["N"], item["notified_severity"]["S"], item["notified_incident_id"]["S"]) == \
        ("2", "CRITICAL", composites[2][0])
    # The topic got the rule's own copy of each event and the workflow's two texts.
    bodies = drain_expecting(drain_sqs, queue_url, 6, lambda b: any(i in json.dumps(b) for i, _ in composites))
    texts = sorted(b for b in bodies if isinstance(b, str))
    assert len([b for b in bodies if isinstance(b, dict)]) == 4
    assert [t.split(":")[0] for t in texts] == ["CRITICAL DEMAND_ISSUE on e-001 (3 metrics)",
                                                 "HIGH DEMAND_ISSUE on e-001 (3 metrics)"]
    assert composites[2][0] in texts[0] and composites[0][0] in texts[1]
    # What a run's report says of them (flink_jobs.evaluate reads it after the drain), with the
    # first one delivered again (at least once): recorded already, not notified twice.
    put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", details[0])
    _executions_for(sfn, core_stack["state_machine_arn"], composites[0][0], 2)
    outcomes = incident_workflow_outcomes(core_stack, {i for i, _ in composites}, started)
    assert outcomes == {"executions": {"SUCCEEDED": 5},
                        "outcomes": {"already_recorded": 1, "covered_by_episode": 2, "notified": 2},
                        "episodes_notified": 1}


def test_the_agent_workflow_analyses_an_episode_once_and_again_only_when_it_gets_worse(core_stack):
    """The cloud-only agent workflow's episode claim, executed on the embedded endpoint against the
    core stack's table. No Lambda runs here, so a claimed composite's analysis fails and pages a
    human (the workflow's own failure path); what is checked is which composites get that far."""
    sfn, dynamodb = boto3.client("stepfunctions"), boto3.client("dynamodb")
    machine = _workflow_machine(core_stack, AGENT_WORKFLOW)
    episode = f"inc-{uuid.uuid4().hex[:12]}"
    runs = []
    for place, severity in ((1, "HIGH"), (2, "HIGH"), (3, "CRITICAL"), (4, "CRITICAL")):
        incident = f"inc-{uuid.uuid4().hex[:12]}"
        detail = {**composite_detail(incident, severity, 3),
                  "episode": {"episode_id": episode, "started_at": "2026-11-01T10:00:00Z",
                              "composites": place, "escalated": place == 3}}
        sfn.start_execution(stateMachineArn=machine, name=incident,
                            input=json.dumps({"id": incident, "detail": detail}))
        [execution] = _executions_for(sfn, machine, incident, 1, timeout=120)
        runs.append((incident, execution["status"], _entered_states(sfn, execution)))
    analysed = [incident for incident, _, states in runs if "InvokeOrchestratorAgent" in states]
    assert analysed == [runs[0][0], runs[2][0]], runs
    assert [status for _, status, _ in runs] == ["FAILED", "SUCCEEDED", "FAILED", "SUCCEEDED"], runs
    assert runs[1][2] == ["RecordForAnalysis", "InEpisode", "RankSeverity", "RankHigh", "ClaimEpisodeAnalysis",
                          "MarkCoveredByEpisode"]
    statuses = [dynamodb.get_item(TableName=core_stack["incidents_table"],
                                  Key={"incident_id": {"S": i}})["Item"]["analysis_status"]["S"] for i, _, _ in runs]
    assert statuses == ["FAILED", "COVERED_BY_EPISODE", "FAILED", "COVERED_BY_EPISODE"]


@pytest.mark.parametrize("first", ["agent", "core"])
def test_the_core_workflow_notifies_whichever_workflow_writes_the_composite_first(core_stack, drain_sqs, first):
    """EventBridge starts the core and the agent workflow for a composite independently, and both write
    its item: in either order the core pages and the agents analyse, and each keeps what the other wrote.
    (The agent workflow's write landing first used to make the core take the composite for a
    redelivery and skip the page.)"""
    sfn = boto3.client("stepfunctions")
    queue_url = alerts_probe_queue(core_stack)
    machines = {"agent": _workflow_machine(core_stack, AGENT_WORKFLOW), "core": core_stack["state_machine_arn"]}
    incident = f"inc-{uuid.uuid4().hex[:12]}"
    event = _composite_event(incident, "CRITICAL", episode=f"inc-{uuid.uuid4().hex[:12]}")
    runs = {workflow: _run_to_end(sfn, machines[workflow], event)
            for workflow in (first, *(w for w in machines if w != first))}

    core_execution, core_states = runs["core"]
    assert core_execution["status"] == "SUCCEEDED" and "MarkNotified" in core_states, core_states
    assert "InvokeOrchestratorAgent" in runs["agent"][1], runs["agent"][1]
    item = _item(core_stack, incident)
    assert (item["status"]["S"], item["analysis_status"]["S"]) == ("NOTIFIED", "FAILED")
    # The core's page and the agent workflow's own (its analysis failed: no Lambda here), once each.
    pages = drain_expecting(drain_sqs, queue_url, 2, lambda b: isinstance(b, str) and incident in b)
    assert sorted(page.split(" ")[0] for page in pages) == ["CRITICAL", "Incident"], pages


@pytest.mark.parametrize("in_episode", [True, False], ids=["in-episode", "without-episode"])
def test_the_agent_workflow_takes_a_redelivered_composite_once(core_stack, in_episode):
    """At-least-once delivery (or the publisher sending again, or an archive replay): the second
    delivery of a composite ends in AlreadyReceived. It used to mark the analysed composite covered
    by its own episode claim, or, without an episode, invoke the agent (and its remediation) again."""
    sfn = boto3.client("stepfunctions")
    machine = _workflow_machine(core_stack, AGENT_WORKFLOW)
    incident, episode = f"inc-{uuid.uuid4().hex[:12]}", f"inc-{uuid.uuid4().hex[:12]}"
    event = _composite_event(incident, "HIGH", episode=episode if in_episode else None)
    _, first_states = _run_to_end(sfn, machine, event)
    again, again_states = _run_to_end(sfn, machine, event)
    assert "InvokeOrchestratorAgent" in first_states, first_states
    assert (again["status"], again_states) == ("SUCCEEDED", ["RecordForAnalysis", "AlreadyReceived"])
    item = _item(core_stack, incident)
    assert item["analysis_status"]["S"] == "FAILED" and "episode_id" not in item, item
    if in_episode:
        assert _item(core_stack, f"episode#{episode}")["analyses"]["N"] == "1"


def test_a_notification_that_fails_gives_the_episode_claim_back(core_stack):
    """The claim is taken before the page is sent; a page that fails after its retries (here: a topic
    that does not exist) must not leave the episode claimed, or its next composites are covered by a
    page nobody received. A claim that replaced none is removed, one that replaced a claim restores it."""
    sfn = boto3.client("stepfunctions")
    failing = _workflow_machine(core_stack, CORE_WORKFLOW,
                                topic_arn=f"arn:aws:sns:us-east-1:123456789012:no-such-topic-{uuid.uuid4().hex[:8]}")
    working = core_stack["state_machine_arn"]
    episode = f"inc-{uuid.uuid4().hex[:12]}"
    started = time.time() - 1
    failed_ids: set[str] = set()

    def run(machine: str, severity: str, place: int) -> tuple[str, dict, list[str]]:
        incident = f"inc-{uuid.uuid4().hex[:12]}"
        if machine == failing:
            failed_ids.add(incident)
        execution, states = _run_to_end(sfn, machine, _composite_event(incident, severity, episode, place))
        return incident, execution, states

    def claim() -> dict:
        return _item(core_stack, f"episode#{episode}")

    # The episode's first page fails: the claim is withdrawn, after the notify's retries.
    _, execution, states = run(failing, "HIGH", 1)
    assert execution["status"] == "FAILED" and states[-4:] == [
        "NotifyHigh", "ReleaseEpisodeClaim", "WithdrawEpisodeClaim", "NotificationFailed"], states
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    assert [e["type"] for e in history].count("TaskFailed") == 4  # the publish and its 3 retries
    assert "notified_rank" not in claim() and claim()["notifications"]["N"] == "0"
    # So the episode's next HIGH composite is notified.
    high, _, states = run(working, "HIGH", 2)
    assert "MarkNotified" in states, states

    # An escalation's page fails: the HIGH claim it replaced is restored...
    _, execution, states = run(failing, "CRITICAL", 3)
    assert execution["status"] == "FAILED" and "RestoreReplacedEpisodeClaim" in states, states
    restored = claim()
    assert (restored["notified_rank"]["N"], restored["notified_severity"]["S"], restored["notified_incident_id"]["S"],
            restored["notifications"]["N"]) == ("3", "HIGH", high, "1")
    # ... so another HIGH one is still covered by the HIGH page, and the next CRITICAL one is notified.
    assert "MarkCoveredByEpisode" in run(working, "HIGH", 4)[2]
    assert "MarkNotified" in run(working, "CRITICAL", 5)[2]
    # What a run's report says of the failed ones.
    assert incident_workflow_outcomes({"state_machine_arn": failing}, failed_ids, started) == {
        "executions": {"FAILED": 2}, "outcomes": {"notification_failed": 2}, "episodes_notified": 0}
