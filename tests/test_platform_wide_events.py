"""Platform-wide events (naming neither an editor nor a partner) reach every editor.

A deployment of the ad server is sent without an editor; the editor operator is keyed by editor, so
it used to reach no composite. udfs/platform_events.PlatformEvents now passes each one to every
editor the network has, and to editors first seen while it can still be a cause; the editor operator
keeps it without an editor, as a suspected cause and as the classifier's corroboration. Driven with
the job's real operators over in-memory keyed state (tests/correlator_driver.py); the pipeline test
(tests/test_job_pipeline.py) sends one through the whole job, and the offline replay's rule
(flink_jobs.evaluation.offline.routed_platform_events) is checked against the operator here.
"""
from __future__ import annotations

import json

from correlator_driver import GRACE_MS, LOOKBACK_S, WINDOW_MS, EditorDriver, PlatformDriver
from flink_fakes import KeyedStore
from flink_jobs.evaluation.offline import routed_platform_events
from udfs.decisions import read_routed_payload
from udfs.platform_events import PLATFORM_KEY

START = 1_793_527_200_000
HORIZON_MS = GRACE_MS + LOOKBACK_S * 1000 + WINDOW_MS      # how long an event is kept behind the watermark


def test_an_event_goes_to_every_editor_known_when_it_arrives():
    op = PlatformDriver(KeyedStore())
    for editor in ("e-2", "e-1", "e-3"):
        op.window(editor, START + WINDOW_MS)
    op.watermark(START + WINDOW_MS)
    op.event(START + WINDOW_MS + 60_000)
    assert op.routed() == [(e, START + WINDOW_MS + 60_000) for e in ("e-1", "e-2", "e-3")]
    row = op.emitted[0]
    assert (row[0], row[3], json.loads(row[5])) == ("deployment", None, {"service": "ad-server"})
    assert op.counter("platformEventsRouted") == 3


def test_an_editor_first_seen_while_the_event_can_be_a_cause_gets_it_once():
    op = PlatformDriver(KeyedStore())
    op.event(START + 5 * WINDOW_MS)        # read ahead of every window: no editor known yet
    assert op.routed() == [] and op.state("recent_events", PLATFORM_KEY)
    op.window("e-1", START + WINDOW_MS)
    op.window("e-1", START + 2 * WINDOW_MS)
    assert op.routed() == [("e-1", START + 5 * WINDOW_MS)], "passed on with its first window, once"
    # an editor first seen once the watermark is a look-back (+ window, grace) past the event: too late
    # for any window it could explain, so it is not passed on (and no longer kept)
    op.emitted.clear()
    op.watermark(START + 5 * WINDOW_MS + HORIZON_MS + 1)
    op.window("e-2", START + 5 * WINDOW_MS + HORIZON_MS + WINDOW_MS)
    assert op.routed() == [] and op.state("recent_events", PLATFORM_KEY) is None


def test_idle_editors_and_old_events_leave_the_state_and_a_returning_editor_is_told_again_but_kept_once():
    retention = 6 * 3600 * 1000
    op = PlatformDriver(KeyedStore(), idle_retention_ms=retention)
    op.window("e-1", START + WINDOW_MS)
    op.window("e-2", START + WINDOW_MS)
    op.watermark(START + WINDOW_MS)
    op.window("e-2", START + 2 * WINDOW_MS)
    op.event(START + WINDOW_MS + 60_000)
    op.watermark(START + WINDOW_MS + retention)
    assert sorted(op.store.data[("editors", PLATFORM_KEY)]) == ["e-2"], "e-1 idle for the retention"
    op.watermark(START + 2 * WINDOW_MS + retention)
    assert op.keys_with_state() == set() and op.counter("platformEditorsExpired") == 2
    # An editor that was idle comes back while an event is kept: it is new, and gets the event again;
    # the editor operator ignores the copy it holds already.
    op = PlatformDriver(KeyedStore(), idle_retention_ms=retention)
    event_at = START + WINDOW_MS + retention - 60_000
    op.window("e-1", START + WINDOW_MS)
    op.watermark(START + WINDOW_MS)
    op.event(event_at)
    op.watermark(START + WINDOW_MS + retention)
    op.window("e-1", START + 2 * WINDOW_MS + retention)
    copies = [row for row in op.emitted]
    assert [(row[2], row[1]) for row in copies] == [("e-1", event_at)] * 2
    editor = EditorDriver(KeyedStore())
    for row in copies:
        editor.events_input(row)
    # the copy sent on arrival is for every window: the one sent again, for its later windows, adds nothing
    assert json.loads(editor.state("events", "e-1")) == [
        {"event_type": "deployment", "timestamp_ms": event_at, "editor_id": None, "partner": None, "severity": None,
         "details": {"service": "ad-server"}}]


