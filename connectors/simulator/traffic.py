"""The traffic itself: per-minute ground truth per editor, sampled like real reporters do.

For each editor the simulator first builds a per-minute series of the
*measured* quantities (page impressions per minute, fill, eCPM of filled
impressions, latency, errors, cache hits, and per partner bids, wins and
timeouts), from:

    level x daily seasonality (local time) x weekly seasonality x slow trend
          x holiday surge x slow AR(1) drift x incident effects  + measurement noise

with RPM = fill x eCPM and revenue = RPM x impressions / 1000 computed on that
grid, so the metrics are consistent with each other; the revenue is split
between the editor's demand partners by the filled impressions each supplies
(the ad server's per-partner revenue report). Each editor-level metric
is then reported at its own cadence (drawn per editor and metric, +-10 %
jitter per sample), the per-partner stats together in one wrapper beacon per
interval, the per-partner revenue on the same report lines as the editor's own
revenue, each sample with the value of the minute it falls in, and delivered with a
small delay -- a couple of percent of samples arrive minutes late, i.e. out of
order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .incidents import Incident
from .scenario import EDITOR_METRICS, PARTNER_BREAKDOWN_METRICS, PARTNER_METRICS, Scenario
from .world import Editor

SECONDS_PER_DAY = 86400.0


@dataclass
class SampleColumns:
    """Metric samples of one editor, column-wise (times in ms since the epoch)."""

    event_ms: np.ndarray
    arrival_ms: np.ndarray
    metric: np.ndarray          # index into ALL_METRICS
    partner: np.ndarray         # index into the partner list, -1 for editor-level samples
    value: np.ndarray


ALL_METRICS = EDITOR_METRICS + PARTNER_METRICS


def _ar1(rng: np.random.Generator, n: int, phi: float, stationary_sd: float) -> np.ndarray:
    innovations = rng.normal(0.0, stationary_sd * np.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    level = rng.normal(0.0, stationary_sd)
    for i in range(n):
        level = phi * level + innovations[i]
        out[i] = level
    return out


def minute_grid(scenario: Scenario, editor: Editor, incidents: list[Incident],
                rng: np.random.Generator, breakdown_rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Measured per-minute quantities for one editor; keys are metric names or ``metric@partner``.

    ``breakdown_rng`` draws only the noise of the per-partner revenue split, so
    adding that split left every other series of a seed as it was.
    """
    n = int(np.ceil(scenario.duration_s / 60.0)) + 1
    t = np.arange(n) * 60.0
    epoch = scenario.start_epoch_s + t
    local_h = ((epoch / 3600.0) + editor.utc_offset_h) % 24.0
    # 1970-01-01 was a Thursday: day 0 = Thursday, so Monday = 4.
    day_of_week = ((epoch / SECONDS_PER_DAY) + 3.0 + editor.utc_offset_h / 24.0) % 7.0
    phase = 2 * np.pi * (local_h - editor.daily_peak_h) / 24.0
    daily = 1.0 + editor.daily_amplitude * np.cos(phase) + 0.15 * editor.daily_amplitude * np.cos(2 * phase)
    weekly = 1.0 + editor.weekly_amplitude * np.cos(2 * np.pi * (day_of_week - editor.weekly_peak_day) / 7.0)
    progress = t / max(scenario.duration_s, 1.0)
    surge = editor.surge.envelope(t) if editor.surge is not None else np.zeros(n)
    surge_impressions = 1.0 + (editor.surge.impressions_gain * surge if editor.surge else 0.0)
    surge_rpm = 1.0 + (editor.surge.rpm_gain * surge if editor.surge else 0.0)

    mine = [i for i in incidents if i.affects(editor.editor_id)]

    def effect(key: str) -> np.ndarray:
        out = np.ones(n)
        for incident in mine:
            if key in incident.factors:
                out *= 1.0 + (incident.factors[key] - 1.0) * incident.envelope(t)
        return out

    impressions_true = (editor.impressions_per_min * daily * weekly * (1.0 + editor.impressions_trend * progress)
                        * surge_impressions * np.exp(_ar1(rng, n, 0.995, 0.04)) * effect("impressions"))
    rpm_daily = 1.0 + 0.3 * editor.daily_amplitude * np.cos(phase)
    ecpm_true = (editor.rpm / editor.fill_rate * rpm_daily * (1.0 + editor.rpm_trend * progress) * surge_rpm
                 * np.exp(_ar1(rng, n, 0.995, 0.03)) * effect("ecpm"))

    # Fill: each partner supplies its share of the filled impressions; an outage removes it.
    partner_health = {p: np.ones(n) for p in editor.partner_shares}
    partner_timeouts_mult = {p: effect("timeouts") for p in editor.partner_shares}
    partner_win_mult = {p: np.ones(n) for p in editor.partner_shares}
    for incident in mine:
        if incident.scope == "partner" and incident.partner in partner_health:
            env = incident.envelope(t)
            f = incident.factors
            partner_health[incident.partner] *= 1.0 + (f["partner_health"] - 1.0) * env
            partner_timeouts_mult[incident.partner] *= 1.0 + (f["partner_timeouts"] - 1.0) * env
            partner_win_mult[incident.partner] *= 1.0 + (f["partner_win_rate"] - 1.0) * env
    supplied = sum(share * partner_health[p] for p, share in editor.partner_shares.items())
    fill_true = np.clip(editor.fill_rate * supplied * effect("fill") * (1.0 + 0.02 * (daily - 1.0)), 0.0, 0.995)

    latency_true = editor.bid_latency_ms * (1.0 + 0.12 * (daily - 1.0)) * effect("latency")
    error_true = np.clip(editor.error_rate * effect("errors"), 0.0, 0.9)
    cache_true = np.clip(1.0 - (1.0 - editor.cache_hit_rate) * effect("cache_miss"), 0.0, 1.0)

    # Measurement noise: counting noise shrinks with size (small editors are noisier).
    impressions = np.maximum(0.0, np.round(rng.poisson(np.maximum(impressions_true, 0.0)) *
                                           np.exp(rng.normal(0.0, 0.015, n))))
    served = np.maximum(impressions, 1.0)
    fill = np.clip(rng.binomial(served.astype(np.int64), np.clip(fill_true, 0.0, 1.0)) / served
                   + rng.normal(0.0, 0.004, n), 0.0, 1.0)
    ecpm = ecpm_true * np.exp(rng.normal(0.0, 0.03 + 0.6 / np.sqrt(served * np.maximum(fill, 0.05)), n))
    rpm = np.round(fill * ecpm, 6)
    revenue = np.round(rpm * impressions / 1000.0, 6)
    grid = {
        "impressions": impressions,
        "fill_rate": np.round(fill, 6),
        "rpm": rpm,
        "revenue": revenue,
        "bid_latency_ms": np.round(latency_true * np.exp(rng.normal(0.0, 0.07, n)), 2),
        "error_rate": np.round(np.clip(rng.binomial(served.astype(np.int64), error_true) / served
                                       * np.exp(rng.normal(0.0, 0.1, n)), 0.0, 1.0), 6),
        "cache_hit_rate": np.round(np.clip(cache_true + rng.normal(0.0, 0.006, n), 0.0, 1.0), 6),
    }
    for p in sorted(editor.partner_shares):
        requests = np.maximum(impressions_true, 0.0)
        bid = editor.partner_bid_rate[p] * partner_health[p] * np.exp(rng.normal(0.0, 0.04, n))
        grid[f"bid_rate@{p}"] = np.round(np.clip(bid, 0.0, 1.0), 6)
        grid[f"win_rate@{p}"] = np.round(np.clip(editor.partner_win_rate[p] * partner_win_mult[p]
                                                 * np.exp(rng.normal(0.0, 0.05, n)), 0.0, 1.0), 6)
        timeout_fraction = np.clip(editor.partner_timeout_fraction[p] * partner_timeouts_mult[p], 0.0, 0.95)
        grid[f"partner_timeouts@{p}"] = rng.poisson(requests * timeout_fraction).astype(np.float64)
    grid.update(partner_revenue(editor, partner_health, revenue, impressions * fill, breakdown_rng))
    return grid


