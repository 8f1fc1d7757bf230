"""The Bedrock action-group Lambdas, run in-process against the embedded endpoint (real SSM/CloudWatch API)."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest

LAMBDA_DIR = Path(__file__).resolve().parents[1] / "deploy" / "lambda"
pytestmark = pytest.mark.aws


def load_handler(tool: str):
    # deploy/lambda is not importable as a package ("lambda" is a keyword); in
    # the Lambda zip, shared/action_group.py sits next to handler.py.
    if str(LAMBDA_DIR / "shared") not in sys.path:
        sys.path.insert(0, str(LAMBDA_DIR / "shared"))
    spec = importlib.util.spec_from_file_location(f"adops_lambda_{tool}", LAMBDA_DIR / tool / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def call(tool: str, method: str, path: str, params: dict | None = None, body: dict | None = None) -> tuple[int, dict]:
    event = {"messageVersion": "1.0", "actionGroup": tool, "apiPath": path, "httpMethod": method,
             "parameters": [{"name": k, "type": "string", "value": v} for k, v in (params or {}).items()],
             "sessionAttributes": {"s": "1"}}
    if body is not None:
        event["requestBody"] = {"content": {"application/json": {"properties": [
            {"name": k, "type": "string", "value": v} for k, v in body.items()]}}}
    out = load_handler(tool).handler(event, None)
    assert out["messageVersion"] == "1.0" and out["sessionAttributes"] == {"s": "1"}
    assert out["response"]["apiPath"] == path and out["response"]["actionGroup"] == tool
    return out["response"]["httpStatusCode"], json.loads(out["response"]["responseBody"]["application/json"]["body"])


@pytest.fixture()
def editor(aws_endpoint) -> str:
    return f"e-{uuid.uuid4().hex[:8]}"


def test_get_editor_metrics_reads_cloudwatch(editor):
    now = dt.datetime.now(dt.timezone.utc)
    boto3.client("cloudwatch").put_metric_data(Namespace="AdOps", MetricData=[
        {"MetricName": "rpm", "Dimensions": [{"Name": "EditorId", "Value": editor}],
         "Timestamp": now - dt.timedelta(minutes=m), "Value": v} for m, v in ((2, 2.5), (3, 1.5))])
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics",
                        {"editor_id": editor, "minutes": "30", "metrics": "rpm,fill_rate"})
    assert status == 200, body
    assert body["empty_metrics"] == ["fill_rate"]
    points = body["metrics"]["rpm"]
    # The two samples share a 300 s period (one average, 2.0) or fall in two (their own values).
    assert sorted(p["average"] for p in points) in ([2.0], [1.5, 2.5])
    assert min(p["min"] for p in points) == 1.5 and max(p["max"] for p in points) == 2.5


@pytest.mark.parametrize("params,fragment", [
    ({}, "'editor_id' is required"),
    ({"editor_id": "e 1"}, "'editor_id' is required"),
    ({"editor_id": "e-1", "minutes": "0"}, "between 5 and 1440"),
    ({"editor_id": "e-1", "minutes": "ten"}, "must be a number"),
    ({"editor_id": "e-1", "metrics": "rpm,ctr"}, "unknown metrics ['ctr']"),
    # In range but not a whole minute: CloudWatch would refuse it, and the agent would get a 502.
    ({"editor_id": "e-1", "period_seconds": "90"}, "'period_seconds' must be a multiple of 60"),
    ({"editor_id": "e-1", "period_seconds": "3599"}, "got 3599; e.g. 3540"),
])
def test_get_editor_metrics_rejects_bad_parameters(aws_endpoint, params, fragment):
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", params)
    assert status == 400 and fragment in body["error"]


def test_get_editor_metrics_takes_every_whole_minute_period_and_documents_the_rule(editor):
    now = dt.datetime.now(dt.timezone.utc)
    boto3.client("cloudwatch").put_metric_data(Namespace="AdOps", MetricData=[
        {"MetricName": "rpm", "Dimensions": [{"Name": "EditorId", "Value": editor}], "Timestamp": now, "Value": 1.0}])
    for period in ("60", "120", "3600"):
        status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics",
                            {"editor_id": editor, "period_seconds": period, "metrics": "rpm"})
        assert (status, body.get("period_seconds")) == (200, int(period)), body
    schema = json.loads((LAMBDA_DIR.parent / "bedrock" / "action_groups" / "get_editor_metrics.openapi.json").read_text())
    [period_parameter] = [p for p in schema["paths"]["/editors/{editor_id}/metrics"]["get"]["parameters"]
                          if p["name"] == "period_seconds"]
    assert "multiple of 60" in period_parameter["description"]  # the agent reads the rule before it calls


def test_unknown_operation_is_a_404_naming_the_served_ones(aws_endpoint):
    status, body = call("get_editor_metrics", "POST", "/editors/{editor_id}/metrics", {"editor_id": "e-1"})
    assert status == 404 and "GET /editors/{editor_id}/metrics" in body["error"]


def test_recent_changes_and_rollback_via_ssm_versions(editor):
    ssm = boto3.client("ssm")
    name = f"/adops/editors/{editor}/config/header_bidding_timeout_ms"
    ssm.put_parameter(Name=name, Value="800", Type="String")
    ssm.put_parameter(Name=name, Value="150", Type="String", Overwrite=True, Description="deploy 42")
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", {"editor_id": editor, "hours": "1"})
    assert status == 200, body
    newest = body["changes"][0]
    assert (newest["parameter"], newest["old_value"], newest["new_value"], newest["version"]) == \
        ("config/header_bidding_timeout_ms", "800", "150", 2)

    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "header_bidding_timeout_ms"}, {"reason": "inc-1"})
    assert status == 200, body
    assert (body["rolled_back_from_version"], body["restored_version"], body["new_version"], body["value"]) == (2, 1, 3, "800")
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "800"

    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "header_bidding_timeout_ms", "to_version": "9"})
    assert status == 400 and "between 1 and 3" in body["error"]
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "nope"})
    assert status == 404


def test_rollback_of_a_single_version_is_refused(editor):
    boto3.client("ssm").put_parameter(Name=f"/adops/editors/{editor}/config/k", Value="1", Type="String")
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "k"})
    assert status == 409 and "only one version" in body["error"]


def _human_sets_floor(editor: str, value: str) -> None:
    boto3.client("ssm").put_parameter(Name=f"/adops/editors/{editor}/config/floor_price", Value=value,
                                      Type="String", Overwrite=True, Description="set by a human")


def test_adjust_floor_price_with_guardrails(editor):
    path = "/editors/{editor_id}/floor-price"
    # an agent adjusts a floor a human set: none stored, it is refused (it could set any value)
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.00"})
    assert status == 409 and "ask a human to set the first one" in body["error"], body
    _human_sets_floor(editor, "1.0")
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.30"})
    assert status == 200 and body["previous_floor_cpm"] == 1.0 and body["version"] == 2   # exactly 30 %: allowed
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.0"})
    assert status == 200 and body["version"] == 3
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "2.00"})
    assert status == 422 and "exceeds the 30% limit" in body["error"]
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.2", "dry_run": "true"})
    assert status == 200 and body["dry_run"] is True and "version" not in body
    assert boto3.client("ssm").get_parameter(Name=f"/adops/editors/{editor}/config/floor_price")["Parameter"]["Value"] == "1.0"
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "999"})
    assert status == 400 and "between 0.01 and 50.0" in body["error"]


def test_steps_within_the_per_call_limit_cannot_add_up_to_more_than_the_daily_one(editor):
    """Twelve +29 % calls would take 1.0 to 21: every floor of the last day bounds them all."""
    path = "/editors/{editor_id}/floor-price"
    _human_sets_floor(editor, "1.0")
    floors = []
    for _ in range(12):
        new = round((floors[-1] if floors else 1.0) * 1.2, 4)
        status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": str(new)})
        if status != 200:
            break
        floors.append(new)
    assert floors == [1.2, 1.44], floors                       # a third step, 1.728, is +72.8 % on the day
    assert status == 422 and "the floor was 1.0 within the last day" in body["error"], body
    # setting the floor it has writes nothing (repeated writes would push the day's versions out of SSM's 100)
    status, body = call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.44"})
    assert status == 200 and body.get("unchanged") is True and "version" not in body, body
    # nor does a rollback to a version whose value the floor has again
    assert call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.2"})[0] == 200
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "floor_price", "to_version": "2"})
    assert status == 409 and "already has the value of version 2" in body["error"], body


def test_a_floor_rollback_compares_floors_as_numbers_and_names_a_bad_version(editor):
    for value in ("nan", "1", "1.2", "1.0"):      # a bad value a human fixed, then "1" and "1.0": one floor
        _human_sets_floor(editor, value)
    rollback = lambda version: call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                                    {"editor_id": editor, "config_key": "floor_price", "to_version": version})
    status, body = rollback("2")
    assert status == 409 and "already has the value of version 2" in body["error"], body
    status, body = rollback("1")
    assert status == 409 and "version 1 of the floor price holds 'nan'" in body["error"], body


def test_a_floor_rollback_keeps_to_the_daily_bound_too(editor):
    for value in ("1.0", "1.6", "2.0"):            # a human's changes are not bounded
        _human_sets_floor(editor, value)
    # back to 1.6 is -20 % on the call, but 60 % away from the 1.0 of earlier today
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "floor_price", "to_version": "2"})
    assert status == 422 and "the floor was 1.0 within the last day" in body["error"], body


def test_a_floor_history_ssm_has_cut_short_is_not_taken_for_a_quiet_day(editor):
    """SSM keeps 100 versions: once the day's oldest are gone, the day's bound cannot be checked."""
    for _ in range(101):
        _human_sets_floor(editor, "1.0")
    status, body = call("adjust_floor_price", "POST", "/editors/{editor_id}/floor-price", {"editor_id": editor},
                        {"new_floor_cpm": "1.1"})
    assert status == 409 and "no longer reaches back" in body["error"], body


def _versions(*entries):
    """A parameter history as GetParameterHistory gives it: (hours before NOW, value) per version."""
    return [{"Version": i + 1, "LastModifiedDate": NOW - dt.timedelta(hours=h), "Value": v}
            for i, (h, v) in enumerate(entries)]


NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone.utc)


def test_the_days_floors_are_every_floor_in_effect_during_the_day():
    """The floors of the last 24 h: the one in effect as the day began and every later one. A spike
    that ended before the day (1.5, from 25 h to 24.5 h ago) no longer counts, and cannot make the
    day's bound relative to itself; one within the day does."""
    floors = load_handler("adjust_floor_price").recent_floors
    assert floors(_versions((30, "1.0"), (25, "1.5"), (24.5, "1.0"), (1, "1.2")), NOW) == [1.0, 1.2]
    assert floors(_versions((30, "1.0"), (23, "1.5"), (22, "1.0")), NOW) == [1.0, 1.5, 1.0]
    assert floors(_versions((2, "nan"), (1, "1.0")), NOW) == [1.0]          # a bad value a human fixed


