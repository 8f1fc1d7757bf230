"""(ii) Per editor and (iii) per demand partner: score a window's metrics, align them, decide.

``EditorCorrelator`` is keyed by editor_id, with two inputs (a KeyedCoProcessFunction):
  1. the editor's window rows of sql/windows/editor_windows.sql, one per window with
     every metric side by side: each metric is scored at once against its own model
     and trailing baseline (udfs/metric_detector.WindowScoring, state ``models``);
  2. the editor's operational events (config changes, deployments, flags,
     partner status, security findings), kept in state for ``lookback`` seconds.
A window with an anomalous metric waits for an event-time timer at the window's
end (+ grace): the window row reaches this operator before the watermark that
closes the window (the window operator emits the windows, then forwards the
watermark), and the timer fires only when the events input's watermark has passed
the window end too, so the events that belong to the window are there. A window
without one is decided on arrival (EditorCorrelator says when that is safe).
udfs.decisions.editor_window_composite classifies (detectors.classifier) and,
when any metric is anomalous and the classifier calls it an incident, ONE
composite anomaly (detectors.incident) is emitted for the editor and window.
The decisions are pure functions so flink_jobs/evaluation/offline.py replays
exactly them. This replaces the seed's three-way equality join on timestamps.

``PartnerHealth`` is keyed by partner, with two inputs (a KeyedCoProcessFunction):
  1. one row per partner and window from sql/windows/partner_windows.sql holding every
     editor's window through the partner, each scored against that editor's own series
     (state ``models``, one entry per editor); the row is the whole window, so the
     partner is judged at once;
  2. the partner-wide events: a partner's status report, or a change made for the partner,
     that names no editor (udfs.decisions.is_partner_wide; flink_jobs/main.py, ``partner-events``).
What it finds for each editor it hurts goes, on the side output ``PARTNER_FINDINGS``, into
the editor operator's events input (udfs.decisions.PARTNER_FINDING): the partner
windows close at the same watermark as the editor windows, and PartnerHealth emits
its findings before it forwards that watermark, so they are in the editor's state
when the window's timer fires, and a DEMAND_ISSUE composite names the partner.
A partner-wide event goes the same way to every editor the partner serves
(``PartnerHealth.process_element2`` says which), so it is a suspected cause of those
editors' composites, and the classifier's corroboration (a status report of a demand outage,
a floor change of a pricing issue), as an editor's own events are. One routed on arrival is forwarded before the events input's
watermark moves past it, so while that input is active it reaches the editor before any
timer its time could concern; like an editor's own event, one that comes after its input
was marked idle (``processing.idle.timeout.s``) can come after the window it belongs to was
decided. The partner keeps it while it can still be a cause, and an editor new to the partner
in that time gets it with its first window's row through the partner, before the watermark
that closes that window.
An event that names neither an editor nor a partner (a deployment of the whole ad server) reaches
every editor the same way, through udfs/platform_events.PlatformEvents.

Idle keys (``processing.state.idle.retention.s``): both operators register an event-time
timer a retention after a key's latest window (and event, or held partner report: its time,
capped at the watermark, so that one read far ahead of the windows does not put the check
off); when it fires, the series idle that long are dropped, and an editor left with nothing
has its whole state cleared (udfs/metric_detector.prune_idle). Each key registers about two
such timers per retention, not one per row (and one per key with an event read before the
first watermark). Without it, every editor and partner-editor pair the job ever saw would stay in
its state for ever.

Scoring and deciding share one operator because every Python operator a row
passes through costs a JVM -> Python -> JVM crossing, more than the scoring.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

from pyflink.common import Row, Types
from pyflink.datastream import KeyedCoProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from detectors.classifier import ClassifierConfig
from detectors.partner_health import PartnerHealthConfig
from udfs.decisions import (ROUTED_PARTNER_EVENT, bounded_events, cause_horizon, composite_episode,
                             details_of, editor_window_composite, events_for_window, kept_since, partner_window_check,
                             read_routed_payload, read_stored_events, routed_payload, serves)
from udfs.metric_detector import WindowScoring, is_idle, last_window_end, metric_windows, prune_idle, scored_since
from udfs.python_gc import set_young_threshold
from connectors.eventbridge.flink_sink import EVENTBRIDGE_INPUT_TYPE as OUTPUT_TYPE, eventbridge_row

# Output rows are the EventBridge sink's input (connectors.eventbridge.flink_sink):
# Row(source, detail_type, detail JSON, emitted_at_ms); emitted_at_ms is the
# processing time at which the window's row reached the operator: the window operator
# emits it when the watermark passes the window end, and forwards that watermark after
# it, so the latency measured from it (flink_jobs/benchmark.py) includes the scoring and
# the wait for the timer.
COMPOSITE = ("adops.analytics", "Composite Anomaly Detected")
PARTNER_HEALTH = ("adops.monitoring", "Partner Health Check")
SECURITY = ("adops.security", "Security Incident Detected")

EVENT_FIELDS = ["event_type", "timestamp_ms", "editor_id", "partner", "severity", "details", "payload"]
EVENT_TYPE = Types.ROW_NAMED(
    EVENT_FIELDS,
    [Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.STRING(), Types.STRING()],
)

log = logging.getLogger(__name__)

# PartnerHealth's side output: partner findings, as rows of the editor operator's events input.
PARTNER_FINDINGS = OutputTag("partner-findings", EVENT_TYPE)


# The first ``m__avg`` column of an editor row (sql/windows/editor_windows.sql, after editor_id)
# and of each editor's window in a partner row's array (sql/windows/partner_windows.sql).
METRICS_AT = 1
# State of a series group (an editor, or a partner's editor): metric -> (model snapshot, journal, history,
# last window end); udfs/metric_detector.py.
MODELS_TYPE = Types.PICKLED_BYTE_ARRAY()


class _Counters:
    """The operators' metrics. Counter increments are Java calls; they are passed on in batches
    (and at close), so the metrics lag by at most COUNTER_BATCH windows."""

    COUNTER_BATCH = 64
    NAMES = ("windowsScored", "metricAnomalies", "seriesExpired", "windowsRefired")

    def _open_counters(self, runtime_context: RuntimeContext, *names: str):
        group = runtime_context.get_metrics_group()
        self._counters = {name: group.counter(name) for name in self.NAMES + names}
        self._counts = dict.fromkeys(self._counters, 0)
        self._uncounted = 0
        self._refired_seen = self._refired_at_open = self.scoring.refired

    def _count_refired(self, key: str, end: int) -> None:
        """Windows the scoring left out as re-fired (udfs/metric_detector.py): counted, the first logged."""
        refired = self.scoring.refired
        if refired != self._refired_seen:
            if self._refired_seen == self._refired_at_open:
                log.warning("%s: the window ending %d was fired again (records late before a restore); "
                            "not scored again (metric windowsRefired counts them)", key, end)
            self._count("windowsRefired", refired - self._refired_seen)
            self._refired_seen = refired

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] += n
        self._uncounted += 1
        if self._uncounted >= self.COUNTER_BATCH:
            self._flush_counters()

    def _count_results(self, results: list[dict]) -> None:
        self._counts["metricAnomalies"] += sum(1 for r in results if r["is_anomaly"])
        self._count("windowsScored", len(results))

    def _flush_counters(self) -> None:
        for name, n in self._counts.items():
            if n:
                self._counters[name].inc(n)
                self._counts[name] = 0
        self._uncounted = 0

    def close(self):
        # First in the operators' bases, so that Flink's close() reaches it (Function.close does nothing).
        if hasattr(self, "_counts"):
            self._flush_counters()
        super().close()


class _IdleExpiry:
    """The idle-key timers of both operators (module docstring, "Idle keys").

    ``_idle_due`` (in memory, so empty after a restore: the first row of a key registers again)
    is the latest expiry timer registered for each key. A row at time t registers one at
    t + retention unless one is already due at or after t + retention / 2; a timer that finds
    the key still active asks for the next check where its oldest series falls idle (registered
    only if no later check is due). So a series or key is dropped once the watermark passes its
    last activity plus the retention, at most half a retention later.

    Known limit: PyFlink can take a checkpoint without a timer registered just before it
    (EditorCorrelator's docstring). A key whose only idle timer is lost that way, and that sends
    nothing after the restore, stays in the state.
    """

    idle_retention_ms: int

    def _open_idle(self) -> None:
        self._idle_due: dict = {}
        self._early_checks: set = set()     # keys given a check before the first watermark

    def _keep_alive(self, key, ctx, activity_ms: int) -> None:
        if self.idle_retention_ms:
            due = self._idle_due.get(key)
            if due is None or due < activity_ms + self.idle_retention_ms // 2:
                self._expire_at(key, ctx, activity_ms + self.idle_retention_ms)

    def _keep_alive_until_watermark(self, key, ctx, activity_ms: int) -> None:
        """:meth:`_keep_alive` for an event's time, capped at the watermark: an event read far ahead of the
        windows (a replay, a catch-up) would set a check that far ahead, and that check would stand for
        the earlier ones the key's idle series need. Before the first watermark, one check of its own
        per key (it stands for no other). A check that finds the event still kept asks for the next one
        (capped at the watermark too, :meth:`_next_check_for_event`)."""
        if not self.idle_retention_ms:
            return
        watermark = ctx.timer_service().current_watermark()
        if watermark < 0:           # no watermark yet (Long.MIN_VALUE)
            if key not in self._early_checks:
                self._early_checks.add(key)
                ctx.timer_service().register_event_time_timer(activity_ms + self.idle_retention_ms)
        else:
            self._early_checks.clear()
            self._keep_alive(key, ctx, min(activity_ms, watermark))

    def _next_check_for_event(self, event_ms: int, watermark_ms: int) -> int:
        """The next idle check for an event still kept at a check: a retention after its time, capped at
        a retention after the watermark (one check per retention while events run ahead of the windows,
        instead of a check that far ahead standing for those the key's series need)."""
        return min(event_ms, watermark_ms) + self.idle_retention_ms

    def _expire_at(self, key, ctx, due_ms: int) -> None:
        if self._idle_due.get(key) is None or self._idle_due[key] < due_ms:
            ctx.timer_service().register_event_time_timer(due_ms)
            self._idle_due[key] = due_ms

    def _expiry_fired(self, key, timestamp: int) -> None:
        if self._idle_due.get(key) == timestamp:
            del self._idle_due[key]

    def _prune(self, series: tuple, stored: dict | None, watermark_ms: int) -> tuple[dict, int | None]:
        """udfs.metric_detector.prune_idle for one series group, its dropped models forgotten and counted."""
        kept, dropped, due = prune_idle(stored, watermark_ms, self.idle_retention_ms)
        if dropped:
            self.scoring.forget(series, dropped)
            self._count("seriesExpired", len(dropped))
        return kept, due


class HeldEvents:
    """Routed events kept for the editors not told of them yet (PartnerHealth's partner-wide events, its
    reports and the changes made for it, in its state ``recent_reports``, udfs/platform_events.PlatformEvents' platform-wide changes in
    ``recent_events``): kept from udfs.decisions.cause_horizon on, so while a window not decided yet can
    still name them. Each copy passed on to a new editor is for that editor's window it came with and
    later ones (udfs.decisions.routed_payload)."""

    window_size_ms: int
    grace_ms: int
    lookback_ms: int

    def _open_held(self, runtime_context: RuntimeContext, name: str) -> None:
        self.held = runtime_context.get_state(ValueStateDescriptor(name, Types.STRING()))

    def _held_events(self, watermark_ms: int, added: list | None = None) -> list:
        """The events held at ``watermark_ms`` (with ``added``, the events input's first six fields), the
        state written back when that changed it."""
        stored = self.held.value()
        before = json.loads(stored) if stored else []
        kept = kept_since(before + ([added] if added else []),
                          cause_horizon(watermark_ms, self.window_size_ms, self.grace_ms, self.lookback_ms))
        if kept != before:
            if kept:
                self.held.update(json.dumps(kept))
            else:
                self.held.clear()
        return kept

    def _leaves_at(self, timestamp_ms: int) -> int:
        """The first watermark at which a held event stamped ``timestamp_ms`` is behind the horizon."""
        return timestamp_ms + self.grace_ms + self.lookback_ms + self.window_size_ms + 1


def _add_routed(events: list[dict], copy: dict) -> bool:
    """Add a routed copy to an editor's events unless it holds the same one for the same windows or more
    (no ``from_window_end_ms``, or an earlier one); one for fewer windows is widened. Whether it changed.

    >>> e = {"event_type": "deployment", "timestamp_ms": 1, "editor_id": None}
    >>> held = [dict(e, from_window_end_ms=900)]
    >>> _add_routed(held, dict(e, from_window_end_ms=1200)), _add_routed(held, dict(e, from_window_end_ms=600)), held
    (False, True, [{'event_type': 'deployment', 'timestamp_ms': 1, 'editor_id': None, 'from_window_end_ms': 600}])
    >>> _add_routed(held, e), held
    (True, [{'event_type': 'deployment', 'timestamp_ms': 1, 'editor_id': None}])
    """
    same = {k: v for k, v in copy.items() if k != "from_window_end_ms"}
    for i, held in enumerate(events):
        if {k: v for k, v in held.items() if k != "from_window_end_ms"} == same:
            held_from, new_from = held.get("from_window_end_ms"), copy.get("from_window_end_ms")
            if held_from is None or (new_from is not None and new_from >= held_from):
                return False
            events[i] = copy
            return True
    events.append(copy)
    return True


class EditorCorrelator(_Counters, _IdleExpiry, KeyedCoProcessFunction):
    """Keyed by editor. A window with an anomalous metric waits for its event-time timer
    (module docstring); its scored results wait in ``pending_windows`` (window end -> JSON of the results
    and when the row arrived; a bare JSON list in states written before) and ``armed_windows``
    remembers that the window has a timer.

    A window with no anomalous metric is decided when its row arrives, unless an earlier
    window of the editor is still waiting: ``editor_window_composite`` would only clear the
    editor's unexplained-window mark for it, and nothing can be told apart by waiting. Most
    windows are normal, and each pending write, timer and read-back is a call into the JVM.

    Restores: PyFlink 2.2 registers a Python timer in Java through a separate mailbox
    action that a checkpoint does not wait for (connectors/flink_buffer.py), so a
    checkpoint can hold an armed window whose timer it lacks; restored from it, that
    window would never be classified. So the first row a key receives after ``open()``
    registers the timer of every window it has armed again (registering an existing
    (key, time) timer is a no-op; one overdue fires at the next watermark): once per key
    and process lifetime, not per row. What is armed is then known in memory, in
    ``_armed`` (key -> window ends), so later rows need no state lookup for it.
    """

    def __init__(self, window_size_s: int, grace_ms: int, lookback_s: int, scoring: WindowScoring,
                 classifier_properties: dict[str, str] | None = None, gc_threshold: int = 0):
        self.window_size_ms = window_size_s * 1000
        self.gc_threshold = gc_threshold    # udfs/python_gc.py (0: the interpreter's own)
        self.grace_ms = grace_ms
        self.lookback_ms = lookback_s * 1000
        self.scoring = scoring
        # flink_jobs/main.py has checked it exceeds the look-back, the grace and an episode's gap
        self.idle_retention_ms = scoring.idle_retention_ms
        # the job's classifier property group (flink_jobs/main.py has checked it); empty: the defaults
        self.classifier_properties = dict(classifier_properties or {})

    def open(self, runtime_context: RuntimeContext):
        set_young_threshold(self.gc_threshold)
        self.models = runtime_context.get_state(ValueStateDescriptor("models", MODELS_TYPE))
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("pending_windows", Types.LONG(), Types.STRING()))
        self.armed = runtime_context.get_map_state(
            MapStateDescriptor("armed_windows", Types.LONG(), Types.BOOLEAN()))
        self.events = runtime_context.get_state(ValueStateDescriptor("events", Types.STRING()))
        # End of the last window classified UNKNOWN (udfs.decisions.editor_window_composite).
        self.unexplained = runtime_context.get_state(ValueStateDescriptor("unexplained_window_end", Types.LONG()))
        # The editor's current episode of composites (udfs.decisions.composite_episode); read and
        # written only when a composite is emitted. A savepoint from before it restores without it.
        self.episode = runtime_context.get_state(ValueStateDescriptor("episode", Types.STRING()))
        tuned = ClassifierConfig.from_properties(self.classifier_properties) if self.classifier_properties \
            else ClassifierConfig()
        self.config = replace(tuned, window_seconds=self.window_size_ms / 1000.0,
                              event_lookback_s=self.lookback_ms / 1000.0)
        self._open_counters(runtime_context, "windowsClassified", "editorsExpired")
        self.composites = runtime_context.get_metrics_group().counter("compositeAnomalies")
        # In memory, so empty after every restore (the state stays the truth): key -> armed window
        # ends, once the key's first row has re-armed them; keys whose unexplained mark is known clear.
        self._armed: dict[str, set] = {}
        self._unexplained_clear: set = set()
        self._open_idle()

    def _armed_ends(self, key: str, ctx) -> set:
        ends = self._armed.get(key)
        if ends is None:
            ends = {int(end) for end in self.armed.keys()}
            for end in ends:
                ctx.timer_service().register_event_time_timer(end - 1 + self.grace_ms)
            self._armed[key] = ends
        return ends

    def process_element1(self, row, ctx):
        editor = row[0]
        end = int(ctx.timestamp()) + 1      # rowtime = window_time = window_end - 1 ms
        models, results = self.scoring.score_windows(self.models.value(), ("editor", editor), editor, None, end,
                                                     metric_windows(row, METRICS_AT))
        self.models.update(models)
        if not results:
            self._count_refired(editor, end)
            return
        self._keep_alive(editor, ctx, end)
        self._count_results(results)
        armed = self._armed_ends(editor, ctx)
        if not armed and not any(r["is_anomaly"] for r in results):
            # Decided now: what on_timer would do for it (editor_window_composite -> (None, None)).
            self._count("windowsClassified")
            self._set_unexplained(editor, None)
            return
        if end not in armed:
            self.armed.put(end, True)
            ctx.timer_service().register_event_time_timer(end - 1 + self.grace_ms)
            armed.add(end)
        self.pending.put(end, json.dumps({"arrived_ms": int(time.time() * 1000), "results": results}))

    def process_element2(self, row, ctx):
        stored = self.events.value()
        events = read_stored_events(stored)
        marker, from_window_end = read_routed_payload(row[6])
        event = {"event_type": row[0], "timestamp_ms": int(row[1]), "editor_id": None if marker else row[2],
                 "partner": row[3], "severity": row[4], "details": details_of(row[5])}
        if from_window_end is not None:
            event["from_window_end_ms"] = from_window_end      # for that window on (udfs.decisions.routed_payload)
        if marker and not _add_routed(events, event):
            # The same report or change passed on again (the editor came back to the partner or the
            # network after an idle retention: udfs/platform_events.py), or one sent twice in two
            # encodings that the duplicate marking told apart: one cause either way (the offline
            # replay's decide() keeps one copy too).
            return
        if not marker:
            events.append(event)
        # Keep what a window not decided yet can still name as a cause. Such a window's timer
        # (end - 1 + grace) is after the watermark, and it looks back from its start
        # (flink_jobs/evaluation/offline.py does the same). The horizon follows the watermark, not
        # the newest event: events are read as they come, while the metrics' windows wait for the
        # watermark, so in a replay or a catch-up the events run far ahead of the windows.
        horizon = cause_horizon(ctx.timer_service().current_watermark(), self.window_size_ms, self.grace_ms,
                                self.lookback_ms)
        kept = bounded_events([e for e in events if e["timestamp_ms"] >= horizon])
        if kept:
            self.events.update(json.dumps(kept))
        else:
            # Only events behind the horizon (one read late): an empty list would be state kept for
            # ever, as the idle check finds no event in it to expire by.
            self.events.clear()
        self._keep_alive_until_watermark(ctx.get_current_key(), ctx, max(e["timestamp_ms"] for e in events))

    def _set_unexplained(self, key: str, end: int | None) -> None:
        if end is None:
            if key not in self._unexplained_clear:
                # A LONG ValueState cannot hold None (PyFlink fails the job at the bundle's state
                # commit with "an integer is required"): no unexplained window is a cleared state.
                self.unexplained.clear()
                self._unexplained_clear.add(key)
        else:
            self.unexplained.update(end)
            self._unexplained_clear.discard(key)

    def on_timer(self, timestamp: int, ctx):
        key = ctx.get_current_key()
        end = int(timestamp) + 1 - self.grace_ms
        if key in self._armed:
            self._armed[key].discard(end)
        if not self.armed.contains(end):
            self._expire_idle(key, int(timestamp), ctx)     # not a window's timer: an idle check
            return
        self.armed.remove(end)
        stored = self.pending.get(end)
        self.pending.remove(end)
        pending = json.loads(stored) if stored else []
        # a list: written before the row's arrival was kept (the decision's time stands in for it)
        results, arrived_ms = (pending, None) if isinstance(pending, list) else (pending["results"],
                                                                                 pending["arrived_ms"])
        if not results:
            return
        self._count("windowsClassified")
        events = self.events.value() if any(r["is_anomaly"] for r in results) else None
        previous = None if key in self._unexplained_clear else self.unexplained.value()
        detail, unexplained = editor_window_composite(end, self.window_size_ms, results,
                                                      events_for_window(read_stored_events(events), end),
                                                      self.config, previous)
        if unexplained != previous:
            self._set_unexplained(key, unexplained)
        if detail is None:
            return
        detail, episode = composite_episode(detail, end, self.window_size_ms, self.episode.value())
        self.episode.update(episode)
        self.composites.inc()
        yield eventbridge_row(COMPOSITE[0], COMPOSITE[1], detail, arrived_ms)

    def _expire_idle(self, key: str, watermark_ms: int, ctx) -> None:
        """Drop the editor's series idle for the retention, and its events once the newest is that old;
        with nothing left, clear the editor's whole state.

        Nothing dropped can change a decision: a series' next window would start it again
        (udfs/metric_detector.is_idle), an event older than the retention is outside every later
        window's look-back, and the unexplained mark and the episode compare window ends that far apart.
        """
        self._expiry_fired(key, watermark_ms)
        if not self.idle_retention_ms:
            return
        stored = self.models.value()
        kept, due = self._prune(("editor", key), stored, watermark_ms)
        if not kept:
            if stored is not None:
                self.models.clear()
        elif kept != stored:
            self.models.update(kept)
        stored_events = self.events.value()
        newest = max((e["timestamp_ms"] for e in read_stored_events(stored_events)), default=None)
        if newest is not None and newest + self.idle_retention_ms <= watermark_ms:
            self.events.clear()
            newest = None
        if kept or newest is not None:
            # Each later check is due where something kept falls idle, so at the end of a bounded
            # input (a watermark at the end of time) the checks end with the key cleared.
            self._expire_at(key, ctx, min(d for d in (due, None if newest is None else
                                                      self._next_check_for_event(newest, watermark_ms))
                                          if d is not None))
            return
        # Nothing of the editor is left. A window still armed is at least a retention old: its timer
        # fired long ago, unless a restore lost it, and then only a row of this key would have re-armed it.
        # (Cleared unread: read through is_empty(), in a process-mode run of a bounded archive, the
        # armed map kept this check re-registering itself without end after every window was decided.)
        for state in (self.unexplained, self.episode, self.pending, self.armed, self.events):
            state.clear()
        self._armed.pop(key, None)
        self._unexplained_clear.discard(key)
        self._idle_due.pop(key, None)
        self._count("editorsExpired")


class PartnerHealth(_Counters, _IdleExpiry, HeldEvents, KeyedCoProcessFunction):
    """(iii) Per demand partner and window -> udfs.decisions.partner_window_check.

    Its input is one row per partner and window (sql/windows/partner_windows.sql) with the
    window of every editor reporting through the partner (a JSON array); each editor's metrics are scored
    against that editor's own series (state ``models``, one entry per editor), and the
    partner is judged at once: the row is the whole window. Emits a Partner Health Check
    when the partner is not HEALTHY, and once more when it recovers (so a consumer sees the
    all-clear); healthy steady state is silent (otherwise every partner would produce an
    event every window). Each editor the partner hurts in the window gets a finding on the
    side output ``PARTNER_FINDINGS`` (flink_jobs/main.py routes it to the editor operator).

    A partner-wide event (the second input: a status report, or a change made for the partner,
    udfs.decisions.PARTNER_WIDE_EVENT_TYPES) goes on the same side output to every editor the
    partner serves: those with a window through the partner less than the idle retention before
    (udfs.decisions.serves), whether or not the idle check has dropped the older ones yet. It is kept (``recent_reports``) while a window not
    decided yet can still name it, and an editor new to the partner in that time (its first window
    through the partner, or its first after an idle retention; in a replay, where the events are
    read ahead of the metrics, every editor of the partner's first window) gets it with that
    window's row, for that window and later ones (udfs.decisions.routed_payload), as
    udfs/platform_events.PlatformEvents passes platform-wide events to new editors. Kept reports leave
    at the partner's idle checks (with ``processing.state.idle.retention.s`` 0 there are none, and at
    most the newest 200 stay, udfs.decisions.kept_since).
    flink_jobs/evaluation/offline.routed_partner_events replays the same rule.
    """

    def __init__(self, window_size_s: int, scoring: WindowScoring, grace_ms: int, lookback_s: int,
                 gc_threshold: int = 0, rate_period_s: float = 60.0):
        self.window_size_ms = window_size_s * 1000
        # the period the revenue rates refer to: the classifier's (flink_jobs/main.scoring_operators)
        self.config = PartnerHealthConfig(rate_period_s=rate_period_s)
        self.gc_threshold = gc_threshold    # udfs/python_gc.py (0: the interpreter's own)
        self.scoring = scoring
        self.idle_retention_ms = scoring.idle_retention_ms
        self.grace_ms = grace_ms
        self.lookback_ms = lookback_s * 1000

    def open(self, runtime_context: RuntimeContext):
        set_young_threshold(self.gc_threshold)
        self.models = runtime_context.get_map_state(MapStateDescriptor("models", Types.STRING(), MODELS_TYPE))
        # partner_window_check's state: the last status, plus the hurt editors' held references (revenue, signals)
        # (the descriptor keeps its name so that savepoints taken before the references restore).
        self.last_status = runtime_context.get_state(ValueStateDescriptor("last_status", Types.STRING()))
        # Partner-wide events an editor new to the partner can still be told of (class docstring).
        self._open_held(runtime_context, "recent_reports")
        self._open_counters(runtime_context, "partnerChecks", "partnerEventsRouted")
        self._open_idle()
        # In memory: partner -> {editor: (the end of its window through the partner before, the end of its
        # first window after being new to the partner)}, while that window is open: a report that comes
        # meanwhile is for that window on, as a held one is, unless the window before is still less than a
        # retention behind the watermark (then the editor was served when the report came: any window).
        # Empty after a restore: a report then, before the watermark passes such a window, goes without it.
        self._first_windows: dict = {}

    def process_element1(self, row, ctx):
        partner = row[0]
        end = int(ctx.timestamp()) + 1
        editor_windows = sorted(json.loads(row[1]), key=lambda w: w[0])
        stored = {w[0]: self.models.get(w[0]) for w in editor_windows}
        # New to the partner: no series, or one idle for the retention, which this window starts again
        # (udfs/metric_detector.is_idle), whether or not the idle check has dropped it yet.
        new_editors = [editor for editor, models in stored.items()
                       if models is None or is_idle(last_window_end(models), end, self.idle_retention_ms)]
        if new_editors:
            watermark = ctx.timer_service().current_watermark()
            firsts = self._open_first_windows(partner, watermark)
            for editor in new_editors:
                firsts[editor] = (last_window_end(stored[editor]), end)
            for event in self._held_events(watermark):
                yield from self._route(event, dict.fromkeys(new_editors, end))
        if any(scored_since(models, end) for models in stored.values()):
            # Re-fired (udfs/metric_detector.py): the partner has decided this window. Its editors
            # new to it are not scored either: the decision is the partner's, made once.
            self.scoring.refired += 1
            self._count_refired(partner, end)
            return
        results = []
        for editor_window in editor_windows:
            editor = editor_window[0]
            models, scored = self.scoring.score_windows(stored[editor], ("partner", partner, editor),
                                                        partner, editor, end, metric_windows(editor_window, METRICS_AT))
            self.models.put(editor, models)
            results += scored
        if not results:
            return
        self._keep_alive(partner, ctx, end)
        self._count_results(results)
        previous = self.last_status.value()
        detail, state, findings = partner_window_check(end, self.window_size_ms, results, previous, self.config)
        if state != previous:
            self.last_status.update(state)
        for f in findings:
            yield PARTNER_FINDINGS, Row(f["event_type"], f["timestamp_ms"], f["editor_id"], f["partner"], None,
                                        json.dumps(f["details"], separators=(",", ":")), None)
        if detail is None:
            return
        self._count("partnerChecks")
        yield eventbridge_row(PARTNER_HEALTH[0], PARTNER_HEALTH[1], detail)

    def process_element2(self, row, ctx):
        """A partner-wide event: to the editors the partner serves now, and kept for those new to it."""
        event = [row[i] for i in range(6)]
        watermark = ctx.timer_service().current_watermark()
        firsts = self._open_first_windows(ctx.get_current_key(), watermark)
        # Served: a window through the partner in the retention before (one idle longer is dropped at the
        # next idle check; its next window starts it again, and it is told then, as a new editor).
        served = {}
        for editor, stored in sorted(self.models.items()):
            if serves(last_window_end(stored), watermark, self.idle_retention_ms):
                before, first = firsts.get(editor, (None, None))
                new = first is not None and (before is None
                                             or not serves(before, watermark, self.idle_retention_ms))
                served[editor] = first if new else None
        if served:
            yield from self._route(event, served)
        if event in self._held_events(watermark, event):
            # dropped at the idle checks once no window still to be decided can name it (_expire_idle)
            self._keep_alive_until_watermark(ctx.get_current_key(), ctx, event[1])

    def _open_first_windows(self, partner: str, watermark_ms: int) -> dict:
        """The partner's new editors whose first window is still open (editor -> (the window before, its
        end)); those closed are dropped, as a report is for every window of theirs from then on (so the
        table stays small)."""
        firsts = self._first_windows.setdefault(partner, {})
        for editor in [e for e, (_, end) in firsts.items() if end - 1 <= watermark_ms]:
            del firsts[editor]
        return firsts

    def _route(self, event: list, editors: dict):
        """Copies of ``event`` to ``editors``: editor -> the first window each copy is for (None: any)."""
        event_type, timestamp_ms, _, partner, severity, details = event
        for editor, from_window_end in editors.items():
            yield PARTNER_FINDINGS, Row(event_type, timestamp_ms, editor, partner, severity, details,
                                        routed_payload(ROUTED_PARTNER_EVENT, from_window_end))
        self._count("partnerEventsRouted", len(editors))

    def on_timer(self, timestamp: int, ctx):
        # A generator, as Flink's process mode (the Managed Flink template's) iterates what it returns.
        self._expire_idle(ctx.get_current_key(), int(timestamp), ctx)
        yield from ()

    def _expire_idle(self, partner: str, watermark_ms: int, ctx) -> None:
        """The partner's idle check: drop each editor's series idle for the retention, and an editor
        left with none. The partner's last status stays (one small value per partner), so a partner
        that comes back after an outage still gets its all-clear. The partner-wide events kept for
        editors new to the partner are dropped once no window still to be decided can name them."""
        self._expiry_fired(partner, watermark_ms)
        if not self.idle_retention_ms:
            return
        held = self._held_events(watermark_ms)
        dues = [min(self._leaves_at(min(e[1] for e in held)),
                    self._next_check_for_event(watermark_ms, watermark_ms))] if held else []
        for editor, stored in list(self.models.items()):
            kept, due = self._prune(("partner", partner, editor), stored, watermark_ms)
            if not kept:
                self.models.remove(editor)
                continue
            if kept != stored:
                self.models.put(editor, kept)
            dues.append(due)
        if dues:
            self._expire_at(partner, ctx, min(dues))
