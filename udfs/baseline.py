"""The per-key state kept beside the online model: a trailing baseline of the last N windows.

Pure Python (no pyflink) so it is unit-testable; udfs/correlator.py keeps it (through udfs/metric_detector.py)
in Flink keyed state. The online model (detectors/) knows seasonality and the
long history; the trailing baseline is the key's own recent level. A window is
anomalous only when both agree once the trailing baseline has enough windows, so
a model that drifted (or is still warming up) does not alarm on its own, and a
slow trend that the trailing median follows does not alarm either.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from statistics import median
from typing import Mapping

from detectors.base import Detection


@dataclass(frozen=True)
class BaselineVerdict:
    median: float
    lower: float
    upper: float
    score: float      # in [0, 1]: how far outside the band, relative to the band half-width
    outside: bool
    windows: int
    value: float = math.nan   # the window value judged


def trailing_verdict(history: list[float], value: float, rel_threshold: float, min_windows: int) -> BaselineVerdict | None:
    """Compare ``value`` with the median +- max(3 robust sigma, rel_threshold * |median|) of ``history``.

    None when there are fewer than ``min_windows`` past windows.

    >>> v = trailing_verdict([10, 11, 9, 10, 10, 11], 5.0, 0.25, 6)
    >>> v.outside, v.median
    (True, 10.0)
    >>> trailing_verdict([10, 11], 5.0, 0.25, 6) is None
    True
    """
    finite = [h for h in history if math.isfinite(h)]
    if len(finite) < max(1, min_windows):
        return None
    med = median(finite)
    mad = median(abs(h - med) for h in finite)
    half = max(3.0 * 1.4826 * mad, rel_threshold * abs(med), 1e-9)
    lower, upper = med - half, med + half
    score, outside = band_score(value, med, lower, upper, half)
    return BaselineVerdict(med, lower, upper, score, outside, len(finite), float(value))


def combine(model: Detection, verdict: BaselineVerdict | None) -> tuple[float, float, float, float, bool]:
    """(baseline, lower, upper, score, is_anomaly) for the classifier from the model and the trailing baseline.

    The model's expected value and band are preferred (they know seasonality);
    a model with no band at all (non-finite) lets the trailing baseline stand in. The shipped
    ensemble has a band from its 13th window: before it reports the value itself, a band of zero
    width, and nothing in those windows is anomalous, whatever the trailing baseline says. (Taking a
    zero-width band as none, so that the trailing baseline decides from its 6th window, was tried on
    2026-12-07: over ten simulated days it raised 6 more composites, all false, in the first hour of
    a series, and detected nothing more.)
    Once both exist a window is anomalous when both agree: the value is outside
    the trailing band (a material move against the key's own recent level) and
    the model either pages or sees the value outside its own band (significant
    given the time of day). The model's paging flag alone is too rare for a
    per-window verdict: it pages at most once per ``suppress_updates`` windows
    (an operator-facing rate limit), so an incident starting a few hours after an
    unrelated page on the same series would otherwise never be seen.
    """
    model_ok = all(math.isfinite(x) for x in (model.expected, model.lower, model.upper))
    # The contract's metrics are never negative (sql/parse/metrics.sql refuses them), and neither is
    # what to expect of one: a model whose series sat at 0 expected -1.2e-8, shown as a baseline of
    # "-0.0" with the reading of 0 "+100 %" from it, and a band below 0 called a 0 outside it.
    expected, lower, upper = (max(x, 0.0) for x in (model.expected, model.lower, model.upper))
    if verdict is None:
        if not model_ok:
            return math.nan, math.nan, math.nan, 0.0, False
        return expected, lower, upper, model.score, model.is_anomaly
    if not model_ok:
        return max(verdict.median, 0.0), max(verdict.lower, 0.0), max(verdict.upper, 0.0), verdict.score, \
            verdict.outside
    model_outside = math.isfinite(verdict.value) and not lower <= verdict.value <= upper
    is_anomaly = verdict.outside and (model.is_anomaly or model_outside)
    score = min(model.score, verdict.score) if not is_anomaly else max(model.score, verdict.score)
    return expected, lower, upper, score, is_anomaly


@dataclass(frozen=True)
class ScoredWindow:
    """One series' window as :func:`score_window` scored it."""
    result: tuple                     # combine's (baseline, lower, upper, score, is_anomaly)
    verdict: BaselineVerdict | None   # the trailing baseline's
    held_out: bool                    # the trailing baseline holds the window out of its history


def score_window(model, history: tuple | str | None, window_end_ms: int, value: float, *, rel_threshold: float,
                 min_windows: int, keep: int) -> tuple[ScoredWindow, tuple]:
    """One key's window, in the scorer's order: the model scores then learns the value, the trailing
    baseline judges it, the two are combined, and the value joins the history (:func:`learn_window`).

    Returns (the :class:`ScoredWindow`, the new history ``(values, held)``). The model is updated in
    place. An editor's series are then judged in its incident frame (:func:`judge_in_frame`), whose
    reference the caller adds to the history (:func:`with_reference`).
    """
    values, held = read_history(history)
    detection = learn_model(model, window_end_ms, value)
    verdict = trailing_verdict(values, value, rel_threshold, min_windows)
    scored = ScoredWindow(combine(detection, verdict), verdict, holds_out(verdict, held, keep))
    return scored, learn_window(values, held, value, verdict, keep)


def judge_in_frame(scored: Mapping[str, ScoredWindow], frame: Mapping[str, tuple],
                   ) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(each metric's result, the incident frame for the next window) of one editor's window.

    The online model learns an incident's level within three or four windows (it re-bases), so
    against its current expected values an incident's later windows looked smaller than they were,
    or normal, and their pattern changed: over ten simulated days, 18 of 85 episodes of four
    composites or more saw the editor's revenue baseline fall below 60 % of its first value (the
    revenue at risk with it), and 15 of 110 incidents got composites of another problem type
    mid-incident (a bot surge read as a pricing issue once the impressions baseline had followed
    the bots). So the baselines and bands of every metric in the window where one first is
    anomalous are held, the editor's *incident frame*, and later windows are judged against them:

    * each metric shows the held baseline and band, so the classifier reads its moves, and the
      revenue at risk its shortfall, against the level before the incident;
    * a metric the incident has moved (anomalous in the frame, as scored or against the frame) is
      anomalous while its value is outside the held band and the trailing baseline still holds its
      windows out (:func:`holds_out`: at most ``keep`` windows, after which a level that lasts is
      the new normal), so a frozen band does not outlive the incident;
    * a metric it has not moved is anomalous only as scored: its model's seasonal judgement stands,
      so a frozen band cannot turn an hour's ordinary rise or fall of a quiet metric into an anomaly
      that keeps the frame, and a composite, going;
    * a metric first seen in the frame joins it at its current baseline.

    The frame ends at the first window with no anomalous metric: the editor is back to normal, and
    that window is still judged against the frame, so that a return to normal is not read against
    the incident's level. (The partner check holds its hurt editors' references the same way:
    detectors/partner_health.py.)

    ``scored``: metric -> :class:`ScoredWindow`; ``frame``: metric -> (baseline, lower, upper, moved),
    empty when no incident is open.

    >>> drop = trailing_verdict([10.0] * 12, 4.0, 0.25, 6)
    >>> onset = {"rpm": ScoredWindow((10.0, 9.0, 11.0, 0.99, True), drop, True),
    ...          "fill_rate": ScoredWindow((0.8, 0.7, 0.9, 0.3, False), None, False)}
    >>> results, frame = judge_in_frame(onset, {})
    >>> results["rpm"], frame
    ((10.0, 9.0, 11.0, 0.99, True), {'fill_rate': (0.8, 0.7, 0.9, False), 'rpm': (10.0, 9.0, 11.0, True)})

    Windows later the model expects the drop; against the frame it is still one:

    >>> later = {"rpm": ScoredWindow((4.5, 3.9, 5.1, 0.1, False), drop, True)}
    >>> judge_in_frame(later, frame)[0]
    {'rpm': (10.0, 9.0, 11.0, 1.0, True)}

    Back in the band: judged against the frame once more, and the frame ends:

    >>> back = {"rpm": ScoredWindow((4.5, 3.9, 5.1, 0.99, False), trailing_verdict([10.0] * 12, 10.5, 0.25, 6), False)}
    >>> judge_in_frame(back, frame)
    ({'rpm': (10.0, 9.0, 11.0, 0.1, False)}, {})
    """
    if not frame and not any(s.result[4] for s in scored.values()):
        return {m: s.result for m, s in scored.items()}, {}
    results, frame, anomalous = {}, dict(frame), False
    for metric, s in scored.items():
        reference = frame.get(metric)
        if reference is None:
            # the frame's first window, or a metric first seen in it: as scored, and it joins the frame
            results[metric] = s.result
            if all(math.isfinite(x) for x in s.result[:3]):
                frame[metric] = (*(float(x) for x in s.result[:3]), bool(s.result[4]))
        elif reference[3] and s.verdict is not None:
            reference_score, outside = band_score(s.verdict.value, *reference[:3])
            is_anomaly = outside and s.held_out
            score = (max(reference_score, s.verdict.score) if is_anomaly
                     else min(reference_score, s.verdict.score))
            results[metric] = (*reference[:3], score, is_anomaly)
        else:
            # not moved by the incident (or too new for the trailing baseline): anomalous as scored,
            # shown against the frame; once anomalous, it is one the incident moved
            results[metric] = (*reference[:3], *s.result[3:])
            if s.result[4] and not reference[3]:
                frame[metric] = (*reference[:3], True)
        anomalous = anomalous or results[metric][4]
    return results, (dict(sorted(frame.items())) if anomalous else {})


def band_score(value: float, baseline: float, lower: float, upper: float,
               half: float | None = None) -> tuple[float, bool]:
    """(score in [0, 1], outside) of ``value`` against a band (``half``: its half-width, by default
    half of ``upper - lower``), the trailing baseline's and the incident frame's alike: 0.5 at the
    band's edge, 1.0 a half-width beyond it.

    >>> band_score(4.0, 10.0, 9.0, 11.0), band_score(10.5, 10.0, 9.0, 11.0)
    ((1.0, True), (0.25, False))
    """
    half = max((upper - lower) / 2.0, 1e-9) if half is None else half
    excess = max(lower - value, value - upper, 0.0)
    if excess > 0:
        return min(1.0, 0.5 + excess / half), True
    return min(0.5, 0.5 * abs(value - baseline) / half), False


def frame_reference(history: tuple | str | None) -> tuple | None:
    """The (baseline, lower, upper, moved) a series' history holds for its editor's incident frame
    (:func:`judge_in_frame`), None when none is open (histories written before 2026-12-08 hold none).

    >>> frame_reference(((10.0,), 1, (10.0, 9.0, 11.0, True))), frame_reference(((10.0,), 0)), frame_reference(None)
    ((10.0, 9.0, 11.0, True), None, None)
    """
    return history[2] if isinstance(history, tuple) and len(history) > 2 else None


def with_reference(history: tuple | str, reference: tuple | None) -> tuple:
    """A history (:func:`read_history`'s forms) as ``(values, held)``, with the frame's reference as a
    third item (None: without).

    >>> with_reference(((10.0,), 1, (9.0, 8.0, 10.0, True)), None), with_reference('{"v": [10.0], "held": 1}', (10.0, 9.0, 11.0, False))
    (((10.0,), 1), ((10.0,), 1, (10.0, 9.0, 11.0, False)))
    """
    values, held = read_history(history)
    return (tuple(values), held) if reference is None else (tuple(values), held, reference)


def holds_out(verdict: BaselineVerdict | None, held: int, keep: int) -> bool:
    """Whether the trailing baseline holds this window out of its history (:func:`learn_window`)."""
    return verdict is not None and verdict.outside and held < keep


def learn_model(model, window_end_ms: int, value: float):
    """The model scores then learns one window's value (its Detection); udfs/metric_detector.py replays a
    series' journal through this same call, so a rebuilt model is the one that scored."""
    return model.update(window_end_ms / 1000.0, value)


def read_history(history: tuple | str | None) -> tuple[list[float], int]:
    """(past window values, windows held out) of the history state: the ``(values, held)`` pair
    :func:`learn_window` returns. States written before 2026-12-05 hold it as JSON text,
    ``{"v": [...], "held": n}`` or a plain list (none held); those are read too. (A tuple, not JSON:
    the state is pickled anyway, and the JSON round trip was ~8 % of the job's Python time.)

    >>> read_history(((10.0, 11.0), 1)), read_history('{"v": [10.0, 11.0], "held": 1}'), read_history("[10.0]")
    (([10.0, 11.0], 1), ([10.0, 11.0], 1), ([10.0], 0))
    """
    if not history:
        return [], 0
    if isinstance(history, tuple):
        return list(history[0]), history[1]         # and the incident frame's reference, if any (frame_reference)
    state = json.loads(history)
    if isinstance(state, list):
        return state, 0
    return list(state.get("v") or []), int(state.get("held") or 0)


def learn_window(values: list[float], held: int, value: float, verdict: BaselineVerdict | None,
                 keep: int) -> tuple[tuple[float, ...], int]:
    """The history state after a window: the value is learned unless it is outside the trailing band.

    An incident's windows would otherwise become the baseline within half the
    history (the median follows after ``keep / 2`` windows), and the return to
    normal would then look like an incident of its own (e.g. traffic "dropping"
    when a bot surge stops). Out-of-band windows are held out for at most
    ``keep`` windows in a row; past that the new level is accepted and learned
    (a level that lasts longer than the history is the new normal).

    Returns the new ``(values, held)``: at most ``keep`` values, oldest first; a non-finite value is not
    learned.

    >>> v = trailing_verdict([10.0] * 12, 30.0, 0.25, 6)
    >>> learn_window([10.0] * 12, 0, 30.0, v, 12)[1]
    1
    >>> learn_window([10.0] * 12, 12, 30.0, v, 12)[0][-1]
    30.0
    """
    if holds_out(verdict, held, keep):
        return tuple(values[-keep:]), held + 1
    if math.isfinite(value):
        values = values + [round(float(value), 9)]
    return tuple(values[-keep:]), (held if verdict is not None and verdict.outside else 0)
