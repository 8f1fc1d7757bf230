"""What the window operators decide, as pure functions (no pyflink).

udfs/correlator.py keeps the Flink state (pending window results, the editor's
recent events, the partner's last status) and calls these when an editor window is
decided (on arrival, or when its timer fires) and when a partner's window row
arrives; flink_jobs/evaluation/offline.py replays an archive through the very same
functions, so the fast offline evaluation cannot drift from the job.

A *result* is one metric's score from udfs/metric_detector.WindowScoring, a dict
(``scope_id, metric, window_end_ms, value, baseline, lower, upper, score,
is_anomaly, sample_count, editors``); for partner windows ``editors`` is the
one editor whose traffic through the partner the row summarises.
"""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from typing import Any, Iterable, Mapping

from detectors.classifier import DEMAND_ISSUE, UNKNOWN, ClassifierConfig, MetricDeviation, classify
from detectors.events import CHANGE_EVENT_TYPES, OperationalEvent, iso_z, routed_scope
from detectors.incident import EPISODE_MAX_GAP_WINDOWS, build_composite_detail, next_episode, stable_id, with_episode
from detectors.partner_health import (HEALTHY, PartnerHealthConfig, assess_partner_window, editor_level,
                                      hurt_editor_findings, judged_against_references, next_outage)

log = logging.getLogger(__name__)

RESULT_KEYS = ("scope_id", "metric", "window_end_ms", "value", "baseline", "lower", "upper", "score",
               "is_anomaly", "sample_count", "editors")

#: The event type of a partner finding (:func:`partner_window_check`): what a partner did to one
#: editor in one window, passed from the partner operator to the editor operator beside the
#: editor's operational events. Not an event type of the input contract, so a record of the
#: events stream cannot pose as one (sql/parse/events.sql dead-letters unknown types).
PARTNER_FINDING = "partner_health"

#: Event types that, naming a partner and no editor, are about every editor the partner serves, passed
#: on to them by the partner operator: the partner's own status report, and a change made for the partner
#: (its floors, its timeout, its adapter's deployment, a flag for its traffic). Each editor trading with
#: the partner is as exposed to such a change as every editor is to a platform-wide one
#: (:data:`PLATFORM_WIDE_EVENT_TYPES`). Not a ``security_finding``: one naming a partner is forwarded as
#: a security incident, but a demand partner's finding (malvertising in its creatives, say) is no
#: evidence of invalid traffic on its editors' pages, which is what a finding corroborates.
PARTNER_WIDE_EVENT_TYPES = frozenset({"partner_status"}) | CHANGE_EVENT_TYPES


def is_partner_wide(event_type: str, editor_id: str | None, partner: str | None) -> bool:
    """Whether an operational event is about every editor of the partner it names (udfs/correlator.py,
    PartnerHealth; the offline replay's routed_partner_events). The parse refuses empty ids.

    >>> is_partner_wide("partner_status", None, "p-1"), is_partner_wide("partner_status", "e-1", "p-1")
    (True, False)
    >>> is_partner_wide("config_change", None, "p-1"), is_partner_wide("partner_status", None, None)
    (True, False)
    >>> is_partner_wide("security_finding", None, "p-1")     # forwarded as a security incident only
    False
    """
    return editor_id is None and partner is not None and event_type in PARTNER_WIDE_EVENT_TYPES


#: Event types that, naming neither an editor nor a partner, are a change of the whole network, passed
#: by the platform operator to every editor. Not a ``partner_status`` (it must name its partner), nor a
#: ``security_finding``: one is forwarded as a security incident, but as every editor's corroboration
#: of invalid traffic it would tilt every editor's impressions surge towards a SECURITY_ISSUE.
PLATFORM_WIDE_EVENT_TYPES = CHANGE_EVENT_TYPES

#: The ``payload`` of a routed event as passed to one editor (with the window it is for, :func:`routed_payload`):
#: a partner's own report (udfs/correlator.py, PartnerHealth) or a platform-wide change (udfs/platform_events.py).
#: The editor operator stores it without an editor, as it was sent (the copy's ``editor_id`` is only its key);
#: it reads no other payload.
ROUTED_PARTNER_EVENT = "routed-partner-event"
ROUTED_PLATFORM_EVENT = "routed-platform-event"


