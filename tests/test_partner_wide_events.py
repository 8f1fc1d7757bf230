"""Partner-wide events (a partner_status, or a change made for a partner, that names no editor) reach
the editors the partner serves.

The editor operator is keyed by editor, so such an event used to reach no composite. The partner
operator (udfs/correlator.PartnerHealth) now takes them as its second input and passes each to the
editors it serves, beside its findings; the editor operator keeps it as the partner sent it (no
editor), as a suspected cause and as the classifier's corroboration (a status report of a demand
outage; a change made for the partner of the demand-side patterns only, detectors.classifier
Signature.links). Driven with
the job's real scoring over in-memory keyed state (tests/correlator_driver.py); the pipeline test
(tests/test_job_pipeline.py) sends one through the whole job.
"""
from __future__ import annotations

import json

from correlator_driver import GRACE_MS, LOOKBACK_S, WINDOW_MS, EditorDriver, PartnerDriver
from flink_fakes import KeyedStore

WARM_UP = 12
START = 1_793_527_200_000
END_OUTAGE = START + WARM_UP * WINDOW_MS
STEADY = {"rpm": 2.5, "fill_rate": 0.8, "partner_timeouts": 0.5, "bid_latency_ms": 180.0}


def _steady(i: int) -> dict[str, float]:
    return {m: v * (1 + 0.02 * (-1) ** i) for m, v in STEADY.items()}


def test_an_event_goes_to_every_editor_the_partner_serves_and_to_no_other():
    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-2": _steady(0), "e-1": _steady(0)})
    partner.window("p-2", START + WINDOW_MS, {"e-3": _steady(0)})
    partner.event("p-1", START + WINDOW_MS + 60_000)
    routed = partner.routed()
    assert [(r[0], r[1], r[2], r[3], json.loads(r[5])) for r in routed] == [
        ("partner_status", START + WINDOW_MS + 60_000, editor, "p-1", {"status": "DEGRADED"})
        for editor in ("e-1", "e-2")]
    assert partner.counter("partnerEventsRouted") == 2


def test_an_event_before_the_partners_first_window_waits_for_it():
    partner = PartnerDriver(KeyedStore())
    partner.event("p-1", START + 5 * WINDOW_MS)          # events are read ahead of the metrics' windows
    assert partner.routed() == [] and partner.state("recent_reports", "p-1")
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0)})
    assert [(r[2], r[1]) for r in partner.routed()] == [("e-1", START + 5 * WINDOW_MS)]
    partner.window("p-1", START + 2 * WINDOW_MS, {"e-1": _steady(1)})
    assert len(partner.routed()) == 1, "passed on once"


def test_an_editor_that_starts_using_the_partner_after_the_report_gets_it_while_it_can_be_a_cause():
    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0)})
    partner.watermark(START + WINDOW_MS)
    partner.event("p-1", START + WINDOW_MS + 60_000)
    assert [r[2] for r in partner.routed()] == ["e-1"]
    # e-2's first window through the partner closes after the report: it gets it with that window's row
    partner.window("p-1", START + 2 * WINDOW_MS, {"e-1": _steady(1), "e-2": _steady(1)})
    assert [r[2] for r in partner.routed()] == ["e-1", "e-2"]
    # e-3 comes once the watermark is a look-back (+ window, grace) past the report: too late to be told
    late = START + WINDOW_MS + 60_000 + GRACE_MS + LOOKBACK_S * 1000 + WINDOW_MS + 1
    partner.watermark(late)
    partner.window("p-1", late + WINDOW_MS, {"e-1": _steady(0), "e-2": _steady(0), "e-3": _steady(0)})
    assert [r[2] for r in partner.routed()] == ["e-1", "e-2"]


def test_an_event_that_never_finds_an_editor_is_dropped_at_the_idle_check():
    retention = 6 * 3600 * 1000
    partner = PartnerDriver(KeyedStore(), idle_retention_ms=retention)
    partner.event("p-1", START)
    partner.watermark(START + retention - 1)
    assert partner.state("recent_reports", "p-1")
    partner.watermark(START + retention)      # no window still to be decided can name it by then
    assert partner.keys_with_state() == set()


def _editor_windows(op: EditorDriver, editor: str, routed: list) -> list[dict]:
    """WARM_UP steady windows, the partner's events routed to the editor, then a window in which only
    the partner's timeouts soar (the editor's fill and rpm barely move: a partner with a small share)."""
    for i in range(WARM_UP):
        op.window(editor, START + (i + 1) * WINDOW_MS, **_steady(i))
    for row in routed:
        op.events_input(row)
    op.window(editor, END_OUTAGE + WINDOW_MS, **{**_steady(0), "partner_timeouts": 6.0})
    op.watermark(END_OUTAGE + WINDOW_MS + GRACE_MS)
    return [json.loads(row[2]) for row in op.emitted]


