"""The boto3 Kinesis path (connectors.kinesis.poller) against two implementations:
the embedded endpoint (moto + patches) and kinesis-local (kinesis-mock, LocalStack's
Kinesis engine; needs Node.js, installed from npm on first use)."""
from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

import boto3
import pytest

from connectors.aws import make_client
from connectors.kinesis.poller import StreamReader, positions_from_text, reader_client
from deploy.local.kinesis_local import (KinesisLocalNotInstallable, KinesisLocalUnavailable, ensure_installed,
                                        start_kinesis_local)

pytestmark = pytest.mark.aws


@pytest.fixture(scope="module")
def kinesis_local(tmp_path_factory):
    # Skipped only where it cannot be installed (no Node.js or npm, or no npm registry); an installed
    # kinesis-local that crashes or does not answer fails the tests.
    try:
        server = start_kinesis_local(log_dir=tmp_path_factory.mktemp("kinesis-local"))
    except KinesisLocalNotInstallable as exc:
        pytest.skip(f"kinesis-local cannot be installed here: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "kinesis-local"])
def kinesis(request, aws_endpoint):
    url = aws_endpoint.url if request.param == "embedded" else request.getfixturevalue("kinesis_local").url
    return boto3.client("kinesis", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _reader(kinesis, stream: str, **kwargs) -> StreamReader:
    """A reader on the job's client (connectors.kinesis.poller.reader_client) for the same endpoint."""
    reader = StreamReader(reader_client(endpoint_url=kinesis.meta.endpoint_url, region="us-east-1", max_attempts=3),
                          stream, "TRIM_HORIZON", **kwargs)
    reader.discover()
    return reader


def _active_stream(kinesis, shards: int) -> str:
    name = f"impl-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + 20
    while kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "stream never became ACTIVE"
        time.sleep(0.1)
    return name


def _put(kinesis, stream: str, start: int, count: int, keys: int = 13) -> None:
    for offset in range(0, count, 250):
        batch = range(start + offset, start + min(count, offset + 250))
        resp = kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps({"n": n, "key": f"k{n % keys}"}).encode(), "PartitionKey": f"k{n % keys}"} for n in batch])
        assert resp["FailedRecordCount"] == 0


def test_reader_gets_every_record_once_in_per_key_order(kinesis):
    stream = _active_stream(kinesis, shards=2)
    _put(kinesis, stream, 0, 600)
    reader = _reader(kinesis, stream)
    records = reader.read_available()
    values = [json.loads(r.payload) for r in records]
    assert sorted(v["n"] for v in values) == list(range(600))
    per_key = defaultdict(list)
    for v in values:
        per_key[v["key"]].append(v["n"])
    assert all(ns == sorted(ns) for ns in per_key.values())
    assert len({r.shard_id for r in records}) == 2


def test_reader_resumes_from_saved_positions_without_rereading(kinesis):
    stream = _active_stream(kinesis, shards=2)
    _put(kinesis, stream, 0, 300)
    first = _reader(kinesis, stream)
    got = first.read_available()
    saved = first.positions_text()
    _put(kinesis, stream, 300, 200)
    resumed = _reader(kinesis, stream, positions=positions_from_text(saved))
    more = resumed.read_available()
    assert sorted(json.loads(r.payload)["n"] for r in got) == list(range(300))
    assert sorted(json.loads(r.payload)["n"] for r in more) == list(range(300, 500))


def test_reader_crosses_a_shard_split_without_loss_or_duplicates(kinesis):
    stream = _active_stream(kinesis, shards=1)
    _put(kinesis, stream, 0, 200)
    reader = _reader(kinesis, stream)
    got = reader.read_available()
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    deadline = time.monotonic() + 20
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _put(kinesis, stream, 200, 200)
    reader.discover()
    got += reader.read_available()
    numbers = [json.loads(r.payload)["n"] for r in got]
    assert sorted(numbers) == list(range(400)), f"{400 - len(set(numbers))} lost, {len(numbers) - len(set(numbers))} duplicated"


def test_the_readers_record_parsing_gives_what_botocore_gives(kinesis):
    """The reader's client parses GetRecords' records itself (poller.reader_client): the same records
    as botocore's own parse with the same options, on both implementations."""
    stream = _active_stream(kinesis, shards=1)
    _put(kinesis, stream, 0, 120)
    kinesis.put_record(StreamName=stream, Data=b'{"n": 120, "raw": "\xff"}', PartitionKey="k0")
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    url = kinesis.meta.endpoint_url
    parsed_first = reader_client(endpoint_url=url, region="us-east-1")
    hook_records = []
    parsed_first.meta.events.register(   # registered after the hook: sees what it handed to botocore
        "before-parse.kinesis.GetRecords",
        lambda customized_response_dict, **_: hook_records.append(len(customized_response_dict.get("Records", ()))))
    answers = [client.get_records(ShardIterator=iterator, Limit=200)["Records"]
               for client in (make_client("kinesis", endpoint_url=url, region="us-east-1", raw_timestamps=True),
                              parsed_first)]
    assert len(answers[0]) == 121 and answers[0][-1]["Data"].endswith(b'"\xff"}')
    assert answers[1] == answers[0]
    assert hook_records == [121], "the records did not come from the hook"


def _fake_npm(tmp_path, monkeypatch, stderr: str, exit_code: int):
    """node and npm on a PATH of their own; npm writes `stderr` and exits with `exit_code`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "npm").write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {exit_code}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize("stderr", ["npm error code ENOTFOUND", "npm error code ETIMEDOUT"])
def test_an_unreachable_registry_is_the_machine_and_skips(tmp_path, monkeypatch, stderr):
    _fake_npm(tmp_path, monkeypatch, stderr, 1)
    with pytest.raises(KinesisLocalNotInstallable, match="registry cannot be reached"):
        ensure_installed(tmp_path / "install")


@pytest.mark.parametrize("stderr, exit_code", [("npm error code ETARGET No matching version", 1),
                                               ("", 0)])   # installed, but no main.js in the package
def test_any_other_install_failure_is_an_error_not_a_skip(tmp_path, monkeypatch, stderr, exit_code):
    _fake_npm(tmp_path, monkeypatch, stderr, exit_code)
    with pytest.raises(KinesisLocalUnavailable) as raised:
        ensure_installed(tmp_path / "install")
    assert not isinstance(raised.value, KinesisLocalNotInstallable), raised.value
