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

    Returns the message bodies (parsed as JSON when they are JSON), in arrival
    order, at most ``count`` of them. Every message received is deleted, matching
    or not: the queues are shared by a whole test session, so a test filters with
    ``predicate`` (e.g. on its own incident id) and stale messages must not come
    back after the visibility timeout. Extra matching messages beyond ``count``
    are also consumed; call again with a short timeout to assert "no more".
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
    return found[:count] if count else found


def incident_workflow_outcomes(stack: dict[str, Any], incident_ids: set[str], started_after: float,
                               endpoint_url: str | None = None, region: str | None = None) -> dict[str, Any]:
    """What the stack's incident workflow did with these composites (``incident_ids``), for a run's report.

    ``executions``: the ``critical-incident-workflow`` executions started after ``started_after``
    (epoch s) for one of them, by final status (the multi-metric-anomaly rule starts one for each
    composite it matches). ``incidents``: the status the workflow left on each one's item in the
    incidents table (NOTIFIED, COVERED_BY_EPISODE: its episode was already notified at this
    severity or above, OPEN: not notified for its severity). ``episodes_notified``: the episodes
    among them that were notified at least once.
    """
    from collections import Counter

    sfn = client("stepfunctions", endpoint_url, region)
    dynamodb = client("dynamodb", endpoint_url, region)
    executions: Counter = Counter()
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack["state_machine_arn"]):
        for summary in page["executions"]:
            if summary["startDate"].timestamp() < started_after:
                continue
            execution = sfn.describe_execution(executionArn=summary["executionArn"])
            if json.loads(execution["input"]).get("detail", {}).get("incident_id") in incident_ids:
                executions[execution["status"]] += 1
    incidents: Counter = Counter()
    episodes: set = set()
    ids = sorted(incident_ids)
    for start in range(0, len(ids), 100):            # BatchGetItem takes at most 100 keys
        keys = [{"incident_id": {"S": i}} for i in ids[start:start + 100]]
        while keys:
            resp = dynamodb.batch_get_item(RequestItems={stack["incidents_table"]: {"Keys": keys}})
            for item in resp["Responses"].get(stack["incidents_table"], []):
                incidents[item.get("status", {}).get("S", "?")] += 1
                if item.get("status", {}).get("S") == "NOTIFIED":
                    detail = json.loads(item.get("detail_json", {}).get("S", "{}"))
                    episodes.add((detail.get("episode") or {}).get("episode_id") or detail.get("incident_id"))
            keys = resp.get("UnprocessedKeys", {}).get(stack["incidents_table"], {}).get("Keys", [])
    return {"executions": dict(sorted(executions.items())), "incidents": dict(sorted(incidents.items())),
            "episodes_notified": len(episodes)}
