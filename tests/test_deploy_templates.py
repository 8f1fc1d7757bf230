"""Static checks of deploy/: cfn-lint, ASL structure, and that the files that must agree do agree."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.cloudformation.render import load_template, render, render_json
from deploy.stepfunctions.validate import placeholders, validate_file, validate_machine

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
TEMPLATES = sorted((DEPLOY / "cloudformation").glob("*.yaml"))
ASL_FILES = sorted((DEPLOY / "stepfunctions").glob("*.asl.json"))
AGENT_FILES = sorted((DEPLOY / "bedrock" / "agents").glob("*.json"))
DEPLOY_README = DEPLOY / "README.md"


def cfn_lint(path: Path) -> subprocess.CompletedProcess:
    # cfn-lint has no __main__ module; its console script sits next to this interpreter.
    return subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(path)], capture_output=True, text=True, timeout=300)


def test_templates_are_found():
    assert {p.name for p in TEMPLATES} == {"core.yaml", "cloud-only.yaml"}
    assert {p.name for p in ASL_FILES} == {"critical_incident_workflow.asl.json", "critical_incident_workflow_agents.asl.json"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_clean_on_source_and_rendered_template(template, tmp_path):
    source = cfn_lint(template)
    assert source.returncode == 0, source.stdout + source.stderr
    rendered = tmp_path / f"{template.stem}.json"
    rendered.write_text(render_json(template))
    assert "@asl:" not in rendered.read_text() and "@text:" not in rendered.read_text()
    result = cfn_lint(rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_does_reject_an_invalid_event_pattern(tmp_path):
    """Guards the test above: the linter really inspects what we render."""
    doc = render("core")
    doc["Resources"]["MultiMetricAnomalyRule"]["Properties"]["EventPattern"]["detail"]["metrics_affected"] = \
        [{"numeric": [">", "two"]}]
    doc["Resources"]["MetricsStream"]["Properties"]["RetentionPeriodHours"] = 100000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    result = cfn_lint(bad)
    assert result.returncode & 2, result.stdout  # bit 2 = errors


@pytest.mark.parametrize("asl", ASL_FILES, ids=lambda p: p.name)
def test_asl_documents_are_structurally_valid(asl):
    values = {name: f"value-of-{name}" for name in placeholders(asl.read_text())}
    assert validate_file(asl, values) == []


@pytest.mark.parametrize("broken,expected", [
    ({"StartAt": "Nope", "States": {"A": {"Type": "Pass", "End": True}}}, "StartAt 'Nope' is not a state"),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}, "'B' is not a state"),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}, "exactly one of Next or End"),
    ({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}, "B": {"Type": "Succeed"}}}, "not reachable"),
    ({"StartAt": "A", "States": {"A": {"Type": "Wiat", "Seconds": 1, "End": True}}}, "unknown Type 'Wiat'"),
    ({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": [], "Default": "A"}}}, "at least one rule"),
    ({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:x", "End": True,
                                       "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Gone"}]}}}, "Catch[0].Next"),
    ({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True,
                                       "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass"}}}]}}}, "Branches[0]"),
])
def test_asl_validator_catches_broken_definitions(broken, expected):
    errors = validate_machine(broken)
    assert any(expected in e for e in errors), errors


def _sub_variables(template: str, logical_id: str) -> set[str]:
    definition = load_template(DEPLOY / "cloudformation" / template)["Resources"][logical_id]["Properties"]["DefinitionString"]
    return set(definition["Fn::Sub"][1])


@pytest.mark.parametrize("template,logical_id,asl", [
    ("core.yaml", "CriticalIncidentWorkflow", "critical_incident_workflow.asl.json"),
    ("cloud-only.yaml", "CriticalIncidentAgentWorkflow", "critical_incident_workflow_agents.asl.json"),
])
def test_asl_placeholders_match_the_template_substitutions(template, logical_id, asl):
    assert placeholders((DEPLOY / "stepfunctions" / asl).read_text()) == _sub_variables(template, logical_id)


@pytest.mark.aws
@pytest.mark.parametrize("asl", ASL_FILES, ids=lambda p: p.name)
def test_moto_accepts_the_asl_documents(aws_endpoint, asl):
    import boto3

    sfn = boto3.client("stepfunctions")
    text = asl.read_text()
    for name in placeholders(text):
        text = text.replace("${%s}" % name, f"arn:aws:lambda:us-east-1:123456789012:function:{name}")
    arn = sfn.create_state_machine(name=f"validate-{asl.stem.replace('.', '-')}", definition=text,
                                   roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]
    sfn.delete_state_machine(stateMachineArn=arn)
    from botocore.exceptions import ClientError

    # moto's parser rejects it (AWS would say InvalidDefinition; moto sends no error code).
    with pytest.raises(ClientError, match="ASLParserException"):
        sfn.create_state_machine(name="validate-broken", definition=text.replace('"StartAt"', '"StartsAt"', 1),
                                 roleArn="arn:aws:iam::123456789012:role/x")


# ------------------------------------------------------------------ agents and tools agree

def _cloud_resources() -> dict:
    return render("cloud-only")["Resources"]


def _agent_resources() -> dict[str, dict]:
    return {r["Properties"]["AgentName"]: r["Properties"] for r in _cloud_resources().values()
            if r["Type"] == "AWS::Bedrock::Agent"}


def test_every_agent_definition_is_deployed_with_its_instruction_and_tools():
    import botocore.session

    # Bedrock's bounds, from botocore's model of CreateAgent (the test allowed 20,000 characters; the
    # API takes 4,000, and cfn-lint's schema has no maximum)
    create_agent = botocore.session.get_session().get_service_model("bedrock-agent") \
        .operation_model("CreateAgent").input_shape.members
    deployed = _agent_resources()
    definitions = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in AGENT_FILES}
    assert set(deployed) == set(definitions)
    for name, agent in definitions.items():
        props = deployed[name]
        assert props["Instruction"] == agent["instruction"]
        for field in ("instruction", "description"):
            bounds = create_agent[field].metadata
            assert bounds["min"] <= len(agent[field]) <= bounds["max"], (name, field, len(agent[field]), bounds)
        assert [g["ActionGroupName"] for g in props["ActionGroups"]] == agent["action_groups"]
        assert props["AgentCollaboration"] == agent["collaboration"]
        for group in props["ActionGroups"]:
            schema = json.loads(group["ApiSchema"]["Payload"])
            assert schema == json.loads((DEPLOY / "bedrock" / "action_groups" / f"{group['ActionGroupName']}.openapi.json").read_text())


def test_orchestrator_delegates_to_one_specialist_per_category():
    orchestrator = json.loads((DEPLOY / "bedrock" / "agents" / "orchestrator.json").read_text())
    specialists = [json.loads((DEPLOY / "bedrock" / "agents" / f"{c['agent']}.json").read_text())
                   for c in orchestrator["collaborators"]]
    covered = [cat for s in specialists for cat in s["categories"]]
    # Every category the classifier emits (detectors/classifier.py) has exactly one specialist,
    # and the orchestrator names those and no other (it named an UNKNOWN no composite carries).
    from detectors.classifier import CATEGORY_OF

    assert sorted(covered) == sorted(set(CATEGORY_OF.values())) == sorted(orchestrator["categories"])
    deployed = _agent_resources()[orchestrator["name"]]
    assert [c["CollaboratorName"] for c in deployed["AgentCollaborators"]] == \
        [f"{c['agent']}-specialist" for c in orchestrator["collaborators"]]


def _load_handler(tool: str):
    sys.path.insert(0, str(DEPLOY / "lambda" / "shared"))
    spec = importlib.util.spec_from_file_location(f"adops_lambda_{tool}_routes", DEPLOY / "lambda" / tool / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("schema_file", sorted((DEPLOY / "bedrock" / "action_groups").glob("*.openapi.json")),
                         ids=lambda p: p.name)
def test_openapi_operations_are_exactly_the_handler_routes(schema_file):
    tool = schema_file.name.removesuffix(".openapi.json")
    schema = json.loads(schema_file.read_text())
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert operations == set(_load_handler(tool).ROUTES)
    for path, ops in schema["paths"].items():
        for op in ops.values():
            assert op["operationId"] and op["description"]
            path_params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert path_params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}


@pytest.mark.parametrize("schema_file", sorted((DEPLOY / "bedrock" / "action_groups").glob("*.openapi.json")),
                         ids=lambda p: p.name)
def test_openapi_schemas_keep_to_openapi_3_0(schema_file):
    """The action groups' schemas go to Bedrock whole (ApiSchema.Payload): only OpenAPI 3.0's top-level
    fields or x- extensions, and no empty `required` list (3.0 asks for at least one entry)."""
    schema = json.loads(schema_file.read_text())
    allowed = {"openapi", "info", "servers", "paths", "components", "security", "tags", "externalDocs"}
    assert schema["openapi"].startswith("3.0")
    assert not {k for k in schema if k not in allowed and not k.startswith("x-")}

    def empty_required(node):
        if isinstance(node, dict):
            return node.get("required") == [] or any(empty_required(v) for v in node.values())
        return isinstance(node, list) and any(empty_required(v) for v in node)

    assert not empty_required(schema)


def test_flink_property_groups_exist_in_application_properties():
    app = json.loads((DEPLOY.parent / "flink_jobs" / "application_properties.json").read_text())
    known = {g["PropertyGroupId"]: set(g["PropertyMap"]) for g in app}
    flink = next(r for r in _cloud_resources().values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")
    props = flink["Properties"]
    assert props["RuntimeEnvironment"] == "FLINK-2_2"
    groups = props["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]
    for group in groups:
        if group["PropertyGroupId"] == "kinesis.analytics.flink.run.options":
            assert group["PropertyMap"]["python"] == "main.py"
            continue
        assert group["PropertyGroupId"] in known, group["PropertyGroupId"]
        unknown = set(group["PropertyMap"]) - known[group["PropertyGroupId"]]
        assert not unknown, f"{group['PropertyGroupId']}: keys the job does not read: {unknown}"


def test_the_job_loads_the_properties_the_template_gives_it(tmp_path):
    """On the service, /etc/flink/application_properties.json holds every group of the template,
    the run options included; the job must load it as it is (it used to refuse the run-options group
    as unknown and exit before starting)."""
    from flink_jobs.config import JobConfig

    flink = next(r for r in _cloud_resources().values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")
    groups = flink["Properties"]["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]
    assert any(g["PropertyGroupId"] == "kinesis.analytics.flink.run.options" for g in groups)
    as_on_the_service = [{"PropertyGroupId": g["PropertyGroupId"],
                          "PropertyMap": {k: v if isinstance(v, str) else f"resolved-{k}"
                                          for k, v in g["PropertyMap"].items()}} for g in groups]
    path = tmp_path / "application_properties.json"
    path.write_text(json.dumps(as_on_the_service))
    cfg = JobConfig.load(properties_file=path, environ={})
    assert cfg.get_str("job", "source") == "kinesis"
    assert cfg.get_str("job", "python.execution.mode") == "process"


def test_the_metrics_tool_reads_the_namespace_the_job_writes():
    """getEditorMetrics read a hard-coded AdOps whatever cloudwatch.namespace the job was given: with
    another namespace the orchestrator's first check read empty series, with no error. One template
    parameter now sets both."""
    resources = _cloud_resources()
    flink = next(r for r in resources.values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")
    groups = flink["Properties"]["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]
    [cloudwatch] = [g["PropertyMap"] for g in groups if g["PropertyGroupId"] == "cloudwatch"]
    tool_environment = resources["GetEditorMetricsFunction"]["Properties"]["Environment"]["Variables"]
    assert cloudwatch["namespace"] == tool_environment["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    app = json.loads((DEPLOY.parent / "flink_jobs" / "application_properties.json").read_text())
    [local] = [g["PropertyMap"] for g in app if g["PropertyGroupId"] == "cloudwatch"]
    assert render("cloud-only")["Parameters"]["MetricsNamespace"]["Default"] == local["namespace"] == \
        _load_handler("get_editor_metrics").DEFAULT_NAMESPACE


def test_agent_analysis_rule_uses_the_core_multi_metric_pattern():
    core = render("core")["Resources"]["MultiMetricAnomalyRule"]["Properties"]["EventPattern"]
    cloud = _cloud_resources()["MultiMetricAnomalyAgentAnalysisRule"]["Properties"]["EventPattern"]
    assert core == cloud


def _import_names(node, found=None) -> set[str]:
    found = set() if found is None else found
    if isinstance(node, dict):
        if "Fn::ImportValue" in node:
            value = node["Fn::ImportValue"]
            assert isinstance(value, dict) and "Fn::Sub" in value, value
            template = value["Fn::Sub"]
            assert template.startswith("${CoreStackName}-"), template
            found.add(template.removeprefix("${CoreStackName}-"))
        for child in node.values():
            _import_names(child, found)
    elif isinstance(node, list):
        for child in node:
            _import_names(child, found)
    return found


def test_every_cloud_only_import_is_a_core_export():
    core_exports = set()
    for output in render("core")["Outputs"].values():
        if "Export" in output:
            name = output["Export"]["Name"]["Fn::Sub"]
            assert name.startswith("${AWS::StackName}-")
            core_exports.add(name.removeprefix("${AWS::StackName}-"))
    imports = _import_names(render("cloud-only"))
    assert imports, "cloud-only imports nothing from the core stack?"
    assert imports <= core_exports, f"imported but not exported by core.yaml: {imports - core_exports}"


@pytest.mark.aws
def test_core_stack_exports_are_listed_by_cloudformation(core_stack):
    import boto3

    exports = {e["Name"]: e["Value"] for e in boto3.client("cloudformation").list_exports()["Exports"]}
    assert exports["adops-core-MetricsStreamArn"] == core_stack["metrics_stream_arn"]
    assert exports["adops-core-EventBusName"] == core_stack["bus_name"]
    assert exports["adops-core-CodeBucketName"].startswith("adops-code-")


# ------------------------------------------------------------------ the documented AWS deployment

#: Bytes: `aws cloudformation deploy` refuses a larger --template-file unless it may upload it (--s3-bucket).
CLI_INLINE_TEMPLATE_LIMIT = 51_200
#: Bytes: CloudFormation's limit for a template it reads from S3.
S3_TEMPLATE_LIMIT = 1_000_000


def _documented_aws_commands(service: str, operation: str) -> list[dict[str, str | bool]]:
    """Every `aws <service> <operation> ...` of deploy/README.md's code blocks, in order, as {--flag: value}
    (True for a flag without one); continuation lines joined as the shell joins them."""
    logical, pending = [], ""
    for line in DEPLOY_README.read_text().splitlines():
        if not line.startswith("    "):
            pending = ""
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
        else:
            logical.append(pending)
            pending = ""
    commands = []
    for text in logical:
        if not text.startswith(f"aws {service} {operation} "):
            continue
        words = shlex.split(text, comments=True)[3:]
        flags: dict[str, str | bool] = {}
        for i, word in enumerate(words):
            if word.startswith("--"):
                following = words[i + 1] if i + 1 < len(words) else "--"
                flags[word] = True if following.startswith("--") else following
        commands.append(flags)
    return commands


def test_every_template_is_deployed_in_a_form_the_cli_accepts():
    """The rendered cloud-only template is about 82 KB; the CLI sends one over 51,200 bytes only
    through S3, so its documented deploy needs --s3-bucket (it had none, and failed on AWS)."""
    deploys = {Path(str(flags["--template-file"])).stem: flags
               for flags in _documented_aws_commands("cloudformation", "deploy")}
    assert set(deploys) == {t.stem for t in TEMPLATES}
    for template in TEMPLATES:
        size = len(render_json(template).encode())  # what `render --out` writes
        assert size <= S3_TEMPLATE_LIMIT, f"{template.name} renders to {size} bytes"
        bucket = deploys[template.stem].get("--s3-bucket")
        if size > CLI_INLINE_TEMPLATE_LIMIT:
            assert isinstance(bucket, str) and bucket, \
                f"{template.name} renders to {size} bytes; deploy/README.md deploys it without --s3-bucket"


def _parameters_as_the_cli_sends_them(flags: dict[str, str | bool], input_shape) -> dict:
    from botocore import xform_name

    members = {f"--{xform_name(name, '-')}": (name, shape) for name, shape in input_shape.members.items()}
    unknown = set(flags) - set(members)
    assert not unknown, f"not parameters of {input_shape.name}: {unknown}"
    params = {}
    for flag, value in flags.items():
        name, shape = members[flag]
        params[name] = json.loads(value) if shape.type_name in ("structure", "list", "map") else value
    return params


def _enum_violations(value, shape, where: str = "") -> list[str]:
    """botocore's validator checks names and types, not enum values: these are checked here."""
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} is not one of {shape.enum}"]
    if shape.type_name == "structure" and isinstance(value, dict):
        return [v for key, item in value.items() if key in shape.members
                for v in _enum_violations(item, shape.members[key], f"{where}.{key}")]
    if shape.type_name == "list" and isinstance(value, list):
        return [v for item in value for v in _enum_violations(item, shape.member, f"{where}[]")]
    return []


