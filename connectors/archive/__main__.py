"""python -m connectors.archive capture|stats

    # archive a live stream (local endpoint or AWS) like Firehose would
    python -m connectors.archive capture --stream adops-metrics-stream --out archive/ \
        [--endpoint http://127.0.0.1:4566] [--format parquet|jsonl] [--latest] [--idle-exit 30]
    # what an archive holds
    python -m connectors.archive stats archive/
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections import Counter

from connectors.cli_numbers import finite_number, whole_number

from .capture import capture_stream, kinesis_client
from .store import JSONL, PARQUET, ArchiveWriter, data_files, iter_archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.archive")
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="archive a Kinesis stream by arrival hour")
    cap.add_argument("--stream", required=True)
    cap.add_argument("--out", required=True)
    cap.add_argument("--endpoint", default=None, help="endpoint URL (default: AWS_ENDPOINT_URL or AWS)")
    cap.add_argument("--region", default=None)
    cap.add_argument("--format", choices=[PARQUET, JSONL], default=PARQUET)
    cap.add_argument("--latest", action="store_true", help="start at the stream's tip instead of its oldest record")
    cap.add_argument("--idle-exit", type=finite_number("seconds", 0), default=30.0,
                     help="stop after this many seconds without records (0: run until interrupted)")
    cap.add_argument("--max-records", type=whole_number(1), default=None)
    cap.add_argument("--buffer-interval", type=finite_number("seconds", 0, above=True), default=60.0, help="seconds between part files")
    stats = sub.add_parser("stats", help="count the records of an archive")
    stats.add_argument("archive")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "stats":
        counts: Counter = Counter()
        for item in iter_archive(args.archive):
            counts[item.kind or "unrecognised"] += 1
        print(json.dumps({"files": len(data_files(args.archive)), "records": dict(counts)}, indent=2))
        return 0

    stopping = {"now": False}
    signal.signal(signal.SIGINT, lambda *_: stopping.update(now=True))
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    writer = ArchiveWriter(args.out, fmt=args.format)
    result = capture_stream(args.stream, writer, client=kinesis_client(args.endpoint, args.region),
                            from_start=not args.latest, idle_exit_s=args.idle_exit or None,
                            max_records=args.max_records, buffer_interval_s=args.buffer_interval,
                            should_stop=lambda: stopping["now"])
    print(json.dumps({"stream": args.stream, "records": result.records, "undecodable": result.undecodable,
                      "throttled": result.throttled, "expired_iterators": result.expired_iterators,
                      "not_archived": dict(result.skipped), "files": [str(p) for p in writer.written_files],
                      "counts": writer.record_counts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
