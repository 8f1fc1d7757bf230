"""Partner health: is a demand partner healthy across the editors that use it?

The stream job windows each editor's samples through a partner separately and
hands :func:`assess_partner_editors` every editor's per-metric deviations from
that editor's *own* baseline. Four signals matter, each in the direction that hurts:

=================  =========  ==========================================
metric             bad when   why
=================  =========  ==========================================
partner_timeouts   up         the partner stops answering in time
bid_rate           down       it bids on fewer requests
win_rate           down       its bids stop clearing (floors, bad prices)
fill_rate          down       less of its demand turns into impressions
=================  =========  ==========================================

A signal is *degraded* when its relative change passes the ``degraded``
threshold, or the detector flags it in the bad direction on a move of at
least ``flag_min_fraction`` of that threshold; it is *unhealthy* past the
``unhealthy`` threshold. Status: UNHEALTHY if any signal is unhealthy
or at least ``unhealthy_signal_count`` signals are degraded (a partner
failing on two fronts is down, not slow); DEGRADED if one is degraded;
HEALTHY otherwise (per editor); the partner takes a level only when enough of
its reporting editors are at it. Thresholds are in :class:`PartnerHealthConfig`.

Revenue impact (:func:`partner_revenue_impact`): ad servers report revenue per
demand partner, so each editor's window through the partner can carry its own
``revenue`` deviation (that editor's revenue from the partner against its own
baseline). The impact is the shortfall of that revenue in the editors the
partner hurts, summed: what the partner's degradation costs in the window.
Revenue is deliberately not one of the health signals: an editor's own problem
(a floor set too low, bot traffic) cuts its revenue from every partner alike
and says nothing about the partner.

The shortfall of a hurt editor is measured against its revenue baseline of the
first window the partner hurt it in, held while it stays hurt
(:func:`assess_partner_window`, :func:`hold_references`): the online
model's expected value follows a level shift within a few windows, so against
the current baseline a lasting outage would look free after 15-20 minutes.
For the same reason a hurt editor's signals are judged against their baselines
and bands of that first window while it stays hurt (:func:`judged_against_references`):
against the current ones the partner was called HEALTHY again while the outage
went on (up to 42 minutes before its end, over ten simulated days). Both are held
for at most ``revenue_reference_windows`` windows: a level that lasts longer is
the editor's new normal.

>>> from detectors.classifier import MetricDeviation as D
>>> slow = {"partner_timeouts": D("partner_timeouts", 50.0, 10.0, 6.0, 14.0, 0.99, True),
...         "bid_rate": D("bid_rate", 0.9, 0.9, 0.85, 0.95, 0.1, False)}
>>> detail = assess_partner_editors("p-alpha", 1793527500, 1793527800,
...     {"e-002": slow, "e-001": slow}, revenue_impact=412.5)
>>> detail["partner_status"], detail["impact_assessment"], detail["editors_affected"]
('UNHEALTHY', {'revenue_impact': 412.5, 'editors_affected': 2}, ['e-001', 'e-002'])
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from detectors.classifier import DOWN, UP, MetricDeviation, is_finite_number
from detectors.events import iso_z
from detectors.incident import metric_snapshot, stable_id
from detectors.revenue import positive_period, revenue_at_risk

HEALTHY, DEGRADED, UNHEALTHY = "HEALTHY", "DEGRADED", "UNHEALTHY"
MAX_EDITORS_LISTED = 500


def _default_signals() -> dict[str, dict[str, float]]:
    # metric -> bad direction (+1 up / -1 down) and relative-change thresholds.
    return {
        "partner_timeouts": {"direction": UP, "degraded": 0.50, "unhealthy": 2.00},
        "bid_rate": {"direction": DOWN, "degraded": 0.15, "unhealthy": 0.40},
        "win_rate": {"direction": DOWN, "degraded": 0.15, "unhealthy": 0.40},
        "fill_rate": {"direction": DOWN, "degraded": 0.10, "unhealthy": 0.30},
    }


@dataclass(frozen=True)
class PartnerHealthConfig:
    """Thresholds of the partner health check (relative to the partner's own baseline).

    >>> PartnerHealthConfig.from_dict({"signals": {"fill_rate": {"unhealthy": 0.5}}}).signals["fill_rate"]["unhealthy"]
    0.5
    """

    signals: dict[str, dict[str, float]] = field(default_factory=_default_signals)
    #: This many degraded signals at once make the partner UNHEALTHY.
    unhealthy_signal_count: int = 2
    #: Smallest denominator of the relative change (rates near zero).
    relative_floor: dict[str, float] = field(default_factory=lambda: {"partner_timeouts": 0.01})
    #: A detector flag degrades a signal only on a move of at least this
    #: fraction of its ``degraded`` threshold (a flagged 1 % wobble is not news).
    flag_min_fraction: float = 0.5
    #: Per-editor judgement (:func:`assess_partner_editors`): a move counts only
    #: when it is also outside the editor's own band for that signal (significant,
    #: not just large on a noisy series) ...
    require_outside_band: bool = True
    #: ... and the partner is degraded only when at least this many of the
    #: editors reporting through it in the window ...
    min_editors: int = 2
    #: ... and at least this share of them are hurt the same way: a partner
    #: failure hits every editor that uses it, one editor's bad window does not.
    min_editor_share: float = 0.5
    #: A hurt editor's revenue baseline, and its signals' baselines and bands, from the
    #: window it was first hurt in are held for at most this many windows (2 h of 5-min
    #: windows): the simulated outages last up to 90 min; a level that lasts longer is the
    #: editor's new normal, as the trailing baseline accepts one (udfs.baseline.learn_window).
    #: (The name predates the signals' references; kept, as configurations use it.)
    revenue_reference_windows: int = 24
    #: Period the revenue rates refer to (detectors.revenue): the job sets it from the classifier's
    #: ``rate_period_s`` (one fact about the input, so one setting; flink_jobs/main.scoring_operators).
    rate_period_s: float = 60.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PartnerHealthConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown partner health config keys: {', '.join(sorted(unknown))}")
        base = cls()
        updates: dict[str, Any] = {}
        if "signals" in data:
            merged = {m: dict(v) for m, v in base.signals.items()}
            for metric, values in data["signals"].items():
                merged.setdefault(metric, {"direction": DOWN, "degraded": 0.2, "unhealthy": 0.5}).update(
                    {k: float(v) for k, v in values.items()})
            updates["signals"] = merged
        if "unhealthy_signal_count" in data:
            updates["unhealthy_signal_count"] = int(data["unhealthy_signal_count"])
        if "flag_min_fraction" in data:
            updates["flag_min_fraction"] = float(data["flag_min_fraction"])
        for name, cast in (("require_outside_band", bool), ("min_editors", int), ("min_editor_share", float),
                           ("revenue_reference_windows", int)):
            if name in data:
                updates[name] = cast(data[name])
        if "rate_period_s" in data:
            updates["rate_period_s"] = positive_period("rate_period_s", data["rate_period_s"])
        if "relative_floor" in data:
            updates["relative_floor"] = {**base.relative_floor, **{k: float(v) for k, v in data["relative_floor"].items()}}
        return replace(base, **updates)

    @classmethod
    def from_json(cls, path: str | Path) -> "PartnerHealthConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class SignalAssessment:
    metric: str
    level: int          # 0 fine, 1 degraded, 2 unhealthy
    change: float       # relative change vs the partner's baseline (floored denominator: what levels use)
    #: % change vs the baseline itself (MetricDeviation.percent_change, what the detail's metrics
    #: block shows); None for a zero baseline
    percent: float | None = None

    def describe(self) -> str:
        word = ("normal", "degraded", "unhealthy")[self.level]
        moved = f"{self.percent:+.1f}% vs baseline" if self.percent is not None else "from a zero baseline"
        return f"{self.metric} {moved} ({word})"


def assess_signal(deviation: MetricDeviation, spec: Mapping[str, float], floor: float,
                  flag_min_fraction: float = 0.5) -> SignalAssessment:
    """Level of one signal, in the bad direction only: past ``unhealthy`` -> 2; past ``degraded``,
    or flagged by the detector on a move of at least ``flag_min_fraction`` of it -> 1."""
    change = deviation.relative_change(floor) if deviation.is_finite else 0.0
    bad = change * spec["direction"]  # > 0 when moving the harmful way
    level = 0
    if bad > 0:
        if bad >= spec["unhealthy"]:
            level = 2
        elif bad >= spec["degraded"] or (deviation.is_anomaly and bad >= flag_min_fraction * spec["degraded"]):
            level = 1
    return SignalAssessment(deviation.metric, level, change, deviation.percent_change())


def _outside_band_badly(deviation: MetricDeviation, direction: int) -> bool:
    """The value left the editor's own band in the harmful direction (or the detector flagged it)."""
    if deviation.is_anomaly:
        return True
    if not deviation.is_finite:
        return False
    return deviation.value < deviation.lower if direction < 0 else deviation.value > deviation.upper


def editor_level(per_metric: Mapping[str, MetricDeviation], config: PartnerHealthConfig) -> tuple[int, list[SignalAssessment]]:
    """How badly one editor's traffic through the partner is hurt: 0 fine, 1 degraded, 2 unhealthy."""
    assessments = []
    for metric, spec in config.signals.items():
        deviation = per_metric.get(metric)
        if deviation is None:
            continue
        a = assess_signal(deviation, spec, config.relative_floor.get(metric, 0.0), config.flag_min_fraction)
        if a.level and config.require_outside_band and not _outside_band_badly(deviation, spec["direction"]):
            a = SignalAssessment(a.metric, 0, a.change, a.percent)
        assessments.append(a)
    status = partner_status(assessments, config)
    return {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}[status], assessments


def _median(values: Iterable[float]) -> float:
    finite = sorted(v for v in values if is_finite_number(v))
    if not finite:
        return math.nan
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else (finite[mid - 1] + finite[mid]) / 2.0


def partner_revenue_impact(by_editor: Mapping[str, Mapping[str, MetricDeviation]], hurt_editors: Iterable[str],
                           window_seconds: float, revenue_reference: Mapping[str, float | None] | None = None,
                           rate_period_s: float = 60.0) -> float:
    """Revenue the partner's degradation puts at risk in the window: for each hurt editor, the shortfall of
    its revenue through the partner against that editor's own baseline (detectors.revenue.revenue_at_risk),
    or against ``revenue_reference[editor]`` (a revenue rate) when one is given.

    Editors the partner does not hurt count for nothing, even when their revenue dips (their own noise
    or their own problem); a gain counts for nothing; an editor whose ad server reports no revenue per
    partner (or has no baseline for it yet) adds 0, so the figure is a lower bound. Each editor's part
    lies in [0, its baseline (or reference) revenue over the window].

    >>> from detectors.classifier import MetricDeviation as D
    >>> hurt = {"revenue": D("revenue", 0.5, 2.0, 1.7, 2.3, 0.99, True)}       # per minute
    >>> partner_revenue_impact({"e-1": hurt, "e-2": hurt}, ["e-1"], 300)        # (2.0 - 0.5) x 5 min
    7.5
    >>> partner_revenue_impact({"e-1": hurt}, ["e-1"], 300, {"e-1": 3.0})      # (3.0 - 0.5) x 5 min
    12.5
    """
    references = revenue_reference or {}
    total = 0.0
    for editor in hurt_editors:
        per_metric = by_editor.get(editor)
        if not per_metric or "revenue" not in per_metric:
            continue
        revenue = per_metric["revenue"]
        reference = references.get(editor)
        if is_finite_number(reference):
            revenue = replace(revenue, baseline=float(reference))
        total += revenue_at_risk({"revenue": revenue}, window_seconds, rate_period_s)
    return round(total, 2)


#: What is held for a hurt editor (:func:`hold_references`): its reference revenue rate (None once
#: expired, or when it has none), the windows held, and its signals' reference (baseline, lower,
#: upper) by metric (None once expired). (udfs.decisions.read_partner_state reads the operator
#: states written before the signals' references, which held (revenue, windows) pairs, as these.)
HeldReference = tuple  # (float | None, int, dict[str, tuple[float, float, float]] | None)


def judged_against_references(by_editor: Mapping[str, Mapping[str, MetricDeviation]],
                              held: Mapping[str, tuple]) -> dict[str, Mapping[str, MetricDeviation]]:
    """Each editor's deviations, with the health signals of an editor still held (hurt in the previous
    window) measured against the baselines and bands of the window it was first hurt in.

    The online model learns an outage's level within a few windows (it re-bases its profile), so
    against the current baseline the editor would look fine while the partner is still down;
    against the held one it stays hurt until its signals are back near where they were.

    >>> from detectors.classifier import MetricDeviation as D
    >>> now = {"bid_rate": D("bid_rate", 0.05, 0.06, 0.04, 0.08, 0.1, False)}   # the model followed the outage
    >>> judged = judged_against_references({"e-1": now}, {"e-1": (2.0, 4, {"bid_rate": (0.6, 0.5, 0.7)})})
    >>> judged["e-1"]["bid_rate"].baseline, editor_level(judged["e-1"], PartnerHealthConfig())[0]
    (0.6, 2)
    """
    out: dict[str, Mapping[str, MetricDeviation]] = {}
    for editor, per_metric in by_editor.items():
        entry = held.get(editor)
        references = entry[2] if entry is not None else None
        if not references:
            out[editor] = per_metric
            continue
        judged = dict(per_metric)
        for metric, (baseline, lower, upper) in references.items():
            if metric in judged:
                # The detector's flag judged the value against its current band, the one that followed the
                # outage: a recovery (timeouts falling from 474 to 25 in their held band [0, 26.3]) was
                # flagged, and the flag counted the editor hurt. Against the held band it is the band's say.
                d = judged[metric]
                judged[metric] = replace(d, baseline=baseline, lower=lower, upper=upper,
                                         is_anomaly=is_finite_number(d.value) and not lower <= d.value <= upper)
        out[editor] = judged
    return out


def hold_references(by_editor: Mapping[str, Mapping[str, MetricDeviation]], hurt_editors: Iterable[str],
                    held: Mapping[str, tuple], max_windows: int,
                    signals: Iterable[str] = ()) -> dict[str, HeldReference]:
    """Each hurt editor's :data:`HeldReference` after this window.

    An editor newly hurt takes its current revenue baseline, and the current baseline and band
    of each of ``signals`` it reports (the model has not learned the drop yet in the first hurt
    window); one still hurt keeps its references; one no longer hurt is dropped. After
    ``max_windows`` windows the references expire (None: the current baselines are used) until
    the editor recovers.

    >>> hold_references({"e-1": {}}, ["e-1"], {"e-1": (2.0, 3, None)}, 24)
    {'e-1': (2.0, 4, None)}
    >>> hold_references({"e-1": {}}, ["e-1"], {"e-1": (2.0, 24, {"bid_rate": (0.6, 0.5, 0.7)})}, 24)
    {'e-1': (None, 25, None)}
    >>> hold_references({"e-1": {}}, [], {"e-1": (2.0, 3, None)}, 24)
    {}
    >>> from detectors.classifier import MetricDeviation as D
    >>> first = {"bid_rate": D("bid_rate", 0.05, 0.6, 0.5, 0.7, 0.99, True)}
    >>> hold_references({"e-1": first}, ["e-1"], {}, 24, ["bid_rate", "win_rate"])
    {'e-1': (None, 1, {'bid_rate': (0.6, 0.5, 0.7)})}
    """
    out: dict[str, HeldReference] = {}
    for editor in hurt_editors:
        if editor in held:
            reference, windows, references = held[editor]
            keep = windows < max_windows
            out[editor] = (reference if keep else None, windows + 1, references if keep else None)
            continue
        per_metric = by_editor.get(editor, {})
        revenue = per_metric.get("revenue")
        reference = (max(float(revenue.baseline), 0.0)
                     if revenue is not None and is_finite_number(revenue.baseline) else None)
        references = {m: (float(d.baseline), float(d.lower), float(d.upper)) for m, d in sorted(per_metric.items())
                      if m in signals and all(is_finite_number(x) for x in (d.baseline, d.lower, d.upper))}
        out[editor] = (reference, 1, references or None)
    return out


def assess_partner_window(partner: str, window_start_s: float, window_end_s: float,
                          by_editor: Mapping[str, Mapping[str, MetricDeviation]],
                          held_references: Mapping[str, tuple] | None = None,
                          config: PartnerHealthConfig | None = None,
                          editor_levels: Mapping[str, tuple[int, list]] | None = None,
                          absent: Mapping[str, int] | None = None,
                          ) -> tuple[dict[str, Any], dict[str, HeldReference]]:
    """(the Partner Health Check detail, the references to hold for the next window).

    The job's entry point: like :func:`assess_partner_editors`, with each editor that was
    hurt in the previous window judged against the signal baselines held since it was
    first hurt (:func:`judged_against_references`), and the revenue impact of the hurt
    editors measured against their held revenue references (module docstring).
    ``editor_levels``: a caller that already judged the editors passes ``by_editor`` as
    ``judged_against_references(by_editor, held_references)`` gave it, and what
    :func:`editor_level` gave for each of them (udfs.decisions.partner_window_check, which
    needs the levels for its findings), so the judging is not done twice. ``absent``: editors
    hurt in an earlier window that sent no traffic through the partner in this one, with the
    level they are still counted at (:func:`assess_partner_editors`); their held references are
    kept for when they report again.
    """
    config = config or PartnerHealthConfig()
    held = held_references or {}
    if editor_levels is None:
        by_editor = judged_against_references(by_editor, held)
        levels = {editor: editor_level(per_metric, config) for editor, per_metric in by_editor.items()}
    else:
        levels = editor_levels
    hurt = sorted(e for e, (level, _) in levels.items() if level >= 1)
    # revenue's band too, though it is no health signal: the check's metrics block shows it beside the
    # signals, and against its current baseline an outage's revenue looked normal and the all-clear's
    # recovery a jump (+211 % to +947 % in the ten simulated days' seven all-clears)
    references = hold_references(by_editor, hurt, held, config.revenue_reference_windows, {*config.signals, "revenue"})
    references.update({e: held[e] for e in (absent or {}) if e in held})
    impact = partner_revenue_impact(by_editor, hurt, float(window_end_s) - float(window_start_s),
                                    {e: entry[0] for e, entry in references.items()}, config.rate_period_s)
    return assess_partner_editors(partner, window_start_s, window_end_s, by_editor, impact, config,
                                  editor_levels=levels, absent=absent), references


def assess_partner_editors(partner: str, window_start_s: float, window_end_s: float,
                           by_editor: Mapping[str, Mapping[str, MetricDeviation]],
                           revenue_impact: float | None = None,
                           config: PartnerHealthConfig | None = None,
                           editor_levels: Mapping[str, tuple[int, list]] | None = None,
                           absent: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The ``Partner Health Check`` detail from each editor's traffic through the partner, each judged
    against that editor's *own* baseline.

    Averaging a partner's samples across editors mixes editors of very different
    sizes and rates, so the average moves whenever the mix of editors reporting
    in a window changes. Here every editor is judged on its own series
    (:func:`editor_level`) and the partner is DEGRADED / UNHEALTHY only when at
    least ``min_editors`` and ``min_editor_share``
    of its editors (those reporting, and the ``absent`` ones still counted) are at that level or worse.

    ``revenue_impact`` None (the job's case) computes it with :func:`partner_revenue_impact` over the
    hurt editors; a number is reported as given.

    ``absent`` editors (hurt before, no traffic through the partner in this window) count at the
    level given, among the partner's editors: one editor's gap in its samples must not end an
    outage with an all-clear, nor split it in two. They are listed as affected, and reported
    apart (``editors_absent``); what they lost is not measured (no samples).

    >>> from detectors.classifier import MetricDeviation as D
    >>> down = {"bid_rate": D("bid_rate", 0.05, 0.6, 0.5, 0.7, 0.99, True)}
    >>> fine = {"bid_rate": D("bid_rate", 0.6, 0.6, 0.5, 0.7, 0.1, False)}
    >>> assess_partner_editors("p-1", 0, 300, {"e-1": down, "e-2": down, "e-3": fine}, 0.0)["partner_status"]
    'UNHEALTHY'
    >>> assess_partner_editors("p-1", 0, 300, {"e-1": down, "e-2": fine, "e-3": fine}, 0.0)["partner_status"]
    'HEALTHY'
    """
    config = config or PartnerHealthConfig()
    levels: dict[str, int] = {}
    reasons: list[str] = []
    for editor, per_metric in sorted(by_editor.items()):
        # editor_levels: what editor_level gave for each editor, when the caller already has it.
        level, assessments = editor_levels[editor] if editor_levels is not None else editor_level(per_metric, config)
        levels[editor] = level
        reasons += [f"{editor}: {a.describe()}" for a in assessments if a.level > 0]
    reporting = len(levels)
    for editor, level in sorted((absent or {}).items()):
        if editor not in levels:
            levels[editor] = level
            reasons.append(f"{editor}: no traffic through the partner in this window; counted "
                           f"{(HEALTHY, DEGRADED, UNHEALTHY)[level]} as in its last")
    # A partner seen through fewer than min_editors editors cannot be told apart from those
    # editors' own problems (an editor's latency incident raises its timeouts on every partner):
    # it stays HEALTHY here, and the editor correlator reports what its editor sees.
    needed = max(1, config.min_editors, math.ceil(config.min_editor_share * len(levels) - 1e-9))
    status_level = max((lv for lv in (1, 2) if sum(1 for x in levels.values() if x >= lv) >= needed), default=0)
    status = (HEALTHY, DEGRADED, UNHEALTHY)[status_level]
    hurt = sorted(e for e, lv in levels.items() if lv >= 1)
    if revenue_impact is None:
        revenue_impact = partner_revenue_impact(by_editor, hurt, float(window_end_s) - float(window_start_s),
                                                rate_period_s=config.rate_period_s)
    impact = float(revenue_impact) if is_finite_number(revenue_impact) else 0.0
    metrics: dict[str, dict] = {}
    for metric in sorted({m for per in by_editor.values() for m in per}):
        devs = [per[metric] for per in by_editor.values() if metric in per]
        # The block shows the median editor (value, baseline and band medians, the highest score),
        # plus how many editors report the metric and how many are outside their own band.
        median = MetricDeviation(metric, _median(d.value for d in devs), _median(d.baseline for d in devs),
                                 _median(d.lower for d in devs), _median(d.upper for d in devs),
                                 max((d.score for d in devs if is_finite_number(d.score)), default=0.0),
                                 any(d.is_anomaly for d in devs))
        metrics[metric] = {**metric_snapshot(median), "editors": len(devs),
                           "editors_outside_band": sum(1 for d in devs if d.is_anomaly or (
                               d.is_finite and not d.lower <= d.value <= d.upper))}
    return {
        "check_id": check_id(partner, window_start_s),
        "partner": partner,
        "partner_status": status,
        "window_start": iso_z(float(window_start_s)),
        "window_end": iso_z(float(window_end_s)),
        "impact_assessment": {"revenue_impact": round(max(impact, 0.0), 2), "editors_affected": len(hurt)},
        "editors_affected": hurt[:MAX_EDITORS_LISTED],
        "editors_reporting": reporting,
        **({"editors_absent": sorted(e for e in absent if e in levels and e not in by_editor)} if absent else {}),
        "metrics": metrics,
        "reasons": (_first_reasons(reasons) if status != HEALTHY else [])
        or [f"{len(hurt)} of {len(levels)} editors hurt (needs {needed}): partner signals within their baselines"],
    }


#: Reasons a check lists at most; the rest are counted in a last one.
MAX_REASONS = 20


def _first_reasons(reasons: list[str]) -> list[str]:
    """The first :data:`MAX_REASONS` reasons, the last of them saying how many more there are.

    >>> _first_reasons([f"e-{i}: bid_rate -50%" for i in range(22)])[-2:]
    ['e-18: bid_rate -50%', '... and 3 more reasons, for the editors in editors_affected']
    """
    if len(reasons) <= MAX_REASONS:
        return reasons
    more = len(reasons) - (MAX_REASONS - 1)
    return reasons[:MAX_REASONS - 1] + [f"... and {more} more reasons, for the editors in editors_affected"]


def hurt_editor_findings(partner: str, window_start_s: float, editor_levels: Mapping[str, tuple[int, list]],
                         partner_status_: str) -> list[dict[str, Any]]:
    """What the partner does to each editor it hurts in the window, for that editor's composite anomaly.

    The partner's own status needs ``min_editors`` hurt editors, so a partner that serves a
    single editor is never DEGRADED here, even when it fails; the editor's composite then
    knows only that "a demand partner" failed. These findings name the partner to the editor
    (udfs.decisions.editor_window_composite attaches them to a DEMAND_ISSUE and an UNKNOWN only: an editor's
    own latency problem hurts it through every partner). One per hurt editor: its status
    through the partner, the signals that moved, and the partner-wide picture.

    >>> from detectors.classifier import MetricDeviation as D
    >>> slow = {"partner_timeouts": D("partner_timeouts", 50.0, 10.0, 6.0, 14.0, 0.99, True)}
    >>> fine = {"partner_timeouts": D("partner_timeouts", 10.0, 10.0, 6.0, 14.0, 0.1, False)}
    >>> levels = {e: editor_level(m, PartnerHealthConfig()) for e, m in (("e-1", slow), ("e-2", fine))}
    >>> [(f["editor_id"], f["status"], f["signals"]) for f in hurt_editor_findings("p-1", 0, levels, HEALTHY)]
    [('e-1', 'UNHEALTHY', ['partner_timeouts +400.0% vs baseline (unhealthy)'])]
    """
    hurt = sorted(e for e, (level, _) in editor_levels.items() if level >= 1)
    findings = []
    for editor in hurt:
        level, assessments = editor_levels[editor]
        findings.append({"editor_id": editor, "partner": partner, "status": (HEALTHY, DEGRADED, UNHEALTHY)[level],
                         "signals": [a.describe() for a in assessments if a.level > 0],
                         "partner_status": partner_status_, "editors_hurt": len(hurt),
                         "editors_reporting": len(editor_levels), "check_id": check_id(partner, window_start_s)})
    return findings


def partner_status(assessments: Iterable[SignalAssessment], config: PartnerHealthConfig) -> str:
    """HEALTHY / DEGRADED / UNHEALTHY from the signal levels (module docstring)."""
    levels = [a.level for a in assessments]
    if any(level >= 2 for level in levels) or sum(1 for lv in levels if lv >= 1) >= config.unhealthy_signal_count:
        return UNHEALTHY
    if any(level >= 1 for level in levels):
        return DEGRADED
    return HEALTHY


def next_outage(previous: Mapping[str, Any] | None, check_id_: str, window_start_s: float,
                status: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the check's ``outage`` block or None, the partner's outage state after it).

    A partner outage is the run of its checks that are not HEALTHY, and it ends with the
    all-clear: a degraded partner sends a check every window, so the outage groups them the
    way a composite's ``episode`` groups an editor's. ``outage_id`` is the ``check_id`` of its
    first check, ``checks`` counts its non-healthy checks, ``escalated`` says this check is
    UNHEALTHY after only DEGRADED ones, and the all-clear carries the outage it ends
    (``ended``). The state (``previous``) is the partner operator's.

    >>> block, state = next_outage(None, "phc-a", 0, DEGRADED)
    >>> block
    {'outage_id': 'phc-a', 'started_at': '1970-01-01T00:00:00Z', 'checks': 1, 'escalated': False, 'ended': False}
    >>> block, state = next_outage(state, "phc-b", 300, UNHEALTHY)
    >>> block["outage_id"], block["checks"], block["escalated"]
    ('phc-a', 2, True)
    >>> block, state = next_outage(state, "phc-c", 600, HEALTHY)
    >>> block["outage_id"], block["checks"], block["ended"], state
    ('phc-a', 2, True, None)
    >>> next_outage(None, "phc-d", 900, HEALTHY)
    (None, None)
    """
    rank = (HEALTHY, DEGRADED, UNHEALTHY).index
    if status == HEALTHY:
        if previous is None:
            return None, None
        return _outage_block(previous, escalated=False, ended=True), None
    if previous is None:
        state = {"outage_id": check_id_, "started_at_s": float(window_start_s), "checks": 1, "worst": status}
        return _outage_block(state, escalated=False, ended=False), state
    escalated = rank(status) > rank(previous["worst"])
    state = {**previous, "checks": previous["checks"] + 1, "worst": status if escalated else previous["worst"]}
    return _outage_block(state, escalated=escalated, ended=False), state


def _outage_block(state: Mapping[str, Any], escalated: bool, ended: bool) -> dict[str, Any]:
    return {"outage_id": state["outage_id"], "started_at": iso_z(state["started_at_s"]), "checks": state["checks"],
            "escalated": escalated, "ended": ended}


def check_id(partner: str, window_start_s: float) -> str:
    """Deterministic id of one partner's check in one window (the status is not part of it:
    a re-evaluated window replaces, rather than adds to, the earlier check).

    >>> check_id("p-alpha", 1793527500) == check_id("p-alpha", 1793527500.0)
    True
    """
    return stable_id("phc-", partner, iso_z(float(window_start_s)))