def test_the_flink_application_is_started_as_documented():
    """CloudFormation creates the Managed Flink application READY, not RUNNING: the documented deployment
    starts it after the cloud-only stack, the first time without a snapshot to restore, and every
    documented start-application is a valid StartApplication request."""
    import botocore.session
    from botocore.validate import validate_parameters

    start = botocore.session.get_session().get_service_model("kinesisanalyticsv2") \
        .operation_model("StartApplication").input_shape
    starts = _documented_aws_commands("kinesisanalyticsv2", "start-application")
    assert starts, "deploy/README.md does not start the Managed Flink application"
    requests = [_parameters_as_the_cli_sends_them(flags, start) for flags in starts]
    for request in requests:
        validate_parameters(request, start)  # raises ParamValidationError on a wrong name or type
        assert _enum_violations(request, start) == []
    first = requests[0]["RunConfiguration"]["ApplicationRestoreConfiguration"]["ApplicationRestoreType"]
    assert first == "SKIP_RESTORE_FROM_SNAPSHOT"  # a new application has no snapshot

    text = DEPLOY_README.read_text()
    assert text.index("--template-file build/cloudformation/cloud-only.json") < text.index(
        "aws kinesisanalyticsv2 start-application")
    # The name comes from the cloud-only stack's output for the application.
    [cloud_deploy] = [f for f in _documented_aws_commands("cloudformation", "deploy")
                      if str(f["--template-file"]).endswith("cloud-only.json")]
    assignment = re.search(r"APP=\$\(aws cloudformation describe-stacks --stack-name (\S+)\s*\\?\s*"
                           r"--query \"Stacks\[0\]\.Outputs\[\?OutputKey=='(\w+)'\]\.OutputValue\"", text)
    assert assignment, "deploy/README.md does not set APP from the cloud-only stack's outputs"
    assert assignment.group(1) == cloud_deploy["--stack-name"]
    assert render("cloud-only")["Outputs"][assignment.group(2)]["Value"] == {"Ref": "FlinkApplication"}
    assert all(flags["--application-name"] == "$APP" for flags in starts)