def partner_revenue(editor: Editor, partner_health: dict[str, np.ndarray], revenue: np.ndarray,
                    filled: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``revenue@partner`` per minute: the editor's revenue split by the filled impressions each partner supplied.

    A partner supplies ``share x health`` of the fill (minute_grid), so when it
    stops bidding its part of the revenue goes, and the editor's revenue falls by
    exactly that much; the other partners' parts are unchanged. Which partner
    wins each impression is random: the split carries counting noise that
    shrinks with the partner's filled impressions. The parts add up to the
    editor's revenue of the minute.
    """
    weights = {}
    for p in sorted(editor.partner_shares):
        supplied = editor.partner_shares[p] * partner_health[p]
        sd = 0.02 + 0.6 / np.sqrt(np.maximum(filled * supplied, 1.0))
        weights[p] = supplied * np.exp(rng.normal(0.0, sd))
    total = sum(weights.values())
    safe_total = np.where(total > 0, total, 1.0)
    return {f"revenue@{p}": np.round(np.where(total > 0, revenue * w / safe_total, 0.0), 6)
            for p, w in weights.items()}


def _sample_times(rng: np.random.Generator, duration_s: float, cadence_s: float) -> np.ndarray:
    count = int(duration_s / cadence_s * 1.15) + 2
    steps = cadence_s * rng.uniform(0.9, 1.1, count)
    times = rng.uniform(0.0, cadence_s) + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    return times[times < duration_s]


def sample_editor(scenario: Scenario, editor: Editor, partners: list[str], grid: dict[str, np.ndarray],
                  rng: np.random.Generator) -> SampleColumns:
    """Report every metric at its own cadence, each sample carrying its minute's value."""
    columns: list[tuple[np.ndarray, int, int, np.ndarray]] = []

    def sample_times(cadence: float) -> np.ndarray:
        # Whole milliseconds, as on the wire, so the minute a sample reads is the minute its timestamp says.
        return np.round(_sample_times(rng, scenario.duration_s, cadence) * 1000.0) / 1000.0

    breakdown_columns: dict[str, int] = {}
    for metric in EDITOR_METRICS:
        cadence = float(rng.uniform(*scenario.editor_cadence_s))
        editor.metric_cadence_s[metric] = round(cadence, 1)
        times = sample_times(cadence)
        if metric in PARTNER_BREAKDOWN_METRICS:
            breakdown_columns[metric] = len(columns)
        columns.append((times, ALL_METRICS.index(metric), -1, grid[metric][(times // 60.0).astype(np.int64)]))
    # The header-bidding wrapper sends one analytics beacon per interval with every
    # bidder's stats, so an editor's partner samples share their times.
    cadence = float(rng.uniform(*scenario.partner_cadence_s))
    editor.metric_cadence_s["partner_beacon"] = round(cadence, 1)
    beacon = sample_times(cadence)
    minute = (beacon // 60.0).astype(np.int64)
    for partner in sorted(editor.partner_shares):
        for metric in PARTNER_METRICS:
            columns.append((beacon, ALL_METRICS.index(metric), partners.index(partner),
                            grid[f"{metric}@{partner}"][minute]))

    times = np.concatenate([c[0] for c in columns])
    delay = rng.uniform(0.2, 8.0, times.size)
    late = rng.random(times.size) < scenario.late_fraction
    delay[late] = rng.uniform(*scenario.late_delay_s, int(late.sum()))
    event_ms = np.round((scenario.start_epoch_s + times) * 1000.0).astype(np.int64)
    arrival_ms = event_ms + np.round(delay * 1000.0).astype(np.int64)
    metric = np.concatenate([np.full(c[0].size, c[1], dtype=np.int16) for c in columns])
    partner = np.concatenate([np.full(c[0].size, c[2], dtype=np.int16) for c in columns])
    value = np.concatenate([c[3] for c in columns]).astype(np.float64)

    # The ad server's report line that carries the editor's revenue carries its split per
    # partner: same timestamp, same minute, same delivery.
    offsets = np.cumsum([0] + [c[0].size for c in columns])
    extra = [(event_ms, arrival_ms, metric, partner, value)]
    for name, index in sorted(breakdown_columns.items()):
        rows = slice(offsets[index], offsets[index + 1])
        minute = (columns[index][0] // 60.0).astype(np.int64)
        for p in sorted(editor.partner_shares):
            extra.append((event_ms[rows], arrival_ms[rows], np.full(minute.size, ALL_METRICS.index(name), np.int16),
                          np.full(minute.size, partners.index(p), np.int16), grid[f"{name}@{p}"][minute]))
    return SampleColumns(*(np.concatenate([part[k] for part in extra]) for k in range(5)))
