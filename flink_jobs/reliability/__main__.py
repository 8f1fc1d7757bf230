"""python -m flink_jobs.reliability --out FILE.json

Runs the streaming job (flink_jobs.main, source kinesis-local) on the Flink
mini-cluster against the embedded endpoint, through the fault proxy, and writes
measured figures:

1. clean     the simulator's traffic, no fault: the reference incident set;
2. fuzz      the same traffic + >= 10,000 malformed records, late and edge records;
3. restart   stop with a savepoint mid-stream, restore; a kill -9, restore; and a
             savepoint restored at another parallelism (--rescale-to; the job runs at 2);
4. sink      EventBridge throttling, partial failures, a 30 s outage (proxy); the job
             is stopped only after the fault schedule is over and the sink has drained
             (deliveries and DELIVERY_FAILED dead letters quiet for 20 s);
5. source    GetRecords expired iterators and throughput exceeded, and a split of
             every shard while the job runs.

Eleven job launches (each restart scenario launches twice); about 15-20 minutes on 2 cores (19 on a slow day).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from connectors.kinesis.flink_source import DEFAULT_MAX_PARALLELISM as MAX_PARALLELISM
from flink_jobs.reliability.scenarios import JOB_SETTINGS, Harness, job_parallelism_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flink_jobs.reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="figures JSON file")
    parser.add_argument("--workdir", default="/tmp/adops-reliability", help="scratch: endpoint logs, job logs, outputs")
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--bad-records", type=int, default=10_000)
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rescale-to", type=int, default=3,
                        help="restart_rescale: the restored job's parallelism (3: key groups split unevenly)")
    parser.add_argument("--only", action="append", default=[],
                        choices=["clean", "backlog", "fuzz", "restart_savepoint", "restart_kill", "restart_rescale",
                                 "sink_faults", "source_faults"],
                        help="run only these scenarios (clean always runs: it is the reference)")
    args = parser.parse_args(argv)
    job_parallelism = job_parallelism_of(JOB_SETTINGS)
    if not 1 <= args.rescale_to <= MAX_PARALLELISM or args.rescale_to == job_parallelism:
        parser.error(f"--rescale-to {args.rescale_to}: expected another parallelism than the job's "
                     f"{job_parallelism}, from 1 to the max parallelism {MAX_PARALLELISM}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    harness = Harness(Path(args.workdir), editors=args.editors, hours=args.hours, seed=args.seed)
    try:
        figures = harness.run_all(bad_records=args.bad_records, outage_s=args.outage_s, only=set(args.only),
                                   rescale_to=args.rescale_to)
    finally:
        harness.close()
    figures["harness_seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2, sort_keys=False, default=str) + "\n")
    print(json.dumps(figures.get("summary", {}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