# ------------------------------------------------------------------ the workflows' retries

def _service_tasks(asl: Path) -> dict[str, dict]:
    states = json.loads(asl.read_text())["States"]
    return {name: state for name, state in states.items() if state["Type"] == "Task"
            and state["Resource"].split(":::")[-1].split(":")[0] in ("dynamodb", "sns")}


@pytest.mark.parametrize("asl", ASL_FILES, ids=lambda p: p.name)
def test_every_dynamodb_and_sns_task_retries_a_transient_failure(asl):
    """One throttled or failed call must not lose a page or an incident record: every DynamoDB and SNS
    task retries with backoff (States.TaskFailed; throttling only for a first-taker write, below).
    A refused condition is an answer, not a failure:
    it must reach the task's Catch at once (States.TaskFailed matches it too, so a MaxAttempts 0
    retrier for it has to come first)."""
    tasks = _service_tasks(asl)
    assert tasks
    first_takers = 0
    for name, state in tasks.items():
        retriers = state.get("Retry", [])
        if state["Parameters"].get("ConditionExpression", "").startswith("attribute_not_exists("):
            # A first-taker write (the record, the episode claim): retried on throttling only, which
            # DynamoDB answers before writing. After a timeout or a 5xx the write may be applied, and
            # a retry would meet its own write, take it for another's, and drop the page.
            first_takers += 1
            assert not [r for r in retriers if {"States.TaskFailed", "States.ALL"} & set(r["ErrorEquals"])], name
            transient = [r for r in retriers if "DynamoDB.ThrottlingException" in r["ErrorEquals"]]
            assert transient and "DynamoDB.ProvisionedThroughputExceededException" in transient[0]["ErrorEquals"], name
        else:
            transient = [r for r in retriers if "States.TaskFailed" in r["ErrorEquals"]]
        assert transient, f"{name} does not retry"
        assert transient[0].get("MaxAttempts", 3) >= 2 and transient[0].get("BackoffRate", 2.0) > 1, name
        if "ConditionExpression" in state["Parameters"]:
            first_match = next(r for r in retriers if {"DynamoDB.ConditionalCheckFailedException", "States.TaskFailed",
                                                       "States.ALL"} & set(r["ErrorEquals"]))
            assert first_match == {"ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"], "MaxAttempts": 0}, name
    assert first_takers == 2


