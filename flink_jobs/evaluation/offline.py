"""Offline replay: the job's per-window decisions over an archive in pure Python, scored like a real run.

An end-to-end run (flink_jobs.evaluate) takes 5-10 minutes; this takes well
under a minute once the models' outputs are cached, so detection changes can be
tried on several simulated days. It reproduces the job's path, step by step:

1. **Parse and late rule.** Metrics and events are read in the order the replay
   puts them on the streams (connectors.replay.kinesis.merged_archive). The
   watermark is the highest event time seen minus ``processing.watermark.delay.s``;
   a metric behind it is a LATE_RECORD (sql/parse/metrics.sql) and dropped.
   (The job's watermark is the minimum over its source splits, so it can be a
   little behind this one: a few records the job keeps may be dropped here.)
2. **Windows** (sql/windows/*.sql): tumbling ``window.size.s`` windows per
   (editor, metric) and per (partner, editor, metric), the mean of the samples.
   A window closes once the final watermark passes its end.
3. **Scoring** (udfs/metric_detector.py): per key, in window order,
   udfs.baseline.score_window -- the configured detector, the trailing baseline
   and their combination, with the job's properties -- then each editor's windows
   in its incident frame (udfs.baseline.judge_in_frame), as the job's editor
   operator judges them.
4. **Decisions** (udfs/correlator.py), window by window: per partner
   udfs.decisions.partner_window_check with its last status, then per editor
   udfs.decisions.editor_window_composite with the editor's events that had
   arrived before the window closed (partner-wide ones passed on to the partner's
   editors, ``routed_partner_events``; platform-wide ones to every editor,
   ``routed_platform_events``) and the window's partner findings, and
   udfs.decisions.composite_episode for each composite.
5. **Scoring against labels** with flink_jobs.evaluation.scoring, the same
   warm-up and quiet-editor rules as flink_jobs.evaluate.

Not reproduced: security findings (udfs/security.py, a plain severity filter)
are added from the events directly; EventBridge delivery is assumed lossless.

Step 3 is the slow part (the ensemble in Python); ``--cache DIR`` keeps each
key's model outputs per archive and detector settings, so changes to the
trailing baseline, the combination or the decisions re-run in seconds.

    python -m flink_jobs.evaluation.offline --archive /tmp/sim7 [--cache /tmp/offline-cache] [--out eval.json]
"""
from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import pickle
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import detectors
from connectors.archive.store import EVENTS, METRICS
from connectors.replay.kinesis import event_time_ms, merged_archive
from detectors.base import Detection
from detectors.classifier import METRICS as METRIC_NAMES, RATE_METRICS, ClassifierConfig
from detectors.events import EventValidationError, parse_event
from detectors.partner_health import PartnerHealthConfig
from flink_jobs.evaluation.scoring import SampleTimes, alerts_from_events, load_labels, sample_key, score
from udfs.baseline import judge_in_frame, score_window
from udfs.decisions import (bounded_events, cause_horizon, composite_episode,
                            editor_window_composite, is_partner_wide, is_platform_wide, partner_window_check,
                            security_detail, serves)
from udfs.metric_detector import holds_frame, is_idle, metric_result

#: Metrics reported only per partner: the editor window averages them over its partners. A partner
#: sample of any other metric (revenue per partner) is part of an editor total and goes to the partner
#: window only (the WHERE of sql/windows/editor_windows.sql).
PARTNER_ONLY_METRICS = ("partner_timeouts", "bid_rate", "win_rate")
COMPOSITE = ("adops.analytics", "Composite Anomaly Detected")
PARTNER_HEALTH = ("adops.monitoring", "Partner Health Check")
SECURITY = ("adops.security", "Security Incident Detected")


