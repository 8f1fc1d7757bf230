"""River-based detector: jumps and volatility changes from exponentially weighted stats.

``RiverVolatility`` watches the first differences ``d = x_t - x_{t-1}`` with
river's exponentially weighted statistics (``river.stats.EWMean`` /
``river.stats.EWVar``, implemented in Rust, ~0.1 µs per update):

* a long-memory mean/variance of ``d`` (``long_fading``), fed with differences
  clipped at ``clip`` σ so a burst of spikes does not inflate it;
* a short-memory variance of ``d`` (``short_fading``).

It exposes two surprises: the *jump* ``|d - mean| / σ_long`` (a spike or step
seen at its first value, whatever the level or season), and the *volatility
change* ``|ln(var_short / var_long)|`` (noise bursts, and the opposite: a
signal that suddenly goes flat, e.g. a stuck sensor or a frozen counter).
``score``/``is_anomaly`` of a standalone instance use the jump as a Gaussian z.

State is the river objects' own compact Rust state (24-48 bytes each), so the
serialised detector stays around 200 bytes.

>>> import random
>>> rng = random.Random(0)
>>> d = RiverVolatility()
>>> for i in range(500):
...     _ = d.update(i * 300.0, 50.0 + rng.gauss(0.0, 1.0))
>>> d.detect(500 * 300.0, 60.0).is_anomaly        # a 10σ jump
True
>>> for i in range(40):                      # the signal freezes: volatility collapses
...     _ = d.update((500 + i) * 300.0, 50.0)
>>> d.surprises(540 * 300.0, 50.0)[0][1] > 2.5
True
"""

from __future__ import annotations

import math

from river import stats

from .base import OnlineDetector, register, skips_unscorable


def _river_state(stat, attr: str) -> bytes:
    return getattr(stat, attr).__getstate__()


def _restore(stat, attr: str, blob: bytes):
    getattr(stat, attr).__setstate__(blob)
    return stat


@register
class RiverVolatility(OnlineDetector):
    """Jump and volatility-change scorer on first differences (river EW statistics)."""

    name = "river_volatility"
    STATE_VERSION = 1
    n_surprises = 2

    def __init__(self, long_fading: float = 0.005, short_fading: float = 0.1, clip: float = 5.0,
                 sigmas: float = 4.0, min_count: int = 12, seed: int = 0):
        self.long_fading = float(long_fading)
        self.short_fading = float(short_fading)
        self.clip = float(clip)
        self.sigmas = float(sigmas)
        self.min_count = int(min_count)
        self._long_mean = stats.EWMean(self.long_fading)
        self._long_var = stats.EWVar(self.long_fading)
        self._short_var = stats.EWVar(self.short_fading)
        self._last = 0.0
        self._count = 0

    # -- state ---------------------------------------------------------------
    def _get_state(self) -> list:
        return [self.long_fading, self.short_fading, self.clip, self.sigmas, self.min_count, self._last,
                self._count, _river_state(self._long_mean, "_ewmean"), _river_state(self._long_var, "_ewvar"),
                _river_state(self._short_var, "_ewvar")]

    def _set_state(self, values: list) -> None:
        (self.long_fading, self.short_fading, self.clip, self.sigmas, self.min_count, self._last,
         self._count, long_mean, long_var, short_var) = values
        self._long_mean = _restore(stats.EWMean(self.long_fading), "_ewmean", long_mean)
        self._long_var = _restore(stats.EWVar(self.long_fading), "_ewvar", long_var)
        self._short_var = _restore(stats.EWVar(self.short_fading), "_ewvar", short_var)

    # -- scoring -------------------------------------------------------------
    def _floor(self) -> float:
        # a flat history still gives finite surprises: variance floor relative to the level
        return 1e-18 * (abs(self._last) + 1.0) ** 2

    def _jump(self, value: float) -> tuple[float, float, float]:
        """(|z| of the difference, expected value, σ of the difference)."""
        mean = self._long_mean.get()
        var = max(self._long_var.get(), self._floor())
        sd = math.sqrt(var)
        return abs(value - self._last - mean) / sd, self._last + mean, sd

    def surprises(self, timestamp_s: float, value: float):
        if self._count < self.min_count:
            return [0.0, 0.0], value, value, value
        jump, expected, sd = self._jump(value)
        floor = self._floor()
        long_var = max(self._long_var.get(), floor)
        # volatility *before* this value: this value's own jump is the other surprise
        short_var = max(self._short_var.get(), floor)
        vol = abs(math.log(short_var / long_var))
        band = self.sigmas * sd
        return [jump, vol], expected, expected - band, expected + band

    def evaluate(self, timestamp_s: float, value: float):
        if self._count < self.min_count:
            return 0.0, value, value, value, False
        jump, expected, sd = self._jump(value)
        band = self.sigmas * sd
        return jump, expected, expected - band, expected + band, jump > self.sigmas

    @skips_unscorable
    def learn_one(self, timestamp_s: float, value: float) -> None:
        if self._count > 0:
            d = value - self._last
            if self._count > self.min_count:
                # clip the difference so spikes do not inflate the long-memory scale
                mean = self._long_mean.get()
                bound = self.clip * math.sqrt(max(self._long_var.get(), self._floor()))
                d_long = min(max(d, mean - bound), mean + bound)
            else:
                d_long = d
            self._long_mean.update(d_long)
            self._long_var.update(d_long)
            self._short_var.update(d)
        self._last = value
        self._count += 1
