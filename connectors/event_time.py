"""A record's event time, read in Python by the job's own rule (sql/parse/timestamp_reason.sql).

The SQL computes the authoritative event time. The Python readers of records (the boto3
Kinesis reader's watermark floor and pacing, the replay's pacing, the offline replay and
the report) need the same instant, and must never fail on a record the job would simply
dead-letter: :func:`timestamp_ms` returns None for anything the job calls
INVALID_TIMESTAMP, and never raises.

The forms are the contract's (connectors/schemas/metric_record.schema.json), checked with
the pattern the SQL uses: an integer epoch in milliseconds of at most 18 ASCII digits (a
JSON integer, or the same digits quoted), or ISO-8601 with a zone (``T`` or a space,
optional seconds with 1-9 fraction digits, ``Z``, ``+hh:mm`` or ``+hhmm``). A time at or
before the epoch is invalid, as in the job. One difference is left: Flink's parser reads an
impossible day such as ``2026-02-30`` as the 28th, Python refuses it (None here).

>>> timestamp_ms(1793520000000), timestamp_ms("1793520000000")
(1793520000000, 1793520000000)
>>> timestamp_ms("2026-11-01T10:05:00+02:00") == timestamp_ms("2026-11-01T08:05:00Z")
True
>>> timestamp_ms("2026-11-01 08:05Z"), timestamp_ms("2026-11-01T08:05:00.123456789+0000")
(1793520300000, 1793520300123)
>>> [timestamp_ms(v) for v in (0, -5, 1.5e12, True, "²", "9" * 5000, "2026-11-01T08:05:00", " 1")]
[None, None, None, None, None, None, None, None]
>>> payload_timestamp_ms('{"timestamp": 1793520000000}'), payload_timestamp_ms('[' * 5000 + '"timestamp"')
(1793520000000, None)
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from typing import Any

# The pattern of sql/parse/timestamp_reason.sql (``[0-9]`` is ASCII only, unlike str.isdigit).
_EPOCH_MS = re.compile(r"-?[0-9]{1,18}")
_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})")


def timestamp_ms(value: Any) -> int | None:
    """The contract timestamp ``value`` (a JSON integer or string) in epoch ms; None when the job
    would dead-letter it as INVALID_TIMESTAMP (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        ms = value if -10 ** 18 < value < 10 ** 18 else None
    elif not isinstance(value, str):
        return None                       # a float epoch is INVALID_TIMESTAMP in the job, too
    elif _EPOCH_MS.fullmatch(value):
        ms = int(value)
    elif _ISO.fullmatch(value):
        try:
            ms = int(_dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return ms if ms is not None and ms > 0 else None


def payload_timestamp_ms(payload: str) -> int | None:
    """:func:`timestamp_ms` of a JSON payload's ``timestamp`` field; None when the payload is not a
    JSON object (deeper than Python's parser goes included) or has no valid timestamp."""
    if '"timestamp"' not in payload:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return timestamp_ms(data.get("timestamp")) if isinstance(data, dict) else None


#: A payload time further ahead of the wall clock than this is not a time a live record was sent
#: at: the Kinesis reader's pacing and watermark floor leave it out (the job dead-letters it as
#: FUTURE_TIMESTAMP anyway).
MAX_AHEAD_MS = 86_400_000


class EventTimeProgress:
    """How far a stream of records has got in event time, with its start, robust to absurd timestamps.

    ``value`` is the running maximum of the valid times, except that a time more than ``max_jump_ms``
    (a day) ahead of it counts only once the next valid time confirms it (lands within a day of it):
    one record stamped in 9999 is left out, a real gap in the traffic is crossed one record late.
    ``value`` starts once two valid times in a row lie within a day of each other. ``start`` is the
    median of the first ``start_window`` valid times. A raw running maximum is moved for good by one
    record stamped in 9999, and a start taken from the first record by one stamped in 1970: a paced
    replay then waited years for the next record, and every later record of a kind sorted behind the
    other kinds'. Nothing here depends on the wall clock (an archive may be dated in the future).

    >>> progress = EventTimeProgress(max_jump_ms=100)
    >>> [progress.add(ms) for ms in (1, 1000, None, 9_999_999, 1010, 1020, 5000, 5010, 1030)]
    [None, None, None, None, None, 1020, 1020, 5010, 5010]
    >>> progress.start
    1010
    """

    def __init__(self, start_window: int = 5, max_jump_ms: int = 86_400_000):
        self._first: list[int] = []
        self._start_window = start_window
        self._max_jump_ms = max_jump_ms
        self._previous: int | None = None       # the last valid time, accepted or not
        self.value: int | None = None
        self.start: int | None = None

    def add(self, ms: int | None) -> int | None:
        """Take one record's time (None: no valid time, ignored); the progress so far."""
        if ms is None:
            return self.value
        previous, self._previous = self._previous, ms
        if self.start is None:
            self._first.append(ms)
            if len(self._first) == self._start_window:
                self.start = sorted(self._first)[self._start_window // 2]
        confirmed = previous is not None and abs(ms - previous) <= self._max_jump_ms
        if self.value is None:
            if confirmed:
                self.value = max(ms, previous)
        elif ms > self.value and (ms - self.value <= self._max_jump_ms or confirmed):
            self.value = ms
        return self.value