@dataclass(frozen=True)
class JobParameters:
    """The job properties the decisions depend on (flink_jobs/application_properties.json)."""

    window_size_s: int = 300
    watermark_delay_s: int = 30
    events_lookback_s: int = 1800
    baseline_windows: int = 12
    baseline_min_windows: int = 6
    baseline_threshold: float = 0.25
    detector: str = "ensemble"
    detector_params: dict = field(default_factory=dict)
    security_min_severity: float = 7.0
    #: the job's classifier property group (README "Configuration"), as the editor operator reads it
    classifier_properties: dict = field(default_factory=dict)
    #: processing.state.idle.retention.s: a series idle longer starts again (udfs/metric_detector.is_idle)
    state_idle_retention_s: int = 604800
    #: processing.max.future.s: a record stamped further ahead of the clock is FUTURE_TIMESTAMP
    max_future_s: int = 300
    #: processing.timer.grace.ms: part of the horizon the editor operator keeps events from (udfs.decisions.cause_horizon)
    timer_grace_ms: int = 0
    #: processing.max.metric.value: a value from it up is OUT_OF_RANGE_VALUE
    max_metric_value: float = 1e9

    @classmethod
    def from_job_config(cls, overrides: list[str] = ()) -> "JobParameters":
        from flink_jobs.config import JobConfig
        from flink_jobs.main import Settings

        s = Settings.from_config(JobConfig.load(overrides=overrides))
        return cls(s.window_size_s, s.watermark_delay_s, s.events_lookback_s, s.baseline_windows,
                   s.baseline_min_windows, s.baseline_threshold, s.detector, s.detector_params,
                   s.security_min_severity, s.classifier_properties, s.state_idle_retention_s, s.max_future_s,
                   s.timer_grace_ms, s.max_metric_value)


@dataclass
class ArchiveWindows:
    """What sql/ makes of an archive: closed window means per key, the valid events, and the facts."""

    # (scope_kind, scope_id, metric, editor-or-None) -> [(window_end_ms, mean, count)] in window order
    series: dict
    events: list            # event dicts (udfs/correlator.py's stored form) + "visible_after_wm"
    editors: set
    first_ms: int | None
    last_ms: int | None
    metric_records: int
    late_records: int
    #: as flink_jobs.evaluate.ArchiveFacts keeps them: the scorer's "does the window hold incident data"
    sample_times: SampleTimes = field(default_factory=SampleTimes)
    #: records stamped more than processing.max.future.s ahead of the clock (the job's FUTURE_TIMESTAMP)
    future_records: int = 0

    def editor_days(self, since_s: float | None = None) -> float | None:
        if not self.editors or self.first_ms is None:
            return None
        first_ms = self.first_ms if since_s is None else max(self.first_ms, since_s * 1000.0)
        return len(self.editors) * max(0.0, self.last_ms - first_ms) / 86_400_000.0


