"""Firehose-style archive: partition paths, exact round trip in Parquet and gzipped JSON lines."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone

import pytest

from connectors.archive import (EVENTS, JSONL, METRICS, PARQUET, ArchiveWriter, data_files, iter_archive,
                                partition_dir, read_records)

T0 = datetime(2026, 11, 2, 13, 59, 58, tzinfo=timezone.utc).timestamp()

METRIC_RECORDS = [
    {"editor_id": "e-001", "metric": "rpm", "value": 2.345678, "timestamp": "2026-11-02T13:59:58.123Z"},
    {"editor_id": "e-002", "metric": "impressions", "value": 1200.0, "timestamp": 1793627998123},
    {"editor_id": "e-001", "metric": "partner_timeouts", "value": 3.0, "timestamp": "2026-11-02T14:00:01Z",
     "partner": "p-01", "dimensions": {"adapter": "prebid"}},
    {"editor_id": "e-003", "metric": "fill_rate", "value": 0.1 + 0.2, "timestamp": "2026-11-02T14:00:02+01:00",
     "site_section": "sports"},                                   # a field outside the contract survives
    {"editor_id": "e-004", "metric": "rpm", "value": "2.1", "timestamp": "2026-11-02T14:00:03Z"},   # wrong type
    {"metric": "rpm", "value": 1.0, "timestamp": "2026-11-02T14:00:04Z"},                           # no editor
    {"editor_id": "e-005", "metric": "rpm", "value": 1.5, "timestamp": True},                       # bool stamp
]
EVENT_RECORDS = [
    {"event_type": "config_change", "timestamp": "2026-11-02T13:59:59Z", "editor_id": "e-001",
     "details": {"setting": "price_floor", "old_value": 1.2, "new_value": 0.12, "nested": {"a": [1, 2]}}},
    {"event_type": "security_finding", "timestamp": 1793628001000, "editor_id": "e-002", "severity": 8.5,
     "details": {"title": "bots"}},
    {"event_type": "partner_status", "timestamp": "2026-11-02T14:00:02Z", "partner": "p-03"},
    {"event_type": "deployment", "timestamp": "2026-11-02T14:00:03Z", "details": "not an object"},
]


def test_partition_dir_is_firehose_hourly_hive_style():
    assert partition_dir(METRICS, T0) == "metrics/year=2026/month=11/day=02/hour=13"
    assert partition_dir(EVENTS, T0 + 2) == "events/year=2026/month=11/day=02/hour=14"


@pytest.mark.parametrize("fmt", [PARQUET, JSONL])
def test_round_trip_is_exact_and_in_order_across_hour_partitions(tmp_path, fmt):
    with ArchiveWriter(tmp_path, fmt=fmt, max_records_per_part=2) as writer:
        for i, record in enumerate(METRIC_RECORDS):
            writer.add(record, T0 + i)
        for i, record in enumerate(EVENT_RECORDS):
            writer.add(record, T0 + 1 + i)
    suffix = ".parquet" if fmt == PARQUET else ".jsonl.gz"
    files = [str(p.relative_to(tmp_path)) for p in data_files(tmp_path)]
    assert f"metrics/year=2026/month=11/day=02/hour=13/part-00000{suffix}" in files
    assert f"metrics/year=2026/month=11/day=02/hour=14/part-00001{suffix}" in files   # 2 records per part
    assert all(f.endswith(suffix) for f in files)
    got = read_records(tmp_path, METRICS)
    assert got == METRIC_RECORDS
    assert [type(r.get("timestamp")) for r in got] == [type(r.get("timestamp")) for r in METRIC_RECORDS]
    assert read_records(tmp_path, EVENTS) == EVENT_RECORDS
    # payloads are the records' JSON, ready for the stream
    payloads = [json.loads(r.payload) for r in iter_archive(tmp_path, METRICS)]
    assert payloads == METRIC_RECORDS


def test_jsonl_parts_are_gzip_and_readers_accept_plain_directories_of_lines(tmp_path):
    with ArchiveWriter(tmp_path / "a", fmt=JSONL) as writer:
        writer.add(METRIC_RECORDS[0], T0)
    part = data_files(tmp_path / "a")[0]
    assert gzip.decompress(part.read_bytes()).decode().strip() == json.dumps(METRIC_RECORDS[0], separators=(",", ":"))

    # Any directory of JSON lines in the contract is an archive: kinds come from the records.
    loose = tmp_path / "loose"
    loose.mkdir()
    lines = [json.dumps(METRIC_RECORDS[0]), "{not json", json.dumps(EVENT_RECORDS[0])]
    (loose / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    items = list(iter_archive(loose))
    assert [i.kind for i in items] == [METRICS, None, EVENTS]
    assert items[1].record is None and items[1].payload == "{not json"
    assert [i.record for i in iter_archive(loose, METRICS)] == [METRIC_RECORDS[0]]


def test_identical_input_gives_identical_bytes(tmp_path):
    for name in ("one", "two"):
        with ArchiveWriter(tmp_path / name, fmt=PARQUET) as writer:
            for i, record in enumerate(METRIC_RECORDS):
                writer.add(record, T0 + i)
    one = [p.read_bytes() for p in data_files(tmp_path / "one")]
    two = [p.read_bytes() for p in data_files(tmp_path / "two")]
    assert one == two


def test_capture_archives_a_live_stream_by_arrival_hour(aws_endpoint, tmp_path):
    import boto3

    from connectors.archive.capture import capture_stream, kinesis_client

    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName="archive-capture-test", ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName="archive-capture-test")
    records = [r for r in METRIC_RECORDS[:4]] + [EVENT_RECORDS[0]]
    kinesis.put_records(StreamName="archive-capture-test", Records=[
        {"Data": json.dumps(r).encode(), "PartitionKey": r.get("editor_id", "x")} for r in records]
        + [{"Data": b"\xff not json", "PartitionKey": "bad"}])
    writer = ArchiveWriter(tmp_path, fmt=PARQUET)
    stats = capture_stream("archive-capture-test", writer, client=kinesis_client(aws_endpoint.url),
                           idle_exit_s=1.0)
    assert stats.records == 6 and stats.undecodable == 1 and len(stats.shards) == 2
    captured = read_records(tmp_path, METRICS) + read_records(tmp_path, EVENTS)
    key = lambda r: json.dumps(r, sort_keys=True)
    assert sorted(captured, key=key) == sorted(records, key=key)
    now_hour = partition_dir(METRICS, datetime.now(timezone.utc).timestamp()).split("/", 1)[1]
    assert any(now_hour[:len("year=2026/month=11/day=02")] in str(p) for p in data_files(tmp_path))
