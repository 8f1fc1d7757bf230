"""The one interface shared by every univariate online detector.

Every detector is a small, picklable object with river-style methods::

    detection = detector.update(timestamp_s, value)   # score, then learn
    score = detector.score_one(timestamp_s, value)    # no state change
    detector.learn_one(timestamp_s, value)            # learn only
    blob = detector.to_bytes()                         # compact, versioned

``update`` is strictly causal: the value is scored against state learned from
earlier values only, and learned afterwards. ``update`` is always equivalent to
``detect`` followed by ``learn_one``; subclasses may fuse the two for speed.

>>> import detectors
>>> d = detectors.make("windowed_gaussian", window=12)
>>> for i in range(24):
...     _ = d.update(i * 300.0, 10.0 + (i % 2))
>>> r = d.update(24 * 300.0, 30.0)
>>> r.is_anomaly, round(r.score, 3), r.expected
(True, 1.0, 10.5)
>>> detectors.from_bytes(d.to_bytes()).update(25 * 300.0, 10.0) == d.update(25 * 300.0, 10.0)
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

from . import serialization


@dataclass(frozen=True, slots=True)
class Detection:
    """Outcome of scoring one value.

    score: anomaly score in [0, 1] (higher = more anomalous).
    expected: the value the detector expected; lower/upper: its normal band.
    is_anomaly: the detector's own decision at its configured sensitivity.
    """

    score: float
    expected: float
    lower: float
    upper: float
    is_anomaly: bool


_NAN = float("nan")
#: Returned for values :func:`scorable` refuses, which are never learned.
INVALID_DETECTION = Detection(0.0, _NAN, _NAN, _NAN, False)
#: The largest magnitude a detector scores and learns; a larger one is treated as a non-finite
#: value. Bound by the ensemble's time-of-day profiles, kept as float32 (max ~3.4e38): one value of
#: 1e41 made a profile bin NaN for good, and the seasonal forecaster was never chosen again (a later
#: 50 % drop scored 0.0 instead of 0.98); up to 1e39 it recovered. 1e30 leaves room for the sums a
#: profile keeps. (It was 1e150, the bound of a square or cubed surprise overflowing a float64. The
#: stream job refuses metric values from 1e9 before any detector sees them.)
MAX_MAGNITUDE = 1e30


def scorable(timestamp_s: float, value: float) -> bool:
    """Whether a detector scores and learns ``value``: both finite, and ``|value| <= MAX_MAGNITUDE``.

    >>> scorable(0.0, 1e30), scorable(0.0, -1e31), scorable(0.0, float("nan")), scorable(float("inf"), 1.0)
    (True, False, False, False)
    """
    return math.isfinite(timestamp_s) and math.isfinite(value) and -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE


def skips_unscorable(learn_one):
    """Decorator of a detector's ``learn_one``: a value :func:`scorable` refuses is not learned (one
    NaN in a window of values would otherwise poison every later score)."""
    @functools.wraps(learn_one)
    def guarded(self, timestamp_s: float, value: float) -> None:
        timestamp_s, value = float(timestamp_s), float(value)
        if scorable(timestamp_s, value):
            learn_one(self, timestamp_s, value)
    return guarded

_REGISTRY: dict[str, type["OnlineDetector"]] = {}


def register(cls: type["OnlineDetector"]) -> type["OnlineDetector"]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


class OnlineDetector:
    """Base class of univariate online anomaly detectors.

    Subclasses set ``name`` (the registry key), ``STATE_VERSION`` and
    ``_STATE_FIELDS`` (attribute names, in serialisation order; bump the
    version whenever the list changes) and implement ``detect`` (pure) and
    ``learn_one``. Attributes not listed in ``_STATE_FIELDS`` must be derivable
    from the listed ones in ``_restore_derived``.
    """

    name: ClassVar[str] = ""
    STATE_VERSION: ClassVar[int] = 1
    _STATE_FIELDS: ClassVar[tuple[str, ...]] = ()

    # -- scoring -----------------------------------------------------------
    def evaluate(self, timestamp_s: float, value: float) -> tuple[float, float, float, float, bool]:
        """``(raw, expected, lower, upper, is_anomaly)`` without changing state.

        ``raw`` is a non-negative, unbounded surprise (e.g. ``|z|``): the
        ensemble calibrates it, because [0, 1] scores saturate in the tail.
        """
        raise NotImplementedError

    #: How many raw surprises :meth:`surprises` returns (the ensemble calibrates each).
    n_surprises: ClassVar[int] = 1

    def surprises(self, timestamp_s: float, value: float) -> tuple[list[float], float, float, float]:
        """``([raw surprise, ...], expected, lower, upper)`` without changing state.

        A detector may expose several complementary surprises (e.g. residuals
        under different forecasters); the ensemble calibrates each one.
        """
        raw, expected, lower, upper, _ = self.evaluate(timestamp_s, value)
        return [raw], expected, lower, upper

    def score_from_raw(self, raw: float) -> float:
        """Map the raw surprise to [0, 1] (default: ``raw`` read as a Gaussian |z|)."""
        return normal_two_sided_score(raw) if raw < 40.0 else 1.0

    def detect(self, timestamp_s: float, value: float) -> Detection:
        """Score ``value`` against the current state without changing it."""
        timestamp_s, value = float(timestamp_s), float(value)
        if not scorable(timestamp_s, value):
            return INVALID_DETECTION
        raw, expected, lower, upper, is_anomaly = self.evaluate(timestamp_s, value)
        return Detection(self.score_from_raw(raw), expected, lower, upper, is_anomaly)

    def learn_one(self, timestamp_s: float, value: float) -> None:
        """Update the state with ``value``."""
        raise NotImplementedError

    def update(self, timestamp_s: float, value: float) -> Detection:
        """Score ``value`` from what was learned before it, then learn it."""
        timestamp_s, value = float(timestamp_s), float(value)
        if not scorable(timestamp_s, value):
            return INVALID_DETECTION
        detection = self.detect(timestamp_s, value)
        self.learn_one(timestamp_s, value)
        return detection

    def score_one(self, timestamp_s: float, value: float) -> float:
        """River-style alias: the anomaly score of ``value`` (no learning)."""
        return self.detect(float(timestamp_s), float(value)).score

    # -- state ---------------------------------------------------------------
    def _get_state(self) -> list:
        return [getattr(self, f) for f in self._STATE_FIELDS]

    def _set_state(self, values: list) -> None:
        if len(values) != len(self._STATE_FIELDS):
            raise ValueError(f"{self.name}: state has {len(values)} fields, expected {len(self._STATE_FIELDS)}")
        for f, v in zip(self._STATE_FIELDS, values):
            setattr(self, f, v)
        self._restore_derived()

    def _restore_derived(self) -> None:
        """Rebuild caches that are not serialised (default: nothing)."""

    def to_bytes(self) -> bytes:
        """Compact, versioned serialisation (see :mod:`detectors.serialization`)."""
        return serialization.pack_header(self.name, self.STATE_VERSION) + serialization.encode_values(self._get_state())

    @classmethod
    def _from_payload(cls, payload: bytes) -> "OnlineDetector":
        obj = cls.__new__(cls)
        obj._set_state(serialization.decode_values(payload))
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def from_bytes(blob: bytes) -> OnlineDetector:
    """Rebuild a detector from :meth:`OnlineDetector.to_bytes` output."""
    name, version, offset = serialization.unpack_header(blob)
    cls = _REGISTRY.get(name)
    if cls is None:
        from . import _load_builtin  # lazy: detectors are imported on first use

        cls = _load_builtin(name)
    if version != cls.STATE_VERSION:
        raise ValueError(f"{name}: state version {version} is not supported (expected {cls.STATE_VERSION})")
    return cls._from_payload(bytes(blob[offset:]))


def normal_two_sided_score(z: float) -> float:
    """P(|Z| < |z|) for a standard normal Z: 0 at the mean, → 1 in the tails."""
    return math.erf(abs(z) * 0.7071067811865476)