def test_a_routed_deployment_is_a_suspected_cause_without_an_editor_and_corroborates_latency():
    steady = {"rpm": 2.5, "fill_rate": 0.8, "bid_latency_ms": 180.0, "error_rate": 0.01}

    def run(platform_events: bool) -> list[dict]:
        op = PlatformDriver(KeyedStore())
        editor = EditorDriver(KeyedStore())
        for i in range(12):
            end = START + (i + 1) * WINDOW_MS
            op.window("e-1", end)
            editor.window("e-1", end, **{m: v * (1 + 0.02 * (-1) ** i) for m, v in steady.items()})
        surge_end = START + 13 * WINDOW_MS
        if platform_events:
            op.event(surge_end - 4 * 60_000)
        for row in op.emitted:
            editor.events_input(row)
        editor.window("e-1", surge_end, **{**steady, "rpm": 2.0, "bid_latency_ms": 420.0})
        editor.watermark(surge_end + GRACE_MS)
        return [json.loads(row[2]) for row in editor.emitted]

    (composite,) = run(platform_events=True)
    assert composite["problem_type"] == "LATENCY_ISSUE"
    (cause,) = composite["suspected_causes"]
    assert (cause["event_type"], cause["details"]) == ("deployment", {"service": "ad-server"})
    assert "editor_id" not in cause and "partner" not in cause
    (alone,) = run(platform_events=False)
    assert alone["suspected_causes"] == []
    # the deployment corroborates the diagnosis, and the evidence says so
    assert composite["evidence"][0].startswith("LATENCY_ISSUE (score 1.00)")
    assert alone["evidence"][0].startswith("LATENCY_ISSUE (score 0.83)")
    assert composite["evidence"][-1].startswith("linked event: deployment at ")


def _first_window_told(ends: list[int], told_at_watermark: int, from_end: int | None = None) -> int | None:
    """The first of an editor's windows whose decision has a copy sent at that watermark: one the
    watermark had not passed the end of (the window's timer is a grace later; the offline replay takes
    the decision at the end: ``arrived_at_watermark < end - 1``, flink_jobs/evaluation/offline.decide),
    and, for a copy sent with a new editor's row, that window or a later one (udfs.decisions.routed_payload)."""
    return min((end for end in ends if end - 1 > told_at_watermark and (from_end is None or end >= from_end)),
               default=None)


