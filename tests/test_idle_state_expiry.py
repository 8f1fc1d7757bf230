"""Idle keys leave the job's state (processing.state.idle.retention.s; udfs/correlator.py, "Idle keys").

Publishers come and go. Before, every editor, and every editor's traffic through every partner,
stayed in the keyed state for ever, so a long-running job's state and checkpoints only grew.
Now a series idle longer than the retention starts again at its next window, and the operators
drop idle series (and an editor left with nothing, whole) once the watermark passes them. The
operators are driven without Flink, with the job's real scoring (tests/correlator_driver.py).
"""
from __future__ import annotations

import math
import random

import pytest

from correlator_driver import GRACE_MS, WINDOW_MS, EditorDriver, PartnerDriver, scoring
from flink_fakes import KeyedStore
from flink_jobs.config import ConfigError, JobConfig
from flink_jobs.evaluation.offline import ArchiveWindows, JobParameters, score_series
from flink_jobs.main import Settings
from udfs.metric_detector import is_idle, prune_idle

START = 1_793_527_200_000
RETENTION_MS = 40 * WINDOW_MS           # 3 h 20 min: above the shortest the job accepts (45 min)


def end(i: int) -> int:
    return START + i * WINDOW_MS


def rpm(i: int) -> float:
    return 2.5 * (1 + 0.1 * math.sin(i / 5))


# ----------------------------------------------------------------------------- the rule
def test_a_series_idle_longer_than_the_retention_starts_again_and_one_idle_exactly_that_long_does_not():
    kept = scoring(RETENTION_MS)
    stored = None
    for i in range(30):
        stored, _ = kept.score_windows(stored, ("editor", "e-1"), "e-1", None, end(i), [("rpm", rpm(i), 5)])
    at_limit, continued = kept.score_windows(stored, ("editor", "e-1"), "e-1", None, end(29) + RETENTION_MS,
                                             [("rpm", 2.5, 5)])
    past, restarted = kept.score_windows(stored, ("editor", "e-1"), "e-1", None, end(29) + RETENTION_MS + WINDOW_MS,
                                         [("rpm", 2.5, 5)])
    new_series = scoring()
    _, fresh = new_series.score_windows(None, ("editor", "e-9"), "e-1", None, end(29) + RETENTION_MS + WINDOW_MS,
                                        [("rpm", 2.5, 5)])
    _, fresh_at_limit = new_series.score_windows(None, ("editor", "e-8"), "e-1", None, end(29) + RETENTION_MS,
                                                 [("rpm", 2.5, 5)])
    assert restarted == fresh, "past the retention the series is scored as a new one"
    assert continued != fresh_at_limit, "exactly the retention: it goes on"
    snapshot, journal, history, last_end = past["rpm"]
    assert (snapshot, len(journal), last_end) == (None, 1, end(29) + RETENTION_MS + WINDOW_MS)


def test_a_series_written_by_older_code_falls_idle_a_retention_after_the_first_row_of_its_group():
    # Before 8c8dcf6 an entry was (snapshot, journal, history), without its last window end. The rule
    # (no end: not idle) and the operators' checks (no end: dropped) disagreed on such an entry while
    # its metric was missing from the rows; now the first row of its group gives it that row's end.
    job = scoring(RETENTION_MS)
    stored = None
    for i in range(20):
        stored, _ = job.score_windows(stored, ("editor", "e-1"), "e-1", None, end(i), [("rpm", rpm(i), 5), ("fill_rate", 0.8, 5)])
    legacy = {metric: entry[:3] for metric, entry in stored.items()}
    stored, _ = job.score_windows(legacy, ("editor", "e-1"), "e-1", None, end(20), [("rpm", rpm(20), 5)])
    assert stored["fill_rate"] == (*legacy["fill_rate"], end(20))
    assert prune_idle(stored, end(20) + RETENTION_MS - 1, RETENTION_MS)[1] == []
    assert not is_idle(stored["fill_rate"][3], end(20) + RETENTION_MS, RETENTION_MS)


