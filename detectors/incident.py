"""Composite anomaly detail: what goes on the bus for one editor's anomalous window.

:func:`build_composite_detail` produces the ``Composite Anomaly Detected``
detail of DESIGN.md from the window's deviations, the editor's events and the
classifier's verdict. Its ``incident_id`` is deterministic (editor, window
start, problem type), so a replayed or retried window produces the same id
and downstream consumers deduplicate at-least-once delivery.

>>> from detectors.classifier import MetricDeviation as D, classify
>>> devs = {"rpm": D("rpm", 1.2, 2.5, 2.1, 2.9, 0.97, True),
...         "fill_rate": D("fill_rate", 0.85, 0.85, 0.8, 0.9, 0.05, False),
...         "revenue": D("revenue", 6.0, 12.5, 11.0, 14.0, 0.98, True)}
>>> c = classify(devs, [])
>>> detail = build_composite_detail("e-001", 1793527500, 1793527800, devs, [], c)
>>> detail["problem_type"], detail["metrics_affected"], detail["revenue_at_risk"]
('PRICING_ISSUE', 2, 32.5)
>>> detail["incident_id"] == incident_id("e-001", 1793527500, "PRICING_ISSUE")
True
>>> detail["metrics"]["rpm"]
{'value': 1.2, 'baseline': 2.5, 'lower': 2.1, 'upper': 2.9, 'score': 0.97, 'deviation_pct': -52.0}
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterable, Mapping

from detectors.classifier import (
    NO_ISSUE,
    SECURITY_ISSUE,
    SEVERITIES,
    SHOWN_DECIMALS,
    SIGNATURE_BY_TYPE,
    Classification,
    ClassifierConfig,
    MetricDeviation,
    clawback_note,
    is_finite_number,
)
from detectors.events import OperationalEvent, iso_z, routed_scope
from detectors.revenue import expected_and_actual_revenue, revenue_at_risk  # noqa: F401  (part of the API)

#: Keys of the composite detail, in DESIGN.md order.
COMPOSITE_KEYS = ("incident_id", "editor_id", "window_start", "window_end", "severity", "problem_type", "category",
                  "metrics_affected", "affected_metrics", "metrics", "revenue_at_risk", "revenue_at_risk_known",
                  "suspected_causes",
                  "evidence", "summary", "episode")
METRIC_KEYS = ("value", "baseline", "lower", "upper", "score", "deviation_pct")

# EventBridge caps a whole entry at 256 KB; the detail stays well below it.
MAX_DETAIL_BYTES = 200_000
MAX_EVIDENCE = 30
MAX_EVIDENCE_CHARS = 500
MAX_CAUSES = 20
MAX_EVENT_DETAILS_BYTES = 4_096
#: An editor's composites form one episode while each window starts at most this many windows
#: after the previous composite's window ended: an incident's window in which every metric
#: happened to stay inside its band (one or two samples per metric at a 150-270 s cadence)
#: does not split it in two.
EPISODE_MAX_GAP_WINDOWS = 1


def stable_id(prefix: str, *parts: Any) -> str:
    """``prefix + sha256("|".join(parts))[:20]``: the deterministic ids of the bus events.

    >>> stable_id("inc-", "e-001", "2026-11-01T10:05:00Z", "DEMAND_ISSUE")
    'inc-8a1ef42eb7bcae1cd8fc'
    """
    key = "|".join(str(p) for p in parts)
    return prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def incident_id(editor_id: str, window_start_s: float, problem_type: str) -> str:
    """Deterministic incident id. The window start is keyed by its ISO-8601 form, so
    ``1793527500``, ``1793527500.0`` and ``numpy.float64(1793527500)`` give the same id.

    >>> incident_id("e-001", 1793527500, "DEMAND_ISSUE") == incident_id("e-001", 1793527500.0, "DEMAND_ISSUE")
    True
    >>> incident_id("e-001", 1793527500, "DEMAND_ISSUE")
    'inc-8a1ef42eb7bcae1cd8fc'
    """
    return stable_id("inc-", editor_id, iso_z(float(window_start_s)), problem_type)


def _json_number(x: float, digits: int = SHOWN_DECIMALS) -> float | None:
    """A finite, rounded float, or None (strict JSON has no NaN / Infinity)."""
    if not is_finite_number(x):
        return None
    return round(float(x), digits)


def metric_snapshot(deviation: MetricDeviation) -> dict[str, float | None]:
    """The per-metric block of the bus details: value, band, score and % change vs the baseline shown
    (``MetricDeviation.percent_change``; null for a zero baseline)."""
    percent = deviation.percent_change()
    return {
        "value": _json_number(deviation.value),
        "baseline": _json_number(deviation.shown_baseline),
        "lower": _json_number(deviation.lower),
        "upper": _json_number(deviation.upper),
        "score": _json_number(deviation.score, 4),
        "deviation_pct": round(percent, 1) if percent is not None else None,
    }


def _capped_details(details: Mapping[str, Any]) -> dict[str, Any]:
    text = json.dumps(details, default=str, sort_keys=True)
    if len(text.encode("utf-8")) <= MAX_EVENT_DETAILS_BYTES:
        return json.loads(text)  # round-trip makes every value JSON-native
    return {"truncated": True, "preview": text[:1000]}


def suspected_causes(editor_id: str, events: Iterable[OperationalEvent], window_end_s: float,
                     lookback_s: float = 1800.0) -> list[dict[str, Any]]:
    """The editor's events (and partner-wide and platform-wide ones, without an editor: the streaming
    job passes a partner's status reports, and the changes made for a partner, to the editors it
    serves, and an event naming neither an editor nor a partner to every editor) in the look-back,
    newest first, at most MAX_CAUSES. A
    partner's report that it is well again ends an outage and causes nothing: it is left out (it
    used to be listed, and could push a real cause past the cap).

    >>> from detectors.events import OperationalEvent as E
    >>> [c["event_type"] for c in suspected_causes("e-1", [E("deployment", 900.0, "e-1"), E("config_change", 100.0, "e-1"),
    ...                                                     E("deployment", 950.0, "e-2")], window_end_s=1000.0, lookback_s=600)]
    ['deployment']

    Past the cap (:func:`_kept_events` says which are kept) they are still listed newest first:

    >>> changes = [E("config_change", 990.0 - i, partner=f"p-{i}") for i in range(MAX_CAUSES)]
    >>> report = E("partner_status", 800.0, partner="p-1", details={"status": "DEGRADED"})
    >>> causes = suspected_causes("e-1", changes + [E("deployment", 900.0, "e-1"), report], window_end_s=1000.0)
    >>> len(causes), causes[-2]["event_type"], causes[-2]["editor_id"], causes[-1]["event_type"], causes[0]["partner"]
    (20, 'deployment', 'e-1', 'partner_status', 'p-0')
    """
    return _as_causes(_kept_events(editor_id, events, window_end_s, lookback_s, MAX_CAUSES, None))


def _kept_events(editor_id: str, events: Iterable[OperationalEvent], window_end_s: float, lookback_s: float,
                 limit: int, problem_type: str | None) -> list[OperationalEvent]:
    """The editor's events in the look-back, newest first, at most ``limit`` (none when it is 0 or less).
    Past ``limit`` the editor's own events are kept first, then those ``problem_type``'s pattern links
    (classifier ``Signature.links``), then by ``detectors.events.routed_scope``: its partners' reports,
    the changes made for its partners, the network's. The events routed to every editor they concern
    must not push out its own, nor the one the classification linked.

    >>> from detectors.classifier import INFRASTRUCTURE_ISSUE
    >>> from detectors.events import OperationalEvent as E
    >>> changes = [E("config_change", 990.0 - i, partner=f"p-{i}") for i in range(MAX_CAUSES)]
    >>> kept = _kept_events("e-1", changes + [E("deployment", 800.0)], 1000.0, 1800.0, MAX_CAUSES, INFRASTRUCTURE_ISSUE)
    >>> len(kept), kept[-1].event_type, kept[-1].partner       # the network's deployment, which the pattern links
    (20, 'deployment', None)
    """
    relevant = [e for e in events
                if (e.editor_id in (None, editor_id)) and window_end_s - lookback_s <= e.timestamp_s < window_end_s
                and not e.reports_recovery]
    # Events at one instant are ordered by their content too: the detail does not depend on the
    # order they arrived in (which of them a cap keeps, either).
    relevant.sort(key=_newest_first)
    if len(relevant) > limit:
        signature = SIGNATURE_BY_TYPE.get(problem_type)

        def rank(e: OperationalEvent) -> tuple[int, int]:
            linked = signature is not None and signature.links(e.event_type, e.editor_id, e.partner)
            return (0 if e.editor_id is not None else 1 if linked else 2), routed_scope(e.event_type, e.editor_id,
                                                                                   e.partner)

        relevant = sorted(sorted(relevant, key=rank)[:max(limit, 0)], key=_newest_first)
    return relevant


def _newest_first(event: OperationalEvent) -> tuple:
    return (-event.timestamp_s, event.event_type, event.editor_id or "", event.partner or "",
            -1.0 if event.severity is None else event.severity, json.dumps(event.details, sort_keys=True, default=str))


def _as_causes(events: list[OperationalEvent]) -> list[dict[str, Any]]:
    """The first MAX_CAUSES events in the ``suspected_causes`` shape, their details capped."""
    causes = []
    for event in events[:MAX_CAUSES]:
        cause = event.to_dict()
        cause["details"] = _capped_details(event.details)
        causes.append(cause)
    return causes


def partner_causes(findings: Iterable[OperationalEvent]) -> list[dict[str, Any]]:
    """Partner findings (udfs.decisions.partner_window_check) as suspected causes, the worst first.

    >>> from detectors.events import OperationalEvent as E
    >>> f = lambda p, status: E("partner_health", 1000.0, "e-1", p, details={"status": status, "signals": []})
    >>> [c["partner"] for c in partner_causes([f("p-2", "DEGRADED"), f("p-1", "UNHEALTHY")])]
    ['p-1', 'p-2']
    """
    rank = {"UNHEALTHY": 0, "DEGRADED": 1}
    return _as_causes(sorted(findings, key=lambda e: (rank.get(str(e.details.get("status")), 2), str(e.partner))))


def _partner_evidence(cause: Mapping[str, Any]) -> str:
    """``"partner p-07 UNHEALTHY for this editor: partner_timeouts +3554.7% vs baseline (unhealthy);
    partner-wide HEALTHY, 1 of 1 editors hurt"``."""
    d = cause["details"]
    text = f"partner {cause.get('partner')} {d.get('status')} for this editor"
    if d.get("signals"):
        text += ": " + ", ".join(str(s) for s in d["signals"])
    if "partner_status" in d:
        text += f"; partner-wide {d['partner_status']}"
        if "editors_hurt" in d and "editors_reporting" in d:
            text += f", {d['editors_hurt']} of {d['editors_reporting']} editors hurt"
    return text


