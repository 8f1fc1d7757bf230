"""Multi-metric incident classifier: one editor, one window, all its metrics at once.

Input: each metric's deviation from the editor's *own* baseline (what the
per-metric detector produced for the window) plus the editor's recent
operational events. Output: a :class:`Classification` -- problem type,
category, severity, the evidence and the metrics involved.

How it decides (all thresholds live in :class:`ClassifierConfig`):

1. **Read each metric.** Its relative change ``(value - baseline) / baseline``
   (the denominator floored per metric, so an error rate going from 0.0001 to
   0.0003 is not "+200 %") is measured in multiples of the metric's
   configured threshold for that direction (its *magnitude*). A metric
   *deviates* in a direction when its magnitude reaches 1, or when the
   detector flagged it that way on a move of at least ``flag_min_magnitude``.
   Its *strength* in [0, 1] averages two opinions: the size of the move
   (magnitude, capped at 1) and the detector's score (how unusual it is for
   this editor). Two ratios are derived when their inputs are present:
   ``ecpm = rpm / fill_rate`` (the price of a filled impression: flat in a
   demand outage, down in a pricing problem) and ``revenue_per_impression``
   (down under invalid traffic).
2. **Score every signature** (the incident patterns of issue 5, table
   :data:`SIGNATURES`) as a template:
   - *anchors* -- the moves without which the pattern cannot be claimed
     (a demand outage needs fill down -- or, seen from an editor that used
     the partner little, partner timeouts soaring; invalid traffic needs
     impressions up past the threshold *and* rpm or revenue per impression
     down); a
     signature whose anchors do not deviate is not a candidate;
   - *fit* -- the weighted mean strength of the pattern's expected moves
     (metrics absent from the window are left out, so missing data neither
     helps nor hurts);
   - *consistency* -- a product of ``(1 - penalty * size)`` over deviating
     moves that contradict the pattern, e.g. fill down for pricing, errors up
     or cache hit rate down for latency (that is infrastructure), latency
     soaring for a demand outage. Size is the move in multiples of
     ``contradiction_full_magnitude`` x its threshold, capped at 1, so a
     small flagged side effect barely counts;
   - *event boost* -- ``event_boost`` x the weight of the strongest linked
     event in the look-back (config_change / deployment / feature_flag for a
     configuration breakage, a floor change for pricing, partner_status not
     back to healthy for a demand outage, a security_finding weighted by its
     severity for invalid traffic). Events raise confidence; the metric
     signature alone still classifies.
   ``score = min(1, fit * consistency + boost)``. Only *corroborated*
   matches may win: two or more expected moves deviating, or a linked event,
   unless the pattern is standalone (latency up alone is a latency issue, rpm
   down with fill steady a pricing issue; partner timeouts soaring alone is
   not, and stays UNKNOWN naming its closest type); one noisy metric -- an error rate doubling on a small editor --
   is not a diagnosis. The best score wins if it reaches
   ``min_signature_score``; exact ties go to the more specific
   pattern (the order of :data:`SIGNATURES`). Overlaps (infrastructure also
   raises latency, an outage also drops revenue, invalid traffic also drops
   rpm) are resolved by the contradiction penalties and graded strengths,
   not by the order of if-statements, so one noisy metric shifts scores a
   little instead of flipping the verdict. ``Classification.scores`` keeps
   every candidate's score for audit.
3. **Incident or not.** With no signature matched, the window is an
   (UNKNOWN) incident only if adverse moves are material: at least
   ``unknown_min_adverse_metrics`` metrics deviate the harmful way, or one
   moved ``unknown_min_magnitude`` x its threshold. Otherwise -- all metrics
   normal, only good-news moves (a holiday surge: impressions and revenue
   up), or one lone flagged wobble -- ``is_incident`` is False and the labels
   are ``"NONE"``.
4. **Severity** is the highest of four ladders: revenue loss as a share of
   the baseline, revenue at risk in money (for invalid traffic including what
   the impressions above baseline earned: detectors.revenue.revenue_at_risk),
   the number of adversely deviating
   metrics, and the largest deviation in multiples of its threshold; for
   invalid traffic also the share of impressions above baseline (the
   clawback exposure) and the linked finding's severity (>= 7: at least
   HIGH). Only the revenue ladders (or a security finding of severity >= 9)
   can reach CRITICAL: breadth and magnitude alone stop at HIGH, because a
   wide but cheap disturbance should not page anyone at night.

Categories: DEMAND_ISSUE and PRICING_ISSUE -> DEMAND (both are about what
demand pays for the inventory; the yield / demand team owns floors),
LATENCY_ISSUE -> PERFORMANCE, CONFIGURATION_ISSUE -> CONFIGURATION,
INFRASTRUCTURE_ISSUE -> INFRASTRUCTURE, SECURITY_ISSUE -> SECURITY, and
UNKNOWN -> PERFORMANCE (an unexplained KPI degradation is triaged as a
performance problem).

>>> D = MetricDeviation
>>> c = classify({
...     "rpm": D("rpm", 1.2, 2.5, 2.1, 2.9, 0.97, True),
...     "fill_rate": D("fill_rate", 0.51, 0.85, 0.80, 0.90, 0.99, True),
...     "partner_timeouts": D("partner_timeouts", 40.0, 5.0, 2.0, 9.0, 0.99, True),
...     "bid_latency_ms": D("bid_latency_ms", 210.0, 200.0, 150.0, 260.0, 0.1, False),
...     "error_rate": D("error_rate", 0.010, 0.010, 0.005, 0.015, 0.0, False),
... }, [])
>>> c.problem_type, c.category, c.affected_metrics
('DEMAND_ISSUE', 'DEMAND', ['fill_rate', 'partner_timeouts', 'rpm'])
>>> c.evidence[1]
'partner_timeouts 40.00 vs baseline 5.00 (+700.0%, detector score 0.99)'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from detectors.events import CHANGE_EVENT_TYPES, OperationalEvent, iso_z, parse_event  # noqa: F401 (re-export)
from detectors.revenue import invalid_traffic_share, positive_period, revenue_at_risk, revenue_loss_fraction

METRICS = ("rpm", "fill_rate", "bid_latency_ms", "error_rate", "partner_timeouts", "cache_hit_rate",
           "impressions", "revenue", "bid_rate", "win_rate")
#: The metrics that are rates in [0, 1] (sql/parse/metrics.sql refuses one above 1: OUT_OF_RANGE_VALUE).
RATE_METRICS = ("fill_rate", "error_rate", "cache_hit_rate", "bid_rate", "win_rate")
#: Derived from revenue / impressions when both are present (invalid traffic
#: lowers what each impression earns even when rpm is not reported).
REVENUE_PER_IMPRESSION = "revenue_per_impression"
#: Derived from rpm / fill_rate: the price of a *filled* impression. rpm is
#: roughly fill x price, so a demand outage moves rpm with fill (price
#: steady) while a pricing problem moves rpm with fill steady (price down).
#: This ratio is what tells the two apart when fill is noisy.
ECPM = "ecpm"
#: derived metric -> (numerator, denominator). Never reported as affected
#: metrics; they only sharpen signatures.
DERIVED_METRICS = {REVENUE_PER_IMPRESSION: ("revenue", "impressions"), ECPM: ("rpm", "fill_rate")}

DEMAND_ISSUE = "DEMAND_ISSUE"
LATENCY_ISSUE = "LATENCY_ISSUE"
PRICING_ISSUE = "PRICING_ISSUE"
CONFIGURATION_ISSUE = "CONFIGURATION_ISSUE"
INFRASTRUCTURE_ISSUE = "INFRASTRUCTURE_ISSUE"
SECURITY_ISSUE = "SECURITY_ISSUE"
UNKNOWN = "UNKNOWN"
#: problem_type / category / severity of a window that is not an incident.
NO_ISSUE = "NONE"

PROBLEM_TYPES = (DEMAND_ISSUE, LATENCY_ISSUE, PRICING_ISSUE, CONFIGURATION_ISSUE, INFRASTRUCTURE_ISSUE,
                 SECURITY_ISSUE, UNKNOWN)
CATEGORY_OF = {
    DEMAND_ISSUE: "DEMAND",
    PRICING_ISSUE: "DEMAND",
    LATENCY_ISSUE: "PERFORMANCE",
    CONFIGURATION_ISSUE: "CONFIGURATION",
    INFRASTRUCTURE_ISSUE: "INFRASTRUCTURE",
    SECURITY_ISSUE: "SECURITY",
    UNKNOWN: "PERFORMANCE",
}
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")  # ascending

UP, DOWN = +1, -1

#: The direction in which a metric moving is bad news. impressions is absent:
#: fewer impressions is adverse, but a surge alone is not (holidays), so
#: impressions up only matters inside the invalid-traffic signature.
ADVERSE_DIRECTIONS: dict[str, tuple[int, ...]] = {
    "rpm": (DOWN,), "fill_rate": (DOWN,), "bid_latency_ms": (UP,), "error_rate": (UP,),
    "partner_timeouts": (UP,), "cache_hit_rate": (DOWN,), "impressions": (DOWN,), "revenue": (DOWN,),
    "bid_rate": (DOWN,), "win_rate": (DOWN,), REVENUE_PER_IMPRESSION: (DOWN,), ECPM: (DOWN,),
}


# --------------------------------------------------------------------------- inputs / outputs
def is_finite_number(x: Any) -> bool:
    """True for real, finite numbers (None, booleans, NaN and infinities are not).

    >>> [is_finite_number(x) for x in (1, 2.5, None, float("nan"), True, "3")]
    [True, True, False, False, False, False]
    """
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


#: A baseline smaller than this rounds to 0 at the six decimals the bus details carry
#: (detectors.incident.metric_snapshot), and is taken as 0: a model whose series sat at 0 for hours
#: expects 1e-8 or -5e-324, not 0 (an exponential level halving towards it), and against that a
#: reading of 0 moved "+100 %" and one of 0.5 "+4e9 %", a move the classifier counted.
NEGLIGIBLE_BASELINE = 5e-7

#: The decimals the bus details show a metric's value and baseline with (detectors.incident.metric_snapshot).
SHOWN_DECIMALS = 6


@dataclass(frozen=True)
class MetricDeviation:
    """One metric of one editor in one window, against that editor's own baseline.

    ``baseline`` / ``lower`` / ``upper`` are the detector's expected value and
    band, ``score`` its anomaly score in [0, 1] and ``is_anomaly`` its decision.
    """

    metric: str
    value: float
    baseline: float
    lower: float
    upper: float
    score: float
    is_anomaly: bool

    def relative_change(self, floor: float = 0.0) -> float:
        """``(value - baseline) / max(|baseline|, floor)``; 0 when undefined. A baseline below
        :data:`NEGLIGIBLE_BASELINE` counts as 0.

        >>> MetricDeviation("rpm", 1.5, 2.0, 1.8, 2.2, 0.9, True).relative_change()
        -0.25
        >>> MetricDeviation("error_rate", 0.003, 0.0, 0.0, 0.001, 0.9, True).relative_change(floor=0.01)
        0.3
        >>> MetricDeviation("revenue", 0.0, 1e-8, 0.0, 1e-7, 0.9, True).relative_change()
        0.0
        """
        if not self.is_finite:
            return 0.0
        baseline = self.shown_baseline
        denominator = max(abs(baseline), floor)
        if denominator == 0.0:
            return 0.0
        return (self.value - baseline) / denominator

    @property
    def shown_baseline(self) -> float:
        """The baseline, with one below :data:`NEGLIGIBLE_BASELINE` (shown as 0) taken as 0; an unusable
        one (None, NaN) as it is."""
        return 0.0 if is_finite_number(self.baseline) and abs(self.baseline) < NEGLIGIBLE_BASELINE else self.baseline

    def percent_change(self) -> float | None:
        """``100 * (value - baseline) / |baseline|``, as a reader computes it from the two numbers shown
        next to it; None when undefined (a zero or non-finite baseline). The classifier's
        thresholds use :meth:`relative_change` with a floor instead, so a tiny baseline does not
        make a small move look huge; a figure users read must match the value and baseline they see.

        >>> MetricDeviation("error_rate", 0.008, 0.002, 0.0, 0.004, 0.9, True).percent_change()
        300.0
        >>> MetricDeviation("error_rate", 0.003, 0.0, 0.0, 0.001, 0.9, True).percent_change() is None
        True
        >>> MetricDeviation("error_rate", 0.5, -1.2e-8, 0.0, 0.001, 0.9, True).percent_change() is None
        True

        From the numbers as shown (:data:`SHOWN_DECIMALS`): a baseline of 7.6e-7 is shown as 0.000001, and
        the change read against it (it was 727,064 %, from the unrounded baseline, where the reader
        computes 551,400 %):

        >>> round(MetricDeviation("error_rate", 0.005515, 7.6e-7, 0.0, 0.001, 0.9, True).percent_change(), 1)
        551400.0
        """
        if not self.is_finite:
            return None
        baseline = round(self.shown_baseline, SHOWN_DECIMALS)
        if baseline == 0.0:
            return None
        return (round(self.value, SHOWN_DECIMALS) - baseline) / abs(baseline) * 100.0

    @property
    def is_finite(self) -> bool:
        """Value and baseline are usable numbers (a detector still warming up may give neither)."""
        return is_finite_number(self.value) and is_finite_number(self.baseline)


@dataclass(frozen=True)
class Classification:
    """The verdict for one editor and window.

    ``is_incident`` is False (and the three labels are ``"NONE"``) when no
    metric deviates adversely: the stream job emits nothing for such windows.
    ``scores`` holds every candidate signature's score, for audit and tuning.
    """

    problem_type: str
    category: str
    severity: str
    evidence: list[str]
    affected_metrics: list[str]
    is_incident: bool = True
    confidence: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- configuration
def _default_thresholds() -> dict[str, dict[str, float]]:
    # Relative change (fraction of the editor's baseline) at which a metric
    # counts as deviating without the detector's flag. Tighter for ratios that
    # normally barely move (fill, cache hit), looser for noisy counts.
    return {
        "rpm": {"up": 0.30, "down": 0.20},
        "fill_rate": {"up": 0.10, "down": 0.10},
        "bid_latency_ms": {"up": 0.40, "down": 0.50},
        "error_rate": {"up": 2.00, "down": 0.75},
        "partner_timeouts": {"up": 1.00, "down": 0.75},
        "cache_hit_rate": {"up": 0.10, "down": 0.10},
        "impressions": {"up": 0.30, "down": 0.30},
        "revenue": {"up": 0.30, "down": 0.20},
        "bid_rate": {"up": 0.30, "down": 0.20},
        "win_rate": {"up": 0.30, "down": 0.20},
        REVENUE_PER_IMPRESSION: {"up": 0.30, "down": 0.20},
        ECPM: {"up": 0.30, "down": 0.20},
    }


def _default_relative_floor() -> dict[str, float]:
    # Smallest denominator for the relative change: rates near zero would
    # otherwise turn noise into hundreds of percent.
    return {"error_rate": 0.005, "partner_timeouts": 0.01, "fill_rate": 0.01, "cache_hit_rate": 0.01}


def _known_metric(table: str, metric: str) -> None:
    # A misspelt metric would be merged into the table and never read: the tuning silently ignored.
    if metric not in METRICS and metric not in DERIVED_METRICS:
        raise ValueError(f"{table}.{metric}: unknown metric (known: {', '.join(METRICS + tuple(DERIVED_METRICS))})")


def _finite(name: str, value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):   # NaN passes no comparison: a NaN threshold disables its rule
        raise ValueError(f"{name}={value!r} must be a finite number")
    return number


@dataclass(frozen=True)
class ClassifierConfig:
    """Every threshold the classifier uses. Load overrides with :meth:`from_dict` / :meth:`from_json`.

    >>> ClassifierConfig.from_dict({"min_signature_score": 0.6, "thresholds": {"rpm": {"down": 0.3}}}).threshold("rpm", DOWN)
    0.3
    """

    thresholds: dict[str, dict[str, float]] = field(default_factory=_default_thresholds)
    default_threshold: float = 0.25
    relative_floor: dict[str, float] = field(default_factory=_default_relative_floor)
    #: A detector flag counts only on a move of at least this fraction of the
    #: metric's threshold (a flagged 1 % wobble of a very stable editor is not
    #: an AdOps incident).
    flag_min_magnitude: float = 0.25
    #: A contradicting move weighs fully from this many times its threshold
    #: (moves just past the threshold are ambiguous, so they weigh less).
    contradiction_full_magnitude: float = 2.0
    #: A signature must score at least this to name the problem; else UNKNOWN.
    min_signature_score: float = 0.45
    #: Adverse moves fitting no signature make an UNKNOWN incident only if at
    #: least this many metrics deviate adversely ...
    unknown_min_adverse_metrics: int = 2
    #: ... or one adverse metric moved at least this many times its threshold.
    unknown_min_magnitude: float = 1.5
    #: Events this long before the window end count as linked (and as suspected causes).
    event_lookback_s: float = 1800.0
    #: Score added when a linked event of the signature's type is in the look-back.
    event_boost: float = 0.20
    #: Security findings add ``(event_boost + security_finding_boost) x severity / 10``.
    security_finding_boost: float = 0.15
    window_seconds: float = 300.0
    #: Period the revenue / impressions rates refer to (see detectors.revenue).
    rate_period_s: float = 60.0
    # Severity ladders: [MEDIUM, HIGH, CRITICAL] cut-offs (CRITICAL None = never).
    severity_revenue_loss_fraction: tuple[float, float, float] = (0.10, 0.25, 0.50)
    severity_revenue_at_risk: tuple[float, float, float] = (50.0, 250.0, 1000.0)
    severity_metric_count: tuple[float, float] = (2, 4)
    severity_magnitude: tuple[float, float] = (2.0, 4.0)
    #: SECURITY_ISSUE: share of impressions above baseline for [MEDIUM, HIGH].
    severity_invalid_traffic_share: tuple[float, float] = (0.15, 0.30)
    #: Security findings at or above this severity make a SECURITY_ISSUE critical.
    critical_security_severity: float = 9.0

    def threshold(self, metric: str, direction: int) -> float:
        per_metric = self.thresholds.get(metric, {})
        return float(per_metric.get("up" if direction == UP else "down", self.default_threshold))

    def floor(self, metric: str) -> float:
        return float(self.relative_floor.get(metric, 0.0))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassifierConfig":
        """Defaults overridden by ``data``; per-metric tables merge key by key. Unknown keys raise."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown classifier config keys: {', '.join(sorted(unknown))}")
        base = cls()
        updates: dict[str, Any] = {}
        for key, value in data.items():
            current = getattr(base, key)
            if key == "thresholds":
                merged = {m: dict(v) for m, v in current.items()}
                for metric, directions in value.items():
                    _known_metric(key, metric)
                    wrong = set(directions) - {"up", "down"}
                    if wrong:
                        raise ValueError(f"thresholds.{metric}: a direction is up or down, not {', '.join(sorted(wrong))}")
                    merged.setdefault(metric, {}).update({d: _finite(f"{key}.{metric}.{d}", x)
                                                          for d, x in directions.items()})
                updates[key] = merged
            elif key == "relative_floor":
                for metric in value:
                    _known_metric(key, metric)
                updates[key] = {**current, **{m: _finite(f"{key}.{m}", x) for m, x in value.items()}}
            elif isinstance(current, tuple):
                ladder = tuple(_finite(key, x) for x in value)
                # A ladder's length is its levels (assess_severity indexes SEVERITIES by how many
                # cut-offs a value reaches): another length is refused here, at the job's start,
                # not as an IndexError or a wrong severity in the operator.
                if len(ladder) != len(current) or list(ladder) != sorted(ladder):
                    raise ValueError(f"{key}: {len(current)} cut-offs in ascending order, got {list(value)}")
                updates[key] = ladder
            elif isinstance(current, bool) or not isinstance(current, (int, float)):
                updates[key] = type(current)(value)
            elif isinstance(current, int):
                updates[key] = int(_finite(key, value))
            else:
                updates[key] = _finite(key, value)
        for key in ("rate_period_s", "window_seconds"):
            if key in updates:
                updates[key] = positive_period(key, updates[key])
        # MetricReading.size divides by it: 0 raised ZeroDivisionError in the operator at an anomaly
        # with a contradicting metric; a negative one turned contradictions into support.
        if "contradiction_full_magnitude" in updates and not updates["contradiction_full_magnitude"] > 0:
            raise ValueError(f"contradiction_full_magnitude={updates['contradiction_full_magnitude']!r} must be positive")
        return replace(base, **updates)

    @classmethod
    def from_json(cls, path: str | Path) -> "ClassifierConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> "ClassifierConfig":
        """From a flat Managed Flink property map (all values strings).

        Keys are field names, ``thresholds.<metric>.<up|down>`` or
        ``relative_floor.<metric>``; ladders are comma-separated.

        >>> c = ClassifierConfig.from_properties({"thresholds.rpm.down": "0.3", "min_signature_score": "0.5",
        ...                                       "severity_revenue_at_risk": "10,100,1000"})
        >>> c.threshold("rpm", DOWN), c.min_signature_score, c.severity_revenue_at_risk
        (0.3, 0.5, (10.0, 100.0, 1000.0))
        """
        data: dict[str, Any] = {}
        for key, raw in properties.items():
            head, _, rest = key.partition(".")
            if head == "thresholds" and rest.count(".") == 1:
                metric, direction = rest.split(".")
                data.setdefault("thresholds", {}).setdefault(metric, {})[direction] = float(raw)
            elif head == "relative_floor" and rest:
                data.setdefault("relative_floor", {})[rest] = float(raw)
            elif isinstance(getattr(cls(), key, None), tuple):
                data[key] = [float(x) for x in str(raw).split(",") if x.strip()]
            else:
                data[key] = float(raw) if key in {f.name for f in fields(cls)} else raw
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


