"""python -m connectors.simulator --editors N --partners M --hours H --seed S --out DIR

Writes a Firehose-style archive (Parquet by default, ``--format jsonl`` for
gzipped JSON lines), ``labels.jsonl`` and ``scenario.json`` under DIR, which must
be empty or absent; ``--overwrite`` replaces an earlier scenario there.
``--default`` generates the scenario `make run` uses (20 editors, 8 partners,
24 h, slower sampling: ~152k records, sized for the local endpoint).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time

from connectors.archive import JSONL, PARQUET
from connectors.cli_numbers import finite_number, whole_number

from .generator import OutputFolderNotEmpty, generate
from .scenario import Scenario, default_scenario


# Bad sizes used to reach numpy and end in a traceback far from the argument (--cadence 0:
# ZeroDivisionError, --editors 0: "high <= 0"); each is refused by argparse (exit code 2) with
# what is expected (connectors/cli_numbers.py for the plain numbers).
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"\s*({_NUMBER})\s*(?:-\s*({_NUMBER})\s*)?")
#: Timestamps are in milliseconds: sampling faster than that gives samples the same time.
MIN_CADENCE_S = 0.001


def _range(text: str) -> tuple[float, float]:
    """'10-60' -> (10.0, 60.0); '30' -> (30.0, 30.0): seconds between samples, at least 1 ms, low <= high."""
    match = _RANGE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected seconds as LOW-HIGH or one number, e.g. 10-60; got {text!r}")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) is not None else low
    if not (math.isfinite(low) and math.isfinite(high)) or low < MIN_CADENCE_S:
        raise argparse.ArgumentTypeError(f"intervals must be finite and at least {MIN_CADENCE_S} s "
                                         f"(timestamps are in ms); got {text!r}")
    if high < low:
        raise argparse.ArgumentTypeError(f"the range's low end must not be above its high end; got {text!r}")
    return low, high


def _start(text: str) -> str:
    try:
        Scenario(start=text).start_epoch_s
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a UTC time as YYYY-MM-DDTHH:MM:SSZ, got {text!r}") from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--default", action="store_true", help="the default scenario (other sizes ignored)")
    parser.add_argument("--editors", type=whole_number(1), default=50)
    parser.add_argument("--partners", type=whole_number(1), default=8)
    parser.add_argument("--hours", type=finite_number("hours", 0, above=True), default=24.0)
    parser.add_argument("--seed", type=whole_number(0), default=7)  # numpy takes non-negative seeds only
    parser.add_argument("--start", type=_start, default=Scenario.start, help="UTC start, e.g. 2026-11-02T00:00:00Z")
    parser.add_argument("--cadence", type=_range, default=Scenario.editor_cadence_s,
                        help="editor sampling interval range in seconds, e.g. 10-60")
    parser.add_argument("--partner-cadence", type=_range, default=Scenario.partner_cadence_s)
    parser.add_argument("--warmup-hours", type=finite_number("hours", 0), default=Scenario.warmup_hours,
                        help="hours at the start without incidents (the models learn the editors)")
    parser.add_argument("--format", choices=[PARQUET, JSONL], default=PARQUET)
    parser.add_argument("--overwrite", action="store_true",
                        help="remove an earlier scenario in --out first (its metrics/, events/, labels.jsonl, "
                             "scenario.json); without it a non-empty --out is refused")
    args = parser.parse_args(argv)
    if args.default:
        scenario = default_scenario(seed=args.seed)
    else:
        scenario = Scenario(editors=args.editors, partners=args.partners, hours=args.hours, seed=args.seed,
                            start=args.start, editor_cadence_s=args.cadence, partner_cadence_s=args.partner_cadence,
                            warmup_hours=args.warmup_hours)
    began = time.perf_counter()
    try:
        # generate checks the folder before anything else: a refusal costs no generation.
        summary = generate(scenario, args.out, fmt=args.format, overwrite=args.overwrite)
    except OutputFolderNotEmpty as exc:
        parser.error(str(exc))
    if summary["incident_types_not_placed"]:
        print(f"warning: no room for any {', '.join(summary['incident_types_not_placed'])} incident in this "
              "scenario (more editors, more hours or a shorter --warmup-hours make room)", file=sys.stderr)
    print(json.dumps({"out": args.out, "records": summary["records"], "incidents": summary["incidents"],
                      "incidents_by_type": summary["incidents_by_type"],
                      "quiet_editors": len(summary["quiet_editors"]),
                      "seconds": round(time.perf_counter() - began, 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