def read_windows(archive: str | Path, params: JobParameters) -> ArchiveWindows:
    """Steps 1-2 of the module docstring. Records the job would dead-letter for their fields (no editor,
    no metric, a value that is not a finite number, no timestamp: sample_key; a metric outside the
    contract, a value out of range, dimensions that are not strings: in_contract) are in no window;
    every record whose time is read moves the watermark, as every row moves the job's."""
    size_ms, delay_ms = params.window_size_s * 1000, params.watermark_delay_s * 1000
    sums: dict = defaultdict(lambda: [0.0, 0])     # (kind, scope, metric, editor, end) -> [sum, count]
    events: list[dict] = []
    editors: set = set()
    max_ms: int | None = None
    first_ms = last_ms = None
    n_metrics = late = future = 0
    sample_times = SampleTimes()
    # The job's clock: a record further ahead of it is FUTURE_TIMESTAMP, and its watermark never
    # passes it (sql/parse/watermark.sql), so one record stamped in 9999 neither counts nor makes
    # every later one late.
    now_ms = time.time() * 1000.0
    for item in merged_archive(archive):
        record = item.record
        ms = event_time_ms(record)
        if ms is None:
            continue
        if ms > now_ms + params.max_future_s * 1000:
            future += 1
            continue
        watermark = None if max_ms is None else max_ms - delay_ms
        # Every record whose time the source reads moves its watermark, valid or dead-lettered
        # (the source's WATERMARK is on event_time, which every row has): before 2026-12-07 only
        # the valid ones moved it here.
        max_ms = min(ms, now_ms) if max_ms is None else max(max_ms, min(ms, now_ms))
        if item.kind == EVENTS:
            try:
                # the time as the job read it (a quoted epoch too, which parse_event refuses)
                event = parse_event(dict(record, timestamp=ms))
            except EventValidationError:
                continue
            events.append({"event_type": event.event_type, "timestamp_ms": ms, "editor_id": event.editor_id,
                           "partner": event.partner, "severity": event.severity, "details": event.details,
                           "arrived_at_watermark": watermark})
            continue
        if item.kind != METRICS or not isinstance(record, dict):
            continue
        key = sample_key(record)    # None: a record the job dead-letters (sql/parse/metrics.sql)
        if key is None or not in_contract(record, params.max_metric_value):
            continue
        (editor, partner), metric, value = key, record["metric"], float(record["value"])
        n_metrics += 1
        if watermark is not None and ms <= watermark:
            late += 1
            continue
        # The span of editor-days is the windowed samples' (flink_jobs.evaluate.ArchiveFacts).
        editors.add(editor)
        first_ms = ms if first_ms is None else min(first_ms, ms)
        last_ms = ms if last_ms is None else max(last_ms, ms)
        # Only samples a window holds: a late one is in no window (scoring.detects).
        sample_times.add(editor, partner, ms / 1000.0)
        end = (ms // size_ms + 1) * size_ms
        if partner is None or metric in PARTNER_ONLY_METRICS:
            cell = sums[("editor", editor, metric, None, end)]
            cell[0] += value
            cell[1] += 1
        if partner is not None:
            cell = sums[("partner", partner, metric, editor, end)]
            cell[0] += value
            cell[1] += 1
    final_watermark = (max_ms - delay_ms) if max_ms is not None else None
    series: dict = defaultdict(list)
    for (kind, scope, metric, editor, end), (total, count) in sums.items():
        if final_watermark is not None and end - 1 <= final_watermark:
            series[(kind, scope, metric, editor)].append((end, total / count, count))
    for values in series.values():
        values.sort()
    return ArchiveWindows(dict(series), events, editors, first_ms, last_ms, n_metrics, late, sample_times, future)


#: The contract's metrics (sql/parse/metrics.sql; the rates among them: detectors.classifier.RATE_METRICS).
CONTRACT_METRICS = frozenset(METRIC_NAMES)


def in_contract(record: dict, max_metric_value: float) -> bool:
    """The parse's other checks of a metric record that :func:`sample_key` accepted: its metric is one of
    the contract's (else UNKNOWN_METRIC), its value in range (else OUT_OF_RANGE_VALUE: below 0, from
    ``processing.max.metric.value`` up, a rate above 1), its dimensions an object of strings (else
    WRONG_TYPE). The live evaluation reads what the job dead-lettered back from its outputs; the
    offline replay has none, and windowed such records until 2026-12-07 (an rpm of -50 in a window).

    >>> [in_contract({"metric": m, "value": v, **kw}, 1e9) for m, v, kw in (("rpm", 2.0, {}), ("ctr", 1.0, {}),
    ...  ("rpm", -1.0, {}), ("impressions", 2e9, {}), ("fill_rate", 1.5, {}), ("rpm", 2.0, {"dimensions": {"n": 1}}),
    ...  ("rpm", 2.0, {"dimensions": {"site": "m"}}), ("rpm", 2.0, {"dimensions": None}))]
    [True, False, False, False, False, False, True, True]
    """
    metric, value, dimensions = record["metric"], record["value"], record.get("dimensions")
    if metric not in CONTRACT_METRICS or not 0 <= value < max_metric_value:
        return False
    if metric in RATE_METRICS and value > 1:
        return False
    return dimensions is None or (isinstance(dimensions, dict) and all(isinstance(v, str) for v in dimensions.values()))


class RecordedModel:
    """Plays back a model's recorded Detections (the cache), checking it is asked for the same windows."""

    def __init__(self, detections: list[tuple[float, tuple]]):
        self._detections = iter(detections)

    def restart(self, _new_model) -> None:
        """The series starts again: the recording goes on (it recorded the restarted model too)."""

    def update(self, timestamp_s: float, value: float) -> Detection:
        ts, fields = next(self._detections)
        if ts != timestamp_s:
            raise ValueError(f"cached detections do not match the windows ({ts} != {timestamp_s}); clear the cache")
        return Detection(*fields)


class RecordingModel:
    def __init__(self, model):
        self.model, self.recorded = model, []

    def restart(self, new_model) -> None:
        """The series starts again from a new model; one recording holds both, in window order."""
        self.model = new_model()

    def update(self, timestamp_s: float, value: float) -> Detection:
        d = self.model.update(timestamp_s, value)
        self.recorded.append((timestamp_s, (d.score, d.expected, d.lower, d.upper, d.is_anomaly)))
        return d


def _cache_file(cache_dir: Path | None, archive: Path, params: JobParameters) -> Path | None:
    if cache_dir is None:
        return None
    stamp = json.dumps([str(archive.resolve()), sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                                        for p in archive.rglob("*") if p.is_file()),
                        params.window_size_s, params.watermark_delay_s, params.detector, params.detector_params,
                        params.state_idle_retention_s, params.max_metric_value, _detector_source_digest()],
                       sort_keys=True, default=str)
    return cache_dir / f"models-{hashlib.sha256(stamp.encode()).hexdigest()[:24]}.pkl"


