"""Score emitted alerts against labeled incidents (pure Python: no Flink, no AWS).

Matching rule
-------------
- **Alerts** are the events the job put on the bus: every *Composite Anomaly
  Detected* (scope: its editor, type: its ``problem_type``), every *Partner
  Health Check* whose ``partner_status`` is DEGRADED or UNHEALTHY (scope: the
  partner, type DEMAND_ISSUE; HEALTHY checks are not alerts), and every
  *Security Incident Detected* (scope: its editor and/or partner, type
  SECURITY_ISSUE, window: the finding's time). Duplicates (same id, as
  at-least-once delivery may produce) count once.
- An alert **matches** an incident when it is about the same editor -- or, for
  a partner incident, about the same partner or any affected editor -- and its
  window ``[window_start, window_end)`` overlaps ``[incident start, incident end
  + one window)`` (the grace window lets the window that closes just after the
  incident count: windows are only emitted once they end; the window after that
  one, starting at ``end + one window``, does not). A zero-length alert (a
  security finding) matches when its instant falls in that same half-open span.
- **One alert, one incident**: an alert that matches several incidents (back-to-
  back incidents on one editor, an editor incident during a partner outage that
  hurts that editor) is credited to one of them only: the one whose type it
  names, then the one whose labeled span ``[start, end]`` its window overlaps
  most, then the one whose span plus grace window it overlaps most, then the
  earliest (then the lowest id). Otherwise one alert would detect two incidents
  and recall would count a detection twice.
- An incident is **detected** by a credited alert whose window holds incident
  data: a sample of the alert's editor (partner, for a partner check) timed in
  ``[incident start, end + one window)`` that the job windowed (not dead-lettered,
  not late: the caller leaves those out of ``samples``); a zero-length security
  finding, by its instant falling in that span. A credited alert without such a sample (a
  window ending 3 s after the start, all its samples from before) is not a
  false alarm -- its window overlaps the incident -- but it neither detects the
  incident nor votes on its type. The samples come from the archive
  (``samples``); without them every credited alert counts, and the report says
  so (``time_to_detect.detection``).
- **Time-to-detect** (event time): the earliest detecting alert's
  ``window_end`` minus the incident start (seconds, and in windows). It leaves
  out the job's watermark delay and the bus latency, which a live run measures
  as the job's lag. The **predicted type** is the most frequent type among the
  detecting alerts (UNKNOWN only counts when no alert named a type; ties go to
  the type of the earliest alert).
- Alerts credited to no incident are **false alarms**. Consecutive false alarms
  on the same editor (or partner) whose windows follow each other with no gap
  of more than one window form one false-alarm **episode**: event-level
  precision counts episodes, like recall counts incidents.

Warm-up: optionally, unmatched alerts in the first hours (before
``warmup_end_s``, while the models still learn each editor) are reported apart
and left out of precision; the figures including them are reported too.

Figures: precision = detected / (detected + false-alarm episodes), recall =
detected / incidents, F1; type accuracy = correctly typed / detected;
time-to-detect distribution; false-alarm episodes (and alerts) per editor-day;
``matched_alerts`` = alerts credited to an incident, ``alert_precision`` =
matched_alerts / all alerts (warm-up ones included: they matched nothing either).

Labels are validated as they are read (:func:`load_labels`): a mistake there would
otherwise turn into wrong figures, not an error.
"""
from __future__ import annotations

import bisect
import json
import math
import statistics
from array import array
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from detectors.classifier import PROBLEM_TYPES as CLASSIFIER_PROBLEM_TYPES

COMPOSITE = ("adops.analytics", "Composite Anomaly Detected")
PARTNER_HEALTH = ("adops.monitoring", "Partner Health Check")
SECURITY = ("adops.security", "Security Incident Detected")
ALERTING_PARTNER_STATUSES = ("DEGRADED", "UNHEALTHY")
UNKNOWN = "UNKNOWN"
MISSED = "MISSED"


