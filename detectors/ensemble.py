"""The final score: a seasonal-surprise backbone raised by calibrated members; paging.

Backbone: :class:`~detectors.seasonal_surprise.SeasonalSurprise` (global vs
time-of-day forecaster chosen by running error; level and residual-step
surprise; per-series 99th-percentile calibration ``z_eff``; emission only of
scores that beat every score emitted in the last ``refractory`` rows), with
its time-of-day forecaster *re-based* (``rebase_patience=3``, ``rebase_z=4``):
after 3 consecutive same-side residuals beyond 4 bin MADs its level offset
moves by their mean, so a regime the profile has never seen (the first
weekend of a weekly series) is reported at its start and then stops
surprising, instead of damping the calibration for days.

Members (one shared baseline, so the seasonal work is done once per value):

* :class:`~detectors.changepoint.RobustCusum`, whose
  :class:`~detectors.seasonal.SeasonalRobustBaseline` gives three residual
  surprises (its fast forecasters: local level, local level + daily profile,
  local level + weekly profile) and the CUSUM statistic on the best
  forecaster's residuals;
* :class:`~detectors.river_models.RiverVolatility`: jump and volatility change.

Calibration: each member surprise is turned into a tail probability
``p_i = P(R_i >= r)`` by its own :class:`~detectors.calibration.TailCalibrator`,
an online, slowly fading ECDF of that surprise's past values *on this series*.
So a z of 4 on a heavy-tailed series is not alarming while a z of 4 on a
quiet one is, and members with different scales become comparable.
Combination: Bonferroni, ``p = min(1, m · min_i p_i)`` over the ``m``
calibrated channels.

Score (NAB charges every false-positive row and rewards the *first*
detection of an anomaly most): the members' evidence raises the backbone's
calibrated surprise *before* its suppression stage, with one global weight,
``z = z_eff + member_weight · (-log10 p)``, mapped to [0, 1) by the backbone;
then the backbone's warm-up and refractory rule decide what is emitted, so
one episode gives one detection (or a few increasing ones).

Paging (``is_anomaly``) is the members' decision, independent of the score
suppression: ``p <= alarm_probability`` (0.004), at most once per
``suppress_updates``. ``expected``/``lower``/``upper`` are the seasonal
baseline's forecast ± ``sigmas`` σ. Until ``warmup`` values have been seen
the score is 0 and nothing pages.

>>> import detectors, math, random
>>> rng = random.Random(0)
>>> d = detectors.make("ensemble", seed=0)
>>> rs = [d.update(i * 300.0, 10 + math.sin(i / 5) + rng.gauss(0, 0.2)) for i in range(2000)]
>>> [i for i, r in enumerate(rs) if r.score > 0.2]   # while the time-of-day profile is still sparse
[185, 420]
>>> max(r.score for r in rs[432:]) < 0.2 and not any(r.is_anomaly for r in rs)
True
>>> r = d.update(2000 * 300.0, 25.0)
>>> r.is_anomaly, r.score > 0.5
(True, True)
"""

from __future__ import annotations

import math

from . import base
from .base import OnlineDetector, register
from .calibration import TailCalibrator
from .changepoint import RobustCusum
from .river_models import RiverVolatility
from .seasonal_surprise import SeasonalSurprise
from .seasonal import MODEL_NAMES

# The seasonal baseline's residual surprises that are calibrated: the *fast*
# forecasters (local level; local level + daily profile; + weekly profile).
# They are surprised by what was not expected *now* given the recent level -
# a spike, a missing peak at its onset - but not by a smooth day-long surge,
# which a slow level + profile would call anomalous for the whole day.
_SEASONAL_CHANNELS = ("fast", "daily_fast", "weekly_fast")
_SEASONAL_INDEX = tuple(MODEL_NAMES.index(m) for m in _SEASONAL_CHANNELS)
#: Names of the calibrated channels, in order (for diagnostics).
CHANNELS = tuple(f"z_{m}" for m in _SEASONAL_CHANNELS) + ("cusum", "jump", "volatility")


