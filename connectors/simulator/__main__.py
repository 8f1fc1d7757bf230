"""python -m connectors.simulator --editors N --partners M --hours H --seed S --out DIR

Writes a Firehose-style archive (Parquet by default, ``--format jsonl`` for
gzipped JSON lines), ``labels.jsonl`` and ``scenario.json`` under DIR.
``--default`` generates the scenario `make run` uses (20 editors, 8 partners,
24 h, slower sampling: ~152k records, sized for the local endpoint).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from connectors.archive import JSONL, PARQUET

from .generator import generate
from .scenario import Scenario, default_scenario


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--default", action="store_true", help="the default scenario (other sizes ignored)")
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--partners", type=int, default=8)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default=Scenario.start, help="UTC start, e.g. 2026-11-02T00:00:00Z")
    parser.add_argument("--cadence", type=_range, default=Scenario.editor_cadence_s,
                        help="editor sampling interval range in seconds, e.g. 10-60")
    parser.add_argument("--partner-cadence", type=_range, default=Scenario.partner_cadence_s)
    parser.add_argument("--warmup-hours", type=float, default=Scenario.warmup_hours,
                        help="hours at the start without incidents (the models learn the editors)")
    parser.add_argument("--format", choices=[PARQUET, JSONL], default=PARQUET)
    args = parser.parse_args(argv)
    if args.default:
        scenario = default_scenario(seed=args.seed)
    else:
        scenario = Scenario(editors=args.editors, partners=args.partners, hours=args.hours, seed=args.seed,
                            start=args.start, editor_cadence_s=args.cadence, partner_cadence_s=args.partner_cadence,
                            warmup_hours=args.warmup_hours)
    began = time.perf_counter()
    summary = generate(scenario, args.out, fmt=args.format)
    print(json.dumps({"out": args.out, "records": summary["records"], "incidents": summary["incidents"],
                      "incidents_by_type": summary["incidents_by_type"],
                      "quiet_editors": len(summary["quiet_editors"]),
                      "seconds": round(time.perf_counter() - began, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