def parse_time(value: Any) -> float:
    """ISO-8601 (with zone) or epoch milliseconds -> epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0
    text = str(value).strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: The types a label may name: the classifier's, less UNKNOWN (what it says when it cannot tell;
#: a label is the truth and names the type).
LABEL_PROBLEM_TYPES = tuple(t for t in CLASSIFIER_PROBLEM_TYPES if t != UNKNOWN)
#: Label times given as numbers are epoch milliseconds. Outside these bounds (2000-01-01,
#: 2100-01-01) a number is not a plausible time in ms: epoch seconds (1793620800 read as ms is
#: 1970-01-21) or microseconds; refused instead of scoring against the wrong day.
PLAUSIBLE_MS = (946_684_800_000, 4_102_444_800_000)


def label_time(value: Any, field_name: str) -> float:
    """A label's ``start``/``end``: ISO-8601 or epoch milliseconds -> epoch seconds, checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{field_name} must be an ISO-8601 time or epoch milliseconds, not {value!r}")
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            raise ValueError(f"{field_name} {value!r} is not an ISO-8601 time "
                             "(e.g. 2026-11-02T12:00:00Z) or a number of epoch milliseconds") from None
    if not (math.isfinite(value) and PLAUSIBLE_MS[0] <= value < PLAUSIBLE_MS[1]):
        hint = (" (it looks like epoch seconds: times given as numbers are epoch milliseconds)"
                if math.isfinite(value) and PLAUSIBLE_MS[0] / 1000 <= value < PLAUSIBLE_MS[1] / 1000 else "")
        raise ValueError(f"{field_name} {value!r} is not a plausible time in epoch milliseconds "
                         f"(2000-2099){hint}")
    return parse_time(value)


def _text(label: dict, key: str, iid: str) -> str:
    value = label.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"label {iid}: {key} must be a non-empty string, not {value!r}")
    return value


@dataclass(frozen=True)
class Incident:
    incident_id: str
    scope: str                       # editor | partner
    problem_type: str
    start_s: float
    end_s: float
    editor_id: str | None = None
    partner: str | None = None
    editors: tuple[str, ...] = ()

    @classmethod
    def from_label(cls, label: Any) -> "Incident":
        if not isinstance(label, dict):
            raise ValueError(f"a label must be a JSON object, not {type(label).__name__} {label!r:.60}")
        missing = [k for k in ("incident_id", "scope", "problem_type", "start", "end") if k not in label]
        if missing:
            raise ValueError(f"label {label.get('incident_id', '?')}: missing {', '.join(missing)}")
        raw_id = label["incident_id"]
        # A number is a valid id (the report and outcomes use its text); anything else is a mistake.
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
            raise ValueError(f"incident_id must be a non-empty string or an integer, not {raw_id!r}")
        iid = str(raw_id)
        scope = label["scope"]
        if scope not in ("editor", "partner"):
            raise ValueError(f"label {iid}: scope must be editor or partner, not {scope!r}")
        problem_type = label["problem_type"]
        if problem_type not in LABEL_PROBLEM_TYPES:
            raise ValueError(f"label {iid}: problem_type must be one of {', '.join(LABEL_PROBLEM_TYPES)}, "
                             f"not {problem_type!r}")
        editor_id = partner = None
        editors: tuple[str, ...] = ()
        if scope == "editor":
            if not label.get("editor_id"):
                raise ValueError(f"label {iid}: an editor incident needs editor_id")
            editor_id = _text(label, "editor_id", iid)
            # Ignored by the matching: present, it says the labeler meant a partner incident.
            for key in ("partner", "editors"):
                if label.get(key):
                    raise ValueError(f"label {iid}: an editor incident has no {key} (a partner incident "
                                     "has scope partner)")
        else:
            if not label.get("partner"):
                raise ValueError(f"label {iid}: a partner incident needs partner")
            partner = _text(label, "partner", iid)
            if label.get("editor_id"):
                raise ValueError(f"label {iid}: a partner incident names the editors it hurts in editors "
                                 "(a list), not editor_id")
            listed = label.get("editors")
            if listed is not None:
                if not isinstance(listed, list) or not all(isinstance(e, str) and e.strip() for e in listed):
                    raise ValueError(f"label {iid}: editors must be a list of editor ids (strings), "
                                     f"not {listed!r}")
                editors = tuple(listed)
        start, end = label_time(label["start"], "start"), label_time(label["end"], "end")
        if end < start:
            raise ValueError(f"label {iid}: end before start")
        return cls(iid, scope, problem_type, start, end, editor_id, partner, editors)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str                        # composite | partner_health | security
    problem_type: str
    window_start_s: float
    window_end_s: float
    editor_id: str | None = None
    partner: str | None = None
    severity: str | None = None

    @property
    def entity(self) -> str:
        return f"editor:{self.editor_id}" if self.editor_id else f"partner:{self.partner}"


