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