def test_paused_time_adds_up_over_renewals_and_resumes():
    """Pausing again as a pause ends, or after a resume, counts the time already paused."""
    paused = load_handler("pause_demand_partner").paused_minutes
    status = lambda until_h, state="PAUSED": json.dumps(
        {"status": state, "until": (NOW - dt.timedelta(hours=until_h)).isoformat(), "reason": "x"})
    # 24 h pause that just ended: 1440 minutes, nothing left to an agent
    assert paused(_versions((24, status(0))), NOW) == pytest.approx(1440)
    # 10 h paused, resumed, 2 h paused again and still on
    history = _versions((20, status(0)), (10, json.dumps({"status": "ACTIVE"})), (2, status(-5)))
    assert paused(history, NOW) == pytest.approx(12 * 60)
    # a pause from before the 48 h window counts only within it; an until without a zone is UTC
    naive = json.dumps({"status": "PAUSED", "until": (NOW - dt.timedelta(hours=47)).replace(tzinfo=None).isoformat()})
    assert paused(_versions((50, naive)), NOW) == pytest.approx(60)
    assert paused(_versions((5, "not json"), (4, json.dumps({"status": "ACTIVE"}))), NOW) == 0


@pytest.mark.parametrize("stored", ["nan", "inf", "-1", "0"])
def test_a_stored_floor_that_is_not_a_positive_number_switches_no_limit_off(editor, stored):
    _human_sets_floor(editor, stored)
    status, body = call("adjust_floor_price", "POST", "/editors/{editor_id}/floor-price", {"editor_id": editor},
                        {"new_floor_cpm": "50"})
    assert status == 409 and "not a positive number" in body["error"], body