def test_the_documented_deploy_puts_new_code_under_new_keys_the_stack_points_to():
    """CloudFormation updates a Lambda's code or the Managed Flink application's only when the key the
    stack names changes: uploading over the same key and deploying again left the old code running.
    The documented commands upload under a content hash and hand the stack those keys."""
    text = DEPLOY_README.read_text()
    assert re.search(r"^    FLINK_CODE=\$\(sha256sum build/adops-flink\.zip \|", text, re.M), \
        "deploy/README.md does not name the Flink package's key by its content"
    assert re.search(r"^    LAMBDA_CODE=\$\(cat build/lambda/\*\.zip \| sha256sum", text, re.M), \
        "deploy/README.md does not name the functions' keys by their content"
    uploads = re.findall(r"aws s3 cp build/(\S+) s3://\$BUCKET/(\S+)", text)
    assert ("adops-flink.zip", "flink/$FLINK_CODE/adops-flink.zip") in uploads
    assert ("lambda/", "lambda/$LAMBDA_CODE/") in uploads
    [cloud_deploy] = [line for line in re.sub(r"\\\n\s*", " ", text).splitlines()
                      if "aws cloudformation deploy" in line and "cloud-only.json" in line]
    overrides = dict(p.split("=", 1) for p in cloud_deploy.split("--parameter-overrides", 1)[1].split())
    assert overrides == {"FlinkCodeKey": "flink/$FLINK_CODE/adops-flink.zip",
                         "LambdaCodeKeyPrefix": "lambda/$LAMBDA_CODE/"}
    parameters = render("cloud-only")["Parameters"]
    assert set(overrides) <= set(parameters)
    resources = render("cloud-only")["Resources"]
    assert resources["FlinkApplication"]["Properties"]["ApplicationConfiguration"]["ApplicationCodeConfiguration"][
        "CodeContent"]["S3ContentLocation"]["FileKey"] == {"Ref": "FlinkCodeKey"}
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    assert functions and all("${LambdaCodeKeyPrefix}" in json.dumps(f["Properties"]["Code"]["S3Key"]) for f in functions)


