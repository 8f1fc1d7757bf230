"""The editor correlator's window timers after a checkpoint restore, and its windows decided at once
(udfs/correlator.EditorCorrelator).

PyFlink 2.2 registers a Python timer in Java through a separate mailbox action that a
checkpoint does not wait for, so a checkpoint can hold an armed window (its results and
its `armed_windows` entry) without the window's event-time timer. Restored from it, the
window was never classified. These tests drive EditorCorrelator, with the job's real
scoring, over in-memory keyed state (tests/correlator_driver.py) and a timer service that starts empty, which is
exactly such a restored checkpoint; no Flink job needed. Also here: the events the operator keeps
for the windows it has not decided yet.
"""
from __future__ import annotations

import json

from detectors.events import iso_z

from correlator_driver import GRACE_MS, WINDOW_S, EditorDriver, PartnerDriver
from flink_fakes import KeyedStore

# The job's default scoring (ensemble model, trailing baseline) judges a window anomalous once
# WARM_UP windows have been learned (measured: not after 8, yes after 12).
WARM_UP = 12
END_0, END_1, END_2, END_3 = (1_793_527_200_000 + (WARM_UP - 1 + i) * WINDOW_S * 1000 for i in range(4))
NORMAL, DROPPED = 2.5, 0.5      # rpm: a window at a fifth of its usual level


def _warm_up(op: EditorDriver, editor: str) -> None:
    """WARM_UP normal windows ending at END_0, each decided at once."""
    for i in range(WARM_UP):
        op.window(editor, END_0 - (WARM_UP - 1 - i) * WINDOW_S * 1000, NORMAL * (1 + 0.02 * (-1) ** i))


def test_a_window_armed_in_a_checkpoint_without_its_timer_is_classified_after_the_restore():
    store = KeyedStore()
    before = EditorDriver(store)
    _warm_up(before, "e-1")
    before.window("e-1", END_1, DROPPED)        # anomalous: waits for its timer
    assert ("e-1", END_1 - 1 + GRACE_MS) in before.timers.registered
    # Checkpoint taken here, restored without the timer: a new lifetime, same state.
    after = EditorDriver(store)
    assert after.timers.registered == set()
    after.window("e-1", END_2, NORMAL)
    assert ("e-1", END_1 - 1 + GRACE_MS) in after.timers.registered, "the restored window's timer is re-armed"
    after.watermark(END_2 - 1_000)
    # Window 1 was taken and classified (its results left the state); window 2, normal but behind
    # window 1, waits for its own timer.
    assert END_1 - 1 + GRACE_MS in after.fired
    assert list(after.state("armed_windows", "e-1")) == [END_2]
    assert list(after.state("pending_windows", "e-1")) == [END_2]
    # ... and its composite left the operator: the restored window's own results, not a timer firing
    # over an empty state.
    (composite,) = [json.loads(row[2]) for row in after.emitted]
    assert (composite["editor_id"], composite["window_end"]) == ("e-1", iso_z(END_1 / 1000))
    assert composite["affected_metrics"] == ["rpm"]
    assert after.counter("windowsClassified") == 1


def test_timers_are_re_registered_once_per_key_and_lifetime_not_per_row():
    store = KeyedStore()
    op = EditorDriver(store)
    for editor in ("e-1", "e-2"):
        _warm_up(op, editor)
        op.window(editor, END_1, DROPPED)
    # One registration per anomalous (key, window); the normal windows before registered none.
    assert op.timers.calls == 2
    again = EditorDriver(store)
    again.window("e-1", END_2, NORMAL)
    again.window("e-1", END_3, NORMAL)
    # e-1's first row re-arms END_1 and arms END_2 (it waits behind END_1); the next arms only END_3.
    assert again.timers.calls == 3


def test_a_normal_window_with_nothing_pending_is_decided_at_once():
    store = KeyedStore()
    op = EditorDriver(store)
    store.data[("unexplained_window_end", "e-1")] = END_0 - WARM_UP * WINDOW_S * 1000   # an UNKNOWN window
    _warm_up(op, "e-1")
    op.window("e-1", END_1, NORMAL * 1.05)
    # No timer, nothing pending, and the unexplained mark cleared as the timer path clears it
    # for a window without anomalies (udfs.decisions.editor_window_composite -> (None, None)).
    assert op.timers.calls == 0
    assert not op.state("pending_windows", "e-1") and not op.state("armed_windows", "e-1")
    assert op.state("unexplained_window_end", "e-1") is None
    assert set(op.state("models", "e-1")) == {"rpm"}