@pytest.mark.parametrize("value", ["e-001\n", "e:1", "e-001:2"])
def test_ids_that_would_change_an_ssm_name_are_refused(value):
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", {"editor_id": value})
    assert status == 400 and "letters, digits and _.-" in body["error"], body


def test_a_floor_price_change_is_listed_and_rolled_back(editor):
    path = "/editors/{editor_id}/floor-price"
    _human_sets_floor(editor, "1.0")
    assert call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "1.25"})[0] == 200
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", {"editor_id": editor, "hours": "1"})
    assert status == 200 and (body["changes"][0]["parameter"], body["changes"][0]["new_value"]) == ("config/floor_price", "1.25")
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "floor_price"}, {"reason": "inc-2"})
    assert status == 200 and (body["old_value"], body["value"]) == ("1.25", "1.0"), body
    # Retried (Bedrock retries a call): the default rollback would now undo the rollback, so it is refused.
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "floor_price"}, {"reason": "inc-2"})
    assert status == 409 and "is itself a rollback" in body["error"], body
    assert boto3.client("ssm").get_parameter(Name=f"/adops/editors/{editor}/config/floor_price")["Parameter"]["Value"] == "1.0"
    # A rollback keeps the adjust tool's guardrails: 1.0 -> 0.75 (-25%) is allowed, back to 1.0 (+33%) is not.
    assert call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "0.75"})[0] == 200
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "floor_price"})
    assert status == 422 and "exceeds the 30% limit" in body["error"], body
    # A floor price someone stored by hand that is not a number: both tools say so.
    _human_sets_floor(editor, "n/a")
    for status, body in (call("adjust_floor_price", "POST", path, {"editor_id": editor}, {"new_floor_cpm": "0.8"}),
                         call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                              {"editor_id": editor, "config_key": "floor_price"})):
        assert status == 409 and "'n/a' is not a number" in body["error"], body