def test_the_agents_may_call_the_model_through_an_inference_profile():
    """FoundationModel may be an inference profile's id (newer models are offered only through one);
    the agents' role allowed foundation-model ARNs only, so such an agent's every call was denied."""
    role = _cloud_resources()["AgentRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    invoke = [s for s in statements if "bedrock:InvokeModel" in s["Action"]]
    assert invoke and any("inference-profile/*" in json.dumps(s["Resource"]) for s in invoke)
    assert any("bedrock:GetInferenceProfile" in s["Action"] and "inference-profile/*" in json.dumps(s["Resource"])
               for s in statements)


def test_the_job_and_the_security_rule_cut_findings_at_one_severity():
    """The job forwards findings from eventbridge.security.min.severity, and security-incident-detected
    alerted from a fixed 7: a deployment that lowered the job's cut put findings on the bus that no rule
    alerted on. Each stack has a SecurityMinSeverity parameter (an export could not be changed while the
    other stack imports it), with the same default; the rule and the job's property read them."""
    core = render("core")
    pattern = core["Resources"]["SecurityIncidentDetectedRule"]["Properties"]["EventPattern"]["Fn::Sub"]
    at_five = json.loads(pattern.replace("${SecurityMinSeverity}", "5"))
    assert at_five["detail"]["severity"] == [{"numeric": [">=", 5]}]
    cloud = render("cloud-only")
    assert core["Parameters"]["SecurityMinSeverity"]["Default"] == cloud["Parameters"]["SecurityMinSeverity"]["Default"] == 7
    assert "Export" not in core["Outputs"]["SecurityMinSeverity"]
    flink = next(r for r in _cloud_resources().values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")
    groups = flink["Properties"]["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]
    [eventbridge] = [g["PropertyMap"] for g in groups if g["PropertyGroupId"] == "eventbridge"]
    assert eventbridge["security.min.severity"] == {"Ref": "SecurityMinSeverity"}
