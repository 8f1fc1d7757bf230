"""Dead-letter records: the one shape every bad input or undeliverable event takes.

    {"reason_code": UPPER_SNAKE, "reason": human text, "source": "metrics"|"events"|"eventbridge",
     "raw": original payload (truncated to 64 KiB of UTF-8), "detected_at": ISO-8601 UTC}

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

RAW_LIMIT_BYTES = 64 * 1024

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
) -> dict[str, Any]:
    """A dead-letter record as a dict. Unknown-but-well-formed reason codes are allowed
    (UPPER_SNAKE) so a new validation rule never crashes the dead-letter path."""
    if not _UPPER_SNAKE.match(reason_code):
        raise ValueError(f"reason_code must be UPPER_SNAKE: {reason_code!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}: {source!r}")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    raw_text, raw_size, truncated = truncate_utf8(raw)
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
    reason_code: str, reason: str, source: str, raw: str | bytes, detected_at: str | None = None
) -> str:
    """The record serialized the way both sinks write it: one compact JSON object, one line."""
    return json.dumps(
        build_dead_letter(reason_code, reason, source, raw, detected_at),
        ensure_ascii=False,
        separators=(",", ":"),
    )
