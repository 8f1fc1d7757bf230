"""Benchmark of the streaming job, measured in one run on this machine.

    python -m flink_jobs.benchmark --out flink_jobs/bench/flink.json [--rows 2000000] [--editors 140] [--stages]

(a) throughput: metric records/s through the FULL job (SQL parse + windows +
    Python editor and partner operators, each scoring and deciding + EventBridge sink) from
    the datagen source (JSON payloads built in SQL, sql/sources/datagen_metrics.sql),
    and beside it the pure-SQL baseline: the same source, parse and windows into a
    blackhole, no Python operator. Both are bounded runs of --rows rows; the rate
    is rows / wall time from submission to the end of the job, minus the measured
    start-up of an empty-input run of the same pipeline (reported separately). The runs
    share one JVM, so the first pays the JIT compiler's warm-up, and every later run less
    than the one before. So each pipeline runs twice, interleaved: baseline, full job (and
    the --compare-mode runs), baseline again (pure_sql_baseline_last), full job again
    (full_pipeline_last); the ratio uses each pipeline's faster run. (From 5b1d65d until
    2026-12-05 only the baseline ran twice, so it alone got a second, warmer chance.)
    `--compare-property group.key=value` adds the full job with that one setting changed, once in
    each round (after the full job in the first, before it in the second): an A/B in the same JVM
    and hour. The execution mode (--compare-mode) and the row count (--rows) are not properties to
    compare: the runs' labels and rates would not say what ran.
(b) local Kinesis: records/s through the boto3 path
    (connectors.kinesis.benchmark.measure_kinesis_throughput).
(c) latency: the full job on Kinesis (embedded endpoint, core stack) fed
    --editors scripted editors (14 h history, then an incident window each, three editors in
    four; the incidents spread over LATENCY_INCIDENT_WINDOWS consecutive window ends, so the
    percentiles come from several bursts, not one); per delivered event, from the moment the
    window's row reached the editor operator (the window operator emits it as the watermark
    passes the window end; until 2026-12-07 the start was the correlator's timer, after the
    scoring of that watermark's rows) to PutEvents returning: the sink's latency log
    (connectors.eventbridge.flink_sink). The runs before 2026-12-07 had 40 editors, 30 events
    from one window end, so their p99 was about their maximum.
    A part that fails is recorded under "errors" in the JSON (the others still run; exit 1).
(d) state: bytes per (editor, metric) of the scoring state (udfs/metric_detector.py)
    (the model snapshot, the journal since it, the trailing baseline) over the warm-up, and the size
    of the job's last retained checkpoint (every operator's state, the duplicate marking's
    per-payload counters among it) divided by its (editor, metric) keys.

(e) with --stages, where the pure-SQL path's time goes: the path cut after each of its steps
    (datagen's payloads alone; + parse; + duplicate marking; + windows, the baseline itself), each
    run twice like the throughput runs, with its CPU per record and what each step adds.

(Until 2026-12-05 another (e), a "scorer stage", ran the per-metric window scorer alone. The scorer
is now part of the editor and partner operators (udfs/correlator.py), so there is no
stage to isolate; the bullets below that cite it describe the job before that change.)

Every throughput run also reports the CPU seconds of the whole process tree
(this client, the mini-cluster JVM, PyFlink's Python workers) and of its Python
part (`ProcessTreeCpu`): on the shared 2-core machine the wall-clock rates move
with the other jobs' load, CPU seconds per run much less.

Where the full job's time goes (profiled 2026-11-25 with py-spy on the Python side,
400k/150k datagen rows, parallelism 2; load average 50-170 on the 2 shared cores, so
CPU seconds, not wall rates, are the comparable figures):
  * Rows into Python: since partner windows are per (partner, editor, metric), a
    5-min window of this datagen (every record carries a partner) gives ~2,000 editor
    rows and ~13,500 partner rows (measured 13,493 / 13,618): ~0.5 scorer calls per
    record, not "once per key and window" of a few hundred records.
  * udfs/correlator.py (helper Q's) collects a window's results as ONE JSON list in
    MapState, re-read and re-written on every result: O(n^2) per window. ~1,700
    results per partner window -> 13.9 ms per result, 23.6 s per partner window
    (standalone, same code). This dominates the full job; the fix belongs there.
  * WindowScorer logic alone: ~0.1 ms CPU per window (update ~30 us, to_bytes ~46 us,
    baseline ~15 us); PyFlink around it (Beam state API round trips, coders) costs
    ~10x that. One ``scorer`` state per key instead of two (model + history) cut the
    Python CPU of the scorer stage from 111.7 / 109.1 s to 79.5 / 76.9 s for 150k rows
    (two A/B pairs; whole process tree 189.8 / 182.6 -> 146.3 / 138.8 CPU s).
  * PyFlink runs a local mini-cluster's Python workers in "loopback" mode: threads
    of the client process, one GIL for both subtasks. ``_python_worker_execution_mode=
    process`` (PyFlink's own switch; Managed Flink always runs process mode) gives
    one worker process per slot: same Python CPU (118.7 s vs 111.7 s), a longer
    start (29 s vs 14 s for a one-row run at that load); its wall-clock gain on two
    free cores is not measured yet (the machine was never quiet), so it is not the default.
  * PyFlink's "thread" execution mode (python.execution-mode=thread: Python embedded in
    the JVM through pemja, no Beam gRPC or bundles). Scorer stage, 150k rows, load ~2.5
    (2026-12-04): 10,218 rec/s and 36.2 CPU s against 3,437 rec/s and 77.7 CPU s in the
    default mode, back to back. The whole job first failed in it: PyFlink 2.2's embedded
    RuntimeContext calls a Java method Flink 2.0 removed (getIndexOfThisSubtask), so every
    sink that names its files by subtask failed in open(). connectors/flink_runtime.py works
    around it, and thread mode is now the job's local default (job.python.execution.mode;
    flink_jobs/main.py PYTHON_EXECUTION_MODES). `--compare-mode process` runs the full
    pipeline in the old mode too. In thread mode the Python CPU is the JVM's, so
    cpu_s_python counts only this client.
  * Thread mode, profiled 2026-12-05 with py-spy attached to the mini-cluster JVM (400k rows,
    all-partners datagen), shares of all Python samples: WindowScorer.process_element ~70%,
    of which the state write (a JVM call) ~20%, score_window ~14% and to_bytes ~11%; the
    correlator and the partner check together ~18%. Calls into the JVM (current key, counters,
    state lookups) were each a few percent, which is why the scorer and the correlator now
    avoid the ones they can.

  * Per thread, 2026-12-05, after the parse reads each JSON field once (sql/README.md): CPU
    seconds of the mini-cluster JVM's threads from /proc over 15 s of a full-job run (400k
    datagen rows, parallelism 2, thread mode): 28.6 s in all, both cores busy. Parse chain
    8.9, scorer with its chained key-by maps 5.7, duplicate marking + DataStream round trip +
    local window aggregation 4.7, the JIT compiler (C2) 4.4, the key-by map before the scorer
    1.2, partner health 0.9, correlator 0.8. The pure-SQL baseline over 8 s: 15.0 s in all,
    parse 8.0, marking chain 3.2, C2 2.7. That is about 90 us of CPU per record for the
    baseline and 170 us for the full job; 200k records/s on 2 cores leaves 10 us. The same
    split, taken by the benchmark itself: flink_jobs/bench/flink-throughput-cpu-by-thread.json (and at
    parallelism 1, -parallelism-1.json, where the same rows cost about half the CPU seconds).
  * After the pivot (one Python row per editor or partner window), 2M rows: the Python operators
    took ~40 of the full job's ~114 CPU s, on about one core (one interpreter in thread mode).
    Per (series, window), outside Flink: ~97 us, of which serialising the model ~34 and the
    trailing baseline's JSON ~12. The models are now serialised once in
    processing.model.snapshot.windows windows, with a journal in between (udfs/metric_detector.py),
    and the baseline history is a tuple: ~54 us (flink_jobs/bench/README.md, "The 0.7x target").

No figure is invented: everything in the JSON is measured in this run, and
the machine's load average is recorded beside it (2 shared cores here).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from flink_jobs.config import ConfigError, JobConfig

log = logging.getLogger(__name__)

#: Consecutive windows the latency run's incidents close in (flink_jobs/job_scenario.scaled_records).
LATENCY_INCIDENT_WINDOWS = 4


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class ProcessTreeCpu:
    """CPU seconds used by this process and all its descendants (the mini-cluster JVM, PyFlink's
    Python workers) while a job runs, from /proc: less sensitive to other jobs on the shared
    cores than wall time. Sampled every 0.25 s, so a worker that exits between two samples
    loses at most its last 0.25 s. 'python' counts this process (in PyFlink's loopback mode the
    UDF workers are threads here) and every Python descendant (process mode workers).

    Also per thread, summed by thread name (`cpu_s_by_thread`, the largest 12 by default): Flink names a
    task thread after its operator chain, which the kernel cuts to 15 characters
    ("Legacy Source T" is a datagen source chain with its parse, "editor-correlat" the editor operator),
    and both subtasks' threads of one chain share the name. In thread mode the Python operators
    run in their task threads, so this shows where the job's time goes. Its cost to the run:
    6.5 ms of this client's CPU per sample with a full job's JVM in the tree (measured
    2026-12-05), about 2.6 % of one core at four samples a second."""

    _TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self):
        import threading

        self._seen: dict[int, tuple[str, float]] = {}
        self._start: dict[int, float] = {}
        self._threads: dict[tuple[int, int], tuple[str, float]] = {}
        self._threads_start: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _read_stat(path: str) -> tuple[str, int, float] | None:
        """(name, parent pid, user + system CPU seconds) from a /proc stat file (the name, in
        parentheses, may contain spaces)."""
        try:
            raw = Path(path).read_text()
        except OSError:
            return None
        fields = raw[raw.rindex(")") + 2:].split()
        return (raw[raw.index("(") + 1:raw.rindex(")")], int(fields[1]),
                (int(fields[11]) + int(fields[12])) / ProcessTreeCpu._TICK)

    @staticmethod
    def _stat(pid: int) -> tuple[int, str, float] | None:
        st = ProcessTreeCpu._read_stat(f"/proc/{pid}/stat")
        return None if st is None else (st[1], st[0], st[2])

    @staticmethod
    def _thread_stats(pid: int) -> dict[tuple[int, int], tuple[str, float]]:
        out = {}
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            return out
        for tid in tids:
            st = ProcessTreeCpu._read_stat(f"/proc/{pid}/task/{tid}/stat")
            if st is not None:
                out[(pid, tid)] = (st[0], st[2])
        return out

    def _sample(self) -> None:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                st = self._stat(int(entry.name))
                if st:
                    stats[int(entry.name)] = st
        tree, frontier = {os.getpid()}, [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        for pid in tree:
            if pid in stats:
                self._seen[pid] = (stats[pid][1], stats[pid][2])
                self._threads.update(self._thread_stats(pid))

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __enter__(self):
        self._sample()
        self._start = {pid: cpu for pid, (_, cpu) in self._seen.items()}
        self._threads_start = {key: cpu for key, (_, cpu) in self._threads.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    def result(self, top: int | None = 12) -> dict:
        used = {pid: cpu - self._start.get(pid, 0.0) for pid, (_, cpu) in self._seen.items()}
        python = sum(v for pid, v in used.items() if pid == os.getpid() or self._seen[pid][0].startswith("python"))
        by_thread: dict[str, float] = {}
        for key, (name, cpu) in self._threads.items():
            by_thread[name] = by_thread.get(name, 0.0) + cpu - self._threads_start.get(key, 0.0)
        largest = sorted(by_thread.items(), key=lambda kv: -kv[1])[:top]
        return {"cpu_s_total": round(sum(used.values()), 1), "cpu_s_python": round(python, 1),
                "cpu_s_by_thread": {name: round(cpu, 1) for name, cpu in largest}}


def _commit() -> str | None:
    """The repository's commit (with "-dirty" when the tree has changes), so a figure names the code it measured."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def _run_bounded(cfg: JobConfig, *, sql_only: bool, timeout_s: float) -> dict:
    from flink_jobs.main import start_job

    with ProcessTreeCpu() as cpu:
        t0 = time.perf_counter()
        handle = start_job(cfg, "datagen", sql_only=sql_only)
        t1 = time.perf_counter()
        try:
            state = handle.wait(timeout_s)
        except TimeoutError:
            # cancelled, not left running in this JVM beside the parts measured after it
            handle.cancel()
            raise
        t2 = time.perf_counter()
    if state != "FINISHED":
        raise RuntimeError(f"benchmark job ended {state}: {(handle.failure or '')[:2000]}")
    return {"build_submit_s": round(t1 - t0, 2), "run_s": round(t2 - t1, 2), **cpu.result()}