def test_a_routed_status_is_a_suspected_cause_without_an_editor_and_corroborates_a_demand_outage():
    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0)})
    partner.event("p-1", END_OUTAGE + 60_000)
    routed = partner.routed()
    (composite,) = _editor_windows(EditorDriver(KeyedStore()), "e-1", routed)
    assert composite["problem_type"] == "DEMAND_ISSUE"
    assert {"event_type": "partner_status", "partner": "p-1", "details": {"status": "DEGRADED"}}.items() \
        <= composite["suspected_causes"][0].items()
    assert "editor_id" not in composite["suspected_causes"][0]
    # The same editor without the partner's report: timeouts soaring alone are not yet a diagnosis
    # (detectors/classifier.py), so no composite for that window.
    assert _editor_windows(EditorDriver(KeyedStore()), "e-1", []) == []


def test_a_change_made_for_a_partner_reaches_its_editors_as_a_suspected_cause():
    """A config change, deployment or feature flag that names only a partner is about every editor
    trading with it (udfs.decisions.PARTNER_WIDE_EVENT_TYPES): a floor raised for the partner is a
    suspected cause of its editors' PRICING_ISSUE. A security finding naming only a partner is not
    passed on (it is forwarded as a security incident, udfs/security.py)."""
    from udfs.decisions import is_partner_wide

    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0), "e-2": _steady(0)})
    partner.window("p-2", START + WINDOW_MS, {"e-3": _steady(0)})
    floor = {"change": "price floor raised", "floor_cpm": 4.0}
    for event_type in ("config_change", "deployment", "feature_flag", "security_finding"):
        if is_partner_wide(event_type, None, "p-1"):       # the job's filter before the operator (main.py)
            partner.event("p-1", END_OUTAGE + 60_000, event_type=event_type, details=floor)
    routed = partner.routed()
    assert sorted((r[0], r[2]) for r in routed) == [
        (t, e) for t in ("config_change", "deployment", "feature_flag") for e in ("e-1", "e-2")]
    floor_change = [r for r in routed if r[0] == "config_change" and r[2] == "e-1"]

    def pricing_window(routed_rows: list) -> dict:
        op = EditorDriver(KeyedStore())
        for i in range(WARM_UP):
            op.window("e-1", START + (i + 1) * WINDOW_MS, **_steady(i))
        for row in routed_rows:
            op.events_input(row)
        op.window("e-1", END_OUTAGE + WINDOW_MS, **{**_steady(0), "rpm": 1.5})     # rpm down, fill steady
        op.watermark(END_OUTAGE + WINDOW_MS + GRACE_MS)
        (composite,) = [json.loads(row[2]) for row in op.emitted]
        return composite

    composite = pricing_window(floor_change)
    assert composite["problem_type"] == "PRICING_ISSUE"
    (cause,) = composite["suspected_causes"]
    assert (cause["event_type"], cause["partner"], cause["details"]) == ("config_change", "p-1", floor)
    assert "editor_id" not in cause
    assert "after p-1's config_change at" in composite["summary"]
    assert any(line.startswith("linked event: config_change at ") and "p-1" in line for line in composite["evidence"])
    alone = pricing_window([])
    assert (alone["problem_type"], alone["suspected_causes"]) == ("PRICING_ISSUE", [])


def test_a_report_read_far_ahead_does_not_hold_the_partners_idle_editors():
    """The report is kept for editors new to the partner until the watermark nears its time; the
    series of an editor gone idle still leave a retention after its last window, not after the report."""
    retention = 6 * 3600 * 1000
    partner = PartnerDriver(KeyedStore(), idle_retention_ms=retention)
    partner.event("p-1", START + 10 * retention)          # read far ahead of the metrics' windows
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0), "e-2": _steady(0)})
    partner.watermark(START + WINDOW_MS)
    partner.window("p-1", START + 2 * WINDOW_MS, {"e-1": _steady(1)})
    partner.watermark(START + WINDOW_MS + retention)
    assert sorted(partner.state("models", "p-1")) == ["e-1"], "e-2 idle for the retention"
    partner.watermark(START + 2 * WINDOW_MS + retention)
    assert partner.state("models", "p-1") == {} and partner.state("recent_reports", "p-1")
    partner.watermark(2 ** 63 - 1)                         # the end of a bounded input
    assert partner.keys_with_state() == {"p-1"} and set(partner.store.data) <= {("last_status", "p-1"),
                                                                                ("models", "p-1")}


