"""Make moto's Kinesis SplitShard behave like AWS, for the reliability tests and harness.

moto 5.2.5 (``moto/kinesis/models.py`` ``Stream.split_shard`` and
``Stream.get_shard_for_key``) differs from Kinesis in two ways that matter to a
reader:

1. the parent's records are removed and re-put (they land in the parent again);
2. ``get_shard_for_key`` returns the first shard whose hash range holds the key,
   closed or not -- the closed parent comes first, so every record put after the
   split goes to the *closed parent*, and the children stay empty.

On AWS a closed parent keeps its records (readable until retention) and never
receives another one, and new records go to the open children. A reader that
(correctly) finishes a closed parent at its ``EndingSequenceNumber`` and moves
to the children therefore loses, on moto, every record put after it caught up.

``apply()`` patches the two methods in the current interpreter to the AWS
behaviour. The harness runs the embedded endpoint with it (see
``flink_jobs.reliability.endpoint``); the tests use it for an in-process moto.
"""
from __future__ import annotations

from operator import attrgetter

from moto.kinesis import models as kinesis_models
from moto.kinesis.exceptions import InvalidArgumentError

_ORIGINAL = {
    "split_shard": kinesis_models.Stream.split_shard,
    "get_shard_for_key": kinesis_models.Stream.get_shard_for_key,
}


def _split_shard_like_aws(self, shard_to_split: str, new_starting_hash_key: str) -> None:
    new_starting_hash_int = int(new_starting_hash_key)
    shard = self.shards[shard_to_split]
    if not shard.starting_hash < new_starting_hash_int < shard.ending_hash:
        raise InvalidArgumentError(
            message=f"NewStartingHashKey {new_starting_hash_int} used in SplitShard() on shard {shard_to_split} "
            f"in stream {self.stream_name} is not within the shard's hash key range.")
    if not shard.is_open:
        raise InvalidArgumentError(
            message=f"Shard {shard.shard_id} in stream {self.stream_name} has already been merged or split, "
            "and thus is not eligible for merging or splitting.")
    last_id = sorted(self.shards.values(), key=attrgetter("_shard_id"))[-1]._shard_id
    for offset, (start, end) in enumerate(
            [(shard.starting_hash, new_starting_hash_int - 1), (new_starting_hash_int, shard.ending_hash)], 1):
        child = kinesis_models.Shard(last_id + offset, starting_hash=start, ending_hash=end, parent=shard.shard_id)
        self.shards[child.shard_id] = child
    # The parent keeps its records and its sequence numbers; it is closed for writes.
    shard.is_open = False


def _get_open_shard_for_key(self, partition_key: str, explicit_hash_key: str):
    shard = _ORIGINAL["get_shard_for_key"](self, partition_key, explicit_hash_key)
    if shard is None or shard.is_open:
        return shard
    # Same hash as the original computes, but only open shards receive records.
    if explicit_hash_key:
        key = int(explicit_hash_key)
    else:
        key = int(kinesis_models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for candidate in self.shards.values():
        if candidate.is_open and candidate.starting_hash <= key <= candidate.ending_hash:
            return candidate
    return None


def apply() -> None:
    kinesis_models.Stream.split_shard = _split_shard_like_aws
    kinesis_models.Stream.get_shard_for_key = _get_open_shard_for_key


def revert() -> None:
    kinesis_models.Stream.split_shard = _ORIGINAL["split_shard"]
    kinesis_models.Stream.get_shard_for_key = _ORIGINAL["get_shard_for_key"]
