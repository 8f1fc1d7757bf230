"""Deploy the core CloudFormation stack (deploy/cloudformation/core.yaml) to an endpoint.

The local resources come from the very template that targets AWS: we render it
(inlining the Step Functions ASL) and create a stack, so there is no second,
hand-written list of resources.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from deploy.cloudformation.render import render_json

CORE_STACK_NAME = "adops-core"
DEFAULT_REGION = "us-east-1"
LOCAL_PARAMETERS = {
    "ShardCount": "2",
    "LocalObservation": "true",
    # demand-partner-degradation fires above this revenue impact per 5-min window. The
    # production 1000 is more than the whole simulated network earns (231-340 per window),
    # so locally the rule could never fire. Measured by the offline replay on 5 simulator
    # seeds (20 editors, 8 partners): labelled partner outages cost 9.1-52.4 per window,
    # healthy windows (impact computed anyway) at most 4.33. 5 sits between the two: every
    # outage window passes. The rule also needs DEGRADED/UNHEALTHY, so the HEALTHY check
    # that closes an outage never alerts (4.95 in a `make run` on seed 7, still under 5).
    "PartnerRevenueImpactThreshold": "5",
}

# Output key of each rule's observation queue -> the rule's name.
OBSERVATION_OUTPUTS = {
    "MultiMetricAnomalyObservationQueueUrl": "multi-metric-anomaly",
    "DemandPartnerDegradationObservationQueueUrl": "demand-partner-degradation",
    "SecurityIncidentDetectedObservationQueueUrl": "security-incident-detected",
    "AllAdopsEventsObservationQueueUrl": "all-adops-events",
}


class StackDeployError(RuntimeError):
    pass


def client(service: str, endpoint_url: str | None, region: str | None = None):
    """boto3 client for the endpoint; test credentials for one on this machine when none are configured
    (connectors.aws.local_credentials)."""
    from connectors.aws import local_credentials

    region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    kwargs: dict[str, Any] = {"region_name": region, "config": Config(retries={"max_attempts": 3})}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
        kwargs.update(local_credentials(endpoint_url))
    return boto3.client(service, **kwargs)


def _describe(cfn, stack_name: str) -> dict[str, Any] | None:
    try:
        return cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def normalise_outputs(raw: dict[str, str]) -> dict[str, Any]:
    """Stack outputs under the stable names the tests and jobs use."""
    return {
        "metrics_stream": raw.get("MetricsStreamName"),
        "metrics_stream_arn": raw.get("MetricsStreamArn"),
        "events_stream": raw.get("EventsStreamName"),
        "events_stream_arn": raw.get("EventsStreamArn"),
        "dead_letter_stream": raw.get("DeadLetterStreamName"),
        "dead_letter_stream_arn": raw.get("DeadLetterStreamArn"),
        "bus_name": raw.get("EventBusName"),
        "bus_arn": raw.get("EventBusArn"),
        "archive_name": raw.get("ArchiveName"),
        "state_machine_arn": raw.get("StateMachineArn"),
        "incidents_table": raw.get("IncidentsTableName"),
        "critical_alerts_topic_arn": raw.get("CriticalAlertsTopicArn"),
        "partner_alerts_topic_arn": raw.get("PartnerAlertsTopicArn"),
        "security_alerts_topic_arn": raw.get("SecurityAlertsTopicArn"),
        "observation_queues": {
            rule: raw[key] for key, rule in OBSERVATION_OUTPUTS.items() if key in raw
        },
        "stack_name": raw.get("_StackName"),
        "outputs": {k: v for k, v in raw.items() if not k.startswith("_")},
    }


def deploy_core_stack(
    endpoint_url: str | None,
    parameters: dict[str, Any] | None = None,
    stack_name: str = CORE_STACK_NAME,
    region: str | None = None,
    timeout: float = 300.0,
    update: bool = False,
    template_body: str | None = None,
) -> dict[str, Any]:
    """Create the core stack unless it exists already; return its normalised outputs.

    Idempotent: an existing stack in a *_COMPLETE state is reused as it is (its
    parameters are not changed). With ``update=True`` an existing stack whose
    template differs from the current core.yaml is updated first (keeping its
    parameter values; a parameter the deployed stack does not have yet takes the
    value from ``parameters``, else its template default), so a long-running `up`
    picks up template changes.
    ``template_body`` overrides the rendered core template (tests).
    """
    cfn = client("cloudformation", endpoint_url, region)
    body = template_body if template_body is not None else render_json("core")
    stack = _describe(cfn, stack_name)
    if stack is not None and update and stack["StackStatus"].endswith("_COMPLETE") \
            and _deployed_template(cfn, stack_name) != json.loads(body):
        template_parameters = json.loads(body).get("Parameters", {})
        # The deployed values, explicitly: moto 5.2.5 fails UsePreviousValue on
        # parameters that were left at their default.
        kept = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])
                if p["ParameterKey"] in template_parameters}
        # A parameter the newer template added: the value this call would create the
        # stack with (e.g. `up`'s LOCAL_PARAMETERS), not silently the template default.
        added = {k: str(v) for k, v in (parameters or {}).items()
                 if k in template_parameters and k not in kept}
        cfn.update_stack(
            StackName=stack_name, TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in {**kept, **added}.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = _wait(cfn, stack_name, timeout)
    if stack is None:
        params = dict(LOCAL_PARAMETERS if parameters is None else parameters)
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=body,
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = _wait(cfn, stack_name, timeout)
    status = stack["StackStatus"]
    if status.endswith("_IN_PROGRESS"):
        stack = _wait(cfn, stack_name, timeout)
        status = stack["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise StackDeployError(f"stack {stack_name} is {status}: {stack.get('StackStatusReason', '')}")
    raw = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    raw["_StackName"] = stack_name
    return normalise_outputs(raw)


def _deployed_template(cfn, stack_name: str) -> Any:
    body = cfn.get_template(StackName=stack_name)["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else json.loads(json.dumps(body))


def _wait(cfn, stack_name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = _describe(cfn, stack_name)
        if stack is None:
            raise StackDeployError(f"stack {stack_name} disappeared while deploying")
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
                reasons = [
                    f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                    for e in events if "FAILED" in e.get("ResourceStatus", "")
                ]
                raise StackDeployError(f"stack {stack_name} ended {stack['StackStatus']}: {reasons}")
            return stack
        if time.monotonic() > deadline:
            raise StackDeployError(f"stack {stack_name} still {stack['StackStatus']} after {timeout}s")
        time.sleep(0.5)