def routed_payload(marker: str, from_window_end_ms: int | None = None) -> str:
    """The payload of a routed copy: its marker and, for a copy passed on with the row of an editor's
    first window (an editor new to the partner or the network), that window's end: the copy is for that
    window and later ones, not for an earlier window of the editor still waiting for its timer (a
    watermark that jumps over both windows brings the copy before that timer fires).

    >>> routed_payload(ROUTED_PARTNER_EVENT), routed_payload(ROUTED_PLATFORM_EVENT, 600000)
    ('routed-partner-event', 'routed-platform-event@600000')
    >>> read_routed_payload('routed-platform-event@600000'), read_routed_payload('{"event_type": "deployment"}')
    (('routed-platform-event', 600000), (None, None))
    """
    return marker if from_window_end_ms is None else f"{marker}@{from_window_end_ms}"


def read_routed_payload(payload: str | None) -> tuple[str | None, int | None]:
    """(marker, first window end) of a routed copy's payload; (None, None) for an event of the stream
    (whose payload is its raw JSON)."""
    marker, at, end = (payload or "").partition("@")
    if marker not in (ROUTED_PARTNER_EVENT, ROUTED_PLATFORM_EVENT):
        return None, None
    return marker, int(end) if at and end.isdigit() else None


def read_stored_events(text: str | None) -> list[dict]:
    """The editor operator's ``events`` state as a list; [] for none.

    A state that Python's JSON reader cannot read for its nesting (RecursionError) can only come from
    a version before details_of bounded the depth of details; that version failed at the window
    anyway. It is dropped, with a warning, so the job does not fail on it at every restore.

    >>> read_stored_events(None), read_stored_events('[{"event_type": "deployment"}]')
    ([], [{'event_type': 'deployment'}])
    """
    if not text:
        return []
    try:
        return json.loads(text)
    except RecursionError:
        log.warning("events state dropped: nested too deep to read (%d characters, starting %r)",
                    len(text), text[:200])
        return []


def events_for_window(events: list[dict], window_end_ms: int) -> list[dict]:
    """An editor's stored events as its window ending ``window_end_ms`` sees them: without the routed
    copies meant for its later windows only (``from_window_end_ms``, :func:`routed_payload`).

    >>> e = {"event_type": "deployment", "timestamp_ms": 1, "editor_id": None, "partner": None}
    >>> events_for_window([dict(e, from_window_end_ms=600)], 600)
    [{'event_type': 'deployment', 'timestamp_ms': 1, 'editor_id': None, 'partner': None}]
    >>> events_for_window([dict(e, from_window_end_ms=900)], 600)
    []
    """
    out = []
    for e in events:
        from_end = e.get("from_window_end_ms")
        if from_end is not None:
            if from_end > window_end_ms:
                continue
            e = {k: v for k, v in e.items() if k != "from_window_end_ms"}
        if _container_depth(e.get("details")) > MAX_DETAILS_DEPTH:
            # Stored by a version before details_of bounded the depth: the classifier would recurse
            # through it (RecursionError at every restore); its text is not rebuilt, for the same reason.
            e = dict(e, details={"details_unread": f"nested deeper than {MAX_DETAILS_DEPTH} levels"})
        out.append(e)
    return out


def is_platform_wide(event_type: str, editor_id: str | None, partner: str | None) -> bool:
    """Whether an operational event is a change of the whole network: it names neither an editor nor a
    partner (a deployment of the ad server, say), so udfs/platform_events.PlatformEvents passes it to every
    editor (the offline replay's routed_platform_events).

    >>> is_platform_wide("deployment", None, None), is_platform_wide("deployment", "e-1", None)
    (True, False)
    >>> is_platform_wide("config_change", None, "p-1"), is_platform_wide("partner_status", None, None)
    (False, False)
    >>> is_platform_wide("security_finding", None, None)     # forwarded as a security incident only
    False
    """
    return editor_id is None and partner is None and event_type in PLATFORM_WIDE_EVENT_TYPES


