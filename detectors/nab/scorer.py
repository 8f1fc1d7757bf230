"""NAB-compatible scoring, as specified in ``shared/nab/SCORING.md``.

The algorithm in brief (section numbers refer to SCORING.md):

* every row gets the value it would contribute *if* it were a detection (§4):
  inside a window a scaled sigmoid of its position, worth ``tpWeight`` on the
  window's first row; outside windows ``-fpWeight``, softened just after the
  window that most recently ended;
* the first ``P = min(floor(0.15 N), 750)`` rows of each file are ignored (§3);
* a file's raw score is, per window, the value of its earliest detection or
  ``-fnWeight`` if none, plus the value of every detection outside windows (§5);
* one threshold per detector and profile is chosen to maximise the summed raw
  score over all files, candidates being 1.1 and every distinct score, ties
  going to the highest threshold (§6);
* the raw score is normalised between the null detector (0) and a perfect
  detector (100) (§7).

This module works on arrays only; :mod:`detectors.nab.corpus` reads files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from detectors.nab import corpus

RowWindow = tuple[int, int]  # (start row, end row), inclusive, 0-based positions

# NAB's "detect nothing" candidate: above every valid score in [0, 1].
NO_DETECTION_THRESHOLD = 1.1
# Score given to every row by NAB's null detector, used as the normalisation baseline.
NULL_DETECTOR_SCORE = 0.5


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix (``config/profiles.json``); tnWeight is never used by NAB."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
        Profile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
        Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
    )
}


@dataclass(frozen=True)
class FileInput:
    """One file to score: its anomaly scores by row and its windows as row ranges."""

    name: str
    scores: np.ndarray
    windows: Sequence[RowWindow]


@dataclass(frozen=True)
class FileScore:
    """A file's raw score at a threshold, with NAB's row counts (§5)."""

    name: str
    raw: float
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class CorpusScore:
    """One detector's result for one profile over a set of files."""

    profile: str
    threshold: float
    raw: float
    baseline: float
    perfect: float
    normalized: float
    files: list[FileScore]

    @property
    def counts(self) -> dict[str, int]:
        return {k: sum(getattr(f, k) for f in self.files) for k in ("tp", "fp", "fn", "tn")}


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``S(x) = 2 / (1 + exp(5x)) - 1`` for ``x <= 3``, and exactly -1 beyond."""
    x = np.asarray(x, dtype=float)
    # exp overflows only far beyond x = 3, where the value is replaced anyway.
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, value)


_S_MINUS_ONE = float(scaled_sigmoid(-1.0))


def probationary_length(row_count: int) -> int:
    """Rows ``i < P`` are never scored: ``P = min(floor(0.15 N), 750)``."""
    return min(math.floor(0.15 * row_count), 750)


def row_values(row_count: int, windows: Sequence[RowWindow], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Value each row would contribute if detected, and the window index it lies in (-1 outside).

    Computed over all rows, probationary ones included, because window
    bookkeeping (which window ended most recently) runs over them too.
    """
    values = np.full(row_count, -profile.fp_weight)  # before any window has ended
    window_of_row = np.full(row_count, -1, dtype=np.int64)
    rows = np.arange(row_count)
    for index, (start, end) in enumerate(windows):
        width = end - start + 1
        inside = rows[start : end + 1]
        # -1 on the first row, rising to -1/w on the last: earlier detections are worth more.
        values[start : end + 1] = profile.tp_weight * scaled_sigmoid(-(end - inside + 1) / width) / _S_MINUS_ONE
        window_of_row[start : end + 1] = index
        # Only the most recently ended window softens a false positive, so the tail
        # stops at the next window's start.
        tail_end = windows[index + 1][0] if index + 1 < len(windows) else row_count
        after = rows[end + 1 : tail_end]
        if width > 1:
            values[end + 1 : tail_end] = profile.fp_weight * scaled_sigmoid((after - end) / (width - 1))
        else:
            # NAB divides by w - 1 = 0 here (and would crash); the limit of x -> +inf is a full FP cost.
            values[end + 1 : tail_end] = -profile.fp_weight
    return values, window_of_row


