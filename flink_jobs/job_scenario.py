"""Scripted traffic for the job tests and benchmark: warm-up history, then one incident window per editor.

One record per (editor, metric) and 5-minute window: the detectors need many
windows of history (the ensemble scores 0 during its first 150 updates), and
this cadence gives 14 h of history in ~1k records per editor, so the mini-cluster
test stays fast. Values follow a daily cycle with small deterministic noise.
"""
from __future__ import annotations

import json
import math
import random

WINDOW_S = 300
WARMUP_WINDOWS = 170        # > the ensemble's 150-update warm-up
AFTER_WINDOWS = 2           # normal windows after the incident: they push the watermark past it

# base level, daily amplitude (fraction), noise (fraction)
METRICS = {
    "rpm": (2.5, 0.20, 0.01),
    "fill_rate": (0.85, 0.03, 0.005),
    "bid_latency_ms": (120.0, 0.10, 0.01),
    "error_rate": (0.01, 0.0, 0.02),
    "impressions": (5000.0, 0.30, 0.01),
    "revenue": (12.5, 0.40, 0.01),
}

# editor -> {metric: multiplier during the incident window}
INCIDENTS = {
    "e-demand": {"rpm": 0.45, "fill_rate": 0.55, "revenue": 0.25, "impressions": 0.6},
    "e-latency": {"rpm": 0.55, "bid_latency_ms": 4.0, "revenue": 0.5},
    "e-pricing": {"rpm": 0.45, "revenue": 0.45},
    "e-normal": {},
}


PARTNER = "p-out"
PARTNER_EDITORS = ("e-pa", "e-pb")
PARTNER_METRICS = {
    "fill_rate": (0.80, 0.02, 0.005),
    "partner_timeouts": (4.0, 0.10, 0.02),
    "bid_rate": (0.60, 0.02, 0.005),
    "win_rate": (0.20, 0.02, 0.005),
}
# a demand-partner outage: fill and bids down, timeouts up
PARTNER_OUTAGE = {"fill_rate": 0.5, "partner_timeouts": 6.0, "bid_rate": 0.5, "win_rate": 0.7}


def window_start(now_s: float, incident_windows: int = 1) -> int:
    """Start of the first warm-up window: history ends a little before now (no FUTURE_TIMESTAMP)."""
    end = int(now_s) // WINDOW_S * WINDOW_S - 2 * WINDOW_S
    return end - (WARMUP_WINDOWS + incident_windows + AFTER_WINDOWS) * WINDOW_S


def editor_records(editor: str, start_s: int, seed: int = 7, *, partner: str | None = None,
                   windows: range | None = None, kind: str | None = None,
                   incident_index: int = WARMUP_WINDOWS) -> tuple[list[dict], int]:
    """(records in time order, incident window start in s). With ``partner``: partner-level samples.
    ``incident_index``: the window of the incident (the first after the warm-up by default)."""
    rng = random.Random(f"{seed}-{editor}")
    metrics = PARTNER_METRICS if partner else METRICS
    changes = PARTNER_OUTAGE if partner else INCIDENTS[kind or editor]
    out = []
    for w in windows or range(WARMUP_WINDOWS + 1 + AFTER_WINDOWS):
        t = start_s + w * WINDOW_S + 60          # one sample a minute into the window
        for metric, (base, amplitude, noise) in metrics.items():
            cycle = 1.0 + amplitude * math.sin(2 * math.pi * (t % 86400) / 86400.0)
            v = base * cycle * (1.0 + rng.gauss(0.0, noise))
            if w == incident_index:
                v *= changes.get(metric, 1.0)
            if metric in ("fill_rate", "error_rate", "bid_rate", "win_rate"):
                v = min(max(v, 0.0), 1.0)
            ts = t * 1000 if w % 2 else _iso(t)   # both timestamp forms of the contract
            record = {"editor_id": editor, "metric": metric, "value": round(v, 6), "timestamp": ts}
            if partner:
                record["partner"] = partner
            out.append(record)
    return out, start_s + incident_index * WINDOW_S


def timestamp_ms(record: dict) -> int:
    import datetime as dt

    ts = record["timestamp"]
    if isinstance(ts, int):
        return ts
    return int(dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def _iso(t_s: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t_s, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_records(t_s: int) -> list[tuple[str, str]]:
    """(raw payload, expected reason code)."""
    ok = {"editor_id": "e-bad", "metric": "rpm", "value": 1.0, "timestamp": t_s * 1000}
    return [
        ('{"editor_id": "e-bad", "metric": "rpm", "value": 1.0, "timest', "INVALID_JSON"),
        (json.dumps({k: v for k, v in ok.items() if k != "value"}), "MISSING_FIELD"),
        (json.dumps(dict(ok, value="1.5")), "WRONG_TYPE"),
        (json.dumps(dict(ok, metric="ctr")), "UNKNOWN_METRIC"),
        (json.dumps(dict(ok, value=0)).replace('"value": 0', '"value": 1e400'), "NON_FINITE_VALUE"),
        (json.dumps(dict(ok, metric="fill_rate", value=1.7)), "OUT_OF_RANGE_VALUE"),
        (json.dumps(dict(ok, value=-3.0)), "OUT_OF_RANGE_VALUE"),
        (json.dumps(dict(ok, timestamp="yesterday")), "INVALID_TIMESTAMP"),
        (json.dumps(dict(ok, timestamp=(t_s + 7 * 86400) * 1000)), "FUTURE_TIMESTAMP"),
        (json.dumps(dict(ok, dimensions={"pad": "x" * 70000})), "OVERSIZED_RECORD"),
        # json.dumps writes the lone surrogate as the escape "\ud800": ASCII bytes, valid JSON, no Unicode
        # text; before 2026-12-07 the job accepted it, no dead letter (sql/parse/unpaired_surrogate.sql)
        (json.dumps(dict(ok, editor_id="e-bad-\ud800")), "INVALID_ENCODING"),
    ]


def scaled_records(n_editors: int, start_s: int, incident_windows: int = 1) -> list[tuple[str, str]]:
    """(partition key, JSON) for n editors cycling through the INCIDENTS kinds, in time order; their
    incidents spread over ``incident_windows`` consecutive windows after the warm-up (each editor's
    records run as long, so every incident is followed by AFTER_WINDOWS normal windows or more)."""
    out = []
    kinds = list(INCIDENTS)
    windows = range(WARMUP_WINDOWS + incident_windows + AFTER_WINDOWS)
    for i in range(n_editors):
        kind = kinds[i % len(kinds)]
        editor = f"{kind}-{i:04d}"
        recs, _ = editor_records(editor, start_s, kind=kind, windows=windows,
                                 incident_index=WARMUP_WINDOWS + (i // len(kinds)) % incident_windows)
        out += [(editor, json.dumps(r)) for r in recs]
    out.sort(key=lambda kv: timestamp_ms(json.loads(kv[1])))
    return out