def _detector_source_digest() -> str:
    """The models' outputs depend on detectors/ code, and their inputs on this module's reading of the
    archive (read_windows, in_contract): a change to either invalidates the cache."""
    root = Path(detectors.__file__).parent
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(root.rglob("*.py")):
        if path.name not in ("classifier.py", "partner_health.py", "incident.py", "events.py", "revenue.py"):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def score_series(windows: ArchiveWindows, params: JobParameters, cache: Path | None = None) -> list[dict]:
    """Step 3: one result dict (udfs.decisions.RESULT_KEYS) per key and window."""
    recorded = None
    if cache is not None and cache.exists():
        recorded = pickle.loads(cache.read_bytes())
    new_recordings = {}
    results = []
    in_frames = defaultdict(dict)   # editor -> window end -> metric -> (ScoredWindow, value, count)
    for key in sorted(windows.series):
        kind, scope, metric, editor = key
        if recorded is not None:
            model = RecordedModel(recorded[key])
        else:
            model = RecordingModel(detectors.make(params.detector, **params.detector_params))
        history, last_end = None, None
        for end, value, count in windows.series[key]:
            if is_idle(last_end, end, params.state_idle_retention_s * 1000):
                # the job's operators would have dropped the series: it starts again from nothing
                model.restart(lambda: detectors.make(params.detector, **params.detector_params))
                history = None
            last_end = end
            scored, history = score_window(
                model, history, end, value, rel_threshold=params.baseline_threshold,
                min_windows=params.baseline_min_windows, keep=params.baseline_windows)
            if holds_frame(kind):
                in_frames[scope].setdefault(end, {})[metric] = (scored, value, count)
            else:
                results.append(metric_result(scope, metric, end, value, scored.result, count, editor))
        if recorded is None:
            new_recordings[key] = model.recorded
    retention_ms = params.state_idle_retention_s * 1000
    for editor, by_end in sorted(in_frames.items()):
        frame, last_ends = {}, {}   # as the job's editor operator holds it (udfs.metric_detector.incident_frame)
        for end in sorted(by_end):
            window = by_end[end]
            frame = {m: r for m, r in frame.items() if not is_idle(last_ends.get(m), end, retention_ms)}
            judged, frame = judge_in_frame({m: scored for m, (scored, _, _) in window.items()}, frame)
            last_ends.update((m, end) for m in window)
            results.extend(metric_result(editor, metric, end, window[metric][1], judged[metric], window[metric][2], None)
                           for metric in sorted(window))
    if recorded is None and cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(new_recordings))
    return results


