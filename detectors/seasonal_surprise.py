"""Seasonal surprise: model-selected level forecast, per-stream calibration, alarm suppression.

A small, NAB-oriented detector with one set of defaults for every series.
Per value ``x`` at time ``t`` (strictly causal: scored from earlier values
only, then learned):

1. **Two forecasters of the level**, exponentially weighted, with an
   effective memory of ``half_life`` rows (a plain average until then):

   * *global*: a mean and a mean absolute deviation;
   * *seasonal*: a time-of-day profile of ``n_bins`` bins (UTC time of day of
     the timestamp, 48 = half-hour bins), each bin with its own mean and mean
     absolute deviation, learned with a memory of ``bin_memory`` visits (days).

   The one with the smaller running mean absolute residual provides the
   forecast and the scale (automatic seasonal / non-seasonal selection, no
   period fitting). A bin is used once it has seen 3 values.
2. **Surprise** ``z = max(level, spike_weight * spike)``: the level surprise is
   ``|x - forecast| / scale``; the spike surprise is the size of this step
   relative to the mean absolute step, where the step is that of the raw value
   (global forecaster) or of the *seasonal residual* (seasonal forecaster), so a
   regular daily jump (square wave, saw-tooth) is not a spike.
3. **Per-stream calibration**: a stochastic quantile tracker follows the
   ``quantile`` (99th percentile) ``q`` of ``z`` on this series, and
   ``z_eff = z / max(1, q / calibration_level)``. Series that are always
   "surprising" (spiky, noisy) are damped, so one global threshold works.
4. ``score = 1 - 1 / (1 + (z_eff / z_scale)^3)`` in [0, 1).
5. **Post-processing** for alerting cost: 0 during the first ``warmup`` rows;
   a score is emitted only if it beats every score emitted in the last
   ``refractory`` rows (else 0), so an episode yields one detection, or a few
   increasing ones. This does not depend on any threshold.

``is_anomaly`` is ``score >= alarm_score`` (after post-processing, so it
pages at most once per episode). ``expected`` is the forecast and the band is
``± band_width`` mean absolute deviations.

Measured on ``/work/shared/nab`` (19 files, defaults, ``python -m detectors.nab
run --detector seasonal_surprise`` + ``score``): standard 71.22, low-FP 62.13,
low-FN 76.54. The defaults were selected on those same files: see README.

State: two float64 profiles and one byte per bin, ~1 KB with 48 bins
(``float32_profiles=True``: ~0.6 KB, same NAB scores).

Limitations: there is no weekly model. On a series with a weekly pattern the
first weekend is scored as an anomalous episode, and the calibration it
inflates damps the next days (a ×1.6 spike on the first Sunday is missed).
Opt-in ``rebase_patience`` > 0 (default 0 = off; the ensemble uses 3 with
``rebase_z=4``) gives the time-of-day forecaster a level offset: after
``rebase_patience`` consecutive same-side residuals beyond ``rebase_z`` bin
MADs (while that forecaster is selected) the offset moves by their mean and
the profile learns values minus the offset, so a persistent new level stops
surprising after a few values (the first weekend is then one detection).
Until the time-of-day bins have a few values each (about the first day), a
cycle that is not daily can give a detection or two.

>>> import math, random
>>> import detectors
>>> rng = random.Random(0)
>>> d = detectors.make("seasonal_surprise")
>>> rs = [d.update(i * 300.0, 10 + 3 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.3))
...       for i in range(3 * 288)]
>>> max(r.score for r in rs[300:]) < 0.33        # a clean daily cycle: no alarm
True
>>> r = d.update(3 * 288 * 300.0, 25.0)          # a spike at midnight
>>> r.is_anomaly, abs(r.expected - 10.0) < 0.5
(True, True)
>>> d2 = detectors.from_bytes(d.to_bytes())
>>> d2.update(3 * 288 * 300.0 + 300.0, 10.2) == d.update(3 * 288 * 300.0 + 300.0, 10.2)
True
"""