def test_the_operator_passes_its_last_counts_on_when_it_closes():
    # Counts are passed to Flink in batches of COUNTER_BATCH windows, and the rest at close. The
    # operators listed Flink's function class first, whose close() does nothing, so a bounded
    # replay's last counts were never reported.
    op = EditorDriver(KeyedStore())
    _warm_up(op, "e-1")
    op.fn.close()
    assert op.runtime.metrics.counter("windowsScored").count == WARM_UP
    assert op.runtime.metrics.counter("windowsClassified").count == WARM_UP


def test_events_far_ahead_of_the_windows_keep_the_causes_of_a_window_not_decided_yet():
    """In a replay or a catch-up, the events are read long before the metrics' windows close. The
    operator pruned its events by the newest one's time, so an event 40 minutes ahead dropped the
    deployment a window still waiting needed: that composite lost its suspected cause."""
    store = KeyedStore()
    op = EditorDriver(store)
    _warm_up(op, "e-1")
    deployed_at = END_1 - WINDOW_S * 1000 - 120_000          # two minutes before the window starts
    op.event("e-1", deployed_at, "deployment")
    op.event("e-1", END_1 + 40 * 60_000, "feature_flag")     # read before the window closes
    op.window("e-1", END_1, DROPPED)
    op.watermark(END_1 + GRACE_MS)
    (composite,) = [json.loads(row[2]) for row in op.emitted]
    assert [c["event_type"] for c in composite["suspected_causes"]] == ["deployment"]
    # What is kept follows the watermark: once it is a look-back and a window past the
    # deployment, no window still to come can name it.
    op.watermark(END_1 + 40 * 60_000)
    op.event("e-1", END_1 + 41 * 60_000, "config_change")
    kept = [e["event_type"] for e in json.loads(op.state("events", "e-1"))]
    assert kept == ["feature_flag", "config_change"]


def test_a_window_fired_again_after_a_restore_is_neither_scored_nor_decided_again():
    """Watermarks are not checkpointed: after a restore, records that were late before it are not
    late until the first watermark, and re-open a window the state has already scored. Its partial
    value was judged as a new window (here: a fifth of the usual rpm, a composite for a window
    decided long ago) and learned by the model."""
    store = KeyedStore()
    before = EditorDriver(store)
    _warm_up(before, "e-1")
    before.window("e-1", END_1, NORMAL)
    models = store.data[("models", "e-1")]
    after = EditorDriver(store)                               # restored from that state
    after.window("e-1", END_0, DROPPED)                       # END_0 was scored before the restore
    after.watermark(END_1 + GRACE_MS)
    assert after.emitted == [] and store.data[("models", "e-1")] == models
    assert after.counter("windowsRefired") == 1 and after.counter("windowsScored") == 0

    partners = KeyedStore()
    first = PartnerDriver(partners)
    for i in range(WARM_UP):
        first.window("p-1", END_0 - (WARM_UP - 1 - i) * WINDOW_S * 1000, {"e-1": {"bid_rate": 0.5}, "e-2": {"bid_rate": 0.4}})
    restored = PartnerDriver(partners)
    # e-3 is new to the partner, but the partner has decided END_0: nothing of the row is scored or decided
    restored.window("p-1", END_0, {"e-1": {"bid_rate": 0.05}, "e-3": {"bid_rate": 0.3}})
    assert restored.emitted == [] and ("models", "p-1") in partners.data
    assert "e-3" not in partners.data[("models", "p-1")]
    assert restored.counter("windowsRefired") == 1 and restored.counter("windowsScored") == 0


