"""Re-drive emitted incidents from the bus's archive through EventBridge's replay API.

    python -m connectors.replay eventbridge --archive adops-production-events-archive \
        --from 2026-11-02T00:00:00Z --to 2026-11-03T00:00:00Z [--bus adops-production-events]

Calls StartReplay with the archive as the source and its bus as the
destination (EventBridge only replays to the archive's own bus), then polls
DescribeReplay until the replay is COMPLETED, FAILED or CANCELLED. Replayed
events carry a ``replay-name`` field and go through the bus's rules again
(the critical-incident workflow, SNS, observation queues); rules can exclude
them with ``"replay-name": [{"exists": false}]``.

What the embedded endpoint (moto 5.2.5) does differently from AWS -- read in
its source and checked by tests/test_replay_eventbridge.py:
- StartReplay runs synchronously: when the call returns, every archived event has been handed
  to the rules (their targets get them right after, on the endpoint's delivery thread, as after
  a PutEvents).
- It ignores EventStartTime/EventEndTime: *every* archived event is replayed.
Like AWS, it matches each rule's event pattern before the rule's targets get a replayed event,
and (with the endpoint's patch, deploy/local/patches/events/targets.py) the Step Functions and
SNS targets get it through their Input / InputPath / InputTransformer. Its SQS targets get the
archived event with a new ``id``, its ``time`` in ISO-8601 and ``replay-name`` added (no input
setting applied).
So locally the command re-drives more than it would in AWS; the time filter is only exercised
against a real account.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from connectors.aws import make_client


def events_client(endpoint_url: str | None = None, region: str | None = None):
    # StartReplay and friends: botocore's standard retries, five after the first call
    return make_client("events", endpoint_url=endpoint_url, region=region, max_attempts=6)


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def replay_from_archive(archive: str, start: datetime, end: datetime, *, client=None, bus: str | None = None,
                        name: str | None = None, wait_s: float = 300.0, poll_s: float = 2.0) -> dict:
    """Start a replay of ``archive`` over [start, end) and wait for it to finish; returns DescribeReplay."""
    client = client or events_client()
    described = client.describe_archive(ArchiveName=archive)
    source_bus_arn = described["EventSourceArn"]
    if bus is not None:
        bus_arn = client.describe_event_bus(Name=bus)["Arn"]
        if bus_arn != source_bus_arn:
            raise ValueError(f"archive {archive} records bus {source_bus_arn}; EventBridge only replays to it")
    name = name or f"{archive[:40]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    client.start_replay(ReplayName=name, EventSourceArn=described["ArchiveArn"],
                        EventStartTime=start, EventEndTime=end, Destination={"Arn": source_bus_arn},
                        Description=f"re-drive {archive} {start.isoformat()} .. {end.isoformat()}")
    deadline = time.monotonic() + wait_s
    while True:
        state = client.describe_replay(ReplayName=name)
        if state["State"] in ("COMPLETED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return state
        time.sleep(poll_s)