#: At most this many partner-wide or platform-wide events are kept for editors not told of them yet (the newest).
MAX_HELD_EVENTS = 200


def serves(last_window_end_ms: int | None, watermark_ms: int, retention_ms: int) -> bool:
    """Whether an editor whose last window (through a partner, or at all) ended at ``last_window_end_ms``
    is served at ``watermark_ms``: that window less than the idle retention before (0: any). The partner
    and platform operators pass an event on arrival to the editors they serve. Their last window is the
    last whose row they have read, which can still be open when the watermark jumps over several windows;
    the offline replay's routed_copies takes the last closed one, so in such a jump the two can differ in
    which of an editor's windows still waiting for their timers see the event (as they can for the
    editor's own events, which the replay takes at the watermark they were read at).

    >>> serves(600_000, 600_000 + 3_600_000 - 1, 3_600_000), serves(600_000, 600_000 + 3_600_000, 3_600_000)
    (True, False)
    """
    return not retention_ms or last_window_end_ms is None or last_window_end_ms + retention_ms > watermark_ms


def cause_horizon(watermark_ms: int, window_size_ms: int, grace_ms: int, lookback_ms: int) -> int:
    """The oldest event time a window not decided yet at ``watermark_ms`` can still name as a cause: its
    timer (end - 1 + grace) is after the watermark, and it looks back from its start. The editor
    operator keeps its events from it; the partner and platform operators keep their events for
    editors they have not told yet from it.

    >>> cause_horizon(10_000_000, 300_000, 1, 1_800_000)
    7899999
    """
    return watermark_ms - grace_ms - lookback_ms - window_size_ms


def kept_since(events: list, horizon_ms: int) -> list:
    """The held events (lists of the events input's first six fields: type, time, ...) stamped at or after
    ``horizon_ms``, the newest :data:`MAX_HELD_EVENTS`.

    >>> kept_since([["deployment", 1000, None, None, None, "{}"], ["feature_flag", 3000, None, None, None, "{}"]], 2000)
    [['feature_flag', 3000, None, None, None, '{}']]

    Newest by their time, not by when they came (an event read late is not newer for it), in the
    order they came:

    >>> late = [["deployment", 9000 - t, None, None, None, "{}"] for t in range(MAX_HELD_EVENTS)]
    >>> kept = kept_since(late + [["feature_flag", 1, None, None, None, "{}"]], 0)
    >>> len(kept), kept[0][1], min(e[1] for e in kept)
    (200, 9000, 8801)
    """
    return _newest([e for e in events if e[1] >= horizon_ms], MAX_HELD_EVENTS, lambda e: e[1])


def _newest(items: list, limit: int, time_of) -> list:
    """The ``limit`` items with the latest times (the later-come first among equal times), in their order."""
    if len(items) <= limit:
        return items
    keep = sorted(sorted(range(len(items)), key=lambda i: time_of(items[i]))[-limit:])
    return [items[i] for i in keep]


#: At most this many of an editor's own operational events, as many partner findings, as many of its
#: partners' routed reports, as many changes made for its partners and as many platform-wide events, in its
#: state (bounded_events).
MAX_KEPT_EVENTS = 200


