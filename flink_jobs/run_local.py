"""`make run`: a day of simulated ad traffic through the whole system on this machine, and its report.

    python -m flink_jobs.run_local [--speed 720x] [--seed 7] [--out reports/run-...] [--endpoint URL]

1. generates the default scenario (``connectors.simulator.default_scenario``: 24 h,
   8 demand partners, every problem type labeled) in its own process while steps 2-3
   run, unless ``--archive/--labels`` point at another one;
2. brings up the local AWS stack: an endpoint already running (``AWS_ENDPOINT_URL``,
   or ``python -m deploy.local up`` on 127.0.0.1:4566) is reused, otherwise an
   embedded one is started on a free port for this run; the core stack is deployed;
3. starts the streaming job on a Flink mini-cluster and replays the day into
   Kinesis compressed into about two minutes (720x), with a live progress bar
   (records/s, bus events and incidents alerted so far);
4. waits for the job to drain (``--settle`` seconds plus the job's measured lag behind
   the replay without a new bus event), scores
   the alerts against the labels and writes ``report.html`` (plots embedded) and
   ``summary.json`` into the output folder, whose path it prints at the end.

The labels (``--labels``) are checked before anything starts, the generated ones
before the replay; the bus events go to ``bus_events.jsonl`` before scoring
(``python -m flink_jobs.evaluate --rescore OUT`` scores them again). A run whose
events may be incomplete (the collector died, the drain was cut short, the job
stopped) is reported as such in the summary, the page and the output, and exits
with status 3: its figures are not the scenario's.
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from connectors.cli_numbers import finite_number, replay_speed, whole_number


class _ScenarioGeneration:
    """The default scenario written by the simulator in its own process (``python -m
    connectors.simulator --default``), so that it overlaps the endpoint's and the job's start-up
    instead of preceding them; no GIL or CPU is shared with the job client."""

    def __init__(self, seed: int, out: Path):
        import subprocess

        self.out = out
        self._process = subprocess.Popen(
            [sys.executable, "-m", "connectors.simulator", "--default", "--seed", str(seed), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> dict:
        stdout, stderr = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"generating the default scenario failed ({self._process.returncode}): "
                               f"{stderr.strip()[-2000:]}")
        return json.loads(stdout)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class ReplayProgress:
    """When the replay's puts reached each event time (monotonic seconds), from its progress reports.

    >>> progress = ReplayProgress()
    >>> progress.note(1_000, 10.0); progress.note(5_000, 12.0); progress.note(5_000, 13.0)
    >>> progress.reached(3_000), progress.reached(5_000), progress.reached(9_000)
    (12.0, 12.0, None)
    """

    def __init__(self) -> None:
        self._event_ms: list[int] = []
        self._at: list[float] = []

    def note(self, put_event_ms: int | None, at: float) -> None:
        if put_event_ms is not None and (not self._event_ms or put_event_ms > self._event_ms[-1]):
            self._event_ms.append(put_event_ms)
            self._at.append(at)

    def reached(self, event_ms: float) -> float | None:
        """When a record of event time ``event_ms`` or later was first put; None: not yet."""
        i = bisect.bisect_left(self._event_ms, event_ms)
        return self._at[i] if i < len(self._at) else None


def job_lag_s(window_end: str | None, first_event_ms: int | None, replay_began: float | None,
              speed: float | None, arrived: float, put_at: Callable[[float], float | None] | None = None
              ) -> tuple[float, float] | None:
    """How long after the replay put a window's last records its result reached the bus, and how far
    the replay itself was behind its schedule there (seconds): ``(job lag, replay behind)``.

    The replay is due to put event time ``t`` at ``replay_began + (t - first event) / speed``; a
    window's result can be on the bus as soon as its end is put (the watermark delay is 30 s of
    event time, 0.04 s of wall time at 720x). A replay that fell behind (a busy endpoint) put it
    later: ``put_at(end_ms)`` (:meth:`ReplayProgress.reached`) says when, and the job's lag is
    counted from then, so that the replay's delay is not taken for the job's.
    """
    if not window_end or first_event_ms is None or replay_began is None or not speed:
        return None
    from flink_jobs.evaluation.scoring import parse_time

    try:
        end_s = parse_time(window_end)
    except (TypeError, ValueError):
        return None
    due = replay_began + (end_s - first_event_ms / 1000.0) / speed
    put = put_at(end_s * 1000.0) if put_at is not None else None
    put_by = due if put is None else max(due, put)
    return arrived - put_by, put_by - due


def lag_summary(lags_s: list[float]) -> dict:
    if not lags_s:
        return {"events": 0}
    # the median proper (the mean of the middle two of an even count; it was the upper one)
    return {"events": len(lags_s), "median": round(statistics.median(lags_s), 1), "max": round(max(lags_s), 1)}


def drain_wait_s(settle_s: float, lags_s: list[float]) -> float:
    """Seconds without a new bus event before scoring: ``--settle`` plus the job's largest lag
    behind the replay so far. A job that keeps up (2 s in a measured run) is scored 20-some s
    after the replay; one running 73 s behind (measured at load average 60-125) is waited for."""
    return settle_s + max(0.0, max(lags_s, default=0.0))


def lag_warning(lag: dict, speed: float | None) -> str | None:
    """Why the scores may be missing results: nothing reached the bus that the job's lag could
    be measured on, so the drain wait could not adapt to it."""
    if not speed or lag.get("events"):
        return None
    return ("no window result reached the bus, so the job's lag behind the replay is unknown; with "
            "labeled incidents in the archive the job was probably far behind (a busy machine?): "
            "re-run with a slower --speed or a longer --settle")


def _existing_endpoint() -> str | None:
    """An endpoint the user already runs: AWS_ENDPOINT_URL, or one answering on LocalStack's port."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"]
    from deploy.local.endpoint import is_answering

    url = f"http://127.0.0.1:{os.environ.get('ADOPS_LOCAL_PORT', '4566')}"
    return url if is_answering(url, timeout=1.0) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flink_jobs.run_local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # Checked here: found later, a bad value stopped the run after the job and the scenario had started.
    parser.add_argument("--speed", type=replay_speed, default="720x",
                        help="event-time speed-up of the replay (720x: 24 h in 2 min)")
    parser.add_argument("--seed", type=whole_number(0), default=7, help="seed of the default scenario")
    parser.add_argument("--archive", help="replay this archive instead of the default scenario")
    parser.add_argument("--labels", help="labels for --archive")
    parser.add_argument("--out", help="output folder (default reports/run-<UTC time>)")
    parser.add_argument("--endpoint", help="AWS endpoint URL to use (default: reuse or start one)")
    # 20 s: with the job keeping up, the last bus event came 2 s after the replay's end (measured).
    parser.add_argument("--settle", type=finite_number("seconds", 0), default=20.0,
                        help="seconds without new bus events after the replay before the report, "
                             "plus the job's largest measured lag behind the replay")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="job property override (repeatable)")
    args = parser.parse_args(argv)
    if bool(args.archive) != bool(args.labels):
        parser.error("--archive and --labels go together")
    from flink_jobs.evaluate import EXIT_INCOMPLETE, check_before_run, evaluate, headline, incomplete_banner

    check_before_run(parser, args.labels, args.overrides)

    from tqdm import tqdm

    out = Path(args.out or Path("reports") / f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
    if not args.archive:
        from connectors.simulator.generator import OutputFolderNotEmpty, prepare_output

        try:
            # The generation (in its own process) would refuse it only once the job is starting.
            prepare_output(out / "scenario")
        except OutputFolderNotEmpty as exc:
            parser.error(f"{exc} (--out of an earlier run? choose a new --out)")
    out.mkdir(parents=True, exist_ok=True)
    # Flink's own log (the job's warnings among it) goes with the report, unless the caller chose a
    # place; read when the mini-cluster's JVM starts, which is later in this process.
    os.environ.setdefault("FLINK_LOG_DIR", str((out / "flink-log").resolve()))
    began = time.monotonic()

    def phase(text: str) -> None:
        tqdm.write(f"[{time.monotonic() - began:6.1f}s] {text}", file=sys.stderr)

    generation: _ScenarioGeneration | None = None
    if args.archive:
        archive, labels = Path(args.archive), Path(args.labels)
        scenario_json = labels.parent / "scenario.json"
        scenario_json = scenario_json if scenario_json.exists() else None
    else:
        from connectors.simulator import default_scenario

        archive = out / "scenario"
        scenario = default_scenario(seed=args.seed)
        phase(f"generating the default scenario while the job starts: {scenario.editors} editors, "
              f"{scenario.partners} partners, {scenario.hours:g} h (seed {scenario.seed}) -> {archive}")
        generation = _ScenarioGeneration(args.seed, archive)
        labels, scenario_json = archive / "labels.jsonl", archive / "scenario.json"
    total: list[int | None] = [None]

    endpoint = args.endpoint or _existing_endpoint()
    phase(f"AWS endpoint: {endpoint or 'embedded, started for this run on a free port'}")

    bars: list = []       # the progress bar appears when the replay starts
    seen: dict[str, set] = {"incidents": set(), "events": set()}

    # When the replay started (monotonic) and its first event time: the schedule that says when
    # each window's last record was put, against which the job's lag is measured.
    schedule: dict = {}
    lags_s: list[float] = []
    replay_behind_s: list[float] = []
    puts = ReplayProgress()
    speed = args.speed

    def on_replay(stats) -> None:
        if "first_event_ms" not in schedule and stats.first_event_ms is not None:
            schedule["first_event_ms"] = stats.first_event_ms
        puts.note(stats.put_event_ms, time.monotonic())
        bar = bars[0]
        bar.update(stats.total - bar.n)
        elapsed = max(time.monotonic() - replay_began[0], 1e-6)
        bar.set_postfix({"rec/s": f"{stats.total / elapsed:,.0f}", "bus events": len(seen["events"]),
                         "incidents alerted": len(seen["incidents"])}, refresh=False)

    def on_event(event: dict) -> None:
        detail = event.get("detail") or {}
        lag = job_lag_s(detail.get("window_end"), schedule.get("first_event_ms"),
                        replay_began[0] if replay_began else None, speed, time.monotonic(), puts.reached)
        if lag is not None:
            lags_s.append(lag[0])
            replay_behind_s.append(lag[1])
        seen["events"].add(event.get("id"))
        if event.get("detail-type") == "Composite Anomaly Detected":
            seen["incidents"].add(detail.get("incident_id"))

    replay_began: list[float] = []

    def on_phase(text: str) -> None:
        if bars:
            bars[0].close()
        if text.startswith("replaying") and generation is not None:
            # The replay reads the archive as soon as this phase is announced: the scenario,
            # generated in its own process while the endpoint and the job started, must be complete.
            summary = generation.wait()
            total[0] = summary["records"]["metrics"] + summary["records"]["events"]
            phase(f"scenario ready ({summary['seconds']:g} s): {summary['records']['metrics']} metric and "
                  f"{summary['records']['events']} event records, {summary['incidents']} labeled incidents "
                  f"{summary['incidents_by_type']}")
        phase(text)
        if text.startswith("replaying"):
            replay_began.append(time.monotonic())
            bars.append(tqdm(total=total[0], unit="rec", desc="replay", dynamic_ncols=True, file=sys.stderr))

    from flink_jobs.report.html import write_report

    events_path = out / "bus_events.jsonl"
    try:
        report = evaluate(archive, labels, scenario_json=scenario_json, events_path=events_path,
                          labels_later=generation is not None,
                          endpoint_url=endpoint, speed=speed,
                          settle_s=lambda: drain_wait_s(args.settle, list(lags_s)),
                          work_dir=out / "work", job_overrides=args.overrides,
                          on_replay=on_replay, on_event=on_event, on_phase=on_phase)
    finally:
        if generation is not None:
            generation.stop()
    if bars:
        bars[0].close()
    report["run"]["job_lag_s"] = lag_summary(lags_s)
    # At the same windows: how late the replay put their ends (the job's lag is counted from then).
    report["run"]["replay_behind_schedule_s"] = lag_summary(replay_behind_s)
    report["run"]["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    warning = lag_warning(report["run"]["job_lag_s"], speed)
    if warning:
        report["run"]["warning"] = warning
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1, default=str)
                            + "\n")
    phase("writing the HTML report")
    html_path = write_report(report, archive, labels, out / "report.html")
    print(headline(report))
    lag = report["run"]["job_lag_s"]
    if lag.get("events"):
        # The time to detect above is event time; this is how late the results came in wall time.
        print(f"the job's lag behind the replay (wall clock): median {lag['median']} s, max {lag['max']} s")
    if warning:
        print(f"\nWARNING: {warning}")
    from flink_jobs.main import local_flink_log_dir

    print(f"\nreport:  {html_path.resolve()}\nsummary: {summary_path.resolve()}\nevents:  {events_path.resolve()}"
          f"\njob log: {local_flink_log_dir()}")
    banner = incomplete_banner(report)
    if banner:
        # Last, where it is read, and in the exit status: CI or a script must not take these
        # figures for the scenario's.
        print(f"\n{banner}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


if __name__ == "__main__":
    sys.exit(main())
