"""Benchmark figures for the detectors: NAB scores, cost per update, state size.

    python -m detectors.benchmark --out detectors/benchmark.json \\
        [--data ../shared/nab/data] [--windows ../shared/nab/labels/combined_windows.json] \\
        [--detectors ensemble,windowed_gaussian] [--workers 2]

For every detector:

* **NAB scores** (standard, reward_low_FP_rate, reward_low_FN_rate): the
  corpus is run with :func:`detectors.nab.runner.run_corpus` (NAB-format
  result files, in a temporary directory unless ``--results`` is given) and
  scored with :func:`detectors.nab.scorer.score_results`, i.e. exactly what
  ``python -m detectors.nab run`` / ``score`` do. One set of default
  parameters for every file.
* **Cost per update**: µs of ``update`` over every row of every file, in this
  process: CPU time (``time.process_time``, the cost itself) and wall-clock
  time (inflated when the machine is shared), with the load average.
* **State size**: ``len(to_bytes())`` after each file's last row (max, mean),
  and the CPU µs of ``to_bytes`` / ``from_bytes`` of those states.

Nothing is hard-coded: every figure in the JSON is measured by this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import detectors
from detectors.nab import corpus, runner, scorer

_REPO = Path(__file__).resolve().parent.parent
DEFAULT_NAB = (_REPO.parent / "shared" / "nab") if (_REPO.parent / "shared" / "nab").is_dir() else Path("/work/shared/nab")
TARGETS = {"nab_standard_min": 70.0, "state_bytes_max": 4096, "us_per_update_max": 50.0}


def measure_cost(name: str, data_dir: Path, keys: list[str], params: dict | None = None) -> dict:
    """Time ``update`` on every row of every file (one process) and size the final states."""
    total_rows = 0
    total_s = 0.0
    total_cpu = 0.0
    sizes = []
    ser_cpu: list[float] = []
    de_cpu: list[float] = []
    per_file = {}
    for key in keys:
        df = corpus.read_data_file(data_dir, key)
        ts = df.epoch_seconds().tolist()
        vs = df.values().tolist()
        d = detectors.make(name, **(params or {}))
        update = d.update
        t0 = time.perf_counter()
        c0 = time.process_time()
        for t, v in zip(ts, vs):
            update(t, v)
        cpu = time.process_time() - c0
        elapsed = time.perf_counter() - t0
        total_rows += len(vs)
        total_s += elapsed
        total_cpu += cpu
        blob = d.to_bytes()
        size = len(blob)
        sizes.append(size)
        c0 = time.process_time()
        for _ in range(20):
            d.to_bytes()
        c1 = time.process_time()
        for _ in range(20):
            detectors.from_bytes(blob)
        ser_cpu.append((c1 - c0) / 20)
        de_cpu.append((time.process_time() - c1) / 20)
        per_file[key] = {"rows": len(vs), "cpu_us_per_update": round(cpu / len(vs) * 1e6, 2),
                         "wall_us_per_update": round(elapsed / len(vs) * 1e6, 2), "state_bytes": size}
    return {
        "us_per_update": round(total_cpu / total_rows * 1e6, 2),
        "cpu_us_per_update": round(total_cpu / total_rows * 1e6, 2),
        "wall_us_per_update": round(total_s / total_rows * 1e6, 2),
        "rows": total_rows,
        "state_bytes_max": max(sizes),
        "state_bytes_mean": round(sum(sizes) / len(sizes), 1),
        "to_bytes_cpu_us": round(sum(ser_cpu) / len(ser_cpu) * 1e6, 1),
        "from_bytes_cpu_us": round(sum(de_cpu) / len(de_cpu) * 1e6, 1),
        "per_file": per_file,
    }


def nab_scores(name: str, data_dir: Path, windows: Path, results_dir: Path, workers: int,
               params: dict | None = None) -> dict:
    runner.run_corpus(data_dir, windows, results_dir, detector=name, workers=workers, params=params or {})
    report = scorer.score_results(results_dir, data_dir, windows, [name])[name]
    return {
        profile: {"score": round(cs.normalized, 2), "threshold": cs.threshold, "raw": round(cs.raw, 4),
                  **cs.counts}
        for profile, cs in report.items()
    }


def run(out: Path, data_dir: Path, windows: Path, names: list[str], workers: int,
        results_dir: Path | None = None) -> dict:
    keys = corpus.find_data_files(data_dir)
    report = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m detectors.benchmark " + " ".join(sys.argv[1:]),
        "data_dir": str(data_dir),
        "windows": str(windows),
        "files": len(keys),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "targets": TARGETS,
        "detectors": {},
    }
    with tempfile.TemporaryDirectory(prefix="nab-results-") as tmp:
        base = Path(results_dir) if results_dir else Path(tmp)
        for name in names:
            entry: dict = {}
            t0 = time.perf_counter()
            entry["nab"] = nab_scores(name, data_dir, windows, base, workers)
            entry["nab_wall_s"] = round(time.perf_counter() - t0, 1)
            load_before = os.getloadavg()[0]
            entry["cost"] = measure_cost(name, data_dir, keys)
            entry["cost"]["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            entry["meets_targets"] = {
                "nab_standard": entry["nab"]["standard"]["score"] >= TARGETS["nab_standard_min"],
                "state_bytes": entry["cost"]["state_bytes_max"] <= TARGETS["state_bytes_max"],
                "us_per_update": entry["cost"]["us_per_update"] <= TARGETS["us_per_update_max"],
            }
            report["detectors"][name] = entry
            print(f"{name}: NAB " + ", ".join(f"{p} {v['score']}" for p, v in entry["nab"].items())
                  + f"; {entry['cost']['cpu_us_per_update']} µs CPU ({entry['cost']['wall_us_per_update']} wall) per update"
                  + f"; state ≤ {entry['cost']['state_bytes_max']} B",
                  file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detectors.benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--data", type=Path, default=DEFAULT_NAB / "data")
    p.add_argument("--windows", type=Path, default=DEFAULT_NAB / "labels" / "combined_windows.json")
    p.add_argument("--detectors", default="ensemble,windowed_gaussian", help="comma-separated registry names")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--results", type=Path, default=None, help="keep the NAB result files here")
    args = p.parse_args(argv)
    run(args.out, args.data, args.windows, [n for n in args.detectors.split(",") if n], args.workers, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