def bounded_events(events: list[dict]) -> list[dict]:
    """The newest :data:`MAX_KEPT_EVENTS` own events, as many partner findings, as many of the
    partners' status reports, as many changes made for its partners and as many platform-wide
    events (the last three routed, without an editor), in their order. Newest by their time: until
    2026-12-07 by when they came, so an old event read late pushed out a newer one.

    Capped apart: an editor hurt through every partner gets one finding per partner and window,
    which under one shared cap pushed its own deployment out of the look-back (35 partners did);
    an editor served by many partners gets each one's status reports, and the changes made for
    them (a partner's floors changed often would otherwise push its DEGRADED report out).

    >>> own = [{"event_type": "deployment", "timestamp_ms": 0, "editor_id": "e-1"}]
    >>> findings = [{"event_type": PARTNER_FINDING, "timestamp_ms": t, "editor_id": "e-1"} for t in range(1, 301)]
    >>> reports = [{"event_type": "partner_status", "timestamp_ms": t, "editor_id": None, "partner": "p-1"}
    ...            for t in range(1, 301)]
    >>> platform = [{"event_type": "deployment", "timestamp_ms": 400, "editor_id": None, "partner": None}]
    >>> changes = [{"event_type": "config_change", "timestamp_ms": 500 + t, "editor_id": None, "partner": "p-1"}
    ...            for t in range(300)]
    >>> kept = bounded_events(own + findings + reports + platform + changes)
    >>> kept[0]["event_type"], len(kept), kept[1]["timestamp_ms"], kept[401]["partner"], kept[-1]["timestamp_ms"]
    ('deployment', 602, 101, None, 799)
    >>> sum(e["event_type"] == "partner_status" for e in kept)
    200

    An old event read late does not push a newer one out:

    >>> newest_first = [{"event_type": "deployment", "timestamp_ms": 1000 - t, "editor_id": "e-1"}
    ...                 for t in range(MAX_KEPT_EVENTS)]
    >>> kept = bounded_events(newest_first + [{"event_type": "deployment", "timestamp_ms": 1, "editor_id": "e-1"}])
    >>> len(kept), max(e["timestamp_ms"] for e in kept), min(e["timestamp_ms"] for e in kept)
    (200, 1000, 801)
    """
    def kind(e: dict) -> int:
        # a partner's changing floors keep its reports (scopes 1 and 2 apart)
        return -1 if e["event_type"] == PARTNER_FINDING else routed_scope(e["event_type"], e.get("editor_id"),
                                                                          e.get("partner"))

    kept = [i for k in (-1, 0, 1, 2, 3)
            for i in _newest([i for i, e in enumerate(events) if kind(e) == k], MAX_KEPT_EVENTS,
                             lambda i: events[i]["timestamp_ms"])]
    return [events[i] for i in sorted(kept)]


def deviation_of(r: Mapping[str, Any]) -> MetricDeviation:
    nan = float("nan")
    return MetricDeviation(
        r["metric"], r["value"],
        nan if r["baseline"] is None else r["baseline"],
        nan if r["lower"] is None else r["lower"],
        nan if r["upper"] is None else r["upper"],
        r["score"], r["is_anomaly"],
    )


def result_of(scope_id: str, window_end_ms: int, deviation: MetricDeviation, sample_count: int = 1,
              editor: str | None = None) -> dict:
    """The result dict (RESULT_KEYS) of one metric's deviation: the inverse of :func:`deviation_of`,
    for callers that start from deviations (tests, what-if replays).

    >>> d = MetricDeviation("rpm", 1.2, 2.5, 2.1, 2.9, 0.97, True)
    >>> deviation_of(result_of("e-1", 1793520300000, d)) == d
    True
    """
    finite = lambda x: x if x is not None and math.isfinite(x) else None
    return dict(zip(RESULT_KEYS, (scope_id, deviation.metric, window_end_ms, deviation.value, finite(deviation.baseline),
                                  finite(deviation.lower), finite(deviation.upper), deviation.score,
                                  deviation.is_anomaly, sample_count, editor)))


def event_of(d: Mapping[str, Any]) -> OperationalEvent:
    return OperationalEvent(d["event_type"], d["timestamp_ms"] / 1000.0, d.get("editor_id"), d.get("partner"),
                            d.get("severity"), d.get("details") or {})