def classifier_config_of(params: JobParameters, classifier_config: ClassifierConfig | None = None) -> ClassifierConfig:
    """The classifier the editor operator would use: ``classifier_config`` when given (a tuning
    experiment), else the job's classifier property group (as udfs/correlator.py reads it), with
    the job's window and look-back."""
    if classifier_config is None:
        classifier_config = (ClassifierConfig.from_properties(params.classifier_properties)
                             if params.classifier_properties else ClassifierConfig())
    return replace(classifier_config, window_seconds=float(params.window_size_s),
                   event_lookback_s=float(params.events_lookback_s))


def decide(windows: ArchiveWindows, results: list[dict], params: JobParameters,
           classifier_config: ClassifierConfig | None = None) -> list[dict]:
    """Step 4: the bus events the job would emit, in the EventBridge target shape."""
    size_ms = params.window_size_s * 1000
    config = classifier_config_of(params, classifier_config)
    # the partner operator's: the revenue rates' period is the classifier's (flink_jobs/main.scoring_operators)
    partner_config = PartnerHealthConfig(rate_period_s=config.rate_period_s)
    editor_windows: dict = defaultdict(list)
    partner_windows: dict = defaultdict(list)
    for r in results:
        target = partner_windows if r["editors"] is not None else editor_windows
        target[(r["scope_id"], r["window_end_ms"])].append(r)
    events_by_editor: dict = defaultdict(list)
    for e in windows.events:
        if e["editor_id"]:
            events_by_editor[e["editor_id"]].append(e)
    partner_editors: dict = defaultdict(lambda: defaultdict(set))     # partner -> window end -> its editors
    for (partner, end), rs in partner_windows.items():
        partner_editors[partner][end].update(r["editors"] for r in rs)
    retention_ms, horizon_ms = params.state_idle_retention_s * 1000, params.events_lookback_s * 1000 + size_ms
    editor_ends: dict = defaultdict(list)     # editor -> its window ends
    for (editor, end) in editor_windows:
        editor_ends[editor].append(end)
    told: set = set()       # the editor operator keeps one copy of a routed event (udfs/correlator.py)
    for e in (routed_partner_events(windows.events, partner_editors, retention_ms, horizon_ms)
              + routed_platform_events(windows.events, editor_ends, retention_ms, horizon_ms)):
        same = (e["routed_to"], e["event_type"], e["timestamp_ms"], e["partner"], e["severity"],
                json.dumps(e["details"], sort_keys=True))
        if same not in told:
            told.add(same)
            events_by_editor[e["routed_to"]].append(e)
    held = {editor: EditorStateEvents(events_by_editor.get(editor, []), size_ms, params.timer_grace_ms,
                                      params.events_lookback_s * 1000) for editor in editor_ends}
    by_end: dict = defaultdict(lambda: ([], []))
    for (partner, end) in partner_windows:
        by_end[end][0].append(partner)
    for (editor, end) in editor_windows:
        by_end[end][1].append(editor)
    bus: list[dict] = []
    unexplained: dict = {}
    episodes: dict = {}
    last_status: dict = {}
    for end in sorted(by_end):
        partners, editors = by_end[end]
        # A window's partner findings reach the editor operator before the watermark that closes
        # the window (udfs/correlator.py), so the partners of a window are judged first.
        findings: dict = defaultdict(list)
        for partner in sorted(partners):
            detail, last_status[partner], hurt = partner_window_check(end, size_ms, partner_windows[(partner, end)],
                                                                      last_status.get(partner), partner_config)
            for f in hurt:
                findings[f["editor_id"]].append(f)
            if detail is not None:
                bus.append({"source": PARTNER_HEALTH[0], "detail-type": PARTNER_HEALTH[1], "detail": detail})
        for editor in sorted(editors):
            # The correlator sees the events that reached it before the window's timer, those its state
            # still holds (EditorStateEvents: the cause horizon, the cap of each kind), in the window's look-back.
            kept = held[editor].when_decided(end)
            seen = [e for e in events_by_editor.get(editor, ())
                    if id(e) in kept and e["timestamp_ms"] >= end - params.events_lookback_s * 1000 - size_ms]
            detail, unexplained[editor] = editor_window_composite(end, size_ms, editor_windows[(editor, end)],
                                                                  seen + findings.get(editor, []), config,
                                                                  unexplained.get(editor))
            if detail is not None:
                detail, episodes[editor] = composite_episode(detail, end, size_ms, episodes.get(editor))
                bus.append({"source": COMPOSITE[0], "detail-type": COMPOSITE[1], "detail": detail})
    bus += security_events(windows.events, params.security_min_severity)
    return bus


