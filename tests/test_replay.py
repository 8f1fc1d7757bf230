"""Replay into Kinesis over HTTP (embedded endpoint): payloads unchanged, per-key order, retries, pacing."""
from __future__ import annotations

import json
import time
from collections import defaultdict

import boto3
import pytest

from connectors.archive import EVENTS, JSONL, METRICS, PARQUET, ArchiveWriter, iter_archive
from connectors.replay import KinesisReplayer, merged_archive, parse_speed, partition_key, replay_archive
from connectors.replay.kinesis import kinesis_client
from connectors.simulator import Scenario, generate

T0 = 1793613600.0   # 2026-11-02T10:00:00Z


def _stream(url: str, name: str, shards: int = 2) -> None:
    kinesis = boto3.client("kinesis", endpoint_url=url)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})


def _records(url: str, name: str) -> list[dict]:
    """Every record of the stream as GetRecords gives it, shard by shard, in each shard's sequence order."""
    kinesis = boto3.client("kinesis", endpoint_url=url)
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend(response["Records"])
            if not response["Records"]:
                break
            iterator = response["NextShardIterator"]
    return out


def _read_all(url: str, name: str) -> list[dict]:
    return [{"key": r["PartitionKey"], "data": r["Data"].decode()} for r in _records(url, name)]


def _per_key(items) -> dict[str, list[str]]:
    grouped = defaultdict(list)
    for key, payload in items:
        grouped[key].append(payload)
    return dict(grouped)


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay-archive")
    generate(Scenario(editors=6, partners=3, hours=1.0, seed=5, editor_cadence_s=(20.0, 60.0),
                      partner_cadence_s=(60.0, 120.0)), out, fmt=PARQUET)
    return out


def test_parse_speed_and_partition_keys():
    assert parse_speed("60x") == 60.0 and parse_speed("720") == 720.0 and parse_speed("max") is None
    for bad in ("0x", "nan", "NaNx", "inf", "-5", "fast"):
        with pytest.raises(ValueError, match="speed must be"):
            parse_speed(bad)
    assert partition_key({"editor_id": "e-1", "partner": "p"}) == "e-1"
    assert partition_key({"event_type": "partner_status", "partner": "p-2"}) == "p-2"
    assert partition_key("not an object") == "unkeyed"


def test_replay_keeps_payloads_timestamps_and_per_editor_order(aws_endpoint, small_archive):
    _stream(aws_endpoint.url, "replay-metrics-1")
    _stream(aws_endpoint.url, "replay-events-1", shards=1)
    stats = replay_archive(small_archive, {METRICS: "replay-metrics-1", EVENTS: "replay-events-1"},
                           client=kinesis_client(aws_endpoint.url), speed=None, per_key_limit=25)
    assert stats.reordered == 0
    archived = {kind: [(partition_key(i.record), i.payload) for i in iter_archive(small_archive, kind)]
                for kind in (METRICS, EVENTS)}
    assert stats.records == {"replay-metrics-1": len(archived[METRICS]), "replay-events-1": len(archived[EVENTS])}
    assert stats.calls < len(archived[METRICS]) / 4, "batched"
    for kind, stream in ((METRICS, "replay-metrics-1"), (EVENTS, "replay-events-1")):
        got = _read_all(aws_endpoint.url, stream)
        assert _per_key((g["key"], g["data"]) for g in got) == _per_key(archived[kind])
    # the payload's timestamps are the archived ones, ISO and epoch-ms alike
    sample = [json.loads(g["data"]) for g in _read_all(aws_endpoint.url, "replay-metrics-1")]
    assert {type(r["timestamp"]) for r in sample} == {int, str}


def _rpm_archive(folder, n: int, editors: int) -> list[dict]:
    """An archive of ``n`` rpm records one second apart, round-robin over ``editors`` editors."""
    records = [{"editor_id": f"e-{i % editors}", "metric": "rpm", "value": float(i),
                "timestamp": int((T0 + i) * 1000)} for i in range(n)]
    with ArchiveWriter(folder, fmt=JSONL) as writer:
        for i, r in enumerate(records):
            writer.add(r, T0 + i)
    return records


