"""Faster Kinesis reads and writes on moto (the embedded local endpoint) — same answers, less CPU.

Measured on this machine (tests/test_local_endpoint_kinesis_fastpath.py checks the
answers): 30k PutRecord calls on one shard 24.8 s -> 0.7 s, GetRecords near the
tail of that shard 5.2 ms -> 0.05 ms per call (moto's cost grows with the shard).

Measured (connectors/kinesis/benchmark.py, and a profile of moto 5.2.5): moto
answers GetRecords by building a dict per record (base64-*decoding* the stored
Data) and running it through its generic, model-driven serializer, which
base64-encodes it again: ~80-100 µs of server CPU per record, which caps any
reader of the local endpoint at ~10k records/s. Records are stored with Data
already base64-encoded, so the response can be written directly.

`apply()` replaces `KinesisResponse.get_records` in the current interpreter; the
embedded endpoint's server applies it with the other patches at start-up
(deploy/local/patches/__init__.py). The
response keeps the service's JSON shape: NextShardIterator, Records[Data (base64),
PartitionKey, SequenceNumber, ApproximateArrivalTimestamp (epoch seconds)],
MillisBehindLatest; tests/test_kinesis_source.py checks that a patched server's
answers parse exactly like an unpatched one's.
"""
from __future__ import annotations

import bisect
import json
import threading
from itertools import islice
from typing import Any

from moto.kinesis import responses as kinesis_responses
from moto.kinesis.models import Shard

_ORIGINAL = {
    "get_records": kinesis_responses.KinesisResponse.get_records,
    "shard_put_record": Shard.put_record,
    "shard_sequence_number_at": Shard.get_sequence_number_at,
    "shard_get_records": Shard.get_records,
    "shard_max_sequence": Shard.get_max_sequence_number,
    "shard_min_sequence": Shard.get_min_sequence_number,
}

# moto's Shard keeps records in an insertion-ordered dict keyed by increasing
# sequence numbers, but finds the next records by scanning it from the start and
# the last sequence number by copying its keys: both O(records in the shard) per
# call, so a local replay slows to a crawl as the stream grows (measured: 590 ->
# 65 records/s over a 330k-record day). A sorted key list, extended as records
# are appended and rebuilt if the dict ever shrinks or is reordered, makes
# GetRecords a bisection and PutRecord O(1), with the same answers.
_KEYS_ATTRIBUTE = "_adops_sequence_keys"

# The server answers each request on its own thread, so a PutRecords (the producer)
# and a GetRecords (the job's reader) run side by side on one shard. Unguarded, a put
# landing between the key cache's length check and its scan of the newest keys made
# the cache skip the records in between, and the GetRecords built on it returned the
# records after them: the reader's position moved past records it never saw (one
# record lost, found by a CI run of tests/test_reliability_job.py); a scan racing a
# put also failed with "OrderedDict mutated during iteration" (an HTTP 500). moto's own
# put_record says "not safe for concurrency" (two puts could take one sequence
# number). One lock for every shard: the GIL serialises this work anyway.
_SHARD_LOCK = threading.RLock()


def _sorted_sequence_keys(shard: Any) -> list[int]:
    keys: list[int] | None = shard.__dict__.get(_KEYS_ATTRIBUTE)
    count = len(shard.records)
    if keys is not None and len(keys) == count and (not keys or keys[-1] == next(reversed(shard.records))):
        return keys
    if keys is not None and len(keys) < count and (not keys or shard.records.get(keys[-1]) is not None):
        appended = list(islice(reversed(shard.records), count - len(keys)))[::-1]
        if appended and (not keys or appended[0] > keys[-1]) and appended == sorted(appended):
            keys.extend(appended)
            return keys
    keys = sorted(shard.records)
    shard.__dict__[_KEYS_ATTRIBUTE] = keys
    return keys


def _shard_put_record(self: Any, *args: Any, **kwargs: Any) -> str:
    with _SHARD_LOCK:
        return _ORIGINAL["shard_put_record"](self, *args, **kwargs)


def _shard_sequence_number_at(self: Any, at_timestamp: float) -> int:
    # moto's own scan (AT_TIMESTAMP iterators), under the lock: it walks the records too.
    with _SHARD_LOCK:
        return _ORIGINAL["shard_sequence_number_at"](self, at_timestamp)


def _shard_get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    with _SHARD_LOCK:
        return _shard_get_records_unlocked(self, int(last_sequence_id), limit)


def _shard_get_records_unlocked(self: Any, last_sequence_int: int, limit: int | None) -> tuple[list[Any], int, int]:
    keys = _sorted_sequence_keys(self)
    start = bisect.bisect_right(keys, last_sequence_int)
    if limit == 0 and start > 0:
        # moto's loop tests `len(results) == limit` before its first hit, so Limit=0
        # (which AWS rejects) reads nothing unless the first record already qualifies.
        return [], last_sequence_int, 0
    # A missing, zero or negative limit reads everything, as in moto.
    end = len(keys) if limit is None or limit <= 0 else min(len(keys), start + limit)
    selected = keys[start:end]
    if not selected:
        return [], last_sequence_int, 0
    records = [self.records[key] for key in selected]
    newest = self.records[keys[-1]]
    return records, selected[-1], int((newest.created_at - records[-1].created_at) * 1000)


def _shard_max_sequence(self: Any) -> int:
    with _SHARD_LOCK:
        return next(reversed(self.records)) if self.records else 0


def _shard_min_sequence(self: Any) -> int:
    with _SHARD_LOCK:
        return next(iter(self.records)) if self.records else 0


def _get_records_fast(self: Any) -> str:
    next_shard_iterator, records, millis_behind_latest = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    body = {
        "NextShardIterator": next_shard_iterator,
        "Records": [
            {
                "Data": record.data if isinstance(record.data, str) else record.data.decode("ascii"),
                "PartitionKey": record.partition_key,
                "SequenceNumber": str(record.sequence_number),
                # moto's serializer truncates to milliseconds.
                "ApproximateArrivalTimestamp": int(record.created_at * 1000) / 1000,
            }
            for record in records
        ],
        "MillisBehindLatest": millis_behind_latest,
    }
    return json.dumps(body, separators=(",", ":"))


def apply() -> None:
    kinesis_responses.KinesisResponse.get_records = _get_records_fast
    Shard.put_record = _shard_put_record
    Shard.get_sequence_number_at = _shard_sequence_number_at
    Shard.get_records = _shard_get_records
    Shard.get_max_sequence_number = _shard_max_sequence
    Shard.get_min_sequence_number = _shard_min_sequence


def revert() -> None:
    kinesis_responses.KinesisResponse.get_records = _ORIGINAL["get_records"]
    Shard.put_record = _ORIGINAL["shard_put_record"]
    Shard.get_sequence_number_at = _ORIGINAL["shard_sequence_number_at"]
    Shard.get_records = _ORIGINAL["shard_get_records"]
    Shard.get_max_sequence_number = _ORIGINAL["shard_max_sequence"]
    Shard.get_min_sequence_number = _ORIGINAL["shard_min_sequence"]


def is_applied() -> bool:
    return kinesis_responses.KinesisResponse.get_records is _get_records_fast