class EditorStateEvents:
    """The events (own and routed ones) an editor operator's state holds when it decides each window, as
    udfs/correlator.EditorCorrelator.process_element2 keeps them: each event, as it arrives (in
    ``arrived_at_watermark`` order; None: before the first watermark), is added, those older than the
    cause horizon at that watermark are dropped (udfs.decisions.cause_horizon), and each kind is capped
    (udfs.decisions.bounded_events). A window, decided when its timer (end - 1 + grace) fires, holds what
    arrived before the watermark reached it. Ask for the windows in the order of their ends.

    >>> e = [{"event_type": "config_change", "timestamp_ms": t, "editor_id": "e-1", "partner": None,
    ...       "arrived_at_watermark": 1_000_000} for t in range(1_000_000, 1_000_205)]     # 200 are kept
    >>> state = EditorStateEvents(e, 300_000, 0, 1_800_000)
    >>> state.when_decided(900_000)
    set()
    >>> held = state.when_decided(1_200_000)
    >>> len(held), id(e[0]) in held, id(e[-1]) in held
    (200, False, True)
    """

    def __init__(self, events: list[dict], size_ms: int, grace_ms: int, lookback_ms: int):
        self._order = sorted(events, key=lambda e: -math.inf if e["arrived_at_watermark"] is None
                             else e["arrived_at_watermark"])
        self._size_ms, self._grace_ms, self._lookback_ms = size_ms, grace_ms, lookback_ms
        self._arrived = 0
        self._held: list[dict] = []

    def when_decided(self, end_ms: int) -> set[int]:
        """The ids of the events held when the window ending at ``end_ms`` is decided."""
        order = self._order
        while self._arrived < len(order) and arrived_before(order[self._arrived], end_ms, self._grace_ms):
            e = order[self._arrived]
            self._arrived += 1
            wm = e["arrived_at_watermark"]
            horizon = -math.inf if wm is None else cause_horizon(wm, self._size_ms, self._grace_ms, self._lookback_ms)
            self._held = bounded_events([h for h in self._held + [e] if h["timestamp_ms"] >= horizon])
        return {id(h) for h in self._held}


def arrived_before(event: dict, window_end_ms: int, grace_ms: int) -> bool:
    """Whether the editor operator has ``event`` when it decides the window: read before the watermark
    reached the window's timer (end - 1 + grace)."""
    return event["arrived_at_watermark"] is None or event["arrived_at_watermark"] < window_end_ms - 1 + grace_ms


