"""EventBridge → SQS target with input settings: SendMessage of the transformed event.

moto delivers to SQS itself, but applies only an InputTransformer, and only to events put on
the bus: it ignores a target's Input and InputPath, and a replayed event reaches the queue raw.
The patch delivers such targets here instead; SQS targets without input settings stay moto's.
"""
from __future__ import annotations

import json
from typing import Any


def send_message(queue_arn: str, payload: Any, group_id: str | None = None) -> str:
    from moto.sqs.models import sqs_backends

    # The queue's account and region are its ARN's (a target may be another account's queue).
    _, _, _, region, account_id, queue_name = queue_arn.split(":", 5)
    backend = sqs_backends[account_id][region]
    if group_id and backend.get_queue_attributes(queue_name, ["ContentBasedDeduplication"])[
            "ContentBasedDeduplication"] == "false":
        # AWS does not deliver to a FIFO queue without content-based deduplication either.
        raise ValueError(f"{queue_arn}: EventBridge needs content-based deduplication on a FIFO queue")
    # The event JSON, or the bare string an input transformer produced (as for SNS).
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return backend.send_message(queue_name=queue_name, message_body=body, group_id=group_id).id