from __future__ import annotations

from array import array

from .base import INVALID_DETECTION, Detection, OnlineDetector, register, scorable

_DAY = 86400.0
_EPS = 1e-9


@register
class SeasonalSurprise(OnlineDetector):
    """Global vs time-of-day forecaster (chosen by running error), calibrated surprise, refractory emission."""

    name = "seasonal_surprise"
    STATE_VERSION = 2
    _STATE_FIELDS = (
        # configuration
        "warmup", "half_life", "n_bins", "bin_memory", "refractory", "spike_weight", "quantile",
        "calibration_level", "quantile_rate", "z_scale", "alarm_score", "band_width", "seed",
        "rebase_patience", "rebase_z",
        # state
        "_n", "_prev", "_mean", "_mad", "_step", "_err_global", "_err_seasonal", "_prev_resid",
        "_resid_step", "_q", "_quiet", "_emitted", "_offset", "_run", "_run_sum",
        "_bin_mean", "_bin_mad", "_bin_count",
    )

    def __init__(self, warmup: int = 150, half_life: int = 1500, n_bins: int = 48, bin_memory: int = 20,
                 refractory: int = 200, spike_weight: float = 0.25, quantile: float = 0.99,
                 calibration_level: float = 5.0, quantile_rate: float = 0.05, z_scale: float = 8.0,
                 alarm_score: float = 0.33, band_width: float = 3.0, float32_profiles: bool = False,
                 rebase_patience: int = 0, rebase_z: float = 4.0, seed: int = 0):
        if n_bins < 1:
            raise ValueError("n_bins must be >= 1")
        if not 1 <= bin_memory <= 254:
            raise ValueError("bin_memory must be in [1, 254]")
        if not 0.0 < quantile < 1.0:
            raise ValueError("quantile must be in (0, 1)")
        if rebase_patience < 0:
            raise ValueError("rebase_patience must be >= 0")
        self.warmup = int(warmup)
        self.half_life = max(1, int(half_life))
        self.n_bins = int(n_bins)
        self.bin_memory = int(bin_memory)
        self.refractory = int(refractory)
        self.spike_weight = float(spike_weight)
        self.quantile = float(quantile)
        self.calibration_level = float(calibration_level)
        self.quantile_rate = float(quantile_rate)
        self.z_scale = float(z_scale)
        self.alarm_score = float(alarm_score)
        self.band_width = float(band_width)
        self.rebase_patience = int(rebase_patience)
        self.rebase_z = float(rebase_z)
        self.seed = int(seed)  # accepted for a uniform interface; nothing is random
        self._n = 0  # values learned
        self._prev = 0.0  # last value
        self._mean = 0.0  # global forecaster: mean, mean |residual|
        self._mad = 0.0
        self._step = 0.0  # mean |step| of the raw value
        self._err_global = 0.0  # running mean |residual| of each forecaster (model selection)
        self._err_seasonal = 0.0
        self._prev_resid = 0.0  # last seasonal residual, and mean |step| of it
        self._resid_step = 0.0
        self._q = self.calibration_level  # running `quantile` of the surprise on this series
        self._quiet = 0  # rows left in the refractory period
        self._emitted = 0.0  # largest score emitted in the refractory period
        # level offset of the seasonal forecaster (0 unless rebase_patience > 0): the
        # profile holds values minus the offset; a run of same-side big residuals moves it
        self._offset = 0.0
        self._run = 0  # signed length of the current run of same-side residuals beyond rebase_z
        self._run_sum = 0.0
        # float32 profiles halve the state (for use inside a larger ensemble); the
        # typecode travels with the serialised arrays, so it is not a separate field
        code = "f" if float32_profiles else "d"
        self._bin_mean = array(code, [0.0] * self.n_bins)
        self._bin_mad = array(code, [0.0] * self.n_bins)
        # visits per bin, capped where the learning rate stops changing (so one byte each)
        self._bin_count = bytearray(self.n_bins)

    def _restore_derived(self) -> None:
        self._bin_count = bytearray(self._bin_count)  # serialised as bytes

    def _get_state(self) -> list:
        values = super()._get_state()
        values[-1] = bytes(self._bin_count)
        return values

    # -- scoring -------------------------------------------------------------------
    def _bin(self, timestamp_s: float) -> int:
        return int((timestamp_s % _DAY) / _DAY * self.n_bins) % self.n_bins

    def surprise(self, timestamp_s: float, value: float) -> tuple[float, float, float, int]:
        """``(z, expected, scale, bin)`` of ``value`` before calibration (no state change).

        ``z`` is ``None`` until two values have been learned.
        """
        b = self._bin(timestamp_s)
        if self._n < 2:
            return None, (self._mean if self._n else value), 0.0, b
        seasonal = self._bin_count[b] >= 3 and self._err_seasonal < self._err_global
        if seasonal:
            expected, scale = self._bin_mean[b] + self._offset, self._bin_mad[b]
            step = abs((value - expected) - self._prev_resid) / (self._resid_step + _EPS)
        else:
            expected, scale = self._mean, self._mad
            step = abs(value - self._prev) / (self._step + _EPS)
        level = abs(value - expected) / (scale + _EPS)
        z = self.spike_weight * step
        return (level if level > z else z), expected, scale, b

    def calibrate(self, z: float) -> float:
        """The series-calibrated surprise ``z_eff`` of a raw surprise ``z``."""
        damp = self._q / self.calibration_level
        return z / damp if damp > 1.0 else z

    def score_of(self, z_eff: float) -> float:
        """[0, 1) score of a calibrated surprise, before post-processing."""
        ratio = z_eff / self.z_scale
        # a flat series' scale is ~0, so a finite value can give a ratio whose cube overflows
        return 1.0 - 1.0 / (1.0 + ratio ** 3) if ratio < 1e100 else 1.0

    def _post(self, score: float) -> tuple[float, int, float]:
        """Warm-up and refractory rule: ``(emitted score, quiet rows left, largest emitted)``."""
        if self._n < self.warmup:
            score = 0.0
        quiet, emitted = self._quiet, self._emitted
        if quiet > 0:
            quiet -= 1
        else:
            emitted = 0.0
        if score > emitted:
            return score, self.refractory, score
        return 0.0, quiet, emitted

    def _evaluate(self, timestamp_s: float, value: float):
        z, expected, scale, b = self.surprise(timestamp_s, value)
        raw = self.score_of(self.calibrate(z)) if z is not None else 0.0
        return raw, z, expected, scale, b

    def _detection(self, emitted: float, expected: float, scale: float) -> Detection:
        band = self.band_width * scale
        return Detection(emitted, expected, expected - band, expected + band, emitted >= self.alarm_score)

    def evaluate(self, timestamp_s: float, value: float):
        raw, z, expected, scale, _ = self._evaluate(timestamp_s, value)
        emitted = self._post(raw)[0]
        band = self.band_width * scale
        return emitted, expected, expected - band, expected + band, emitted >= self.alarm_score

    def score_from_raw(self, raw: float) -> float:
        return raw  # evaluate() already returns the final [0, 1] score

    def detect(self, timestamp_s: float, value: float) -> Detection:
        value, timestamp_s = float(value), float(timestamp_s)
        if not scorable(timestamp_s, value):
            return INVALID_DETECTION
        raw, _, expected, scale, _ = self._evaluate(timestamp_s, value)
        return self._detection(self._post(raw)[0], expected, scale)

    # -- for an ensemble built on this detector ----------------------------------------
    def prescore(self, timestamp_s: float, value: float) -> tuple[float, tuple]:
        """``(raw, parts)``: the calibrated score before warm-up/refractory (no state change).

        An ensemble may raise ``raw`` with other evidence, then call :meth:`emit`
        and :meth:`learn_prescored` with the raised value: the refractory rule
        then runs on the combined score. ``parts`` is ``(z, bin, expected, scale)``.
        """
        raw, z, expected, scale, b = self._evaluate(timestamp_s, value)
        return raw, (z, b, expected, scale)

    def emit(self, raw: float) -> float:
        """The score emitted for ``raw`` by the warm-up and refractory rule (no state change)."""
        return self._post(raw)[0]

    def learn_prescored(self, value: float, raw: float, parts: tuple) -> None:
        """Learn a finite ``value`` scored by :meth:`prescore` (``raw`` possibly raised)."""
        self._learn(value, raw, parts[0], parts[1])

    # -- learning --------------------------------------------------------------------
    def _learn(self, value: float, raw: float, z: float | None, b: int) -> None:
        n = self._n
        if z is not None:  # stochastic quantile tracker, multiplicative steps (scale-free)
            q = self._q
            self._q = q + self.quantile_rate * q * ((1.0 if z > q else 0.0) - (1.0 - self.quantile))
        a = 1.0 / (n + 1 if n + 1 < self.half_life else self.half_life)
        if n == 0:
            self._mean = value
        else:
            e = value - self._mean
            ae = abs(e)
            self._err_global += a * (ae - self._err_global)
            self._mean += a * e
            self._mad += a * (ae - self._mad)
            self._step += a * (abs(value - self._prev) - self._step)
        count = self._bin_count[b]
        x = value - self._offset  # what the profile learns (the value itself unless re-based)
        resid = x - self._bin_mean[b] if count > 0 else 0.0
        if n > 0:
            self._resid_step += a * (abs(resid - self._prev_resid) - self._resid_step)
        self._prev_resid = resid
        if self.rebase_patience > 0:
            self._rebase(resid, count, b)
        if count == 0:
            self._bin_mean[b] = x
        else:
            ab = 1.0 / (count + 1 if count + 1 < self.bin_memory else self.bin_memory)
            e = x - self._bin_mean[b]
            ae = abs(e)
            self._err_seasonal += a * (ae - self._err_seasonal)
            self._bin_mean[b] += ab * e
            self._bin_mad[b] += ab * (ae - self._bin_mad[b])
        if count < self.bin_memory or count < 3:
            self._bin_count[b] = count + 1
        self._prev = value
        _, self._quiet, self._emitted = self._post(raw)
        self._n = n + 1

    def _rebase(self, resid: float, count: int, b: int) -> None:
        """Move the seasonal level offset after ``rebase_patience`` same-side residuals beyond ``rebase_z``.

        Only while the seasonal forecaster is the selected one and the bin is in use:
        a persistent new level (a regime the profile has never seen, e.g. the first
        weekend of a weekly pattern) then stops surprising after a few values, and the
        profile keeps its shape around the new level.
        """
        if (count >= 3 and self._err_seasonal < self._err_global
                and abs(resid) > self.rebase_z * (self._bin_mad[b] + _EPS)):
            run = self._run
            if run != 0 and (resid > 0.0) == (run > 0):
                self._run = run + (1 if resid > 0.0 else -1)
                self._run_sum += resid
            else:
                self._run, self._run_sum = (1 if resid > 0.0 else -1), resid
            if abs(self._run) >= self.rebase_patience:
                self._offset += self._run_sum / abs(self._run)
                self._run, self._run_sum = 0, 0.0
        else:
            self._run, self._run_sum = 0, 0.0

    def learn_one(self, timestamp_s: float, value: float) -> None:
        value, timestamp_s = float(value), float(timestamp_s)
        if not scorable(timestamp_s, value):
            return
        raw, z, _, _, b = self._evaluate(timestamp_s, value)
        self._learn(value, raw, z, b)

    def update(self, timestamp_s: float, value: float) -> Detection:
        value, timestamp_s = float(value), float(timestamp_s)
        if not scorable(timestamp_s, value):
            return INVALID_DETECTION
        raw, z, expected, scale, b = self._evaluate(timestamp_s, value)
        detection = self._detection(self._post(raw)[0], expected, scale)
        self._learn(value, raw, z, b)
        return detection