def next_episode(previous: Mapping[str, Any] | None, incident_id_: str, window_start_s: float, window_end_s: float,
                 severity: str, max_gap_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the composite's ``episode`` block, the editor's episode state after it).

    One composite per anomalous window (the contract) means a 60-minute incident sends twelve;
    the episode groups them: ``episode_id`` is the ``incident_id`` of its first composite,
    ``composites`` counts them, ``escalated`` says this one is more severe than every earlier
    one. To page once per incident, a consumer keeps per ``episode_id`` the highest severity it
    acted on, as the stack's workflows do (deploy/README.md): ``composites == 1`` or ``escalated``
    alone misses an episode whose first composites were below its bar. The state (``previous``)
    is the operator's, one per editor.

    >>> first, state = next_episode(None, "inc-a", 0, 300, "HIGH", 300)
    >>> first
    {'episode_id': 'inc-a', 'started_at': '1970-01-01T00:00:00Z', 'composites': 1, 'escalated': False}
    >>> block, state = next_episode(state, "inc-b", 600, 900, "CRITICAL", 300)   # one quiet window between
    >>> block["episode_id"], block["composites"], block["escalated"]
    ('inc-a', 2, True)
    >>> next_episode(state, "inc-c", 1500, 1800, "HIGH", 300)[0]["episode_id"]  # two quiet windows: a new one
    'inc-c'
    """
    end_s = float(window_end_s)
    if previous is not None and previous["last_window_end_s"] == end_s:
        # The same window decided again (a replay after a restore): the same block.
        return _episode_block(previous, previous.get("escalated", False)), previous
    if previous is not None and float(window_start_s) - max_gap_s <= previous["last_window_end_s"] < end_s:
        rank = SEVERITIES.index
        escalated = rank(severity) > rank(previous["max_severity"])
        state = {"episode_id": previous["episode_id"], "started_at_s": previous["started_at_s"],
                 "composites": previous["composites"] + 1, "last_window_end_s": end_s,
                 "max_severity": severity if escalated else previous["max_severity"], "escalated": escalated}
    else:
        state = {"episode_id": incident_id_, "started_at_s": float(window_start_s), "composites": 1,
                 "last_window_end_s": end_s, "max_severity": severity, "escalated": False}
    return _episode_block(state, state["escalated"]), state


def _episode_block(state: Mapping[str, Any], escalated: bool) -> dict[str, Any]:
    return {"episode_id": state["episode_id"], "started_at": iso_z(state["started_at_s"]),
            "composites": state["composites"], "escalated": bool(escalated)}


def with_episode(detail: dict[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    """The detail with its ``episode`` block; a continued episode says so in the summary."""
    detail["episode"] = dict(block)
    if block["composites"] > 1:
        note = (f" Ongoing since {block['started_at'][11:16]}Z: composite {block['composites']} of this episode"
                + (", escalated." if block["escalated"] else "."))
        detail["summary"] = (detail["summary"][:1000 - len(note)] + note)
    return detail


def _hhmm(timestamp_s: float) -> str:
    return iso_z(timestamp_s)[11:16]


def _move(metric: str, s: Mapping[str, Any] | None) -> str | None:
    """One metric's move for the summary: its % change, or its value against a zero baseline (a
    percentage of 0 is none), or its value when there is no baseline yet."""
    if not s or s["value"] is None:
        return None
    if s["deviation_pct"] is not None and s["baseline"] is not None:
        return f"{metric} {s['deviation_pct']:+.0f}% vs baseline {s['baseline']:.4g}"
    if s["baseline"] is not None:
        return f"{metric} {s['value']:.4g} vs baseline {s['baseline']:.4g}"
    return f"{metric} {s['value']:.4g}, no baseline yet"


def _whose(event: OperationalEvent) -> str:
    """A cited cause, saying whose it is: the editor's own (for one of its partners, if it names one),
    one made for a partner, or the network's.

    >>> from detectors.events import OperationalEvent as E
    >>> _whose(E("deployment", 0.0, "e-1")), _whose(E("config_change", 0.0, "e-1", "p-1"))
    ('a deployment', 'a config_change for p-1')
    >>> _whose(E("config_change", 0.0, partner="p-1")), _whose(E("deployment", 0.0))
    ("p-1's config_change", 'a network-wide deployment')
    """
    if event.editor_id is not None:
        return f"a {event.event_type}" + (f" for {event.partner}" if event.partner is not None else "")
    if event.partner is not None:
        return f"{event.partner}'s {event.event_type}"
    return f"a network-wide {event.event_type}"


def _cited_cause(events: list[OperationalEvent], problem_type: str) -> OperationalEvent | None:
    """The suspected cause the problem type's pattern weighs most (classifier ``Signature.links`` and
    ``event_weight``, as the classification counts the strongest linked event), the newest of those
    (``events`` are newest first; weighed on their whole details, not the causes' capped copy).

    >>> from detectors.classifier import DEMAND_ISSUE
    >>> from detectors.events import OperationalEvent as E
    >>> events = [E("config_change", 900.0, partner="p-0", details={"change": "timeout"}),
    ...           E("partner_status", 800.0, partner="p-1", details={"status": "DEGRADED"})]
    >>> _cited_cause(events, DEMAND_ISSUE).partner     # the report outweighs a change made for a partner
    'p-1'
    """
    signature = SIGNATURE_BY_TYPE.get(problem_type)
    if signature is None:
        return None
    linked = [e for e in events if signature.links(e.event_type, e.editor_id, e.partner)]
    return max(linked, key=signature.event_weight, default=None)   # max keeps the first (newest) of equal weights


def _summary(editor_id: str, window_start_s: float, window_end_s: float, snapshot: Mapping[str, Mapping[str, Any]],
             affected: list[str], classification: Classification, listed: list[OperationalEvent],
             at_risk: float | None, partners: list[dict[str, Any]] = (), risk_note: str | None = None) -> str:
    """The one-line summary; ``listed`` are the events of the suspected causes, newest first."""
    # The most anomalous first (the highest score; among equal scores, and many are 1.0, the largest move),
    # not the names' order: "partner_timeouts +32%" was shown and "rpm -52%" left among the "1 more".
    ranked = sorted(affected, key=lambda m: (-((snapshot.get(m) or {}).get("score") or 0.0), -_move_size(snapshot.get(m))))
    moves = [move for move in (_move(m, snapshot.get(m)) for m in ranked[:4]) if move]
    if len(affected) > 4:
        moves.append(f"{len(affected) - 4} more")
    signature = SIGNATURE_BY_TYPE.get(classification.problem_type)
    cause = f"likely {signature.description.split(':')[0]}" if signature else "cause unknown (fits no known pattern)"
    if partners:
        named = ", ".join(f"{p.get('partner')} ({p['details'].get('status')} for this editor)" for p in partners[:3])
        if len(partners) > 3:
            named += f" and {len(partners) - 3} more"
        # a demand outage's partners are its cause; for an anomaly no pattern explains, they are a lead
        cause += f" through {named}" if signature else f"; partners that hurt it in the window: {named}"
    cited = _cited_cause(listed, classification.problem_type)
    if cited is not None:
        cause += f", after {_whose(cited)} at {_hhmm(cited.timestamp_s)}Z"
    elif listed:
        cause += f"; {len(listed)} recent event(s) listed, none of a kind this pattern links"
    window = f"{_hhmm(window_start_s)}-{_hhmm(window_end_s)}Z"
    risk = (f"revenue at risk {at_risk:,.2f} in the window" + (f" ({risk_note})" if risk_note else "")
            if at_risk is not None
            else "revenue at risk unknown (no revenue, nor rpm and impressions, with a value and a baseline in the window)")
    return (f"{classification.problem_type} on {editor_id} ({classification.severity}, {window}): "
            f"{'; '.join(moves) or 'no metric outside its band'}; {cause}; {risk}.")


def _move_size(block: Mapping[str, Any] | None) -> float:
    """How far a metric moved, for ranking the summary's moves: its percentage, and a move from a zero
    baseline (no percentage) before any other.

    >>> _move_size({"value": 0.3, "baseline": 0.0, "deviation_pct": None}), _move_size({"deviation_pct": -52.0})
    (inf, 52.0)
    """
    block = block or {}
    if block.get("deviation_pct") is not None:
        return abs(block["deviation_pct"])
    return math.inf if is_finite_number(block.get("value")) and block.get("value") != block.get("baseline") else 0.0


def _fit_size(detail: dict[str, Any]) -> dict[str, Any]:
    """Drop the least important list items until the JSON fits MAX_DETAIL_BYTES."""
    def size() -> int:
        return len(json.dumps(detail, separators=(",", ":")).encode("utf-8"))

    while size() > MAX_DETAIL_BYTES and (detail["suspected_causes"] or len(detail["evidence"]) > 1):
        if detail["suspected_causes"]:
            detail["suspected_causes"].pop()
        else:
            detail["evidence"].pop()
    return detail


def build_composite_detail(editor_id: str, window_start_s: float, window_end_s: float,
                           deviations: Mapping[str, MetricDeviation], events: Iterable[OperationalEvent],
                           classification: Classification, config: ClassifierConfig | None = None,
                           partner_findings: Iterable[OperationalEvent] = ()) -> dict[str, Any]:
    """The ``Composite Anomaly Detected`` detail (DESIGN.md shape, JSON-serialisable, < 256 KB).

    ``metrics_affected`` counts the anomalous metrics (``affected_metrics``);
    ``metrics`` reports every metric of the window, so the reader sees the
    normal ones too. Revenue at risk uses the window length.

    ``partner_findings``: the partners that hurt this editor in the window
    (udfs.decisions.partner_window_check). They lead ``suspected_causes``, are named in
    the evidence and the summary; the editor's operational events follow them.
    """
    config = config or ClassifierConfig()
    if classification.problem_type == NO_ISSUE:
        raise ValueError("classification is not an incident (problem_type NONE); emit nothing for this window")
    window_seconds = float(window_end_s) - float(window_start_s)
    snapshot = {name: metric_snapshot(dev) for name, dev in sorted(deviations.items())}
    # For invalid traffic, also the revenue of the impressions above baseline (detectors.revenue says why).
    invalid = classification.problem_type == SECURITY_ISSUE
    at_risk = revenue_at_risk(deviations, window_seconds, config.rate_period_s,
                              invalid_traffic=invalid) if window_seconds > 0 else 0.0
    at_risk_known = expected_and_actual_revenue(deviations) is not None
    risk_note = clawback_note(deviations) if invalid and at_risk > 0 else None
    partners = partner_causes(partner_findings)
    # The partners that hurt the editor lead the list; its events fill what room is left (all of it is sent;
    # with MAX_CAUSES partners, none).
    listed = _kept_events(editor_id, events, float(window_end_s), config.event_lookback_s,
                          MAX_CAUSES - len(partners), classification.problem_type)
    causes = _as_causes(listed)
    affected = list(classification.affected_metrics)
    evidence = [e[:MAX_EVIDENCE_CHARS] for e in classification.evidence[:MAX_EVIDENCE]]
    evidence[1:1] = [_partner_evidence(c)[:MAX_EVIDENCE_CHARS] for c in partners[:5]]
    detail = {
        "incident_id": incident_id(editor_id, window_start_s, classification.problem_type),
        "editor_id": editor_id,
        "window_start": iso_z(float(window_start_s)),
        "window_end": iso_z(float(window_end_s)),
        "severity": classification.severity,
        "problem_type": classification.problem_type,
        "category": classification.category,
        "metrics_affected": len(affected),
        "affected_metrics": affected,
        "metrics": snapshot,
        "revenue_at_risk": at_risk,
        # false: no revenue, nor rpm and impressions, with a value and a baseline (a model warming up has
        # none) in the window; revenue_at_risk is then 0, not measured
        "revenue_at_risk_known": at_risk_known,
        "suspected_causes": (partners + causes)[:MAX_CAUSES],
        "evidence": evidence[:MAX_EVIDENCE],
        "summary": _summary(editor_id, float(window_start_s), float(window_end_s), snapshot, affected,
                            classification, listed, at_risk if at_risk_known else None, partners, risk_note)[:1000],
    }
    # A composite on its own is the first of its episode; the job continues episodes (next_episode).
    detail["episode"], _ = next_episode(None, detail["incident_id"], float(window_start_s), float(window_end_s),
                                        classification.severity, 0.0)
    return _fit_size(detail)


__all__ = ["COMPOSITE_KEYS", "EPISODE_MAX_GAP_WINDOWS", "METRIC_KEYS", "build_composite_detail", "incident_id",
           "metric_snapshot", "next_episode", "partner_causes", "revenue_at_risk", "stable_id", "suspected_causes",
           "with_episode"]