#: The shipped configuration file (equal to the defaults; edit a copy to tune).
DEFAULT_CONFIG_PATH = Path(__file__).with_name("config") / "classifier.json"


def load_config(path: str | Path | None = None) -> ClassifierConfig:
    """The config at ``path``, else the shipped ``detectors/config/classifier.json``, else the defaults."""
    candidate = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if path is None and not candidate.exists():
        return ClassifierConfig()
    return ClassifierConfig.from_json(candidate)


# --------------------------------------------------------------------------- reading metrics
@dataclass(frozen=True)
class MetricReading:
    """How strongly one metric moved in each direction, relative to its own baseline."""

    deviation: MetricDeviation
    change: float           # relative change (floored denominator)
    strength_up: float      # [0, 1]
    strength_down: float    # [0, 1]
    deviates_up: bool
    deviates_down: bool
    magnitude: float        # |change| in multiples of its direction's threshold

    def strength(self, direction: int) -> float:
        return self.strength_up if direction == UP else self.strength_down

    def deviates(self, direction: int) -> bool:
        return self.deviates_up if direction == UP else self.deviates_down

    def size(self, direction: int, full_at: float = 1.0) -> float:
        """How far the metric moved that way, in [0, 1] (1 = at or past ``full_at`` x its threshold)."""
        return min(1.0, self.magnitude / full_at) if self.direction == direction else 0.0

    @property
    def deviates_any(self) -> bool:
        return self.deviates_up or self.deviates_down

    @property
    def direction(self) -> int:
        return UP if self.change > 0 else DOWN if self.change < 0 else 0