def load_labels(path: str | Path) -> list[Incident]:
    """The incidents of a labels file (JSON lines); any mistake is a ValueError naming ``file:line``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the labels ({exc})") from None
    incidents = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                label = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"not valid JSON ({exc})") from None
            incident = Incident.from_label(label)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from exc
        if incident.incident_id in first_line:
            # Two labels with one id would be two incidents in recall but one row in the report.
            raise ValueError(f"{path}:{n}: incident_id {incident.incident_id!r} is already used on line "
                             f"{first_line[incident.incident_id]}")
        first_line[incident.incident_id] = n
        incidents.append(incident)
    if not incidents:
        # Nothing to score against: every figure would be None, which reads like a result.
        raise ValueError(f"{path}: no labeled incident (the file is empty)")
    return incidents


def alert_from_event(event: dict) -> Alert | None:
    """An EventBridge event as delivered to a target (``source``, ``detail-type``, ``detail``) -> Alert or None."""
    kind = (event.get("source"), event.get("detail-type"))
    detail = event.get("detail") or {}
    if isinstance(detail, str):
        detail = json.loads(detail)
    if kind == COMPOSITE:
        return Alert(str(detail["incident_id"]), "composite", str(detail.get("problem_type") or UNKNOWN),
                     parse_time(detail["window_start"]), parse_time(detail["window_end"]),
                     editor_id=detail.get("editor_id"), severity=detail.get("severity"))
    if kind == PARTNER_HEALTH:
        if detail.get("partner_status") not in ALERTING_PARTNER_STATUSES:
            return None
        return Alert(str(detail["check_id"]), "partner_health", "DEMAND_ISSUE",
                     parse_time(detail["window_start"]), parse_time(detail["window_end"]),
                     partner=detail.get("partner"), severity=detail.get("partner_status"))
    if kind == SECURITY:
        at = parse_time(detail["detected_at"])
        return Alert(str(detail["finding_id"]), "security", "SECURITY_ISSUE", at, at,
                     editor_id=detail.get("editor_id"), partner=detail.get("partner"),
                     severity=str(detail.get("severity")))
    return None


def alerts_from_events(events: Iterable[dict]) -> list[Alert]:
    """Alerts of the delivered events, each id once (the first delivery wins)."""
    seen: dict[str, Alert] = {}
    for event in events:
        alert = alert_from_event(event)
        if alert is not None and alert.alert_id not in seen:
            seen[alert.alert_id] = alert
    return sorted(seen.values(), key=lambda a: (a.window_end_s, a.window_start_s, a.alert_id))


def sample_key(record: Any) -> tuple[str, str | None] | None:
    """``(editor, partner)`` of a metric record whose sample the job can window, by the checks the
    evaluation repeats (``sql/parse/metrics.sql``: ``editor_id`` a non-empty string, ``metric`` a
    string, ``value`` a finite number, ``partner`` absent, null or a non-empty string); None for
    one it dead-letters. What it cannot repeat (an unknown metric, a value out of range, a late
    record) is read back from the job's outputs where there are some.

    >>> sample_key({"editor_id": "e-1", "metric": "rpm", "value": 2.5}), sample_key({"editor_id": "e-1", "metric": "bid_rate", "value": 1, "partner": "p"})
    (('e-1', None), ('e-1', 'p'))
    >>> [sample_key(r) for r in ({"editor_id": "", "metric": "rpm", "value": 1}, {"metric": "rpm", "value": 1, "partner": "p"},
    ...                          {"editor_id": "e-1", "metric": "rpm", "value": "1"}, {"editor_id": "e-1", "metric": "rpm", "value": float("nan")},
    ...                          {"editor_id": "e-1", "metric": "rpm", "value": 1, "partner": ""}, {"editor_id": "e-1", "value": 1})]
    [None, None, None, None, None, None]
    """
    if not isinstance(record, dict):
        return None
    editor, metric, value, partner = (record.get("editor_id"), record.get("metric"), record.get("value"),
                                      record.get("partner"))
    if not (isinstance(editor, str) and editor and isinstance(metric, str)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if partner is not None and not (isinstance(partner, str) and partner):
        return None
    return editor, partner


class SampleTimes:
    """Every metric sample's time (epoch s) per alert entity (``editor:ID``, ``partner:NAME``): what
    :func:`detects` looks for in an alert's window. Packed doubles (8 bytes a sample), so a real day
    of millions of records stays small.

    >>> times = SampleTimes()
    >>> times.add("e-1", "p-1", 20.0); times.add("e-1", None, 10.0); times.add(None, "", 5.0)
    >>> times.sorted()
    {'editor:e-1': [10.0, 20.0], 'partner:p-1': [20.0]}
    """

    def __init__(self) -> None:
        self._times: dict[str, array] = {}
        # Entities whose times are in order: sorted once, at their first discard, so that each
        # discard is a binary search (a day's late letters against its samples, not their product).
        self._in_order: set[str] = set()

    @staticmethod
    def _entities(editor: Any, partner: Any) -> list[str]:
        return [f"{kind}:{name}" for kind, name in (("editor", editor), ("partner", partner))
                if isinstance(name, str) and name]

    def add(self, editor: Any, partner: Any, at_s: float) -> None:
        for entity in self._entities(editor, partner):
            times = self._times.setdefault(entity, array("d"))
            if entity in self._in_order and times and at_s < times[-1]:
                self._in_order.discard(entity)
            times.append(at_s)

    def discard(self, editor: Any, partner: Any, at_s: float) -> bool:
        """Take back one sample :meth:`add` recorded (one the job did not window: dead-lettered or
        late); False when there was none to take back.

        >>> times = SampleTimes()
        >>> times.add("e-1", "p-1", 20.0); times.add("e-1", None, 10.0)
        >>> times.discard("e-1", "p-1", 20.0), times.discard("e-1", None, 20.0), times.discard("e-2", None, 10.0)
        (True, False, False)
        >>> times.add("e-1", None, 5.0); times.sorted()
        {'editor:e-1': [5.0, 10.0], 'partner:p-1': []}
        """
        found = False
        for entity in self._entities(editor, partner):
            times = self._times.get(entity)
            if times is None:
                continue
            if entity not in self._in_order:
                times[:] = array("d", sorted(times))
                self._in_order.add(entity)
            i = bisect.bisect_left(times, at_s)
            if i < len(times) and times[i] == at_s:
                del times[i]
                found = True
        return found

    def editor_span(self) -> tuple[set[str], float, float] | None:
        """(the editors with a sample, the first and the last of their samples' times, s); None when
        there is none. What is left after :meth:`discard`, so a record the job dead-lettered or
        dropped as late (a 1970 time read from epoch seconds) does not stretch the span.

        >>> times = SampleTimes()
        >>> times.add("e-1", "p-1", 20.0); times.add("e-2", None, 10.0); times.add("e-2", None, 5.0)
        >>> times.discard("e-2", None, 5.0)
        True
        >>> editors, first, last = times.editor_span()
        >>> sorted(editors), first, last
        (['e-1', 'e-2'], 10.0, 20.0)
        """
        spans = {entity[len("editor:"):]: (min(times), max(times)) for entity, times in self._times.items()
                 if entity.startswith("editor:") and times}
        if not spans:
            return None
        return set(spans), min(first for first, _ in spans.values()), max(last for _, last in spans.values())

    def sorted(self) -> dict[str, list[float]] | None:
        """The ``samples`` argument of :func:`score`; None when no sample was seen."""
        return {entity: sorted(times) for entity, times in self._times.items()} if self._times else None


def matches(alert: Alert, incident: Incident, window_s: float) -> bool:
    """Same scope and the alert's window overlaps [start, end + one window) (the candidates; see credit)."""
    if not (alert.window_start_s < incident.end_s + window_s and alert.window_end_s > incident.start_s):
        # A zero-length alert (a security finding) overlaps when its instant falls in the span.
        if not (alert.window_start_s == alert.window_end_s
                and incident.start_s <= alert.window_start_s < incident.end_s + window_s):
            return False
    if incident.scope == "editor":
        return alert.editor_id is not None and alert.editor_id == incident.editor_id
    return ((alert.partner is not None and alert.partner == incident.partner)
            or (alert.editor_id is not None and alert.editor_id in incident.editors))


def _overlap(alert: Alert, start_s: float, end_s: float) -> float:
    return max(0.0, min(alert.window_end_s, end_s) - max(alert.window_start_s, start_s))


def credit(alert: Alert, candidates: list[Incident], window_s: float) -> Incident | None:
    """The one incident ``alert`` is credited to among those it matches (module docstring)."""
    if not candidates:
        return None
    return min(candidates, key=lambda i: (
        alert.problem_type != i.problem_type,
        -_overlap(alert, i.start_s, i.end_s),
        -_overlap(alert, i.start_s, i.end_s + window_s),
        i.start_s, i.incident_id))


def detects(alert: Alert, incident: Incident, window_s: float,
            samples: Mapping[str, Sequence[float]] | None = None) -> bool:
    """A credited alert detects the incident when its window holds incident data (module docstring).

    ``samples``: sorted sample times (epoch s) per alert entity (``editor:ID``, ``partner:NAME``).
    """
    end = incident.end_s + window_s
    if alert.window_start_s == alert.window_end_s:
        return incident.start_s <= alert.window_start_s < end
    low, high = max(alert.window_start_s, incident.start_s), min(alert.window_end_s, end)
    if high <= low:
        return False
    if samples is None:
        return True
    # The first window holding a sample of the incident: an overlap of a few seconds (sim-7-007
    # of a make run: a window ending 3 s after the start) holds none at a 150-270 s cadence.
    times = samples.get(alert.entity, ())
    i = bisect.bisect_left(times, low)
    return i < len(times) and times[i] < high


@dataclass
class IncidentOutcome:
    incident_id: str
    problem_type: str
    scope: str
    start: str
    end: str
    entity: str
    detected: bool
    predicted_type: str
    matched_alerts: int              # credited to this incident (not false alarms)
    detecting_alerts: int            # of those, the ones whose window holds incident data
    time_to_detect_s: float | None
    time_to_detect_windows: float | None
    first_alert: str | None


def _predicted_type(alerts: list[Alert]) -> str:
    votes = Counter(a.problem_type for a in alerts if a.problem_type != UNKNOWN)
    if not votes:
        return UNKNOWN
    best = max(votes.values())
    for alert in alerts:      # earliest first
        if votes.get(alert.problem_type) == best:
            return alert.problem_type
    return UNKNOWN


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _episode_rows(episodes: list[list[Alert]]) -> list[dict]:
    """An episode as the report lists it: its first alert, how many alerts, and when it ended."""
    return [dict(asdict(e[0]), episode_alerts=len(e), episode_end=iso(max(a.window_end_s for a in e)))
            for e in episodes]


def _episodes(alerts: list[Alert], window_s: float) -> list[list[Alert]]:
    by_entity: dict[str, list[Alert]] = defaultdict(list)
    for alert in alerts:
        by_entity[alert.entity].append(alert)
    episodes = []
    for entity in sorted(by_entity):
        current: list[Alert] = []
        current_end = -math.inf
        for alert in sorted(by_entity[entity], key=lambda a: (a.window_start_s, a.window_end_s)):
            if current and alert.window_start_s > current_end + window_s:
                episodes.append(current)
                current = []
            current.append(alert)
            current_end = max(current_end, alert.window_end_s) if len(current) > 1 else alert.window_end_s
        if current:
            episodes.append(current)
    return episodes


def score(incidents: list[Incident], alerts: list[Alert], *, window_s: float = 300.0,
          editor_days: float | None = None, quiet_spans: dict[str, list[tuple[float, float]]] | None = None,
          warmup_end_s: float | None = None, editor_days_including_warmup: float | None = None,
          samples: Mapping[str, Sequence[float]] | None = None) -> dict:
    """Every figure of the evaluation as a JSON-ready dict (see the module docstring for the rules).

    ``warmup_end_s``: unmatched alerts whose window starts before this time are
    counted apart (``warmup_false_alarm_*``) and left out of precision and the
    per-editor-day rate -- the models have not seen enough history yet, which a
    job running continuously in production is past. ``including_warmup`` gives
    the same figures with them counted.

    ``quiet_spans``: editor -> [(start_s, end_s)] stretches that must not alarm
    (holiday surges of incident-free editors); alerts on those editors inside
    them are reported separately.

    ``samples``: the archive's sample times, sorted, per ``editor:ID`` / ``partner:NAME``
    (:class:`SampleTimes`): an alert detects an incident only if its window holds one from the
    incident. Without them, any credited alert detects.
    """
    ordered = sorted(incidents, key=lambda i: (i.start_s, i.incident_id))
    credited: dict[str, list[Alert]] = {i.incident_id: [] for i in ordered}
    matched_alert_ids: set[str] = set()
    for alert in alerts:
        incident = credit(alert, [i for i in ordered if matches(alert, i, window_s)], window_s)
        if incident is not None:
            credited[incident.incident_id].append(alert)
            matched_alert_ids.add(alert.alert_id)
    outcomes: list[IncidentOutcome] = []
    for incident in ordered:
        mine = sorted(credited[incident.incident_id], key=lambda a: (a.window_end_s, a.window_start_s, a.alert_id))
        hits = [a for a in mine if detects(a, incident, window_s, samples)]
        first = hits[0] if hits else None
        ttd = (first.window_end_s - incident.start_s) if first else None
        outcomes.append(IncidentOutcome(
            incident.incident_id, incident.problem_type, incident.scope, iso(incident.start_s), iso(incident.end_s),
            incident.editor_id if incident.scope == "editor" else f"partner:{incident.partner}",
            bool(hits), _predicted_type(hits) if hits else MISSED, len(mine), len(hits), ttd,
            None if ttd is None else ttd / window_s, first.alert_id if first else None))

    unmatched = [a for a in alerts if a.alert_id not in matched_alert_ids]
    in_warmup = [a for a in unmatched if warmup_end_s is not None and a.window_start_s < warmup_end_s]
    false_alarms = [a for a in unmatched if a not in in_warmup]
    episodes = _episodes(false_alarms, window_s)
    episodes_with_warmup = _episodes(unmatched, window_s)
    detected = [o for o in outcomes if o.detected]
    correct = [o for o in detected if o.predicted_type == o.problem_type]
    n, tp, fp = len(outcomes), len(detected), len(episodes)
    def prf(false_episodes: int) -> tuple[float | None, float | None, float | None]:
        p = tp / (tp + false_episodes) if tp + false_episodes else None
        r = tp / n if n else None
        f = (2 * p * r / (p + r)) if p and r else (0.0 if n else None)
        return p, r, f

    precision, recall, f1 = prf(fp)
    ttd_s = [o.time_to_detect_s for o in detected]
    ttd_w = [o.time_to_detect_windows for o in detected]

    types = sorted({o.problem_type for o in outcomes} | {o.predicted_type for o in outcomes} - {MISSED})
    confusion = {t: dict(Counter(o.predicted_type for o in outcomes if o.problem_type == t))
                 for t in sorted({o.problem_type for o in outcomes})}
    per_type = {}
    for t in sorted({o.problem_type for o in outcomes}):
        mine = [o for o in outcomes if o.problem_type == t]
        found = [o for o in mine if o.detected]
        per_type[t] = {"incidents": len(mine), "detected": len(found),
                       "recall": len(found) / len(mine),
                       "type_accuracy": (sum(o.predicted_type == t for o in found) / len(found)) if found else None,
                       "median_time_to_detect_windows": statistics.median([o.time_to_detect_windows for o in found])
                       if found else None}

    quiet_report = None
    if quiet_spans is not None:
        during = [a for a in alerts if a.editor_id in quiet_spans
                  and any(a.window_start_s < end and a.window_end_s > start for start, end in quiet_spans[a.editor_id])]
        anywhere = [a for a in alerts if a.editor_id in quiet_spans]
        quiet_report = {"editors": len(quiet_spans), "alerts_during_quiet_stretches": len(during),
                        "alerts_on_quiet_editors": len(anywhere),
                        "examples": [asdict(a) for a in during[:10]]}

    def rounded(x):
        return None if x is None else round(x, 4)

    return {
        "matching_rule": "same editor (partner incidents: same partner or an affected editor), alert window "
                         "overlapping [start, end + 1 window); each alert credited to one incident only (the one "
                         "whose type it names, else the one it overlaps most, else the earliest); detected by a "
                         "credited alert whose window holds a sample of the incident; time to detect "
                         "= that alert's window end - incident start (event time); alerts credited to no "
                         "incident are false alarms, grouped into episodes per editor/partner",
        "window_seconds": window_s,
        "incidents": n,
        "detected": tp,
        "missed": n - tp,
        "alerts": len(alerts),
        "alerts_by_kind": dict(Counter(a.kind for a in alerts)),
        # Counted, not derived: len(alerts) - len(false_alarms) would count warm-up alerts,
        # which matched nothing, as matched.
        "matched_alerts": len(matched_alert_ids),
        "false_alarm_alerts": len(false_alarms),
        "false_alarm_episodes": fp,
        "precision": rounded(precision),
        "recall": rounded(recall),
        "f1": rounded(f1),
        "alert_precision": rounded(len(matched_alert_ids) / len(alerts)) if alerts else None,
        "type_accuracy": rounded(len(correct) / tp) if tp else None,
        "time_to_detect": {
            "seconds": {"median": rounded(_percentile(ttd_s, 0.5)), "p90": rounded(_percentile(ttd_s, 0.9)),
                        "max": rounded(max(ttd_s)) if ttd_s else None, "values": [round(v, 1) for v in ttd_s]},
            "windows": {"median": rounded(_percentile(ttd_w, 0.5)), "p90": rounded(_percentile(ttd_w, 0.9)),
                        "max": rounded(max(ttd_w)) if ttd_w else None},
            "measure": "event time: first detecting alert's window_end - incident start (excludes the "
                       "watermark delay and the bus latency: the job's lag)",
            "detection": ("first window holding a sample of the incident" if samples is not None else
                          "first credited window (no archive samples given: it may hold no incident data)"),
        },
        "editor_days": rounded(editor_days),
        "false_alarm_episodes_per_editor_day": rounded(fp / editor_days) if editor_days else None,
        "false_alarm_alerts_per_editor_day": rounded(len(false_alarms) / editor_days) if editor_days else None,
        "warmup_end": iso(warmup_end_s) if warmup_end_s is not None else None,
        "warmup_false_alarm_alerts": len(in_warmup),
        "including_warmup": {
            "false_alarm_alerts": len(unmatched), "false_alarm_episodes": len(episodes_with_warmup),
            "precision": rounded(prf(len(episodes_with_warmup))[0]), "f1": rounded(prf(len(episodes_with_warmup))[2]),
            "false_alarm_episodes_per_editor_day":
                rounded(len(episodes_with_warmup) / (editor_days_including_warmup or editor_days))
                if (editor_days_including_warmup or editor_days) else None},
        "per_type": per_type,
        "confusion": confusion,
        "confusion_labels": types + [MISSED],
        "quiet_editors": quiet_report,
        "outcomes": [asdict(o) for o in outcomes],
        "false_alarms": _episode_rows(episodes),
        # the warm-up's unmatched alerts, as episodes too: left out of the figures above, but named
        "warmup_false_alarms": _episode_rows(_episodes(in_warmup, window_s)),
    }
