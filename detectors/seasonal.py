"""Seasonality-aware robust baseline: daily and weekly profiles, Huber updates.

Four small forecasters run side by side and the one with the smallest recent
error (its robust scale) provides the expected value:

* ``fast`` / ``slow`` – a fast / slow local level (random-walk-like / noisy
  stationary series);
* ``daily`` – a level plus a daily profile: one bin per sampling interval
  (learned during warm-up), at most ``max_day_bins`` (288 = 5 minutes);
* ``weekly`` – a level plus a weekly profile of at most ``max_week_bins``
  (168 = hourly) bins.

The daily profile also keeps a per-hour scale (ad metrics are noisier at
peak hours than at night), used once a whole day has been seen.

Profiles are linearly interpolated between bin centres (so coarse bins still
follow a smooth curve) and kept as float32 (compact state). Every update is
Huber-type: residuals are clipped at ``huber_c`` robust σ before they move a
level or a profile, so an outlier is learned at a bounded weight instead of
dragging the baseline. The scale is an exponentially weighted mean absolute
residual (clipped too), converted to a Gaussian σ.

Level shifts: when a model's residuals stay beyond ``shift_sigmas`` on the same
side for ``shift_patience`` consecutive values, the level jumps by their mean
(re-baselining), so a persistent new level stops alarming after a while
instead of alarming forever. Because the profile only holds offsets from the
level, a shifted series keeps its learned daily shape.

The raw output is ``|z|`` of the chosen forecaster's residual.

>>> import math
>>> d = SeasonalRobustBaseline()
>>> day = 86400.0
>>> for i in range(7 * 288):              # a week of 5-minute values, daily cycle
...     t = i * 300.0
...     _ = d.update(t, 100 + 30 * math.sin(2 * math.pi * t / day))
>>> t = 7 * 288 * 300.0                   # next value, at midnight
>>> abs(d.detect(t, 100.0).expected - 100.0) < 2.0
True
>>> d.detect(t, 130.0).is_anomaly         # the peak's level, but six hours early
True
"""

from __future__ import annotations

import math
from array import array

from .base import OnlineDetector, register, skips_unscorable

_DAY = 86400.0
_WEEK = 7 * _DAY
_SIGMA_PER_MAD = math.sqrt(math.pi / 2.0)  # σ / E|X - μ| for a Gaussian
# The forecasters: (name, fast level?, profile: 0 none / 1 daily / 2 weekly).
# Only the slow-level seasonal forecasters teach their profile (the shape of the
# cycle around a steady level); the fast ones reuse it. A fast level plus a
# profile predicts the *change* expected at this time of day: it is surprised by
# a missing daily peak at its onset but not by a smooth, day-long surge.
MODELS = (
    ("fast", True, 0), ("slow", False, 0),
    ("daily_fast", True, 1), ("daily", False, 1),
    ("weekly_fast", True, 2), ("weekly", False, 2),
)
MODEL_NAMES = tuple(m[0] for m in MODELS)
_N = len(MODELS)
#: Residual families scored separately by the ensemble: the level-only models
#: (best of fast/slow), the daily model, the weekly model. A series can look
#: normal to one and abnormal to another (a missing daily peak is invisible to
#: a fast local level), so each family gets its own calibrated p-value.
FAMILIES = MODEL_NAMES


