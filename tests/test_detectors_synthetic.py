"""Detectors on synthetic 5-minute series with known anomalies.

The base series has a daily cycle (±50 %), quieter weekends (×0.8) and 3 %
multiplicative noise. Anomalies start at ``ONSET`` (day 6, 08:20):

* spike  – one value ×1.6;
* drop   – two hours ×0.5, then back to normal;
* shift  – everything from the onset on ×1.4;
* drift  – +0.2 % per value from the onset on (+58 % after a day).

Each detector is checked on the kinds it is built for (see detectors/README.md):
it must raise ``is_anomaly`` within a few values of the onset, and its highest
score after the warm-up must be at (or right after) the onset.
"""

from __future__ import annotations

import math
import random

import pytest

import detectors

STEP = 300.0
T0 = 1_700_438_400.0  # 2023-11-20 00:00 UTC, a Monday
DAY = 288
N = 8 * DAY
ONSET = 6 * DAY + 100
WARMUP = DAY  # values before this are the detectors' learning period


def seasonal_series(n: int = N, seed: int = 1, noise: float = 0.03) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + i * STEP
        hour = (t % 86400) / 3600
        weekday = int((t - T0) // 86400) % 7
        daily = 1.0 + 0.5 * math.sin(2 * math.pi * (hour - 9) / 24)
        weekly = 0.8 if weekday >= 5 else 1.0
        out.append([t, 100.0 * daily * weekly * (1.0 + noise * rng.gauss(0.0, 1.0))])
    return out


def inject(kind: str, series: list[list[float]], onset: int = ONSET) -> list[list[float]]:
    s = [list(x) for x in series]
    for i in range(onset, len(s)):
        if kind == "spike" and i == onset:
            s[i][1] *= 1.6
        elif kind == "drop" and i < onset + 24:
            s[i][1] *= 0.5
        elif kind == "shift":
            s[i][1] *= 1.4
        elif kind == "drift":
            s[i][1] *= 1.0 + 0.002 * (i - onset)
    return s


def run(name: str, series, **params) -> list[detectors.Detection]:
    d = detectors.make(name, **params)
    return [d.update(t, v) for t, v in series]


@pytest.fixture(scope="module")
def base():
    return seasonal_series()


# (detector, kind, how many values after the onset the first alarm may come)
CASES = [
    ("windowed_gaussian", "spike", 0), ("windowed_gaussian", "drop", 0), ("windowed_gaussian", "shift", 0),
    ("seasonal", "spike", 0), ("seasonal", "drop", 0), ("seasonal", "shift", 0),
    ("river_volatility", "spike", 0), ("river_volatility", "drop", 0), ("river_volatility", "shift", 0),
    ("changepoint", "drop", 4), ("changepoint", "shift", 4), ("changepoint", "drift", DAY + 12),
    ("ensemble", "spike", 0), ("ensemble", "drop", 0), ("ensemble", "shift", 0),
]


@pytest.mark.parametrize("name,kind,max_delay", CASES)
def test_flags_anomaly_near_its_onset(base, name, kind, max_delay):
    rs = run(name, inject(kind, base))
    alarms = [i for i in range(ONSET, N) if rs[i].is_anomaly]
    assert alarms, f"{name} never flagged the {kind}"
    assert alarms[0] - ONSET <= max_delay, f"{name} flagged the {kind} {alarms[0] - ONSET} values late"
    if kind != "drift" and name != "changepoint":
        # the highest score after the warm-up is at the onset (drift has no single onset
        # value; a CUSUM's score saturates along every run, so only its alarm is checked)
        top = max(range(WARMUP, N), key=lambda i: rs[i].score)
        assert ONSET <= top <= ONSET + max(max_delay, 4), f"{name}: top score at {top - ONSET} from the onset"


@pytest.mark.parametrize("name", ["seasonal", "river_volatility", "changepoint", "ensemble"])
def test_few_false_alarms_before_the_anomaly(base, name):
    rs = run(name, base)
    false_alarms = sum(r.is_anomaly for r in rs[WARMUP:])
    # the ensemble pages on nothing; single detectors stay well under 1 % of values
    limit = 0 if name == "ensemble" else 0.01 * (N - WARMUP)
    assert false_alarms <= limit


def test_ensemble_does_not_alarm_on_a_holiday_surge(base):
    """A whole day smoothly rising to ~1.8x and back (Black Friday) is not an incident."""
    holiday = [list(x) for x in base]
    start = 6 * DAY
    for i in range(start, start + DAY):
        holiday[i][1] *= 1.0 + 0.8 * math.sin(math.pi * (i - start) / DAY) ** 2
    rs = run("ensemble", holiday)
    assert not any(r.is_anomaly for r in rs[start:])
    # ...while the same detector does page on a sudden drop of the same day
    rs_drop = run("ensemble", inject("drop", holiday, onset=start + 150))
    assert any(r.is_anomaly for r in rs_drop[start + 150:start + 155])


def test_seasonal_baseline_rebaselines_after_a_level_shift(base):
    rs = run("seasonal", inject("shift", base))
    unshifted = run("seasonal", base)
    assert rs[ONSET].is_anomaly
    # a persistent new level becomes normal again instead of alarming forever: within
    # an hour the alarms are back to the background rate of the unshifted series
    # (which has its own: the weekend steps the weekly profile has not learned yet)
    later = slice(ONSET + 12, N)
    assert sum(r.is_anomaly for r in rs[later]) <= sum(r.is_anomaly for r in unshifted[later]) + 1
    # and the expected value follows the new level (within 10 %)
    t, v = inject("shift", base)[-1]
    assert abs(rs[-1].expected - v) / v < 0.10


def test_seasonal_baseline_is_robust_to_outliers(base):
    """A burst of isolated outliers does not drag the baseline (Huber-type updates)."""
    noisy = [list(x) for x in base]
    rng = random.Random(7)
    for i in range(4 * DAY, 5 * DAY, 24):
        noisy[i][1] *= rng.choice((0.2, 5.0))
    clean_rs = run("seasonal", base)
    noisy_rs = run("seasonal", noisy)
    # outliers of -80 % / +400 % move the expectation a day later by a bounded amount:
    # under 2 % on average over the day, under 10 % at the very bins they hit
    diffs = [abs(noisy_rs[i].expected - clean_rs[i].expected) / clean_rs[i].expected
             for i in range(5 * DAY, 6 * DAY)]
    assert sum(diffs) / len(diffs) < 0.02
    assert max(diffs) < 0.10


def test_seasonal_expected_value_follows_the_daily_cycle(base):
    rs = run("seasonal", base)
    errors = [abs(rs[i].expected - base[i][1]) / base[i][1] for i in range(5 * DAY, 6 * DAY)]
    assert sum(errors) / len(errors) < 0.05  # noise is 3 %
    inside = sum(r.lower <= v <= r.upper for r, (_, v) in zip(rs[5 * DAY:6 * DAY], base[5 * DAY:6 * DAY]))
    assert inside >= 0.95 * DAY
