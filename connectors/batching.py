"""Order-keeping batches within an API's per-request limits (PutEvents, PutRecords, PutMetricData)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

# The services' per-request limits (their API references). They live here, free of the AWS
# SDK, because the sinks' constructors read them in the job's client process, which only
# plans the job: on Managed Flink that process has PyFlink but not the job's own
# dependencies (boto3 among them), which are installed for the Python workers only.
PUT_EVENTS_MAX_ENTRIES = 10
PUT_EVENTS_MAX_BYTES = 256 * 1024
PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
KINESIS_RECORD_MAX_BYTES = 1024 * 1024     # one record: data + partition key
PUT_METRIC_DATA_MAX_DATUMS = 1000
PUT_METRIC_DATA_MAX_BYTES = 1024 * 1024


def limited_batches(items: Iterable[Any], *, max_items: int, max_bytes: int,
                    size_of: Callable[[Any], int]) -> Iterable[list[Any]]:
    """Consecutive batches of at most `max_items` items and `max_bytes` bytes (by `size_of`).

    >>> list(limited_batches([3, 3, 3, 9], max_items=2, max_bytes=8, size_of=int))
    [[3, 3], [3], [9]]

    An item larger than `max_bytes` goes alone in its batch; callers drop those
    before when the service would refuse them.
    """
    batch: list[Any] = []
    batch_bytes = 0
    for item in items:
        size = size_of(item)
        if batch and (len(batch) == max_items or batch_bytes + size > max_bytes):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(item)
        batch_bytes += size
    if batch:
        yield batch
