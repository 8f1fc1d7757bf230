"""One PyFlink mini-cluster job over the streaming connectors, end to end, on the embedded endpoint:

    Kinesis (2 shards) → kinesis_payload_table (boto3 source, watermark) → rows →
    attach_eventbridge_sink → PutEvents → bus → all-adops-events rule → SQS (observed)
    INVALID_ENCODING side output → attach_deadletter_file_sink + attach_deadletter_kinesis_sink

Parallelism 2, checkpointing on. One job run serves every assertion (a job costs ~15 s).
"""
from __future__ import annotations

import glob
import json
import os
import sys
import time

import pytest

from connectors.aws import make_client
from connectors.kinesis.poller import StreamReader

pytestmark = [
    pytest.mark.flink, pytest.mark.aws,
    # This job runs in process mode, whose Python workers PyFlink's local mini-cluster hosts inside
    # this pytest process ("loopback" mode). Cancelling the job hangs up their Beam data channel, and
    # Beam's reader thread then ends on the CANCELLED stream ("Multiplexer hanging up"). That is the
    # cancel itself, after every assertion's data was collected; a Managed Flink worker is its own process.
    pytest.mark.filterwarnings(
        "ignore:Exception in thread read_grpc_client_inputs:pytest.PytestUnhandledThreadExceptionWarning"),
]

RECORDS = 300


def _put_metrics(kinesis, stream, run_tag):
    base_ms = 1_793_527_200_000
    records = [{"Data": json.dumps({"n": n, "run": run_tag, "editor_id": f"e-{n % 6:03d}", "metric": "rpm",
                                    "value": 1.0 + n, "timestamp": base_ms + n * 1000}).encode(),
                "PartitionKey": f"e-{n % 6:03d}"} for n in range(RECORDS)]
    records.insert(137, {"Data": b'{"editor_id": "\xff\xfe bad bytes"}', "PartitionKey": "e-000"})
    for start in range(0, len(records), 100):
        kinesis.put_records(StreamName=stream, Records=records[start:start + 100])