def editor_window_composite(window_end_ms: int, window_size_ms: int, results: list[Mapping[str, Any]],
                            events: Iterable[Mapping[str, Any]], config: ClassifierConfig,
                            unexplained_end_ms: int | None = None) -> tuple[dict | None, int | None]:
    """(Composite Anomaly detail for one editor's closed window or None, the ``unexplained_end_ms`` to remember).

    Classified only when some metric is anomalous; reported only when the
    classifier calls it an incident. ``events`` are the editor's stored events
    (dicts with ``timestamp_ms``); those after the window end are ignored.

    An incident that fits no known signature (UNKNOWN) is reported only when the
    previous window was one too (``unexplained_end_ms`` is that window's end, the
    operator's state): adverse moves that match no pattern are mostly one-window
    noise -- a rate averaged over whichever partners happened to report in the
    window, a count on a small editor -- while a real problem lasts (labelled
    incidents run 15-90 min). Typed incidents are reported at once.
    """
    if not results or not any(r["is_anomaly"] for r in results):
        return None, None
    editor = results[0]["scope_id"]
    deviations = {r["metric"]: deviation_of(r) for r in results}
    window_events, findings = [], []
    for e in events:
        if e["event_type"] != PARTNER_FINDING:
            if e["timestamp_ms"] < window_end_ms:  # half-open, as classifier.linked_events says
                window_events.append(event_of(e))
        elif window_end_ms - window_size_ms < e["timestamp_ms"] <= window_end_ms:
            findings.append(event_of(e))
    window_end_s, window_start_s = window_end_ms / 1000.0, (window_end_ms - window_size_ms) / 1000.0
    # Partner findings do not take part in the classification: an editor's own latency problem
    # hurts it through every partner, and a partner_status-like cause would pull it to DEMAND.
    classification = classify(deviations, window_events, config, window_end_s=window_end_s)
    if not classification.is_incident:
        return None, None
    if classification.problem_type == UNKNOWN:
        if unexplained_end_ms != window_end_ms - window_size_ms:
            return None, window_end_ms
        remember = window_end_ms
    else:
        remember = None
    # A demand problem names the partners that hurt the editor in this window (their findings), and so does
    # an anomaly no pattern explains: they are its only lead (an editor's timeouts up through a partner that
    # is down, and little else moved). The other types' findings are symptoms of the editor's own problem.
    partner_findings = findings if classification.problem_type in (DEMAND_ISSUE, UNKNOWN) else ()
    return build_composite_detail(editor, window_start_s, window_end_s, deviations, window_events,
                                  classification, config, partner_findings=partner_findings), remember


def composite_episode(detail: dict, window_end_ms: int, window_size_ms: int,
                      previous_state: str | None) -> tuple[dict, str]:
    """(the composite with its ``episode`` block, the editor's episode state to remember) for a
    composite that :func:`editor_window_composite` returned (detectors.incident.next_episode).

    The state is one string per editor, the operator's ValueState ``episode``; None starts one.

    >>> d = {"incident_id": "inc-a", "severity": "HIGH", "summary": "DEMAND_ISSUE on e-1."}
    >>> d, state = composite_episode(d, 1793520300000, 300000, None)
    >>> d2, state = composite_episode({"incident_id": "inc-b", "severity": "HIGH", "summary": "DEMAND_ISSUE on e-1."},
    ...                               1793520600000, 300000, state)
    >>> d2["episode"]["episode_id"], d2["episode"]["composites"], d2["summary"]
    ('inc-a', 2, 'DEMAND_ISSUE on e-1. Ongoing since 08:00Z: composite 2 of this episode.')
    """
    previous = json.loads(previous_state) if previous_state else None
    block, state = next_episode(previous, detail["incident_id"], (window_end_ms - window_size_ms) / 1000.0,
                                window_end_ms / 1000.0, detail["severity"],
                                EPISODE_MAX_GAP_WINDOWS * window_size_ms / 1000.0)
    return with_episode(detail, block), json.dumps(state, separators=(",", ":"), sort_keys=True)


