"""Records/s through the boto3 Kinesis path (source (b)) — a measurement, not a test.

    python -m connectors.kinesis.benchmark --records 50000 --shards 2 --parallelism 2 [--out FILE.json]

or from `flink_jobs.benchmark`:

    from connectors.kinesis.benchmark import measure_kinesis_throughput
    figures = measure_kinesis_throughput(records=50_000, shards=2, parallelism=2)

What is measured, in one run against one endpoint (the embedded one in its own
process unless `endpoint_url` is given):

1. `poller_only`: `StreamReader.read_available` in this process, no Flink — the
   ceiling the endpoint + boto3 allow for one sequential reader, and how much of
   it is spent inside GetRecords (server + HTTP + response parsing).
2. `flink`: the PyFlink job `kinesis_payload_table` (watermark on, as the job
   uses it), continued in SQL as the job continues: a filter on the sequence
   number lets only each shard's first and last record through to a Python map
   that writes the time they arrived, parallelism N. The rate is records / (time
   the last record arrived − time the first did), so job start-up is excluded.
3. `flink_python_map`: the same job with every record taken to that Python map
   (`to_data_stream` → map): what this figure was until 2026-12-06. Each record
   then pays a Java → Python crossing and a Python call that no job operator
   makes (the job parses in SQL); in thread mode that map shares the one
   interpreter with the readers, so it measures the map as much as the reader.
   `flink` runs first, in the colder JVM (its JIT compiler has compiled less):
   the order that does not flatter the figure the target is checked against.

The stream is filled before the job starts (a backlog read from TRIM_HORIZON),
which measures read capacity, not a producer's rate.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from connectors.aws import make_client
from connectors.kinesis.poller import StreamReader, reader_client
from connectors.flink_runtime import execution_mode_options, subtask_index


@dataclass
class ShardFill:
    """What the fill put on one shard: how many records, and the first and last one's sequence number."""

    count: int
    first_sequence: str
    last_sequence: str


def _fill_stream(kinesis: Any, stream: str, records: int) -> dict[str, ShardFill]:
    """Put metric-like records; returns what landed on each shard."""
    per_shard: dict[str, ShardFill] = {}
    base_ms = 1_793_527_200_000
    for start in range(0, records, 500):
        batch = [
            {"Data": json.dumps({"editor_id": f"e-{n % 200:03d}", "metric": "rpm", "value": 1.0 + (n % 97) / 10,
                                 "timestamp": base_ms + n * 10, "partner": f"p-{n % 7}"}).encode(),
             "PartitionKey": f"e-{n % 200:03d}"}
            for n in range(start, min(records, start + 500))
        ]
        response = kinesis.put_records(StreamName=stream, Records=batch)
        if response.get("FailedRecordCount"):
            raise RuntimeError(f"PutRecords failed for {response['FailedRecordCount']} records")
        for put in response["Records"]:
            shard = per_shard.setdefault(put["ShardId"], ShardFill(0, put["SequenceNumber"], put["SequenceNumber"]))
            shard.count += 1
            shard.last_sequence = put["SequenceNumber"]
    return per_shard


def _poller_only(endpoint_url: str, stream: str, max_records_per_poll: int) -> dict[str, Any]:
    client = reader_client(endpoint_url=endpoint_url, max_attempts=3)   # the job's reader's client
    reader = StreamReader(client, stream, "TRIM_HORIZON", max_records_per_call=max_records_per_poll)
    reader.discover()
    started = time.perf_counter()
    records = reader.read_available()
    elapsed = time.perf_counter() - started
    return {
        "records": len(records),
        "seconds": round(elapsed, 3),
        "records_per_s": round(len(records) / elapsed, 1) if elapsed else None,
        "seconds_in_get_records": round(reader.metrics.seconds_in_get_records, 3),
        "get_records_calls": reader.metrics.get_records_calls,
    }


