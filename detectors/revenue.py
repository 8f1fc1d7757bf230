"""Revenue at risk: how much money an editor is losing in one window (for invalid traffic, also what
advertisers claw back).

Kept apart from :mod:`detectors.incident` so the classifier (which uses it for
severity) and the incident builder (which reports it) share one definition
without importing each other.

Units. A window's metric ``value`` is the aggregate the stream job computes
(the mean of the samples), and the money metrics (``revenue``, and
``impressions`` for the rpm fallback) are *rates per* ``rate_period_s``
seconds -- by default per minute. The amount in a window is therefore
``rate * window_seconds / rate_period_s``. A job whose windows hold totals
passes ``rate_period_s=window_seconds``.

>>> from detectors.classifier import MetricDeviation
>>> dev = {"revenue": MetricDeviation("revenue", 6.0, 10.0, 9.0, 11.0, 0.99, True)}
>>> revenue_at_risk(dev, 300)          # (10 - 6) per minute over 5 minutes
20.0
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol


class _HasValueAndBaseline(Protocol):
    value: float
    baseline: float


def _finite(*numbers: float) -> bool:
    return all(isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) for n in numbers)


def positive_period(name: str, value: float) -> float:
    """``value`` as a period in seconds for :func:`revenue_at_risk`, which divides by it: a configuration
    loader calls this, so a zero or negative period is refused when the job's configuration is checked
    at its start, not as a ValueError in an operator at the first anomaly (and at every restore).

    >>> positive_period("rate_period_s", "300")
    300.0
    >>> positive_period("rate_period_s", 0)
    Traceback (most recent call last):
    ...
    ValueError: rate_period_s=0 must be a positive number of seconds
    """
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name}={value!r} must be a positive number of seconds")
    return number


def expected_and_actual_revenue(deviations: Mapping[str, _HasValueAndBaseline]) -> tuple[float, float] | None:
    """(baseline, actual) revenue rate, from ``revenue`` or else from rpm x impressions / 1000.

    None when neither is available (no money figure can be given).
    """
    revenue = deviations.get("revenue")
    if revenue is not None and _finite(revenue.value, revenue.baseline):
        return max(revenue.baseline, 0.0), max(revenue.value, 0.0)
    rpm, impressions = deviations.get("rpm"), deviations.get("impressions")
    if rpm is not None and impressions is not None and _finite(rpm.value, rpm.baseline, impressions.value,
                                                                impressions.baseline):
        expected = max(rpm.baseline, 0.0) * max(impressions.baseline, 0.0) / 1000.0
        actual = max(rpm.value, 0.0) * max(impressions.value, 0.0) / 1000.0
        return expected, actual
    return None


def revenue_at_risk(deviations: Mapping[str, _HasValueAndBaseline], window_seconds: float,
                    rate_period_s: float = 60.0, *, invalid_traffic: bool = False) -> float:
    """Revenue lost in the window versus the baseline (with ``invalid_traffic``, or clawed back: below);
    never negative, 0 when unknown.

    Falls back to ``rpm * impressions / 1000`` when there is no revenue metric:

    >>> from detectors.classifier import MetricDeviation as D
    >>> revenue_at_risk({"rpm": D("rpm", 1.0, 2.0, 1.8, 2.2, 0.9, True),
    ...                  "impressions": D("impressions", 1000.0, 1000.0, 900.0, 1100.0, 0.1, False)}, 300)
    5.0
    >>> revenue_at_risk({"revenue": D("revenue", 12.0, 10.0, 9.0, 11.0, 0.9, True)}, 300)   # a gain is no risk
    0.0

    With ``invalid_traffic`` (the window is judged a SECURITY_ISSUE: bots), what is at risk is also the
    revenue the window earned on its impressions above the baseline, which advertisers claw back once
    those impressions are found invalid; the larger of the two. Invalid traffic seldom loses revenue
    in the window itself (bots inflate it), so the shortfall alone would put such an incident at 0:

    >>> surge = {"revenue": D("revenue", 12.0, 10.0, 9.0, 11.0, 0.9, True),
    ...          "impressions": D("impressions", 3000.0, 1000.0, 900.0, 1100.0, 1.0, True)}
    >>> revenue_at_risk(surge, 300), revenue_at_risk(surge, 300, invalid_traffic=True)   # 12/min x 5 x 2/3
    (0.0, 40.0)
    """
    if window_seconds <= 0 or rate_period_s <= 0:
        raise ValueError("window_seconds and rate_period_s must be positive")
    pair = expected_and_actual_revenue(deviations)
    if pair is None:
        return 0.0
    expected, actual = pair
    at_risk_rate = max(expected - actual, 0.0)
    if invalid_traffic:
        at_risk_rate = max(at_risk_rate, actual * _surplus_impressions_share(deviations))
    return round(at_risk_rate * window_seconds / rate_period_s, 2)


def invalid_traffic_share(deviations: Mapping[str, _HasValueAndBaseline]) -> float:
    """Share of the window's impressions above the baseline (the suspected bot traffic), in [0, 1).

    >>> from detectors.classifier import MetricDeviation
    >>> invalid_traffic_share({"impressions": MetricDeviation("impressions", 3000.0, 1000.0, 900.0, 1100.0, 1.0, True)})
    0.667
    """
    return round(_surplus_impressions_share(deviations), 3)


def _surplus_impressions_share(deviations: Mapping[str, _HasValueAndBaseline]) -> float:
    impressions = deviations.get("impressions")
    if impressions is None or not _finite(impressions.value, impressions.baseline) or impressions.value <= 0:
        return 0.0
    return max(impressions.value - max(impressions.baseline, 0.0), 0.0) / impressions.value


def revenue_loss_fraction(deviations: Mapping[str, _HasValueAndBaseline]) -> float:
    """Shortfall as a fraction of the baseline revenue, in [0, 1] (0 when unknown).

    >>> from detectors.classifier import MetricDeviation as D
    >>> revenue_loss_fraction({"revenue": D("revenue", 6.0, 10.0, 9.0, 11.0, 0.99, True)})
    0.4
    """
    pair = expected_and_actual_revenue(deviations)
    if pair is None or pair[0] <= 0:
        return 0.0
    expected, actual = pair
    return min(max((expected - actual) / expected, 0.0), 1.0)