def partner_window_check(window_end_ms: int, window_size_ms: int, results: list[Mapping[str, Any]],
                         previous_state: str | None,
                         config: PartnerHealthConfig | None = None) -> tuple[dict | None, str, list[dict]]:
    """(Partner Health Check detail to emit or None, the partner state to remember, the partner
    findings) for one partner's window.

    Each editor's traffic through the partner is judged against that editor's
    own baseline (while it stays hurt, the one of the window it was first hurt in),
    and the revenue impact is the shortfall of the hurt editors' revenue through the
    partner against their baselines of that window
    (detectors.partner_health.assess_partner_window). A check is
    emitted when the partner is not HEALTHY, and once more when it recovers
    (the all-clear); a healthy steady state is silent.

    The state (one string, the operator's ValueState) is the last status, plus,
    while editors are hurt, their held references, and while the partner is not HEALTHY,
    its outage (:func:`partner_state`). Every check that is not HEALTHY carries the outage it
    belongs to, and the all-clear the outage it ends (detectors.partner_health.next_outage).

    The findings are one event dict (type :data:`PARTNER_FINDING`, the events input's shape)
    per editor the partner hurts in the window, whatever the partner's own status
    (detectors.partner_health.hurt_editor_findings): the editor operator gets them beside
    the editor's operational events, so a composite names the partner even when it serves
    that editor alone and cannot be judged across editors.
    """
    previous_status, held, outage, previous_levels, last_window_end = partner_state_fields(previous_state)
    if not results:
        return None, partner_state(previous_status, held, outage, previous_levels, last_window_end), []
    config = config or PartnerHealthConfig()
    partner = results[0]["scope_id"]
    by_editor: dict[str, dict[str, MetricDeviation]] = defaultdict(dict)
    for r in results:
        by_editor[r["editors"] or ""][r["metric"]] = deviation_of(r)
    judged = judged_against_references(by_editor, held)
    levels = {editor: editor_level(per_metric, config) for editor, per_metric in judged.items()}
    # Editors hurt before that sent nothing through the partner in this window (a gap in their
    # samples) still count, at their last level, for up to ABSENT_WINDOWS_COUNTED windows of time:
    # the windows the whole partner sent nothing in count too, so after a gap in its traffic its
    # editors hurt before it do not count again. (Their held references stay, expiring as they do: an
    # editor back from the gap still hurt is judged against its baseline from before the outage.)
    elapsed = 1
    if last_window_end is not None and window_end_ms > last_window_end:
        elapsed = max(1, round((window_end_ms - last_window_end) / window_size_ms))
    absent = {editor: (level, windows + elapsed) for editor, (level, windows) in previous_levels.items()
              if editor not in by_editor and windows + elapsed <= ABSENT_WINDOWS_COUNTED}
    window_start_s = (window_end_ms - window_size_ms) / 1000.0
    detail, references = assess_partner_window(partner, window_start_s, window_end_ms / 1000.0, judged, held,
                                               config, editor_levels=levels,
                                               absent={e: level for e, (level, _) in absent.items()})
    status = detail["partner_status"]
    block, outage = next_outage(outage, detail["check_id"], window_start_s, status)
    if block is not None:
        detail["outage"] = block
    hurt_levels = {**{e: (level, 0) for e, (level, _) in levels.items() if level >= 1}, **absent}
    state = partner_state(status, references, outage, hurt_levels, window_end_ms)
    findings = [partner_finding_event(window_end_ms, f)
                for f in hurt_editor_findings(partner, window_start_s, levels, status)]
    if status == HEALTHY and previous_status == HEALTHY:
        return None, state, findings
    return detail, state, findings


def partner_finding_event(window_end_ms: int, finding: Mapping[str, Any]) -> dict:
    """A hurt-editor finding as an event of the editor operator's events input, stamped with the window end.

    >>> e = partner_finding_event(1793527800000, {"editor_id": "e-1", "partner": "p-1", "status": "UNHEALTHY"})
    >>> e["event_type"], e["timestamp_ms"], e["editor_id"], e["partner"], e["details"]
    ('partner_health', 1793527800000, 'e-1', 'p-1', {'status': 'UNHEALTHY'})
    """
    details = {k: v for k, v in finding.items() if k not in ("editor_id", "partner")}
    return {"event_type": PARTNER_FINDING, "timestamp_ms": int(window_end_ms), "editor_id": finding["editor_id"],
            "partner": finding["partner"], "severity": None, "details": details}


#: Windows an editor hurt through a partner may send nothing through it and still count, at its
#: last level (udfs.decisions.partner_window_check): a gap in one editor's samples must not end
#: the partner's outage with an all-clear and open a new one a window later.
ABSENT_WINDOWS_COUNTED = 2


