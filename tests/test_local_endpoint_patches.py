"""The embedded endpoint's moto patches: EventBridge delivers to Step Functions and SNS targets."""
from __future__ import annotations

import calendar
import json
import time
import uuid

import boto3
import pytest

from deploy.local import patches

pytestmark = pytest.mark.aws


def test_patches_refuse_other_moto_versions(monkeypatch):
    assert patches.check_moto_version() == "5.2.5"
    monkeypatch.setattr(patches.importlib.metadata, "version", lambda name: "5.2.6")
    with pytest.raises(patches.UnsupportedMotoVersion, match=r"moto==5\.2\.5.*moto==5\.2\.6"):
        patches.check_moto_version()


@pytest.fixture()
def scratch_bus(aws_endpoint):
    events = boto3.client("events")
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=name)
    yield name


def _queue(prefix: str) -> tuple[str, str]:
    """A new SQS queue: (url, arn)."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _probe_queue(topic_arn: str) -> str:
    sns = boto3.client("sns")
    url, arn = _queue("probe")
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def test_sns_target_with_input_path_and_input_and_transformer(scratch_bus, drain_sqs):
    events, sns = boto3.client("events"), boto3.client("sns")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue = _probe_queue(topic)
    events.put_rule(Name="r", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["probe"]}))
    events.put_targets(Rule="r", EventBusName=scratch_bus, Targets=[
        {"Id": "path", "Arn": topic, "InputPath": "$.detail"},
        {"Id": "const", "Arn": topic, "Input": json.dumps({"constant": True})},
        {"Id": "xform", "Arn": topic, "InputTransformer": {
            "InputPathsMap": {"n": "$.detail.n"}, "InputTemplate": '{"doubled_source": "<n><n>"}'}},
    ])
    resp = events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x",
                                       "Detail": json.dumps({"n": 21})}])
    assert resp["FailedEntryCount"] == 0
    got = drain_sqs(queue, 3, timeout=10)
    assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, [{"n": 21}, {"constant": True}, {"doubled_source": "2121"}]))


def test_stepfunctions_target_starts_execution_with_event_input(scratch_bus):
    events, sfn = boto3.client("events"), boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"echo-{uuid.uuid4().hex[:8]}", roleArn="arn:aws:iam::123456789012:role/x",
        definition=json.dumps({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "OutputPath": "$.detail", "End": True}}}),
    )["stateMachineArn"]
    events.put_rule(Name="to-sfn", EventBusName=scratch_bus, EventPattern=json.dumps({"detail": {"n": [{"numeric": [">", 10]}]}}))
    events.put_targets(Rule="to-sfn", EventBusName=scratch_bus,
                       Targets=[{"Id": "sfn", "Arn": machine, "RoleArn": "arn:aws:iam::123456789012:role/x"}])
    for n in (5, 42):
        assert events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x",
                                           "Detail": json.dumps({"n": n})}])["FailedEntryCount"] == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        if executions and all(e["status"] != "RUNNING" for e in executions):
            break
        time.sleep(0.2)
    assert len(executions) == 1  # n=5 does not match the numeric pattern
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"n": 42}
    event = json.loads(described["input"])
    assert event["source"] == "probe" and isinstance(event["time"], str) and event["time"].endswith("Z")
    # the event as AWS hands it to a target without an input setting: all of its envelope
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                          "detail"} and event["account"] == "123456789012"


def test_failing_target_does_not_fail_put_events(scratch_bus, drain_sqs):
    """AWS never fails PutEvents because a target fails; the other targets still get the event."""
    events = boto3.client("events")
    queue, queue_arn = _queue("ok")
    events.put_rule(Name="broken", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["probe"]}))
    events.put_targets(Rule="broken", EventBusName=scratch_bus, Targets=[
        {"Id": "gone", "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:does-not-exist"},
        {"Id": "ok", "Arn": queue_arn},
    ])
    resp = events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x", "Detail": "{}"}])
    assert resp["FailedEntryCount"] == 0
    assert len(drain_sqs(queue, 1, timeout=10)) == 1


def test_a_failing_moto_target_does_not_keep_the_event_from_the_rules_other_targets(scratch_bus, drain_sqs):
    """The other way round: a target moto delivers to (an SQS queue that no longer exists) fails,
    and the rule's other targets, moto's SQS one after it and the patch's SNS one, still get the
    event, as on AWS."""
    events, sns, sqs = boto3.client("events"), boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    probe = _probe_queue(topic)
    gone, gone_arn = _queue("gone")
    sqs.delete_queue(QueueUrl=gone)
    after, after_arn = _queue("after")
    events.put_rule(Name="half-broken", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["probe"]}))
    events.put_targets(Rule="half-broken", EventBusName=scratch_bus, Targets=[
        {"Id": "gone", "Arn": gone_arn}, {"Id": "after", "Arn": after_arn, "InputPath": "$.detail"},
        {"Id": "topic", "Arn": topic, "InputPath": "$.detail"}])
    resp = events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x",
                                       "Detail": json.dumps({"n": 7})}])
    assert resp["FailedEntryCount"] == 0
    assert drain_sqs(probe, 1, timeout=10) == [{"n": 7}]
    assert drain_sqs(after, 1, timeout=10) == [{"n": 7}]


def test_a_transformers_time_is_iso_8601_and_a_replay_goes_through_the_targets_input(scratch_bus, drain_sqs):
    """``<time>`` of an InputTransformer (the security rules' SNS message) is the event's ISO-8601
    time, as on AWS, not moto's epoch seconds; and a replayed event gets the target's input too."""
    events, sns = boto3.client("events"), boto3.client("sns")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    probe = _probe_queue(topic)
    bus_arn = events.describe_event_bus(Name=scratch_bus)["Arn"]
    archive = f"a-{uuid.uuid4().hex[:8]}"
    events.create_archive(ArchiveName=archive, EventSourceArn=bus_arn)
    events.put_rule(Name="timed", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["probe"]}))
    plain_topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    plain = _probe_queue(plain_topic)
    events.put_targets(Rule="timed", EventBusName=scratch_bus, Targets=[
        {"Id": "topic", "Arn": topic, "InputTransformer": {
            "InputPathsMap": {"time": "$.time", "n": "$.detail.n"}, "InputTemplate": '{"time": "<time>", "n": <n>}'}},
        {"Id": "plain", "Arn": plain_topic}])
    put_at = time.time()
    events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x",
                                "Detail": json.dumps({"n": 3})}])
    (message,) = drain_sqs(probe, 1, timeout=10)
    assert message["n"] == 3 and message["time"].endswith("Z"), message
    sent = calendar.timegm(time.strptime(message["time"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(sent - put_at) < 60, (message, put_at)
    events.start_replay(ReplayName=f"r-{uuid.uuid4().hex[:8]}", EventSourceArn=events.describe_archive(
        ArchiveName=archive)["ArchiveArn"], EventStartTime=put_at - 60, EventEndTime=time.time() + 60,
        Destination={"Arn": bus_arn})
    (replayed,) = drain_sqs(probe, 1, timeout=10)
    assert replayed == message, (replayed, message)
    # without input settings a target gets the envelope, and a replayed one says it is one
    original, again = sorted(drain_sqs(plain, 2, timeout=10), key=lambda e: "replay-name" in e)
    assert "replay-name" not in original and again["replay-name"] and again["detail"] == original["detail"]


def test_split_shard_keeps_parent_records_and_routes_new_ones_to_children(aws_endpoint):
    kinesis = boto3.client("kinesis")
    stream = f"split-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    before = [kinesis.put_record(StreamName=stream, Data=f"old-{i}".encode(), PartitionKey=f"k{i}")["SequenceNumber"]
              for i in range(10)]
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    first = kinesis.get_records(ShardIterator=iterator, Limit=4)
    assert first["NextShardIterator"]  # records left in the closed parent: the iterator goes on
    rest = kinesis.get_records(ShardIterator=first["NextShardIterator"])
    parent_records = first["Records"] + rest["Records"]
    assert [r["SequenceNumber"] for r in parent_records] == before  # still there, same sequence numbers
    # As on AWS: read to its end, a closed shard hands out no further iterator.
    assert rest.get("NextShardIterator") is None
    shards = {kinesis.put_record(StreamName=stream, Data=b"new", PartitionKey=f"n{i}")["ShardId"] for i in range(40)}
    assert shards == {"shardId-000000000001", "shardId-000000000002"}
    described = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    parent = next(s for s in described if s["ShardId"] == "shardId-000000000000")
    assert "EndingSequenceNumber" in parent["SequenceNumberRange"]  # closed


def test_target_deliveries_run_after_put_events_in_order_and_survive_a_failing_one():
    from deploy.local.patches.events import targets

    seen: list[int] = []

    def deliver(rule, event, transform_input):
        if event["n"] == 3:
            raise RuntimeError("target down")  # AWS would retry / dead-letter; later events still go
        seen.append(event["n"])

    for n in range(50):
        targets._enqueue(deliver, None, {"n": n}, True)
    assert targets.wait_for_deliveries(30)
    assert seen == [n for n in range(50) if n != 3]


def test_sqs_target_receives_every_event_in_put_order(scratch_bus, drain_sqs):
    events = boto3.client("events")
    url, arn = _queue("order")
    events.put_rule(Name="all", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["order.test"]}))
    events.put_targets(Rule="all", EventBusName=scratch_bus, Targets=[{"Id": "q", "Arn": arn}])
    for batch in range(3):
        events.put_events(Entries=[{"Source": "order.test", "DetailType": "n", "EventBusName": scratch_bus,
                                    "Detail": json.dumps({"n": batch * 10 + i})} for i in range(10)])
    got = [m["detail"]["n"] for m in drain_sqs(url, 30, timeout=30)]
    assert got == list(range(30))


def test_an_sqs_targets_input_settings_apply_to_put_and_replayed_events(scratch_bus, drain_sqs):
    """moto applies only an InputTransformer to an SQS target, and nothing to a replayed event; the
    patch delivers such a target itself, with Input, InputPath or InputTransformer as on AWS."""
    events = boto3.client("events")
    bus_arn = events.describe_event_bus(Name=scratch_bus)["Arn"]
    archive = f"a-{uuid.uuid4().hex[:8]}"
    events.create_archive(ArchiveName=archive, EventSourceArn=bus_arn)
    (path, path_arn), (const, const_arn), (xform, xform_arn), (plain, plain_arn) = (
        _queue(prefix) for prefix in ("path", "const", "xform", "plain"))
    events.put_rule(Name="to-sqs", EventBusName=scratch_bus, EventPattern=json.dumps({"source": ["probe"]}))
    events.put_targets(Rule="to-sqs", EventBusName=scratch_bus, Targets=[
        {"Id": "path", "Arn": path_arn, "InputPath": "$.detail"},
        {"Id": "const", "Arn": const_arn, "Input": json.dumps({"constant": True})},
        {"Id": "xform", "Arn": xform_arn, "InputTransformer": {
            "InputPathsMap": {"n": "$.detail.n", "time": "$.time"}, "InputTemplate": '{"n": <n>, "time": "<time>"}'}},
        {"Id": "plain", "Arn": plain_arn}])
    put_at = time.time()
    events.put_events(Entries=[{"EventBusName": scratch_bus, "Source": "probe", "DetailType": "x",
                                "Detail": json.dumps({"n": 5})}])
    expected = {path: {"n": 5}, const: {"constant": True}}
    for queue, body in expected.items():
        assert drain_sqs(queue, 1, timeout=10) == [body]
    (transformed,) = drain_sqs(xform, 1, timeout=10)
    assert transformed["n"] == 5 and transformed["time"].endswith("Z"), transformed
    (original,) = drain_sqs(plain, 1, timeout=10)
    events.start_replay(ReplayName=f"r-{uuid.uuid4().hex[:8]}", EventSourceArn=events.describe_archive(
        ArchiveName=archive)["ArchiveArn"], EventStartTime=put_at - 60, EventEndTime=time.time() + 60,
        Destination={"Arn": bus_arn})
    for queue, body in {**expected, xform: transformed}.items():
        assert drain_sqs(queue, 1, timeout=10) == [body], queue
    (again,) = drain_sqs(plain, 1, timeout=10)            # moto's own delivery, as before
    assert again["replay-name"] and again["detail"] == original["detail"]