def routed_partner_events(events: list[dict], partner_editors: dict, retention_ms: int,
                          horizon_ms: int) -> list[dict]:
    """Partner-wide events as udfs.correlator.PartnerHealth passes them on: a ``partner_status`` or a
    change that names a partner and no editor (udfs.decisions.is_partner_wide) goes to the partner's
    editors by :func:`routed_copies` (their windows through the partner). Each copy is keyed by its
    editor (``routed_to``); like the job's, it names no editor.

    >>> ends = {"p-1": {600_000: {"e-1", "e-2"}, 900_000: {"e-1"}, 1_200_000: {"e-3"}}}
    >>> e = {"event_type": "partner_status", "timestamp_ms": 700_000, "editor_id": None, "partner": "p-1",
    ...      "arrived_at_watermark": 650_000}
    >>> [(c["routed_to"], c["arrived_at_watermark"]) for c in routed_partner_events([e], ends, 0, 2_100_000)]
    [('e-1', 650000), ('e-2', 650000), ('e-3', 1199998)]
    >>> [(c["routed_to"], c["arrived_at_watermark"]) for c in routed_partner_events(
    ...     [dict(e, arrived_at_watermark=None)], ends, 0, 2_100_000)]
    [('e-1', 599998), ('e-2', 599998), ('e-3', 1199998)]
    """
    ends_by_partner: dict = {}      # partner -> editor -> its window ends through the partner
    for partner, by_end in partner_editors.items():
        ends_by_partner[partner] = defaultdict(list)
        for end, editors in by_end.items():
            for editor in editors:
                ends_by_partner[partner][editor].append(end)
    return [copy for e in events if is_partner_wide(e["event_type"], e["editor_id"], e["partner"])
            for copy in routed_copies(e, ends_by_partner.get(e["partner"], {}), retention_ms, horizon_ms)]


def routed_platform_events(events: list[dict], editor_ends: dict, retention_ms: int, horizon_ms: int) -> list[dict]:
    """Platform-wide events as udfs.platform_events.PlatformEvents passes them on: an event that names
    neither an editor nor a partner goes to every editor by :func:`routed_copies` (its windows).

    >>> ends = {"e-1": [600_000, 900_000], "e-2": [1_200_000]}
    >>> e = {"event_type": "deployment", "timestamp_ms": 700_000, "editor_id": None, "partner": None,
    ...      "arrived_at_watermark": 650_000}
    >>> [(c["routed_to"], c["arrived_at_watermark"]) for c in routed_platform_events([e], ends, 0, 2_100_000)]
    [('e-1', 650000), ('e-2', 1199998)]
    >>> routed_platform_events([e], ends, 0, 400_000)[1:]     # e-2 comes too late for it
    []
    """
    return [copy for e in events if is_platform_wide(e["event_type"], e["editor_id"], e["partner"])
            for copy in routed_copies(e, editor_ends, retention_ms, horizon_ms)]


def routed_copies(e: dict, editor_ends: dict, retention_ms: int, horizon_ms: int) -> list[dict]:
    """The copies of a routed event (partner-wide or platform-wide), as the job's operators pass it on:
    to each editor with a window closed when it is read (and not a retention before), and to each
    other editor with its first window after that, if the event is then less than ``horizon_ms`` (the
    look-back and a window) behind that window's end; that editor sees it from that window on.
    ``editor_ends``: editor -> the ends of the windows the operator sees of it.

    The operators take the horizon at the watermark a new editor's row arrives at, a little before that
    window's end, so they can pass on an event that this leaves out: one too old for any window of the
    editor to name, which changes no decision.
    """
    copies = []
    wm = e["arrived_at_watermark"]
    for editor in sorted(editor_ends):
        ends = sorted(editor_ends[editor])
        closed = 0 if wm is None else bisect.bisect_right(ends, wm + 1)     # ends[:closed]: end - 1 <= wm
        if closed and serves(ends[closed - 1], wm, retention_ms):     # the operators' own rule
            copies.append(dict(e, routed_to=editor, arrived_at_watermark=wm))
        elif closed < len(ends) and e["timestamp_ms"] >= ends[closed] - horizon_ms:
            # passed on with that window's row, before the watermark that closes it
            copies.append(dict(e, routed_to=editor, arrived_at_watermark=ends[closed] - 2))
    return copies