def partner_state(status: str, references: Mapping[str, tuple], outage: Mapping[str, Any] | None = None,
                  hurt_levels: Mapping[str, tuple[int, int]] | None = None, window_end_ms: int | None = None) -> str:
    """The partner operator's state: the bare status while no editor is hurt and no outage is on (the
    healthy steady state, and the form states restored from before references existed have), else
    JSON with the held references (detectors.partner_health.HeldReference: each hurt editor's revenue
    reference and windows held, and, for those that have them, its signals' (baseline, lower, upper))
    and the outage (detectors.partner_health.next_outage), each hurt editor's (level, windows
    it has been absent), and the end of the partner's window it was written for
    (:func:`partner_state_fields`).

    >>> partner_state("HEALTHY", {})
    'HEALTHY'
    >>> held = {"e-1": (2.5, 3, {"bid_rate": (0.6, 0.5, 0.7)}), "e-2": (None, 1, None)}
    >>> outage = {"outage_id": "phc-a", "started_at_s": 0.0, "checks": 2, "worst": "UNHEALTHY"}
    >>> read_partner_state(partner_state("UNHEALTHY", held, outage)) == ("UNHEALTHY", held, outage)
    True
    """
    if not references and not outage and not hurt_levels:
        return status
    entries = dict(sorted(references.items()))
    state: dict = {"status": status, "revenue_reference": {e: [r, n] for e, (r, n, _) in entries.items()}}
    signals = {e: {m: list(ref) for m, ref in refs.items()} for e, (_, _, refs) in entries.items() if refs}
    if signals:
        state["signal_reference"] = signals
    if outage:
        state["outage"] = dict(outage)
    if hurt_levels:
        state["hurt_levels"] = {e: list(v) for e, v in sorted(hurt_levels.items())}
    if window_end_ms is not None:
        state["window_end_ms"] = int(window_end_ms)
    return json.dumps(state, separators=(",", ":"))


def read_partner_state(text: str | None) -> tuple[str, dict[str, tuple], dict | None]:
    """(last status, held references, outage or None) from :func:`partner_state`'s string; None is a
    healthy start. A state from before the signals' references or the outages holds none of them.

    >>> read_partner_state('{"status":"DEGRADED","revenue_reference":{"e-1":[2.0,6]}}')
    ('DEGRADED', {'e-1': (2.0, 6, None)}, None)
    """
    return partner_state_fields(text)[:3]


def partner_state_fields(text: str | None) -> tuple[str, dict[str, tuple], dict | None, dict[str, tuple[int, int]],
                                                    int | None]:
    """:func:`read_partner_state`'s three, each editor hurt in the partner's last windows with
    (its level, windows it has sent nothing since; none in a state from before they were kept), and
    the end of the window the state was written for (None in the bare form, and in a state from
    before it was kept), from one parse of the state.

    >>> partner_state_fields(partner_state("UNHEALTHY", {}, None, {"e-1": (2, 0), "e-2": (1, 1)}, 1793520300000))[3:]
    ({'e-1': (2, 0), 'e-2': (1, 1)}, 1793520300000)
    >>> partner_state_fields("HEALTHY")[3:], partner_state_fields(None)[3:]
    (({}, None), ({}, None))
    """
    if not text:
        return HEALTHY, {}, None, {}, None
    if not text.startswith("{"):
        return text, {}, None, {}, None
    state = json.loads(text)
    signals = state.get("signal_reference") or {}
    held = {e: (r, int(n), {m: tuple(ref) for m, ref in signals[e].items()} if signals.get(e) else None)
            for e, (r, n) in (state.get("revenue_reference") or {}).items()}
    hurt_levels = {e: (int(level), int(windows)) for e, (level, windows) in (state.get("hurt_levels") or {}).items()}
    return state.get("status") or HEALTHY, held, state.get("outage"), hurt_levels, state.get("window_end_ms")