def _scorable_windows(windows: Sequence[RowWindow], probation: int) -> list[int]:
    """Indices of windows with at least one non-probationary row: the only ones that count."""
    return [i for i, (_, end) in enumerate(windows) if end >= probation]


def score_file(file: FileInput, profile: Profile, threshold: float) -> FileScore:
    """Raw score and row counts of one file with detections ``score >= threshold`` (§5).

    A threshold below all of a file's scores simply makes every row a detection
    (where NAB's own per-file lookup would crash).
    """
    n = len(file.scores)
    probation = probationary_length(n)
    values, window_of_row = row_values(n, file.windows, profile)
    scored = np.arange(n) >= probation
    detected = scored & (np.asarray(file.scores) >= threshold)
    in_window = window_of_row >= 0

    raw = 0.0
    for index in _scorable_windows(file.windows, probation):
        hits = detected & (window_of_row == index)
        # Values fall through the window, so the max is the earliest detection's value.
        raw += float(values[hits].max()) if hits.any() else -profile.fn_weight
    false_positives = detected & ~in_window
    raw += float(values[false_positives].sum())
    return FileScore(
        name=file.name,
        raw=raw,
        tp=int(np.count_nonzero(detected & in_window)),
        fp=int(np.count_nonzero(false_positives)),
        fn=int(np.count_nonzero(scored & in_window & ~detected)),
        tn=int(np.count_nonzero(scored & ~in_window & ~detected)),
    )


def optimize_threshold(files: Iterable[FileInput], profile: Profile) -> tuple[float, float]:
    """The single threshold maximising the summed raw score over ``files`` (§6).

    One pass, as NAB does: all non-probationary rows of all files are sorted by
    score, high to low; lowering the threshold past a row adds its value if it
    lies outside windows, or raises its window from ``-fnWeight`` (or from the
    window's best value so far) to its value. The running total after the last
    row of each distinct score is that score's raw corpus score. Returns
    ``(threshold, raw_score)``; ties go to the highest threshold.
    """
    all_scores, all_values, all_windows = [], [], []
    window_offset = 0
    for file in files:
        n = len(file.scores)
        probation = probationary_length(n)
        values, window_of_row = row_values(n, file.windows, profile)
        # Give windows corpus-wide ids so rows of different files never share one.
        window_of_row = np.where(window_of_row >= 0, window_of_row + window_offset, -1)
        window_offset += len(file.windows)
        all_scores.append(np.asarray(file.scores, dtype=float)[probation:])
        all_values.append(values[probation:])
        all_windows.append(window_of_row[probation:])
    scores = np.concatenate(all_scores) if all_scores else np.empty(0)
    values = np.concatenate(all_values) if all_values else np.empty(0)
    window_ids = np.concatenate(all_windows) if all_windows else np.empty(0, dtype=np.int64)

    # Only windows with a non-probationary row exist in the row list, hence count.
    scorable = np.unique(window_ids[window_ids >= 0])
    no_detection_score = -profile.fn_weight * scorable.size

    order = np.argsort(-scores, kind="stable")
    scores, values, window_ids = scores[order], values[order], window_ids[order]
    gain = np.where(window_ids < 0, values, 0.0)
    # Group window rows by window (a stable sort keeps them high-to-low by score).
    window_rows = np.flatnonzero(window_ids >= 0)
    window_rows = window_rows[np.argsort(window_ids[window_rows], kind="stable")]
    boundaries = np.flatnonzero(np.diff(window_ids[window_rows])) + 1
    for rows in np.split(window_rows, boundaries) if window_rows.size else []:
        best_so_far = np.maximum.accumulate(values[rows])
        previous_best = np.concatenate(([-profile.fn_weight], best_so_far[:-1]))
        gain[rows] = best_so_far - previous_best  # exactly 0.0 for later, lower-valued rows

    totals = no_detection_score + np.cumsum(gain)
    # A threshold equal to a score detects every row with that score, so only the
    # last row of each run of equal scores is a candidate.
    last_of_run = np.flatnonzero(np.append(scores[1:] != scores[:-1], True)) if scores.size else np.empty(0, int)
    candidates = np.concatenate(([NO_DETECTION_THRESHOLD], scores[last_of_run]))
    candidate_totals = np.concatenate(([no_detection_score], totals[last_of_run]))
    best = int(np.argmax(candidate_totals))  # first maximum = highest threshold among ties
    return float(candidates[best]), float(candidate_totals[best])


