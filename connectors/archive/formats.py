"""Record <-> file formats of the archive: Parquet (typed columns) and gzipped JSON lines.

Parquet is what Firehose's record-format conversion writes: one typed column per
contract field. A record that does not fit the typed columns (a field of the
wrong type, something missing) is kept whole, as JSON text, in the ``raw``
column, so that an archive of a real stream -- bad records included -- reads
back exactly as it was written. Fields outside the contract go, as JSON, to
``extra``.

Numbers: ``value`` and ``severity`` are stored as doubles, so an integer value
reads back as the equal float (``5`` -> ``5.0``), the same number in JSON.

Records as received. Python's JSON parser accepts ``NaN``, ``Infinity`` and
``1e999`` (read as infinity), which strict JSON cannot write back; strings may
hold lone surrogates (``"\\udcff"`` escapes) that UTF-8 cannot encode. Such a
record is bad input the job dead-letters (NON_FINITE_VALUE, ...), so the archive
must keep it as it came, not fail on it: when the caller has the record's text
as received (``payload``: the capture does), a JSON-lines archive writes that
text and a Parquet archive puts it in ``raw`` whenever the record does not fit
the typed columns exactly. A row or line is built when the record is added
(:func:`metric_row`, :func:`event_row`, :func:`jsonl_line`), so a record that
cannot be archived is refused on its own, with a ValueError, before it is
buffered with others.
"""
from __future__ import annotations

import gzip
import io
import json
import math
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

METRICS = "metrics"
EVENTS = "events"
KINDS = (METRICS, EVENTS)

PARQUET_COMPRESSION = "snappy"      # Firehose's default for Parquet conversion