def test_a_composite_is_stamped_with_its_rows_arrival_and_older_pending_windows_still_decide(monkeypatch):
    """emitted_at_ms (where the benchmark's latency starts) was the moment the timer fired: after the
    scoring of every row of that watermark. It is now the moment the window's row arrived, which the
    window operator emits as the watermark passes the window end. A window pending in a state
    written before (a bare list of results) is still decided, stamped when it is."""
    import udfs.correlator as correlator

    clock = [1_000.0]
    monkeypatch.setattr(correlator.time, "time", lambda: clock[0])
    store = KeyedStore()
    op = EditorDriver(store)
    _warm_up(op, "e-1")
    op.window("e-1", END_1, DROPPED)
    clock[0] = 1_007.5                                       # the timer fires later
    op.watermark(END_1 + GRACE_MS)
    (composite,) = op.emitted
    assert composite[3] == 1_000_000
    # the same window pending in the older form
    older = EditorDriver(KeyedStore())
    _warm_up(older, "e-2")
    older.window("e-2", END_1, DROPPED)
    pending = older.state("pending_windows", "e-2")
    pending[END_1] = json.dumps(json.loads(pending[END_1])["results"])
    older.watermark(END_1 + GRACE_MS)
    (decided,) = older.emitted
    assert decided[3] == 1_007_500 and json.loads(decided[2])["editor_id"] == "e-2"


def test_the_scoring_operators_set_the_collectors_threshold_they_are_given_at_open():
    """job.python.gc.threshold reaches the interpreter through both scoring operators (udfs/python_gc.py);
    0 leaves the interpreter's own."""
    import gc

    from correlator_driver import LOOKBACK_S, scoring
    from flink_fakes import KeyedRuntimeContext
    from udfs.correlator import EditorCorrelator, PartnerHealth

    before = gc.get_threshold()
    try:
        for threshold, operator in ((12_345, EditorCorrelator(WINDOW_S, GRACE_MS, LOOKBACK_S, scoring(),
                                                              gc_threshold=12_345)),
                                    (23_456, PartnerHealth(WINDOW_S, scoring(), GRACE_MS, LOOKBACK_S,
                                                           gc_threshold=23_456))):
            gc.set_threshold(700, *before[1:])
            operator.open(KeyedRuntimeContext(KeyedStore()))
            assert gc.get_threshold() == (threshold, *before[1:])
        gc.set_threshold(700, *before[1:])
        EditorCorrelator(WINDOW_S, GRACE_MS, LOOKBACK_S, scoring()).open(KeyedRuntimeContext(KeyedStore()))
        assert gc.get_threshold()[0] == 700
    finally:
        gc.set_threshold(*before)


def test_an_event_nested_as_deep_as_the_parse_accepts_is_kept_as_text_not_a_recursion_error():
    """Reported: Flink's JSON reader accepts details nested up to ~997 levels (Jackson's limit is 1,000);
    Python's reader raised RecursionError on them in the editor operator, and details nested ~990 deep
    were stored and raised it when the window's timer described the event: on every restore again."""
    for depth in (990, 996):
        store = KeyedStore()
        op = EditorDriver(store)
        _warm_up(op, "e-1")
        details = '{"a":' * depth + '1' + '}' * depth
        op.events_input(("config_change", END_1 - 60_000, "e-1", None, None, details, None))
        op.window("e-1", END_1, DROPPED)
        op.watermark(END_1 + GRACE_MS)
        (composite,) = [json.loads(row[2]) for row in op.emitted]
        (cause,) = composite["suspected_causes"]
        assert cause["event_type"] == "config_change"
        assert cause["details"]["details_unread"] == "nested deeper than 32 levels"
        assert cause["details"]["text"].startswith('{"a":{"a":')


def test_deep_details_stored_before_their_depth_was_bounded_do_not_fail_the_window():
    """Review: details_of bounds details as events arrive; an events state stored by an older version
    with deep details made the window's timer raise RecursionError after the upgrade. Details past the
    bound are replaced by the marker when read; a state too deep for Python's reader is dropped."""
    for depth, causes in ((400, [{"details_unread": "nested deeper than 32 levels"}]), (5000, [])):
        store = KeyedStore()
        op = EditorDriver(store)
        _warm_up(op, "e-1")
        deep = '{"a":' * depth + '1' + '}' * depth
        store.data[("events", "e-1")] = ('[{"event_type":"config_change","timestamp_ms":%d,"editor_id":"e-1",'
                                         '"partner":null,"severity":null,"details":%s}]' % (END_1 - 60_000, deep))
        op.window("e-1", END_1, DROPPED)
        op.watermark(END_1 + GRACE_MS)
        (composite,) = [json.loads(row[2]) for row in op.emitted]
        assert [c["details"] for c in composite["suspected_causes"]] == causes