def test_pause_and_resume_demand_partner(aws_endpoint):
    partner = f"p-{uuid.uuid4().hex[:6]}"
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/pause", {"partner": partner}, {})
    assert status == 400 and "'reason' is required" in body["error"]
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/pause", {"partner": partner},
                        {"reason": "inc-7 timeouts 40%", "duration_minutes": "30"})
    assert status == 200 and body["status"] == "PAUSED"
    stored = json.loads(boto3.client("ssm").get_parameter(Name=f"/adops/partners/{partner}/status")["Parameter"]["Value"])
    assert stored["status"] == "PAUSED" and stored["reason"] == "inc-7 timeouts 40%"
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/resume", {"partner": partner},
                        {"reason": "\U0001f600" * 500})       # 500 characters, as the tool allows
    assert status == 200 and body["status"] == "ACTIVE" and body["version"] == 2, body
    # within SSM's 4,096 characters for a standard parameter (the endpoint does not check it; AWS does)
    assert len(boto3.client("ssm").get_parameter(Name=f"/adops/partners/{partner}/status")["Parameter"]["Value"]) <= 4096
    # pausing again replaces what is left of a pause; the time already paused counts (here, seconds)
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/pause", {"partner": partner},
                        {"reason": "inc-8", "duration_minutes": "600"})
    assert status == 200 and 0 <= body["paused_minutes_before"] < 5, body
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/pause", {"partner": partner},
                        {"reason": "inc-8", "duration_minutes": "1440"})
    assert status == 409 and "a human has to decide" in body["error"], body


def test_aws_errors_become_502_for_the_agent(monkeypatch, aws_endpoint):
    # Point the tool at a port where nothing listens: a real connection failure, not a fake client.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", {"editor_id": "e-1"})
    assert status == 502 and "AWS call failed" in body["error"]


