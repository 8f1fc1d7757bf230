"""Session fixtures shared by every test that needs AWS: the embedded endpoint and the core stack.

    def test_something(core_stack, drain_sqs):
        events = boto3.client("events")           # AWS_ENDPOINT_URL etc. are set
        events.put_events(Entries=[{..., "EventBusName": core_stack["bus_name"]}])
        got = drain_sqs(core_stack["observation_queues"]["multi-metric-anomaly"], 1,
                        predicate=lambda e: e["detail"]["incident_id"] == my_id)

The endpoint runs in its own process on a free port (never 4566, which a
developer's `python -m deploy.local up` may be using). The observation queues
are shared by the session: filter on your own ids with ``predicate``.

Every test that needs an AWS service uses this one endpoint: the connector tests
too (``aws_client`` builds their clients, ``unique_name`` keeps their streams,
buses and queues apart from everyone else's, ``bus_with_queue`` shows what a bus
delivered). Only a test that must change moto inside the serving process asks
``in_process_moto`` for a private server.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from connectors.aws import make_client
from deploy.local.endpoint import LocalEndpoint, start_endpoint
from deploy.local.observe import drain_queue
from deploy.local.stack import LOCAL_PARAMETERS, deploy_core_stack

TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEndpoint]:
    """The embedded AWS endpoint (moto + deploy/local/patches) for the whole session.

    Yields a LocalEndpoint (``.url``, ``.port``, ``.pid``, ``.log_file``); while it
    runs, AWS_ENDPOINT_URL, test credentials and us-east-1 are set in os.environ so
    plain ``boto3.client(...)`` calls and child processes use it.
    """
    log_dir: Path = tmp_path_factory.mktemp("local-aws")
    endpoint = start_endpoint(port=0, log_dir=log_dir)
    env = dict(TEST_AWS_ENV, AWS_ENDPOINT_URL=endpoint.url)
    saved = {key: os.environ.get(key) for key in [*env, "AWS_PROFILE"]}
    os.environ.pop("AWS_PROFILE", None)  # a developer profile must not override the test keys
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        endpoint.stop()


@pytest.fixture(scope="session")
def core_stack(aws_endpoint: LocalEndpoint) -> dict[str, Any]:
    """deploy/cloudformation/core.yaml deployed with the local parameters (ShardCount=2,
    LocalObservation=true, PartnerRevenueImpactThreshold=5: deploy.local.stack.LOCAL_PARAMETERS).

    Keys: metrics_stream, events_stream, dead_letter_stream (+ *_arn), bus_name,
    bus_arn, archive_name, state_machine_arn, incidents_table, *_topic_arn,
    observation_queues = {rule_name: queue_url}, outputs (raw stack outputs).
    """
    return deploy_core_stack(aws_endpoint.url, LOCAL_PARAMETERS)


@pytest.fixture(scope="session")
def drain_sqs(aws_endpoint: LocalEndpoint) -> Callable[..., list[Any]]:
    """drain_sqs(queue_url, count, timeout=20.0, predicate=None) -> list of message bodies.

    See deploy.local.observe.drain_queue (importable directly outside pytest).
    """
    def drain(queue_url: str, count: int, timeout: float = 20.0,
              predicate: Callable[[Any], bool] | None = None) -> list[Any]:
        return drain_queue(queue_url, count, timeout=timeout, predicate=predicate,
                           endpoint_url=aws_endpoint.url)

    return drain


@pytest.fixture(scope="session")
def aws_client(aws_endpoint: LocalEndpoint) -> Callable[..., Any]:
    """aws_client(service, **options) -> a connectors.aws.make_client client on the shared endpoint.

    Options are make_client's (max_attempts=1 by default: botocore does not retry,
    so a test sees every error the endpoint answers).
    """
    def build(service: str, **options: Any) -> Any:
        return make_client(service, endpoint_url=aws_endpoint.url, region=TEST_AWS_ENV["AWS_REGION"], **options)

    return build


@pytest.fixture()
def unique_name() -> Callable[[str], str]:
    """unique_name("src") -> "src-<12 hex>": a stream/bus/queue name no other test on the shared endpoint uses.

    The endpoint lives for the whole session, so a fixed name would meet the
    stream another test (or an earlier run of this one) created.
    """
    def name(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return name


@pytest.fixture()
def bus_with_queue(aws_client: Callable[..., Any], unique_name: Callable[[str], str]) -> Callable[..., tuple[str, str]]:
    """bus_with_queue(sources) -> (bus name, queue url): a new bus whose one rule copies every
    event from those sources to a new SQS queue, so a test can count what the bus delivered."""
    def create(sources: list[str]) -> tuple[str, str]:
        name = unique_name("bus")
        events, sqs = aws_client("events"), aws_client("sqs")
        events.create_event_bus(Name=name)
        queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName=name, EventPattern=json.dumps({"source": sources}))
        events.put_targets(Rule="all", EventBusName=name, Targets=[{"Id": "q", "Arn": arn}])
        return name, queue_url

    return create


@pytest.fixture()
def refused_url() -> str:
    """http://127.0.0.1:<port> where nothing listens (bound, then released), so connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture()
def in_process_moto() -> Iterator[Callable[[], str]]:
    """in_process_moto() -> url of a plain moto server running in this test process (stopped after the test).

    For the few tests that change moto itself (apply and revert a deploy/local patch)
    and need the server that answers them to be in this process. Everything else
    uses ``aws_endpoint``. Port 0: the OS picks a free port, never 4566.
    """
    from moto.server import ThreadedMotoServer

    servers: list[ThreadedMotoServer] = []

    def start() -> str:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        servers.append(server)
        host, port = server.get_host_and_port()
        return f"http://{host}:{port}"

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
