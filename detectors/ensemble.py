"""The final score: calibrated members, combined, post-processed for alarms.

Each member's raw surprise is turned into a tail probability ``p_i`` by its own
:class:`~detectors.calibration.TailCalibrator` (an online ECDF of that
member's recent raw outputs on *this* series), so members with different
scales and series with different noise become comparable. The combined
probability is Bonferroni's ``p = min(1, m · min_i p_i)``: an alarm needs one
member to be confidently surprised, and adding members costs a known factor.

The score is ``1 - p`` mapped through ``-log10`` so that the tail keeps
resolution: ``score = min(1, -log10(p) / score_decades)``.

Post-processing for alerting cost (NAB charges every false-positive row, and
rewards the *first* detection of an anomaly most): after an alarm, scores are
damped for ``suppress_updates`` updates, as HTM and ARTime do, so one incident
pages once. Until ``warmup`` values have been seen, the score is 0.

>>> import detectors, math
>>> d = detectors.make("ensemble", seed=0)
>>> rs = [d.update(i * 300.0, 10.0 + math.sin(i / 5.0)) for i in range(600)]
>>> max(r.score for r in rs[200:]) < 0.8
True
>>> d.update(600 * 300.0, 25.0).is_anomaly
True
"""

from __future__ import annotations

import math

from . import base
from .base import OnlineDetector, register
from .calibration import TailCalibrator

DEFAULT_MEMBERS = (
    ("windowed_gaussian", {"window": 48}),
)


@register
class Ensemble(OnlineDetector):
    """Calibrated ensemble of online detectors with alarm suppression."""

    name = "ensemble"
    STATE_VERSION = 1

    def __init__(self, seed: int = 0, members=DEFAULT_MEMBERS, half_life: float = 2000.0,
                 alarm_probability: float = 1e-3, score_decades: float = 6.0,
                 suppress_updates: int = 100, suppressed_factor: float = 0.5, warmup: int = 150):
        from . import make

        self.seed = int(seed)
        self.half_life = float(half_life)
        self.alarm_probability = float(alarm_probability)
        self.score_decades = float(score_decades)
        self.suppress_updates = int(suppress_updates)
        self.suppressed_factor = float(suppressed_factor)
        self.warmup = int(warmup)
        self.members = [make(name, seed=self.seed + i, **dict(params)) for i, (name, params) in enumerate(members)]
        self.calibrators = [TailCalibrator(half_life=self.half_life) for _ in self.members]
        self._count = 0
        self._quiet = 0  # updates left in the post-alarm suppression period

    # -- state -------------------------------------------------------------------
    def _get_state(self) -> list:
        return [self.seed, self.half_life, self.alarm_probability, self.score_decades, self.suppress_updates,
                self.suppressed_factor, self.warmup, self._count, self._quiet,
                [m.to_bytes() for m in self.members], [c.get_state() for c in self.calibrators]]

    def _set_state(self, values: list) -> None:
        (self.seed, self.half_life, self.alarm_probability, self.score_decades, self.suppress_updates,
         self.suppressed_factor, self.warmup, self._count, self._quiet, members, calibrators) = values
        self.members = [base.from_bytes(b) for b in members]
        self.calibrators = [TailCalibrator.from_state(c) for c in calibrators]

    # -- scoring -----------------------------------------------------------------
    def _combine(self, timestamp_s: float, value: float):
        """Members' evaluations, raws, and the combined tail probability."""
        evaluations = [m.evaluate(timestamp_s, value) for m in self.members]
        p_min = 1.0
        for ev, cal in zip(evaluations, self.calibrators):
            p = cal.tail_probability(ev[0])
            if p < p_min:
                p_min = p
        return evaluations, min(1.0, p_min * len(self.members))

    def _finish(self, evaluations, p: float):
        expected, lower, upper = evaluations[0][1], evaluations[0][2], evaluations[0][3]
        if self._count < self.warmup:
            return 0.0, expected, lower, upper, False
        score = min(1.0, -math.log10(max(p, 1e-300)) / self.score_decades)
        is_alarm = p <= self.alarm_probability
        if self._quiet > 0:
            score *= self.suppressed_factor
            is_alarm = False
        return score, expected, lower, upper, is_alarm

    def evaluate(self, timestamp_s: float, value: float):
        evaluations, p = self._combine(timestamp_s, value)
        return self._finish(evaluations, p)

    def score_from_raw(self, raw: float) -> float:
        return raw  # evaluate() already returns the final [0, 1] score

    def learn_one(self, timestamp_s: float, value: float) -> None:
        self._learn(timestamp_s, value, *self._combine(timestamp_s, value))

    def _learn(self, timestamp_s, value, evaluations, p) -> None:
        for ev, cal, member in zip(evaluations, self.calibrators, self.members):
            cal.learn_one(ev[0])
            member.learn_one(timestamp_s, value)
        if self._quiet > 0:
            self._quiet -= 1
        elif self._count >= self.warmup and p <= self.alarm_probability:
            self._quiet = self.suppress_updates
        self._count += 1

    def update(self, timestamp_s: float, value: float) -> base.Detection:
        value = float(value)
        if not math.isfinite(value):
            return base.INVALID_DETECTION
        timestamp_s = float(timestamp_s)
        evaluations, p = self._combine(timestamp_s, value)
        score, expected, lower, upper, is_alarm = self._finish(evaluations, p)
        self._learn(timestamp_s, value, evaluations, p)
        return base.Detection(score, expected, lower, upper, is_alarm)