def normalize(raw: float, baseline: float, perfect: float) -> float:
    """NAB's 0..100 scale: 0 is the null detector, 100 every window caught on its first row."""
    return 100.0 * (raw - baseline) / (perfect - baseline)


def null_detector_files(files: Iterable[FileInput]) -> list[FileInput]:
    """The same files as scored by NAB's null detector (0.5 on every row)."""
    return [FileInput(f.name, np.full(len(f.scores), NULL_DETECTOR_SCORE), f.windows) for f in files]


def score_corpus(files: Sequence[FileInput], profile: Profile, total_windows: int) -> CorpusScore:
    """Optimise, re-score and normalise one detector's files for one profile (§6, §7).

    ``total_windows`` is the number of windows in the windows file given to the
    run; NAB's perfect score counts every one of them.
    """
    threshold, _ = optimize_threshold(files, profile)
    per_file = [score_file(f, profile, threshold) for f in files]
    raw = sum(f.raw for f in per_file)
    _, baseline = optimize_threshold(null_detector_files(files), profile)
    perfect = profile.tp_weight * total_windows
    return CorpusScore(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        baseline=baseline,
        perfect=perfect,
        normalized=normalize(raw, baseline, perfect),
        files=per_file,
    )


def find_detectors(results_dir) -> list[str]:
    """Detector names under a NAB-style results directory (its sub-directories), sorted."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise corpus.NabInputError(f"results directory not found: {results_dir}")
    names = sorted(p.name for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise corpus.NabInputError(f"no detector directories under {results_dir}")
    return names


def score_results(
    results_dir, data_dir, windows_file, detectors: Sequence[str] | None = None
) -> dict[str, dict[str, CorpusScore]]:
    """Score every detector's stored results against every data file, for all profiles.

    Every data file under ``data_dir`` is scored and must have a windows entry
    (possibly ``[]``) and a result file per detector; every windows entry must
    have a data file, since NAB's perfect score counts all windows in the file.
    Returns ``{detector: {profile: CorpusScore}}``.
    """
    keys = corpus.find_data_files(data_dir)
    windows = corpus.load_windows(windows_file)
    missing_windows = [k for k in keys if k not in windows]
    if missing_windows:
        raise corpus.NabInputError(f"{windows_file}: no windows entry for data file(s) {missing_windows}")
    missing_data = sorted(set(windows) - set(keys))
    if missing_data:
        raise corpus.NabInputError(f"{windows_file}: windows given for file(s) missing from {data_dir}: {missing_data}")
    total_windows = sum(len(spans) for spans in windows.values())

    data = {k: corpus.read_data_file(data_dir, k) for k in keys}
    row_windows = {k: corpus.locate_windows(data[k].timestamps, windows[k], f"{data_dir}/{k}") for k in keys}
    names = list(detectors) if detectors else find_detectors(results_dir)
    absent = [name for name in names if not (Path(results_dir) / name).is_dir()]
    if absent:
        raise corpus.NabInputError(f"no results for detector(s) {absent} in {results_dir}")
    report: dict[str, dict[str, CorpusScore]] = {}
    for name in names:
        files = [
            FileInput(
                k,
                corpus.read_anomaly_scores(corpus.result_path(results_dir, name, k), data[k].row_count),
                row_windows[k],
            )
            for k in keys
        ]
        report[name] = {p.name: score_corpus(files, p, total_windows) for p in PROFILES.values()}
    return report
