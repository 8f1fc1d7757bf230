"""The malformed-record generator: volume, determinism, coverage, and that bad records are really bad.

``contract_violation`` below is an independent reading of DESIGN.md's record
contract (not the pipeline's SQL): every generated bad record must violate it,
every valid edge case must satisfy it.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from connectors.batching import KINESIS_RECORD_MAX_BYTES
from flink_jobs.reliability.fuzz import (
    DEFAULT_MAX_PAYLOAD_BYTES, EVENT_TYPES, FUZZ_ID_PATTERN, METRICS, RATE_METRICS,
    FuzzGenerator, TrafficRecord, fuzz_records, mix, timestamp_ms_of,
)

DESIGN_REASON_CODES = {
    "INVALID_JSON", "MISSING_FIELD", "WRONG_TYPE", "UNKNOWN_METRIC", "UNKNOWN_EVENT_TYPE", "NON_FINITE_VALUE",
    "OUT_OF_RANGE_VALUE", "INVALID_TIMESTAMP", "FUTURE_TIMESTAMP", "OVERSIZED_RECORD", "LATE_RECORD",
    "DUPLICATE_RECORD", "DELIVERY_FAILED",
    "INVALID_ENCODING",  # added by connectors/deadletter for bytes that are not UTF-8
}
START_MS = 1_793_520_000_000  # 2026-11-01T08:00:00Z


def valid_traffic(n_editors=20, minutes=60, every_s=30) -> list[TrafficRecord]:
    out = []
    for step in range(minutes * 60 // every_s):
        ts = START_MS + step * every_s * 1000
        for e in range(n_editors):
            for metric in ("rpm", "fill_rate"):
                payload = json.dumps({"editor_id": f"e-{e:03d}", "metric": metric,
                                      "value": 2.5 if metric == "rpm" else 0.8, "timestamp": ts}).encode()
                out.append(TrafficRecord("metrics", f"e-{e:03d}", payload))
    return out


def _no_nan(token):
    raise ValueError(f"{token} is not JSON")


def _parse_ts(value, now_ms):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if "T" not in value or parsed.tzinfo is None:
            return None
        ms = int(parsed.timestamp() * 1000)
        return ms if ms > 0 else None
    return None


def _unicode_text(value) -> bool:
    """Every string in the parsed record, keys included, is Unicode text (no lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_unicode_text(k) and _unicode_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_unicode_text(v) for v in value)
    return True


