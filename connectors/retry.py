"""The backoff every connector's retry loop waits with (Kinesis reads, PutEvents, PutRecords, PutMetricData)."""
from __future__ import annotations

import random


def equal_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Equal-jitter exponential backoff: attempt n (from 0) waits in [d/2, d], d = min(cap, base * 2**n).

    Equal jitter (not full jitter) keeps a floor under every wait, so a bounded number of
    attempts spans a predictable minimum time.

    >>> rng = random.Random(1)
    >>> [0.05 <= equal_jitter_delay(0, 0.1, 5.0, rng) <= 0.1, 2.5 <= equal_jitter_delay(12, 0.1, 5.0, rng) <= 5.0]
    [True, True]
    """
    ceiling = min(cap_s, base_s * 2 ** min(attempt, 30))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
