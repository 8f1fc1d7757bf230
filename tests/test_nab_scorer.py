"""The NAB-compatible scorer against SCORING.md's test vector, REFERENCE.md and edge cases."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors.nab import corpus
from detectors.nab.scorer import (
    NO_DETECTION_THRESHOLD,
    PROFILES,
    FileInput,
    optimize_threshold,
    probationary_length,
    row_values,
    scaled_sigmoid,
    score_corpus,
    score_file,
    score_results,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = Path(__file__).resolve().parents[2] / "shared" / "nab"
needs_shared = pytest.mark.skipif(
    not SHARED_NAB.is_dir(), reason=f"shared NAB subset not found at {SHARED_NAB} (expected beside the repo)"
)
STANDARD = PROFILES["standard"]


# --- SCORING.md section 8: the worked test vector --------------------------------------------


def vector_file():
    """N = 100, window rows 40..49, detections on rows 5, 20, 40, 45, 50 at threshold 1.0."""
    scores = np.zeros(100)
    scores[[5, 20, 40, 45, 50]] = 1.0
    return FileInput("vector.csv", scores, [(40, 49)])


def test_sigmoid_and_probation_constants():
    assert float(scaled_sigmoid(0.0)) == 0.0
    assert float(scaled_sigmoid(-1.0)) == pytest.approx(0.98661429815143, abs=1e-14)
    assert float(scaled_sigmoid(3.0001)) == -1.0
    assert probationary_length(100) == 15
    assert probationary_length(4032) == 604
    assert probationary_length(22695) == 750  # capped at 0.15 * 5000


def test_scoring_md_test_vector_reproduced_exactly():
    result = score_file(vector_file(), STANDARD, threshold=1.0)
    assert round(result.raw, 6) == 0.860207
    assert (result.tp, result.fp, result.fn, result.tn) == (2, 2, 8, 73)


def test_scoring_md_row_values():
    values, window_of_row = row_values(100, [(40, 49)], STANDARD)
    assert values[20] == pytest.approx(-0.11, abs=1e-12)  # before any window: full FP cost
    assert values[40] == pytest.approx(1.0, abs=1e-12)  # first row of the window: tpWeight
    assert round(values[45], 6) == 0.859793
    assert round(values[50], 6) == -0.029793
    assert round(values[51], 6) == -0.055514
    assert round(values[59], 6) == -0.109153
    assert round(values[76], 6) == -0.11  # x = 3: still the sigmoid
    assert values[77] == -0.11  # x > 3: exactly -fpWeight
    assert list(np.flatnonzero(window_of_row >= 0)) == list(range(40, 50))


def test_scoring_md_every_row_detected():
    result = score_file(FileInput("flat.csv", np.full(100, 0.9), [(40, 49)]), STANDARD, threshold=0.9)
    assert round(result.raw, 6) == -7.027961
    assert (result.tp, result.fp) == (10, 75)


def test_optimiser_on_test_vector_picks_threshold_one():
    threshold, raw = optimize_threshold([vector_file()], STANDARD)
    assert threshold == 1.0
    assert round(raw, 6) == 0.860207


# --- Edge cases -------------------------------------------------------------------------------


def test_ties_go_to_the_highest_threshold():
    # Lowering the threshold from 0.9 to 0.5 only adds a later detection in the same
    # window, which is worth nothing: both thresholds score 1.0, so 0.9 must win.
    scores = np.zeros(100)
    scores[40], scores[45] = 0.9, 0.5
    threshold, raw = optimize_threshold([FileInput("tie.csv", scores, [(40, 49)])], STANDARD)
    assert (threshold, raw) == (0.9, 1.0)


def test_no_detection_wins_when_everything_costs():
    # Only false positives are available: the 1.1 sentinel ("detect nothing") wins.
    scores = np.zeros(100)
    scores[[20, 70]] = 0.8
    threshold, raw = optimize_threshold([FileInput("fp.csv", scores, [(40, 49)])], STANDARD)
    assert threshold == NO_DETECTION_THRESHOLD
    assert raw == -1.0  # the window is missed


def test_threshold_below_a_files_minimum_detects_every_row():
    # File A's scores are all 0.6 and its single window covers every scored row;
    # file B needs threshold 0.2 to catch its window, which is below A's minimum.
    file_a = FileInput("a.csv", np.full(20, 0.6), [(3, 19)])  # P = 3
    scores_b = np.zeros(100)
    scores_b[40] = 0.2
    file_b = FileInput("b.csv", scores_b, [(40, 49)])
    result = score_corpus([file_a, file_b], STANDARD, total_windows=2)
    assert result.threshold == 0.2
    assert result.raw == pytest.approx(2.0)
    a = result.files[0]
    assert (a.tp, a.fp, a.fn, a.tn) == (17, 0, 0, 0)
    assert result.normalized == pytest.approx(100.0)


def test_file_without_windows():
    scores = np.zeros(100)
    scores[[10, 50, 90]] = 1.0  # row 10 is probationary (P = 15)
    no_windows = FileInput("quiet.csv", scores, [])
    result = score_file(no_windows, STANDARD, threshold=1.0)
    assert result.raw == pytest.approx(-0.22)  # two full-cost false positives
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 2, 0, 83)
    assert optimize_threshold([no_windows], STANDARD) == (NO_DETECTION_THRESHOLD, 0.0)


def test_probationary_rows_are_ignored_entirely():
    scores = np.zeros(100)
    scores[[0, 3, 14]] = 1.0  # all inside P = 15
    # The first window lies wholly inside the probationary period: it is neither caught nor missed.
    file = FileInput("probation.csv", scores, [(2, 8), (40, 49)])
    result = score_file(file, STANDARD, threshold=1.0)
    assert result.raw == -1.0  # only the second window counts, and it is missed
    assert (result.tp, result.fp, result.fn, result.tn) == (0, 0, 10, 75)
    assert optimize_threshold([file], STANDARD) == (NO_DETECTION_THRESHOLD, -1.0)


def test_false_positive_cost_uses_only_the_most_recent_window():
    values, _ = row_values(200, [(40, 49), (100, 109)], STANDARD)
    assert values[99] == pytest.approx(-0.11)  # just before window 2: full cost, window 1 is long past
    assert values[110] == pytest.approx(STANDARD.fp_weight * float(scaled_sigmoid(1 / 9)))


def test_single_row_window_does_not_divide_by_zero():
    values, _ = row_values(100, [(50, 50)], STANDARD)
    assert values[50] == pytest.approx(1.0)
    assert values[51] == -0.11


def _brute_force_best(files, profile):
    candidates = {NO_DETECTION_THRESHOLD}
    for f in files:
        candidates.update(np.asarray(f.scores)[probationary_length(len(f.scores)) :].tolist())
    totals = {t: sum(score_file(f, profile, t).raw for f in files) for t in candidates}
    best = max(totals.values())
    return max(t for t, total in totals.items() if total >= best - 1e-9), best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
def test_one_pass_optimiser_matches_rescoring_every_candidate(seed, profile):
    rng = np.random.default_rng(seed)
    files = []
    for index in range(3):
        n = int(rng.integers(60, 160))
        # One decimal place: many equal scores, so ties and runs are exercised.
        scores = np.round(rng.random(n) ** 3, 1)
        starts = sorted(rng.choice(np.arange(5, n - 10), size=int(rng.integers(0, 3)), replace=False))
        windows = []
        for start in starts:
            if not windows or start > windows[-1][1] + 1:
                windows.append((int(start), int(min(start + rng.integers(1, 12), n - 1))))
        files.append(FileInput(f"f{index}.csv", scores, windows))
    threshold, raw = optimize_threshold(files, profile)
    expected_threshold, expected_raw = _brute_force_best(files, profile)
    assert raw == pytest.approx(expected_raw, abs=1e-9)
    assert threshold == expected_threshold


# --- Stored results against REFERENCE.md ------------------------------------------------------


def _reference_table() -> dict[str, dict[str, float]]:
    """REFERENCE.md's table: {detector: {profile: score}} (detector = first word of the row)."""
    table = {}
    for line in (SHARED_NAB / "REFERENCE.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"-?\d+(\.\d+)?", cells[1]):
            table[cells[0].split()[0]] = dict(zip(PROFILES, map(float, cells[1:])))
    return table


@pytest.fixture(scope="module")
def stored_scores():
    if not SHARED_NAB.is_dir():
        pytest.skip(f"shared NAB subset not found at {SHARED_NAB} (expected beside the repo)")
    return score_results(SHARED_NAB / "results", SHARED_NAB / "data", SHARED_NAB / "labels" / "combined_windows.json")


@needs_shared
def test_all_stored_detectors_are_in_the_reference():
    stored = sorted(p.name for p in (SHARED_NAB / "results").iterdir() if p.is_dir())
    assert stored == ["ARTime", "null", "numenta", "windowedGaussian"]
    assert set(stored) <= set(_reference_table())


@needs_shared
@pytest.mark.parametrize("detector", ["ARTime", "numenta", "windowedGaussian", "null"])
@pytest.mark.parametrize("profile", PROFILES)
def test_stored_results_reproduce_reference(stored_scores, detector, profile):
    expected = _reference_table()[detector][profile]
    result = stored_scores[detector][profile]
    assert result.normalized == pytest.approx(expected, abs=0.1)
    assert result.perfect == 39.0  # 39 windows in the subset
    assert result.baseline == -PROFILES[profile].fn_weight * 39


@needs_shared
@pytest.mark.parametrize("detector", ["ARTime", "numenta", "windowedGaussian"])
def test_optimiser_total_equals_rescored_total(stored_scores, detector):
    # SCORING.md §6: re-scoring the files at the chosen threshold gives the optimiser's best.
    keys = corpus.find_data_files(SHARED_NAB / "data")
    windows = corpus.load_windows(SHARED_NAB / "labels" / "combined_windows.json")
    files = []
    for key in keys:
        data = corpus.read_data_file(SHARED_NAB / "data", key)
        scores = corpus.read_anomaly_scores(corpus.result_path(SHARED_NAB / "results", detector, key), data.row_count)
        files.append(FileInput(key, scores, corpus.locate_windows(data.timestamps, windows[key], key)))
    for profile in PROFILES.values():
        threshold, raw = optimize_threshold(files, profile)
        assert raw == pytest.approx(sum(score_file(f, profile, threshold).raw for f in files), abs=1e-9)
        assert raw == pytest.approx(stored_scores[detector][profile.name].raw, abs=1e-9)


# --- Command line and input validation --------------------------------------------------------


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "detectors.nab", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@needs_shared
def test_cli_score_prints_json_for_the_requested_detectors():
    out = _run_cli(
        "score", "--results", str(SHARED_NAB / "results"), "--data", str(SHARED_NAB / "data"),
        "--windows", str(SHARED_NAB / "labels" / "combined_windows.json"), "--detector", "numenta", "null",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) == {"numenta", "null"}
    assert set(report["numenta"]) == set(PROFILES)
    assert report["numenta"]["standard"]["score"] == pytest.approx(65.42, abs=0.1)
    assert {"threshold", "raw", "baseline", "perfect", "tp", "fp", "fn", "tn"} <= set(report["numenta"]["standard"])
    assert report["null"]["reward_low_FN_rate"]["threshold"] == NO_DETECTION_THRESHOLD


def _tiny_corpus(root: Path, scores: list[str] | None = None) -> tuple[Path, Path, Path]:
    """A one-file NAB layout: 40 rows, one window on rows 20..24, results for detector 'd'."""
    data, results = root / "data" / "cat", root / "results" / "d" / "cat"
    data.mkdir(parents=True)
    results.mkdir(parents=True)
    stamps = [f"2020-01-01 {h:02d}:{m:02d}:00" for h in range(1) for m in range(40)]
    (data / "f.csv").write_text("timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)))
    scores = scores or ["1.0" if i == 20 else "0.0" for i in range(40)]
    (results / "d_f.csv").write_text(
        "timestamp,value,anomaly_score,label\n" + "".join(f"{t},{i},{s},0\n" for i, (t, s) in enumerate(zip(stamps, scores)))
    )
    windows = root / "windows.json"
    windows.write_text(json.dumps({"cat/f.csv": [[stamps[20] + ".000000", stamps[24] + ".000000"]]}))
    return root / "results", root / "data", windows


def test_cli_score_on_a_tiny_corpus(tmp_path):
    results, data, windows = _tiny_corpus(tmp_path)
    out = _run_cli("score", "--results", str(results), "--data", str(data), "--windows", str(windows))
    assert out.returncode == 0, out.stderr
    standard = json.loads(out.stdout)["d"]["standard"]
    assert (standard["score"], standard["threshold"], standard["raw"]) == (100.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "break_input, message",
    [
        (lambda r, d, w: (r / "d" / "cat" / "d_f.csv").write_text(
            (r / "d" / "cat" / "d_f.csv").read_text().rsplit("\n", 2)[0] + "\n"), "39 result rows but the data file has 40"),
        (lambda r, d, w: (r / "d" / "cat" / "d_f.csv").write_text(
            (r / "d" / "cat" / "d_f.csv").read_text().replace(",1.0,", ",nan,")), "anomaly_score must be finite"),
        (lambda r, d, w: (r / "d" / "cat" / "d_f.csv").unlink(), "file not found"),
        (lambda r, d, w: w.write_text(json.dumps({})), "no windows entry"),
        (lambda r, d, w: w.write_text(json.dumps({"cat/f.csv": [["2020-01-01 05:00:00", "2020-01-01 05:01:00"]]})),
         "is not a timestamp of the data file"),
    ],
    ids=["row-count", "nan", "missing-result", "missing-windows-entry", "window-off-data"],
)
def test_cli_score_rejects_bad_inputs_naming_the_file(tmp_path, break_input, message):
    results, data, windows = _tiny_corpus(tmp_path)
    break_input(results, data, windows)
    out = _run_cli("score", "--results", str(results), "--data", str(data), "--windows", str(windows))
    assert out.returncode == 2
    assert message in out.stderr
    assert "f.csv" in out.stderr or "windows.json" in out.stderr
    assert out.stdout == ""


def test_cli_score_unknown_detector_is_named(tmp_path):
    results, data, windows = _tiny_corpus(tmp_path)
    out = _run_cli("score", "--results", str(results), "--data", str(data), "--windows", str(windows),
                   "--detector", "nobody")
    assert out.returncode == 2
    assert "nobody" in out.stderr and "Traceback" not in out.stderr