def security_events(events: list[dict], min_severity: float) -> list[dict]:
    """udfs/security.py's findings at or above the severity bar, in the bus shape."""
    out = []
    for e in events:
        detail = security_detail(e["event_type"], e["timestamp_ms"], e["editor_id"], e["partner"], e["severity"],
                                 e["details"], min_severity)
        if detail is not None:
            out.append({"source": SECURITY[0], "detail-type": SECURITY[1], "detail": detail})
    return out


def evaluate_offline(archive: str | Path, labels: str | Path | None = None, *, params: JobParameters | None = None,
                     cache_dir: str | Path | None = None, scenario_json: str | Path | None = None,
                     classifier_config: ClassifierConfig | None = None) -> dict:
    """Steps 1-5: the evaluation report of flink_jobs.evaluate, computed offline."""
    from flink_jobs.evaluate import surge_spans_from_scenario, quiet_spans_from_scenario, warmup_end_from_scenario

    archive = Path(archive)
    params = params or JobParameters.from_job_config()
    labels = Path(labels) if labels else archive / "labels.jsonl"
    scenario_json = Path(scenario_json) if scenario_json else archive / "scenario.json"
    windows = read_windows(archive, params)
    results = score_series(windows, params, _cache_file(Path(cache_dir) if cache_dir else None, archive, params))
    bus = decide(windows, results, params, classifier_config)
    alerts = alerts_from_events(bus)
    warmup_end = warmup_end_from_scenario(scenario_json) if scenario_json.exists() else None
    report = score(load_labels(labels), alerts, window_s=float(params.window_size_s),
                   quiet_spans=surge_spans_from_scenario(scenario_json) if scenario_json.exists() else None,
                   warmup_end_s=warmup_end, editor_days=windows.editor_days(since_s=warmup_end),
                   editor_days_including_warmup=windows.editor_days(), samples=windows.sample_times.sorted())
    if scenario_json.exists():
        quiet = quiet_spans_from_scenario(scenario_json) or {}
        report["quiet_editors_any_time"] = {"editors": len(quiet),
                                            "alerts": sum(1 for a in alerts if a.editor_id in quiet)}
    report["run"] = {"mode": "offline", "archive": str(archive), "labels": str(labels),
                     "metric_records": windows.metric_records, "late_records": windows.late_records,
                     "future_records": windows.future_records,
                     "editors": len(windows.editors), "keys_scored": len(windows.series),
                     "bus_events": len(bus)}
    report["events"] = bus
    return report


def main(argv: list[str] | None = None) -> int:
    from flink_jobs.evaluate import headline

    parser = argparse.ArgumentParser(prog="python -m flink_jobs.evaluation.offline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", required=True, help="simulator output / archive directory")
    parser.add_argument("--labels", help="labels.jsonl (default: ARCHIVE/labels.jsonl)")
    parser.add_argument("--scenario", help="scenario.json (default: ARCHIVE/scenario.json when present)")
    parser.add_argument("--cache", help="directory caching the models' outputs per archive and detector settings")
    parser.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="job property override, as for flink_jobs.main")
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args(argv)
    report = evaluate_offline(args.archive, args.labels, params=JobParameters.from_job_config(args.set),
                              cache_dir=args.cache, scenario_json=args.scenario)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(headline(report))
    missed = [o for o in report["outcomes"] if not o["detected"] or o["predicted_type"] != o["problem_type"]]
    for o in missed:
        print(f"  {o['problem_type']:<22} {o['scope']:<8} {o['entity']:<14} {o['start']} -> {o['predicted_type']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