def test_the_offline_replay_restarts_an_idle_series_as_the_operators_do(tmp_path):
    # Windows 0-29, a gap longer than the retention, windows 80-119 (with a drop at 110).
    ends = [end(i) for i in list(range(30)) + list(range(80, 120))]
    values = [rpm(i) * (0.3 if i == 110 else 1.0) for i in list(range(30)) + list(range(80, 120))]
    live, stored = [], None
    job = scoring(RETENTION_MS)
    for e, v in zip(ends, values):
        stored, results = job.score_windows(stored, ("editor", "e-1"), "e-1", None, e, [("rpm", v, 5)])
        live += results
    windows = ArchiveWindows({("editor", "e-1", "rpm", None): [(e, v, 5) for e, v in zip(ends, values)]},
                             [], {"e-1"}, ends[0], ends[-1], len(ends), 0)
    params = JobParameters(state_idle_retention_s=RETENTION_MS // 1000)
    cache = tmp_path / "models.pkl"
    assert score_series(windows, params, cache) == live        # recording the models' outputs
    assert score_series(windows, params, cache) == live        # played back from the cache
    _, fresh = scoring().score_windows(None, ("editor", "e-9"), "e-1", None, ends[30], [("rpm", values[30], 5)])
    assert live[30] == fresh[0], "the series started again after the gap"
    kept_for_ever = score_series(windows, JobParameters(state_idle_retention_s=0))
    assert kept_for_ever[30] != fresh[0] and kept_for_ever[:30] == live[:30]


# ----------------------------------------------------------------------------- the editor operator
def test_an_editor_gone_idle_is_cleared_whole_once_the_watermark_passes_the_retention():
    store = KeyedStore()
    op = EditorDriver(store, RETENTION_MS)
    for i in range(20):
        op.window("e-gone", end(i), rpm(i), fill_rate=0.8)
        op.window("e-stays", end(i), rpm(i))
        op.watermark(end(i))
    op.event("e-gone", end(19) - 60_000)
    for i in range(20, 70):                  # e-gone sends nothing more; e-stays goes on
        op.window("e-stays", end(i), rpm(i))
        op.watermark(end(i) - 1)
        if end(i) - 1 < end(19) + RETENTION_MS:
            assert "e-gone" in op.keys_with_state(), i
    assert op.keys_with_state() == {"e-stays"}
    assert op.counter("editorsExpired") == 1 and op.counter("seriesExpired") == 2


def test_a_metric_an_active_editor_stopped_reporting_is_dropped_and_its_others_kept():
    op = EditorDriver(KeyedStore(), RETENTION_MS)
    for i in range(100):
        metrics = {"fill_rate": 0.8} if i < 10 else {}
        op.window("e-1", end(i), rpm(i), **metrics)
        op.watermark(end(i) - 1)
    assert set(op.state("models", "e-1")) == {"rpm"}
    assert op.counter("editorsExpired") == 0 and op.counter("seriesExpired") == 1


def test_an_editor_that_only_sends_events_is_cleared_too():
    op = EditorDriver(KeyedStore(), RETENTION_MS)
    op.event("e-events", end(0))
    op.event("e-events", end(3))
    op.watermark(end(3) + RETENTION_MS - 1)
    assert op.keys_with_state() == {"e-events"}
    op.watermark(end(3) + RETENTION_MS)
    assert op.keys_with_state() == set()


def test_an_active_editor_registers_about_two_idle_timers_per_retention_not_one_per_row():
    op = EditorDriver(KeyedStore(), RETENTION_MS)
    for i in range(400):                       # ten retentions of normal windows, none anomalous
        op.window("e-1", end(i), rpm(i))
        op.watermark(end(i) - 1)
    assert op.timers.calls <= 2 * 400 * WINDOW_MS // RETENTION_MS + 2, op.timers.calls
    assert op.counter("seriesExpired") == 0


@pytest.mark.parametrize("seed", range(6))
def test_dropping_idle_state_changes_no_decision(seed):
    """Random bursts of traffic (rpm drops, a fill rate sometimes missing or down, deployments) with gaps
    around the shortest retention the job accepts: the bus events are the same whether the operator's
    idle checks drop state or not (the next window's rule, which restarts an idle series, is on in both)."""
    shortest = Settings.from_config(JobConfig.load(environ={})).events_lookback_s * 1000 + 3 * WINDOW_MS
    runs, expired = [], []
    for idle_checks in (True, False):
        rnd = random.Random(seed)
        op = EditorDriver(KeyedStore(), shortest)
        if not idle_checks:
            op.fn.idle_retention_ms = 0       # the operator's checks off; its scoring keeps the rule
        i = 0
        for burst in range(6):
            for k in range(rnd.randint(14, 30)):
                op.watermark(end(i) - 2)
                drop = k > 12 and rnd.random() < 0.25
                metrics = {"fill_rate": 0.8 * (0.3 if drop and rnd.random() < 0.5 else 1)} if rnd.random() < 0.7 else {}
                if rnd.random() < 0.15:
                    op.event("e-1", end(i) - rnd.randint(0, 40) * 60_000)
                op.window("e-1", end(i), rpm(i) * (0.2 if drop else 1.0), **metrics)
                op.watermark(end(i) - 1)
                i += 1
            i += rnd.choice([-2, -1, 0, 1, 2, 10]) + shortest // WINDOW_MS - 1
        expired.append(op.counter("editorsExpired"))      # cleared whole between bursts
        op.watermark(end(i) + 100 * shortest)
        runs.append([(source, detail_type, detail) for source, detail_type, detail, _emitted_at in op.emitted])
    assert runs[0] == runs[1] and runs[0], len(runs[0])
    assert expired[0] >= 1 and expired[1] == 0, expired


def test_the_end_of_a_bounded_input_clears_every_key_even_one_whose_window_timer_a_restore_lost():
    # A bounded source ends with a watermark at the end of time: every timer fires. An editor with an
    # armed window whose timer a restore lost (tests/test_correlator_restore.py) made the idle check
    # look again a retention later, for ever.
    op = EditorDriver(KeyedStore(), RETENTION_MS)
    for i in range(20):
        op.window("e-1", end(i), rpm(i))
        op.watermark(end(i) - 1)
    op.window("e-1", end(20), rpm(20) * 0.2)               # anomalous: armed, waits for its timer
    window_timer = ("e-1", end(20) - 1 + GRACE_MS)
    assert window_timer in op.timers.registered and len(op.timers.registered) == 2   # and the idle check
    op.timers.registered.discard(window_timer)
    op.watermark(2 ** 63 - 1)
    assert op.keys_with_state() == set() and op.timers.registered == set()


def test_retention_zero_keeps_everything_and_registers_no_idle_timer():
    op = EditorDriver(KeyedStore(), 0)
    for i in range(50):
        op.window("e-1", end(i), rpm(i))
        op.watermark(end(i) - 1)
    op.event("e-1", end(49))
    op.watermark(end(49) + 1000 * RETENTION_MS)
    assert op.timers.calls == 0
    assert op.keys_with_state() == {"e-1"}


# ----------------------------------------------------------------------------- the partner operator
def test_a_partner_drops_the_editors_that_left_it_and_keeps_its_status():
    op = PartnerDriver(KeyedStore(), RETENTION_MS)
    for i in range(80):     # e-left's series fall idle at window 50, dropped at most half a retention later
        editors = {"e-stays": {"bid_rate": 0.9, "win_rate": 0.3}}
        if i < 10:
            editors["e-left"] = {"bid_rate": 0.9, "win_rate": 0.3}
        op.window("p-1", end(i), editors)
        op.watermark(end(i) - 1)
    assert set(dict(op.state("models", "p-1"))) == {"e-stays"}
    assert op.counter("seriesExpired") == 2
    op.store.data[("last_status", "p-1")] = "held"          # whatever the partner's status is
    op.watermark(end(79) + 2 * RETENTION_MS)
    assert op.state("models", "p-1") == {} and op.state("last_status", "p-1") == "held"


# ----------------------------------------------------------------------------- the setting
def test_a_retention_that_could_change_a_decision_is_refused_at_start():
    def settings(*overrides):
        return Settings.from_config(JobConfig.load(environ={}, overrides=list(overrides)))

    assert settings().state_idle_retention_s == 7 * 86400
    assert settings("processing.state.idle.retention.s=0").state_idle_retention_s == 0
    with pytest.raises(ConfigError, match=r"state\.idle\.retention\.s=2000 must be 0 .* or at least 2700"):
        settings("processing.state.idle.retention.s=2000")
    assert settings("processing.state.idle.retention.s=2700").state_idle_retention_s == 2700
    with pytest.raises(ConfigError, match=r"at least 3900"):
        settings("processing.state.idle.retention.s=2700", "processing.events.lookback.s=3000")


def test_an_editor_restored_from_older_code_whose_first_input_is_an_event_keeps_its_series_a_retention():
    # Entries written before 8c8dcf6 have no last window end. An event registers the editor's idle
    # check without scoring a window, so the check met them unstamped and dropped them, while the
    # next window's rule would have carried them on.
    store = KeyedStore()
    op = EditorDriver(store, RETENTION_MS)
    for i in range(20):
        op.window("e-1", end(i), rpm(i))
    store.data[("models", "e-1")] = {m: entry[:3] for m, entry in store.data[("models", "e-1")].items()}
    restored = EditorDriver(store, RETENTION_MS)
    restored.event("e-1", end(30))
    restored.watermark(end(30) + RETENTION_MS)
    assert restored.state("models", "e-1")["rpm"][3] == end(30) + RETENTION_MS, "kept, stamped at the check"
    restored.watermark(end(30) + 3 * RETENTION_MS)
    assert restored.keys_with_state() == set()


def test_a_partners_idle_check_takes_an_empty_entry_as_gone():
    op = PartnerDriver(KeyedStore(), RETENTION_MS)
    op.window("p-1", end(0), {"e-1": {"bid_rate": 0.9}})
    op.store.data[("models", "p-1")]["e-empty"] = {}
    op.watermark(end(0) + 2 * RETENTION_MS)
    assert op.state("models", "p-1") == {}


def test_an_event_read_behind_the_horizon_leaves_no_state_for_its_editor():
    """Reported: an event for an editor with no windows, read 40 minutes behind the watermark, left the
    key's events state as "[]" for ever (no event in it for the idle check to expire by)."""
    from correlator_driver import WINDOW_MS, EditorDriver
    from flink_fakes import KeyedStore

    day = 86_400_000
    store = KeyedStore()
    op = EditorDriver(store, idle_retention_ms=7 * day)
    start = 1_793_520_000_000
    for i in range(1, 10):
        op.window("e-1", start + i * WINDOW_MS, rpm=2.5)
        op.watermark(start + i * WINDOW_MS)
    op.event("e-ghost", start + WINDOW_MS)      # 40 minutes behind the watermark: no window can name it
    op.watermark(start + 30 * day)
    assert {k for k in store.data if k[1] == "e-ghost"} == set()
    assert {k for k in store.data if k[1] == "e-1"} == set()