def _datagen_overrides(parallelism: int, workdir: Path, rows: int) -> list[str]:
    """The properties of every throughput run: an unthrottled datagen of the benchmark's shape, no checkpoints.

    Its event time ends an hour before now: the full job's CloudWatch sink then publishes every
    editor window (CloudWatch refuses, and the sink skips, datums older than two weeks, which the
    property file's fixed start would be), so the figure includes PutMetricData."""
    ms_per_row = 10
    start_ms = (int(time.time()) - 3600) * 1000 - rows * ms_per_row
    start_ms -= start_ms % 300_000
    return [
        f"job.parallelism={parallelism}",
        f"datagen.start.epoch.ms={start_ms}",
        "job.checkpoint.interval.ms=0",
        f"job.checkpoint.dir={workdir / 'ckpt-throughput'}",
        "datagen.rows.per.second=1000000000",
        "datagen.editors=200", "datagen.partners=8", "datagen.partners.per.editor=3", f"datagen.ms.per.row={ms_per_row}",
        f"deadletter.path={workdir / 'dl'}", f"deadletter.late.path={workdir / 'late'}",
    ]


#: The pure-SQL path cut after each of its steps, in flow order; each stage is the one before plus one step.
#: "windows" is the whole pure-SQL baseline (build_pipeline(sql_only=True)).
STAGES = {
    "source": "datagen building each JSON payload (sql/sources/datagen_metrics.sql), into a blackhole",
    "parse": "+ the parse and validation (sql/parse/metrics.sql)",
    "duplicates": "+ duplicate marking (sql/parse/duplicates.sql), with its hash exchange of every row",
    "windows": "+ the DataStream round trip (materialize) and the editor and partner windows: the baseline",
}