def test_the_offline_replay_routes_as_the_operator_does():
    """The offline replay's rule against the operator: which editors get each event, and from which of
    their windows on, over one run of windows, watermarks and events, with an editor idle for the
    retention that comes back."""
    retention = 6 * 3600 * 1000
    flag_at, deployment_at, deployment_read_at = START + 9 * WINDOW_MS, START + 3 * WINDOW_MS, START + 2 * WINDOW_MS - 1
    back_at = START + WINDOW_MS + retention + 2 * WINDOW_MS        # e-4 comes back after an idle retention
    ahead_at = back_at + 3 * WINDOW_MS                              # an event read far ahead of the windows
    op = PlatformDriver(KeyedStore(), idle_retention_ms=retention)
    op.event(flag_at, "feature_flag")                    # read before any window closed
    op.window("e-1", START + WINDOW_MS)
    op.window("e-4", START + WINDOW_MS)
    op.watermark(START + WINDOW_MS - 1 + GRACE_MS)
    op.event(ahead_at, "config_change")                  # e-1 and e-4 are known by then
    op.window("e-1", START + 2 * WINDOW_MS)
    op.watermark(deployment_read_at)
    op.event(deployment_at)                              # e-1 and e-4 are known by then, e-2 not yet
    op.window("e-2", START + 4 * WINDOW_MS)
    op.watermark(START + 4 * WINDOW_MS)
    late_end = back_at
    # long after the deployment and the flag could be causes; the window before it has closed (the
    # replay takes the horizon at the window's end, the operator at the watermark its row comes at)
    op.watermark(late_end - WINDOW_MS - 1)
    assert op.counter("platformEditorsExpired") == 1         # e-4
    op.window("e-3", late_end)
    op.window("e-4", back_at)
    op.watermark(late_end)
    editor_ends = {"e-1": [START + WINDOW_MS, START + 2 * WINDOW_MS], "e-2": [START + 4 * WINDOW_MS],
                   "e-3": [late_end], "e-4": [START + WINDOW_MS, back_at]}
    from_operator = {}
    for row, wm in op.sent:       # the editor operator keeps the copy for the most windows: here the first
        from_operator.setdefault((row[2], row[0], row[1]),
                                 _first_window_told(editor_ends[row[2]], wm, read_routed_payload(row[6])[1]))
    assert sorted(from_operator) == [
        ("e-1", "config_change", ahead_at), ("e-1", "deployment", deployment_at), ("e-1", "feature_flag", flag_at),
        ("e-2", "config_change", ahead_at), ("e-2", "deployment", deployment_at), ("e-2", "feature_flag", flag_at),
        ("e-3", "config_change", ahead_at), ("e-4", "config_change", ahead_at), ("e-4", "deployment", deployment_at),
        ("e-4", "feature_flag", flag_at)]
    assert len(op.sent) == len(from_operator) + 1, "e-4, back, is sent the config change again"
    events = [{"event_type": "feature_flag", "timestamp_ms": flag_at, "editor_id": None, "partner": None,
               "arrived_at_watermark": None},
              {"event_type": "config_change", "timestamp_ms": ahead_at, "editor_id": None, "partner": None,
               "arrived_at_watermark": START + WINDOW_MS - 1 + GRACE_MS},
              {"event_type": "deployment", "timestamp_ms": deployment_at, "editor_id": None, "partner": None,
               "arrived_at_watermark": deployment_read_at}]
    replayed = {(e["routed_to"], e["event_type"], e["timestamp_ms"]):
                _first_window_told(editor_ends[e["routed_to"]], e["arrived_at_watermark"])
                for e in routed_platform_events(events, editor_ends, retention, LOOKBACK_S * 1000 + WINDOW_MS)}
    assert replayed == from_operator


def test_a_restored_operator_tells_new_editors_and_not_known_ones_again():
    store = KeyedStore()
    op = PlatformDriver(store)
    op.window("e-1", START + WINDOW_MS)
    op.watermark(START + WINDOW_MS)
    op.event(START + WINDOW_MS + 60_000)
    assert op.routed() == [("e-1", START + WINDOW_MS + 60_000)]
    restored = PlatformDriver(store)          # a new process lifetime over the checkpointed state
    restored.window("e-1", START + 2 * WINDOW_MS)
    restored.window("e-2", START + 2 * WINDOW_MS)
    assert restored.routed() == [("e-2", START + WINDOW_MS + 60_000)]


def test_at_the_end_of_a_bounded_input_the_state_is_cleared():
    op = PlatformDriver(KeyedStore(), idle_retention_ms=6 * 3600 * 1000)
    op.window("e-1", START + WINDOW_MS)
    op.event(START + 50 * WINDOW_MS)
    op.watermark(2 ** 63 - 1)            # the watermark at the end of an archive
    assert op.keys_with_state() == set()
