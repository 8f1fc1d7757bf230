"""EventBridge → Step Functions target: StartExecution with the rule's input."""
from __future__ import annotations

import json
import uuid
from typing import Any


def start_execution(account_id: str, region: str, state_machine_arn: str, payload: Any) -> str:
    # Resolve the backend the HTTP API uses, so the execution is visible to
    # ListExecutions/DescribeExecution and actually runs when execution is enabled.
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(account_id, region)
    # moto's parser backend builds the execution ARN from the name as given, so a
    # missing name would become the literal "None" (and collide); EventBridge
    # names rule-started executions with a UUID, so do the same.
    execution = backend.start_execution(
        state_machine_arn, name=str(uuid.uuid4()), execution_input=json.dumps(payload)
    )
    return execution.execution_arn