def _run_stage(cfg: JobConfig, stage: str, timeout_s: float) -> dict:
    """One bounded run of the pure-SQL path cut after ``stage`` (STAGES), with its CPU split."""
    if stage == "windows":
        return _run_bounded(cfg, sql_only=True, timeout_s=timeout_s)
    from pyflink.table import Schema, TableDescriptor

    from flink_jobs import main as job

    s = job.Settings.from_config(cfg)
    env, t_env = job.create_environments(s)
    raw, _ = job.create_sources(t_env, env, cfg, s, "datagen")
    if stage == "source":
        table = t_env.sql_query(f"SELECT payload FROM {raw}")
    elif stage == "parse":
        table = t_env.sql_query(job.render_sql("parse/metrics.sql", source_table=raw,
                                               max_metric_value=s.max_metric_value, **job._common_params(s)))
    else:   # "duplicates": the parse and the marking, as the job does them
        table = job.parse_metrics(t_env, s, raw)
    schema = Schema.new_builder().from_row_data_type(table.get_resolved_schema().to_physical_row_data_type()).build()
    with ProcessTreeCpu() as cpu:
        t0 = time.perf_counter()
        result = table.execute_insert(TableDescriptor.for_connector("blackhole").schema(schema).build())
        try:
            result.wait(int(timeout_s * 1000))
        except Exception:
            # a timeout (or a failure) must not leave the stage running beside the parts measured after it
            job_client = result.get_job_client()
            if job_client is not None:
                try:
                    job_client.cancel().result()
                except Exception:       # it had ended already
                    pass
            raise
        t1 = time.perf_counter()
    # run_s includes building and submitting the job here (execute_insert does both); the one-row
    # run subtracted from it does too.
    return {"run_s": round(t1 - t0, 2), **cpu.result()}


