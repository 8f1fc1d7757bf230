"""The job on the mini-cluster with fuzzed, late and edge-case records mixed into simulated traffic.

Two job runs shared by every assertion (the full set of scenarios is the
harness, ``python -m flink_jobs.reliability``): a clean run, the reference, and
the same traffic with malformed / duplicate / late / edge records mixed in.
"""
from __future__ import annotations

import pytest

from flink_jobs.reliability.scenarios import Harness

pytestmark = [pytest.mark.flink, pytest.mark.aws]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    harness = Harness(tmp_path_factory.mktemp("reliability"), editors=6, hours=8.0, seed=3, partners=3)
    try:
        clean = harness.clean()
        fuzz = harness.fuzz(2000)
    finally:
        harness.close()
    return clean, fuzz


def test_the_job_never_fails_on_bad_input(runs):
    clean, fuzz = runs
    assert fuzz["completed"], fuzz["probes"]
    assert sum(fuzz["job_failures"].values()) == 0, fuzz["job_failures"]
    # The failures were read from Flink's own log (it shows the job's state transitions).
    assert fuzz["job_state_transitions_seen"] > 0


def _missing_from_dead_letters(fuzz) -> dict[str, int]:
    return {c: v["tried"] - v["dead_lettered"] for c, v in fuzz["per_category"].items()
            if v["tried"] != v["dead_lettered"]}


def test_every_bad_record_is_dead_lettered_with_a_reason_code(runs):
    _, fuzz = runs
    assert fuzz["bad_records_tried"] >= 2000
    missing = _missing_from_dead_letters(fuzz)
    assert not missing, (missing, fuzz["missing_examples"])


def test_duplicate_records_are_dead_lettered(runs):
    """Byte-identical second copies (a producer retry) are dead letters, the first copy stays valid:
    the incidents test below shows the windows are those of the clean run."""
    _, fuzz = runs
    duplicates = fuzz["per_category"]["duplicate"]
    assert duplicates["tried"] > 0
    assert duplicates["dead_lettered"] == duplicates["tried"], (duplicates, fuzz["missing_examples"])
    assert set(duplicates["codes"]) <= {"DUPLICATE_RECORD", "LATE_RECORD"}, duplicates["codes"]


def test_bad_records_carry_a_defensible_reason_code(runs):
    _, fuzz = runs
    wrong = {c: v["codes"] for c, v in fuzz["per_category"].items() if v["accepted_code"] != v["dead_lettered"]}
    assert not wrong, wrong


def test_late_records_go_to_the_late_output_and_valid_edge_cases_are_kept(runs):
    _, fuzz = runs
    assert fuzz["late_records_in_late_output"] == fuzz["late_records_injected"] > 0
    assert fuzz["valid_edge_or_out_of_order_rejected"] == 0, fuzz["valid_edge_rejected_examples"]


def test_no_valid_record_is_lost_and_incidents_equal_the_clean_run(runs):
    clean, fuzz = runs
    assert clean["incidents"]["keys"], "the clean run produced no event at all: nothing to compare"
    assert fuzz["valid_records_lost"] == 0
    assert fuzz["comparison_excluding_fuzz_keys"]["identical_to_clean"], fuzz["comparison_excluding_fuzz_keys"]
    assert not fuzz["incidents"]["conflicting_ids"]