def read_metric(deviation: MetricDeviation, config: ClassifierConfig) -> MetricReading:
    """Turn a deviation into per-direction strengths and decisions (see module docstring, step 1)."""
    metric = deviation.metric
    change = deviation.relative_change(config.floor(metric))
    score = min(max(float(deviation.score), 0.0), 1.0) if is_finite_number(deviation.score) else 0.0
    strengths, deviates, magnitude = {UP: 0.0, DOWN: 0.0}, {UP: False, DOWN: False}, 0.0
    direction = UP if change > 0 else DOWN if change < 0 else 0
    if direction:
        threshold = config.threshold(metric, direction)
        magnitude = abs(change) / threshold if threshold > 0 else math.inf
        # Two opinions, equally weighted: the detector's score (unusual for
        # *this* editor's noise) and the size of the move (does it matter to
        # the business). A detector flag on a tiny move, or a big move on a
        # naturally jumpy metric, each count half. Metrics without a detector
        # (derived ratios) have only the size.
        size = min(1.0, magnitude)
        strengths[direction] = size if deviation.metric in DERIVED_METRICS else (size + score) / 2.0
        flagged = bool(deviation.is_anomaly) and magnitude >= config.flag_min_magnitude
        deviates[direction] = flagged or magnitude >= 1.0
    return MetricReading(deviation, change, strengths[UP], strengths[DOWN], deviates[UP], deviates[DOWN],
                         magnitude)


