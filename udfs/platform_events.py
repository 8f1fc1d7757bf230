"""Platform-wide operational events: a change that names neither an editor nor a partner reaches every editor.

A deployment of the ad server, a config change of the auction or a feature flag flipped for the
whole network is sent without ``editor_id`` (the events contract makes it optional) and applies to
every editor. The editor operator (udfs/correlator.EditorCorrelator) is keyed by ``editor_id``, so
such an event cannot reach it directly, and until 2026-12-07 it reached no composite.

``PlatformEvents`` is keyed by one constant key (:data:`PLATFORM_KEY`), with two inputs (a
KeyedCoProcessFunction):
  1. the editor windows' rows (sql/windows/editor_windows.sql, as the editor operator gets them):
     only the editor and the window end are read, to know which editors the network has
     (state ``editors``: editor -> the end of its last window, ms);
  2. the platform-wide events (:func:`udfs.decisions.is_platform_wide`).
An event goes, as a row of the editor operator's events input, to every editor known when it
arrives, and is kept (state ``recent_events``) while a window not decided yet can still name it; an
editor first seen in that time (a new editor, or in a replay, where the events are read far ahead of
the metrics' windows, one whose first window closes after the event was read) gets the kept events
with its window's row. Both go out before the watermark that closes the window they concern
(the row precedes that watermark on the first input, the event on the second), so they are in the
editor's state when the window's timer fires, as the partner operator's findings are. The editor
keeps each copy as it was sent, without an editor: a suspected cause of its composites and the
classifier's corroboration (a deployment for a LATENCY_ISSUE), as its own events are.

One key means one subtask does this work. It is one small row per editor and window (200 per five
minutes in the benchmark's traffic, against 30,000 records) and one row per platform event.

Idle editors (``processing.state.idle.retention.s``): an editor whose last window is a retention
old leaves ``editors`` (its series left the editor operator at the same age); if it comes back it
is new, and gets the kept events again (the editor operator ignores a copy it holds already).

flink_jobs/evaluation/offline.routed_platform_events replays the same rule.
"""
from __future__ import annotations

import json

from pyflink.common import Row, Types
from pyflink.datastream import KeyedCoProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

#: The one key of the operator (flink_jobs/main.py keys both inputs by it).
PLATFORM_KEY = "platform"

#: The ``payload`` of a platform-wide event as routed to one editor (as udfs.correlator.ROUTED_PARTNER_EVENT:
#: the copy's ``editor_id`` is only its key; the editor operator stores it without an editor).
ROUTED_PLATFORM_EVENT = "routed-platform-event"

#: At most this many platform-wide events are kept for editors not seen yet (the newest).
MAX_KEPT_PLATFORM_EVENTS = 200


def kept_since(events: list, horizon_ms: int) -> list:
    """The kept events (lists of the events input's first six fields) stamped at or after ``horizon_ms``,
    the newest :data:`MAX_KEPT_PLATFORM_EVENTS`.

    >>> kept_since([["deployment", 1000, None, None, None, "{}"], ["feature_flag", 3000, None, None, None, "{}"]], 2000)
    [['feature_flag', 3000, None, None, None, '{}']]
    """
    return [e for e in events if e[1] >= horizon_ms][-MAX_KEPT_PLATFORM_EVENTS:]


class PlatformEvents(KeyedCoProcessFunction):
    """Passes each platform-wide event to every editor (module docstring). Keyed by :data:`PLATFORM_KEY`."""

    def __init__(self, window_size_s: int, grace_ms: int, lookback_s: int, idle_retention_ms: int = 0):
        self.window_size_ms = window_size_s * 1000
        self.grace_ms = grace_ms
        self.lookback_ms = lookback_s * 1000
        self.idle_retention_ms = idle_retention_ms

    def open(self, runtime_context: RuntimeContext):
        self.editors = runtime_context.get_map_state(MapStateDescriptor("editors", Types.STRING(), Types.LONG()))
        self.recent = runtime_context.get_state(ValueStateDescriptor("recent_events", Types.STRING()))
        group = runtime_context.get_metrics_group()
        self.routed_counter = group.counter("platformEventsRouted")
        self.expired_counter = group.counter("platformEditorsExpired")
        # The latest idle check registered (in memory: after a restore, the next row registers one again).
        self._idle_due: int | None = None

    def _horizon(self, watermark_ms: int) -> int:
        # What a window not decided yet can still name: its timer (end - 1 + grace) is after the
        # watermark, and it looks back from its start (the editor operator keeps its events the same way).
        return watermark_ms - self.grace_ms - self.lookback_ms - self.window_size_ms

    def process_element1(self, row, ctx):
        editor = row[0]
        end = int(ctx.timestamp()) + 1        # rowtime = window_time = window end - 1 ms
        if not self.editors.contains(editor):
            held = self.recent.value()
            if held:
                yield from self._route(kept_since(json.loads(held), self._horizon(
                    ctx.timer_service().current_watermark())), [editor])
        self.editors.put(editor, end)
        self._keep_alive(ctx, end)

    def process_element2(self, row, ctx):
        event = [row[i] for i in range(6)]
        yield from self._route([event], sorted(self.editors.keys()))
        held = self.recent.value()
        kept = kept_since((json.loads(held) if held else []) + [event],
                          self._horizon(ctx.timer_service().current_watermark()))
        if kept:
            self.recent.update(json.dumps(kept))
            self._keep_alive(ctx, max(e[1] for e in kept))
        elif held:
            self.recent.clear()

    def _route(self, events: list, editors: list[str]):
        for event_type, timestamp_ms, _, partner, severity, details in events:
            for editor in editors:
                yield Row(event_type, timestamp_ms, editor, partner, severity, details, ROUTED_PLATFORM_EVENT)
        if events and editors:
            self.routed_counter.inc(len(events) * len(editors))

    def _keep_alive(self, ctx, activity_ms: int) -> None:
        """An idle check a retention after the latest activity, unless one is due at or after half of it."""
        if self.idle_retention_ms and (self._idle_due is None
                                       or self._idle_due < activity_ms + self.idle_retention_ms // 2):
            self._check_at(ctx, activity_ms + self.idle_retention_ms)

    def _check_at(self, ctx, due_ms: int) -> None:
        if self._idle_due is None or self._idle_due < due_ms:
            ctx.timer_service().register_event_time_timer(due_ms)
            self._idle_due = due_ms

    def on_timer(self, timestamp: int, ctx):
        """The idle check: editors whose last window is a retention old leave; so do kept events a
        retention old (older than any window not decided yet could name)."""
        watermark_ms = int(timestamp)
        if self._idle_due == watermark_ms:
            self._idle_due = None
        dues = []
        expired = 0
        for editor, last_end in list(self.editors.items()):
            if last_end + self.idle_retention_ms <= watermark_ms:
                self.editors.remove(editor)
                expired += 1
            else:
                dues.append(last_end + self.idle_retention_ms)
        if expired:
            self.expired_counter.inc(expired)
        held = self.recent.value()
        if held:
            kept = kept_since(json.loads(held), self._horizon(watermark_ms))
            if not kept:
                self.recent.clear()
            else:
                if len(kept) != len(json.loads(held)):
                    self.recent.update(json.dumps(kept))
                dues.append(max(e[1] for e in kept) + self.idle_retention_ms)
        if dues:
            self._check_at(ctx, min(dues))
        # A generator, as Flink's process mode (the Managed Flink template's) iterates what it returns.
        yield from ()