def measure_stages(rows: int, parallelism: int, workdir: Path, timeout_s: float) -> dict:
    """Where the pure-SQL path's time goes: the path cut after each step (STAGES), --rows rows each.

    Each stage runs twice, interleaved in flow order (as the throughput runs, so no stage gets a
    warmer JVM than the others), and is taken at its faster run; rates subtract a one-row run's
    start-up as the throughput runs do, and ``cpu_us_per_record`` (the whole process tree's CPU per
    row) subtracts that run's CPU the same way; ``added_cpu_us_per_record`` is what a stage adds to
    the one before.
    """
    base = _datagen_overrides(parallelism, workdir, rows)
    runs: dict[str, list[dict]] = {stage: [] for stage in STAGES}
    for _ in range(2):
        for stage in STAGES:
            startup = _run_stage(JobConfig.load(environ={}, overrides=base + ["datagen.number.of.rows=1"]),
                                 stage, timeout_s)
            run = _run_stage(JobConfig.load(environ={}, overrides=base + [f"datagen.number.of.rows={rows}"]),
                             stage, timeout_s)
            runs[stage].append({
                "wall_run_s": run["run_s"], "startup_run_s_one_row": startup["run_s"],
                "records_per_s": round(rows / max(run["run_s"] - startup["run_s"], 1e-3)),
                "cpu_s_total": run["cpu_s_total"], "startup_cpu_s_total": startup["cpu_s_total"],
                "cpu_s_by_thread": run["cpu_s_by_thread"], "load_average_after": _load(),
            })
    return {"rows": rows, "parallelism": parallelism, "stages": dict(STAGES), "runs": runs,
            **stage_summary(runs, rows)}


