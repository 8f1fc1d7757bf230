"""EventBridge → SNS target: Publish the (possibly transformed) event."""
from __future__ import annotations

import json
from typing import Any


def publish(account_id: str, region: str, topic_arn: str, payload: Any) -> str:
    from moto.sns.models import sns_backends

    # EventBridge publishes the event JSON, or the bare string when an input
    # transformer produces a string.
    message = payload if isinstance(payload, str) else json.dumps(payload)
    return sns_backends[account_id][region].publish(message=message, arn=topic_arn)