def derived_ratio(name: str, deviations: Mapping[str, MetricDeviation]) -> MetricDeviation | None:
    """The ratio metric ``name`` (see :data:`DERIVED_METRICS`), or None when an input is missing or zero.

    >>> derived_ratio(ECPM, {"rpm": MetricDeviation("rpm", 1.5, 2.0, 1.8, 2.2, 0.9, True),
    ...                      "fill_rate": MetricDeviation("fill_rate", 0.8, 0.8, 0.75, 0.85, 0.0, False)}).value
    1.875
    """
    numerator, denominator = (deviations.get(m) for m in DERIVED_METRICS[name])
    if numerator is None or denominator is None or not (numerator.is_finite and denominator.is_finite):
        return None
    if denominator.value <= 0 or denominator.shown_baseline <= 0:
        return None
    # No detector ran on the ratio: it counts through its relative change only.
    return MetricDeviation(name, numerator.value / denominator.value, numerator.baseline / denominator.baseline,
                           math.nan, math.nan, 0.0, False)


def read_metrics(deviations: Mapping[str, MetricDeviation], config: ClassifierConfig) -> dict[str, MetricReading]:
    """Readings of the reported metrics plus the derived ratios that can be computed."""
    readings = {name: read_metric(dev, config) for name, dev in deviations.items()
                if dev.is_finite and name not in DERIVED_METRICS}
    for name in DERIVED_METRICS:
        derived = derived_ratio(name, deviations)
        if derived is not None:
            readings[name] = read_metric(derived, config)
    return readings


