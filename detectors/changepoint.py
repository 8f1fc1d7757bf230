"""Change-point detection: two-sided CUSUM on robust, seasonally adjusted residuals.

A single value far from the baseline is a spike; a *run* of moderately high
(or low) values is a shift, a ramp or a drift, which a point-wise threshold
catches late or never. Page's CUSUM accumulates standardised residuals minus
a slack ``k``::

    S+ = max(0, S+ + z - k)        S- = max(0, S- - z - k)

and signals when either exceeds ``h``; for a shift of δ σ it needs about
``h / (δ - k)`` values. Residuals come from a
:class:`~detectors.seasonal.SeasonalRobustBaseline` (so a daily peak is not a
shift) and are clipped at ``z_clip`` so a lone spike cannot fire it alone.
When it fires, the baseline is re-levelled by the run's mean residual and the
sums restart: a persistent new level is reported once, then becomes normal.

The raw output is ``max(S+, S-)``; ``score`` maps ``S / h`` to [0, 1) and
``is_anomaly`` is ``S > h``.

>>> import random
>>> rng = random.Random(1)
>>> d = RobustCusum()
>>> first = None
>>> for i in range(900):
...     level = 10.0 if i < 600 else 11.5          # a 1.5σ shift at i = 600
...     r = d.update(i * 300.0, level + rng.gauss(0.0, 1.0))
...     if r.is_anomaly and first is None:
...         first = i
>>> 600 <= first < 640
True
"""

from __future__ import annotations

from .base import OnlineDetector, register, skips_unscorable
from .seasonal import SeasonalRobustBaseline


class Cusum:
    """Two-sided Page CUSUM on a stream of z-scores (the statistic only).

    >>> c = Cusum(k=0.5, h=4.0)
    >>> [round(c.step(z), 1) for z in (0.2, 2.0, 2.0, 2.0)]
    [0.0, 1.5, 3.0, 4.5]
    """

    __slots__ = ("k", "h", "z_clip", "pos", "neg", "run_n", "run_sum")

    def __init__(self, k: float = 0.5, h: float = 8.0, z_clip: float = 4.0):
        self.k = float(k)
        self.h = float(h)
        self.z_clip = float(z_clip)
        self.pos = 0.0
        self.neg = 0.0
        self.run_n = 0  # values since the active sum last left 0
        self.run_sum = 0.0  # recent-weighted mean residual of the run, in value units (for re-levelling)

    def peek(self, z: float) -> float:
        """The statistic after ``z``, without changing state."""
        c = self.z_clip
        z = c if z > c else (-c if z < -c else z)
        pos = self.pos + z - self.k
        neg = self.neg - z - self.k
        return max(pos, neg, 0.0)

    def step(self, z: float, residual: float = 0.0) -> float:
        c = self.z_clip
        zc = c if z > c else (-c if z < -c else z)
        self.pos = max(0.0, self.pos + zc - self.k)
        self.neg = max(0.0, self.neg - zc - self.k)
        if self.pos > 0.0 or self.neg > 0.0:
            self.run_n += 1
            # recent residuals weigh more: the baseline has partly absorbed the early ones
            self.run_sum = residual if self.run_n == 1 else self.run_sum + 0.3 * (residual - self.run_sum)
        else:
            self.run_n = 0
            self.run_sum = 0.0
        return max(self.pos, self.neg)

    def reset(self) -> None:
        self.pos = self.neg = 0.0
        self.run_n = 0
        self.run_sum = 0.0

    def get_state(self) -> list:
        return [self.k, self.h, self.z_clip, self.pos, self.neg, self.run_n, self.run_sum]

    @classmethod
    def from_state(cls, values: list) -> "Cusum":
        obj = cls(values[0], values[1], values[2])
        obj.pos, obj.neg, obj.run_n, obj.run_sum = values[3], values[4], values[5], values[6]
        return obj


@register
class RobustCusum(OnlineDetector):
    """CUSUM change-point detector on a robust seasonal baseline's residuals."""

    name = "changepoint"
    STATE_VERSION = 1

    def __init__(self, k: float = 0.5, h: float = 8.0, z_clip: float = 4.0, seed: int = 0, **baseline_params):
        self.cusum = Cusum(k, h, z_clip)
        self.baseline = SeasonalRobustBaseline(seed=seed, **baseline_params)

    def _get_state(self) -> list:
        return [self.cusum.get_state(), self.baseline.to_bytes()]

    def _set_state(self, values: list) -> None:
        from .base import from_bytes

        self.cusum = Cusum.from_state(values[0])
        self.baseline = from_bytes(values[1])

    def score_from_raw(self, raw: float) -> float:
        # S / h through a saturating map: 0.5 at S = h/2, → 1 far beyond h
        x = raw / self.cusum.h
        return x / (x + 0.5) if x > 0 else 0.0

    def evaluate(self, timestamp_s: float, value: float):
        if self.baseline._count < self.baseline.min_count:
            return 0.0, value, value, value, False
        z, expected, sigma = self.baseline.residual_z(timestamp_s, value)
        stat = self.cusum.peek(z)
        band = self.baseline.sigmas * sigma
        return stat, expected, expected - band, expected + band, stat > self.cusum.h

    @skips_unscorable
    def learn_one(self, timestamp_s: float, value: float) -> None:
        b = self.baseline
        if b._count >= b.min_count:
            z, expected, _ = b.residual_z(timestamp_s, value)
            self.learn_residual(z, value - expected)
        b.learn_one(timestamp_s, value)

    def learn_residual(self, z: float, residual: float) -> None:
        """Advance the CUSUM by one residual; on a signal, re-level the baseline."""
        stat = self.cusum.step(z, residual)
        if stat > self.cusum.h:
            if self.cusum.run_n:
                self.baseline.rebase(self.cusum.run_sum)
            self.cusum.reset()
