"""Who is in the simulated market: editors (publishers) and demand partners.

Editor sizes are long-tailed (lognormal page impressions per minute), each
editor sits in its own time zone (so daily peaks do not line up), and each uses
a subset of the demand partners with its own revenue shares.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .scenario import Scenario


@dataclass
class Surge:
    """A holiday-like traffic surge: smooth ramp up, plateau, ramp down (seconds from start)."""

    start_s: float
    ramp_s: float
    plateau_s: float
    impressions_gain: float     # +60 % at the plateau -> 0.6
    rpm_gain: float             # holiday demand pays a little more

    @property
    def end_s(self) -> float:
        return self.start_s + 2 * self.ramp_s + self.plateau_s

    def envelope(self, t_s: np.ndarray) -> np.ndarray:
        """0 outside, raised-cosine ramps, 1 on the plateau."""
        up = np.clip((t_s - self.start_s) / self.ramp_s, 0.0, 1.0)
        down = np.clip((self.end_s - t_s) / self.ramp_s, 0.0, 1.0)
        rise = 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down))
        return np.where((t_s >= self.start_s) & (t_s <= self.end_s), rise, 0.0)


@dataclass
class Editor:
    editor_id: str
    impressions_per_min: float
    rpm: float
    fill_rate: float
    bid_latency_ms: float
    error_rate: float
    cache_hit_rate: float
    utc_offset_h: float
    daily_amplitude: float
    daily_peak_h: float
    weekly_amplitude: float
    weekly_peak_day: float
    #: partner id -> share of the editor's filled impressions it supplies
    partner_shares: dict[str, float]
    partner_bid_rate: dict[str, float]
    partner_win_rate: dict[str, float]
    partner_timeout_fraction: dict[str, float]
    timestamp_style: str            # "iso" or "epoch_ms": the editor's ad server's habit
    with_dimensions: bool
    quiet: bool = False
    surge: Surge | None = None
    impressions_trend: float = 0.0  # relative change over the whole scenario
    rpm_trend: float = 0.0
    metric_cadence_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "editor_id": self.editor_id,
            "impressions_per_min": round(self.impressions_per_min, 1),
            "rpm": round(self.rpm, 3),
            "utc_offset_h": self.utc_offset_h,
            "partners": sorted(self.partner_shares),
            "quiet": self.quiet,
            "surge": None if self.surge is None else {
                "start_s": self.surge.start_s, "end_s": self.surge.end_s,
                "impressions_gain": round(self.surge.impressions_gain, 3)},
            "impressions_trend": round(self.impressions_trend, 3),
            "rpm_trend": round(self.rpm_trend, 3),
        }


def partner_ids(count: int) -> list[str]:
    return [f"p-{i + 1:02d}" for i in range(count)]


def editor_ids(count: int) -> list[str]:
    width = max(3, len(str(count)))
    return [f"e-{i + 1:0{width}d}" for i in range(count)]


def quiet_editor_count(scenario: Scenario) -> int:
    if scenario.editors < 3:
        return 0
    return max(1, int(round(scenario.editors * scenario.quiet_editor_fraction)))


def partner_outage_count(scenario: Scenario) -> int:
    if scenario.partners < 2:
        return 0
    wanted = max(1, int(round(scenario.partner_outages * scenario.hours / 24.0 * min(1.0, scenario.editors / 50.0))))
    # Quiet editors need at least one partner that never fails.
    return min(wanted, scenario.partners - 1)


def build_world(scenario: Scenario, rng: np.random.Generator) -> tuple[list[Editor], list[str], list[str]]:
    """Editors, all partner ids, and the partners that will have an outage.

    Outage partners are chosen here because quiet editors must not use them.
    """
    partners = partner_ids(scenario.partners)
    popularity = rng.dirichlet(np.full(len(partners), 1.5))
    outage_partners = [partners[i] for i in np.sort(
        rng.choice(len(partners), size=partner_outage_count(scenario), replace=False))]
    safe_partners = [p for p in partners if p not in outage_partners]

    ids = editor_ids(scenario.editors)
    n_quiet = quiet_editor_count(scenario)
    quiet_ids = set(ids[i] for i in rng.choice(len(ids), size=n_quiet, replace=False)) if n_quiet else set()

    editors: list[Editor] = []
    for editor_id in ids:
        quiet = editor_id in quiet_ids
        pool = safe_partners if quiet else partners
        weights = np.array([popularity[partners.index(p)] for p in pool])
        n_use = int(min(len(pool), rng.integers(2, 5)))
        chosen = list(rng.choice(pool, size=n_use, replace=False, p=weights / weights.sum()))
        shares = rng.dirichlet(np.full(len(chosen), 2.0))
        fill = float(np.clip(rng.beta(18, 3.5), 0.6, 0.96))
        editors.append(Editor(
            editor_id=editor_id,
            impressions_per_min=float(np.clip(rng.lognormal(np.log(900.0), 1.0), 40.0, 40000.0)),
            rpm=float(np.clip(rng.lognormal(np.log(2.2), 0.35), 0.4, 12.0)),
            fill_rate=fill,
            bid_latency_ms=float(rng.uniform(160.0, 420.0)),
            error_rate=float(rng.uniform(0.002, 0.012)),
            cache_hit_rate=float(rng.uniform(0.84, 0.96)),
            utc_offset_h=float(rng.choice([-8, -5, -3, 0, 1, 2, 5.5, 8, 9])),
            daily_amplitude=float(rng.uniform(0.25, 0.5)),
            daily_peak_h=float(rng.uniform(19.0, 22.0)),
            weekly_amplitude=float(rng.uniform(0.04, 0.15)),
            weekly_peak_day=float(rng.uniform(0.0, 7.0)),
            partner_shares={str(p): float(s) for p, s in zip(chosen, shares)},
            partner_bid_rate={str(p): float(rng.uniform(0.35, 0.85)) for p in chosen},
            partner_win_rate={str(p): float(rng.uniform(0.08, 0.35)) for p in chosen},
            partner_timeout_fraction={str(p): float(rng.uniform(0.004, 0.02)) for p in chosen},
            timestamp_style="epoch_ms" if rng.random() < 0.3 else "iso",
            with_dimensions=bool(rng.random() < 0.5),
            quiet=quiet,
        ))

    # Incident-free stretches that must not alarm: holiday surges and slow trends.
    duration = scenario.duration_s
    for k, editor in enumerate(e for e in editors if e.quiet):
        if k % 2 == 0 or k % 3 == 2:
            ramp = rng.uniform(0.06, 0.12) * duration
            plateau = rng.uniform(0.08, 0.16) * duration
            latest_start = max(0.0, duration - 2 * ramp - plateau)
            editor.surge = Surge(start_s=float(rng.uniform(0.25 * latest_start, latest_start)),
                                 ramp_s=float(ramp), plateau_s=float(plateau),
                                 impressions_gain=float(rng.uniform(0.35, 0.7)),
                                 rpm_gain=float(rng.uniform(0.03, 0.12)))
        if k % 2 == 1 or k % 3 == 2:
            editor.impressions_trend = float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.35))
            if rng.random() < 0.5:
                editor.rpm_trend = float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.25))

    # Quiet editors' partners never fail; make sure every outage partner has editors to hurt.
    loud = [e for e in editors if not e.quiet]
    for partner in outage_partners:
        if loud and not any(partner in e.partner_shares for e in loud):
            victim = loud[int(rng.integers(len(loud)))]
            share = float(rng.uniform(0.25, 0.5))
            victim.partner_shares = {p: s * (1 - share) for p, s in victim.partner_shares.items()}
            victim.partner_shares[partner] = share
            victim.partner_bid_rate[partner] = float(rng.uniform(0.35, 0.85))
            victim.partner_win_rate[partner] = float(rng.uniform(0.08, 0.35))
            victim.partner_timeout_fraction[partner] = float(rng.uniform(0.004, 0.02))
    return editors, partners, outage_partners
