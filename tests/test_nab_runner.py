"""The NAB runner on a small synthetic NAB-style directory: layout, row order, labels, scoring."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from calendar import timegm
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from detectors.nab import corpus, runner
from detectors.nab.scorer import score_results

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = Path(__file__).resolve().parents[2] / "shared" / "nab"


class StepDetector:
    """Test double: score 1.0 when a value jumps by more than 5 from the previous one, else 0.0.

    It also records what it was fed, so the test can check timestamps and order.
    """

    def __init__(self):
        self.previous = None
        self.fed: list[tuple[float, float]] = []

    def update(self, timestamp_s: float, value: float):
        self.fed.append((timestamp_s, value))
        jump = self.previous is not None and abs(value - self.previous) > 5
        self.previous = value
        return SimpleNamespace(score=1.0 if jump else 0.0)


class NaNDetector:
    """Test double for a broken detector."""

    def update(self, timestamp_s: float, value: float):
        return SimpleNamespace(score=float("nan"))


def _epoch(text: str) -> float:
    """UTC epoch seconds of a naive NAB timestamp, computed independently of the runner."""
    return float(timegm(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timetuple()))


# Category "ads": 30 hourly rows with a duplicate timestamp (row 8 repeats row 7) and steps
# backwards (row 20 is 30 minutes before row 19); a jump at rows 22..25, inside a window on rows 21..26.
_ADS_TIMES = [datetime(2021, 3, 1) + timedelta(hours=i) for i in range(30)]
_ADS_TIMES[8] = _ADS_TIMES[7]
_ADS_TIMES[20] = _ADS_TIMES[19] - timedelta(minutes=30)
# Row 28 repeats row 23's timestamp: inside the window's time range but after the window by
# position, so it must be labelled 0 (windows are row ranges, not timestamp ranges).
_ADS_TIMES[28] = _ADS_TIMES[23]
ADS_STAMPS = [t.strftime("%Y-%m-%d %H:%M:%S") for t in _ADS_TIMES]
ADS_VALUES = ["1.5"] * 22 + ["20.25"] * 4 + ["1.5"] * 4
# Category "other": 12 rows, no windows.
OTHER_STAMPS = [f"2021-03-05 00:{m:02d}:00" for m in range(0, 60, 5)]
OTHER_VALUES = [str(v) for v in range(12)]


@pytest.fixture()
def nab_dir(tmp_path):
    data = tmp_path / "data"
    for category, name, stamps, values in (
        ("ads", "cpc.csv", ADS_STAMPS, ADS_VALUES),
        ("other", "flat.csv", OTHER_STAMPS, OTHER_VALUES),
    ):
        (data / category).mkdir(parents=True)
        (data / category / name).write_text(
            "timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, values))
        )
    labels = tmp_path / "windows.json"
    labels.write_text(
        json.dumps({"ads/cpc.csv": [[ADS_STAMPS[21] + ".000000", ADS_STAMPS[26] + ".000000"]], "other/flat.csv": []})
    )
    return data, labels, tmp_path / "out"


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("workers", [1, 2])
def test_runner_writes_nab_layout_rows_and_labels(nab_dir, workers):
    data, labels, out = nab_dir
    written = runner.run_corpus(data, labels, out, detector="step", workers=workers, detector_factory=StepDetector)
    assert written == {"ads/cpc.csv": 30, "other/flat.csv": 12}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "step/ads/step_cpc.csv",
        "step/other/step_flat.csv",
    ]

    ads = _read(out / "step" / "ads" / "step_cpc.csv")
    assert ads[0] == ["timestamp", "value", "anomaly_score", "label"]
    rows = ads[1:]
    assert [r[0] for r in rows] == ADS_STAMPS  # same order, duplicates and the backward step kept
    assert [r[1] for r in rows] == ADS_VALUES
    assert [int(r[3]) for r in rows] == [1 if 21 <= i <= 26 else 0 for i in range(30)]
    # The detector saw each row once, in file order: jumps at rows 22 and 26.
    assert [float(r[2]) for r in rows] == [1.0 if i in (22, 26) else 0.0 for i in range(30)]

    other = _read(out / "step" / "other" / "step_flat.csv")[1:]
    assert len(other) == 12 and all(r[3] == "0" for r in other)


def test_detector_is_fed_utc_epoch_seconds_in_file_order(nab_dir):
    data, labels, out = nab_dir
    made: list[StepDetector] = []

    def factory():
        made.append(StepDetector())
        return made[-1]

    runner.run_corpus(data, labels, out, detector="step", workers=1, detector_factory=factory)
    fed = {len(d.fed): d.fed for d in made if d.fed}  # the first detector is the up-front check
    assert fed[30] == [(_epoch(t), float(v)) for t, v in zip(ADS_STAMPS, ADS_VALUES)]
    assert fed[30][0][0] == 1614556800.0  # 2021-03-01 00:00:00 UTC
    assert fed[12] == [(_epoch(t), float(v)) for t, v in zip(OTHER_STAMPS, OTHER_VALUES)]


def test_runner_output_is_scoreable(nab_dir):
    data, labels, out = nab_dir
    runner.run_corpus(data, labels, out, detector="step", workers=1, detector_factory=StepDetector)
    result = score_results(out, data, labels)["step"]["standard"]
    # Rows 22 and 26 are detections inside the 6-row window (P = 4 for 30 rows); no false positives.
    assert result.threshold == 1.0
    assert result.files[0].tp == 2 and result.files[0].fp == 0
    assert 0 < result.normalized < 100


def test_runner_rejects_a_detector_score_outside_0_1(nab_dir):
    data, labels, out = nab_dir
    with pytest.raises(corpus.NabInputError, match=r"cpc\.csv: detector returned score nan at row 0"):
        runner.run_corpus(data, labels, out, detector="nan", workers=1, detector_factory=NaNDetector)
    assert not [p for p in out.rglob("*") if p.is_file()]  # no half-written result files


def test_unlabelled_file_gets_zero_labels_with_a_warning(nab_dir, capsys):
    data, labels, out = nab_dir
    labels.write_text(json.dumps({}))
    runner.run_corpus(data, labels, out, detector="step", workers=1, detector_factory=StepDetector)
    assert "no windows" in capsys.readouterr().err
    assert all(r[3] == "0" for r in _read(out / "step" / "ads" / "step_cpc.csv")[1:])


def test_window_timestamp_missing_from_data_is_an_error(nab_dir):
    data, labels, out = nab_dir
    labels.write_text(json.dumps({"ads/cpc.csv": [["2030-01-01 00:00:00", "2030-01-02 00:00:00"]]}))
    with pytest.raises(corpus.NabInputError, match="ads/cpc.csv.*not a timestamp of the data file"):
        runner.run_corpus(data, labels, out, detector="step", workers=1, detector_factory=StepDetector)


class ConstantDetector:
    """Test double: the same score on every row (labels are what the next test checks)."""

    def update(self, timestamp_s: float, value: float):
        return SimpleNamespace(score=0.5)


@pytest.mark.skipif(not SHARED_NAB.is_dir(), reason=f"shared NAB subset not found at {SHARED_NAB}")
def test_labels_on_the_shared_subset_match_nabs_stored_labels(tmp_path):
    # The real files have duplicate timestamps and a backward step; NAB's own label
    # column in the stored results is the positional truth to match.
    data, windows = SHARED_NAB / "data", SHARED_NAB / "labels" / "combined_windows.json"
    written = runner.run_corpus(data, windows, tmp_path, detector="const", workers=2, detector_factory=ConstantDetector)
    assert len(written) == 19
    for key, rows in written.items():
        ours = [r[3] for r in _read(corpus.result_path(tmp_path, "const", key))[1:]]
        nab = [r[3] for r in _read(corpus.result_path(SHARED_NAB / "results", "ARTime", key))[1:]]
        assert len(ours) == rows == len(nab)
        assert ours == nab, key


def test_cli_run_with_a_registered_detector(nab_dir):
    data, labels, out = nab_dir
    cli = [sys.executable, "-m", "detectors.nab", "run", "--data", str(data), "--labels", str(labels),
           "--out", str(out), "--detector", "windowed_gaussian", "--workers", "2"]
    done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 42
    rows = _read(out / "windowed_gaussian" / "ads" / "windowed_gaussian_cpc.csv")[1:]
    assert len(rows) == 30 and all(0.0 <= float(r[2]) <= 1.0 for r in rows)


def test_cli_run_unknown_detector_is_a_clear_error(nab_dir):
    data, labels, out = nab_dir
    cli = [sys.executable, "-m", "detectors.nab", "run", "--data", str(data), "--labels", str(labels),
           "--out", str(out), "--detector", "no_such_detector"]
    done = subprocess.run(cli, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "no_such_detector" in done.stderr and "Traceback" not in done.stderr