def test_a_report_passed_on_with_a_new_editors_window_is_not_a_cause_of_its_earlier_windows():
    """A copy sent with the row of the editor's first window through the partner is for that window
    and later ones: when the watermark jumps over an earlier window of the editor and that one, the
    copy reaches the editor operator before the earlier window's timer fires, and must not count
    there (the offline replay shows it from that window on)."""
    partner = PartnerDriver(KeyedStore())
    partner.event("p-1", END_OUTAGE + 60_000)                          # held: no editor yet
    partner.window("p-1", END_OUTAGE + 2 * WINDOW_MS, {"e-1": _steady(0)})    # e-1's first window through it
    routed = partner.routed()
    assert [(r[2], r[6]) for r in routed] == [("e-1", f"routed-partner-event@{END_OUTAGE + 2 * WINDOW_MS}")]
    # the editor window of the report's time is decided after the copy arrived: not a cause there,
    # so it is the window without the report (no composite: timeouts soaring alone are no diagnosis)
    assert _editor_windows(EditorDriver(KeyedStore()), "e-1", routed) == []
    # the same copy sent on arrival (e-1 known to the partner) is a cause of that window
    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0)})
    partner.event("p-1", END_OUTAGE + 60_000)
    (composite,) = _editor_windows(EditorDriver(KeyedStore()), "e-1", partner.routed())
    assert composite["suspected_causes"][0]["event_type"] == "partner_status"


def test_the_offline_replay_routes_as_the_operator_does():
    """flink_jobs.evaluation.offline.routed_partner_events against the operator: which editors get each
    report, and from which of their windows on (a window's decision has a copy sent before the watermark
    passed its end, and one meant for that window or an earlier one)."""
    from flink_jobs.evaluation.offline import routed_partner_events
    from udfs.decisions import read_routed_payload

    w = WINDOW_MS
    ahead_at, known_at, read_at = START + 2 * w + 60_000, START + w + 100_000, START + w
    partner = PartnerDriver(KeyedStore())
    sent = []

    def note():
        sent.extend((row, partner.timers.watermark) for row in partner.routed()[len(sent):])

    partner.event("p-1", ahead_at)                                   # read before any window: held
    note()
    partner.window("p-1", START + w, {"e-1": _steady(0), "e-2": _steady(0)})
    note()
    partner.watermark(read_at)
    partner.event("p-1", known_at)                                   # e-1 and e-2 are served by then
    note()
    partner.window("p-1", START + 2 * w, {"e-1": _steady(1), "e-3": _steady(1)})   # e-3 is new
    note()
    partner.watermark(START + 2 * w)
    partner.window("p-1", START + 3 * w, {"e-1": _steady(0), "e-2": _steady(0), "e-3": _steady(0)})
    partner.watermark(START + 3 * w)
    ends = {"e-1": [START + w, START + 2 * w, START + 3 * w], "e-2": [START + w, START + 3 * w],
            "e-3": [START + 2 * w, START + 3 * w]}

    def first_told(editor, wm, from_end=None):
        return min((end for end in ends[editor] if end - 1 > wm and (from_end is None or end >= from_end)),
                   default=None)

    from_operator = {}
    for row, wm in sent:
        from_operator.setdefault((row[2], row[1]), first_told(row[2], wm, read_routed_payload(row[6])[1]))
    assert sorted(from_operator) == [("e-1", known_at), ("e-1", ahead_at), ("e-2", known_at), ("e-2", ahead_at),
                                     ("e-3", known_at), ("e-3", ahead_at)]
    events = [{"event_type": "partner_status", "timestamp_ms": ahead_at, "editor_id": None, "partner": "p-1",
               "arrived_at_watermark": None},
              {"event_type": "partner_status", "timestamp_ms": known_at, "editor_id": None, "partner": "p-1",
               "arrived_at_watermark": read_at}]
    by_end = {START + w: {"e-1", "e-2"}, START + 2 * w: {"e-1", "e-3"}, START + 3 * w: {"e-1", "e-2", "e-3"}}
    replayed = {(c["routed_to"], c["timestamp_ms"]): first_told(c["routed_to"], c["arrived_at_watermark"])
                for c in routed_partner_events(events, {"p-1": by_end}, 0, LOOKBACK_S * 1000 + WINDOW_MS)}
    assert replayed == from_operator