def stage_summary(runs: dict[str, list[dict]], rows: int) -> dict:
    """Per stage, in flow order: its faster run's rate, CPU per row (the one-row run's CPU
    subtracted) and the CPU per row it adds to the stage before.

    >>> runs = {"source": [{"records_per_s": 400, "cpu_s_total": 3.0, "startup_cpu_s_total": 1.0},
    ...                    {"records_per_s": 500, "cpu_s_total": 2.5, "startup_cpu_s_total": 0.5}],
    ...         "parse": [{"records_per_s": 100, "cpu_s_total": 12.5, "startup_cpu_s_total": 0.5}]}
    >>> stage_summary(runs, 1_000_000)["parse"]
    {'records_per_s': 100, 'cpu_us_per_record': 12.0, 'added_cpu_us_per_record': 10.0}
    """
    out, previous = {}, 0.0
    for stage, stage_runs in runs.items():
        best = max(stage_runs, key=lambda r: r["records_per_s"])
        per_record = round(max(best["cpu_s_total"] - best["startup_cpu_s_total"], 0.0) / rows * 1e6, 2)
        out[stage] = {"records_per_s": best["records_per_s"], "cpu_us_per_record": per_record,
                      "added_cpu_us_per_record": round(per_record - previous, 2)}
        previous = per_record
    return out


def throughput_runs(default_mode: str, compare_modes: tuple[str, ...] = (),
                    compare_properties: tuple[str, ...] = ()) -> list[tuple[str, bool, str, list[str]]]:
    """The throughput runs in order: (label, pure SQL?, python.execution.mode, property overrides).

    >>> [r[0] for r in throughput_runs("thread", ("process",), ("job.python.gc.threshold=700",))]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['pure_sql_baseline', 'full_pipeline', 'full_pipeline_process_mode', 'full_pipeline_job_python_gc_threshold_700',
     'full_pipeline_cloudwatch', 'pure_sql_baseline_last', 'full_pipeline_job_python_gc_threshold_700_last',
     'full_pipeline_last']
    """
    # All runs share one JVM (PyFlink's gateway hosts the mini-cluster), so the first run pays the JIT
    # compiler's warm-up for the SQL they share, and each later run a little less. Both pipelines
    # therefore run twice, interleaved, and each is taken at its faster run: neither gets a warmer
    # JVM than the other. (The compared modes run once, between the two rounds; the compared
    # properties once in each round, below.)
    # The full pipeline as the Managed Flink template configures it also runs once, between the
    # rounds: with the CloudWatch sink on (off in the local defaults; README, "Window means on
    # CloudWatch"). Here it publishes to the embedded endpoint, whose server shares the two cores.
    runs: list[tuple[str, bool, str, list[str]]] = [("pure_sql_baseline", True, default_mode, []),
                                                    ("full_pipeline", False, default_mode, [])]
    runs += [(f"full_pipeline_{mode}_mode", False, mode, []) for mode in compare_modes if mode != default_mode]
    compared = [(f"full_pipeline_{re.sub(r'[^A-Za-z0-9]+', '_', prop)}", False, default_mode, [prop])
                for prop in compare_properties]
    runs += compared
    runs += [("full_pipeline_cloudwatch", False, default_mode, ["cloudwatch.metrics.enabled=true"])]
    # The second round runs the compared settings before the full job (A B, B A): neither side always
    # comes last, at the run's highest load.
    runs += [("pure_sql_baseline_last", True, default_mode, [])]
    runs += [(f"{label}_last", sql_only, mode, extra) for label, sql_only, mode, extra in compared]
    runs += [("full_pipeline_last", False, default_mode, [])]
    return runs


def throughput_ratios(out: dict, runs: list, default_mode: str) -> dict:
    """Each pipeline at its faster run over the baseline at its faster run.

    >>> runs = throughput_runs("thread", (), ("job.python.gc.threshold=700",))
    >>> rates = dict(zip([r[0] for r in runs], [50, 30, 31, 20, 55, 29, 33]))
    >>> out = {label: {"records_per_s": rate} for label, rate in rates.items()}
    >>> ratios = throughput_ratios(out, runs, "thread")
    >>> ratios["full_over_baseline"], ratios["full_job_python_gc_threshold_700_over_baseline"]
    (0.6, 0.564)
    """
    baseline = max(out["pure_sql_baseline"]["records_per_s"], out["pure_sql_baseline_last"]["records_per_s"])
    full = max(out["full_pipeline"]["records_per_s"], out["full_pipeline_last"]["records_per_s"])
    ratios = {"baseline_records_per_s_for_ratios": baseline, "full_records_per_s_for_ratios": full,
              "full_over_baseline": round(full / baseline, 3)}
    for label, _, mode, extra in runs:
        if label.endswith("_last"):
            continue
        if mode != default_mode or extra:  # full_pipeline_process_mode -> full_process_mode_over_baseline
            rate = max(out[label]["records_per_s"], out.get(f"{label}_last", {}).get("records_per_s", 0))
            ratios[label.replace("full_pipeline", "full") + "_over_baseline"] = round(rate / baseline, 3)
    return ratios