#: Deeper ``details`` are kept as their text (details_of): Flink's JSON reader accepts nesting up to
#: Jackson's 1,000 levels, Python's recursive reader and writer fail near there (RecursionError),
#: and the classifier walks details recursively when it describes an event.
MAX_DETAILS_DEPTH = 32
DETAILS_TEXT_KEPT = 1000


def details_of(text: str | None) -> dict:
    """An event's ``details`` JSON text as a dict (a non-object value wrapped, bad JSON dropped).

    A number too large for a double (``1e999``, valid JSON) reads as infinity, which JSON cannot
    carry on to the bus: it is kept as its text instead.

    >>> details_of('{"floor": 1e999, "n": [2, -1e999]}')
    {'floor': '1e999', 'n': [2, '-1e999']}

    Details nested deeper than MAX_DETAILS_DEPTH levels are kept as the start of their text, so that
    no later step recurses through them (a payload nested 993-997 levels deep, which the SQL parse
    accepts, raised RecursionError in the editor operator on every restore):

    >>> deep = details_of('{"a":' * 40 + '1' + '}' * 40)
    >>> deep["details_unread"], deep["text"][:10]
    ('nested deeper than 32 levels', '{"a":{"a":')
    """
    if not text:
        return {}
    try:
        value = json.loads(text, parse_float=_finite_or_text, parse_int=_int_or_text)
        too_deep = _container_depth(value) > MAX_DETAILS_DEPTH
    except ValueError:
        return {}
    except RecursionError:
        too_deep = True
    if too_deep:
        return {"details_unread": f"nested deeper than {MAX_DETAILS_DEPTH} levels", "text": text[:DETAILS_TEXT_KEPT]}
    return value if isinstance(value, dict) else {"value": value}


def _container_depth(value: Any) -> int:
    """Levels of nested objects and arrays in a parsed JSON value, level by level (no recursion)."""
    depth, level = 0, [value] if isinstance(value, (dict, list)) else []
    while level and depth <= MAX_DETAILS_DEPTH:     # past the limit, how much deeper does not matter
        depth += 1
        level = [child for item in level for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, (dict, list))]
    return depth


def _finite_or_text(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def _int_or_text(text: str) -> int | str:
    # Python's ints have no bound, but a consumer reading the bus's JSON into doubles would get infinity
    number = int(text)
    return number if abs(number) < 1e308 else text


def security_detail(event_type, timestamp_ms, editor_id, partner, severity, details_json, min_severity) -> dict | None:
    """The DESIGN.md security incident detail, or None when the event is not a qualifying finding.

    >>> d = security_detail("security_finding", 1793527500000, "e-1", None, 8.0, '{"title": "bot traffic"}', 7)
    >>> d["title"], d["severity"], d["finding_id"].startswith("fnd-")
    ('bot traffic', 8.0, True)
    >>> security_detail("security_finding", 0, "e-1", None, 5.0, None, 7) is None
    True

    Without a ``finding_id`` of its own, the id is a hash of the finding, its severity included:
    a finding re-raised at a higher severity is a new finding, not a redelivery to drop.

    >>> [security_detail("security_finding", 1793527500000, "e-1", None, s, None, 7)["finding_id"][:4] for s in (7, 9.5)]
    ['fnd-', 'fnd-']
    >>> len({security_detail("security_finding", 1793527500000, "e-1", None, s, None, 7)["finding_id"] for s in (7, 9.5)})
    2
    """
    if event_type != "security_finding" or severity is None or severity < min_severity:
        return None
    details = details_json if isinstance(details_json, dict) else details_of(details_json)
    finding_id = details.get("finding_id")
    finding_id = str(finding_id) if finding_id else stable_id(
        "fnd-", editor_id or "", partner or "", iso_z(timestamp_ms / 1000.0), json.dumps(details, sort_keys=True),
        repr(float(severity)))
    title = details.get("title") or details.get("type") or f"security finding (severity {severity:g})"
    detail = {"finding_id": finding_id, "severity": float(severity), "title": str(title)[:256],
              "details": details, "detected_at": iso_z(timestamp_ms / 1000.0)}
    if editor_id:
        detail["editor_id"] = editor_id
    if partner:
        detail["partner"] = partner
    return detail
