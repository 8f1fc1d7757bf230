"""Deterministic generator of malformed metric / event records, mixed into valid traffic.

Every generated record has exactly one defect and carries the DESIGN.md reason
code the pipeline should give it (``reason_code``) plus the codes that are
also defensible for that defect (``accepted_codes``: e.g. a bare ``NaN`` token
is both invalid JSON and a non-finite value). The harness checks that every
bad record shows up in the dead-letter (or late) output, and how many carry
the expected code.

Records are traceable: each carries a unique fuzz id ``fz-<seed>-<n>`` as its
``editor_id`` (placed first, so a truncated record still has it), or as its
``partner`` when the editor id itself is the defect. A fuzz editor id is never
a real editor, so a bad record the pipeline wrongly accepts cannot touch the
windows, baselines or incidents of real editors -- except duplicates, which
are byte-identical copies of real records by definition.

A handful of payloads (``null``, ``true``, a bare number, blank) cannot carry
an id; the harness matches those by their exact text.

``valid_edge`` records are the opposite check: valid per the contract in an
unusual form (microsecond ISO timestamps, offsets, integer values, a payload of
exactly the size limit, ...). They must NOT be dead-lettered.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from connectors.batching import KINESIS_RECORD_MAX_BYTES
from connectors.event_time import payload_timestamp_ms
from detectors.classifier import METRICS, RATE_METRICS   # the contract's metric names (tests import them from here too)

DEFAULT_MAX_PAYLOAD_BYTES = 65536  # processing.max.payload.bytes in application_properties.json

EVENT_TYPES = ("config_change", "deployment", "feature_flag", "partner_status", "security_finding")

FUZZ_ID_PATTERN = re.compile(r"fz-\d+-\d{6}")

# Plausible values, so that the defect under test is the only thing wrong.
_PLAUSIBLE = {
    "rpm": (0.5, 6.0), "fill_rate": (0.3, 0.95), "bid_latency_ms": (40.0, 400.0), "error_rate": (0.0, 0.05),
    "partner_timeouts": (0.0, 50.0), "cache_hit_rate": (0.5, 0.99), "impressions": (100.0, 50000.0),
    "revenue": (1.0, 500.0), "bid_rate": (0.2, 0.9), "win_rate": (0.05, 0.4),
}


@dataclass(frozen=True)
class FuzzRecord:
    """One malformed (or edge-case valid) record and what the pipeline should do with it."""

    fuzz_id: str
    stream: str  # "metrics" | "events"
    category: str
    payload: bytes
    partition_key: str
    reason_code: str | None  # None: valid, must not be dead-lettered
    accepted_codes: frozenset = field(default_factory=frozenset)  # includes reason_code
    putable: bool = True  # False: over the Kinesis record limit, a producer must refuse it
    traceable: bool = True  # False: carries no fuzz id, match by exact payload

    @property
    def is_bad(self) -> bool:
        return self.reason_code is not None


@dataclass(frozen=True)
class TrafficRecord:
    """A record to put, in order: valid traffic, or a fuzz record when ``fuzz`` is set."""

    stream: str
    partition_key: str
    payload: bytes
    fuzz: FuzzRecord | None = None


def timestamp_ms_of(payload: bytes) -> int | None:
    """Event time of a valid record by the job's rule (connectors.event_time), None if absent or invalid."""
    try:
        return payload_timestamp_ms(payload.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()


def _cat(*codes: str) -> frozenset:
    return frozenset(codes)


class FuzzGenerator:
    """Seeded: the same (seed, calls) give byte-identical records."""

    def __init__(self, seed: int = 0, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES):
        self.seed = seed
        self.max_payload_bytes = max_payload_bytes
        self.rng = random.Random(seed)
        self._n = 0
        # category -> (weight, builder). Weights are relative; oversized records are
        # large (64 KiB - 1 MiB), so they are rare enough to keep a run's volume sane.
        self.categories = {
            "truncated_json": (8, self._truncated_json),
            "invalid_json": (8, self._invalid_json),
            "not_an_object": (3, self._not_an_object),
            "invalid_utf8": (4, self._invalid_utf8),
            "unpaired_surrogate": (2, self._unpaired_surrogate),
            "wrong_type_value": (8, self._wrong_type_value),
            "wrong_type_field": (6, self._wrong_type_field),
            "nan_inf_token": (4, self._nan_inf_token),
            "nan_inf_string": (4, self._nan_inf_string),
            "overflow_number": (2, self._overflow_number),
            "negative_value": (5, self._negative_value),
            "absurd_value": (5, self._absurd_value),
            "unknown_metric": (6, self._unknown_metric),
            "missing_field": (8, self._missing_field),
            "future_timestamp": (4, self._future_timestamp),
            "past_timestamp": (4, self._past_timestamp),
            "invalid_timestamp": (5, self._invalid_timestamp),
            "oversized": (0.25, self._oversized),
            "event_unknown_type": (3, self._event_unknown_type),
            "event_missing_field": (3, self._event_missing_field),
            "event_bad_severity": (3, self._event_bad_severity),
            "event_invalid_json": (2, self._event_invalid_json),
            "event_future_timestamp": (1, self._event_future_timestamp),
        }

    # -- ids and templates ----------------------------------------------------------
    def _next_id(self) -> str:
        self._n += 1
        return f"fz-{self.seed}-{self._n:06d}"

    def _ts(self, ms: int):
        # Both contract timestamp forms, so each defect is exercised with either.
        return ms if self.rng.random() < 0.5 else iso_ms(ms)

    def _metric_template(self, fid: str, ts_ms: int, metric: str | None = None) -> dict:
        metric = metric or self.rng.choice(METRICS)
        low, high = _PLAUSIBLE[metric]
        return {"editor_id": fid, "metric": metric, "value": round(self.rng.uniform(low, high), 4),
                "timestamp": self._ts(ts_ms)}

    def _event_template(self, fid: str, ts_ms: int) -> dict:
        # config_change: a security_finding with severity >= 7 would be forwarded as an incident
        # if wrongly accepted, so the bad events use a type without side effects.
        return {"editor_id": fid, "event_type": "config_change", "timestamp": self._ts(ts_ms),
                "details": {"change": "floor_price", "from": 0.5, "to": 0.7}}

    def _record(self, fid, category, payload, reason, *also, stream="metrics", putable=True, traceable=True):
        return FuzzRecord(
            fuzz_id=fid, stream=stream, category=category, payload=payload, partition_key=fid,
            reason_code=reason, accepted_codes=frozenset({reason, *also}) if reason else frozenset(),
            putable=putable, traceable=traceable,
        )

    # -- public API --------------------------------------------------------------------
    def make(self, category: str, ts_ms: int) -> FuzzRecord:
        """One record of the category, with its timestamp (where it has one) near ts_ms."""
        if category == "valid_edge":
            return self._valid_edge(ts_ms)
        if category == "late":
            raise ValueError("late records are made by make_late(ts_ms, lateness_ms)")
        return self.categories[category][1](ts_ms)

    def make_random(self, ts_ms: int) -> FuzzRecord:
        names = list(self.categories)
        weights = [self.categories[n][0] for n in names]
        return self.make(self.rng.choices(names, weights)[0], ts_ms)

    def make_late(self, ts_ms: int, lateness_ms: int) -> FuzzRecord:
        """A valid metric record whose event time is lateness_ms behind ts_ms."""
        fid = self._next_id()
        return self._record(fid, "late", _dumps(self._metric_template(fid, ts_ms - lateness_ms)), "LATE_RECORD")

    def make_valid_out_of_order(self, ts_ms: int, behind_ms: int) -> FuzzRecord:
        """A valid record behind the newest one, but within the watermark delay: not late."""
        fid = self._next_id()
        return self._record(fid, "valid_out_of_order", _dumps(self._metric_template(fid, ts_ms - behind_ms)), None)

    def make_duplicate(self, original: TrafficRecord) -> FuzzRecord:
        """A byte-identical second copy of a valid record (what an at-least-once producer sends)."""
        fid = self._next_id()
        return FuzzRecord(fuzz_id=fid, stream=original.stream, category="duplicate", payload=original.payload,
                          partition_key=original.partition_key, reason_code="DUPLICATE_RECORD",
                          # A copy of a record that was itself late is late again: also defensible.
                          accepted_codes=_cat("DUPLICATE_RECORD", "LATE_RECORD"), traceable=False)

    def make_unputable(self, ts_ms: int) -> FuzzRecord:
        """Over the 1 MiB Kinesis record limit: the producer has to refuse it, it never reaches the job."""
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["dimensions"] = {"blob": ""}
        overhead = len(_dumps(body)) + len(fid)
        body["dimensions"]["blob"] = "x" * (KINESIS_RECORD_MAX_BYTES - overhead + 1 + self.rng.randrange(4096))
        return self._record(fid, "oversized_unputable", _dumps(body), "OVERSIZED_RECORD", putable=False)

    # -- malformed metric records ----------------------------------------------------------
    def _truncated_json(self, ts_ms):
        fid = self._next_id()
        text = _dumps(self._metric_template(fid, ts_ms))
        # Cut anywhere after the id (so it stays traceable) and before the closing brace.
        cut = self.rng.randrange(len(b'{"editor_id":"') + len(fid) + 1, len(text) - 1)
        return self._record(fid, "truncated_json", text[:cut], "INVALID_JSON")

    def _invalid_json(self, ts_ms):
        fid = self._next_id()
        metric = self.rng.choice(METRICS)  # 0.5 below is in range for every metric: JSON is the only defect
        ts = ts_ms
        variants = [
            f"{{'editor_id': '{fid}', 'metric': '{metric}', 'value': 0.5, 'timestamp': {ts}}}",  # single quotes
            f'{{editor_id: "{fid}", metric: "{metric}", value: 0.5, timestamp: {ts}}}',  # unquoted keys
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts},}}',  # trailing comma
            f'{{"editor_id":"{fid}","metric":"{metric}" "value":0.5,"timestamp":{ts}}}',  # missing comma
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts}}}}}',  # extra brace
            f'{{"editor_id":"{fid}","metric":"{metric}","value":00.5,"timestamp":{ts}}}',  # leading zero
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts}}} trailing garbage',
            # two records joined by a comma (a producer's array without its brackets)
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts}}},'
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.6,"timestamp":{ts}}}',
            f'{fid} metric={metric} value=0.5 ts={ts}',  # a log line, not JSON
            f'<metric editor="{fid}" name="{metric}" value="0.5"/>',  # XML
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts},"note":"unterminated}}',
            # nested deeper than Python's json.loads goes (RecursionError in the boto3 reader until
            # 2026-12-06) and than Flink's JSON parser takes (INVALID_JSON)
            f'{{"editor_id":"{fid}","metric":"{metric}","value":0.5,"timestamp":{ts},"dimensions":'
            + "[" * 5000 + "]" * 5000 + "}",
        ]
        return self._record(fid, "invalid_json", self.rng.choice(variants).encode(), "INVALID_JSON")

    def _not_an_object(self, ts_ms):
        fid = self._next_id()
        with_id = [f'["{fid}","rpm",1.5,{ts_ms}]', f'"{fid}"', f'[{{"editor_id":"{fid}","metric":"rpm"}}]']
        without_id = ["null", "true", "12345", "[]", " "]
        if self.rng.random() < 0.7:
            return self._record(fid, "not_an_object", self.rng.choice(with_id).encode(), "INVALID_JSON", "WRONG_TYPE")
        return self._record(fid, "not_an_object", self.rng.choice(without_id).encode(), "INVALID_JSON",
                            "WRONG_TYPE", traceable=False)

    def _invalid_utf8(self, ts_ms):
        fid = self._next_id()
        text = _dumps(self._metric_template(fid, ts_ms))
        bad = self.rng.choice([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
        # Structural positions only: wherever the bytes land, the decoded text is not a JSON object
        # (inside a string a replacement character would leave valid JSON with an odd editor id).
        where = self.rng.choice(["prefix", "before_value", "suffix"])
        if where == "prefix":
            payload = bad + text
        elif where == "suffix":
            payload = text + bad
        else:
            i = text.index(b'"value":') + len(b'"value":')
            payload = text[:i] + bad + text[i:]
        return self._record(fid, "invalid_utf8", payload, "INVALID_ENCODING", "INVALID_JSON")

    def _unpaired_surrogate(self, ts_ms):
        """A lone UTF-16 surrogate, written as its escape (json.dumps does): ASCII bytes and valid JSON
        grammar, but no Unicode text (sql/parse/unpaired_surrogate.sql). In an id, a partner, a
        dimension or an event's details; a pair in the wrong order is two lone ones."""
        fid = self._next_id()
        lone = self.rng.choice(["\ud800", "\udbff", "\udc00", "\udfff", "\ude00\ud83d"])
        where = self.rng.choice(["editor_id", "partner", "dimensions", "details"])
        if where == "details":
            body = self._event_template(fid, ts_ms)
            body["details"]["note"] = "x" + lone
            return self._record(fid, "unpaired_surrogate", _dumps(body), "INVALID_ENCODING", stream="events")
        body = self._metric_template(fid, ts_ms)
        if where == "editor_id":
            body["editor_id"] = fid + lone      # the fuzz id stays readable: the record is traceable
        elif where == "partner":
            body["partner"] = "p-" + lone
        else:
            body["dimensions"] = {"site": lone}
        return self._record(fid, "unpaired_surrogate", _dumps(body), "INVALID_ENCODING")

    def _wrong_type_value(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["value"] = self.rng.choice([str(body["value"]), True, False, {"v": body["value"]}, [body["value"]],
                                         "", "12,5"])
        return self._record(fid, "wrong_type_value", _dumps(body), "WRONG_TYPE")

    def _wrong_type_field(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        choice = self.rng.randrange(6)
        if choice == 0:  # editor id not a string: the fuzz id moves to partner so it stays traceable
            body = {"editor_id": self.rng.choice([{"id": "e-001"}, ["e-001"]]), "partner": fid,
                    **{k: v for k, v in body.items() if k != "editor_id"}}
            return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE", "MISSING_FIELD")
        if choice == 1:
            body["editor_id"] = ""
            body["partner"] = fid
            return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE", "MISSING_FIELD")
        if choice == 2:
            body["metric"] = self.rng.choice([7, ["rpm"], {"name": "rpm"}])
            return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE", "UNKNOWN_METRIC",
                                "MISSING_FIELD")
        if choice == 3:
            body["timestamp"] = self.rng.choice([True, {"ms": ts_ms}, [ts_ms], ts_ms + 0.5])
            return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE", "INVALID_TIMESTAMP",
                                "MISSING_FIELD")
        if choice == 4:  # numeric editor id: the contract says string
            body = {"editor_id": self.rng.randrange(10**6, 10**7), "partner": fid,
                    **{k: v for k, v in body.items() if k != "editor_id"}}
            return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE")
        body["dimensions"] = self.rng.choice(["site=a", ["a", "b"], {"site": 7}, {"site": {"x": "y"}}])
        return self._record(fid, "wrong_type_field", _dumps(body), "WRONG_TYPE")

    def _nan_inf_token(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["value"] = self.rng.choice([float("nan"), float("inf"), float("-inf")])
        # json.dumps(allow_nan=True) writes the bare tokens NaN / Infinity / -Infinity.
        return self._record(fid, "nan_inf_token", _dumps(body), "NON_FINITE_VALUE", "INVALID_JSON")

    def _nan_inf_string(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["value"] = self.rng.choice(["NaN", "Infinity", "-Infinity", "inf", "nan"])
        return self._record(fid, "nan_inf_string", _dumps(body), "NON_FINITE_VALUE", "WRONG_TYPE")

    def _overflow_number(self, ts_ms):
        fid = self._next_id()
        text = _dumps(self._metric_template(fid, ts_ms))
        huge = self.rng.choice([b"1e400", b"-1e400", b"9" * 400])
        text = re.sub(rb'"value":[^,}]+', b'"value":' + huge, text)
        return self._record(fid, "overflow_number", text, "NON_FINITE_VALUE", "OUT_OF_RANGE_VALUE", "INVALID_JSON")

    def _negative_value(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["value"] = -abs(body["value"]) - self.rng.choice([0.001, 1.0, 1000.0])
        return self._record(fid, "negative_value", _dumps(body), "OUT_OF_RANGE_VALUE")

    def _absurd_value(self, ts_ms):
        fid = self._next_id()
        if self.rng.random() < 0.5:
            body = self._metric_template(fid, ts_ms, self.rng.choice(RATE_METRICS))
            body["value"] = self.rng.choice([1.5, 37.0, 100.0, 1e6])  # a rate above 1
        else:
            body = self._metric_template(fid, ts_ms)
            body["value"] = self.rng.choice([1e15, 3.4e38, 1e300])
        return self._record(fid, "absurd_value", _dumps(body), "OUT_OF_RANGE_VALUE")

    def _unknown_metric(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["metric"] = self.rng.choice(["ctr", "viewability", "rpm_v2", "RPM ", "fillrate", "latency", "cpm",
                                          "bid-latency-ms", "revenue_usd", "impression"])
        return self._record(fid, "unknown_metric", _dumps(body), "UNKNOWN_METRIC")

    def _missing_field(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        missing = self.rng.choice(["editor_id", "metric", "value", "timestamp", "null_value", "null_metric", "all"])
        if missing == "editor_id":
            body = {"partner": fid, **{k: v for k, v in body.items() if k != "editor_id"}}
        elif missing == "null_value":
            body["value"] = None
        elif missing == "null_metric":
            body["metric"] = None
        elif missing == "all":
            body = {"editor_id": fid}
        else:
            del body[missing]
        return self._record(fid, "missing_field", _dumps(body), "MISSING_FIELD")

    def _future_timestamp(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        future = self.rng.choice([
            "2099-01-01T00:00:00Z", "2150-06-30T12:00:00.000+02:00", 4102444800000, 32503680000000,
            "2075-03-01T00:00:00+05:30",
        ])
        body["timestamp"] = future
        return self._record(fid, "future_timestamp", _dumps(body), "FUTURE_TIMESTAMP")

    def _past_timestamp(self, ts_ms):
        # Far in the past: well-formed but behind any watermark, so the late output (LATE_RECORD);
        # epoch 0 and negative epochs are arguably invalid rather than late.
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["timestamp"] = self.rng.choice(["1970-01-02T00:00:00Z", "2001-09-09T01:46:40.000Z", 86_400_000,
                                             1_000_000_000_000, 0, -1_000, "1969-12-31T23:59:59Z"])
        if isinstance(body["timestamp"], int) and body["timestamp"] <= 0 or body["timestamp"] == "1969-12-31T23:59:59Z":
            return self._record(fid, "past_timestamp", _dumps(body), "INVALID_TIMESTAMP", "LATE_RECORD")
        return self._record(fid, "past_timestamp", _dumps(body), "LATE_RECORD", "INVALID_TIMESTAMP")

    def _invalid_timestamp(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["timestamp"] = self.rng.choice([
            "yesterday", "2026-13-45T99:00:00Z", iso_ms(ts_ms)[:-1],  # no zone
            iso_ms(ts_ms).replace("T", " ")[:19], "", "1.7e12", "2026/11/01 10:00:00", "not-a-date",
            # digits to str.isdigit but not to int(), and more digits than int() converts: each
            # failed the boto3 Kinesis reader's own parse of payload times until 2026-12-06
            "\u00b2", "9" * 5000,
        ])
        return self._record(fid, "invalid_timestamp", _dumps(body), "INVALID_TIMESTAMP")

    def _oversized(self, ts_ms):
        """Over the pipeline's payload limit but under Kinesis's 1 MiB, so it can be put."""
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        body["dimensions"] = {"blob": ""}
        base = len(_dumps(body))
        ceiling = KINESIS_RECORD_MAX_BYTES - len(fid) - base
        floor = self.max_payload_bytes + 1 - base
        # Just over the pipeline limit, just under the Kinesis limit, or anywhere between.
        size = self.rng.choice([floor, floor + 1, ceiling, ceiling - 1, self.rng.randrange(floor, ceiling)])
        body["dimensions"]["blob"] = "x" * size
        return self._record(fid, "oversized", _dumps(body), "OVERSIZED_RECORD")

    # -- malformed event records -------------------------------------------------------
    def _event_unknown_type(self, ts_ms):
        fid = self._next_id()
        body = self._event_template(fid, ts_ms)
        body["event_type"] = self.rng.choice(["rollback", "Deployment", "config-change", "", "alert"])
        return self._record(fid, "event_unknown_type", _dumps(body), "UNKNOWN_EVENT_TYPE", "MISSING_FIELD",
                            stream="events")

    def _event_missing_field(self, ts_ms):
        fid = self._next_id()
        body = self._event_template(fid, ts_ms)
        del body[self.rng.choice(["event_type", "timestamp"])]
        return self._record(fid, "event_missing_field", _dumps(body), "MISSING_FIELD", stream="events")

    def _event_bad_severity(self, ts_ms):
        fid = self._next_id()
        body = self._event_template(fid, ts_ms)
        severity = self.rng.choice([11, -1, 1e9, "high", [9]])
        body["severity"] = severity
        if isinstance(severity, (int, float)):
            body["event_type"] = "security_finding"     # only a finding's severity is scored 0-10
            return self._record(fid, "event_bad_severity", _dumps(body), "OUT_OF_RANGE_VALUE", stream="events")
        return self._record(fid, "event_bad_severity", _dumps(body), "WRONG_TYPE", stream="events")

    def _event_invalid_json(self, ts_ms):
        fid = self._next_id()
        text = _dumps(self._event_template(fid, ts_ms))
        cut = self.rng.randrange(len(b'{"editor_id":"') + len(fid) + 1, len(text) - 1)
        return self._record(fid, "event_invalid_json", text[:cut], "INVALID_JSON", stream="events")

    def _event_future_timestamp(self, ts_ms):
        fid = self._next_id()
        body = self._event_template(fid, ts_ms)
        body["timestamp"] = self.rng.choice(["2099-01-01T00:00:00Z", 4102444800000])
        return self._record(fid, "event_future_timestamp", _dumps(body), "FUTURE_TIMESTAMP", stream="events")

    # -- valid edge cases: must be accepted -------------------------------------------------
    def _valid_edge(self, ts_ms):
        fid = self._next_id()
        body = self._metric_template(fid, ts_ms)
        kind = self.rng.randrange(7)
        if kind == 0:
            # the same instant as local time east of UTC, in microseconds (Python's isoformat
            # default): read with its offset dropped it would be 5.5 h ahead, FUTURE_TIMESTAMP
            india = dt.timezone(dt.timedelta(hours=5, minutes=30))
            body["timestamp"] = dt.datetime.fromtimestamp(ts_ms / 1000, india).isoformat(timespec="microseconds")
        elif kind == 1:
            body["timestamp"] = ts_ms
        elif kind == 2:
            body["value"] = int(body["value"]) if body["metric"] not in RATE_METRICS else 1
        elif kind == 3:
            body["metric"] = self.rng.choice(RATE_METRICS)
            body["value"] = self.rng.choice([0, 0.0, 1.0])
        elif kind == 4:
            body["dimensions"] = {"site": "mobile", "country": "FR"}
        elif kind == 5:
            body["unknown_extra_field"] = {"ignored": True}
        else:  # exactly at the pipeline's size limit (characters == bytes: ASCII)
            body["dimensions"] = {"pad": ""}
            body["dimensions"]["pad"] = "p" * (self.max_payload_bytes - len(_dumps(body)))
        return self._record(fid, "valid_edge", _dumps(body), None)


def mix(
    valid: Sequence[TrafficRecord],
    n_bad: int,
    *,
    seed: int = 0,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    duplicate_share: float = 0.05,
    n_late: int = 0,
    late_by_ms: tuple[int, int] = (600_000, 3_600_000),
    n_out_of_order: int = 0,
    out_of_order_by_ms: tuple[int, int] = (1_000, 10_000),
    n_valid_edge: int = 0,
    late_after_fraction: float = 0.2,
) -> list[TrafficRecord]:
    """Insert n_bad malformed records (plus optional late / out-of-order / edge records) into valid traffic.

    The valid records keep their relative order. Each inserted record takes its
    timestamp from the valid record just before it, so a bad record wrongly
    accepted would neither be late nor push the watermark. Late records only
    start after ``late_after_fraction`` of the traffic, once a watermark exists.
    """
    generator = FuzzGenerator(seed=seed, max_payload_bytes=max_payload_bytes)
    rng = random.Random(seed + 1)
    metric_positions = [i for i, r in enumerate(valid) if r.stream == "metrics"]
    if not metric_positions:
        raise ValueError("mix needs valid metric traffic to insert into")
    timestamps = [timestamp_ms_of(r.payload) for r in valid]
    last_ts, running = [], None
    for ts in timestamps:
        running = ts if running is None or ts is not None and ts > running else running
        last_ts.append(running)

    inserts: dict[int, list[TrafficRecord]] = {}

    def add(position: int, record: FuzzRecord):
        inserts.setdefault(position, []).append(
            TrafficRecord(record.stream, record.partition_key, record.payload, record))

    n_dup = int(round(n_bad * duplicate_share))
    for _ in range(n_bad - n_dup):
        pos = rng.randrange(len(valid))
        add(pos, generator.make_random(last_ts[pos] or 0))
    for _ in range(n_dup):
        # A copy right after (within a few records of) the original, like a producer retry.
        original = rng.choice(metric_positions)
        add(min(len(valid) - 1, original + rng.randrange(0, 5)), generator.make_duplicate(valid[original]))
    start_late = int(len(valid) * late_after_fraction)
    for _ in range(n_late):
        pos = rng.randrange(start_late, len(valid))
        add(pos, generator.make_late(last_ts[pos] or 0, rng.randrange(*late_by_ms)))
    for _ in range(n_out_of_order):
        pos = rng.randrange(start_late, len(valid))
        add(pos, generator.make_valid_out_of_order(last_ts[pos] or 0, rng.randrange(*out_of_order_by_ms)))
    for _ in range(n_valid_edge):
        pos = rng.randrange(len(valid))
        add(pos, generator.make("valid_edge", last_ts[pos] or 0))

    mixed: list[TrafficRecord] = []
    for i, record in enumerate(valid):
        mixed.append(record)
        mixed.extend(inserts.get(i, ()))
    return mixed


def fuzz_records(traffic: Iterable[TrafficRecord]) -> Iterator[FuzzRecord]:
    for record in traffic:
        if record.fuzz is not None:
            yield record.fuzz
