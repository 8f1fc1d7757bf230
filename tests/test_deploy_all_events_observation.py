"""The catch-all observation queue sees every adops.* event, including ones no alerting rule matches."""
import json

import boto3


def _put(bus, source, detail_type, detail):
    client = boto3.client("events")
    response = client.put_events(Entries=[{
        "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": bus,
    }])
    assert response["FailedEntryCount"] == 0, response


def test_catch_all_queue_receives_events_the_alerting_rules_ignore(core_stack, drain_sqs):
    queue = core_stack["observation_queues"]["all-adops-events"]
    low = {"incident_id": "inc-catch-all-low", "severity": "LOW", "metrics_affected": 1}
    _put(core_stack["bus_name"], "adops.analytics", "Composite Anomaly Detected", low)
    _put(core_stack["bus_name"], "other.system", "Composite Anomaly Detected", {"incident_id": "inc-foreign"})
    seen = drain_sqs(queue, 5, timeout=5.0)
    ids = [json.loads(body)["detail"]["incident_id"] if isinstance(body, str) else body["detail"]["incident_id"]
           for body in seen]
    assert "inc-catch-all-low" in ids
    assert "inc-foreign" not in ids
