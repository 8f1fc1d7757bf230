"""Event-time pacing of the local Kinesis source (defect D1: catch-up reads routed valid
records to the late output).

Two shards, one dense (a record every 0.2 s of event time) and one sparse (every 2 s),
a backlog of 10 minutes of event time in each, read by two readers — one per lineage
group, as on two subtasks — with 100 records per GetRecords, one poll per tick each,
like the job's KinesisGroupReader. The watermark is modelled as the job's worst case:
the largest event time emitted so far by either reader minus the delay (what a subtask
reading both shards sees, or what the window operators see once the lagging subtask has
been declared idle). A record is late when its event time is behind that watermark when
it is emitted — the job's LATE_RECORD rule.
"""
from __future__ import annotations

import datetime as dt
import json

from connectors.kinesis.flink_source import watermark_delay_ms
from connectors.kinesis.poller import (
    EventTimeAlignment,
    ExponentialBackoff,
    StreamReader,
    list_shards,
    payload_event_time_ms,
)

BASE_MS = int(dt.datetime(2026, 11, 1, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
WATERMARK_DELAY_MS = 10_000
SPAN_MS = 600_000


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _backlog_stream(aws_client, name: str) -> tuple[str, list[str], int]:
    kinesis = aws_client("kinesis", max_attempts=3)
    kinesis.create_stream(StreamName=name, ShardCount=2)
    shards = sorted(kinesis.list_shards(StreamName=name)["Shards"], key=lambda s: s["ShardId"])
    total = 0
    for shard, step_ms in zip(shards, (200, 2000)):  # dense, sparse
        hash_key = shard["HashKeyRange"]["StartingHashKey"]
        records = [{"Data": json.dumps({"editor_id": "e-001", "metric": "rpm", "value": 1.0,
                                         "timestamp": _iso(BASE_MS + t)}).encode(),
                    "PartitionKey": "e-001", "ExplicitHashKey": hash_key}
                   for t in range(0, SPAN_MS, step_ms)]
        for i in range(0, len(records), 500):
            kinesis.put_records(StreamName=name, Records=records[i:i + 500])
        total += len(records)
    return name, [s["ShardId"] for s in shards], total


def _catch_up(aws_client, stream: str, shard_ids: list[str], alignment_dir=None) -> tuple[int, int]:
    """Read the backlog with one reader per shard; returns (records read, late records)."""
    readers, alignments = [], []
    for shard_id in shard_ids:
        client = aws_client("kinesis", raw_timestamps=True)
        reader = StreamReader(client, stream, "TRIM_HORIZON", max_records_per_call=100,
                              backoff=ExponentialBackoff(base_s=0.005, cap_s=0.02))
        reader.set_shards([s for s in list_shards(client, stream) if s.shard_id == shard_id])
        readers.append(reader)
        alignments.append(None if alignment_dir is None else
                          EventTimeAlignment(str(alignment_dir), f"group-{shard_id}", WATERMARK_DELAY_MS // 2,
                                             refresh_ms=0))
    max_seen, read, late, quiet_rounds = None, 0, 0, 0
    for _ in range(2000):
        emitted_this_round = 0
        for reader, alignment in zip(readers, alignments):  # one tick: every group polls once
            if alignment is None:
                batch = reader.poll_once()
            else:
                batch = reader.poll_once(
                    lambda sid, r=reader, a=alignment: a.may_poll(sid, r.shard_event_ms, r.shard_active),
                    lambda sid, first, r=reader, a=alignment: a.event_limit_ms(sid, r.shard_event_ms,
                                                                               r.shard_active, first))
                alignment.publish(reader.shard_event_ms, reader.shard_active)
            for record in batch:
                event_ms = payload_event_time_ms(record.payload)
                if max_seen is not None and event_ms < max_seen - WATERMARK_DELAY_MS:
                    late += 1
                max_seen = event_ms if max_seen is None else max(max_seen, event_ms)
            read += len(batch)
            emitted_this_round += len(batch)
        quiet_rounds = quiet_rounds + 1 if not emitted_this_round else 0
        if quiet_rounds >= 3:
            break
    return read, late


def test_unpaced_catch_up_of_a_dense_and_a_sparse_shard_routes_valid_records_late(aws_client, unique_name):
    stream, shard_ids, total = _backlog_stream(aws_client, unique_name("align"))
    read, late = _catch_up(aws_client, stream, shard_ids)
    assert read == total
    assert late > total * 0.2, f"the defect should reproduce: {late} of {total} late"


def test_paced_catch_up_reads_every_record_once_and_none_late(aws_client, unique_name, tmp_path):
    stream, shard_ids, total = _backlog_stream(aws_client, unique_name("align"))
    read, late = _catch_up(aws_client, stream, shard_ids, alignment_dir=tmp_path / "align")
    assert read == total
    assert late == 0


def test_an_idle_or_stale_shard_does_not_hold_the_others_back(tmp_path):
    now = [1000.0]
    fast = EventTimeAlignment(str(tmp_path), "fast", 5_000, refresh_ms=0, stale_after_ms=30_000,
                              clock=lambda: now[0])
    slow = EventTimeAlignment(str(tmp_path), "slow", 5_000, refresh_ms=0, stale_after_ms=30_000,
                              clock=lambda: now[0])
    slow.publish({"s-slow": BASE_MS}, {"s-slow": True})
    own = {"s-fast": BASE_MS + 60_000}
    assert not fast.may_poll("s-fast", own, {"s-fast": True})  # held by the active, slower shard
    slow.publish({"s-slow": BASE_MS}, {"s-slow": False})        # caught up / idle
    assert fast.may_poll("s-fast", own, {"s-fast": True})
    slow.publish({"s-slow": BASE_MS}, {"s-slow": True})
    now[0] += 31                                                # its reader stopped writing
    assert fast.may_poll("s-fast", own, {"s-fast": True})


def test_payload_event_time_for_pacing():
    assert payload_event_time_ms('{"timestamp": "2026-11-01T10:00:00Z"}') == BASE_MS
    assert payload_event_time_ms(json.dumps({"timestamp": BASE_MS})) == BASE_MS
    assert payload_event_time_ms("not json") is None
    assert payload_event_time_ms('{"timestamp": "2026-11-01T10:00:00"}') is None  # no zone
    assert payload_event_time_ms('{"timestamp": "9999-01-01T00:00:00Z"}') is None  # absurd future


def test_default_bound_is_half_the_watermark_delay():
    assert watermark_delay_ms("event_time - INTERVAL '0 00:00:30' DAY TO SECOND") == 30_000
    assert watermark_delay_ms("event_time - INTERVAL '5' SECOND") == 5_000
    assert watermark_delay_ms("event_time") is None
