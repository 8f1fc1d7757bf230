"""A shard that falls silent and then sends records older than the job's watermark: those
records go to the late output, as every other late record does, instead of being dropped
uncounted by the window operator.

Why it could happen: each source subtask assigns its own watermark, and the operators after
the shuffle take the minimum over the subtasks that are not idle (`processing.idle.timeout.s`).
A subtask silent for longer than that is left out, so the job's watermark moves on with the
other subtasks. When it sends again, its rows can be behind the job's watermark while still
ahead of its own. Lateness judged only right after the source (against the subtask's own
watermark) let them through, and the window operator dropped them without a count. Lateness
is now also judged after the duplicate marking's shuffle, against the same minimum the windows
see (`sql/parse/late.sql`).

One Flink job at parallelism 2 over the local Kinesis path (two shards, one per subtask), with
records addressed to a shard by explicit hash key:

1. both shards get ten minutes of samples; then a far-behind marker on each, which reaches the
   late output once its shard's records were read and a watermark is out (sent again until one
   does);
2. shard A alone gets twenty minutes more (shard B stays silent and is marked idle), and a
   far-behind marker once more;
3. shard B gets the probe: behind the job's watermark, ahead of shard B's own. It is sent again,
   every 8 s (more than twice the idle timeout), until one copy reaches the late output: one sent
   before shard B was marked idle is on time and counted in its window, as it should be. Without
   the second test, no copy reaches any output, and the test fails.
"""
from __future__ import annotations

import json
import time

import boto3
import pytest
from test_job_pipeline import read_lines   # the job's JSON-lines outputs in a folder

pytestmark = [pytest.mark.flink, pytest.mark.aws, pytest.mark.timeout(1200)]

SHARD_A_HASH_KEY, SHARD_B_HASH_KEY = "1", str(2 ** 128 - 2)   # two shards split the key space in halves
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def run(core_stack, aws_endpoint, tmp_path_factory):
    from flink_jobs.config import JobConfig
    from flink_jobs.main import start_job

    state = tmp_path_factory.mktemp("late-after-idle")
    late_dir = state / "late"
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url, region_name="us-east-1")
    suffix = time.time_ns()
    metrics_stream, events_stream = f"late-idle-metrics-{suffix}", f"late-idle-events-{suffix}"
    for name, shards in ((metrics_stream, 2), (events_stream, 1)):
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    cfg = JobConfig.load(environ={}, overrides=[
        "job.parallelism=2",
        "job.checkpoint.interval.ms=5000",
        f"job.checkpoint.dir={state / 'checkpoints'}",
        f"kinesis.endpoint.url={aws_endpoint.url}",
        f"kinesis.metrics.stream.name={metrics_stream}",
        f"kinesis.events.stream.name={events_stream}",
        "kinesis.start.position=TRIM_HORIZON",
        f"eventbridge.endpoint.url={aws_endpoint.url}",
        f"eventbridge.bus.name={core_stack['bus_name']}",
        "deadletter.sink=file",
        f"deadletter.path={state / 'dead-letters'}",
        f"deadletter.late.path={late_dir}",
        "processing.idle.timeout.s=3",
    ])
    # Two hours back: well inside every accepted range, and windows the job may close at once.
    base_ms = (int(time.time()) // 300 - 24) * 300 * 1000

    def sample(editor: str, at_ms: int, value: float = 2.0) -> str:
        return json.dumps({"editor_id": editor, "metric": "rpm", "value": value, "timestamp": at_ms})

    def put(hash_key: str, payloads: list[str]) -> None:
        for i in range(0, len(payloads), 100):
            batch = [{"PartitionKey": "k", "ExplicitHashKey": hash_key, "Data": p.encode()}
                     for p in payloads[i:i + 100]]
            resp = kinesis.put_records(StreamName=metrics_stream, Records=batch)
            assert not resp.get("FailedRecordCount"), resp

    def seen_late(raw: str) -> bool:
        return any(line["raw"] == raw for line in read_lines(late_dir))

    def send_until_late(hash_key: str, marker, what: str, timeout: float = 180, every: float = 5) -> None:
        """Sends marker(0), marker(1), ... every ``every`` s until one reaches the late output. One that
        came before the watermark it is behind (the job still starting, or shard B not idle yet on a
        loaded machine, whose timer may fire late) is counted in an old window, which changes nothing."""
        deadline, sent = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            sent.append(marker(len(sent)))
            put(hash_key, [sent[-1]])
            until = min(deadline, time.monotonic() + every)
            while time.monotonic() < until:
                if any(seen_late(raw) for raw in sent):
                    return
                time.sleep(0.5)
        raise AssertionError(f"{what}: none of {len(sent)} markers reached the late output in {timeout:.0f} s")

    def far_behind(editor: str, minutes: int):
        return lambda n: sample(editor, base_ms - minutes * MINUTE_MS + n)

    handle = start_job(cfg, "kinesis-local")
    try:
        # 1. ten minutes on both shards; the job's start is in the first wait
        put(SHARD_A_HASH_KEY, [sample("e-shard-a", base_ms + s * 1000) for s in range(0, 600, 10)])
        put(SHARD_B_HASH_KEY, [sample("e-shard-b", base_ms + s * 1000) for s in range(0, 600, 10)])
        send_until_late(SHARD_A_HASH_KEY, far_behind("e-shard-a", 60), "shard A's first marker", timeout=400)
        send_until_late(SHARD_B_HASH_KEY, far_behind("e-shard-b", 60), "shard B's first marker")
        # 2. twenty minutes more on shard A alone
        put(SHARD_A_HASH_KEY, [sample("e-shard-a", base_ms + s * 1000) for s in range(600, 1800, 10)])
        send_until_late(SHARD_A_HASH_KEY, far_behind("e-shard-a", 59), "shard A's second marker")
        # 3. the probe, behind the job's watermark (shard A's) and ahead of shard B's own
        probes: list[str] = []

        def probe(n: int) -> str:
            probes.append(sample("e-shard-b", base_ms + 15 * MINUTE_MS + n, value=2.2))
            return probes[-1]

        try:
            send_until_late(SHARD_B_HASH_KEY, probe, "probe", timeout=90, every=8)
        except AssertionError:
            pass   # the test says what is missing
        # the other copies' lines, if any: a sink subtask flushes every 500 ms or at its next heartbeat
        time.sleep(3)
        return {"late": read_lines(late_dir), "probes": probes, "dead": read_lines(state / "dead-letters")}
    finally:
        handle.cancel()


def test_a_resumed_shards_record_behind_the_jobs_watermark_reaches_the_late_output(run):
    late = [line for line in run["late"] if line["raw"] in run["probes"]]
    assert late, (f"none of the {len(run['probes'])} records behind the job's watermark from the shard that "
                  "had been idle reached the late output")
    assert {(line["reason_code"], line["source"]) for line in late} == {("LATE_RECORD", "metrics")}
    assert not [line for line in run["dead"] if line["raw"] in run["probes"]]