@register
class SeasonalRobustBaseline(OnlineDetector):
    """Robust level + daily/weekly profile forecasters; scores by the best one's residual |z|."""

    name = "seasonal"
    STATE_VERSION = 1
    _STATE_FIELDS = (
        "max_day_bins", "max_week_bins", "scale_bins", "fast_alpha", "level_alpha", "season_alpha",
        "scale_alpha", "huber_c", "shift_sigmas", "shift_patience", "sigmas", "min_count",
        "_levels", "_scales", "_run_n", "_run_sum", "_day", "_week", "_day_scale",
        "_count", "_t0", "_t_last", "_dt_min",
    )

    def __init__(self, max_day_bins: int = 288, max_week_bins: int = 168, scale_bins: int = 24,
                 fast_alpha: float = 0.5,
                 level_alpha: float = 0.03, season_alpha: float = 0.15, scale_alpha: float = 0.01,
                 huber_c: float = 2.5, shift_sigmas: float = 3.0, shift_patience: int = 12,
                 sigmas: float = 4.0, min_count: int = 12, seed: int = 0):
        self.max_day_bins = int(max_day_bins)
        self.max_week_bins = int(max_week_bins)
        self.scale_bins = int(scale_bins)
        self.fast_alpha = float(fast_alpha)
        self.level_alpha = float(level_alpha)
        self.season_alpha = float(season_alpha)
        self.scale_alpha = float(scale_alpha)
        self.huber_c = float(huber_c)
        self.shift_sigmas = float(shift_sigmas)
        self.shift_patience = int(shift_patience)
        self.sigmas = float(sigmas)
        self.min_count = int(min_count)
        self._levels = array("d", [0.0] * _N)  # deseasonalised level per forecaster
        self._scales = array("d", [0.0] * _N)  # EW mean |residual| per forecaster
        self._run_n = array("d", [0.0] * _N)  # signed length of the current same-side run of big residuals
        self._run_sum = array("d", [0.0] * _N)
        # Profiles are allocated at the end of the warm-up, one bin per sampling
        # interval (capped): 288 for 5-minute data, 24 for hourly data.
        self._day = array("f")
        self._week = array("f")
        # per-hour mean |residual|: ad metrics are noisier at peak hours than at night
        self._day_scale = array("f")
        self._count = 0
        self._t0 = 0.0
        self._t_last = 0.0
        self._dt_min = math.inf  # smallest positive sampling interval seen during warm-up
        self._restore_derived()

    # -- forecasting -------------------------------------------------------------
    @staticmethod
    def _interp(profile: array, scale: array | None, n: int, phase: float):
        """(value, scale, i0, i1, weight of i1) of a cyclic profile at ``phase`` in [0, 1)."""
        x = phase * n - 0.5
        fl = math.floor(x)
        f = x - fl
        i0 = int(fl) % n
        i1 = (i0 + 1) % n
        g = 1.0 - f
        sc = scale[i0] * g + scale[i1] * f if scale is not None else 0.0
        return profile[i0] * g + profile[i1] * f, sc, i0, i1, f

    _NO_SEASON = (0.0, 0.0, 0, 0, 0.0)

    def _seasons(self, timestamp_s: float):
        if not self._day:
            return self._NO_SEASON, self._NO_SEASON
        day_phase = (timestamp_s % _DAY) / _DAY
        day = self._interp(self._day, None, len(self._day), day_phase)
        week = self._interp(self._week, None, len(self._week), (timestamp_s % _WEEK) / _WEEK)
        n = len(self._day_scale)
        day_scale = self._day_scale[int(day_phase * n) % n]
        return (day[0], day_scale, day[2], day[3], day[4]), week

    def _allocate_profiles(self, timestamp_s: float) -> None:
        dt = self._dt_min if math.isfinite(self._dt_min) else 300.0
        self._day = array("f", [0.0] * int(min(self.max_day_bins, max(24, round(_DAY / dt)))))
        self._week = array("f", [0.0] * int(min(self.max_week_bins, max(28, round(_WEEK / dt)))))
        self._day_scale = array("f", [0.0] * self.scale_bins)
        self._t0 = timestamp_s

    def _best(self) -> int:
        s = self._scales
        best = 1
        for m in range(_N):
            if s[m] < s[best]:
                best = m
        return best

    def _predict(self, timestamp_s: float):
        """(forecasts, residual σ per forecaster, day interp, week interp) at ``timestamp_s``.

        Cached: ``detect`` and ``learn_one`` of the same value share one computation
        (the cache key changes whenever the state does).
        """
        key = (timestamp_s, self._count, self._epoch)
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        day, week = self._seasons(timestamp_s)
        lv = self._levels
        sc = self._scales
        season = (0.0, day[0], week[0])
        # per-bin σ for the daily forecasters once a whole day was seen: the geometric
        # mean of the hour's and the global scale (heteroscedastic, but a bin with few
        # or edge-blurred values cannot dominate)
        day_scale = day[1] if self._day and timestamp_s - self._t0 >= _DAY else -1.0
        preds = []
        sig = []
        for m, (_, _, prof) in enumerate(MODELS):
            level = lv[m]
            preds.append(level + season[prof])
            s = sc[m]
            if prof == 1 and day_scale >= 0.0:
                s2 = math.sqrt(day_scale * s)
                s = s2 if s2 > 0.3 * s else 0.3 * s
            s *= _SIGMA_PER_MAD
            # floor: a perfectly flat history still gives a finite (huge) z for a change
            floor = 1e-9 * ((level if level > 0 else -level) + 1.0)
            sig.append(s if s > floor else floor)
        result = (preds, sig, day, week)
        self._cache = (key, result)
        return result

    def _restore_derived(self) -> None:
        self._cache = None
        self._epoch = 0

    def family_z(self, timestamp_s: float, value: float) -> tuple[list[float], float, float]:
        """``([|z| per family], expected, sigma)``; expected/σ from the overall best forecaster."""
        preds, sig, _, _ = self._predict(timestamp_s)
        m = self._best()
        return [abs(value - preds[i]) / sig[i] for i in range(_N)], preds[m], sig[m]

    n_surprises = len(FAMILIES)

    def surprises(self, timestamp_s: float, value: float):
        if self._count < self.min_count:
            return [0.0] * len(FAMILIES), value, value, value
        zs, expected, sigma = self.family_z(timestamp_s, value)
        band = self.sigmas * sigma
        return zs, expected, expected - band, expected + band

    def residual_z(self, timestamp_s: float, value: float) -> tuple[float, float, float]:
        """``(z, expected, sigma)`` of ``value`` under the currently best forecaster."""
        preds, sig, _, _ = self._predict(timestamp_s)
        m = self._best()
        return (value - preds[m]) / sig[m], preds[m], sig[m]

    def evaluate(self, timestamp_s: float, value: float):
        if self._count < self.min_count:
            return 0.0, value, value, value, False
        z, expected, sigma = self.residual_z(timestamp_s, value)
        band = self.sigmas * sigma
        return abs(z), expected, expected - band, expected + band, abs(z) > self.sigmas

    # -- learning ----------------------------------------------------------------
    @skips_unscorable
    def learn_one(self, timestamp_s: float, value: float) -> None:
        preds, sig, day, week = self._predict(timestamp_s)
        lv, sc = self._levels, self._scales
        if self._count == 0:
            for m in range(_N):
                lv[m] = value
            self._count = 1
            self._t_last = timestamp_s
            return
        warm = self._count < self.min_count
        if warm:
            gap = timestamp_s - self._t_last
            if 1.0 <= gap < self._dt_min:
                self._dt_min = gap
        self._t_last = timestamp_s
        # early on, average rather than fade so the first values count fully
        rate = 1.0 / (self._count + 1)
        c = self.huber_c
        scale_alpha = self.scale_alpha
        shift_sigmas = self.shift_sigmas
        run_n, run_sum = self._run_n, self._run_sum
        has_profiles = bool(self._day)
        covered = timestamp_s - self._t0
        for m, (_, fast, prof) in enumerate(MODELS):
            r = value - preds[m]
            ar = r if r >= 0.0 else -r
            sigma = sig[m]
            # a seasonal forecaster is still learning its shape during its first cycle:
            # learn unclipped, put the residual into the profile, never call it a shift
            first_cycle = prof and has_profiles and covered < (_DAY if prof == 1 else _WEEK)
            learning_shape = warm or first_cycle
            if learning_shape:
                rc = r
                arc = ar
                sc[m] += (rate if warm else scale_alpha) * (ar - sc[m])
                alpha = self.fast_alpha if fast else self.level_alpha
                if rate > alpha:
                    alpha = rate
            else:
                # Huber: a residual's influence on level, profile and scale is bounded
                bound = c * sigma
                if ar > bound:
                    rc = bound if r > 0.0 else -bound
                    arc = bound
                else:
                    rc = r
                    arc = ar
                sc[m] += scale_alpha * (arc - sc[m])
                alpha = self.fast_alpha if fast else self.level_alpha
            lv[m] += alpha * rc
            if prof and has_profiles and not fast:
                # the part of the residual the level did not absorb goes to the profile
                step = (1.0 if first_cycle else self.season_alpha) * (1.0 - alpha) * rc
                if prof == 1:
                    prof_arr, i0, i1, f = self._day, day[2], day[3], day[4]
                    sa = self._day_scale
                    j = int((timestamp_s % _DAY) / _DAY * len(sa)) % len(sa)
                    sa[j] = sa[j] + scale_alpha * 4.0 * (arc - sa[j]) if sa[j] else arc
                else:
                    prof_arr, i0, i1, f = self._week, week[2], week[3], week[4]
                prof_arr[i0] += step * (1.0 - f)
                prof_arr[i1] += step * f
            # level shifts: a long run of big same-side residuals re-baselines the level
            if not learning_shape and ar > shift_sigmas * sigma:
                side = 1.0 if r > 0 else -1.0
                if run_n[m] * side > 0:
                    run_n[m] += side
                    run_sum[m] += r
                else:
                    run_n[m] = side
                    run_sum[m] = r
                n = run_n[m] if run_n[m] > 0 else -run_n[m]
                if n >= self.shift_patience:
                    lv[m] += run_sum[m] / n - alpha * rc
                    run_n[m] = 0.0
                    run_sum[m] = 0.0
            elif run_n[m]:
                run_n[m] = 0.0
                run_sum[m] = 0.0
        self._count += 1
        if self._count == self.min_count:
            self._allocate_profiles(timestamp_s)

    def rebase(self, shift: float) -> None:
        """Move every level by ``shift`` (used by a change-point detector on top)."""
        self._epoch += 1
        for m in range(_N):
            self._levels[m] += shift
            self._run_n[m] = 0.0
            self._run_sum[m] = 0.0

    @property
    def model(self) -> str:
        """Name of the forecaster currently providing the expected value."""
        return MODEL_NAMES[self._best()]