def contract_violation(payload: bytes, stream: str, max_bytes=DEFAULT_MAX_PAYLOAD_BYTES) -> str | None:
    """Why the record breaks DESIGN.md's contract, or None if it is valid."""
    if len(payload) > max_bytes:
        return "size"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "encoding"
    try:
        record = json.loads(text, parse_constant=_no_nan)
    except (ValueError, RecursionError):
        return "json"
    if not isinstance(record, dict):
        return "not object"
    if not _unicode_text(record):
        return "encoding"     # an escaped lone surrogate: json.loads gives it, UTF-8 cannot encode it
    now_ms = dt.datetime.now(dt.timezone.utc).timestamp() * 1000
    required = ("editor_id", "metric", "value", "timestamp") if stream == "metrics" else ("event_type", "timestamp")
    for key in required:
        if record.get(key) is None:
            return f"missing {key}"
    ts = _parse_ts(record["timestamp"], now_ms)
    if ts is None:
        return "timestamp"
    if ts > now_ms + 300_000:
        return "future"
    if stream == "events":
        if record["event_type"] not in EVENT_TYPES:
            return "event type"
        severity = record.get("severity")
        if severity is not None and (isinstance(severity, bool) or not isinstance(severity, (int, float))
                                     or not 0 <= severity <= 10):
            return "severity"
        if "details" in record and not isinstance(record["details"], dict):
            return "details"
        return None
    if not isinstance(record["editor_id"], str) or not record["editor_id"]:
        return "editor_id type"
    if not isinstance(record["metric"], str) or record["metric"] not in METRICS:
        return "metric"
    value = record["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "value type"
    try:
        if not math.isfinite(value):
            return "non-finite"
    except OverflowError:  # a 400-digit integer literal
        return "non-finite"
    if value < 0 or value > 1e12 or (record["metric"] in RATE_METRICS and value > 1):
        return "range"
    if "partner" in record and not isinstance(record["partner"], str):
        return "partner type"
    dims = record.get("dimensions")
    if dims is not None and not (isinstance(dims, dict) and all(isinstance(v, str) for v in dims.values())):
        return "dimensions"
    return None


@pytest.fixture(scope="module")
def mixed():
    return mix(valid_traffic(), 10_000, seed=11, n_late=200, n_out_of_order=100, n_valid_edge=200)


def test_at_least_ten_thousand_bad_records_in_valid_traffic(mixed):
    bad = [f for f in fuzz_records(mixed) if f.is_bad and f.category != "late"]
    assert len(bad) == 10_000
    valid_in_order = [r.payload for r in mixed if r.fuzz is None]
    assert valid_in_order == [r.payload for r in valid_traffic()]  # valid traffic kept, in order


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = [r.payload for r in mix(valid_traffic(minutes=10), 2000, seed=3)]
    b = [r.payload for r in mix(valid_traffic(minutes=10), 2000, seed=3)]
    c = [r.payload for r in mix(valid_traffic(minutes=10), 2000, seed=4)]
    assert a == b
    assert a != c


def test_every_category_is_present_with_design_reason_codes(mixed):
    by_category = Counter(f.category for f in fuzz_records(mixed))
    expected = set(FuzzGenerator().categories) | {"duplicate", "late", "valid_out_of_order", "valid_edge"}
    assert expected <= set(by_category), expected - set(by_category)
    for record in fuzz_records(mixed):
        if record.is_bad:
            assert record.reason_code in record.accepted_codes
            assert record.accepted_codes <= DESIGN_REASON_CODES, record
    assert by_category["duplicate"] == 500


def test_bad_records_violate_the_contract_and_edge_cases_satisfy_it(mixed):
    for record in fuzz_records(mixed):
        violation = contract_violation(record.payload, record.stream)
        if record.category in ("duplicate", "late", "valid_out_of_order", "valid_edge"):
            assert violation is None, (record.category, violation, record.payload[:200])
        elif record.category == "past_timestamp" and record.reason_code == "LATE_RECORD":
            assert violation is None  # well-formed: its only fault is being behind the watermark
        else:
            assert violation is not None, (record.category, record.payload[:300])


def test_traceable_records_carry_their_unique_fuzz_id(mixed):
    seen = set()
    for record in fuzz_records(mixed):
        if record.traceable:
            ids = FUZZ_ID_PATTERN.findall(record.payload.decode("utf-8", errors="replace"))
            assert ids and ids[0] == record.fuzz_id, record
            seen.add(record.fuzz_id)
    assert len(seen) == sum(1 for r in fuzz_records(mixed) if r.traceable)


def test_inserted_records_take_the_traffic_time_around_them(mixed):
    last = None
    for record in mixed:
        if record.fuzz is None:
            last = timestamp_ms_of(record.payload)
        elif record.fuzz.category in ("negative_value", "unknown_metric", "valid_edge") and last is not None:
            assert timestamp_ms_of(record.payload) == last


def test_late_records_are_behind_by_the_requested_lateness():
    traffic = mix(valid_traffic(minutes=20), 0, seed=1, n_late=50, late_by_ms=(600_000, 700_000))
    last, behind = None, []
    for record in traffic:
        if record.fuzz is None:
            last = timestamp_ms_of(record.payload)
        else:
            assert record.fuzz.category == "late"
            behind.append(last - timestamp_ms_of(record.payload))
    assert len(behind) == 50
    assert all(600_000 <= b < 700_000 for b in behind), behind


def test_oversized_records_straddle_the_pipeline_limit_and_stay_under_kinesis():
    generator = FuzzGenerator(seed=5)
    sizes = [len(generator.make("oversized", START_MS).payload) for _ in range(60)]
    assert min(sizes) == DEFAULT_MAX_PAYLOAD_BYTES + 1
    assert max(sizes) + len("fz-5-000000") == KINESIS_RECORD_MAX_BYTES
    edge = [generator.make("valid_edge", START_MS) for _ in range(200)]
    assert DEFAULT_MAX_PAYLOAD_BYTES in {len(r.payload) for r in edge}


@pytest.fixture
def kinesis(aws_client, unique_name):
    """A stream on the session's embedded endpoint, whose PutRecords is the patched fast path the
    replay and the reliability harness use (deploy/local/patches/kinesis)."""
    client = aws_client("kinesis")
    name = unique_name("size-rule")
    client.create_stream(StreamName=name, ShardCount=1)
    return client, name


def test_kinesis_size_rule_largest_oversized_is_putable_and_unputable_is_refused(kinesis):
    kinesis, stream = kinesis
    generator = FuzzGenerator(seed=9)
    largest = max((generator.make("oversized", START_MS) for _ in range(40)), key=lambda r: len(r.payload))
    assert len(largest.payload) + len(largest.partition_key) == KINESIS_RECORD_MAX_BYTES
    kinesis.put_record(StreamName=stream, Data=largest.payload, PartitionKey=largest.partition_key)
    unputable = generator.make_unputable(START_MS)
    assert not unputable.putable
    assert len(unputable.payload) + len(unputable.partition_key) > KINESIS_RECORD_MAX_BYTES
    with pytest.raises(ClientError) as err:
        kinesis.put_records(StreamName=stream,
                            Records=[{"Data": unputable.payload, "PartitionKey": unputable.partition_key}])
    assert err.value.response["Error"]["Code"] == "ValidationException"