def test_failed_records_are_retried_without_breaking_per_key_order(aws_endpoint, tmp_path):
    from flink_jobs.reliability.fault_proxy import FaultProxy

    records = _rpm_archive(tmp_path, 600, editors=7)
    _stream(aws_endpoint.url, "replay-faults")
    with FaultProxy(aws_endpoint.url, seed=11) as proxy:
        proxy.set_mode("Kinesis_20131202.PutRecords", "partial_failure", rate=0.6, failed_fraction=0.4)
        proxy.set_mode("Kinesis_20131202.PutRecords", "throughput_exceeded", rate=0.2)
        replayer = KinesisReplayer({METRICS: "replay-faults"}, client=kinesis_client(proxy.url), speed=None,
                                   sleep=lambda s: time.sleep(min(s, 0.01)))
        stats = replayer.replay(merged_archive(tmp_path, kinds=[METRICS]))
    assert stats.retried_records > 0
    got = _read_all(aws_endpoint.url, "replay-faults")
    assert len(got) == len(records), "each record delivered exactly once"
    values = _per_key((g["key"], json.loads(g["data"])["value"]) for g in got)
    for key, seq in values.items():
        assert seq == sorted(seq), f"order of {key} kept through retries"


class _ThrottledUntil:
    """The endpoint's client, except that every PutRecords is throttled while the (fake) clock is
    before `until_s`: an endpoint that stalls."""

    def __init__(self, client, clock: list, until_s: float):
        self.client, self.clock, self.until_s = client, clock, until_s

    def put_records(self, **kwargs):
        from botocore.exceptions import ClientError

        if self.clock[0] < self.until_s:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                              "PutRecords")
        return self.client.put_records(**kwargs)


@pytest.mark.parametrize("stall_s", [60.0, float("inf")])
def test_a_stalled_endpoint_is_ridden_out_until_the_retry_deadline(aws_endpoint, tmp_path, stall_s):
    """Reported: the replay gave up after 12 attempts, about 23 s of backoff, so a short stall of the
    endpoint ended `make run`'s replay while the job's sinks ride out 90 s. Now a record is retried
    until 120 s after its first failure (time here is a fake clock that the backoff's sleeps move)."""
    records = _rpm_archive(tmp_path, 20, editors=3)
    stream = f"replay-stall-{int(stall_s) if stall_s < 1e9 else 'forever'}"
    _stream(aws_endpoint.url, stream)
    clock = [0.0]
    replayer = KinesisReplayer({METRICS: stream}, client=_ThrottledUntil(kinesis_client(aws_endpoint.url), clock,
                                                                        stall_s),
                               speed=None, sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                               clock=lambda: clock[0])
    if stall_s < 1e9:
        stats = replayer.replay(merged_archive(tmp_path, kinds=[METRICS]))
        assert stats.records[stream] == len(records) and clock[0] >= stall_s
        assert len(_read_all(aws_endpoint.url, stream)) == len(records)
    else:
        with pytest.raises(RuntimeError, match=r"gave up .* over 1[2-3]\d s"):
            replayer.replay(merged_archive(tmp_path, kinds=[METRICS]))
        assert 120 <= clock[0] < 140


class _RefuseNewestOnce:
    """The endpoint's client, except that the first PutRecords of several records has its newest
    record refused (not sent; answered as Kinesis answers a throttled record) - as a partial failure."""

    def __init__(self, client):
        self.client, self.refused_ms = client, None

    def put_records(self, StreamName, Records):
        if self.refused_ms is not None or len(Records) < 2:
            return self.client.put_records(StreamName=StreamName, Records=Records)
        times = [json.loads(r["Data"])["timestamp"] for r in Records]
        newest = times.index(max(times))
        self.refused_ms = times[newest]
        sent = iter(self.client.put_records(StreamName=StreamName,
                                            Records=Records[:newest] + Records[newest + 1:])["Records"])
        return {"FailedRecordCount": 1, "Records": [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"}
            if i == newest else next(sent) for i in range(len(Records))]}


