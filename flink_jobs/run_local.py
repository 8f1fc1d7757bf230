"""`make run`: a day of simulated ad traffic through the whole system on this machine, and its report.

    python -m flink_jobs.run_local [--speed 720x] [--seed 7] [--out reports/run-...] [--endpoint URL]

1. generates the default scenario (20 editors, 8 demand partners, 24 h, every
   problem type labeled) unless ``--archive/--labels`` point at another one;
2. brings up the local AWS stack: an endpoint already running (``AWS_ENDPOINT_URL``,
   or ``python -m deploy.local up`` on 127.0.0.1:4566) is reused, otherwise an
   embedded one is started on a free port for this run; the core stack is deployed;
3. starts the streaming job on a Flink mini-cluster and replays the day into
   Kinesis compressed into about two minutes (720x), with a live progress bar
   (records/s, bus events and incidents alerted so far);
4. waits for the job to drain, scores the alerts against the labels and writes
   ``report.html`` (plots embedded) and ``summary.json`` into the output folder,
   whose path it prints at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from connectors.replay import parse_speed


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
    parser.add_argument("--speed", default="720x", help="event-time speed-up of the replay (720x: 24 h in 2 min)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the default scenario")
    parser.add_argument("--archive", help="replay this archive instead of the default scenario")
    parser.add_argument("--labels", help="labels for --archive")
    parser.add_argument("--out", help="output folder (default reports/run-<UTC time>)")
    parser.add_argument("--endpoint", help="AWS endpoint URL to use (default: reuse or start one)")
    parser.add_argument("--settle", type=float, default=45.0,
                        help="seconds without new bus events after the replay before the report")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                        help="job property override (repeatable)")
    args = parser.parse_args(argv)
    if bool(args.archive) != bool(args.labels):
        parser.error("--archive and --labels go together")

    from tqdm import tqdm

    out = Path(args.out or Path("reports") / f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()

    def phase(text: str) -> None:
        tqdm.write(f"[{time.monotonic() - began:6.1f}s] {text}", file=sys.stderr)

    if args.archive:
        archive, labels = Path(args.archive), Path(args.labels)
        total = None
    else:
        from connectors.simulator import default_scenario, generate

        archive = out / "scenario"
        scenario = default_scenario(seed=args.seed)
        phase(f"generating the default scenario: {scenario.editors} editors, {scenario.partners} partners, "
              f"{scenario.hours:g} h (seed {scenario.seed}) -> {archive}")
        summary = generate(scenario, archive)
        labels = archive / "labels.jsonl"
        total = summary["records"]["metrics"] + summary["records"]["events"]
        phase(f"{summary['records']['metrics']} metric and {summary['records']['events']} event records, "
              f"{summary['incidents']} labeled incidents {summary['incidents_by_type']}")
    scenario_json = labels.parent / "scenario.json"

    endpoint = args.endpoint or _existing_endpoint()
    phase(f"AWS endpoint: {endpoint or 'embedded, started for this run on a free port'}")

    bars: list = []       # the progress bar appears when the replay starts
    seen: dict[str, set] = {"incidents": set(), "events": set()}

    def on_replay(stats) -> None:
        bar = bars[0]
        bar.update(stats.total - bar.n)
        elapsed = max(time.monotonic() - replay_began[0], 1e-6)
        bar.set_postfix({"rec/s": f"{stats.total / elapsed:,.0f}", "bus events": len(seen["events"]),
                         "incidents alerted": len(seen["incidents"])}, refresh=False)

    def on_event(event: dict) -> None:
        detail = event.get("detail") or {}
        seen["events"].add(event.get("id"))
        if event.get("detail-type") == "Composite Anomaly Detected":
            seen["incidents"].add(detail.get("incident_id"))

    replay_began: list[float] = []

    def on_phase(text: str) -> None:
        if bars:
            bars[0].close()
        phase(text)
        if text.startswith("replaying"):
            replay_began.append(time.monotonic())
            bars.append(tqdm(total=total, unit="rec", desc="replay", dynamic_ncols=True, file=sys.stderr))

    from flink_jobs.evaluate import evaluate, headline
    from flink_jobs.report.html import write_report

    report = evaluate(archive, labels, scenario_json=scenario_json if scenario_json.exists() else None,
                      endpoint_url=endpoint, speed=parse_speed(args.speed), settle_s=args.settle,
                      work_dir=out / "work", job_overrides=args.overrides, on_replay=on_replay,
                      on_event=on_event, on_phase=on_phase)
    if bars:
        bars[0].close()
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps({k: v for k, v in report.items() if k != "events"}, indent=1, default=str)
                            + "\n")
    (out / "bus_events.jsonl").write_text("".join(json.dumps(e, default=str) + "\n" for e in report["events"]))
    phase("writing the HTML report")
    html_path = write_report(report, archive, labels, out / "report.html")
    print(headline(report))
    print(f"\nreport:  {html_path.resolve()}\nsummary: {summary_path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
