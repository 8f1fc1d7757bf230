"""Run an online detector over a NAB-style data directory and write NAB result files.

For every ``<data_dir>/<category>/<file>.csv`` a fresh detector is fed the rows
in file order (timestamps as UTC epoch seconds; they may repeat or step back,
which is the detector's business, not ours) and
``<out_dir>/<detector>/<category>/<detector>_<file>.csv`` is written with
``timestamp,value,anomaly_score,label``: one row per data row, in order, the
label being 1 on rows inside a window of the labels file (by row position, as
the scorer counts them).

Files are independent, so they are spread over a process pool.
"""

from __future__ import annotations

import csv
import functools
import multiprocessing
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from detectors.nab import corpus

DEFAULT_DETECTOR = "ensemble"
DEFAULT_WORKERS = 2

# Anything that builds a fresh detector; the detector needs ``update(ts, value)``
# returning an object with a ``score`` in [0, 1]. Must be picklable for workers > 1.
DetectorFactory = Callable[[], Any]


def make_registered_detector(name: str, params: Mapping[str, Any]) -> Any:
    """Build a detector from the ``detectors`` registry (imported lazily: only the runner needs it)."""
    import detectors

    try:
        return detectors.make(name, **dict(params))
    except KeyError as exc:  # the registry's "unknown detector" error
        raise corpus.NabInputError(str(exc.args[0]) if exc.args else f"unknown detector {name!r}") from None


@dataclass(frozen=True)
class FileTask:
    """Everything a worker needs to process one data file."""

    data_dir: Path
    key: str
    windows: list[corpus.WindowSpec]
    out_path: Path
    detector_factory: DetectorFactory


def window_labels(row_count: int, row_windows: list[corpus.RowWindow]) -> np.ndarray:
    """1 on every row inside a window (inclusive row ranges), else 0."""
    labels = np.zeros(row_count, dtype=np.int8)
    for start, end in row_windows:
        labels[start : end + 1] = 1
    return labels


def run_file(task: FileTask) -> tuple[str, int]:
    """Score one data file with a fresh detector and write its result file.

    Returns ``(key, rows written)``. Scores outside [0, 1] or non-finite are a
    detector bug; they are reported with the file and row rather than written,
    because the scorer would reject the file later anyway.
    """
    data = corpus.read_data_file(task.data_dir, task.key)
    source = str(task.data_dir / task.key)
    labels = window_labels(data.row_count, corpus.locate_windows(data.timestamps, task.windows, source))
    detector = task.detector_factory()
    seconds, values = data.epoch_seconds(), data.values()

    task.out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = task.out_path.with_name(task.out_path.name + ".partial")
    try:
        with partial.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            for row in range(data.row_count):
                score = float(detector.update(float(seconds[row]), float(values[row])).score)
                if not 0.0 <= score <= 1.0:  # also rejects NaN
                    raise corpus.NabInputError(f"{source}: detector returned score {score!r} at row {row}")
                writer.writerow([data.timestamp_text[row], data.value_text[row], repr(score), int(labels[row])])
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # Rename only when complete, so an interrupted run never leaves a short result file.
    partial.replace(task.out_path)
    return task.key, data.row_count


def run_corpus(
    data_dir: Path,
    labels_file: Path,
    out_dir: Path,
    detector: str = DEFAULT_DETECTOR,
    workers: int = DEFAULT_WORKERS,
    params: Mapping[str, Any] | None = None,
    detector_factory: DetectorFactory | None = None,
) -> dict[str, int]:
    """Run ``detector`` over every data file; returns ``{key: rows written}``.

    ``detector_factory`` overrides the registry (``detectors.make(detector,
    **params)``); ``detector`` still names the output directory. Data files
    without an entry in the labels file get label 0 everywhere, with a warning.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if workers < 1:
        raise corpus.NabInputError(f"--workers must be at least 1, got {workers}")
    if "/" in detector or detector in ("", ".", ".."):
        raise corpus.NabInputError(f"detector name {detector!r} cannot be used as a directory name")
    keys = corpus.find_data_files(data_dir)
    windows = corpus.load_windows(labels_file)
    unlabelled = [k for k in keys if k not in windows]
    if unlabelled:
        print(f"warning: no windows in {labels_file} for {unlabelled}; labelled 0", file=sys.stderr)
    factory = detector_factory or functools.partial(make_registered_detector, detector, dict(params or {}))
    factory()  # fail here, once, on an unknown name or bad parameters rather than in every worker

    # Largest files first, so a long file does not start last and leave a worker idle.
    keys.sort(key=lambda k: (data_dir / k).stat().st_size, reverse=True)
    tasks = [
        FileTask(data_dir, k, windows.get(k, []), corpus.result_path(out_dir, detector, k), factory) for k in keys
    ]
    if workers == 1 or len(tasks) == 1:
        written = dict(map(run_file, tasks))
    else:
        with multiprocessing.get_context().Pool(min(workers, len(tasks))) as pool:
            written = dict(pool.imap_unordered(run_file, tasks))
    return dict(sorted(written.items()))
