"""The catch-all observation queue sees every adops.* event, including ones no alerting rule matches."""
import json
import uuid

import boto3


def _put(bus, source, detail_type, detail):
    client = boto3.client("events")
    response = client.put_events(Entries=[{
        "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": bus,
    }])
    assert response["FailedEntryCount"] == 0, response


def test_catch_all_queue_receives_events_the_alerting_rules_ignore(core_stack, drain_sqs):
    queue = core_stack["observation_queues"]["all-adops-events"]
    # The queue is shared by the whole session (every other test's adops.* events
    # land here too), so look for this test's own ids only.
    low_id, foreign_id = f"inc-catch-all-low-{uuid.uuid4().hex[:8]}", f"inc-foreign-{uuid.uuid4().hex[:8]}"
    low = {"incident_id": low_id, "severity": "LOW", "metrics_affected": 1}
    _put(core_stack["bus_name"], "other.system", "Composite Anomaly Detected", {"incident_id": foreign_id})
    _put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", low)
    mine = lambda body: body["detail"].get("incident_id") in (low_id, foreign_id)  # noqa: E731
    seen = drain_sqs(queue, 1, timeout=10.0, predicate=mine)
    # The foreign event was put first: had the rule matched it, it would be here by now.
    seen += drain_sqs(queue, 1, timeout=1.5, predicate=mine)
    assert [body["detail"]["incident_id"] for body in seen] == [low_id]