def test_orchestrator_prompt_and_stream_parsing():
    tool = load_handler("invoke_orchestrator")
    event = {"detail": {"incident_id": "inc-9", "editor_id": "e-1", "severity": "HIGH", "problem_type": "LATENCY_ISSUE",
                        "metrics_affected": 3, "evidence": ["bid_latency_ms +180%"],
                        "episode": {"episode_id": "inc-7", "composites": 3, "escalated": False}}}
    session, prompt = tool.build_prompt(event)
    # The episode's session: an escalation of the incident continues what the agent found before.
    assert session == "inc-7" and "HIGH LATENCY_ISSUE" in prompt and "bid_latency_ms +180%" in prompt
    assert '"episode_id": "inc-7"' in prompt      # the agent sees that the incident is ongoing
    del event["detail"]["episode"]
    assert tool.build_prompt(event)[0] == "inc-9"  # a composite without an episode: its own session
    with pytest.raises(tool.InvalidIncident, match="missing"):
        tool.build_prompt({"detail": {"incident_id": "x"}})
    text = tool.collect_completion([{"chunk": {"bytes": b'Here: {"root_cause": "partner X slow", '}},
                                    {"trace": {}}, {"chunk": {"bytes": b'"needs_human": false}'}}])
    assert tool.parse_analysis(text) == {"structured": True, "root_cause": "partner X slow", "needs_human": False}
    assert tool.parse_analysis("no json") == {"structured": False, "text": "no json"}


def test_orchestrator_client_waits_for_the_whole_agent_turn(aws_endpoint):
    """botocore's default read timeout (60 s) ended the agent's turn long before the 600 s the
    function and the workflow allow it; and a read timeout must not send InvokeAgent again."""
    from deploy.cloudformation.render import render

    tool = load_handler("invoke_orchestrator")
    function = render("cloud-only")["Resources"]["InvokeOrchestratorFunction"]["Properties"]
    asl = json.loads((LAMBDA_DIR.parent / "stepfunctions" / "critical_incident_workflow_agents.asl.json").read_text())
    assert tool.INVOKE_BUDGET_SECONDS == function["Timeout"] == asl["States"]["InvokeOrchestratorAgent"]["TimeoutSeconds"]
    config = tool.agent_runtime_client().meta.config
    assert tool.INVOKE_BUDGET_SECONDS - 60 <= config.read_timeout < tool.INVOKE_BUDGET_SECONDS
    assert config.connect_timeout <= 30
    assert config.retries["total_max_attempts"] == 1


def test_recent_changes_list_every_partner_pause_beside_the_editors_changes(editor):
    """Reported: the orchestrator is told to check with getRecentChanges whether an episode's earlier
    actions hold, but a pause lives under /adops/partners/, which the tool did not read."""
    partner = f"p-{uuid.uuid4().hex[:6]}"
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=f"/adops/partners/{partner}/adapter_version", Value="3", Type="String")  # not a status
    status, body = call("pause_demand_partner", "POST", "/partners/{partner}/pause", {"partner": partner},
                        {"reason": f"inc-9 on {editor}", "duration_minutes": "30"})
    assert status == 200, body
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", {"editor_id": editor, "hours": "1"})
    assert status == 200, body
    mine = [c for c in body["partner_status_changes"] if c["partner"] == partner]
    assert len(mine) == 1 and mine[0]["old_value"] is None and mine[0]["version"] == 1
    assert json.loads(mine[0]["new_value"])["status"] == "PAUSED" and editor in json.loads(mine[0]["new_value"])["reason"]
    assert body["changes"] == []        # the editor's own configuration did not change