# --------------------------------------------------------------------------- signatures
@dataclass(frozen=True)
class Move:
    """A metric moving one way, with a weight (expected move) or a penalty (contradiction)."""

    metric: str
    direction: int
    weight: float = 1.0
    #: As an anchor: a detector flag is not enough, the move must pass the
    #: relative threshold (a "surge" is a size, not a surprise).
    must_pass_threshold: bool = False

    def satisfied_by(self, reading: MetricReading | None) -> bool:
        if reading is None or not reading.deviates(self.direction):
            return False
        return reading.magnitude >= 1.0 or not self.must_pass_threshold

    def describe(self) -> str:
        return f"{self.metric} {'up' if self.direction == UP else 'down'}"


@dataclass(frozen=True)
class SignatureMatch:
    problem_type: str
    description: str
    score: float
    fit: float
    consistency: float
    boost: float
    present: tuple[str, ...]        # expected moves that deviate
    contradicted: tuple[str, ...]   # contradicting moves that deviate
    linked_events: tuple[OperationalEvent, ...]
    #: Whether the pattern may be named: see ``Signature.standalone``.
    corroborated: bool = True


@dataclass(frozen=True)
class Signature:
    """An incident pattern: anchors (every group needs one deviating move), expected moves, contradictions."""

    problem_type: str
    description: str
    anchors: tuple[tuple[Move, ...], ...]
    expects: tuple[Move, ...]
    contradicts: tuple[Move, ...]
    event_types: frozenset[str] = frozenset()
    #: A standalone pattern may be named on its anchor move alone (latency
    #: up is a latency issue) when that move passes its threshold. Others need corroboration -- two of their
    #: expected moves deviating, or a linked event -- because one noisy
    #: metric (an error rate doubling on a small editor) is not a diagnosis.
    standalone: bool = False

    def match(self, readings: Mapping[str, MetricReading], events: Iterable[OperationalEvent],
              config: ClassifierConfig) -> SignatureMatch | None:
        """Score this pattern against the readings; None when its anchors are not there."""
        for group in self.anchors:
            if not any(move.satisfied_by(readings.get(move.metric)) for move in group):
                return None
        present_moves = [m for m in self.expects if m.metric in readings]
        total = sum(m.weight for m in present_moves)
        fit = sum(m.weight * readings[m.metric].strength(m.direction) for m in present_moves) / total if total else 0.0
        consistency = 1.0
        for move in self.contradicts:
            # Only real deviations contradict, and by their size, not by how
            # surprising they are: every pattern has small side effects (a
            # latency problem nudges fill down 2 %, which a detector on a very
            # steady fill rate may flag), and those must not veto it.
            reading = readings.get(move.metric)
            if reading is not None and reading.deviates(move.direction):
                consistency *= 1.0 - move.weight * reading.size(move.direction, config.contradiction_full_magnitude)
        weighted = [(e, self.event_weight(e)) for e in events if self.links(e.event_type, e.editor_id, e.partner)]
        linked = tuple(e for e, w in weighted if w > 0)
        # The strongest linked event counts, not their sum: ten deployments
        # are not ten times the evidence.
        boost = max((w for _, w in weighted), default=0.0) * config.event_boost
        if self.problem_type == SECURITY_ISSUE and linked:
            boost += config.security_finding_boost * max(_severity_weight(e) for e in linked)
        present = tuple(m.describe() for m in present_moves if readings[m.metric].deviates(m.direction))
        return SignatureMatch(
            problem_type=self.problem_type,
            description=self.description,
            score=min(1.0, fit * consistency + boost),
            fit=fit,
            consistency=consistency,
            boost=boost,
            present=present,
            contradicted=tuple(m.describe() for m in self.contradicts
                               if m.metric in readings and readings[m.metric].deviates(m.direction)),
            linked_events=linked,
            corroborated=self._alone_is_enough(readings) or len(present) >= 2 or bool(linked),
        )

    def _alone_is_enough(self, readings: Mapping[str, MetricReading]) -> bool:
        """A standalone pattern is named on its anchor alone only when the anchor move passes its own
        threshold: a detector flag on a smaller move (latency +34 % on a steady editor in a traffic
        surge) is a surprise, not yet a diagnosis."""
        return self.standalone and all(
            any(Move(m.metric, m.direction, must_pass_threshold=True).satisfied_by(readings.get(m.metric))
                for m in group)
            for group in self.anchors)

    def links(self, event_type: str, editor_id: str | None, partner: str | None) -> bool:
        """Whether an event of this kind can corroborate the pattern: one of its ``event_types``, but a
        change made for a demand partner (a config change, deployment or feature flag naming the partner
        and no editor, which the streaming job passes to the partner's editors) only the demand-side
        patterns: a demand outage (the partner was touched), and a pricing issue as its own event types
        say (a config change). It can change what the partner bids, pays and fills, not the editor's own
        pages, servers or traffic: as corroboration of a configuration breakage it would turn the
        partner's outage on its editors (fill down, impressions down) into a CONFIGURATION_ISSUE.

        >>> demand, pricing, configuration = (SIGNATURE_BY_TYPE[t] for t in (DEMAND_ISSUE, PRICING_ISSUE,
        ...                                                                   CONFIGURATION_ISSUE))
        >>> configuration.links("config_change", "e-1", None), configuration.links("config_change", None, None)
        (True, True)
        >>> configuration.links("config_change", None, "p-1"), demand.links("feature_flag", None, "p-1")
        (False, True)
        >>> pricing.links("config_change", None, "p-1"), pricing.links("deployment", None, "p-1")
        (True, False)
        """
        if editor_id is None and partner is not None and event_type in CHANGE_EVENT_TYPES:
            return self.problem_type == DEMAND_ISSUE or (CATEGORY_OF[self.problem_type] == "DEMAND"
                                                         and event_type in self.event_types)
        return event_type in self.event_types

    def event_weight(self, event: OperationalEvent) -> float:
        """How much one event of a linked type supports this pattern, in [0, 1]."""
        if event.event_type == "security_finding":
            # A blocked login (severity 2) says little about invalid traffic.
            return _severity_weight(event)
        if event.event_type == "partner_status":
            # "partner back to HEALTHY" is the end of an outage, not a cause.
            return 0.0 if event.reports_recovery else 1.0
        if self.problem_type == PRICING_ISSUE and not _mentions_pricing(event):
            # A config change that says nothing about floors or prices is only half a hint.
            return 0.5
        if self.problem_type == DEMAND_ISSUE and event.event_type != "partner_status":
            # A change made for the partner (links) says it was touched, not that it is failing.
            return 0.5
        return 1.0


