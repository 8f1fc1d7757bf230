"""Re-driving emitted incidents from the bus archive with StartReplay, on the embedded endpoint.

Also pins what moto 5.2.5 does differently from AWS (documented in
connectors/replay/eventbridge.py): the replay is synchronous and ignores the
time window, so an event outside [from, to) is replayed too.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import boto3


def _composite(incident_id: str) -> dict:
    return {"incident_id": incident_id, "editor_id": "e-replay", "window_start": "2026-11-02T10:00:00Z",
            "window_end": "2026-11-02T10:05:00Z", "severity": "HIGH", "problem_type": "DEMAND_ISSUE",
            "category": "DEMAND", "metrics_affected": 3, "affected_metrics": ["rpm", "fill_rate", "revenue"],
            "metrics": {}, "revenue_at_risk": 10.0, "suspected_causes": [], "evidence": [], "summary": "test"}


def _utc(printed) -> datetime:
    """A time as the CLI prints describe_replay's answer (datetimes as str, or epoch seconds)."""
    if isinstance(printed, (int, float)):
        return datetime.fromtimestamp(printed, timezone.utc)
    return datetime.fromisoformat(printed).astimezone(timezone.utc)


def test_start_replay_re_drives_archived_incidents_through_the_rules(core_stack, drain_sqs, aws_endpoint):
    events = boto3.client("events", endpoint_url=aws_endpoint.url)
    incident_id = f"inc-replay-{uuid.uuid4().hex[:8]}"
    response = events.put_events(Entries=[{"Source": "adops.analytics", "DetailType": "Composite Anomaly Detected",
                                           "Detail": json.dumps(_composite(incident_id)),
                                           "EventBusName": core_stack["bus_name"]}])
    assert response["FailedEntryCount"] == 0
    catch_all = core_stack["observation_queues"]["all-adops-events"]
    mine = lambda e: isinstance(e, dict) and e.get("detail", {}).get("incident_id") == incident_id
    first = drain_sqs(catch_all, 1, timeout=10, predicate=mine)
    assert first and "replay-name" not in first[0]

    now = datetime.now(timezone.utc).replace(microsecond=0)
    start, end = now - timedelta(days=3), now - timedelta(days=2)
    # A window that does not contain the event: AWS would replay nothing; moto replays everything.
    out = subprocess.run([sys.executable, "-m", "connectors.replay", "eventbridge",
                          "--archive", core_stack["archive_name"], "--bus", core_stack["bus_name"],
                          "--from", start.isoformat(), "--to", end.isoformat(),
                          "--endpoint", aws_endpoint.url, "--name", f"test-{incident_id}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["State"] == "COMPLETED" and state["ReplayName"] == f"test-{incident_id}"
    # The replay was asked for the window given on the command line (AWS replays only that window).
    assert (_utc(state["EventStartTime"]), _utc(state["EventEndTime"])) == (start, end), state
    # moto replays the whole archive, i.e. every event the test session put on the bus before this
    # test (hundreds to thousands in a full run), so ours can be far back in the catch-all queue.
    replayed = drain_sqs(catch_all, 1, timeout=120, predicate=mine)
    assert replayed, "the archived incident came through the rules again"
    assert replayed[0]["replay-name"] == f"test-{incident_id}"