def test_a_secure_string_is_not_rolled_back_as_its_ciphertext(editor):
    """Reported: read without decryption, a SecureString's value is ciphertext, and the rollback wrote
    it back as the new setting."""
    ssm = boto3.client("ssm")
    name = f"/adops/editors/{editor}/config/partner_api_key"
    ssm.put_parameter(Name=name, Value="key-1", Type="SecureString")
    ssm.put_parameter(Name=name, Value="key-2", Type="SecureString", Overwrite=True)
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "partner_api_key"}, {"reason": "inc-10"})
    assert status == 422 and "SecureString" in body["error"], body
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "key-2"
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 2
    # a version that was a SecureString before the key became a String is refused too
    ssm.put_parameter(Name=name, Value="plain-3", Type="String", Overwrite=True)
    status, body = call("rollback_config", "POST", "/editors/{editor_id}/config/{config_key}/rollback",
                        {"editor_id": editor, "config_key": "partner_api_key", "to_version": "2"}, {"reason": "inc-10"})
    assert status == 422 and "version 2 is a SecureString" in body["error"], body
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "plain-3"


def _response_bytes(tool: str, method: str, path: str, params: dict) -> int:
    event = {"messageVersion": "1.0", "actionGroup": tool, "apiPath": path, "httpMethod": method,
             "parameters": [{"name": k, "type": "string", "value": v} for k, v in params.items()]}
    return len(json.dumps(load_handler(tool).handler(event, None)).encode())


BEDROCK_LAMBDA_RESPONSE_MAX_BYTES = 25 * 1024     # Bedrock Agents' limit on an action group Lambda's answer


def test_a_days_metrics_fit_one_answer_at_a_coarser_period(editor):
    """The schema allows 1440 minutes of ten metrics: 406,292 bytes at the default period (4 h: 65,902),
    over the 25 KB Bedrock takes from a tool, so the agent's call failed. The period is raised to fit
    150 datapoints, and the answer says so; the whole day is still covered."""
    now = dt.datetime.now(dt.timezone.utc)
    names = ("rpm", "fill_rate", "bid_latency_ms", "error_rate", "partner_timeouts", "cache_hit_rate",
             "impressions", "revenue", "bid_rate", "win_rate")
    data = [{"MetricName": name, "Dimensions": [{"Name": "EditorId", "Value": editor}],
             "Timestamp": now - dt.timedelta(minutes=5 * i), "Value": 1000.0 / (i + 3)}
            for name in names for i in range(288)]
    cloudwatch = boto3.client("cloudwatch")
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AdOps", MetricData=data[start:start + 1000])
    params = {"editor_id": editor, "minutes": "1440"}
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", params)
    assert status == 200, body
    assert body["period_seconds"] == 5760 and "300 s asked" in body["period_note"]
    assert _response_bytes("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", params) \
        <= BEDROCK_LAMBDA_RESPONSE_MAX_BYTES
    assert sum(len(points) for points in body["metrics"].values()) <= 150
    oldest = min(dt.datetime.fromisoformat(p["timestamp"]) for p in body["metrics"]["rpm"])
    assert oldest <= now - dt.timedelta(hours=20)
    # the default span and period are what they were
    status, body = call("get_editor_metrics", "GET", "/editors/{editor_id}/metrics", {"editor_id": editor})
    assert status == 200 and body["period_seconds"] == 300 and "period_note" not in body


def test_many_changes_fit_one_answer_newest_first_with_the_rest_counted(editor):
    """Thirty versions of a long JSON configuration value (each listed with the one before it): the
    answer keeps the newest that fit in what an agent's tool call takes, and counts the ones left out.
    The body travels as a JSON string, its quotes escaped again: cut at 20,000 bytes of body, such
    an answer was 27,457 bytes whole."""
    ssm = boto3.client("ssm")
    name = f"/adops/editors/{editor}/config/ad_slots"
    for version in range(1, 31):
        value = json.dumps({"version": version, "slots": [{"id": f"slot-{k}", "size": "300x250"} for k in range(40)]})
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True, Description=f"change {version}")
    params = {"editor_id": editor, "hours": "1"}
    status, body = call("get_recent_changes", "GET", "/editors/{editor_id}/changes", params)
    assert status == 200, body
    assert [c["version"] for c in body["changes"]] == list(range(30, 30 - len(body["changes"]), -1))
    assert body["omitted"]["changes"] == 30 - len(body["changes"]) > 0
    assert _response_bytes("get_recent_changes", "GET", "/editors/{editor_id}/changes", params) \
        <= BEDROCK_LAMBDA_RESPONSE_MAX_BYTES