@register
class Ensemble(OnlineDetector):
    """Seasonal-surprise backbone raised by the calibrated baseline, CUSUM and river members; members page."""

    name = "ensemble"
    STATE_VERSION = 2

    def __init__(self, seed: int = 0, half_life: float = 2000.0, alarm_probability: float = 0.004,
                 member_weight: float = 0.25,
                 suppress_updates: int = 100, warmup: int = 150, cusum: dict | None = None,
                 baseline: dict | None = None, river: dict | None = None, surprise: dict | None = None):
        self.seed = int(seed)
        self.half_life = float(half_life)
        self.alarm_probability = float(alarm_probability)
        self.member_weight = float(member_weight)
        self.suppress_updates = int(suppress_updates)
        self.warmup = int(warmup)
        self.changepoint = RobustCusum(seed=self.seed, **(cusum or {}), **(baseline or {}))
        self.river = RiverVolatility(seed=self.seed + 1, **(river or {}))
        self.surprise = SeasonalSurprise(**{"warmup": self.warmup, "float32_profiles": True,
                                            "rebase_patience": 3, "rebase_z": 4.0, **(surprise or {})})
        self.calibrators = [TailCalibrator(half_life=self.half_life) for _ in CHANNELS]
        self._count = 0
        self._alarm_quiet = 0  # updates left before another alarm may page

    # -- state -------------------------------------------------------------------
    def _get_state(self) -> list:
        return [self.seed, self.half_life, self.alarm_probability, self.member_weight,
                self.suppress_updates, self.warmup, self._count, self._alarm_quiet,
                self.changepoint.to_bytes(), self.river.to_bytes(), self.surprise.to_bytes(),
                [c.get_state() for c in self.calibrators]]

    def _set_state(self, values: list) -> None:
        (self.seed, self.half_life, self.alarm_probability, self.member_weight,
         self.suppress_updates, self.warmup, self._count, self._alarm_quiet,
         changepoint, river, surprise, calibrators) = values
        self.changepoint = base.from_bytes(changepoint)
        self.river = base.from_bytes(river)
        self.surprise = base.from_bytes(surprise)
        self.calibrators = [TailCalibrator.from_state(c) for c in calibrators]

    # -- scoring -----------------------------------------------------------------
    def _raws(self, timestamp_s: float, value: float):
        """Raw channel values, and what learning needs: (raws, z_best, residual, expected, sigma)."""
        baseline = self.changepoint.baseline
        if baseline._count < baseline.min_count:
            zs, z_best, expected, sigma = [0.0] * len(MODEL_NAMES), 0.0, value, 0.0
            stat = 0.0
        else:
            zs, expected, sigma = baseline.family_z(timestamp_s, value)
            z_best = (value - expected) / sigma
            stat = self.changepoint.cusum.peek(z_best)
        river_raws = self.river.surprises(timestamp_s, value)[0]
        raws = [zs[i] for i in _SEASONAL_INDEX]
        raws += (stat, river_raws[0], river_raws[1])
        return raws, z_best, value - expected, expected, sigma

    def _combined_p(self, raws) -> float:
        """Bonferroni-combined tail probability; ``raws`` is replaced by calibrator positions."""
        p_min = 1.0
        for i, cal in enumerate(self.calibrators):
            pos = raws[i] = cal.position(raws[i])
            p = cal.tail_at(pos)
            if p < p_min:
                p_min = p
        p = p_min * len(raws)
        return p if p < 1.0 else 1.0

    def _combine(self, ss_raw: float, parts: tuple, p: float) -> float:
        """The backbone's pre-suppression score, raised by the members' evidence.

        ``z_eff + member_weight * (-log10 p)``: the backbone's calibrated surprise plus
        the members' Bonferroni-combined tail probability in decades (both calibrated
        on this series), mapped to [0, 1) by the backbone.
        """
        z = parts[0]
        if z is None or self._count < self.warmup:
            return ss_raw
        decades = -math.log10(p if p > 1e-300 else 1e-300)
        ss = self.surprise
        return ss.score_of(ss.calibrate(z) + self.member_weight * decades)

    def _decide(self, score: float, p: float, expected: float, sigma: float):
        band = self.changepoint.baseline.sigmas * sigma
        if self._count < self.warmup:
            return 0.0, expected, expected - band, expected + band, False
        is_alarm = p <= self.alarm_probability and self._alarm_quiet == 0
        return score, expected, expected - band, expected + band, is_alarm

    def _score(self, timestamp_s: float, value: float):
        raws, z_best, residual, expected, sigma = self._raws(timestamp_s, value)
        p = self._combined_p(raws)  # turns raws into calibrator positions
        ss_raw, parts = self.surprise.prescore(timestamp_s, value)
        combined = self._combine(ss_raw, parts, p)
        return raws, z_best, residual, expected, sigma, p, combined, parts

    def evaluate(self, timestamp_s: float, value: float):
        _, _, _, expected, sigma, p, combined, _ = self._score(timestamp_s, value)
        return self._decide(self.surprise.emit(combined), p, expected, sigma)

    def score_from_raw(self, raw: float) -> float:
        return raw  # evaluate() already returns the final [0, 1] score

    def channel_probabilities(self, timestamp_s: float, value: float) -> dict[str, float]:
        """Per-channel calibrated tail probabilities of ``value`` (diagnostics; no state change)."""
        raws = self._raws(timestamp_s, value)[0]
        return {name: cal.tail_probability(r) for name, r, cal in zip(CHANNELS, raws, self.calibrators)}

    def learn_one(self, timestamp_s: float, value: float) -> None:
        value, timestamp_s = float(value), float(timestamp_s)
        if not base.scorable(timestamp_s, value):
            return
        self._learn(timestamp_s, value, *self._score(timestamp_s, value))

    def _learn(self, timestamp_s, value, positions, z_best, residual, expected, sigma, p, combined, parts) -> None:
        for pos, cal in zip(positions, self.calibrators):
            cal.learn_at(pos)
        cp = self.changepoint
        if cp.baseline._count >= cp.baseline.min_count:
            cp.learn_residual(z_best, residual)
        cp.baseline.learn_one(timestamp_s, value)
        self.river.learn_one(timestamp_s, value)
        self.surprise.learn_prescored(value, combined, parts)
        if self._count >= self.warmup:
            if self._alarm_quiet > 0:
                self._alarm_quiet -= 1
            elif p <= self.alarm_probability:
                self._alarm_quiet = self.suppress_updates
        self._count += 1

    def update(self, timestamp_s: float, value: float) -> base.Detection:
        value, timestamp_s = float(value), float(timestamp_s)
        if not base.scorable(timestamp_s, value):
            return base.INVALID_DETECTION
        scored = self._score(timestamp_s, value)
        _, _, _, expected, sigma, p, combined, _ = scored
        decision = self._decide(self.surprise.emit(combined), p, expected, sigma)
        self._learn(timestamp_s, value, *scored)
        return base.Detection(*decision)
