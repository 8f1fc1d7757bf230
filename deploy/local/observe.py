"""Read what the rules matched: drain the observation SQS queues (LocalObservation=true)."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from deploy.local.stack import client


def drain_queue(
    queue_url: str,
    count: int,
    timeout: float = 20.0,
    predicate: Callable[[Any], bool] | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> list[Any]:
    """Receive until ``count`` matching messages arrived or ``timeout`` seconds passed.

    Returns the bodies of every matching message received (parsed as JSON when
    they are JSON), in arrival order: ``count`` says when to stop waiting, not how
    many to return, so a caller that expects exactly ``count`` sees an extra one
    that came in the same receive instead of it being deleted unseen. Every
    message received is deleted, matching or not: the queues are shared by a
    whole test session, so a test filters with ``predicate`` (e.g. on its own
    incident id) and stale messages must not come back after the visibility
    timeout. A duplicate can also arrive after the call returned: to assert
    "exactly N", call again with a short timeout and expect nothing more.
    """
    import os

    sqs = client("sqs", endpoint_url or os.environ.get("AWS_ENDPOINT_URL"), region)
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        resp = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10,
            WaitTimeSeconds=max(0, min(1, int(remaining))),
        )
        for message in resp.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            try:
                body: Any = json.loads(message["Body"])
            except ValueError:
                body = message["Body"]
            if predicate is None or predicate(body):
                found.append(body)
        if not resp.get("Messages"):
            time.sleep(0.05)
    return found


#: The state a core-workflow execution ends its path in, and what it says of the composite.
WORKFLOW_OUTCOMES = {"MarkNotified": "notified", "MarkCoveredByEpisode": "covered_by_episode",
                     "AlreadyRecorded": "already_recorded", "RecordedWithoutNotification": "not_notified_severity",
                     "NotificationFailed": "notification_failed"}


def incident_workflow_outcomes(stack: dict[str, Any], incident_ids: set[str], started_after: float,
                               endpoint_url: str | None = None, region: str | None = None) -> dict[str, Any]:
    """What the stack's incident workflow did with these composites (``incident_ids``), for a run's report.

    Read from the ``critical-incident-workflow`` executions started after ``started_after`` (epoch
    s) for one of them (the multi-metric-anomaly rule starts one for each composite it matches),
    not from the incidents table, which on a reused endpoint also holds earlier runs' items.
    ``executions``: by final status. ``outcomes``: by the path each took (WORKFLOW_OUTCOMES):
    notified; covered_by_episode (its episode was already notified at this severity or above);
    already_recorded (a redelivery, or an incident id an earlier run recorded);
    not_notified_severity; notification_failed (SNS failed after its retries; the episode's claim
    was given back). ``episodes_notified``: the episodes among the notified ones.
    """
    from collections import Counter

    sfn = client("stepfunctions", endpoint_url, region)
    executions: Counter = Counter()
    outcomes: Counter = Counter()
    episodes: set = set()
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack["state_machine_arn"]):
        for summary in page["executions"]:
            if summary["startDate"].timestamp() < started_after:
                continue
            execution = sfn.describe_execution(executionArn=summary["executionArn"])
            detail = json.loads(execution["input"]).get("detail") or {}
            if detail.get("incident_id") not in incident_ids:
                continue
            executions[execution["status"]] += 1
            history = sfn.get_execution_history(executionArn=summary["executionArn"], maxResults=1000)["events"]
            entered = {e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e}
            outcome = next((o for state, o in WORKFLOW_OUTCOMES.items() if state in entered), "other")
            outcomes[outcome] += 1
            if outcome == "notified":
                episodes.add((detail.get("episode") or {}).get("episode_id") or detail["incident_id"])
    return {"executions": dict(sorted(executions.items())), "outcomes": dict(sorted(outcomes.items())),
            "episodes_notified": len(episodes)}
