"""The final score: calibrated detectors, combined, post-processed for alerting.

Members (one shared baseline, so the seasonal work is done once per value):

* :class:`~detectors.changepoint.RobustCusum`, whose
  :class:`~detectors.seasonal.SeasonalRobustBaseline` gives three residual
  surprises (its fast forecasters: local level, local level + daily profile,
  local level + weekly profile) and the CUSUM statistic on the best
  forecaster's residuals;
* :class:`~detectors.river_models.RiverVolatility`: jump and volatility change.

Calibration: each raw surprise is turned into a tail probability
``p_i = P(R_i >= r)`` by its own :class:`~detectors.calibration.TailCalibrator`,
an online, slowly fading ECDF of that surprise's past values *on this series*.
So a z of 4 on a heavy-tailed series is not alarming while a z of 4 on a
quiet one is, and members with different scales become comparable. 
Combination: Bonferroni, ``p = min(1, m · min_i p_i)`` over the ``m``
calibrated channels: an alarm needs one channel to be confidently surprised,
and adding channels costs a known factor. ``score = min(1, -log10(p) /
score_decades)`` keeps resolution in the far tail.

Decision and post-processing for alerting cost (NAB charges every
false-positive row and rewards the *first* detection of an anomaly most):

* a *detection* is ``p <= detection_probability`` (0.025: about where, under
  NAB's costs, reporting starts to pay); after one, scores are multiplied by
  ``suppressed_factor`` for ``suppress_updates`` updates, as HTM and ARTime
  do, so one incident is reported once. Strong evidence
  (``p <= breakthrough_probability``) breaks through a quiet period started by
  a weaker detection, once;
* an *alarm* (``is_anomaly``, the paging decision) is the stricter
  ``p <= alarm_probability`` (0.004), at most once per ``suppress_updates``.

Until ``warmup`` values have been seen the score is 0.

>>> import detectors, math, random
>>> rng = random.Random(0)
>>> d = detectors.make("ensemble", seed=0)
>>> rs = [d.update(i * 300.0, 10 + math.sin(i / 5) + rng.gauss(0, 0.2)) for i in range(2000)]
>>> max(r.score for r in rs) < 0.5
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
    """Calibrated ensemble of the seasonal baseline, CUSUM and river volatility, with alarm suppression."""

    name = "ensemble"
    STATE_VERSION = 1

    def __init__(self, seed: int = 0, half_life: float = 2000.0, alarm_probability: float = 0.004,
                 detection_probability: float = 0.025, breakthrough_probability: float = 1e-3,
                 score_decades: float = 6.0,
                 suppress_updates: int = 100, suppressed_factor: float = 0.0,
                 warmup: int = 150, cusum: dict | None = None,
                 baseline: dict | None = None, river: dict | None = None):
        self.seed = int(seed)
        self.half_life = float(half_life)
        self.alarm_probability = float(alarm_probability)
        self.detection_probability = float(detection_probability)
        self.breakthrough_probability = float(breakthrough_probability)
        self.score_decades = float(score_decades)
        self.suppress_updates = int(suppress_updates)
        self.suppressed_factor = float(suppressed_factor)
        self.warmup = int(warmup)
        self.changepoint = RobustCusum(seed=self.seed, **(cusum or {}), **(baseline or {}))
        self.river = RiverVolatility(seed=self.seed + 1, **(river or {}))
        self.calibrators = [TailCalibrator(half_life=self.half_life) for _ in CHANNELS]
        self._count = 0
        self._quiet = 0  # updates left in the post-detection suppression period
        self._quiet_strong = False  # was that period started (or broken through) by strong evidence?
        self._alarm_quiet = 0  # updates left before another alarm may page

    # -- state -------------------------------------------------------------------
    def _get_state(self) -> list:
        return [self.seed, self.half_life, self.alarm_probability, self.detection_probability,
                self.breakthrough_probability, self.score_decades, self.suppress_updates, self.suppressed_factor,
                self.warmup, self._count, self._quiet, self._quiet_strong, self._alarm_quiet,
                self.changepoint.to_bytes(), self.river.to_bytes(), [c.get_state() for c in self.calibrators]]

    def _set_state(self, values: list) -> None:
        (self.seed, self.half_life, self.alarm_probability, self.detection_probability,
         self.breakthrough_probability, self.score_decades, self.suppress_updates, self.suppressed_factor,
         self.warmup, self._count, self._quiet, self._quiet_strong, self._alarm_quiet,
         changepoint, river, calibrators) = values
        self.changepoint = base.from_bytes(changepoint)
        self.river = base.from_bytes(river)
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

    def _decide(self, p: float, expected: float, sigma: float, value: float):
        band = self.changepoint.baseline.sigmas * sigma
        if self._count < self.warmup:
            return 0.0, expected, expected - band, expected + band, False
        score = -math.log10(p if p > 1e-300 else 1e-300) / self.score_decades
        if score > 1.0:
            score = 1.0
        if self._quiet > 0 and not (p <= self.breakthrough_probability and not self._quiet_strong):
            score *= self.suppressed_factor
        is_alarm = p <= self.alarm_probability and self._alarm_quiet == 0
        return score, expected, expected - band, expected + band, is_alarm

    def evaluate(self, timestamp_s: float, value: float):
        raws, _, _, expected, sigma = self._raws(timestamp_s, value)
        return self._decide(self._combined_p(raws), expected, sigma, value)

    def score_from_raw(self, raw: float) -> float:
        return raw  # evaluate() already returns the final [0, 1] score

    def channel_probabilities(self, timestamp_s: float, value: float) -> dict[str, float]:
        """Per-channel calibrated tail probabilities of ``value`` (diagnostics; no state change)."""
        raws = self._raws(timestamp_s, value)[0]
        return {name: cal.tail_probability(r) for name, r, cal in zip(CHANNELS, raws, self.calibrators)}

    def learn_one(self, timestamp_s: float, value: float) -> None:
        raws, z_best, residual, _, _ = self._raws(timestamp_s, value)
        p = self._combined_p(raws)  # turns raws into calibrator positions
        self._learn(timestamp_s, value, raws, z_best, residual, p)

    def _learn(self, timestamp_s, value, positions, z_best, residual, p) -> None:
        for pos, cal in zip(positions, self.calibrators):
            cal.learn_at(pos)
        cp = self.changepoint
        if cp.baseline._count >= cp.baseline.min_count:
            cp.learn_residual(z_best, residual)
        cp.baseline.learn_one(timestamp_s, value)
        self.river.learn_one(timestamp_s, value)
        if self._count >= self.warmup:
            strong = p <= self.breakthrough_probability
            if self._quiet > 0:
                self._quiet -= 1
                if strong and not self._quiet_strong:
                    # strong evidence breaking through a period started by a weak detection
                    self._quiet, self._quiet_strong = self.suppress_updates, True
            elif p <= self.detection_probability:
                self._quiet, self._quiet_strong = self.suppress_updates, strong
            if self._alarm_quiet > 0:
                self._alarm_quiet -= 1
            elif p <= self.alarm_probability:
                self._alarm_quiet = self.suppress_updates
        self._count += 1

    def update(self, timestamp_s: float, value: float) -> base.Detection:
        value = float(value)
        if not math.isfinite(value):
            return base.INVALID_DETECTION
        timestamp_s = float(timestamp_s)
        raws, z_best, residual, expected, sigma = self._raws(timestamp_s, value)
        p = self._combined_p(raws)
        decision = self._decide(p, expected, sigma, value)
        self._learn(timestamp_s, value, raws, z_best, residual, p)
        return base.Detection(*decision)