class _ArrivalMap:
    """Writes the time each shard's first and last record reached it (one JSON line each; both for
    a shard of one record). Records are told apart by shard and sequence number (a sequence number
    is unique only within its shard: the embedded endpoint numbers each shard from 1); any other
    record passes without a write."""

    def __init__(self, progress_dir: str, edges: dict[str, tuple[str, str]]) -> None:
        self.progress_dir = progress_dir
        self.edges: dict[tuple[str, str], tuple[str, ...]] = {}
        for shard, pair in edges.items():
            for edge, seq in zip(("first", "last"), pair):
                self.edges[(shard, seq)] = (*self.edges.get((shard, seq), ()), edge)

    def open(self, runtime_context: Any) -> None:
        self.subtask = subtask_index(runtime_context)
        self.log = open(os.path.join(self.progress_dir, f"progress-{self.subtask}.jsonl"), "a")

    def map(self, value: Any) -> int:
        edges = self.edges.get((value[1], value[2]))
        if edges:
            now = time.time()
            self.log.write("".join(json.dumps({"shard": value[1], "edge": edge, "t": now}) + "\n" for edge in edges))
            self.log.flush()
        return 0

    def close(self) -> None:
        self.log.close()


#: How the read records continue after the Kinesis table: the figures' keys (module docstring).
DOWNSTREAMS = ("flink", "flink_python_map")


def _flink_run(endpoint_url: str, stream: str, per_shard: dict[str, ShardFill], *, downstream: str, parallelism: int,
               max_records_per_poll: int, poll_interval_ms: int, bundle_size: int, bundle_time_ms: int,
               timeout_s: float, python_execution_mode: str = "thread") -> dict[str, Any]:
    from pyflink.common import Configuration, Types
    from pyflink.datastream import MapFunction, StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment
    from pyflink.table.expressions import col

    from connectors.kinesis.flink_source import kinesis_payload_table

    class ArrivalMap(_ArrivalMap, MapFunction):
        pass

    edges = {shard: (fill.first_sequence, fill.last_sequence) for shard, fill in per_shard.items()}
    progress_dir = tempfile.mkdtemp(prefix="kinesis-bench-")
    config = Configuration()
    # The Python workers must run this interpreter (the venv), not whatever `python` is on PATH.
    config.set_string("python.executable", sys.executable)
    config.set_string("python.fn-execution.bundle.size", str(bundle_size))
    config.set_string("python.fn-execution.bundle.time", str(bundle_time_ms))
    for key, value in execution_mode_options(python_execution_mode).items():   # as the job runs it
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    t_env = StreamTableEnvironment.create(env)
    table = kinesis_payload_table(
        t_env, env, stream,
        event_time_expr="TO_TIMESTAMP_LTZ(CAST(JSON_VALUE(payload, '$.timestamp') AS BIGINT), 3)",
        watermark_expr="event_time - INTERVAL '30' SECOND",
        endpoint_url=endpoint_url, poll_interval_ms=poll_interval_ms, max_records_per_poll=max_records_per_poll,
    )
    if downstream == "flink":   # lets through the edges' sequence numbers, of any shard: the map tells them apart
        table = table.where(col("sequence_number").in_(*(seq for pair in edges.values() for seq in pair)))
    rows = t_env.to_data_stream(table.select(col("payload"), col("shard_id"), col("sequence_number")))
    rows.map(ArrivalMap(progress_dir, edges), output_type=Types.INT())
    submitted = time.time()
    job = env.execute_async(f"kinesis-throughput-{downstream}")
    total = sum(fill.count for fill in per_shard.values())
    arrived: dict[str, dict[str, float]] = {"first": {}, "last": {}}
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(arrived["last"]) < len(per_shard):
            time.sleep(0.5)
            for path in glob.glob(os.path.join(progress_dir, "progress-*.jsonl")):
                with open(path) as handle:
                    for line in handle:
                        event = json.loads(line)
                        arrived[event["edge"]].setdefault(event["shard"], event["t"])
    finally:
        job.cancel().result()
        shutil.rmtree(progress_dir, ignore_errors=True)
    first, done = arrived["first"], arrived["last"]
    if len(done) < len(per_shard) or len(first) < len(per_shard):
        return {"completed": False, "shards_completed": len(done), "timeout_s": timeout_s}
    span = max(done.values()) - min(first.values())
    return {
        "completed": True,
        "records": total,
        "seconds_first_to_last": round(span, 3),
        "records_per_s": round(total / span, 1) if span > 0 else None,
        "seconds_submit_to_first_record": round(min(first.values()) - submitted, 3),
        "seconds_submit_to_last_record": round(max(done.values()) - submitted, 3),
        "parallelism": parallelism,
        "per_shard_seconds": {s: round(done[s] - first[s], 3) for s in sorted(done)},
        "bundle_size": bundle_size,
        "bundle_time_ms": bundle_time_ms,
        "poll_interval_ms": poll_interval_ms,
        "max_records_per_poll": max_records_per_poll,
        "python_execution_mode": python_execution_mode,
    }