def test_how_far_the_puts_reached_counts_accepted_records_only(aws_endpoint, tmp_path):
    """ReplayStats.put_event_ms: make run counts the job's lag from when the replay put a window's
    end, so a record Kinesis refused must not count as put until its retry is accepted."""
    records = _rpm_archive(tmp_path, 30, editors=3)
    _stream(aws_endpoint.url, "replay-put-progress")
    client = _RefuseNewestOnce(kinesis_client(aws_endpoint.url))
    progress = []
    stats = KinesisReplayer({METRICS: "replay-put-progress"}, client=client, speed=None, sleep=lambda s: None,
                            progress=lambda s: progress.append(s.put_event_ms)).replay(
        merged_archive(tmp_path, kinds=[METRICS]))
    assert client.refused_ms is not None and progress[0] < client.refused_ms, (progress[:3], client.refused_ms)
    assert stats.put_event_ms == records[-1]["timestamp"] and len(_read_all(aws_endpoint.url, "replay-put-progress")) == 30


def test_pacing_follows_event_time_at_the_speed_up(aws_endpoint, tmp_path):
    # 40 s of event time at 20x -> about 2 s of wall time; a late record does not stall the clock.
    records = [{"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": int((T0 + s) * 1000)}
               for s in range(0, 41, 2)]
    records.insert(10, {"editor_id": "e-2", "metric": "rpm", "value": 1.0, "timestamp": int((T0 - 120) * 1000)})
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        for r in records:
            writer.add(r, T0)
    _stream(aws_endpoint.url, "replay-paced", shards=1)
    seen = []
    stats = replay_archive(tmp_path, {METRICS: "replay-paced"}, client=kinesis_client(aws_endpoint.url),
                           speed=parse_speed("20x"), progress=lambda s: seen.append((time.monotonic(), s.total)))
    # The pacing clock starts at the median of the first five times (connectors.event_time.EventTimeProgress),
    # T0 + 4 s: 36 s of event time at 20x, 1.8 s.
    assert 1.7 < stats.seconds < 4.0
    assert stats.total == len(records)
    assert seen[0][1] < len(records) and seen[-1][0] - seen[0][0] > 1.5, "records went out over time, not at once"


def test_absurd_timestamps_neither_stall_the_pacing_nor_set_its_start(aws_endpoint, tmp_path):
    """A record stamped 9999 in the middle of an archive held every later one back for ~11 years
    at 720x, and a first record stamped 1 ms after the epoch delayed the whole archive by ~29 days.
    Both are accepted by no rule of pacing now; the job dead-letters or routes them as it does."""
    records = [{"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": int((T0 + s) * 1000)}
               for s in range(0, 3601, 60)]
    records.insert(0, {"editor_id": "e-2", "metric": "rpm", "value": 1.0, "timestamp": 1})
    records.insert(30, {"editor_id": "e-3", "metric": "rpm", "value": 1.0, "timestamp": "9999-01-01T00:00:00Z"})
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        for r in records:
            writer.add(r, T0)
    _stream(aws_endpoint.url, "replay-absurd", shards=1)
    now = [0.0]
    stats = replay_archive(tmp_path, {METRICS: "replay-absurd"}, client=kinesis_client(aws_endpoint.url),
                           speed=parse_speed("720x"), clock=lambda: now[0],
                           sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert stats.total == len(records)
    # One hour at 720x is 5 s. The pacing clock starts at the median of the first five times (the
    # record of 1970 is one of them) and leaves out the one of 9999: T0 + 60 s to T0 + 3600 s, 4.92 s.
    assert 4.8 < stats.seconds < 5.1
    assert (stats.first_event_ms, stats.last_event_ms) == (int((T0 + 60) * 1000), int((T0 + 3600) * 1000))


def test_busy_keys_are_not_starved_behind_the_watermark(aws_endpoint, tmp_path):
    # One busy editor (a record every second) among sparse ones, all due at once (max speed):
    # with 2 records per key per call, sparse keys could race ahead in event time; the skew
    # bound keeps every record within 10 s of event time of anything sent before it.
    records = []
    for s in range(0, 600):
        records.append({"editor_id": "e-busy", "metric": "rpm", "value": float(s), "timestamp": int((T0 + s) * 1000)})
        if s % 20 == 0:
            records += [{"editor_id": f"e-{k}", "metric": "rpm", "value": float(s), "timestamp": int((T0 + s) * 1000)}
                        for k in range(30)]
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        for r in records:
            writer.add(r, T0)
    _stream(aws_endpoint.url, "replay-skew", shards=1)
    stats = replay_archive(tmp_path, {METRICS: "replay-skew"}, client=kinesis_client(aws_endpoint.url), speed=None,
                           per_key_limit=2, max_skew_s=10.0)
    times = [json.loads(g["data"])["timestamp"] for g in _read_all(aws_endpoint.url, "replay-skew")]
    assert len(times) == len(records) == stats.total
    running_max = 0
    worst = 0
    for t in times:
        running_max = max(running_max, t)
        worst = max(worst, running_max - t)
    assert worst <= 10_000, f"a record arrived {worst} ms of event time behind one sent before it"


def test_a_line_that_is_not_utf8_is_replayed_as_its_bytes(aws_endpoint, tmp_path):
    """It used to stop the whole replay (UnicodeDecodeError); the job dead-letters it as INVALID_ENCODING."""
    import gzip

    good = b'{"editor_id":"e-1","metric":"rpm","value":2.5,"timestamp":1793613600000}'
    bad = b'{"editor_id":"e-\xff\xfe","metric":"rpm","value":2.5,"timestamp":1793613601000}'
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "part-0.jsonl.gz").write_bytes(gzip.compress(good + b"\n" + bad + b"\n" + good + b"\n"))
    _stream(aws_endpoint.url, "replay-encoding", shards=1)
    stats = replay_archive(tmp_path, {METRICS: "replay-encoding"}, client=kinesis_client(aws_endpoint.url), speed=None)
    assert stats.records == {"replay-encoding": 3}
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    shard = kinesis.list_shards(StreamName="replay-encoding")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="replay-encoding", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert sorted(r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]) == sorted([good, bad, good])


