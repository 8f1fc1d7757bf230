"""Command line: ``python -m detectors.nab score ...`` and ``python -m detectors.nab run ...``.

score  prints, as JSON, NAB's normalized scores (standard, reward_low_FP_rate,
       reward_low_FN_rate) of every detector under a NAB-style results directory,
       with the chosen threshold, raw score, baseline, perfect score and row counts.
run    runs a registered detector over a NAB-style data directory and writes
       NAB-format result files.

Input problems (missing files, row-count mismatches, NaN scores, bad windows)
print ``error: ...`` naming the file and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detectors.nab import corpus, runner, scorer


def _parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value when it parses as JSON (numbers, booleans), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detectors.nab", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="score NAB-format result files")
    score.add_argument("--results", type=Path, required=True, help="directory laid out like NAB's results/")
    score.add_argument("--data", type=Path, required=True, help="directory laid out like NAB's data/")
    score.add_argument("--windows", type=Path, required=True, help="windows JSON covering exactly the data files")
    score.add_argument("--detector", nargs="+", action="extend", metavar="NAME", help="detectors to score (default: all in --results)")
    score.add_argument("--per-file", action="store_true", help="include each file's raw score and counts")

    run = commands.add_parser("run", help="run a detector and write NAB-format result files")
    run.add_argument("--data", type=Path, required=True, help="directory laid out like NAB's data/")
    run.add_argument("--labels", type=Path, required=True, help="windows JSON used for the label column")
    run.add_argument("--out", type=Path, required=True, help="output results directory")
    run.add_argument("--detector", default=runner.DEFAULT_DETECTOR, help="registry name (default: %(default)s)")
    run.add_argument("--workers", type=int, default=runner.DEFAULT_WORKERS, help="processes (default: %(default)s)")
    run.add_argument(
        "--param", type=_parse_param, action="append", default=[], metavar="KEY=VALUE",
        help="detector parameter passed to detectors.make (repeatable), e.g. seed=0",
    )
    return parser


def score_report(results: dict[str, dict[str, scorer.CorpusScore]], per_file: bool) -> dict:
    """The JSON document printed by ``score``."""
    report = {}
    for detector, profiles in results.items():
        report[detector] = {}
        for name, result in profiles.items():
            entry = {
                "score": round(result.normalized, 6),
                "threshold": result.threshold,
                "raw": round(result.raw, 6),
                "baseline": round(result.baseline, 6),
                "perfect": result.perfect,
                **result.counts,
            }
            if per_file:
                entry["files"] = {
                    f.name: {"raw": round(f.raw, 6), "tp": f.tp, "fp": f.fp, "fn": f.fn, "tn": f.tn}
                    for f in result.files
                }
            report[detector][name] = entry
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "score":
            results = scorer.score_results(args.results, args.data, args.windows, args.detector)
            json.dump(score_report(results, args.per_file), sys.stdout, indent=2)
            print()
        else:
            written = runner.run_corpus(
                args.data, args.labels, args.out, args.detector, args.workers, params=dict(args.param)
            )
            print(json.dumps({"detector": args.detector, "out": str(args.out), "files": len(written),
                              "rows": sum(written.values())}))
    except corpus.NabInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
