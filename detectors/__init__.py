"""Online univariate anomaly detectors (pure Python: numpy, scipy, river; never pyflink).

>>> import detectors
>>> "ensemble" in detectors.available() and "windowed_gaussian" in detectors.available()
True
>>> d = detectors.make("ensemble", seed=0)
>>> r = d.update(0.0, 1.0)
>>> 0.0 <= r.score <= 1.0
True
>>> type(detectors.from_bytes(d.to_bytes())).__name__
'Ensemble'

See ``detectors/README.md`` for what each detector catches and costs.
"""

from __future__ import annotations

import importlib

from .base import Detection, OnlineDetector, _REGISTRY, from_bytes, register

__all__ = ["Detection", "OnlineDetector", "available", "from_bytes", "make", "register"]

# name -> "module:Class". Imported lazily so that `import detectors` stays cheap
# (river is only loaded when a river-based detector is used).
_BUILTIN = {
    "windowed_gaussian": "detectors.windowed_gaussian:WindowedGaussian",
    "seasonal": "detectors.seasonal:SeasonalRobustBaseline",
    "river_volatility": "detectors.river_models:RiverVolatility",
    "changepoint": "detectors.changepoint:RobustCusum",
    "ensemble": "detectors.ensemble:Ensemble",
    "seasonal_surprise": "detectors.seasonal_surprise:SeasonalSurprise",
}


def _load_builtin(name: str) -> type[OnlineDetector]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    target = _BUILTIN.get(name)
    if target is None:
        raise KeyError(f"unknown detector {name!r}; available: {', '.join(available())}")
    module, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    _REGISTRY[name] = cls
    return cls


def available() -> list[str]:
    """Names accepted by :func:`make` (built-ins that import cleanly, plus registered ones)."""
    names = set(_REGISTRY)
    for name in _BUILTIN:
        try:
            _load_builtin(name)
        except ImportError:
            continue
        names.add(name)
    return sorted(names)


def make(name: str, **params) -> OnlineDetector:
    """Create a detector by registry name, e.g. ``make("ensemble", seed=0)``."""
    return _load_builtin(name)(**params)