def test_an_idle_check_that_finds_only_a_report_read_far_ahead_does_not_put_off_the_next_ones():
    """A check that finds no series, only a report read far ahead, asks for the next check a retention
    later, not at the report's time: a series that starts after it still leaves a retention after its
    last window (the editor operator the same, with the copy)."""
    retention = 6 * 3600 * 1000
    partner = PartnerDriver(KeyedStore(), idle_retention_ms=retention)
    editor = EditorDriver(KeyedStore(), idle_retention_ms=retention)
    for op in (partner, editor):
        op.watermark(START)
    partner.event("p-1", START + 10 * retention)
    editor.events_input(("partner_status", START + 10 * retention, "e-1", "p-1", None, "{}", "routed-partner-event"))
    for op in (partner, editor):
        op.watermark(START + retention)                   # a check: no series, only the report
    last = START + retention + WINDOW_MS
    partner.window("p-1", last, {"e-1": _steady(0)})
    editor.window("e-1", last, **_steady(0))
    for op in (partner, editor):
        op.watermark(last + retention - 1)
    assert partner.state("models", "p-1") and editor.state("models", "e-1")
    for op in (partner, editor):
        op.watermark(last + retention)
    assert partner.state("models", "p-1") == {} and editor.state("models", "e-1") is None


def test_a_report_that_comes_while_a_new_editors_first_window_is_open_is_for_that_window_on():
    """As a held report is: a watermark jumping over an earlier window of the editor and that one would
    otherwise bring the copy before the earlier window's timer."""
    partner = PartnerDriver(KeyedStore())
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0)})
    partner.watermark(START + WINDOW_MS)
    partner.window("p-1", START + 3 * WINDOW_MS, {"e-1": _steady(1), "e-4": _steady(1)})   # e-4's first window
    partner.event("p-1", START + 2 * WINDOW_MS + 60_000)                # its window is still open
    assert [(r[2], r[6]) for r in partner.routed()] == [
        ("e-1", "routed-partner-event"), ("e-4", f"routed-partner-event@{START + 3 * WINDOW_MS}")]
    partner.watermark(START + 3 * WINDOW_MS)                            # closed: for every window from now
    partner.event("p-1", START + 3 * WINDOW_MS + 60_000)
    assert [r[6] for r in partner.routed()[2:]] == ["routed-partner-event"] * 2


def test_an_editor_idle_for_the_retention_is_not_served_before_the_idle_check_drops_it():
    """Served means a window through the partner less than a retention before, as the offline replay
    has it, not a series the idle check has not dropped yet; back, the editor is new and is told then."""
    retention = 6 * 3600 * 1000
    partner = PartnerDriver(KeyedStore(), idle_retention_ms=retention)
    partner.window("p-1", START + WINDOW_MS, {"e-1": _steady(0), "e-5": _steady(0)})
    back = START + WINDOW_MS + retention + 2 * WINDOW_MS
    partner.window("p-1", back - WINDOW_MS, {"e-1": _steady(1)})
    partner.timers.watermark = back - WINDOW_MS                # the watermark, before any idle check fired
    assert "e-5" in partner.state("models", "p-1")
    partner.event("p-1", back - WINDOW_MS + 60_000)
    assert [r[2] for r in partner.routed()] == ["e-1"]
    partner.window("p-1", back, {"e-1": _steady(0), "e-5": _steady(0)})
    assert [(r[2], r[6]) for r in partner.routed()[1:]] == [("e-5", f"routed-partner-event@{back}")]


def test_the_in_memory_table_of_open_first_windows_stays_small():
    partner = PartnerDriver(KeyedStore())
    for i in range(1, 6):
        partner.window("p-1", START + i * WINDOW_MS, {f"e-{i}": _steady(0)})    # a new editor each window
        partner.watermark(START + i * WINDOW_MS)
    assert partner.fn._first_windows == {"p-1": {"e-5": (None, START + 5 * WINDOW_MS)}}


def test_a_report_for_an_editor_back_after_a_retention_is_for_any_window_while_its_last_one_is_recent():
    """Its window back came before the watermark passed its last window's retention (a watermark jumping
    several windows): the editor is still served when the report comes, so the copy is for any window,
    as the offline replay has it, whichever of the row and the report comes first."""
    retention = 6 * 3600 * 1000
    last, back = START + WINDOW_MS, START + WINDOW_MS + retention + 2 * WINDOW_MS
    for row_first in (True, False):
        partner = PartnerDriver(KeyedStore(), idle_retention_ms=retention)
        partner.window("p-1", last, {"e-1": _steady(0)})
        partner.watermark(last + retention - WINDOW_MS)         # the window back is not closed yet
        if row_first:
            partner.window("p-1", back, {"e-1": _steady(1)})
        partner.event("p-1", last + retention - 2 * WINDOW_MS)
        if not row_first:
            partner.window("p-1", back, {"e-1": _steady(1)})
        assert [r[6] for r in partner.routed()][:1] == ["routed-partner-event"], row_first
