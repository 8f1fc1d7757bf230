"""Faster GetRecords responses from moto (the embedded local endpoint) — same bytes on the wire, less CPU.

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

import json
from typing import Any

from moto.kinesis import responses as kinesis_responses

_ORIGINAL = {"get_records": kinesis_responses.KinesisResponse.get_records}


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


def revert() -> None:
    kinesis_responses.KinesisResponse.get_records = _ORIGINAL["get_records"]


def is_applied() -> bool:
    return kinesis_responses.KinesisResponse.get_records is _get_records_fast
