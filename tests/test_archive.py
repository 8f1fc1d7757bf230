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


def _arrivals(kinesis, stream: str) -> dict[bytes, float]:
    """Each record's payload -> its ApproximateArrivalTimestamp (epoch s), as the stream reports it."""
    out = {}
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        out.update({r["Data"]: r["ApproximateArrivalTimestamp"].timestamp() for r in response["Records"]})
    return out


def test_capture_archives_a_live_stream_by_arrival_hour(aws_endpoint, tmp_path, unique_name):
    import boto3

    from connectors.archive import kind_of
    from connectors.archive.capture import capture_stream, kinesis_client
    from connectors.archive.formats import read_parquet

    stream = unique_name("archive-capture")
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    records = [r for r in METRIC_RECORDS[:4]] + [EVENT_RECORDS[0]]
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": json.dumps(r).encode(), "PartitionKey": r.get("editor_id", "x")} for r in records]
        + [{"Data": b"\xff not json", "PartitionKey": "bad"}])
    writer = ArchiveWriter(tmp_path, fmt=PARQUET)
    stats = capture_stream(stream, writer, client=kinesis_client(aws_endpoint.url), idle_exit_s=1.0)
    assert stats.records == 6 and stats.undecodable == 1 and len(stats.shards) == 2
    assert stats.skipped == {"not UTF-8": 1}
    captured = read_records(tmp_path, METRICS) + read_records(tmp_path, EVENTS)
    key = lambda r: json.dumps(r, sort_keys=True)
    assert sorted(captured, key=key) == sorted(records, key=key)
    # Each record is in the partition of the hour the stream says it arrived in (so a run that
    # crosses an hour boundary checks the right hour for each, not the day only).
    expected = {key(json.loads(data)): partition_dir(kind_of(json.loads(data)), arrival)
                for data, arrival in _arrivals(kinesis, stream).items() if data != b"\xff not json"}
    found = {}
    for part in data_files(tmp_path):
        kind = part.relative_to(tmp_path).parts[0]
        for record, _ in read_parquet(kind, part):
            found[key(record)] = str(part.parent.relative_to(tmp_path))
    assert found == expected


