"""Labeled incidents: when they happen, on whom, and what they do to the metrics.

Each incident has an envelope (ramps in over a minute or three, holds, ramps
out over a few minutes before its labeled end) and multiplies the editor's
underlying quantities by per-type factors. The signatures follow issue 5:

- DEMAND_ISSUE (partner scope): a demand partner stops bidding; on every editor
  using it, fill drops by that partner's share, partner timeouts soar, RPM and
  revenue drop.
- LATENCY_ISSUE: bid latency x2.5-5, a few more timeouts, RPM down a little.
- PRICING_ISSUE: a floor set too low: RPM down 35-65 %, fill unchanged or up.
- CONFIGURATION_ISSUE: right after a ``config_change``: errors x8-25,
  impressions down 30-60 %.
- INFRASTRUCTURE_ISSUE: errors x5-15, cache hit rate down, latency x1.6-2.5.
- SECURITY_ISSUE (invalid traffic): bot impressions x2-4 that earn a tenth of
  human ones, so RPM and revenue per impression fall; a ``security_finding``
  follows half of the time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .scenario import (CONFIGURATION_ISSUE, DEMAND_ISSUE, EDITOR_PROBLEM_TYPES, INFRASTRUCTURE_ISSUE,
                       LATENCY_ISSUE, PRICING_ISSUE, SECURITY_ISSUE, Scenario)
from .world import Editor

#: Quiet gap kept around an incident on the same editor, so labels never overlap.
SEPARATION_S = 45 * 60.0


@dataclass
class Incident:
    incident_id: str
    problem_type: str
    scope: str                      # "editor" | "partner"
    start_s: float                  # seconds from scenario start
    end_s: float
    editor_id: str | None = None
    partner: str | None = None
    editors: list[str] = field(default_factory=list)
    onset_s: float = 120.0
    recovery_s: float = 180.0
    #: multiplicative factors on the editor's underlying quantities at full strength
    factors: dict[str, float] = field(default_factory=dict)

    def envelope(self, t_s: np.ndarray) -> np.ndarray:
        rise = np.clip((t_s - self.start_s) / self.onset_s, 0.0, 1.0)
        fall = np.clip((self.end_s - t_s) / self.recovery_s, 0.0, 1.0)
        return np.where((t_s >= self.start_s) & (t_s <= self.end_s), np.minimum(rise, fall), 0.0)

    def affects(self, editor_id: str) -> bool:
        return editor_id == self.editor_id or editor_id in self.editors


def _draw_factors(problem_type: str, rng: np.random.Generator) -> dict[str, float]:
    if problem_type == DEMAND_ISSUE:
        return {"partner_health": 1.0 - rng.uniform(0.85, 1.0), "partner_timeouts": rng.uniform(15.0, 40.0),
                "partner_win_rate": rng.uniform(0.3, 0.6), "latency": rng.uniform(1.0, 1.12)}
    if problem_type == LATENCY_ISSUE:
        return {"latency": rng.uniform(2.5, 5.0), "timeouts": rng.uniform(1.5, 3.0),
                "fill": rng.uniform(0.96, 0.99), "ecpm": rng.uniform(0.72, 0.85)}
    if problem_type == PRICING_ISSUE:
        return {"ecpm": rng.uniform(0.35, 0.65), "fill": rng.uniform(1.0, 1.08)}
    if problem_type == CONFIGURATION_ISSUE:
        return {"errors": rng.uniform(8.0, 25.0), "impressions": rng.uniform(0.4, 0.7)}
    if problem_type == INFRASTRUCTURE_ISSUE:
        return {"errors": rng.uniform(5.0, 15.0), "cache_miss": rng.uniform(3.0, 6.0),
                "latency": rng.uniform(1.6, 2.5), "impressions": rng.uniform(0.85, 0.95), "ecpm": 0.95}
    if problem_type == SECURITY_ISSUE:
        bots = rng.uniform(2.0, 4.0)        # total impressions multiplier
        bot_value = 0.1                     # a bot impression earns a tenth of a human one
        return {"impressions": bots, "ecpm": (1.0 + bot_value * (bots - 1.0)) / bots}
    raise ValueError(problem_type)


def _iso(epoch_s: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(round(epoch_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Calendar:
    """Busy intervals per editor, to keep incidents on one editor apart."""

    def __init__(self) -> None:
        self.busy: dict[str, list[tuple[float, float]]] = {}

    def free(self, editor_id: str, start: float, end: float) -> bool:
        return all(end + SEPARATION_S <= s or start - SEPARATION_S >= e for s, e in self.busy.get(editor_id, []))

    def book(self, editor_id: str, start: float, end: float) -> None:
        self.busy.setdefault(editor_id, []).append((start, end))


def schedule_incidents(scenario: Scenario, editors: list[Editor], outage_partners: list[str],
                       rng: np.random.Generator) -> list[Incident]:
    duration = scenario.duration_s
    warmup = scenario.effective_warmup_s
    cooldown = min(scenario.cooldown_hours, 0.1 * scenario.hours) * 3600.0
    shortest, longest = (m * 60.0 for m in scenario.incident_minutes)
    longest = min(longest, max(shortest, (duration - warmup - cooldown) / 4))
    calendar = _Calendar()
    loud = [e for e in editors if not e.quiet]
    incidents: list[Incident] = []

    def draw_window() -> tuple[float, float]:
        length = float(rng.uniform(shortest, longest))
        start = float(rng.uniform(warmup, max(warmup, duration - cooldown - length)))
        return round(start), round(start + length)

    for partner in outage_partners:
        victims = [e.editor_id for e in loud if partner in e.partner_shares]
        for _attempt in range(500):
            start, end = draw_window()
            if all(calendar.free(v, start, end) for v in victims):
                break
        else:
            continue
        for v in victims:
            calendar.book(v, start, end)
        incidents.append(Incident("", DEMAND_ISSUE, "partner", start, end, partner=partner, editors=victims,
                                  onset_s=float(rng.uniform(30, 120)), recovery_s=float(rng.uniform(60, 240)),
                                  factors=_draw_factors(DEMAND_ISSUE, rng)))

    per_type = max(1, int(round(scenario.incidents_per_type * scenario.hours / 24.0 * scenario.editors / 50.0)))
    for problem_type in EDITOR_PROBLEM_TYPES:
        for _ in range(per_type):
            for _attempt in range(500):
                editor = loud[int(rng.integers(len(loud)))]
                start, end = draw_window()
                if calendar.free(editor.editor_id, start, end):
                    break
            else:
                continue
            calendar.book(editor.editor_id, start, end)
            incidents.append(Incident("", problem_type, "editor", start, end, editor_id=editor.editor_id,
                                      onset_s=float(rng.uniform(45, 180)), recovery_s=float(rng.uniform(60, 300)),
                                      factors=_draw_factors(problem_type, rng)))

    incidents.sort(key=lambda i: (i.start_s, i.problem_type, i.editor_id or i.partner or ""))
    for k, incident in enumerate(incidents, start=1):
        incident.incident_id = f"sim-{scenario.seed}-{k:03d}"
    return incidents


def incident_events(incident: Incident, start_epoch_s: float, rng: np.random.Generator) -> list[tuple[float, dict]]:
    """Operational events the incident leaves on the events stream: (event time s from start, record)."""
    events: list[tuple[float, dict]] = []
    if incident.problem_type == CONFIGURATION_ISSUE:
        at = incident.start_s - rng.uniform(60, 480)
        setting = str(rng.choice(["ad_tag_template", "consent_banner", "lazy_loading", "ad_slot_sizes"]))
        events.append((at, {"event_type": "config_change", "editor_id": incident.editor_id,
                            "details": {"setting": setting, "changed_by": "ops-console",
                                        "change_id": f"chg-{incident.incident_id}"}}))
    elif incident.problem_type == PRICING_ISSUE and rng.random() < 0.5:
        at = incident.start_s - rng.uniform(30, 300)
        old = round(float(rng.uniform(0.8, 1.5)), 2)
        events.append((at, {"event_type": "config_change", "editor_id": incident.editor_id,
                            "details": {"setting": "price_floor", "old_value": old, "new_value": round(old / 10, 3),
                                        "change_id": f"chg-{incident.incident_id}"}}))
    elif incident.problem_type == SECURITY_ISSUE and rng.random() < 0.5:
        at = incident.start_s + rng.uniform(300, 1200)
        events.append((min(at, incident.end_s), {
            "event_type": "security_finding", "editor_id": incident.editor_id,
            "severity": round(float(rng.uniform(7.0, 9.5)), 1),
            "details": {"title": "Invalid traffic: automated browsing pattern", "finding_type": "invalid_traffic",
                        "provider": "bot-detection", "finding_id": f"fnd-{incident.incident_id}"}}))
    elif incident.problem_type == DEMAND_ISSUE:
        if rng.random() < 0.6:
            at = incident.start_s + rng.uniform(120, 600)
            events.append((min(at, incident.end_s), {
                "event_type": "partner_status", "partner": incident.partner,
                "details": {"status": "DEGRADED", "message": "elevated bid timeouts"}}))
            events.append((incident.end_s + rng.uniform(60, 300), {
                "event_type": "partner_status", "partner": incident.partner,
                "details": {"status": "HEALTHY", "message": "recovered"}}))
    return events


def background_events(scenario: Scenario, editors: list[Editor], rng: np.random.Generator) -> list[tuple[float, dict]]:
    """Harmless operational noise: most changes and deploys break nothing, most findings are minor."""
    events: list[tuple[float, dict]] = []
    days = scenario.hours / 24.0
    for editor in editors:
        for _ in range(int(rng.poisson(scenario.background_events_per_editor_day * days))):
            at = float(rng.uniform(0, scenario.duration_s))
            kind = str(rng.choice(["config_change", "deployment", "feature_flag", "security_finding"],
                                  p=[0.3, 0.35, 0.25, 0.1]))
            record: dict = {"event_type": kind, "editor_id": editor.editor_id}
            if kind == "config_change":
                record["details"] = {"setting": str(rng.choice(["refresh_interval", "sticky_footer", "ad_density"])),
                                     "changed_by": "ops-console"}
            elif kind == "deployment":
                record["details"] = {"service": "ad-server", "version": f"v2.{int(rng.integers(0, 40))}.{int(rng.integers(0, 10))}"}
            elif kind == "feature_flag":
                record["details"] = {"flag": str(rng.choice(["new_consent_flow", "gpt_single_request"])),
                                     "enabled": bool(rng.random() < 0.5)}
            else:
                record["severity"] = round(float(rng.uniform(1.0, 4.5)), 1)
                record["details"] = {"title": "Suspicious login attempt blocked", "finding_type": "access"}
            events.append((at, record))
    return events


def label(incident: Incident, start_epoch_s: float) -> dict:
    """One line of the labels file."""
    record = {"incident_id": incident.incident_id, "scope": incident.scope, "problem_type": incident.problem_type,
              "start": _iso(start_epoch_s + incident.start_s), "end": _iso(start_epoch_s + incident.end_s)}
    if incident.scope == "editor":
        record["editor_id"] = incident.editor_id
    else:
        record["partner"] = incident.partner
        record["editors"] = list(incident.editors)
    record["magnitude"] = {k: round(float(v), 3) for k, v in sorted(incident.factors.items())}
    return record
