"""detectors.seasonal_surprise: synthetic anomalies, no false alarms, and the detector contract."""

from __future__ import annotations

import math
import pickle
import random

import pytest

import detectors
from detectors.base import Detection
from detectors.seasonal_surprise import SeasonalSurprise

STEP = 300.0
T0 = 1_700_438_400.0  # 2023-11-20 00:00 UTC
DAY = 288
N = 8 * DAY
ONSET = 6 * DAY + 100  # day 6, 08:20


def seasonal_series(n: int = N, seed: int = 1, noise: float = 0.03) -> list[tuple[float, float]]:
    """Daily cycle (±50 %), 3 % multiplicative noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + i * STEP
        hour = (t % 86400) / 3600
        out.append((t, 100.0 * (1.0 + 0.5 * math.sin(2 * math.pi * (hour - 9) / 24))
                    * (1.0 + noise * rng.gauss(0.0, 1.0))))
    return out


def inject(kind: str, series, onset: int = ONSET):
    s = [list(x) for x in series]
    for i in range(onset, len(s)):
        if kind == "spike" and i == onset:
            s[i][1] *= 1.6
        elif kind == "drop" and i < onset + 24:
            s[i][1] *= 0.5
        elif kind == "shift":
            s[i][1] *= 1.4
    return [tuple(x) for x in s]


def run(series, **params) -> list[Detection]:
    d = detectors.make("seasonal_surprise", **params)
    return [d.update(t, v) for t, v in series]


def outputs(d, data) -> list[tuple]:
    return [tuple(getattr(d.update(t, v), f) for f in ("score", "expected", "lower", "upper", "is_anomaly"))
            for t, v in data]


@pytest.fixture(scope="module")
def base():
    return seasonal_series()


def test_registered():
    assert "seasonal_surprise" in detectors.available()
    d = detectors.make("seasonal_surprise", seed=0)
    assert isinstance(d, SeasonalSurprise) and d.name == "seasonal_surprise"


@pytest.mark.parametrize("kind", ["spike", "drop", "shift"])
def test_detects_synthetic_anomaly_at_its_onset(base, kind):
    rs = run(inject(kind, base))
    alarms = [i for i, r in enumerate(rs) if r.is_anomaly and i >= DAY]
    assert alarms and ONSET <= alarms[0] <= ONSET + 1, alarms[:5]
    # the highest score after the first day is inside the episode (a drop escalates while it lasts)
    best = max(range(DAY, N), key=lambda i: rs[i].score)
    assert ONSET <= best <= ONSET + (1 if kind == "spike" else 24)
    # an episode pages once or a few times with increasing scores, not on every anomalous value
    episode = [i for i in alarms if ONSET <= i < ONSET + 200]
    assert alarms == episode and len(episode) <= 3
    assert all(rs[i].score < rs[j].score for i, j in zip(episode, episode[1:]))


def test_no_alarm_on_clean_seasonal_series(base):
    """After the first day (the learning period: the daily profile is not known yet)."""
    rs = run(base)[DAY:]
    assert not any(r.is_anomaly for r in rs)
    assert max(r.score for r in rs) < 0.33


@pytest.mark.parametrize("shape", ["square", "sawtooth", "sine", "flat"])
def test_no_alarm_on_regular_shapes(shape):
    """Regular daily jumps (square wave, saw-tooth) are seasonality, not spikes."""
    rng = random.Random(2)
    data = []
    for i in range(6 * DAY):
        phase = (i % DAY) / DAY
        if shape == "square":
            v = 10.0 if phase < 0.5 else 20.0
        elif shape == "sawtooth":
            v = 10.0 + 10.0 * phase
        elif shape == "sine":
            v = 10.0 + 5.0 * math.sin(2 * math.pi * phase)
        else:
            v = 7.0
        data.append((T0 + i * STEP, v + (0.1 * rng.gauss(0.0, 1.0) if shape != "flat" else 0.0)))
    rs = run(data)[DAY:]
    assert not any(r.is_anomaly for r in rs), shape


def test_warmup_scores_zero(base):
    rs = run(inject("spike", base, onset=100))
    assert all(r.score == 0.0 for r in rs[:150])


def test_detection_fields(base):
    for r in run(inject("shift", base)):
        assert isinstance(r, Detection) and isinstance(r.is_anomaly, bool)
        assert 0.0 <= r.score < 1.0
        assert r.lower <= r.expected <= r.upper


def test_round_trip_gives_identical_subsequent_outputs(base):
    data = inject("drop", base)
    d = detectors.make("seasonal_surprise")
    outputs(d, data[:ONSET - 10])
    blob = d.to_bytes()
    assert blob[:2] == b"AD"
    restored = detectors.from_bytes(blob)
    assert type(restored) is SeasonalSurprise and restored.to_bytes() == blob
    assert outputs(restored, data[ONSET - 10:]) == outputs(d, data[ONSET - 10:])
    d2 = detectors.make("seasonal_surprise")
    outputs(d2, data[:ONSET - 10])
    assert outputs(pickle.loads(pickle.dumps(d2)), data[ONSET - 10:]) == outputs(
        detectors.from_bytes(blob), data[ONSET - 10:])


def test_round_trip_on_every_update_like_the_flink_job(base):
    """The streaming job re-serialises the model after every window."""
    data = inject("spike", base)[:ONSET + 50]
    d = detectors.make("seasonal_surprise")
    expected = outputs(d, data)
    blob = detectors.make("seasonal_surprise").to_bytes()
    got = []
    for t, v in data:
        m = detectors.from_bytes(blob)
        got.append(outputs(m, [(t, v)])[0])
        blob = m.to_bytes()
    assert got == expected


def test_deterministic(base):
    data = inject("spike", base)
    assert outputs(detectors.make("seasonal_surprise", seed=1), data) == \
        outputs(detectors.make("seasonal_surprise", seed=7), data)


def test_strictly_causal(base):
    data = list(base[:1000])
    k = 700
    altered = list(data)
    altered[k] = (altered[k][0], altered[k][1] * 3.0)
    altered[k + 1:] = [(t, v + 7.0) for t, v in altered[k + 1:]]
    a = outputs(detectors.make("seasonal_surprise"), data)
    b = outputs(detectors.make("seasonal_surprise"), altered)
    assert a[:k] == b[:k]
    assert a[k] != b[k]
    d = detectors.make("seasonal_surprise")
    outputs(d, data[:k])
    before = d.to_bytes()
    d.detect(*data[k])
    d.score_one(*data[k])
    assert d.to_bytes() == before


def test_update_is_detect_then_learn(base):
    data = inject("drop", base)
    a = detectors.make("seasonal_surprise")
    b = detectors.make("seasonal_surprise")
    for t, v in data:
        r = b.detect(t, v)
        b.learn_one(t, v)
        assert a.update(t, v) == r


def test_non_finite_values_score_zero_and_are_not_learned(base):
    d = detectors.make("seasonal_surprise")
    outputs(d, base[:600])
    before = d.to_bytes()
    t = base[600][0]
    for ts, v in ((t, math.nan), (t, math.inf), (t, -math.inf), (math.nan, 1.0), (math.inf, 1.0)):
        r = d.update(ts, v)
        assert r.score == 0.0 and not r.is_anomaly
        d.learn_one(ts, v)
        assert d.score_one(ts, v) == 0.0
    assert d.to_bytes() == before


def test_state_is_small(base):
    d = detectors.make("seasonal_surprise")
    outputs(d, seasonal_series(14 * DAY))
    assert len(d.to_bytes()) <= 1200  # 48 bins: two float64 profiles and one byte each


def test_bad_parameters_rejected():
    with pytest.raises(ValueError):
        SeasonalSurprise(n_bins=0)
    with pytest.raises(ValueError):
        SeasonalSurprise(bin_memory=300)


def test_irregular_timestamps_are_handled(base):
    """Gaps, duplicate timestamps and a step backwards (all present in NAB)."""
    data = list(base[:1200])
    data = data[:300] + data[400:]
    data[500] = (data[499][0], data[500][1])
    data[700] = (data[699][0] - 3600.0, data[700][1])
    d = detectors.make("seasonal_surprise")
    for t, v in data:
        r = d.update(t, v)
        assert 0.0 <= r.score <= 1.0 and math.isfinite(r.expected)
    assert detectors.from_bytes(d.to_bytes()).to_bytes() == d.to_bytes()


def test_float32_profiles_round_trip_and_are_smaller(base):
    data = inject("spike", base)
    d = detectors.make("seasonal_surprise", float32_profiles=True)
    outputs(d, data[:ONSET - 10])
    blob = d.to_bytes()
    restored = detectors.from_bytes(blob)
    assert restored.to_bytes() == blob
    assert outputs(restored, data[ONSET - 10:]) == outputs(d, data[ONSET - 10:])
    assert len(blob) < len(detectors.make("seasonal_surprise").to_bytes()) - 300
    alarms = [i for i, r in enumerate(run(data, float32_profiles=True)) if r.is_anomaly and i >= DAY]
    assert alarms == [ONSET]


def test_prescore_emit_learn_prescored_is_update(base):
    """The hooks an ensemble uses: with an unchanged raw score they are exactly ``update``."""
    data = inject("drop", base)
    a = detectors.make("seasonal_surprise")
    b = detectors.make("seasonal_surprise")
    for t, v in data:
        raw, parts = b.prescore(t, v)
        emitted = b.emit(raw)
        b.learn_prescored(v, raw, parts)
        assert a.update(t, v).score == emitted
    assert a.to_bytes() == b.to_bytes()
