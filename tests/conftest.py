"""Session fixtures shared by every test that needs AWS: the embedded endpoint and the core stack.

    def test_something(core_stack, drain_sqs):
        events = boto3.client("events")           # AWS_ENDPOINT_URL etc. are set
        events.put_events(Entries=[{..., "EventBusName": core_stack["bus_name"]}])
        got = drain_sqs(core_stack["observation_queues"]["multi-metric-anomaly"], 1,
                        predicate=lambda e: e["detail"]["incident_id"] == my_id)

The endpoint runs in its own process on a free port (never 4566, which a
developer's `python -m deploy.local up` may be using). The observation queues
are shared by the session: filter on your own ids with ``predicate``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from deploy.local.endpoint import LocalEndpoint, start_endpoint
from deploy.local.observe import drain_queue
from deploy.local.stack import deploy_core_stack

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
    """deploy/cloudformation/core.yaml deployed with ShardCount=2, LocalObservation=true.

    Keys: metrics_stream, events_stream, dead_letter_stream (+ *_arn), bus_name,
    bus_arn, archive_name, state_machine_arn, incidents_table, *_topic_arn,
    observation_queues = {rule_name: queue_url}, outputs (raw stack outputs).
    """
    return deploy_core_stack(
        aws_endpoint.url, {"ShardCount": "2", "LocalObservation": "true"}
    )


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