#: Not "bid" alone: "bid timeout", "bidder" and "prebid" are not about prices, and a change of the
#: partner's timeout read as a floor change outweighed its demand outage (a review found it,
#: 2026-12-07); the settings that do set what a bid pays are named.
_PRICING_WORDS = ("floor", "price", "pricing", "cpm", "reserve", "max_bid", "min_bid", "max bid", "min bid",
                  "bid_adjust", "bid adjust", "shading")


def _severity_weight(event: OperationalEvent) -> float:
    """Severity 0-10 as a weight in [0, 1]; a finding without a severity counts half."""
    return 0.5 if event.severity is None else min(max(event.severity / 10.0, 0.0), 1.0)


def _mentions_pricing(event: OperationalEvent) -> bool:
    text = json.dumps(event.details, default=str).lower()
    return any(word in text for word in _PRICING_WORDS)


def _m(metric: str, direction: int, weight: float = 1.0) -> Move:
    return Move(metric, direction, weight)


#: Ordered from most to least specific: exact score ties go to the earlier one.
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        SECURITY_ISSUE, "invalid traffic: impressions surge while each impression earns less",
        anchors=((Move("impressions", UP, must_pass_threshold=True),),
                 (_m("rpm", DOWN), _m(REVENUE_PER_IMPRESSION, DOWN))),
        expects=(_m("impressions", UP, 2.0), _m("rpm", DOWN, 1.5), _m(REVENUE_PER_IMPRESSION, DOWN, 1.5)),
        contradicts=(_m("error_rate", UP, 0.3), _m("bid_latency_ms", UP, 0.2), _m("cache_hit_rate", DOWN, 0.2),
                     _m("fill_rate", DOWN, 0.4), _m("partner_timeouts", UP, 0.3)),
        event_types=frozenset({"security_finding"}),
    ),
    Signature(
        INFRASTRUCTURE_ISSUE, "an infrastructure fault: errors up, cache hit rate down, latency up",
        anchors=((_m("error_rate", UP), _m("cache_hit_rate", DOWN)),),
        expects=(_m("error_rate", UP, 1.5), _m("cache_hit_rate", DOWN, 1.5), _m("bid_latency_ms", UP, 1.0),
                 _m("rpm", DOWN, 0.25)),
        contradicts=(_m("fill_rate", DOWN, 0.3), _m("impressions", UP, 0.3)),
        event_types=frozenset({"deployment"}),
    ),
    Signature(
        DEMAND_ISSUE, "a demand-partner outage: fill down, partner timeouts up, rpm down",
        anchors=((_m("fill_rate", DOWN),),),
        expects=(_m("fill_rate", DOWN, 2.0), _m("rpm", DOWN, 1.0), _m("partner_timeouts", UP, 1.5),
                 _m("revenue", DOWN, 0.5), _m("bid_rate", DOWN, 0.5), _m("win_rate", DOWN, 0.5)),
        contradicts=(_m("error_rate", UP, 0.5), _m("cache_hit_rate", DOWN, 0.5), _m("impressions", UP, 0.3),
                     # An outage removes fill, not price: rpm falling much
                     # faster than fill means the price fell (pricing). Losing
                     # the top bidder lowers the price a little, so not a veto.
                     _m(ECPM, DOWN, 0.5),
                     # Timeouts cap an outage's latency rise near the auction
                     # timeout; latency soaring several-fold is a latency problem.
                     _m("bid_latency_ms", UP, 0.4)),
        event_types=frozenset({"partner_status"}),
    ),
    # The same outage seen from an editor that used the partner for a small
    # share of its fill: its fill and rpm barely move, but the partner's
    # timeouts soar. Soaring latency or errors would point elsewhere. Not
    # standalone: an editor's partner_timeouts window is a sum over whichever
    # partners reported in it, so it jumps alone when the mix changes; a lone
    # partner's failure is judged per (partner, editor) by partner health
    # (detectors.partner_health.assess_partner_editors), and here it needs a
    # second move or a partner_status event.
    Signature(
        DEMAND_ISSUE, "a demand-partner outage: partner timeouts soaring (a partner with a small share of fill)",
        anchors=((Move("partner_timeouts", UP, must_pass_threshold=True),),),
        expects=(_m("partner_timeouts", UP, 2.0), _m("fill_rate", DOWN, 1.0), _m("rpm", DOWN, 0.5),
                 _m("revenue", DOWN, 0.25), _m("bid_rate", DOWN, 0.5), _m("win_rate", DOWN, 0.5)),
        contradicts=(_m("bid_latency_ms", UP, 0.6), _m("error_rate", UP, 0.5), _m("cache_hit_rate", DOWN, 0.5),
                     _m(ECPM, DOWN, 0.5)),
        event_types=frozenset({"partner_status"}),
    ),
    Signature(
        CONFIGURATION_ISSUE, "a configuration breakage: errors up, impressions down",
        anchors=((_m("error_rate", UP), _m("impressions", DOWN)),),
        expects=(_m("error_rate", UP, 1.5), _m("impressions", DOWN, 1.5), _m("revenue", DOWN, 0.5)),
        contradicts=(_m("cache_hit_rate", DOWN, 0.4), _m("bid_latency_ms", UP, 0.3), _m("fill_rate", DOWN, 0.3),
                     _m("partner_timeouts", UP, 0.3)),
        event_types=CHANGE_EVENT_TYPES,
    ),
    Signature(
        LATENCY_ISSUE, "latency degradation: bid latency up",
        anchors=((_m("bid_latency_ms", UP),),),
        # Slow bids also time out more often: timeouts up supports latency
        # (only weakly: soaring timeouts with fill down are a partner outage).
        expects=(_m("bid_latency_ms", UP, 2.0), _m("rpm", DOWN, 1.0), _m("revenue", DOWN, 0.5),
                 _m("partner_timeouts", UP, 0.5)),
        contradicts=(_m("error_rate", UP, 0.6), _m("cache_hit_rate", DOWN, 0.6), _m("fill_rate", DOWN, 0.6)),
        event_types=frozenset({"deployment"}),
        standalone=True,
    ),
    Signature(
        PRICING_ISSUE, "a pricing / floor misconfiguration: rpm down with fill normal or up",
        anchors=((_m("rpm", DOWN),),),
        expects=(_m("rpm", DOWN, 2.0), _m(ECPM, DOWN, 1.5), _m("revenue", DOWN, 0.5), _m("fill_rate", UP, 0.5)),
        contradicts=(_m("fill_rate", DOWN, 0.5), _m("partner_timeouts", UP, 0.4), _m("bid_latency_ms", UP, 0.4),
                     _m("error_rate", UP, 0.4), _m("cache_hit_rate", DOWN, 0.3), _m("impressions", UP, 0.5),
                     _m("impressions", DOWN, 0.3)),
        event_types=frozenset({"config_change"}),
        standalone=True,
    ),
)
#: The first (main) signature of each problem type.
SIGNATURE_BY_TYPE: dict[str, Signature] = {}
for _signature in SIGNATURES:
    SIGNATURE_BY_TYPE.setdefault(_signature.problem_type, _signature)


