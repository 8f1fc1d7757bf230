"""What a simulated day looks like: the knobs of a scenario and the default one.

A :class:`Scenario` is plain data (JSON-serialisable) so that the simulator's
output directory can carry the exact scenario it was generated from
(``scenario.json``), and the evaluation can read back which editors were meant
to stay quiet.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

#: Metrics every editor reports itself (no ``partner`` field).
EDITOR_METRICS = ("rpm", "fill_rate", "bid_latency_ms", "error_rate", "cache_hit_rate", "impressions", "revenue")
#: Metrics reported per (editor, demand partner) by the header-bidding wrapper.
#: Per-partner fill is deliberately not emitted under the name ``fill_rate``: a
#: consumer averaging an editor's ``fill_rate`` samples without looking at the
#: ``partner`` field would otherwise mix two different quantities.
PARTNER_METRICS = ("partner_timeouts", "bid_rate", "win_rate")
#: The ad server also reports revenue per demand partner: ``revenue`` samples that
#: carry ``partner`` are that partner's part of the editor's revenue (they add up
#: to the editor's own ``revenue`` of the minute). They are what a partner
#: outage costs, so the Partner Health Check can put a figure on it. The job's
#: editor windows skip them (sql/windows/editor_windows.sql): averaged
#: with the editor's total they would mix a part with the whole.
PARTNER_BREAKDOWN_METRICS = ("revenue",)

#: Problem types of the classifier (detectors.classifier) that labels use.
DEMAND_ISSUE = "DEMAND_ISSUE"
LATENCY_ISSUE = "LATENCY_ISSUE"
PRICING_ISSUE = "PRICING_ISSUE"
CONFIGURATION_ISSUE = "CONFIGURATION_ISSUE"
INFRASTRUCTURE_ISSUE = "INFRASTRUCTURE_ISSUE"
SECURITY_ISSUE = "SECURITY_ISSUE"
EDITOR_PROBLEM_TYPES = (LATENCY_ISSUE, PRICING_ISSUE, CONFIGURATION_ISSUE, INFRASTRUCTURE_ISSUE, SECURITY_ISSUE)
PROBLEM_TYPES = (DEMAND_ISSUE,) + EDITOR_PROBLEM_TYPES


@dataclass(frozen=True)
class Scenario:
    editors: int = 50
    partners: int = 8
    hours: float = 24.0
    seed: int = 7
    #: Start of the simulated period (a Monday at midnight UTC by default).
    start: str = "2026-11-02T00:00:00Z"
    #: Sampling interval range, seconds, drawn once per (editor, metric).
    editor_cadence_s: tuple[float, float] = (10.0, 60.0)
    #: Interval range of the wrapper beacon carrying every partner's samples
    #: (below the 5-min window, every window sees every partner of the editor).
    partner_cadence_s: tuple[float, float] = (30.0, 120.0)
    #: Share of samples delivered late, and how late (seconds) they can be.
    late_fraction: float = 0.02
    late_delay_s: tuple[float, float] = (30.0, 240.0)
    #: No incident starts before this many hours: the models need history.
    warmup_hours: float = 6.0
    #: Nor ends later than this many hours before the end (the last windows
    #: only close when later data pushes the watermark past them).
    cooldown_hours: float = 1.0
    #: Incidents per problem type per 50 editors per day (at least 1 each).
    incidents_per_type: float = 4.0
    #: Demand-partner outages per day (at least 1; at most partners - 1).
    partner_outages: float = 3.0
    incident_minutes: tuple[float, float] = (15.0, 90.0)
    #: Share of editors that never have an incident; half of them get a
    #: holiday-like surge, the other half a slow trend (some both).
    quiet_editor_fraction: float = 0.24
    #: Harmless operational events (changes, deploys, low findings) per editor per day.
    background_events_per_editor_day: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Scenario":
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        for key in ("editor_cadence_s", "partner_cadence_s", "late_delay_s", "incident_minutes"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    @property
    def start_epoch_s(self) -> float:
        return datetime.strptime(self.start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()

    @property
    def effective_warmup_s(self) -> float:
        """The warm-up actually kept free of incidents (short scenarios keep some room for them)."""
        return min(self.warmup_hours, 0.6 * self.hours) * 3600.0

    @property
    def duration_s(self) -> float:
        return self.hours * 3600.0

    def estimated_records(self, mean_partners_per_editor: float = 2.75) -> int:
        """Rough number of metric records (for sizing a replay before generating)."""
        editor = len(EDITOR_METRICS) * self.duration_s / (sum(self.editor_cadence_s) / 2)
        partner = len(PARTNER_METRICS) * mean_partners_per_editor * self.duration_s / (sum(self.partner_cadence_s) / 2)
        breakdown = (len(PARTNER_BREAKDOWN_METRICS) * mean_partners_per_editor * self.duration_s
                     / (sum(self.editor_cadence_s) / 2))
        return int(self.editors * (editor + partner + breakdown))


def default_scenario(seed: int = 7) -> Scenario:
    """The scenario `make run` and `python -m flink_jobs.evaluate` use without arguments.

    20 editors, 8 partners, 24 hours, about 152k metric records (127k before the
    ad server's revenue per partner was added; the runs below had 127k), replayed at 720x
    (24 h in two minutes). The issue asks for about 50 editors; 50 do not fit in a
    few minutes on this 2-core machine, and what bounds them is now the job, not
    the endpoint: since deploy/local/patches/kinesis/ moto's shard reads are
    O(log n) and its GetRecords/PutRecords answers skip its generic serializer.
    Measured (2026-11-25, machine shared with other helpers' Flink jobs):

    * this scenario: the job kept up with the 2-minute replay (the last bus event
      came 2 s after the replay ended); whole run 3 min 47 s with a venv refresh,
      load average 1.7 at the start, 22.6 at the end;
    * 50 editors, same sampling (324k records, `connectors.simulator --editors 50
      --cadence 150-270 --partner-cadence 170-290 --warmup-hours 13`): the replay
      held its 2,700 records/s, but the job delivered no bus event during the
      replay nor in the 30 s after it, and 1,758 records arrived behind its
      watermark (load average 50-75; 261 CPU seconds for the run).
    * Again on 2026-12-05 (quiet machine, thread mode, after sql/parse/metrics.sql read each
      JSON field once; 390k records now, with the revenue per partner): the replay held
      3,251 records/s; the job caught every incident (23 of 23, F1 1.0, type accuracy 1.0,
      0 false alarms) but lagged the replay by a median 156 s, so the run took 7 min 33 s by
      its own clock. At 720x a 5-minute window closes every 0.42 s of wall time, so the 974
      series of 50 editors ask for about 2,300 scored window rows per second. The job
      scored its 280k window rows in about 280 s (replay plus lag), about
      1,000 per second; about 1,500 in the datagen benchmark (flink_jobs/benchmark.py).
    * Again after the windows were pivoted (2026-12-05, 62b0e20: one Python call per editor
      window, not four per metric window): the job kept up, lag median 5.3 s, max 10.1 s;
      290 bus events, the same 290 as the offline replay; F1 1.0 (23 of 23); 2 min 46 s by
      its own clock. The default stays at 20 editors because the multi-day evaluation and
      the local stack's alert thresholds were measured on 20-editor days.

    The job's detectors run once per (editor, metric) and window, a cost that
    grows with editors; reading and SQL grow with the records. The sampling intervals stay
    slower than the 10-60 s the contract allows (150-270 s per editor metric,
    170-290 s per partner beacon; every series is still reported in every
    5-minute window): denser sampling was not measured to fit. To run 50 editors:
    ``python -m connectors.simulator --editors 50 --cadence 150-270 --partner-cadence 170-290
    --warmup-hours 13 --out DIR``, then
    ``make run ARGS="--archive DIR --labels DIR/labels.jsonl"`` (measured above; the drain
    waits for the job's lag). Without ``--cadence`` the simulator samples at the contract's
    10-60 s: 2.2M records for 50 editors, which the replay itself could not send at 720x here
    (12.7k records/s; that run was stopped, not measured to the end).

    Incidents start after 13 h: the job's online models (detectors' ensemble)
    score nothing before 150 windows (12.5 h of 5-minute windows) of an
    editor's own history; in production they have weeks of it.
    """
    return Scenario(editors=20, partners=8, hours=24.0, seed=seed,
                    editor_cadence_s=(150.0, 270.0), partner_cadence_s=(170.0, 290.0),
                    warmup_hours=13.0)