METRIC_SCHEMA = pa.schema([
    ("editor_id", pa.string()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("timestamp", pa.string()),          # ISO-8601 text when the record had one
    ("timestamp_ms", pa.int64()),        # epoch milliseconds when the record had those
    ("partner", pa.string()),
    ("dimensions", pa.map_(pa.string(), pa.string())),
    ("extra", pa.string()),
    ("raw", pa.string()),
])

EVENT_SCHEMA = pa.schema([
    ("event_type", pa.string()),
    ("timestamp", pa.string()),
    ("timestamp_ms", pa.int64()),
    ("editor_id", pa.string()),
    ("partner", pa.string()),
    ("severity", pa.float64()),
    ("details", pa.string()),            # arbitrary object, as JSON text
    ("extra", pa.string()),
    ("raw", pa.string()),
])

SCHEMAS = {METRICS: METRIC_SCHEMA, EVENTS: EVENT_SCHEMA}
_METRIC_FIELDS = ("editor_id", "metric", "value", "timestamp", "partner", "dimensions")
_EVENT_FIELDS = ("event_type", "timestamp", "editor_id", "partner", "severity", "details")


def dumps(record: Any) -> str:
    """The compact JSON text used for JSON-lines archives and Kinesis payloads."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def kind_of(record: Any) -> str | None:
    """metrics / events for a record that looks like one, else None."""
    if isinstance(record, dict):
        if "metric" in record or "value" in record:
            return METRICS
        if "event_type" in record:
            return EVENTS
    return None


def _is_number(x: Any) -> bool:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:          # an int beyond a double (JSON 1 followed by 400 zeros)
        return False


def _utf8(text: str) -> bool:
    """Whether Arrow (and a JSON-lines file) can store the string: not if it holds a lone surrogate."""
    if text.isascii():             # nearly always, and much cheaper than encoding
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _strict_json(value: Any) -> str | None:
    """``value`` as strict JSON text that UTF-8 can encode, or None when it holds NaN/Infinity or a lone surrogate."""
    try:
        text = dumps(value)
    except ValueError:
        return None
    return text if _utf8(text) else None


def _strings_ok(*texts: str | None, pairs: dict | None = None) -> bool:
    """Whether every string of a typed row can be stored, checked joined: one call per row (the
    simulator writes ~150k rows a day). Joining cannot hide a lone surrogate, nor pair two: Python
    keeps them separate code points."""
    joined = "".join(t for t in texts if t)
    if pairs:
        joined += "".join(k + v for k, v in pairs.items())
    return _utf8(joined)


def _is_epoch_ms(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and -2**63 <= x < 2**63


def _timestamp_columns(ts: Any) -> tuple[str | None, int | None] | None:
    if isinstance(ts, str):
        return ts, None
    if _is_epoch_ms(ts):
        return None, ts
    return None


_UNFIT = object()      # an extra/details part strict JSON cannot hold: the record goes to ``raw``


def _extra(record: dict, known: tuple[str, ...]) -> Any:
    rest = {k: v for k, v in record.items() if k not in known}
    if not rest:
        return None
    text = _strict_json(rest)
    return _UNFIT if text is None else text


def _raw_row(schema: pa.Schema, record: Any, payload: str | None) -> dict:
    row = {name: None for name in schema.names}
    if payload is None:
        # Python's JSON (allow_nan) reads NaN/Infinity back; ASCII escapes keep a lone surrogate storable.
        payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        if not _utf8(payload):
            payload = json.dumps(record, separators=(",", ":"))
    elif not _utf8(payload):
        raise ValueError(f"payload holds characters UTF-8 cannot encode (lone surrogates): {payload[:200]!r}")
    row["raw"] = payload
    return row


def metric_row(record: Any, payload: str | None = None) -> dict:
    """The Parquet row of a metric record; ``payload`` (its text as received) is kept in ``raw`` when it does not fit."""
    if not isinstance(record, dict):
        return _raw_row(METRIC_SCHEMA, record, payload)
    ts = _timestamp_columns(record.get("timestamp"))
    dims = record.get("dimensions")
    fits = (isinstance(record.get("editor_id"), str) and isinstance(record.get("metric"), str)
            and _is_number(record.get("value")) and ts is not None
            and (record.get("partner") is None and "partner" not in record or isinstance(record.get("partner"), str))
            and ("dimensions" not in record or (isinstance(dims, dict)
                                                and all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in dims.items()))))
    extra = _extra(record, _METRIC_FIELDS) if fits else None
    row = None if not fits or extra is _UNFIT else {
        "editor_id": record["editor_id"], "metric": record["metric"], "value": float(record["value"]),
        "timestamp": ts[0], "timestamp_ms": ts[1], "partner": record.get("partner"),
        "dimensions": list(dims.items()) if dims is not None else None, "extra": extra, "raw": None}
    if row is None or not _strings_ok(row["editor_id"], row["metric"], row["timestamp"], row["partner"], extra,
                                      pairs=dims):
        return _raw_row(METRIC_SCHEMA, record, payload)
    return row


def event_row(record: Any, payload: str | None = None) -> dict:
    """The Parquet row of an event record; ``payload`` (its text as received) is kept in ``raw`` when it does not fit."""
    if not isinstance(record, dict):
        return _raw_row(EVENT_SCHEMA, record, payload)
    ts = _timestamp_columns(record.get("timestamp"))
    fits = (isinstance(record.get("event_type"), str) and ts is not None
            and all(k not in record or isinstance(record[k], str) for k in ("editor_id", "partner"))
            and ("severity" not in record or _is_number(record["severity"]))
            and ("details" not in record or isinstance(record["details"], dict)))
    extra = _extra(record, _EVENT_FIELDS) if fits else None
    details = _strict_json(record["details"]) if fits and "details" in record else None
    row = None if (not fits or extra is _UNFIT or ("details" in record and details is None)) else {
        "event_type": record["event_type"], "timestamp": ts[0], "timestamp_ms": ts[1],
        "editor_id": record.get("editor_id"), "partner": record.get("partner"),
        "severity": float(record["severity"]) if "severity" in record else None,
        "details": details, "extra": extra, "raw": None}
    if row is None or not _strings_ok(row["event_type"], row["timestamp"], row["editor_id"], row["partner"],
                                      details, extra):
        return _raw_row(EVENT_SCHEMA, record, payload)
    return row


def metric_record(row: dict) -> Any:
    if row["raw"] is not None:
        return json.loads(row["raw"])
    record: dict[str, Any] = {"editor_id": row["editor_id"], "metric": row["metric"], "value": row["value"],
                              "timestamp": row["timestamp"] if row["timestamp"] is not None else row["timestamp_ms"]}
    if row["partner"] is not None:
        record["partner"] = row["partner"]
    if row["dimensions"] is not None:
        record["dimensions"] = dict(row["dimensions"])
    if row["extra"] is not None:
        record.update(json.loads(row["extra"]))
    return record


def event_record(row: dict) -> Any:
    if row["raw"] is not None:
        return json.loads(row["raw"])
    record: dict[str, Any] = {"event_type": row["event_type"],
                              "timestamp": row["timestamp"] if row["timestamp"] is not None else row["timestamp_ms"]}
    for key in ("editor_id", "partner", "severity"):
        if row[key] is not None:
            record[key] = row[key]
    if row["details"] is not None:
        record["details"] = json.loads(row["details"])
    if row["extra"] is not None:
        record.update(json.loads(row["extra"]))
    return record


TO_ROW = {METRICS: metric_row, EVENTS: event_row}
FROM_ROW = {METRICS: metric_record, EVENTS: event_record}


def parquet_table_bytes(kind: str, rows: list[dict]) -> bytes:
    """A Parquet file of rows made by :func:`metric_row` / :func:`event_row`."""
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[kind])
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return sink.getvalue()


def parquet_bytes(kind: str, records: Iterable[Any]) -> bytes:
    return parquet_table_bytes(kind, [TO_ROW[kind](r) for r in records])


def parquet_kind(path) -> str | None:
    """The kind whose schema a Parquet file's columns are (metrics: ``metric`` and ``value``; events:
    ``event_type``), None when neither: a file found outside a metrics/ or events/ folder."""
    names = set(pq.read_schema(path).names)
    if "event_type" in names and "metric" not in names:
        return EVENTS
    if {"metric", "value"} <= names and "event_type" not in names:
        return METRICS
    return None


def read_parquet(kind: str, path) -> Iterator[tuple[Any, str]]:
    """(record, payload text) per row, in file order."""
    table = pq.read_table(path, schema=SCHEMAS[kind])
    to_record = FROM_ROW[kind]
    for batch in table.to_batches(max_chunksize=50_000):
        for row in batch.to_pylist():
            record = to_record(row)
            yield record, (row["raw"] if row["raw"] is not None else dumps(record))


def jsonl_line(record: Any, payload: str | None = None) -> str:
    """The archive line of a record: its text as received when given, else its compact JSON.

    A received text is kept as it is (NaN, 1e999, key order and spacing included), except that
    line breaks become spaces: it parsed as JSON, so they can only be whitespace between tokens,
    and one record must stay one line. Raises ValueError for what a line cannot hold.
    """
    if payload is None:
        try:
            line = dumps(record)
        except ValueError:
            raise ValueError("record holds NaN or Infinity, which strict JSON cannot write; pass the text "
                             f"it was received as (payload=): {str(record)[:200]}") from None
        if not _utf8(line):
            line = json.dumps(record, separators=(",", ":"), allow_nan=False)   # escapes lone surrogates
        return line
    if not _utf8(payload):
        raise ValueError(f"payload holds characters UTF-8 cannot encode (lone surrogates): {payload[:200]!r}")
    return payload.replace("\r", " ").replace("\n", " ")


def jsonl_gz_bytes(lines: Iterable[str]) -> bytes:
    sink = io.BytesIO()
    # mtime=0 and no file name in the header: the same records give the same bytes.
    with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, filename="") as gz:
        for line in lines:
            gz.write(line.encode("utf-8"))
            gz.write(b"\n")
    return sink.getvalue()


def read_jsonl(path) -> Iterator[tuple[Any, str]]:
    """(record or None when the line is not JSON, the line as written) per non-empty line.

    A line that is not valid UTF-8 is not JSON either: its record is None and its text keeps the
    bytes as lone surrogates (``surrogateescape``), so ``line.encode("utf-8", "surrogateescape")``
    gives back the bytes that were archived. The replay puts those on the stream, where the job
    dead-letters them as INVALID_ENCODING; until 2026-12-05 such a line stopped the whole replay
    with a UnicodeDecodeError.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        for raw in handle:
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield None, raw.decode("utf-8", "surrogateescape")
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):   # nested deeper than Python's parser goes: not JSON here
                record = None
            yield record, line