def measure_throughput(rows: int, parallelism: int, workdir: Path, endpoint_url: str, bus: str,
                       timeout_s: float, compare_modes: tuple[str, ...] = (), out: dict | None = None,
                       compare_properties: tuple[str, ...] = ()) -> dict:
    """The paired runs; ``out`` (filled in place) keeps the runs measured before one that fails.

    ``compare_properties`` (``group.key=value``): the full pipeline with that override too, once in
    each round (after the full job in the first, before it in the second), taken at its faster run as
    the full job is (an A/B of one setting in the same JVM and hour; ``full_pipeline_<group_key_value>``)."""
    base = _datagen_overrides(parallelism, workdir, rows) + [
        f"eventbridge.endpoint.url={endpoint_url}", f"eventbridge.bus.name={bus}"]
    default_mode = JobConfig.load(environ={}).get_str("job", "python.execution.mode")
    out = {} if out is None else out
    out.update({"rows": rows, "parallelism": parallelism, "python_execution_mode": default_mode})
    runs = throughput_runs(default_mode, compare_modes, compare_properties)
    for label, sql_only, mode, extra in runs:
        mode_base = base + [f"job.python.execution.mode={mode}"] + extra
        startup = _run_bounded(JobConfig.load(environ={}, overrides=mode_base + ["datagen.number.of.rows=1"]),
                               sql_only=sql_only, timeout_s=timeout_s)
        run = _run_bounded(JobConfig.load(environ={}, overrides=mode_base + [f"datagen.number.of.rows={rows}"]),
                           sql_only=sql_only, timeout_s=timeout_s)
        processing = max(run["run_s"] - startup["run_s"], 1e-3)
        out[label] = {
            "python_execution_mode": mode,
            "wall_run_s": run["run_s"], "startup_run_s_one_row": startup["run_s"],
            "cpu_s_total": run["cpu_s_total"], "cpu_s_python": run["cpu_s_python"],
            "cpu_s_by_thread": run["cpu_s_by_thread"],
            "startup_cpu_s_total": startup["cpu_s_total"],
            "records_per_s_including_startup": round(rows / run["run_s"]),
            "records_per_s": round(rows / processing),
            "load_average_after": _load(),
        }
    out.update(throughput_ratios(out, runs, default_mode))
    return out


def measure_kinesis(records: int, parallelism: int) -> dict:
    from connectors.kinesis.benchmark import measure_kinesis_throughput

    return measure_kinesis_throughput(records=records, shards=2, parallelism=parallelism)


