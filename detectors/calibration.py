"""Online calibration of raw detector outputs to tail probabilities.

Raw outputs of different detectors (z-scores, CUSUM statistics, ...) are not
comparable with each other nor across series: a z of 4 is rare on a Gaussian
series and routine on a heavy-tailed one. ``TailCalibrator`` keeps an
exponentially-fading histogram of a detector's own recent raw outputs and
turns a new raw output ``r`` into ``p = P(R >= r)`` under that history. Beyond
the observed range it extrapolates with an exponential tail fitted to the
upper bins (a peaks-over-threshold estimate), so that "far beyond anything
seen" gets a smaller p than "just at the maximum seen".

Bins are on a log scale of ``1 + r`` so 24 float32 counters cover raw
values from 0 to ~250 with relative resolution; the fading uses a growing
increment instead of decaying every counter, so an update is O(1) and a query
O(bins).

>>> c = TailCalibrator(half_life=500)
>>> for i in range(2000):
...     c.learn_one(abs(((i * 7919) % 1000) / 250.0 - 2.0))   # raw values in [0, 2]
>>> c.tail_probability(0.0) > 0.9 and c.tail_probability(1.9) < 0.1
True
>>> c.tail_probability(10.0) < c.tail_probability(3.0) < 0.01
True
"""

from __future__ import annotations

import math
from array import array

_LOG2 = math.log(2.0)
MAX_EXTRAPOLATION_OCTAVES = 3.0


class TailCalibrator:
    """Fading histogram of raw scores → tail probability ``P(R >= r)``."""

    __slots__ = ("bins_per_octave", "n_bins", "half_life", "_counts", "_weight", "_total", "_growth")

    def __init__(self, half_life: float = 2000.0, bins_per_octave: int = 3, n_bins: int = 24):
        self.bins_per_octave = int(bins_per_octave)
        self.n_bins = int(n_bins)
        self.half_life = float(half_life)
        self._counts = array("f", [0.0] * self.n_bins)
        self._weight = 1.0  # increment of the next observation (grows instead of decaying counts)
        self._total = 0.0
        self._growth = 2.0 ** (1.0 / self.half_life)

    # -- state ---------------------------------------------------------------
    def get_state(self) -> list:
        return [self.half_life, self.bins_per_octave, self.n_bins, self._counts, self._weight, self._total]

    @classmethod
    def from_state(cls, values: list) -> "TailCalibrator":
        half_life, bpo, n_bins, counts, weight, total = values
        obj = cls(half_life, bpo, n_bins)
        obj._counts = counts
        obj._weight = weight
        obj._total = total
        return obj

    # -- learning --------------------------------------------------------------
    def _position(self, r: float) -> float:
        """Continuous bin coordinate of raw value ``r`` (bin i covers [i, i+1))."""
        if r <= 0.0 or r != r:
            return 0.0
        if r > 1e12:  # infinite surprise (e.g. a change on a flat series): top bin and beyond
            r = 1e12
        return math.log(1.0 + r) / _LOG2 * self.bins_per_octave

    def learn_one(self, r: float) -> None:
        self.learn_at(self._position(r))

    def learn_at(self, pos: float) -> None:
        """:meth:`learn_one` of a raw value given by its :meth:`position`."""
        b = int(pos)
        if b >= self.n_bins:
            b = self.n_bins - 1
        w = self._weight
        self._counts[b] += w
        self._total += w
        self._weight = w * self._growth
        if self._weight > 1e6:  # rescale before float32 counters lose resolution
            scale = 1.0 / self._weight
            for i in range(self.n_bins):
                self._counts[i] *= scale
            self._total *= scale
            self._weight = 1.0

    @property
    def effective_count(self) -> float:
        """Total weight in units of the newest observation (≈ observations seen, capped by fading)."""
        return self._total / self._weight if self._total else 0.0

    # -- query -----------------------------------------------------------------
    def tail_probability(self, r: float) -> float:
        """``P(R >= r)`` under the faded history (with a +1 prior observation at +∞)."""
        return self.tail_at(self._position(r))

    position = _position

    def tail_at(self, pos: float) -> float:
        """:meth:`tail_probability` of a raw value given by its :meth:`position`."""
        total = self._total
        prior = self._weight  # one pseudo-observation "beyond anything", at the newest weight
        if total <= 0.0:
            return 1.0
        b = int(pos)
        counts = self._counts
        n = self.n_bins
        if b >= n:
            # the top bin is open-ended: everything in it counts as ">= r"
            b = n - 1
            frac = 0.0
        else:
            frac = pos - b
        above = sum(counts[b + 1:]) if b + 1 < n else 0.0
        tail = above + counts[b] * (1.0 - frac)
        if tail > 0.0 or b == 0:
            return (tail + prior) / (total + prior)
        # r lies beyond every observation: exponential tail through the highest
        # occupied bin, decaying by e per octave of (1 + r) beyond it, but by no
        # more than e^-MAX_EXTRAPOLATION_OCTAVES in total: with no data out there,
        # "a million times the record" is not a million times more evidence.
        top = b
        while top > 0 and counts[top] <= 0.0:
            top -= 1
        excess_octaves = (pos - (top + 1)) / self.bins_per_octave
        if excess_octaves > MAX_EXTRAPOLATION_OCTAVES:
            excess_octaves = MAX_EXTRAPOLATION_OCTAVES
        p_edge = prior / (total + prior)
        return p_edge * math.exp(-max(0.0, excess_octaves))
