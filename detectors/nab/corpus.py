"""Reading a NAB-style corpus: data files, the windows file and detector result files.

Everything here validates as it reads and raises :class:`NabInputError` with a
message that names the offending file, because a scorer that silently pairs the
wrong rows produces plausible-looking but meaningless numbers.

Layouts (the same as NAB's repository):

* data:    ``<data_dir>/<category>/<file>.csv`` with header ``timestamp,value``
* windows: JSON ``{"<category>/<file>.csv": [[start, end], ...]}``
* results: ``<results_dir>/<detector>/<category>/<detector>_<file>.csv`` with an
  ``anomaly_score`` column, one row per data row, in the same order.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WindowSpec = tuple[str, str]  # (start timestamp, end timestamp) as written in the windows file
RowWindow = tuple[int, int]  # (start row, end row), both inclusive, 0-based positions


class NabInputError(ValueError):
    """An input file is missing, malformed or inconsistent with another input."""


@dataclass(frozen=True)
class DataFile:
    """One data file, rows kept in file order (they are paired with results by position)."""

    key: str  # "<category>/<file>.csv", the key used by the windows file
    timestamp_text: list[str]
    value_text: list[str]
    timestamps: np.ndarray  # datetime64[us], naive, interpreted as UTC

    @property
    def row_count(self) -> int:
        return len(self.timestamp_text)

    def epoch_seconds(self) -> np.ndarray:
        """Timestamps as float UTC epoch seconds (NAB timestamps carry no zone)."""
        return self.timestamps.astype("int64") / 1e6

    def values(self) -> np.ndarray:
        """Values as floats; a non-numeric or non-finite value is an input error."""
        out = np.empty(self.row_count, dtype=float)
        for row, text in enumerate(self.value_text):
            try:
                out[row] = float(text)
            except ValueError:
                raise NabInputError(f"{self.key}: row {row} has a non-numeric value {text!r}") from None
            if not math.isfinite(out[row]):
                raise NabInputError(f"{self.key}: row {row} has a non-finite value {text!r}")
        return out


def find_data_files(data_dir: Path) -> list[str]:
    """Keys ``<category>/<file>.csv`` of every data file under ``data_dir``, sorted."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NabInputError(f"data directory not found: {data_dir}")
    keys = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.glob("*/*.csv"))
    if not keys:
        raise NabInputError(f"no data files found under {data_dir} (expected <category>/<file>.csv)")
    return keys


def parse_timestamps(texts: list[str], source: str) -> np.ndarray:
    """Parse NAB timestamps (``YYYY-MM-DD HH:MM:SS[.ffffff]``) to datetime64[us]."""
    try:
        return np.array(texts, dtype="datetime64[us]")
    except ValueError as exc:
        raise NabInputError(f"{source}: unparseable timestamp ({exc})") from None


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise NabInputError(f"file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise NabInputError(f"{path}: empty file, expected a header {','.join(required)}")
        header = [name.strip() for name in header]
        missing = [name for name in required if name not in header]
        if missing:
            raise NabInputError(f"{path}: missing column(s) {missing}; header is {header}")
        rows = [row for row in reader if row]
    return header, rows


def read_data_file(data_dir: Path, key: str) -> DataFile:
    """Read ``<data_dir>/<key>``, keeping every row in file order."""
    path = Path(data_dir) / key
    header, rows = _read_csv(path, ("timestamp", "value"))
    ts_col, value_col = header.index("timestamp"), header.index("value")
    try:
        timestamp_text = [row[ts_col] for row in rows]
        value_text = [row[value_col] for row in rows]
    except IndexError:
        raise NabInputError(f"{path}: a row has fewer columns than the header") from None
    if not rows:
        raise NabInputError(f"{path}: no data rows")
    return DataFile(key, timestamp_text, value_text, parse_timestamps(timestamp_text, str(path)))


def load_windows(path: Path) -> dict[str, list[WindowSpec]]:
    """Read a NAB windows file (``combined_windows.json``)."""
    path = Path(path)
    if not path.is_file():
        raise NabInputError(f"windows file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NabInputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise NabInputError(f"{path}: expected an object mapping '<category>/<file>.csv' to windows")
    windows: dict[str, list[WindowSpec]] = {}
    for key, spans in raw.items():
        if not isinstance(spans, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(t, str) for t in s) for s in spans
        ):
            raise NabInputError(f"{path}: entry {key!r} must be a list of [start, end] timestamp strings")
        windows[key] = [(start, end) for start, end in spans]
    return windows


def locate_windows(timestamps: np.ndarray, windows: list[WindowSpec], source: str) -> list[RowWindow]:
    """Turn timestamp windows into inclusive row ranges.

    Each end is located at the *first* row carrying that timestamp (NAB uses
    ``list.index``), then the window is every row between them by position —
    not every row whose timestamp falls in the range, because data files can
    contain duplicate and backwards-stepping timestamps.
    """
    located: list[RowWindow] = []
    for start_text, end_text in windows:
        start_row = _first_row_at(timestamps, start_text, source)
        end_row = _first_row_at(timestamps, end_text, source)
        if end_row < start_row:
            raise NabInputError(f"{source}: window [{start_text}, {end_text}] ends before it starts")
        if located and start_row <= located[-1][1]:
            raise NabInputError(f"{source}: window [{start_text}, {end_text}] overlaps or precedes the previous one")
        located.append((start_row, end_row))
    return located


def _first_row_at(timestamps: np.ndarray, text: str, source: str) -> int:
    wanted = parse_timestamps([text], source)[0]
    matches = np.flatnonzero(timestamps == wanted)
    if matches.size == 0:
        raise NabInputError(f"{source}: window timestamp {text!r} is not a timestamp of the data file")
    return int(matches[0])


def result_path(results_dir: Path, detector: str, key: str) -> Path:
    """NAB's result-file location for a data key: ``<detector>/<category>/<detector>_<file>``."""
    category, file_name = key.split("/", 1)
    return Path(results_dir) / detector / category / f"{detector}_{file_name}"


def read_anomaly_scores(path: Path, expected_rows: int) -> np.ndarray:
    """Read a result file's ``anomaly_score`` column and check it can be scored.

    Rows are paired with the data by position, so the row count must match
    exactly; scores must be finite and in [0, 1] (NAB's optimiser uses 1.1 as
    its "detect nothing" sentinel and cannot order NaN).
    """
    header, rows = _read_csv(Path(path), ("anomaly_score",))
    if len(rows) != expected_rows:
        raise NabInputError(f"{path}: {len(rows)} result rows but the data file has {expected_rows}")
    col = header.index("anomaly_score")
    scores = np.empty(len(rows), dtype=float)
    for row, fields in enumerate(rows):
        try:
            scores[row] = float(fields[col])
        except (ValueError, IndexError):
            raise NabInputError(f"{path}: row {row} has no numeric anomaly_score") from None
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0.0) | (scores > 1.0))
    if bad.size:
        row = int(bad[0])
        raise NabInputError(
            f"{path}: anomaly_score must be finite and in [0, 1]; row {row} is {rows[row][col]!r}"
            f" ({bad.size} bad row(s))"
        )
    return scores