def measure_latency_and_state(editors: int, parallelism: int, workdir: Path, timeout_s: float) -> dict:
    import boto3

    from deploy.local.endpoint import start_endpoint
    from deploy.local.stack import deploy_core_stack
    from flink_jobs import job_scenario as js
    from flink_jobs.main import start_job

    endpoint = start_endpoint(port=0, log_dir=workdir / "aws")
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": endpoint.url, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        stack = deploy_core_stack(endpoint.url)  # LOCAL_PARAMETERS, as make run
        latency_dir = workdir / "latency"
        latency_dir.mkdir(parents=True, exist_ok=True)
        ckpt = workdir / "ckpt-latency"
        cfg = JobConfig.load(environ={}, overrides=[
            f"job.parallelism={parallelism}", "job.checkpoint.interval.ms=5000", f"job.checkpoint.dir={ckpt}",
            f"kinesis.endpoint.url={endpoint.url}", f"kinesis.metrics.stream.name={stack['metrics_stream']}",
            f"kinesis.events.stream.name={stack['events_stream']}", "kinesis.start.position=TRIM_HORIZON",
            f"eventbridge.endpoint.url={endpoint.url}", f"eventbridge.bus.name={stack['bus_name']}",
            f"eventbridge.latency.log.path={latency_dir / 'latency.jsonl'}",
            f"deadletter.path={workdir / 'dl-latency'}", f"deadletter.late.path={workdir / 'late-latency'}",
            "processing.idle.timeout.s=3",
        ])
        # The incidents close over LATENCY_INCIDENT_WINDOWS windows, so the percentiles are taken over
        # several window ends (each a burst of events into the sink), not one.
        start = js.window_start(time.time(), LATENCY_INCIDENT_WINDOWS)
        records = js.scaled_records(editors, start, LATENCY_INCIDENT_WINDOWS)
        kinesis = boto3.client("kinesis")
        handle = start_job(cfg, "kinesis-local")
        try:
            for i in range(0, len(records), 500):
                batch = [{"PartitionKey": k, "Data": d.encode()} for k, d in records[i:i + 500]]
                for _attempt in range(10):             # a record Kinesis refused is put again
                    answer = kinesis.put_records(StreamName=stack["metrics_stream"], Records=batch)
                    batch = [r for r, o in zip(batch, answer["Records"]) if o.get("ErrorCode")]
                    if not batch:
                        break
                    time.sleep(0.2)
                else:
                    raise RuntimeError(f"{len(batch)} records still refused by PutRecords after 10 attempts")
            incident_editors = sum(1 for i in range(editors) if list(js.INCIDENTS)[i % 4] != "e-normal")
            deadline = time.monotonic() + timeout_s
            entries: list[dict] = []
            while time.monotonic() < deadline:
                entries = _read_latency(latency_dir)
                if len(entries) >= incident_editors:
                    break
                time.sleep(2)
            time.sleep(12)  # let at least two checkpoints complete with the final state
            entries = _read_latency(latency_dir)
        finally:
            handle.cancel()
        lat = sorted(float(e["latency_ms"]) for e in entries)
        latency = {
            "editors": editors, "metric_records": len(records), "events_delivered": len(lat),
            "incident_window_ends": LATENCY_INCIDENT_WINDOWS,
            "definition": "window row reached the editor operator (the window operator emits it as the watermark "
                          "passes the window end) -> PutEvents returned; includes the scoring and the timer's wait",
        }
        if lat:
            latency.update({"p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": lat[-1],
                            "mean_ms": round(statistics.fmean(lat), 1)})
            # Where the time goes, per event: correlator -> sink operator (PyFlink bundles,
            # network buffers), waiting in the sink's buffer for its flush, and PutEvents itself.
            parts = {"upstream_ms": ("emitted_at_ms", "received_at_ms"),
                     "buffer_wait_ms": ("received_at_ms", "flush_started_ms"),
                     "put_events_ms": ("flush_started_ms", "delivered_at_ms")}
            breakdown = {}
            for label, (begin, end) in parts.items():
                values = sorted(float(e[end]) - float(e[begin]) for e in entries if e.get(begin) and e.get(end))
                if values:
                    breakdown[label] = {"p50": _pct(values, 50), "p99": _pct(values, 99), "max": values[-1]}
            latency["breakdown"] = breakdown
        keys = editors * len(js.METRICS)
        latest = _latest_checkpoint(ckpt)
        state = {"scorer_keys": keys,
                 "definition": "every operator's checkpointed state (the duplicate marking's counter per distinct "
                               "payload among it) / (editors x metrics); the scorer's own state per (editor, "
                               "metric) is state_blobs"}
        if latest:
            size = sum(f.stat().st_size for f in latest.rglob("*") if f.is_file())
            state.update({"checkpoint": str(latest), "checkpoint_bytes": size,
                          "checkpoint_bytes_per_editor_metric": round(size / keys)})
        return {"latency": latency, "state_checkpoint": state}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        endpoint.stop()


def _read_latency(directory: Path) -> list[dict]:
    out = []
    for f in directory.glob("*"):
        if f.is_file():
            for line in f.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def _latest_checkpoint(root: Path) -> Path | None:
    found = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(found, key=lambda p: (p / "_metadata").stat().st_mtime) if found else None