def _read_bytes(url: str, name: str) -> list[bytes]:
    return [r["Data"] for r in _records(url, name)]   # as put: a line that is not UTF-8 stays so


FLAT_LINES = [
    b'{"editor_id":"e-1","metric":"rpm","value":2.5,"timestamp":1793613600000}',
    b'{"editor_id":"e-1","metric":"rpm","val',                                      # truncated: INVALID_JSON
    b'{"editr_id":"e-2","metrc":"rpm","vale":1.0,"timestamp":1793613601000}',       # misspelled: MISSING_FIELD
    b'{"editor_id":"e-\xff","metric":"rpm","value":2.5,"timestamp":1793613602000}',  # INVALID_ENCODING
]


def test_bad_lines_of_a_flat_file_go_to_the_metrics_stream_as_under_metrics(aws_endpoint, tmp_path, unique_name,
                                                                              caplog):
    """Reported: this 4-line file replayed 1 record, silently; under metrics/ it replays 4."""
    flat = tmp_path / "flat.jsonl"
    flat.write_bytes(b"\n".join(FLAT_LINES) + b"\n")
    (tmp_path / "tree" / "metrics").mkdir(parents=True)
    (tmp_path / "tree" / "metrics" / "part.jsonl").write_bytes(flat.read_bytes())
    got = {}
    for name, path in (("flat", flat), ("tree", tmp_path / "tree")):
        metrics, events = unique_name(f"replay-{name}-m"), unique_name(f"replay-{name}-e")
        _stream(aws_endpoint.url, metrics, shards=1)
        _stream(aws_endpoint.url, events, shards=1)
        with caplog.at_level("WARNING", logger="connectors.replay.kinesis"):
            stats = replay_archive(path, {METRICS: metrics, EVENTS: events},
                                   client=kinesis_client(aws_endpoint.url), speed=None)
        assert stats.records == {metrics: 4, events: 0}
        got[name] = (stats.unrecognised, sorted(_read_bytes(aws_endpoint.url, metrics)))
    assert got["flat"] == (3, sorted(FLAT_LINES))
    assert got["tree"] == (0, sorted(FLAT_LINES))
    assert "3 line(s) whose kind could not be told" in caplog.text

    # Only events asked for: the three are not sent, but counted and reported.
    caplog.clear()
    events = unique_name("replay-flat-only-e")
    _stream(aws_endpoint.url, events, shards=1)
    with caplog.at_level("WARNING", logger="connectors.replay.kinesis"):
        stats = replay_archive(flat, {EVENTS: events}, client=kinesis_client(aws_endpoint.url), speed=None)
    assert stats.total == 0 and stats.unrecognised_not_replayed == 3
    assert "were NOT replayed" in caplog.text


