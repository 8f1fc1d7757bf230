"""Step Functions task: ask the orchestrator Bedrock agent to analyse one incident.

Called by the full critical-incident workflow (deploy/stepfunctions/
critical_incident_workflow_agents.asl.json) with the EventBridge event as
input. Step Functions' aws-sdk integration cannot consume InvokeAgent's event
stream, hence this small Lambda. The session id is the composite's episode id (its
incident id when it has no episode), so a retry of the same incident, and a more
severe window of the same episode (the only ones the workflow sends on), continue the
agent's session: the orchestrator remembers what it found and did for the episode.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

MAX_PROMPT_CHARS = 20000

#: What the orchestrator's turn may take: the function's Timeout in cloud-only.yaml and the
#: workflow's TimeoutSeconds for InvokeOrchestratorAgent (a test keeps the three equal). A turn
#: that consults specialists and calls tools takes minutes; botocore's default read timeout of
#: 60 s ended it long before that and failed the analysis.
INVOKE_BUDGET_SECONDS = 600
#: The answer can come as one chunk at the end of the turn, so one socket read may wait for the
#: whole turn; 30 s are kept for reading the stream's end and answering before Lambda stops us.
READ_TIMEOUT_SECONDS = INVOKE_BUDGET_SECONDS - 30
CONNECT_TIMEOUT_SECONDS = 10


class InvalidIncident(ValueError):
    pass


def build_prompt(event: dict[str, Any]) -> tuple[str, str]:
    """(session_id, prompt text) for a Composite Anomaly Detected event."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        raise InvalidIncident("input must be an EventBridge event with a 'detail' object")
    missing = [k for k in ("incident_id", "editor_id", "severity", "problem_type") if not detail.get(k)]
    if missing:
        raise InvalidIncident(f"incident detail is missing {missing}")
    facts = {k: detail.get(k) for k in (
        "incident_id", "editor_id", "window_start", "window_end", "severity", "problem_type", "category",
        "metrics_affected", "affected_metrics", "metrics", "revenue_at_risk", "revenue_at_risk_known",
        "suspected_causes", "evidence", "summary", "episode")}
    prompt = (
        f"A {detail['severity']} {detail['problem_type']} incident was detected for editor {detail['editor_id']}. "
        "Diagnose the root cause with your specialists and tools, then answer with a JSON object "
        '{"root_cause": str, "confidence": 0-1, "actions_taken": [str], "recommended_actions": [str], '
        '"needs_human": bool}. Incident facts:\n' + json.dumps(facts, default=str)
    )
    episode = detail.get("episode")
    episode_id = episode.get("episode_id") if isinstance(episode, dict) else None
    session = episode_id if isinstance(episode_id, str) and episode_id else detail["incident_id"]
    return str(session), prompt[:MAX_PROMPT_CHARS]


def collect_completion(stream: Iterable[dict[str, Any]]) -> str:
    """Concatenate the text chunks of an InvokeAgent completion stream."""
    parts = []
    for item in stream:
        chunk = item.get("chunk")
        if chunk and "bytes" in chunk:
            parts.append(chunk["bytes"].decode("utf-8"))
    return "".join(parts)


def parse_analysis(text: str) -> dict[str, Any]:
    """The agent's JSON answer if it gave one (possibly inside prose), else the text."""
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            return {"structured": True, **json.loads(text[start:end + 1])}
        except ValueError:
            pass
    return {"structured": False, "text": text}


def agent_runtime_client() -> Any:
    import boto3
    from botocore.config import Config

    # One attempt: InvokeAgent is not idempotent (the agent's tools pause partners and change
    # configuration), and botocore retries a read timeout by sending the request again, which
    # would start a second turn. A failure goes to the workflow, which retries Lambda's own
    # errors and otherwise pages a human.
    return boto3.client("bedrock-agent-runtime", config=Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": 1}))


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    session_id, prompt = build_prompt(event)
    runtime = agent_runtime_client()
    answer = runtime.invoke_agent(
        agentId=os.environ["ORCHESTRATOR_AGENT_ID"], agentAliasId=os.environ["ORCHESTRATOR_AGENT_ALIAS_ID"],
        sessionId=session_id, inputText=prompt,
    )
    text = collect_completion(answer["completion"])
    return {"incident_id": session_id, "analysis": parse_analysis(text), "raw": text[:4000]}