def _pct(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return round(sorted_values[0], 1)
    idx = (len(sorted_values) - 1) * q / 100.0
    lo, hi = int(idx), min(int(idx) + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (idx - lo), 1)


def measure_state_blobs() -> dict:
    """Bytes of the editor operator's keyed state per (editor, metric) over the scripted warm-up, through
    the job's own code (udfs/metric_detector.WindowScoring, one window per scripted sample): each
    metric's entry (model snapshot, journal since it, trailing baseline) as the state pickles it. The
    journal grows between snapshots, so the mean over the windows is given beside the last and largest."""
    import pickle
    from collections import defaultdict

    from flink_jobs import job_scenario as js
    from flink_jobs.main import Settings, window_scoring

    s = Settings.from_config(JobConfig.load(environ={}))
    scoring = window_scoring(s)
    recs, _ = js.editor_records("e-normal", js.window_start(time.time()))
    by_window: dict[int, list] = defaultdict(list)
    for r in recs:
        by_window[js.timestamp_ms(r) // (s.window_size_s * 1000)].append((r["metric"], float(r["value"]), 1))
    stored, sizes = None, defaultdict(list)
    for window, windows in sorted(by_window.items()):
        stored, _ = scoring.score_windows(stored, ("editor", "e-normal"), "e-normal", None,
                                          (window + 1) * s.window_size_s * 1000, windows)
        for metric, entry in stored.items():
            sizes[metric].append(len(pickle.dumps(entry)))
    every = [n for per_metric in sizes.values() for n in per_metric]
    return {"detector": s.detector, "windows_learned": len(by_window),
            "model_snapshot_windows": s.model_snapshot_windows,
            "bytes_per_editor_metric": {m: n[-1] for m, n in sizes.items()},
            "mean_bytes": round(statistics.fmean(n[-1] for n in sizes.values())),
            "mean_bytes_over_windows": round(statistics.fmean(every)), "max_bytes": max(every)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flink_jobs.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=2_000_000, help="datagen rows per throughput run")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--kinesis-records", type=int, default=50_000)
    p.add_argument("--editors", type=int, default=140,
                   help="scripted editors for the latency run (3 of 4 get an incident: 105 events by default)")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--skip", action="append", default=[], choices=["throughput", "kinesis", "latency"])
    p.add_argument("--stages", action="store_true",
                   help="also run the pure-SQL path cut after each step (source, parse, duplicates, windows)")
    p.add_argument("--compare-mode", action="append", default=[], choices=["thread", "process"],
                   help="also run the full pipeline in this python.execution.mode (the default mode always runs)")
    p.add_argument("--compare-property", action="append", default=[], metavar="GROUP.KEY=VALUE",
                   help="also run the full pipeline with this property, once in each round (an A/B of one setting)")
    args = p.parse_args(argv)
    from flink_jobs.main import Settings

    labels = [r[0] for r in throughput_runs("thread", (), tuple(args.compare_property))]
    if len(set(labels)) != len(labels):
        p.error("--compare-property: each setting once (two of them would write the same runs)")
    for prop in args.compare_property:   # a wrong key or value stops here, not after the first runs
        if prop.split("=", 1)[0].strip() in ("job.python.execution.mode", "datagen.number.of.rows"):
            p.error(f"--compare-property {prop}: use --compare-mode or --rows (the runs would not say what ran)")
        try:
            Settings.from_config(JobConfig.load(environ={}, overrides=[prop]))
        except ConfigError as exc:
            p.error(f"--compare-property {prop}: {exc}")

    workdir = Path(tempfile.mkdtemp(prefix="adops-bench-"))
    result: dict = {"commit": _commit(),
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
                    "load_average_at_start": _load(), "python": sys.version.split()[0]}
    targets = {"full_over_baseline_min": 0.7, "full_records_per_s_min": 200_000,
               "kinesis_records_per_s_min": 20_000, "latency_p99_ms_max": 2000}
    errors: dict[str, str] = {}

    def part(name: str, measure: Callable[[], Any]) -> None:
        # One part failing is written down, and the others still run: a figure missing from the
        # file must not read as a part that was skipped.
        try:
            measure()
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON, raised after the file is written
            log.exception("benchmark part %s failed", name)
            errors[name] = f"{type(exc).__name__}: {exc}"

    def throughput() -> None:
        from deploy.local.endpoint import start_endpoint
        from deploy.local.stack import deploy_core_stack

        endpoint = start_endpoint(port=0, log_dir=workdir / "aws-throughput")
        try:
            os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                               "AWS_DEFAULT_REGION": "us-east-1"})
            stack = deploy_core_stack(endpoint.url)  # LOCAL_PARAMETERS, as make run
            result["throughput"] = {}
            measure_throughput(args.rows, args.parallelism, workdir, endpoint.url, stack["bus_name"], args.timeout,
                               compare_modes=tuple(args.compare_mode), out=result["throughput"],
                               compare_properties=tuple(args.compare_property))
        finally:
            endpoint.stop()

    try:
        part("state_blobs", lambda: result.update(state_blobs=measure_state_blobs()))
        if "latency" not in args.skip:
            part("latency", lambda: result.update(measure_latency_and_state(args.editors, args.parallelism, workdir,
                                                                            args.timeout)))
        if "throughput" not in args.skip:
            part("throughput", throughput)
        if args.stages:
            part("pure_sql_stages", lambda: result.update(
                pure_sql_stages=measure_stages(args.rows, args.parallelism, workdir, args.timeout)))
        if "kinesis" not in args.skip:
            part("local_kinesis", lambda: result.update(
                local_kinesis=measure_kinesis(args.kinesis_records, args.parallelism)))
    finally:
        if errors:
            result["errors"] = errors
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result["load_average_at_end"] = _load()
        result["targets"] = targets
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, default=str))
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