@pytest.fixture(scope="module")
def job_run(core_stack, aws_endpoint, tmp_path_factory):
    """Runs the job until every expected event is observed (or 120 s), then cancels it."""
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from connectors.deadletter.flink_sinks import attach_deadletter_file_sink, attach_deadletter_kinesis_sink
    from connectors.eventbridge.flink_sink import EVENTBRIDGE_INPUT_TYPE, attach_eventbridge_sink
    from connectors.kinesis.flink_source import kinesis_payload_table
    from deploy.local.observe import drain_queue

    url = aws_endpoint.url
    run_tag = f"run-{time.time_ns()}"
    kinesis = make_client("kinesis", endpoint_url=url, region="us-east-1", max_attempts=3)
    source_stream, dead_letter_stream = f"connectors-e2e-{run_tag}", f"connectors-e2e-dl-{run_tag}"
    kinesis.create_stream(StreamName=source_stream, ShardCount=2)
    kinesis.create_stream(StreamName=dead_letter_stream, ShardCount=1)
    _put_metrics(kinesis, source_stream, run_tag)

    out = tmp_path_factory.mktemp("connectors-e2e")
    config = Configuration()
    config.set_string("python.executable", sys.executable)  # the venv's interpreter for the workers
    config.set_string("python.fn-execution.bundle.time", "100")
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(2)
    env.enable_checkpointing(2000, CheckpointingMode.EXACTLY_ONCE)
    t_env = StreamTableEnvironment.create(env)

    def invalid_encoding_sinks(dead_letters):
        attach_deadletter_file_sink(dead_letters, str(out / "dead-letters"), flush_interval_ms=200)
        attach_deadletter_kinesis_sink(dead_letters, dead_letter_stream, endpoint_url=url, region="us-east-1",
                                       flush_interval_ms=200)

    table = kinesis_payload_table(
        t_env, env, source_stream,
        event_time_expr="TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(payload, '$.timestamp') AS BIGINT), 3)",
        watermark_expr="event_time - INTERVAL '30' SECOND",
        endpoint_url=url, region="us-east-1", poll_interval_ms=100, shard_discovery_interval_ms=2000,
        on_invalid_encoding=invalid_encoding_sinks,
    )
    from pyflink.table.expressions import col

    rows = t_env.to_data_stream(table.select(col("payload"), col("shard_id"), col("event_time")))

    def to_event(row):
        record = json.loads(row[0])
        detail = {"incident_id": f"inc-e2e-{record['run']}-{record['n']:04d}", "editor_id": record["editor_id"],
                  "shard_id": row[1], "event_time_ms": row[2].to_epoch_milli(),
                  "payload_timestamp_ms": record["timestamp"]}
        return Row("adops.analytics", "Composite Anomaly Detected",
                   json.dumps(detail, separators=(",", ":")), int(time.time() * 1000))

    events = rows.map(to_event, output_type=EVENTBRIDGE_INPUT_TYPE)
    latency_log = str(out / "latency" / "deliveries.jsonl")
    attach_eventbridge_sink(events, core_stack["bus_name"], endpoint_url=url, region="us-east-1",
                            flush_interval_ms=200, latency_log_path=latency_log,
                            heartbeat_interval_ms=1000)  # its rows must never be sent (ids checked below)

    job = env.execute_async("connectors-e2e")
    expected_ids = {f"inc-e2e-{run_tag}-{n:04d}" for n in range(RECORDS)}
    observed = []
    try:
        observed = drain_queue(
            core_stack["observation_queues"]["all-adops-events"], RECORDS, timeout=150,
            predicate=lambda e: isinstance(e, dict) and e.get("detail", {}).get("incident_id") in expected_ids,
            endpoint_url=url)
        # Anything arriving after the expected set would be a duplicate.
        observed += drain_queue(
            core_stack["observation_queues"]["all-adops-events"], 1, timeout=3,
            predicate=lambda e: isinstance(e, dict) and e.get("detail", {}).get("incident_id") in expected_ids,
            endpoint_url=url)
        time.sleep(1.0)  # let the dead-letter flush timers fire
    finally:
        job.cancel().result()
    reader = StreamReader(make_client("kinesis", endpoint_url=url, region="us-east-1"), dead_letter_stream)
    reader.discover()
    return {
        "expected_ids": expected_ids,
        "observed": observed,
        "dead_letter_files": sorted(glob.glob(str(out / "dead-letters" / "*.jsonl"))),
        "dead_letter_stream": [json.loads(r.payload) for r in reader.read_available()],
        "latency_files": sorted(glob.glob(latency_log + ".*")),
    }


def test_every_kinesis_record_becomes_exactly_one_eventbridge_event(job_run):
    ids = [e["detail"]["incident_id"] for e in job_run["observed"]]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert set(ids) == job_run["expected_ids"]


def test_both_shards_were_read_and_event_time_came_from_the_payload(job_run):
    details = [e["detail"] for e in job_run["observed"]]
    assert {d["shard_id"] for d in details} == {"shardId-000000000000", "shardId-000000000001"}
    assert all(d["event_time_ms"] == d["payload_timestamp_ms"] for d in details)


def test_undecodable_record_reaches_both_dead_letter_sinks(job_run):
    from_files = [json.loads(line) for path in job_run["dead_letter_files"] for line in open(path) if line.strip()]
    for letters in (from_files, job_run["dead_letter_stream"]):
        assert [(d["reason_code"], d["source"]) for d in letters] == [("INVALID_ENCODING", "metrics")]
        assert "bad bytes" in letters[0]["raw"]


def test_deliveries_are_logged_with_their_latency(job_run):
    receipts = [json.loads(line) for path in job_run["latency_files"] for line in open(path) if line.strip()]
    assert {r["id"] for r in receipts} == job_run["expected_ids"]
    assert all(r["latency_ms"] >= 0 and r["delivered_at_ms"] >= r["emitted_at_ms"] for r in receipts)
    assert os.path.basename(job_run["latency_files"][0]).startswith("deliveries.jsonl.")
