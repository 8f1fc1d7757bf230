"""Kinesis SplitShard as AWS does it.

moto 5.2.5 differs from Kinesis in two ways a reader notices
(moto/kinesis/models.py, ``Stream.split_shard`` and ``Stream.get_shard_for_key``;
found by the reliability work, see tests/test_reliability_endpoint_split.py):

1. the parent's records are removed and re-put, so they move (and get new
   sequence numbers) instead of staying readable in the closed parent;
2. ``get_shard_for_key`` returns the first shard whose hash range holds the key,
   closed or not: the closed parent comes first, so every record put after a
   split lands in the *closed parent* and the children stay empty. A consumer
   that correctly finishes a closed parent at its EndingSequenceNumber then
   loses every later record;
3. ``KinesisBackend.get_records`` keeps handing out a NextShardIterator for a
   closed shard after its last record, so a reader never learns the shard has
   ended until a later ListShards shows its EndingSequenceNumber.

On AWS a closed parent keeps its records and never receives another one; new
records go to the open children; and GetRecords returns a null NextShardIterator
once a closed shard's last record has been read ("the shard has been closed and
the requested iterator does not return any more data"). These patches do that.
"""
from __future__ import annotations

from operator import attrgetter
from typing import Any


_ORIGINAL: dict[str, Any] = {}


def apply() -> None:
    from moto.kinesis import models as kinesis_models
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.utils import decompose_shard_iterator

    Stream = kinesis_models.Stream
    if getattr(Stream.split_shard, "_adops_patched", False):
        return
    original_get_shard_for_key = Stream.get_shard_for_key
    Backend = kinesis_models.KinesisBackend
    original_get_records = Backend.get_records
    _ORIGINAL.update(split_shard=Stream.split_shard, get_shard_for_key=original_get_shard_for_key,
                     get_records=original_get_records)

    def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
        new_start = int(new_starting_hash_key)
        parent = self.shards[shard_to_split]
        if not parent.starting_hash < new_start < parent.ending_hash:
            raise InvalidArgumentError(
                message=f"NewStartingHashKey {new_start} used in SplitShard() on shard {shard_to_split} in stream "
                f"{self.stream_name} under account {self.account_id} is not both greater than one plus the shard's "
                f"StartingHashKey {parent.starting_hash} and less than the shard's EndingHashKey {parent.ending_hash - 1}.")
        if not parent.is_open:
            raise InvalidArgumentError(
                message=f"Shard {parent.shard_id} in stream {self.stream_name} under account {self.account_id} has "
                "already been merged or split, and thus is not eligible for merging or splitting.")
        last_id = sorted(self.shards.values(), key=attrgetter("_shard_id"))[-1]._shard_id
        for offset, (start, end) in enumerate(
                [(parent.starting_hash, new_start - 1), (new_start, parent.ending_hash)], 1):
            child = kinesis_models.Shard(last_id + offset, starting_hash=start, ending_hash=end, parent=parent.shard_id)
            self.shards[child.shard_id] = child
        # Unlike moto, the parent keeps its records (and their sequence numbers); it only stops accepting writes.
        parent.is_open = False

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        shard = original_get_shard_for_key(self, partition_key, explicit_hash_key)  # also validates the key
        if shard is not None and shard.is_open:
            return shard
        if explicit_hash_key:
            key = int(explicit_hash_key)
        else:
            key = int(kinesis_models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
        for candidate in self.shards.values():
            # Inclusive end: the split children's ranges are written inclusive (AWS style).
            if candidate.is_open and candidate.starting_hash <= key <= candidate.ending_hash:
                return candidate
        return shard

    def get_records(self: Any, stream_arn: str | None, shard_iterator: str, limit: int | None) -> Any:
        next_iterator, records, millis_behind_latest = original_get_records(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, _ = decompose_shard_iterator(shard_iterator)
        shard = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open:
            _, _, position = decompose_shard_iterator(next_iterator)
            if not shard.records or int(position) >= next(reversed(shard.records)):
                next_iterator = None  # read to the end of a closed shard
        return next_iterator, records, millis_behind_latest

    split_shard._adops_patched = True  # type: ignore[attr-defined]
    Stream.split_shard = split_shard
    Stream.get_shard_for_key = get_shard_for_key
    Backend.get_records = get_records


def revert() -> None:
    """Undo apply() (for tests that host moto in their own process)."""
    from moto.kinesis import models as kinesis_models

    if _ORIGINAL:
        kinesis_models.Stream.split_shard = _ORIGINAL.pop("split_shard")
        kinesis_models.Stream.get_shard_for_key = _ORIGINAL.pop("get_shard_for_key")
        kinesis_models.KinesisBackend.get_records = _ORIGINAL.pop("get_records")
