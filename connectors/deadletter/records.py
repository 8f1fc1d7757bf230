"""Dead-letter records: the one shape every bad input or undeliverable event takes.

    {"reason_code": UPPER_SNAKE, "reason": human text, "source": "metrics"|"events"|"eventbridge",
     "raw": original payload (truncated to 64 KiB of UTF-8), "detected_at": ISO-8601 UTC}

The EventBridge sink's dead letters keep more of `raw` (`EVENTBRIDGE_RAW_LIMIT_BYTES`): it is
the whole PutEvents entry as JSON, which must still parse to be re-sent. And every line fits
one Kinesis record (`MAX_LINE_BYTES`): escaping can make the line far longer than `raw`
(a backslash or quote doubles, a control character grows six-fold), so the finished line is
measured, and only a line over the limit has its reason (beyond 4 KiB), then its raw, cut.

When `raw` had to be cut, two optional fields say so: "raw_truncated": true and
"raw_size_bytes": the original UTF-8 size. The dead letters built in SQL
(sql/sinks/dead_letters.sql) say "raw_size_chars" instead (Flink SQL has no byte
length) and add "event_time" when the record's timestamp could be read. Consumers
that only know the five contract fields can ignore them (the JSON Schema allows
exactly these extras).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from connectors.batching import KINESIS_RECORD_MAX_BYTES, PUT_EVENTS_MAX_BYTES

RAW_LIMIT_BYTES = 64 * 1024
# `raw` of the EventBridge sink's dead letters: the PutEvents entry as JSON. An entry that passed
# the 256 KiB check (Source + DetailType + Detail, as EventBridge counts them) is at most about
# twice that as JSON text (every quote and backslash of its Detail escaped once more), plus its
# bus name (an ARN: up to 1,600 characters); the margin covers both.
EVENTBRIDGE_RAW_LIMIT_BYTES = 2 * PUT_EVENTS_MAX_BYTES + 8 * 1024
# A dead-letter line is one Kinesis record: at most 1 MiB of data + partition key, and the
# writer's partition key (writers.partition_key_for) has 32 characters.
PARTITION_KEY_CHARS = 32
MAX_LINE_BYTES = KINESIS_RECORD_MAX_BYTES - PARTITION_KEY_CHARS
# A line over MAX_LINE_BYTES first has its reason cut to this (a reason is a sentence or two).
REASON_CUT_BYTES = 4 * 1024

# DESIGN.md's reason codes, plus INVALID_ENCODING for payload bytes that are not UTF-8 (caught
# in the boto3 Kinesis source; for the format 'raw' sources, by sql/parse/metrics.sql and events.sql).
REASON_CODES = frozenset(
    {
        "INVALID_JSON",
        "MISSING_FIELD",
        "WRONG_TYPE",
        "UNKNOWN_METRIC",
        "UNKNOWN_EVENT_TYPE",
        "NON_FINITE_VALUE",
        "OUT_OF_RANGE_VALUE",
        "INVALID_TIMESTAMP",
        "FUTURE_TIMESTAMP",
        "OVERSIZED_RECORD",
        "LATE_RECORD",
        "DUPLICATE_RECORD",
        "DELIVERY_FAILED",
        "INVALID_ENCODING",
    }
)
SOURCES = frozenset({"metrics", "events", "eventbridge"})
_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def truncate_utf8(text: str, limit_bytes: int = RAW_LIMIT_BYTES) -> tuple[str, int, bool]:
    """(text cut to at most limit_bytes of UTF-8 without splitting a character, original size, cut?)."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= limit_bytes:
        return text, len(encoded), False
    # errors="ignore" drops the partial character left at the cut.
    return encoded[:limit_bytes].decode("utf-8", errors="ignore"), len(encoded), True


def utc_now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_dead_letter(
    reason_code: str,
    reason: str,
    source: str,
    raw: str | bytes,
    detected_at: str | None = None,
    *,
    raw_limit_bytes: int = RAW_LIMIT_BYTES,
) -> dict[str, Any]:
    """A dead-letter record as a dict, `raw` cut to `raw_limit_bytes` of UTF-8. Unknown-but-well-formed
    reason codes are allowed (UPPER_SNAKE) so a new validation rule never crashes the dead-letter path."""
    if not _UPPER_SNAKE.match(reason_code):
        raise ValueError(f"reason_code must be UPPER_SNAKE: {reason_code!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}: {source!r}")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    raw_text, raw_size, truncated = truncate_utf8(raw, raw_limit_bytes)
    record: dict[str, Any] = {
        "reason_code": reason_code,
        "reason": reason,
        "source": source,
        "raw": raw_text,
        "detected_at": detected_at or utc_now_iso(),
    }
    if truncated:
        record["raw_truncated"] = True
        record["raw_size_bytes"] = raw_size
    return record


def dead_letter_json(
    reason_code: str, reason: str, source: str, raw: str | bytes, detected_at: str | None = None, *,
    raw_limit_bytes: int = RAW_LIMIT_BYTES, max_line_bytes: int = MAX_LINE_BYTES,
) -> str:
    """The record serialized the way both sinks write it: one compact JSON object, one line of at
    most `max_line_bytes` of UTF-8 (module docstring).

    >>> line = dead_letter_json("DELIVERY_FAILED", "x", "eventbridge", '"' * 300, max_line_bytes=400)
    >>> record = json.loads(line)
    >>> len(line.encode()) <= 400, record["raw_truncated"], record["raw_size_bytes"], set(record["raw"])
    (True, True, 300, {'"'})
    """
    record = build_dead_letter(reason_code, reason, source, raw, detected_at, raw_limit_bytes=raw_limit_bytes)
    line = _line(record)
    excess = _utf8_size(line) - max_line_bytes
    if excess > 0 and _utf8_size(record["reason"]) > REASON_CUT_BYTES:
        record["reason"] = truncate_utf8(record["reason"], REASON_CUT_BYTES)[0] + "…"
        line = _line(record)
        excess = _utf8_size(line) - max_line_bytes
    if excess > 0 and record["raw"]:
        raw_size = record.get("raw_size_bytes", _utf8_size(record["raw"]))
        record["raw_truncated"], record["raw_size_bytes"] = True, raw_size  # room for both before the cut
        raw_text = record["raw"]
        # The bytes left for raw as a JSON string in the line; the longest prefix that fits, by bisection
        # (how much a prefix grows when escaped depends on its characters).
        budget = max_line_bytes - (_utf8_size(_line(record)) - _utf8_size(_string(raw_text)))
        keep, too_long = 0, len(raw_text)
        while keep < too_long:
            middle = (keep + too_long + 1) // 2
            if _utf8_size(_string(raw_text[:middle])) <= budget:
                keep = middle
            else:
                too_long = middle - 1
        record["raw"] = raw_text[:keep]
        line = _line(record)
    return line


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))