# --------------------------------------------------------------------------- severity
def _ladder(value: float, cutoffs: tuple[float, ...]) -> int:
    """Index into SEVERITIES: how many cut-offs ``value`` reaches."""
    return sum(1 for c in cutoffs if value >= c)


def assess_severity(readings: Mapping[str, MetricReading], adverse: list[str], deviations: Mapping[str, MetricDeviation],
                    problem_type: str, events: Iterable[OperationalEvent], config: ClassifierConfig) -> str:
    """Highest of the revenue-share, revenue-amount, breadth and magnitude ladders (module docstring, step 4)."""
    loss = revenue_loss_fraction(deviations)
    at_risk = revenue_at_risk(deviations, config.window_seconds, config.rate_period_s,
                              invalid_traffic=problem_type == SECURITY_ISSUE)
    magnitude = max((readings[m].magnitude for m in adverse), default=0.0)
    level = max(
        _ladder(loss, config.severity_revenue_loss_fraction),
        _ladder(at_risk, config.severity_revenue_at_risk),
        _ladder(len(adverse), config.severity_metric_count),
        _ladder(magnitude, config.severity_magnitude),
    )
    if problem_type == SECURITY_ISSUE:
        # Invalid traffic rarely loses revenue today (bots inflate it); the
        # cost is the advertisers' clawback, proportional to the share of
        # impressions that are not human.
        level = max(level, _ladder(invalid_traffic_share(deviations), config.severity_invalid_traffic_share))
        worst = max((e.severity or 0.0 for e in events if e.event_type == "security_finding"), default=0.0)
        if worst >= config.critical_security_severity:
            level = 3
        elif worst >= 7.0:
            level = max(level, 2)
    return SEVERITIES[level]


def clawback_note(deviations: Mapping[str, MetricDeviation]) -> str:
    """What a SECURITY_ISSUE's revenue at risk stands for (detectors.revenue.revenue_at_risk).

    >>> clawback_note({"impressions": MetricDeviation("impressions", 3000.0, 1000.0, 900.0, 1100.0, 1.0, True)})
    'the larger of the shortfall and what the 67% of impressions above baseline earned, clawed back if invalid'
    """
    return (f"the larger of the shortfall and what the {invalid_traffic_share(deviations):.0%} of impressions "
            "above baseline earned, clawed back if invalid")


# --------------------------------------------------------------------------- evidence
def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}" if x else "0"


def describe_deviation(reading: MetricReading) -> str:
    """``"rpm 1.20 vs baseline 2.50 (-52.0%, detector score 0.97)"``."""
    d = reading.deviation
    percent = d.percent_change()
    detail = f"{percent:+.1f}%" if percent is not None else "from a zero baseline"
    if d.metric in DERIVED_METRICS:
        detail += ", derived: {} / {}".format(*DERIVED_METRICS[d.metric])
    elif d.score or d.is_anomaly:
        detail += f", detector score {d.score:.2f}"
    return f"{d.metric} {_fmt(d.value)} vs baseline {_fmt(d.shown_baseline)} ({detail})"


