"""The seed's rule as a reference detector: a trailing-window Gaussian.

The seed alarms when a 5-minute window's average falls below the last hour's
mean minus 2σ. Generalised to an online detector: keep the last ``window``
values (12 = one hour of 5-minute windows), and score a new value by the
Gaussian two-sided tail probability of its z-score against them,
``score = P(|Z| < |z|)``. ``is_anomaly`` is ``|z| > sigmas`` on the configured
side (``direction="low"`` is exactly the seed's rule).

>>> d = WindowedGaussian(window=12, sigmas=2.0, direction="low")
>>> for i in range(12):
...     _ = d.update(i * 300.0, 100.0 + (i % 3))
>>> r = d.update(12 * 300.0, 80.0)
>>> r.is_anomaly, r.lower < 100.0 < r.upper
(True, True)
>>> d.update(13 * 300.0, 130.0).is_anomaly   # above the band: not a drop
False
"""

from __future__ import annotations

import math
from array import array

from .base import OnlineDetector, register, skips_unscorable


@register
class WindowedGaussian(OnlineDetector):
    """Trailing-window mean ± k·σ (the seed's reference rule)."""

    name = "windowed_gaussian"
    STATE_VERSION = 1
    _STATE_FIELDS = ("window", "sigmas", "direction", "min_count", "_values", "_count", "_pos")

    def __init__(self, window: int = 12, sigmas: float = 2.0, direction: str = "both",
                 min_count: int = 3, seed: int = 0):
        if window < 2:
            raise ValueError("window must be >= 2")
        if direction not in ("both", "low", "high"):
            raise ValueError("direction must be 'both', 'low' or 'high'")
        self.window = int(window)
        self.sigmas = float(sigmas)
        self.direction = direction
        self.min_count = max(2, int(min_count))
        self._values = array("d", [0.0] * self.window)  # ring buffer
        self._count = 0
        self._pos = 0

    def _mean_std(self) -> tuple[float, float]:
        n = min(self._count, self.window)
        vals = self._values if n == self.window else self._values[:n]
        mean = sum(vals) / n
        var = sum((v - mean) * (v - mean) for v in vals) / (n - 1)
        return mean, math.sqrt(var)

    def evaluate(self, timestamp_s: float, value: float):
        if self._count < self.min_count:
            return 0.0, value, value, value, False
        mean, std = self._mean_std()
        band = self.sigmas * std
        if std > 0.0:
            z = (value - mean) / std
        else:  # a flat window: any change is infinitely surprising
            z = 0.0 if value == mean else math.copysign(math.inf, value - mean)
        if self.direction == "low":
            is_anomaly = z < -self.sigmas
        elif self.direction == "high":
            is_anomaly = z > self.sigmas
        else:
            is_anomaly = abs(z) > self.sigmas
        return abs(z), mean, mean - band, mean + band, is_anomaly

    @skips_unscorable
    def learn_one(self, timestamp_s: float, value: float) -> None:
        self._values[self._pos] = value
        self._pos = (self._pos + 1) % self.window
        self._count += 1
