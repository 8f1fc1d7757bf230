"""Platform-wide operational events: a change that names neither an editor nor a partner reaches every editor.

A deployment of the ad server, a config change of the auction or a feature flag flipped for the
whole network is sent without ``editor_id`` (the events contract makes it optional) and applies to
every editor. The editor operator (udfs/correlator.EditorCorrelator) is keyed by ``editor_id``, so
such an event cannot reach it directly, and until 2026-12-07 it reached no composite. Which events
count: :func:`udfs.decisions.is_platform_wide` (the change types; a finding naming nobody is
forwarded as a security incident only).

``PlatformEvents`` is keyed by one constant key (:data:`PLATFORM_KEY`), with two inputs (a
KeyedCoProcessFunction):
  1. the editor windows' rows (sql/windows/editor_windows.sql, as the editor operator gets them):
     only the editor and the window end are read, to know which editors the network has
     (state ``editors``: editor -> the end of the latest window seen of it, ms);
  2. the platform-wide events.
An event goes, as a row of the editor operator's events input, to every editor it serves when it
arrives (a window less than the idle retention before, udfs.decisions.serves), and is kept (state ``recent_events``) while a window not decided yet can still name it
(udfs.decisions.cause_horizon); an editor first seen in that time (a new editor, or in a replay,
where the events are read far ahead of the metrics' windows, one whose first window closes after the
event was read) gets the kept events with its window's row. Both go out before the watermark that
closes the window they concern (the row precedes that watermark on the first input, the event on
the second), so they are in the editor's state when the window's timer fires, as the partner
operator's findings are; a copy sent with a new editor's row is for that window and later ones
(udfs.decisions.routed_payload). The editor keeps each copy as it was sent, without an editor: a suspected
cause of its composites and the classifier's corroboration (a deployment for a LATENCY_ISSUE), as
its own events are.

One key means one subtask does this work, and the editor operator's decisions wait for its
watermark: every editor window row crosses into Python here too (its key selector and this
operator), one row per editor and window (200 per 30,000 records in the benchmark's traffic,
flink_jobs/bench/README.md), and one per platform event.

Idle editors (``processing.state.idle.retention.s``): an editor whose last window is a retention
old leaves ``editors`` at the next check (an event-time timer), and a kept event leaves once no window
still to be decided can name it. The checks are due where the next of those goes, so one key's timer
serves both (not udfs.correlator._IdleExpiry's rule, which lets a later check stand for an earlier
one: an event read far ahead of the windows would hold every idle editor until its own time). An
editor idle for the retention is not served, and is new again at its next window whether or not the
check has dropped it yet; if an event it was sent is still kept then, it is sent the event again, and
the editor operator keeps the copy for the most windows (udfs.correlator._add_routed).

flink_jobs/evaluation/offline.routed_platform_events replays the same rule.
"""
from __future__ import annotations

from pyflink.common import Row, Types
from pyflink.datastream import KeyedCoProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from udfs.correlator import HeldEvents
from udfs.decisions import ROUTED_PLATFORM_EVENT, routed_payload, serves
from udfs.metric_detector import is_idle

#: The one key of the operator (flink_jobs/main.py keys both inputs by it).
PLATFORM_KEY = "platform"


class PlatformEvents(HeldEvents, KeyedCoProcessFunction):
    """Passes each platform-wide event to every editor (module docstring). Keyed by :data:`PLATFORM_KEY`."""

    def __init__(self, window_size_s: int, grace_ms: int, lookback_s: int, idle_retention_ms: int = 0):
        self.window_size_ms = window_size_s * 1000
        self.grace_ms = grace_ms
        self.lookback_ms = lookback_s * 1000
        self.idle_retention_ms = idle_retention_ms

    def open(self, runtime_context: RuntimeContext):
        self.editors = runtime_context.get_map_state(MapStateDescriptor("editors", Types.STRING(), Types.LONG()))
        self._open_held(runtime_context, "recent_events")
        group = runtime_context.get_metrics_group()
        self.routed_counter = group.counter("platformEventsRouted")
        self.expired_counter = group.counter("platformEditorsExpired")
        # The earliest check registered (in memory: after a restore, the next row or event registers one).
        self._check_due: int | None = None

    def process_element1(self, row, ctx):
        editor = row[0]
        end = int(ctx.timestamp()) + 1        # rowtime = window_time = window end - 1 ms
        last = self.editors.get(editor)
        # new: never seen, or idle for the retention (whether or not the idle check has dropped it yet)
        if last is None or is_idle(last, end, self.idle_retention_ms):
            yield from self._route(self._held_events(ctx.timer_service().current_watermark()), [editor],
                                   from_window_end=end)
        if last is None or end > last:      # a window fired again after a restore is older: not the latest
            self.editors.put(editor, end)
            if self.idle_retention_ms:
                self._check_by(ctx, end + self.idle_retention_ms)

    def process_element2(self, row, ctx):
        event = [row[i] for i in range(6)]
        watermark = ctx.timer_service().current_watermark()
        yield from self._route([event], sorted(editor for editor, last in self.editors.items()
                                               if serves(last, watermark, self.idle_retention_ms)))
        if event in self._held_events(watermark, event):
            self._check_by(ctx, self._leaves_at(event[1]))

    def _check_by(self, ctx, due_ms: int) -> None:
        """A check at ``due_ms`` unless one is due before it (the one due later then still fires, and finds
        what is left)."""
        if self._check_due is None or self._check_due > due_ms:
            ctx.timer_service().register_event_time_timer(due_ms)
            self._check_due = due_ms

    def _route(self, events: list, editors: list[str], from_window_end: int | None = None):
        payload = routed_payload(ROUTED_PLATFORM_EVENT, from_window_end)
        for event_type, timestamp_ms, _, partner, severity, details in events:
            for editor in editors:
                yield Row(event_type, timestamp_ms, editor, partner, severity, details, payload)
        if events and editors:
            self.routed_counter.inc(len(events) * len(editors))

    def on_timer(self, timestamp: int, ctx):
        """The idle check: editors whose last window is a retention old leave, and so do kept events no
        window still to be decided can name; the next check is due where the next of those kept goes."""
        watermark_ms = int(timestamp)
        if self._check_due is not None and self._check_due <= watermark_ms:
            self._check_due = None
        dues = []
        if self.idle_retention_ms:
            expired = 0
            for editor, last_end in list(self.editors.items()):
                if not serves(last_end, watermark_ms, self.idle_retention_ms):
                    self.editors.remove(editor)
                    expired += 1
                else:
                    dues.append(last_end + self.idle_retention_ms)
            if expired:
                self.expired_counter.inc(expired)
        dues += [self._leaves_at(e[1]) for e in self._held_events(watermark_ms)]
        if dues:
            self._check_by(ctx, min(dues))
        # A generator, as Flink's process mode (the Managed Flink template's) iterates what it returns.
        yield from ()
