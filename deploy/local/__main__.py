"""python -m deploy.local up|down|status [--port N] [--state-dir DIR] [--json]

up      start the embedded AWS endpoint on 127.0.0.1:4566 in the background (pid
        file, log file and health check under .local-aws/), enable Step Functions
        execution, deploy the core stack (ShardCount=2, LocalObservation=true).
        If AWS_ENDPOINT_URL is set, or something already answers on the port,
        that endpoint is used instead (the stack is still deployed if absent).
        An existing stack is reused, or updated when core.yaml changed.
down    stop the server `up` started (pid file, verified to be ours) and nothing else.
status  the endpoint, the provisioned resources, and whether the workflow can execute.

Port and state directory default to 4566 and <repo>/.local-aws; ADOPS_LOCAL_PORT
and ADOPS_LOCAL_STATE_DIR override them (tests use a free port and a temp dir).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from deploy.local import endpoint as ep
from deploy.local.patches import UnsupportedMotoVersion, check_moto_version
from deploy.local.stack import CORE_STACK_NAME, LOCAL_PARAMETERS, StackDeployError, client, deploy_core_stack

PID_FILE_NAME = "server.pid.json"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).resolve()


def _read_pid_file(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / PID_FILE_NAME).read_text())
    except (OSError, ValueError):
        return None


def _resolve_endpoint(args: argparse.Namespace) -> tuple[str | None, str]:
    """(url, how it was found) for the endpoint to use, or (None, reason)."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"], "AWS_ENDPOINT_URL"
    ours = _read_pid_file(_state_dir(args))
    if ours and ep.process_is_our_server(ours["pid"], _state_dir(args)):
        return ours["url"], f"embedded (pid {ours['pid']}, started by `up`)"
    url = f"http://{args.host}:{args.port}"
    if ep.is_answering(url):
        return url, "already answering on the port (not started by us)"
    return None, f"nothing answers on {url}"


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    url, how = _resolve_endpoint(args)
    if url is None:
        try:
            check_moto_version()
        except UnsupportedMotoVersion as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            started = ep.start_endpoint(port=args.port, log_dir=state_dir, host=args.host, detach=True)
        except ep.EndpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        url, how = started.url, f"embedded (pid {started.pid}, started now)"
        (state_dir / PID_FILE_NAME).write_text(json.dumps(
            {"pid": started.pid, "port": started.port, "url": url, "log": str(started.log_file)}))
    print(f"endpoint: {url} [{how}]")
    if ep.is_moto(url):
        ep.enable_state_machine_execution(url)
    try:
        outputs = deploy_core_stack(url, LOCAL_PARAMETERS, update=True)
    except (StackDeployError, Exception) as exc:  # noqa: BLE001 - report any deploy failure plainly
        print(f"error: deploying stack {CORE_STACK_NAME} at {url} failed: {exc}", file=sys.stderr)
        return 1
    print(f"stack {CORE_STACK_NAME}: ready")
    for key in ("metrics_stream", "events_stream", "dead_letter_stream", "bus_name", "state_machine_arn"):
        print(f"  {key}: {outputs[key]}")
    for rule, queue in outputs["observation_queues"].items():
        print(f"  observation queue for {rule}: {queue}")
    print(f"\nexport AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    ours = _read_pid_file(state_dir)
    if not ours:
        print(f"nothing to stop: no pid file in {state_dir} (down only stops a server `up` started)")
        return 0
    if ep.stop_pid(ours["pid"], state_dir=state_dir):
        print(f"stopped embedded endpoint pid {ours['pid']} ({ours['url']})")
    else:
        print(f"pid {ours['pid']} is not our server any more; not touching it")
    (state_dir / PID_FILE_NAME).unlink(missing_ok=True)
    return 0


def collect_status(url: str) -> dict[str, Any]:
    """What the endpoint hosts for this project; raises on connection errors."""
    kinesis, events, sqs, sfn, cfn = (client(s, url) for s in ("kinesis", "events", "sqs", "stepfunctions", "cloudformation"))
    status: dict[str, Any] = {"endpoint": url}
    stacks = [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == CORE_STACK_NAME]
    status["stack"] = stacks[0]["StackStatus"] if stacks else "ABSENT"
    status["streams"] = kinesis.list_streams()["StreamNames"]
    buses = [b["Name"] for b in events.list_event_buses()["EventBuses"]]
    status["buses"] = buses
    rules = {}
    for bus in buses:
        for rule in events.list_rules(EventBusName=bus)["Rules"]:
            targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus)["Targets"]
            rules[f"{bus}/{rule['Name']}"] = [t["Arn"] for t in targets]
    status["rules"] = rules
    status["queues"] = sqs.list_queues().get("QueueUrls", [])
    machines = sfn.list_state_machines()["stateMachines"]
    status["state_machines"] = [m["stateMachineArn"] for m in machines]
    has_workflow = any(m["name"] == "critical-incident-workflow" for m in machines)
    try:
        executes, how = ep.probe_state_machine_execution(url)
    except Exception as exc:  # noqa: BLE001 - report, don't crash status
        executes, how = False, f"probe failed: {exc}"
    status["workflow_can_execute"] = bool(executes and has_workflow)
    status["workflow_execution"] = how + ("" if has_workflow else "; critical-incident-workflow is not deployed")
    return status


def cmd_status(args: argparse.Namespace) -> int:
    url, how = _resolve_endpoint(args)
    if url is None:
        print(f"endpoint: none ({how}); run `python -m deploy.local up`")
        return 1
    try:
        status = collect_status(url)
    except Exception as exc:  # noqa: BLE001
        print(f"endpoint: {url} [{how}] but querying it failed: {exc}", file=sys.stderr)
        return 1
    status["found_by"] = how
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    print(f"endpoint: {url} [{how}]")
    print(f"stack {CORE_STACK_NAME}: {status['stack']}")
    print(f"streams: {', '.join(status['streams']) or '-'}")
    print(f"event buses: {', '.join(status['buses'])}")
    for rule, targets in status["rules"].items():
        print(f"rule {rule}")
        for target in targets:
            print(f"    -> {target}")
    print("queues:" + "".join(f"\n    {q}" for q in status["queues"]))
    print("state machines:" + "".join(f"\n    {m}" for m in status["state_machines"]))
    print(f"workflow can execute: {'yes' if status['workflow_can_execute'] else 'no'} ({status['workflow_execution']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    repo_root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("ADOPS_LOCAL_PORT", ep.DEFAULT_PORT)))
    parser.add_argument("--host", default=ep.DEFAULT_HOST)
    parser.add_argument("--state-dir", default=os.environ.get("ADOPS_LOCAL_STATE_DIR", str(repo_root / ".local-aws")))
    parser.add_argument("--json", action="store_true", help="status as JSON")
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
