"""Ensemble state v2 (seasonal_surprise backbone) and seasonal_surprise's opt-in level re-basing."""

from __future__ import annotations

import math
import random

import pytest

import detectors
from detectors import serialization
from detectors.ensemble import Ensemble
from detectors.seasonal_surprise import SeasonalSurprise


def _series(n=3 * 288, seed=0):
    rng = random.Random(seed)
    return [(i * 300.0, 100 + 30 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 2)) for i in range(n)]


def test_ensemble_state_of_an_older_layout_is_rejected_clearly():
    d = detectors.make("ensemble")
    for t, v in _series(400):
        d.update(t, v)
    blob = d.to_bytes()
    name, version, offset = serialization.unpack_header(blob)
    assert name == "ensemble" and version == Ensemble.STATE_VERSION == 2
    old = serialization.pack_header("ensemble", 1) + blob[offset:]
    with pytest.raises(ValueError, match="state version 1"):
        detectors.from_bytes(old)


def test_ensemble_round_trip_mid_stream_continues_identically():
    data = _series()
    a = detectors.make("ensemble")
    for t, v in data[:500]:
        a.update(t, v)
    b = detectors.from_bytes(a.to_bytes())
    assert b.to_bytes() == a.to_bytes()
    assert [a.update(t, v) for t, v in data[500:]] == [b.update(t, v) for t, v in data[500:]]
    assert len(a.to_bytes()) <= 4096


def test_rebase_is_off_by_default_and_in_the_state():
    d = SeasonalSurprise()
    assert d.rebase_patience == 0
    for t, v in _series():
        d.update(t, v)
    assert d._offset == 0.0
    r = detectors.from_bytes(d.to_bytes())
    assert r.rebase_patience == 0 and r.to_bytes() == d.to_bytes()


def test_rebase_makes_a_persistent_new_level_normal_within_a_few_values():
    data = _series()
    step = [(t, v * 0.8) for t, v in _series(288, seed=1)]
    step = [(t + len(data) * 300.0, v) for t, v in step]
    plain = SeasonalSurprise(rebase_patience=0)
    rebased = SeasonalSurprise(rebase_patience=3, rebase_z=4.0)
    for t, v in data:
        plain.update(t, v)
        rebased.update(t, v)
    late_plain, late_rebased = [], []
    for i, (t, v) in enumerate(step):
        zp = plain.surprise(t, v)[0]
        zr = rebased.surprise(t, v)[0]
        plain.update(t, v)
        rebased.update(t, v)
        if 12 <= i < 48:
            late_plain.append(zp)
            late_rebased.append(zr)
    # the un-rebased profile is still surprised an hour into the new level; the rebased one is not
    assert sum(late_plain) / len(late_plain) > 4.0
    assert sum(late_rebased) / len(late_rebased) < 3.0  # the additive offset leaves the ×0.8 of the cycle
    assert rebased._offset < 0.0
    r = detectors.from_bytes(rebased.to_bytes())
    assert r.to_bytes() == rebased.to_bytes()