def measure_kinesis_throughput(
    *,
    endpoint_url: str | None = None,
    records: int = 50_000,
    shards: int = 2,
    parallelism: int = 2,
    max_records_per_poll: int = 10_000,
    poll_interval_ms: int = 50,
    bundle_size: int = 100_000,
    bundle_time_ms: int = 100,
    timeout_s: float = 600.0,
    python_execution_mode: str = "thread",
) -> dict[str, Any]:
    """Fill a fresh stream with `records` records over `shards` shards and measure the read rates.

    Returns {"poller_only": {...}, "flink": {...}, "flink_python_map": {...}, "setup": {...}}; see the module
    docstring.
    """
    endpoint = None
    if endpoint_url is None:
        from deploy.local.endpoint import start_endpoint

        endpoint = start_endpoint(port=0)
        endpoint_url = endpoint.url
    try:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        kinesis = make_client("kinesis", endpoint_url=endpoint_url, max_attempts=3, read_timeout_s=120)
        stream = f"kinesis-throughput-{time.time_ns()}"
        kinesis.create_stream(StreamName=stream, ShardCount=shards)
        started = time.perf_counter()
        per_shard = _fill_stream(kinesis, stream, records)
        fill_seconds = time.perf_counter() - started
        poller = _poller_only(endpoint_url, stream, max_records_per_poll)
        runs = {downstream: _flink_run(endpoint_url, stream, per_shard, downstream=downstream, parallelism=parallelism,
                                       max_records_per_poll=max_records_per_poll, poll_interval_ms=poll_interval_ms,
                                       bundle_size=bundle_size, bundle_time_ms=bundle_time_ms, timeout_s=timeout_s,
                                       python_execution_mode=python_execution_mode)
                for downstream in DOWNSTREAMS}
        return {
            "setup": {"endpoint": "embedded (own process)" if endpoint else endpoint_url, "stream": stream,
                      "records": records, "shards": shards,
                      "records_per_shard": {shard: fill.count for shard, fill in sorted(per_shard.items())},
                      "fill_seconds": round(fill_seconds, 2), "cpu_count": os.cpu_count()},
            "poller_only": poller,
            **runs,
        }
    finally:
        if endpoint is not None:
            endpoint.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.kinesis.benchmark")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--max-records-per-poll", type=int, default=10_000)
    parser.add_argument("--poll-interval-ms", type=int, default=50)
    parser.add_argument("--bundle-size", type=int, default=100_000)
    parser.add_argument("--bundle-time-ms", type=int, default=100)
    parser.add_argument("--python-execution-mode", choices=["thread", "process"], default="thread",
                        help="PyFlink's python.execution-mode (the job's local default: thread)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    import os
    import time

    # The machine's load beside the figures: on shared cores the rates move with it.
    load_before, started = [round(x, 2) for x in os.getloadavg()], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    figures = measure_kinesis_throughput(
        endpoint_url=args.endpoint_url, records=args.records, shards=args.shards, parallelism=args.parallelism,
        max_records_per_poll=args.max_records_per_poll, poll_interval_ms=args.poll_interval_ms,
        bundle_size=args.bundle_size, bundle_time_ms=args.bundle_time_ms,
        python_execution_mode=args.python_execution_mode)
    figures.update({"started_at": started, "load_average_at_start": load_before,
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]})
    text = json.dumps(figures, indent=2)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
