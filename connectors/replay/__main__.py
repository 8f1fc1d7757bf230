"""Replay archives into the system.

Kinesis (an archive in the input contract: Firehose-style tree, any directory
of .parquet / .jsonl[.gz] files, or one file):

    python -m connectors.replay --from ARCHIVE --to kinesis://adops-metrics-stream \
        [--events-to kinesis://adops-events-stream] [--speed 60x|max] [--endpoint URL]

Metric records go to ``--to``, event records to ``--events-to``; timestamps in
the payloads are the archived ones; per-editor order is kept.

EventBridge (re-drive emitted incidents from the bus archive):

    python -m connectors.replay eventbridge --archive NAME --from T --to T [--bus NAME] [--endpoint URL]
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from connectors.archive import EVENTS, METRICS
from connectors.cli_numbers import finite_number, replay_speed, whole_number

from .eventbridge import events_client, parse_time, replay_from_archive
from .kinesis import kinesis_client, replay_archive


def _stream(url: str) -> str:
    if not url.startswith("kinesis://") or len(url) <= len("kinesis://"):
        raise argparse.ArgumentTypeError(f"expected kinesis://STREAM, got {url!r}")
    return url[len("kinesis://"):]


def _eventbridge(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.replay eventbridge")
    parser.add_argument("--archive", required=True, help="EventBridge archive name")
    parser.add_argument("--from", dest="start", required=True, type=parse_time, help="ISO-8601 start")
    parser.add_argument("--to", dest="end", required=True, type=parse_time, help="ISO-8601 end")
    parser.add_argument("--bus", default=None, help="check that the archive records this bus")
    parser.add_argument("--name", default=None, help="replay name (default: archive + time)")
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--region", default=None)
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the replay to finish")
    args = parser.parse_args(argv)
    state = replay_from_archive(args.archive, args.start, args.end, client=events_client(args.endpoint, args.region),
                                bus=args.bus, name=args.name, wait_s=args.wait)
    print(json.dumps(state, indent=2, default=str))
    return 0 if state["State"] == "COMPLETED" else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] == "eventbridge":
        return _eventbridge(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m connectors.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="archive", required=True, help="archive directory or file")
    parser.add_argument("--to", required=True, type=_stream, help="kinesis://STREAM for metric records")
    # argparse passes a string default through ``type`` too: the default is written as a URL.
    parser.add_argument("--events-to", type=_stream, default="kinesis://adops-events-stream",
                        help="kinesis://STREAM for event records (default kinesis://adops-events-stream)")
    parser.add_argument("--only", choices=[METRICS, EVENTS], default=None, help="replay one kind only")
    parser.add_argument("--speed", type=replay_speed, default="max", help="event-time speed-up, e.g. 60x, or max")
    parser.add_argument("--per-key-batch", type=whole_number(1), default=1,
                        help="records of one key per PutRecords call; 1 (default) guarantees per-key order "
                             "through partial failures, more trades that for fewer calls")
    parser.add_argument("--max-skew", type=finite_number("seconds", 0), default=10.0,
                        help="seconds of event time a record may be overtaken by later ones (default 10)")
    parser.add_argument("--endpoint", default=None, help="endpoint URL (default: AWS_ENDPOINT_URL or AWS)")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    streams = {METRICS: args.to, EVENTS: args.events_to}
    if args.only:
        streams = {args.only: streams[args.only]}
    stats = replay_archive(args.archive, streams, client=kinesis_client(args.endpoint, args.region),
                           speed=args.speed, per_key_limit=args.per_key_batch,
                           max_skew_s=args.max_skew)
    print(json.dumps(stats.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