def test_capture_from_latest_skips_what_a_resharded_stream_already_held(aws_endpoint, tmp_path, unique_name):
    """Reported: without --from-start, every child shard of an earlier split but the first one listed
    started at TRIM_HORIZON, so a capture of what comes next archived the children's whole retention."""
    import boto3

    from connectors.archive.capture import capture_stream, kinesis_client

    stream = unique_name("archive-capture-latest")
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent["ShardId"],
                        NewStartingHashKey=str((int(parent["HashKeyRange"]["EndingHashKey"]) + 1) // 2))
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    old = [dict(r, editor_id=f"e-{i:03d}") for i, r in enumerate(METRIC_RECORDS[:1] * 40)]
    kinesis.put_records(StreamName=stream, Records=[
        {"Data": json.dumps(r).encode(), "PartitionKey": r["editor_id"]} for r in old])
    children = [s for s in kinesis.list_shards(StreamName=stream)["Shards"] if "ParentShardId" in s]
    held = {c["ShardId"]: len(kinesis.get_records(ShardIterator=kinesis.get_shard_iterator(
        StreamName=stream, ShardId=c["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"])
        for c in children}
    assert len(held) == 2 and all(held.values()), held      # both children hold old records

    stats = capture_stream(stream, ArchiveWriter(tmp_path, fmt=JSONL), client=kinesis_client(aws_endpoint.url),
                           from_start=False, idle_exit_s=1.0)
    assert len(stats.shards) == 3 and stats.records == 0


def test_capture_archives_a_parent_shards_records_before_its_childrens(aws_endpoint, tmp_path, unique_name):
    """A split during a backlog: the capture polled the children in the same round as their closed
    parent, so a key's records after the split were archived before the parent's tail (records
    0-9,999, then 12,000-12,099, then 10,000-11,999), and a replay, which keeps the archive's order
    per key, sent them that way."""
    import boto3

    from connectors.archive.capture import capture_stream, kinesis_client

    stream = unique_name("archive-capture-split")
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)

    def put(numbers):
        numbers = list(numbers)
        for start in range(0, len(numbers), 500):
            kinesis.put_records(StreamName=stream, Records=[
                {"Data": json.dumps(dict(METRIC_RECORDS[0], value=float(n))).encode(), "PartitionKey": "e-1"}
                for n in numbers[start:start + 500]])

    put(range(12_000))                       # more than one GetRecords of the capture (10,000)
    parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent["ShardId"],
                        NewStartingHashKey=str((int(parent["HashKeyRange"]["EndingHashKey"]) + 1) // 2))
    put(range(12_000, 12_100))
    stats = capture_stream(stream, ArchiveWriter(tmp_path, fmt=JSONL), client=kinesis_client(aws_endpoint.url),
                           idle_exit_s=1.0)
    assert stats.records == 12_100 and len(stats.shards) == 3
    assert [r["value"] for r in read_records(tmp_path, METRICS)] == [float(n) for n in range(12_100)]


# The JSON parser takes NaN, Infinity and 1e999 (read as inf); strict JSON cannot write them back.
NON_FINITE_PAYLOADS = [
    b'{"editor_id":"e-3","metric":"rpm","value":NaN,"timestamp":"2026-11-02T14:00:03Z"}',
    b'{"editor_id":"e-5", "metric":"rpm", "value":1e999, "timestamp":1793628004000}',
    b'{"editor_id":"e-6","metric":"rpm","value":1.5,"timestamp":"2026-11-02T14:00:05Z","note":-Infinity}',
    b'{"event_type":"config_change","timestamp":"2026-11-02T14:00:06Z","details":{"old_value":NaN}}',
]


@pytest.mark.parametrize("fmt", [PARQUET, JSONL])
@pytest.mark.parametrize("per_part", [250_000, 3])
def test_capture_archives_non_finite_numbers_as_read_and_loses_nothing(aws_endpoint, tmp_path, unique_name,
                                                                          fmt, per_part):
    """Reported: the default settings stopped the capture ("Out of range float values", nothing
    archived); 3 records per part lost e-1 and e-2 with the NaN record, as "not JSON"."""
    import boto3

    from connectors.archive.capture import capture_stream, kinesis_client

    valid = [json.dumps(r, separators=(",", ":")).encode() for r in (
        {"editor_id": "e-1", "metric": "rpm", "value": 2.5, "timestamp": "2026-11-02T14:00:01Z"},
        {"editor_id": "e-2", "metric": "rpm", "value": 3.5, "timestamp": "2026-11-02T14:00:02Z"},
        {"editor_id": "e-4", "metric": "rpm", "value": 4.5, "timestamp": "2026-11-02T14:00:04Z"})]
    payloads = valid[:2] + NON_FINITE_PAYLOADS[:1] + valid[2:] + NON_FINITE_PAYLOADS[1:]
    stream = unique_name("archive-nan")
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": "k"} for d in payloads])
    writer = ArchiveWriter(tmp_path, fmt=fmt, max_records_per_part=per_part)
    stats = capture_stream(stream, writer, client=kinesis_client(aws_endpoint.url), idle_exit_s=1.0)
    assert stats.records == len(payloads) and stats.undecodable == 0
    assert writer.record_counts == {METRICS: 6, EVENTS: 1}
    # Byte for byte what came, in arrival order per kind: what the replay will put on the stream.
    archived = [item.payload.encode() for kind in (METRICS, EVENTS) for item in iter_archive(tmp_path, kind)]
    assert archived == [p for p in payloads if b"event_type" not in p] + [NON_FINITE_PAYLOADS[3]]


@pytest.mark.parametrize("fmt", [PARQUET, JSONL])
def test_a_record_the_archive_cannot_hold_is_refused_alone_and_odd_ones_are_kept(tmp_path, fmt):
    odd = [
        {"editor_id": "e-7", "metric": "rpm", "value": 10 ** 400, "timestamp": "2026-11-02T14:00:00Z"},
        {"editor_id": "e-\udcff", "metric": "rpm", "value": 1.0, "timestamp": "2026-11-02T14:00:01Z"},
        {"event_type": "deployment", "timestamp": "2026-11-02T14:00:02Z", "severity": 10 ** 400,
         "details": {"who": "\ud800"}},
    ]
    writer = ArchiveWriter(tmp_path, fmt=fmt, max_records_per_part=2)
    writer.add(METRIC_RECORDS[0], T0)
    # No payload text and a NaN: JSON lines cannot write it, Parquet keeps it in raw.
    nan_record = {"editor_id": "e-9", "metric": "rpm", "value": float("nan"), "timestamp": "2026-11-02T14:00:00Z"}
    if fmt == JSONL:
        with pytest.raises(ValueError, match="NaN or Infinity"):
            writer.add(nan_record, T0)
    else:
        writer.add(nan_record, T0)
    for i, record in enumerate(odd):
        writer.add(record, T0)
    writer.close()
    metrics = read_records(tmp_path, METRICS)
    assert metrics[0] == METRIC_RECORDS[0] and metrics[-2:] == odd[:2]
    assert len(metrics) == (3 if fmt == JSONL else 4)
    assert read_records(tmp_path, EVENTS) == odd[2:]


def test_a_tree_is_its_metrics_and_events_and_files_beside_them_are_named(tmp_path, caplog):
    """The simulator's labels.jsonl sits beside its tree: read as records of unknown kind, each line
    would be replayed to the metrics stream (connectors/replay/README.md) and dead-lettered."""
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        writer.add(METRIC_RECORDS[0], T0)
        writer.add(EVENT_RECORDS[0], T0)
    (tmp_path / "labels.jsonl").write_text('{"incident_id": "sim-1", "problem_type": "DEMAND_ISSUE"}\n')
    (tmp_path / "stray.jsonl").write_text(json.dumps(METRIC_RECORDS[1]) + "\n")
    with caplog.at_level("WARNING", logger="connectors.archive.store"):
        items = list(iter_archive(tmp_path))
    assert [(i.kind, i.record) for i in items] == [(EVENTS, EVENT_RECORDS[0]), (METRICS, METRIC_RECORDS[0])]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "1 data file(s) beside" in warnings[0] and "stray.jsonl" in warnings[0]
    assert "labels.jsonl" not in warnings[0]
    # On its own, the same file is an archive (a flat one).
    assert [i.record for i in iter_archive(tmp_path / "stray.jsonl")] == [METRIC_RECORDS[1]]


@pytest.mark.parametrize("argv, message", [
    (["--idle-exit", "nan"], "argument --idle-exit: must be a finite number of seconds >= 0"),
    (["--idle-exit", "-1"], "argument --idle-exit: must be a finite number of seconds >= 0"),
    (["--buffer-interval", "0"], "argument --buffer-interval: must be a finite number of seconds > 0"),
    (["--max-records", "0"], "argument --max-records: must be at least 1"),
])
def test_capture_refuses_bad_numbers_before_it_starts(tmp_path, capsys, argv, message):
    from connectors.archive.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["capture", "--stream", "no-such-stream", "--out", str(tmp_path / "a"), *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_capture_refuses_a_line_nested_too_deep_and_writes_what_it_read_when_it_fails(aws_endpoint, tmp_path,
                                                                                       unique_name):
    """Reported: a record nested deeper than json.loads goes raised RecursionError out of the capture,
    and any error out of it (a dropped connection too) lost the records it had read but not yet written
    (up to buffer_interval_s of them). The record is now refused as not JSON, and the buffer is written
    whatever stops the capture."""
    import boto3
    from botocore.exceptions import EndpointConnectionError

    from connectors.archive.capture import capture_stream, kinesis_client

    good = [json.dumps({"editor_id": f"e-{n}", "metric": "rpm", "value": 1.0,
                        "timestamp": f"2026-11-02T14:00:0{n}Z"}).encode() for n in range(3)]
    nested = b'{"editor_id": "e-9", "metric": "rpm", "value": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    stream = unique_name("archive-deep")
    kinesis = boto3.client("kinesis", endpoint_url=aws_endpoint.url)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    kinesis.put_records(StreamName=stream, Records=[{"Data": d, "PartitionKey": "k"} for d in
                                                     good[:2] + [nested] + good[2:]])
    client = kinesis_client(aws_endpoint.url)
    calls = []

    class DropsTheSecondRead:
        def __getattr__(self, name):
            return getattr(client, name)

        def get_records(self, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                raise EndpointConnectionError(endpoint_url=aws_endpoint.url)
            return client.get_records(**kwargs)

    writer = ArchiveWriter(tmp_path, fmt=JSONL)
    with pytest.raises(EndpointConnectionError):
        capture_stream(stream, writer, client=DropsTheSecondRead(), idle_exit_s=30.0, buffer_interval_s=3600.0)
    assert [item.payload.encode() for item in iter_archive(tmp_path, METRICS)] == good


def test_a_line_nested_too_deep_is_read_as_a_line_of_unknown_kind(tmp_path):
    """Reported: RecursionError out of the reader stopped a replay (and `archive stats`) half-way.
    Such a line is not JSON to Python: it is read with no kind, and the replay sends it to the
    metrics stream, where the job dead-letters it (connectors/replay/kinesis.py)."""
    nested = '{"metric": "rpm", "x": ' + "[" * 5_000 + "]" * 5_000 + "}"
    good = json.dumps({"editor_id": "e-1", "metric": "rpm", "value": 1.0, "timestamp": "2026-11-02T14:00:00Z"})
    (tmp_path / "day.jsonl").write_text("\n".join([good, nested, good]) + "\n")
    items = list(iter_archive(tmp_path / "day.jsonl", METRICS, unrecognised=True))
    assert [(item.kind, item.payload) for item in items] == [(METRICS, good), (None, nested), (METRICS, good)]


def test_one_parquet_file_or_a_flat_folder_of_them_is_read_as_the_docs_say(tmp_path):
    """'Any directory of .parquet / .jsonl[.gz] files, or one file': one Parquet file, even under
    metrics/, and a flat folder of them were refused ("a Parquet part must be under a metrics/ or
    events/ directory"). The kind now comes from the folders a file is in, else from its columns.
    Names starting with . or _ are skipped, as Flink's filesystem source skips them."""
    import shutil

    with ArchiveWriter(tmp_path / "tree", fmt=PARQUET) as writer:
        for record in METRIC_RECORDS[:3]:
            writer.add(record, T0)
        for record in EVENT_RECORDS[:2]:
            writer.add(record, T0)
    metrics_part, events_part = (next((tmp_path / "tree" / kind).rglob("*.parquet")) for kind in (METRICS, EVENTS))
    assert [r.record for r in iter_archive(metrics_part)] == METRIC_RECORDS[:3]
    # the innermost kind folder names it, not one above the archive (/data/events/sim/metrics/...)
    nested = tmp_path / "events" / "sim" / "metrics" / "part.parquet"
    nested.parent.mkdir(parents=True)
    shutil.copy(metrics_part, nested)
    assert {r.kind for r in iter_archive(nested)} == {METRICS}
    assert {r.kind for r in iter_archive(metrics_part)} == {METRICS}
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(metrics_part, flat / "m.parquet")
    shutil.copy(events_part, flat / "e.parquet")
    (flat / "_in-progress.parquet").write_bytes(b"PAR1 half-written")
    (flat / "._m.parquet").write_bytes(b"macOS resource fork")
    assert [p.name for p in data_files(flat)] == ["e.parquet", "m.parquet"]
    assert read_records(flat, METRICS) == METRIC_RECORDS[:3] and read_records(flat, EVENTS) == EVENT_RECORDS[:2]


def test_a_new_part_never_replaces_one_already_written(tmp_path):
    """Reported: the next part was numbered by how many parts there were, so after one was deleted
    (or beside a crash's temporary file) a flush replaced the highest part with its own records."""
    first, second, third = (dict(METRIC_RECORDS[0], editor_id=f"e-{i}") for i in range(3))
    with ArchiveWriter(tmp_path, fmt=JSONL) as writer:
        for record in (first, second):
            writer.add(record, 1_793_628_000)
            writer.flush()
        parts = sorted(data_files(tmp_path))
        assert [p.name for p in parts] == ["part-00000.jsonl.gz", "part-00001.jsonl.gz"]
        parts[0].unlink()
        writer.add(third, 1_793_628_000)
        writer.flush()
    assert sorted(r["editor_id"] for r in read_records(tmp_path, METRICS)) == ["e-1", "e-2"]