def describe_event(event: OperationalEvent, window_end_s: float | None) -> str:
    text = f"{event.event_type} at {iso_z(event.timestamp_s)}"
    if window_end_s is not None:
        text += f" ({max(window_end_s - event.timestamp_s, 0) / 60:.0f} min before window end)"
    who = ", ".join(f"{k} {v}" for k, v in (("partner", event.partner), ("severity", event.severity)) if v is not None)
    if who:
        text += f" [{who}]"
    if event.details:
        text += " " + json.dumps(event.details, sort_keys=True, default=str)[:160]
    return text


# --------------------------------------------------------------------------- classify
def linked_events(events: Iterable[OperationalEvent], window_end_s: float | None, lookback_s: float) -> list[OperationalEvent]:
    """Events in ``[window_end - lookback, window_end)`` (all of them when no window end is known), oldest first.

    The window's end is not its own (Flink's windows are half-open): an event stamped at the end
    happened after every sample of the window, so it cannot explain it, and whether it had
    arrived when the window was decided would depend on arrival order.
    """
    chosen = [e for e in events
              if window_end_s is None or window_end_s - lookback_s <= e.timestamp_s < window_end_s]
    # By the whole content, not only time and type: two events at the same instant (two partners'
    # status reports) arrive in either order, and the verdict's evidence must not depend on it.
    return sorted(chosen, key=lambda e: (e.timestamp_s, e.event_type, e.editor_id or "", e.partner or "",
                                         -1.0 if e.severity is None else e.severity,
                                         json.dumps(e.details, sort_keys=True, default=str)))


def is_material(adverse: list[str], readings: Mapping[str, MetricReading], config: ClassifierConfig) -> bool:
    """Whether adverse moves that fit no signature still make an (UNKNOWN) incident.

    A lone metric that is flagged, or just past its threshold, without any
    pattern around it is more likely noise than an incident an AdOps engineer
    can act on; several adverse metrics at once, or one far past its
    threshold, are not.
    """
    return (len(adverse) >= config.unknown_min_adverse_metrics
            or any(readings[m].magnitude >= config.unknown_min_magnitude for m in adverse))


def classify(deviations: Mapping[str, MetricDeviation], events: Iterable[OperationalEvent] = (),
             config: ClassifierConfig | None = None, *, window_end_s: float | None = None) -> Classification:
    """Classify one editor's window. See the module docstring for the rules.

    ``events`` should be the editor's operational events (and its partners');
    with ``window_end_s`` only those in the configured look-back are used.
    """
    config = config or ClassifierConfig()
    readings = read_metrics(deviations, config)
    reported = {m: r for m, r in readings.items() if m not in DERIVED_METRICS}
    affected = sorted(m for m, r in reported.items() if r.deviates_any)
    adverse = sorted(m for m, r in reported.items()
                     if any(r.deviates(d) for d in ADVERSE_DIRECTIONS.get(m, (UP, DOWN))))
    recent = linked_events(events, window_end_s, config.event_lookback_s)

    matches = [m for s in SIGNATURES if (m := s.match(readings, recent, config)) is not None]
    scores: dict[str, float] = {}
    for m in matches:  # a problem type with two signatures keeps its better score
        scores[m.problem_type] = max(scores.get(m.problem_type, 0.0), round(m.score, 3))
    # max() keeps the first of equal scores, and SIGNATURES runs most specific first.
    best = max((m for m in matches if m.corroborated), key=lambda m: m.score, default=None)
    matched = best is not None and best.score >= config.min_signature_score

    if not matched and not (adverse and is_material(adverse, readings, config)):
        note = "no incident: "
        if adverse:
            note += "a lone adverse move that fits no pattern (likely noise): "
        elif affected:
            note += "only benign moves: "
        else:
            note += "every metric is within its baseline"
        note += ", ".join(describe_deviation(reported[m]) for m in affected)
        return Classification(NO_ISSUE, NO_ISSUE, NO_ISSUE, [note], affected, is_incident=False, scores=scores)

    if matched:
        problem_type, confidence = best.problem_type, best.score
        runner_up = max((m for m in matches if m.problem_type != problem_type), key=lambda m: m.score, default=None)
        headline = (f"{problem_type} (score {best.score:.2f}): {best.description}; "
                    f"seen: {', '.join(best.present) or 'partial pattern'}")
        if best.contradicted:
            headline += f"; against: {', '.join(best.contradicted)}"
        if runner_up is not None:
            headline += f"; runner-up {runner_up.problem_type} {runner_up.score:.2f}"
            if not runner_up.corroborated:
                # it may score higher: a pattern seen in one metric, with no second metric or event, is not
                # chosen however strong (a reader saw a runner-up above the winner with no reason given)
                headline += " (uncorroborated: a single metric, no corroborating metric or event)"
        linked = best.linked_events
        derived_seen = [m for m in DERIVED_METRICS if any(p.startswith(m + " ") for p in best.present)]
    else:
        closest = max(matches, key=lambda m: m.score, default=None)
        problem_type, confidence, linked, derived_seen = UNKNOWN, closest.score if closest else 0.0, (), []
        headline = "UNKNOWN: adverse deviations fit no known signature"
        if closest is not None:
            why = (f"below {config.min_signature_score:.2f}" if closest.corroborated
                   else "a single metric, no corroborating metric or event")
            headline += f" (closest {closest.problem_type} {closest.score:.2f}: {why})"

    # Anomalous metrics first, strongest first, so the evidence reads in order of importance.
    ordered = sorted(affected, key=lambda m: (-reported[m].magnitude, m))
    evidence = [headline] + [describe_deviation(reported[m]) for m in ordered]
    evidence += [describe_deviation(readings[m]) for m in derived_seen]
    evidence += ["linked event: " + describe_event(e, window_end_s) for e in linked]
    invalid = problem_type == SECURITY_ISSUE
    at_risk = revenue_at_risk(deviations, config.window_seconds, config.rate_period_s, invalid_traffic=invalid)
    if at_risk > 0:
        evidence.append(f"revenue at risk {at_risk:,.2f} in the {config.window_seconds / 60:.0f}-min window"
                        + (f" ({clawback_note(deviations)})" if invalid else ""))

    severity = assess_severity(readings, adverse, deviations, problem_type, recent, config)
    return Classification(problem_type, CATEGORY_OF[problem_type], severity, evidence, affected,
                          is_incident=True, confidence=round(confidence, 3), scores=scores)