@pytest.mark.parametrize("argv, message", [
    (["--speed", "nan"], "speed must be a finite positive number"),
    (["--speed", "inf"], "speed must be a finite positive number"),
    (["--speed", "fast"], "speed must be a number like 60x"),
    (["--per-key-batch", "0"], "must be at least 1"),
    (["--max-skew", "nan"], "must be a finite number of seconds"),
])
def test_the_cli_refuses_bad_numbers_before_reading_anything(tmp_path, capsys, argv, message):
    from connectors.replay.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--from", str(tmp_path / "no-such-archive"), "--to", "kinesis://no-such-stream", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cli_as_the_readme_writes_it_replays(aws_endpoint, tmp_path, unique_name, capsys):
    """Without --events-to the command exited 2: argparse ran the default stream name through the
    kinesis:// check. With --only metrics, no other test's events stream is touched."""
    from connectors.replay.__main__ import main

    records = _rpm_archive(tmp_path / "archive", 5, 2)
    name = unique_name("cli")
    _stream(aws_endpoint.url, name)
    assert main(["--from", str(tmp_path / "archive"), "--to", f"kinesis://{name}", "--only", "metrics",
                 "--endpoint", aws_endpoint.url]) == 0
    assert sorted(json.loads(r["data"])["value"] for r in _read_all(aws_endpoint.url, name)) == [
        r["value"] for r in records]
    assert json.loads(capsys.readouterr().out)["total"] == 5


def test_an_archive_dated_in_the_future_is_merged_and_paced_by_its_own_times(tmp_path):
    """The first version of the robust pacing left out times a day ahead of the wall clock: an
    archive dated in the future (the simulator's --start) then sorted every metric before every
    event, and its replay ignored the speed. Nothing in the merge or the pacing reads the clock."""
    future_s = time.time() + 5 * 365 * 86400
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        for n in range(6):
            t_ms = int((future_s + n * 600) * 1000)
            writer.add({"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": t_ms}, future_s)
            writer.add({"event_type": "deployment", "editor_id": "e-1", "timestamp": t_ms + 300_000}, future_s)
    assert "".join("M" if item.kind == METRICS else "E" for item in merged_archive(tmp_path)) == "ME" * 6


def test_the_replayer_is_the_only_one_to_resend_a_throttled_put(aws_endpoint, tmp_path):
    """The replay client's botocore retries were {"max_attempts": 1}, which in botocore's legacy mode
    counts retries: a throttled PutRecords was sent again whole by botocore, unseen by the replayer's
    own loop (its backoff, its per-key order, its counts). One attempt per call now."""
    import json as _json

    from botocore.awsrequest import AWSResponse

    _rpm_archive(tmp_path, 30, editors=3)
    _stream(aws_endpoint.url, "replay-throttled-once")
    client = kinesis_client(aws_endpoint.url)
    sends = []

    class _Body:
        def stream(self, **_):
            yield _json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow down"}).encode()

    def throttle_the_first(request, **_):
        sends.append(1)
        if len(sends) == 1:
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body())
        return None

    client.meta.events.register("before-send.kinesis.PutRecords", throttle_the_first)
    replayer = KinesisReplayer({METRICS: "replay-throttled-once"}, client=client, speed=None, sleep=lambda s: None)
    stats = replayer.replay(merged_archive(tmp_path, kinds=[METRICS]))
    # every HTTP send is one of the replayer's calls, and it saw the throttle
    assert stats.failed_calls == 1 and len(sends) == stats.calls, (stats.failed_calls, len(sends), stats.calls)
    assert len(_read_all(aws_endpoint.url, "replay-throttled-once")) == 30
