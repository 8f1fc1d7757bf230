"""The streaming job: one entry point for a local mini-cluster and Managed Flink.

    python -m flink_jobs.main --source kinesis|kinesis-local|archive|datagen [--set group.key=value ...]
                              [--properties FILE] [--restore latest|PATH] [--dry-run]

On Managed Flink (``/etc/flink/application_properties.json`` exists) the same
module is the application's entry point: properties come from that file,
checkpointing is the service's, and ``--source`` defaults to ``job.source``.

Topology (SQL does everything per record; Python once per editor window and per event):

    metrics_raw (sql/sources/*) ─ sql/parse/metrics.sql, duplicates.sql ─ (materialized) ─ late.sql
        ├─ invalid / late ─ sql/sinks/dead_letters.sql ─ connectors/deadletter
        └─ valid ─┬─ sql/windows/editor_windows.sql   (a row per editor and window, every metric side by side)
                  │     ├─ udfs.correlator.EditorCorrelator (keyed editor): scores each metric against its
                  │     │  model and trailing baseline, adds the editor's events, classifies ─ composite anomalies
                  │     └─ udfs.window_metrics.EditorWindowMetrics: each metric's window mean ─
                  │        connectors.cloudwatch.flink_sink (PutMetricData, what the agents' metrics tool reads)
                  └─ sql/windows/partner_editor_windows.sql, partner_windows.sql  (a row per partner and
                        │  window, each editor's window in a JSON array)
                        └─ udfs.correlator.PartnerHealth (keyed partner): scores, judges ─ partner health checks
    events_raw  (sql/sources/*) ─ sql/parse/events.sql, duplicates.sql ─ (materialized) ─ late.sql
        ├─ invalid (and a copy of each late one) ─ dead letters
        └─ valid ─┬─ (editor events) ─ EditorCorrelator's second input
                  ├─ (partner-wide events: a status report or a change naming only a partner) ─ PartnerHealth's
                  │     second input, which passes each to the partner's editors beside its findings ─ EditorCorrelator
                  ├─ (platform-wide changes: naming neither) ─ udfs.platform_events.PlatformEvents, which
                  │     passes each to every editor ─ EditorCorrelator
                  └─ udfs.security.SecurityFindings ─ security incidents
    composite anomalies + partner health checks + security incidents ─ connectors.eventbridge.flink_sink (PutEvents)

Each parsed table is turned into a DataStream and back once ("materialized"),
because every to_data_stream()/statement translation of a Table re-plans it from
its sources: without this the source and the JSON parsing would run once per
downstream branch (windows, dead letters). The DataStream node is shared.

Python API (for flink_jobs.evaluate / flink_jobs.reliability and the tests)::

    from flink_jobs.config import JobConfig
    from flink_jobs.main import start_job
    handle = start_job(JobConfig.load(overrides=[...]), source="kinesis-local")   # detached, returns at once
    handle.stop(savepoint=True)   # stop-with-savepoint, returns the savepoint path
    handle.cancel(); handle.wait(timeout_s); handle.status()
    start_job(cfg, source=..., restore="latest")   # resume from the newest retained checkpoint/savepoint

The mini-cluster runs inside the calling process (its JVM is PyFlink's gateway).
For a hard kill, run ``python -m flink_jobs.main`` as a subprocess and SIGKILL it;
SIGTERM/SIGINT make it stop with a savepoint into ``<checkpoint.dir>/savepoints``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
import re

from pyflink.common import Row
from pyflink.common.job_client import JobClient
from pyflink.datastream import ProcessFunction

from detectors.base import MAX_MAGNITUDE
from connectors.flink_runtime import REPOSITORY, package_root, packaged_python_dependencies
from flink_jobs.config import ConfigError, JobConfig, running_on_managed_flink
from flink_jobs.restore_points import (
    check_restore_mode, check_restore_operators, job_graph_operators, local_path, record_execution_mode,
    record_operators, resolve_restore,
)

log = logging.getLogger("flink_jobs.main")

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
SOURCES = ("kinesis", "kinesis-local", "archive", "datagen")
# PyFlink's python.execution-mode. "process" runs the Python operators in Beam workers: every
# bundle, state read and timer crosses gRPC. "thread" embeds CPython in the task threads (pemja)
# and calls the same functions directly. On the benchmark's full job (datagen, 400k rows,
# parallelism 2, one run) thread mode did 35,651 rec/s and process mode 27,933
# (flink_jobs/bench/flink-throughput.json; 12,504 and 5,004 before the windows were pivoted, -afbcf69.json;
# 7,045 and 4,086 before the parse change, -566c66a.json).
# Managed Flink's template keeps "process", the mode AWS documents, until thread mode is
# tried on the service.
PYTHON_EXECUTION_MODES = ("thread", "process")
# Sources that never end (datagen is used bounded, for benchmarks).
UNBOUNDED_SOURCES = ("kinesis", "kinesis-local")
DEFAULT_LOCAL_STATE = Path("/tmp/adops/flink-state")


# ----------------------------------------------------------------------------- SQL templates
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Raw(str):
    """A parameter that is a SQL fragment (substituted as is, not quoted-escaped)."""


def sql_interval(seconds: int) -> Raw:
    """A DAY TO SECOND interval literal: Flink limits INTERVAL 'n' SECOND to 2 digits.

    >>> sql_interval(300)
    "INTERVAL '0 00:05:00' DAY TO SECOND"
    """
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return Raw(f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}' DAY TO SECOND")


def render_sql(name: str, **params) -> str:
    """Fill a ``sql/`` template's ``${param}`` placeholders.

    Plain values are substituted with single quotes doubled (they only ever appear
    inside SQL string literals or as numbers); ``Raw`` values are SQL fragments.
    A placeholder without a value is an error (``KeyError`` naming it), so a
    template can never run with a literal ``${...}`` in it. Leading ``--``
    comment lines are kept (Flink accepts them).
    """
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    values = {k: (v if isinstance(v, Raw) else str(v).replace("'", "''")) for k, v in params.items()}

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"sql/{name}: no value for placeholder ${{{key}}}")
        return values[key]

    # Only ${name} is a placeholder: JSON paths like '$.value' stay as they are.
    return _PLACEHOLDER.sub(fill, text).strip().rstrip(";")


def split_statements(sql: str) -> list[str]:
    """Split a rendered multi-statement template on ';' at line ends."""
    parts, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if "\n".join(current).strip():
        parts.append("\n".join(current))
    return [p for p in parts if _strip_comments(p).strip()]


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


@dataclass
class Settings:
    """Typed view of the properties the job uses (validated once, at build time)."""

    name: str
    parallelism: int
    python_execution_mode: str
    checkpoint_interval_ms: int
    checkpoint_dir: str
    window_size_s: int
    watermark_delay_s: int
    idle_timeout_s: int
    max_future_s: int
    max_payload_bytes: int
    max_metric_value: float
    dedup_retention_s: int
    timer_grace_ms: int
    events_lookback_s: int
    baseline_windows: int
    baseline_min_windows: int
    baseline_threshold: float
    model_snapshot_windows: int
    model_cache_size: int
    state_idle_retention_s: int
    detector: str
    detector_params: dict
    bus_name: str
    eventbridge_endpoint: str | None
    eventbridge_region: str
    security_min_severity: float
    deadletter_sink: str
    deadletter_path: str
    late_path: str
    deadletter_stream: str
    latency_log_path: str | None = None
    sink_flush_interval_ms: int = 200
    sink_heartbeat_interval_ms: int = 1000
    sink_max_in_flight: int = 4
    deadletter_retry_deadline_s: float = 90.0
    cloudwatch_metrics_enabled: bool = False
    cloudwatch_namespace: str = "AdOps"
    cloudwatch_flush_interval_ms: int = 1000
    # The scoring operators' garbage collector's first threshold (udfs/python_gc.py); 0: leave the interpreter's.
    python_gc_threshold: int = 0
    # The classifier's tuning (README "Configuration"): ClassifierConfig.from_properties keys, checked here.
    classifier_properties: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, c: JobConfig) -> "Settings":
        params_text = c.get_str("processing", "detector.params") or "{}"
        try:
            detector_params = json.loads(params_text)
            assert isinstance(detector_params, dict)
        except (ValueError, AssertionError):
            raise ConfigError(f"property processing.detector.params={params_text!r} must be a JSON object") from None
        detector = c.get_str("processing", "detector", allow_empty=False)
        _check_detector(detector, detector_params, params_text)
        window = c.get_int("processing", "window.size.s", minimum=1, maximum=86400)
        # Checked here, not at the first bad record: a sink that cannot write would fail the job
        # then, and again at every restart (the dead letter is in the checkpoint).
        if c.get_choice("deadletter", "sink", ("file", "kinesis")) == "kinesis":
            c.get_str("deadletter", "stream.name", allow_empty=False)
        c.get_str("deadletter", "path", allow_empty=False)  # the files, and the Kinesis sink's fallback
        baseline_windows = c.get_int("processing", "baseline.windows", minimum=1, maximum=10000)
        events_lookback_s = c.get_int("processing", "events.lookback.s", minimum=0)
        timer_grace_ms = c.get_int("processing", "timer.grace.ms", minimum=0, maximum=window * 1000)
        return cls(
            name=c.get_str("job", "name", allow_empty=False),
            parallelism=c.get_int("job", "parallelism", minimum=1, maximum=1024),
            python_execution_mode=c.get_choice("job", "python.execution.mode", PYTHON_EXECUTION_MODES),
            python_gc_threshold=c.get_int("job", "python.gc.threshold", minimum=0, maximum=2**31 - 1),  # a C int
            checkpoint_interval_ms=_checkpoint_interval_ms(c),
            checkpoint_dir=_checkpoint_dir(c),
            window_size_s=window,
            watermark_delay_s=c.get_int("processing", "watermark.delay.s", minimum=0, maximum=86400),
            idle_timeout_s=c.get_int("processing", "idle.timeout.s", minimum=0),
            max_future_s=c.get_int("processing", "max.future.s", minimum=0),
            max_payload_bytes=c.get_int("processing", "max.payload.bytes", minimum=64),
            # at most the detectors' MAX_MAGNITUDE (1e30): a larger value would be valid here and unscorable
            # there; it also keeps a window's mean inside what PutMetricData takes (+-2^360)
            max_metric_value=c.get_float("processing", "max.metric.value", minimum=1.0, maximum=MAX_MAGNITUDE),
            dedup_retention_s=c.get_int("processing", "dedup.retention.s", minimum=0),
            timer_grace_ms=timer_grace_ms,
            events_lookback_s=events_lookback_s,
            baseline_windows=baseline_windows,
            baseline_min_windows=_baseline_min_windows(c, baseline_windows),
            baseline_threshold=c.get_float("processing", "baseline.threshold", minimum=0.0),
            model_snapshot_windows=c.get_int("processing", "model.snapshot.windows", minimum=1, maximum=10000),
            model_cache_size=c.get_int("processing", "model.cache.size", minimum=0),
            state_idle_retention_s=_state_idle_retention_s(c, window, events_lookback_s, timer_grace_ms),
            detector=detector,
            detector_params=detector_params,
            bus_name=c.get_str("eventbridge", "bus.name", allow_empty=False),
            eventbridge_endpoint=c.get_endpoint_url("eventbridge", "endpoint.url"),
            eventbridge_region=c.get_str("eventbridge", "region", allow_empty=False),
            security_min_severity=c.get_float("eventbridge", "security.min.severity", minimum=0, maximum=10),
            deadletter_sink=c.get_choice("deadletter", "sink", ("file", "kinesis")),
            deadletter_path=c.get_str("deadletter", "path"),
            late_path=c.get_str("deadletter", "late.path"),
            deadletter_stream=c.get_str("deadletter", "stream.name"),
            latency_log_path=c.get_optional("eventbridge", "latency.log.path"),
            sink_flush_interval_ms=c.get_int("eventbridge", "flush.interval.ms", minimum=1),
            sink_heartbeat_interval_ms=c.get_int("eventbridge", "heartbeat.interval.ms", minimum=0),
            sink_max_in_flight=c.get_int("eventbridge", "max.in.flight", minimum=1),
            deadletter_retry_deadline_s=c.get_float("deadletter", "retry.deadline.s", minimum=0.0),
            cloudwatch_metrics_enabled=c.get_bool("cloudwatch", "metrics.enabled"),
            cloudwatch_namespace=c.get_str("cloudwatch", "namespace", allow_empty=False),
            cloudwatch_flush_interval_ms=c.get_int("cloudwatch", "flush.interval.ms", minimum=1),
            classifier_properties=_classifier_properties(c),
        )


def _check_detector(name: str, params: dict, params_text: str) -> None:
    """Build the detector once now: a wrong name or parameter found by the first window scored
    would fail the running job, and again at every restart. Where the client has not the
    detectors' dependencies (Managed Flink installs the job's wheels for its workers only, and a
    package run locally does the same: tests/test_job_archive.py), the workers are the first to
    build it, as before."""
    try:
        import detectors

        detector = detectors.make(name, **params)
        # and score a short series through it: a parameter that divides by zero (or overflows) may
        # only show when the detector first learns
        for i in range(48):
            detector.update(i * 300.0, 10.0 + (i % 5))
    except ImportError as exc:
        log.info("processing.detector not checked before the start: %s (the workers have it)", exc)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ConfigError(f"properties processing.detector={name!r}, processing.detector.params={params_text}: "
                          f"{message}") from None


def _classifier_properties(c: JobConfig) -> dict[str, str]:
    from detectors.classifier import ClassifierConfig

    properties = dict(c.groups.get("classifier", {}))
    if "event_lookback_s" in properties or "window_seconds" in properties:
        # one value each, not two that could disagree
        raise ConfigError("property group classifier: set the look-back as processing.events.lookback.s and the "
                          "window as processing.window.size.s, not event_lookback_s / window_seconds")
    try:
        ClassifierConfig.from_properties(properties)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"property group classifier: {exc}") from None
    return properties


def _state_idle_retention_s(c: JobConfig, window_s: int, lookback: int, grace_ms: int) -> int:
    """``processing.state.idle.retention.s``: 0 keeps every series for ever; otherwise it must leave
    every decision as it is (udfs/correlator.py, "Idle keys"): at least the events' look-back plus three
    windows and the timer grace, so that what is dropped is outside every later window's reach."""
    from detectors.incident import EPISODE_MAX_GAP_WINDOWS

    retention = c.get_int("processing", "state.idle.retention.s", minimum=0)
    grace_s = -(-grace_ms // 1000)
    shortest = lookback + (2 + EPISODE_MAX_GAP_WINDOWS) * window_s + grace_s
    if 0 < retention < shortest:
        raise ConfigError(f"property processing.state.idle.retention.s={retention} must be 0 (keep idle series "
                          f"for ever) or at least {shortest}: the events' look-back ({lookback} s), three windows "
                          f"({window_s} s each) and the timer grace, so that dropping an idle series changes no decision")
    return retention


def _checkpoint_interval_ms(c: JobConfig) -> int:
    value = c.get_int("job", "checkpoint.interval.ms", minimum=0)
    if 0 < value < 10:
        # Flink refuses it when the environment is built, with a Java stack trace
        raise ConfigError(f"property job.checkpoint.interval.ms={value} must be 0 (checkpointing off) or at "
                          "least 10 (Flink's shortest interval)")
    return value


def _checkpoint_dir(c: JobConfig) -> str:
    """A local folder, or a ``file:`` URI of one (the local runs' checkpoints; Managed Flink keeps its own)."""
    text = c.get_str("job", "checkpoint.dir") or str(DEFAULT_LOCAL_STATE)
    if text.startswith("file:"):
        from urllib.parse import unquote, urlparse

        uri = urlparse(text)
        if uri.netloc not in ("", "localhost"):
            raise ConfigError(f"property job.checkpoint.dir={text!r}: a file: URI names a local folder, not a host")
        return unquote(uri.path)
    if "://" in text:
        # it would be taken as a relative folder named like the URI, without a word
        raise ConfigError(f"property job.checkpoint.dir={text!r} must be a local folder or a file: URI (local "
                          "runs keep their checkpoints on this machine; Managed Flink keeps its own)")
    return text


def _baseline_min_windows(c: JobConfig, baseline_windows: int) -> int:
    value = c.get_int("processing", "baseline.min.windows", minimum=1)
    if value > baseline_windows:
        # the history never holds that many windows, so the trailing baseline would never judge anything
        raise ConfigError(f"property processing.baseline.min.windows={value} must be <= "
                          f"processing.baseline.windows={baseline_windows} (the history it is taken from)")
    return value


# ----------------------------------------------------------------------------- environment
def create_environments(settings: Settings, *, restore_path: str | None = None, managed: bool | None = None):
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment

    from connectors.flink_runtime import execution_mode_options

    managed = running_on_managed_flink() if managed is None else managed
    conf = Configuration()
    conf.set_string("pipeline.name", settings.name)
    # How the Python operators run (PYTHON_EXECUTION_MODES says why "thread" is the local default).
    conf.set_string("python.execution-mode", settings.python_execution_mode)
    # Chained Java operators hand rows on without copying them. Without it every hop of the
    # parse chain copied the row, payload included (StringDataSerializer.copy was a quarter of
    # the dedup thread's samples in a JFR profile). Rows reach Python code serialized, and the
    # SQL operators here do not keep references to their input -- except ARRAY_AGG of rows,
    # which under object reuse repeated one row (sql/windows/partner_windows.sql uses
    # JSON_ARRAYAGG instead). The pipeline test's partner outage caught that one.
    conf.set_string("pipeline.object-reuse", "true")
    # The Python operators' tuning is the job's own, so it is set on Managed Flink too.
    # Python UDF bundles: flush small bundles quickly so a window's result is not held back.
    conf.set_string("python.fn-execution.bundle.time", "100")
    # PyFlink caches keyed state in the Python worker, 1000 keys by default: with more keys
    # per subtask than that (200 editors x 10 metrics) every window's state read and write
    # went over the Beam state API. Measured on a quiet machine (400k datagen rows,
    # parallelism 2): 4,709 -> 7,298 records/s for the full job.
    conf.set_string("python.state.cache-size", "200000")
    conf.set_string("python.map-state.read-cache-size", "200000")
    conf.set_string("python.map-state.write-cache-size", "200000")
    if not managed:
        # Managed Flink owns checkpointing, state backend, parallelism and python.
        # Locally the Python workers run this process's interpreter (the venv's), on purpose with no
        # property to change it: thread mode puts this interpreter's site-packages on the embedded
        # path (connectors.flink_runtime), which another interpreter would not match.
        conf.set_string("python.executable", sys.executable)
        conf.set_string("python.client.executable", sys.executable)
        for key, value in execution_mode_options(settings.python_execution_mode).items():
            conf.set_string(key, value)  # thread mode also needs the venv on the embedded path
        conf.set_string("parallelism.default", str(settings.parallelism))
        ckpt = Path(settings.checkpoint_dir).resolve()
        ckpt.mkdir(parents=True, exist_ok=True)
        conf.set_string("execution.checkpointing.dir", ckpt.as_uri())
        conf.set_string("execution.checkpointing.savepoint-dir", (ckpt / "savepoints").as_uri())
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        conf.set_string("execution.checkpointing.num-retained", "3")
        conf.set_string("state.backend.type", "hashmap")
        if settings.checkpoint_interval_ms > 0:
            conf.set_string("execution.checkpointing.interval", f"{settings.checkpoint_interval_ms} ms")
        if restore_path:
            conf.set_string("execution.state-recovery.path", restore_path)
        # Connector JARs (the official Kinesis connector for --source kinesis) from the package's
        # lib/, as the Managed Flink zip ships them; on Managed Flink the service's
        # kinesis.analytics.flink.run.options/jarfile property loads them instead.
        jars = sorted((package_root() or REPOSITORY).glob("lib/*.jar"))
        if jars:
            conf.set_string("pipeline.jars", ";".join(j.as_uri() for j in jars))
    # In the Managed Flink package (on the service or unpacked anywhere): the job's Python
    # dependencies and code for the workers. Nothing in a checkout.
    for key, value in packaged_python_dependencies().items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    t_env = StreamTableEnvironment.create(env, EnvironmentSettings.in_streaming_mode())
    tc = t_env.get_config()
    tc.set("table.local-time-zone", "UTC")
    tc.set("pipeline.name", settings.name)
    if settings.idle_timeout_s > 0:
        # With parallelism > 1 an idle split/shard would otherwise hold every window back.
        tc.set("table.exec.source.idle-timeout", f"{settings.idle_timeout_s} s")
    return env, t_env


# ----------------------------------------------------------------------------- sources
def _common_params(s: Settings) -> dict:
    params = {
        "watermark_interval": sql_interval(s.watermark_delay_s),
        "max_future_s": s.max_future_s,
        "max_payload_bytes": s.max_payload_bytes,
        "dedup_retention_s": s.dedup_retention_s,
    }
    # The ISO-8601 reading, over the payload (event_time.sql) and over the parsed text (timestamp_reason.sql).
    for name, text in (("payload", "JSON_VALUE(payload, '$.timestamp')"), ("text", "timestamp_text")):
        params[f"iso_timestamp_of_{name}"] = Raw(_strip_comments(render_sql("parse/iso_timestamp.sql",
                                                                            iso_text=Raw(text))))
    # The checks sql/parse/metrics.sql and events.sql share, as SQL fragments (like event_time.sql).
    for fragment in ("json_document", "timestamp_reason", "unpaired_surrogate"):
        params[fragment] = Raw(_strip_comments(render_sql(f"parse/{fragment}.sql", **params)))
    # Every source's watermark (capped at the wall clock: sql/parse/watermark.sql says why).
    params["watermark_expr"] = Raw(_strip_comments(render_sql("parse/watermark.sql", **params)))
    return params


def _event_time_expr(s: Settings) -> Raw:
    return Raw(_strip_comments(render_sql("parse/event_time.sql", **_common_params(s))))


def check_archive_files(path: str, prop: str, *, verify_compressed: bool = True) -> None:
    """Refuse, before the job starts, an archive the filesystem source cannot read: a missing path,
    one with Parquet files, or (``verify_compressed``, archive.verify.compressed) one with a damaged
    compressed file, on which the source would fail at every restart, forever, with the reason only
    in Flink's log. Local paths only (a path without a scheme, or file:); an s3:// archive is read
    as it is."""
    from urllib.parse import urlparse

    from connectors.archive.integrity import check_archive, source_files

    parsed = urlparse(path)
    if parsed.scheme not in ("", "file"):
        return
    local = Path(parsed.path if parsed.scheme == "file" else path)
    if not local.exists():
        raise ConfigError(f"{prop}={path}: no such file or directory")
    parquet = [p for p in source_files(local) if p.name.lower().endswith(".parquet")]
    if parquet:
        # Format 'raw' would split the Parquet bytes at newlines: every "line" a dead letter.
        raise ConfigError(
            f"{prop}={path} holds {len(parquet)} Parquet file(s) (e.g. {parquet[0]}); the archive source reads "
            "JSON lines (.jsonl, .jsonl.gz) only, because Flink's Parquet format JAR is only on Maven Central. "
            "Replay a Parquet archive through Kinesis instead (python -m connectors.replay, or "
            "python -m flink_jobs.evaluate --archive), or write it as JSON lines (--format jsonl).")
    if verify_compressed:
        check_archive(local, f"{prop}={path}",
                      "Flink's filesystem source would fail on them and restart forever. Re-copy or remove them "
                      "(or set archive.verify.compressed=false to start anyway).")


def local_flink_log_dir() -> Path:
    """Where a local mini-cluster writes Flink's own log (job and task states, and the Python operators'
    warnings, e.g. a Kinesis stream that cannot be listed): ``FLINK_LOG_DIR`` when it is set before
    the JVM starts, otherwise PyFlink's ``log/`` folder (what its gateway launcher uses)."""
    if os.environ.get("FLINK_LOG_DIR"):
        return Path(os.environ["FLINK_LOG_DIR"])
    import pyflink

    return Path(pyflink.__file__).resolve().parent / "log"


def _require_kinesis_connector(t_env) -> None:
    """A clear error, instead of Flink's planner trace, when the official Kinesis connector JAR is not loaded.

    Planning a query over the table is what looks its connector up (the DDL alone does not)."""
    from py4j.protocol import Py4JJavaError

    try:
        t_env.sql_query("SELECT payload FROM metrics_raw").explain()
    except Py4JJavaError as exc:
        if "Could not find any factory for identifier 'kinesis'" not in str(exc):
            raise
        raise ConfigError(
            "job.source 'kinesis' reads through the official Flink Kinesis connector "
            "(flink-sql-connector-aws-kinesis-streams, pinned in pom-free-requirements.txt), and no JAR of it "
            "is loaded: Managed Flink loads it from the package's lib/ (python -m deploy.packaging build "
            f"--fetch-jars; the JAR is only on Maven Central), and a local run from {REPOSITORY / 'lib'}/*.jar "
            "(copy it there: --fetch-jars keeps it in build/jars/). Where it cannot be fetched, read Kinesis "
            "with --source kinesis-local (boto3 inside PyFlink, the same SQL downstream).") from None


#: kinesis.start.position values both Kinesis sources take (any case; the DDL gets them upper-cased).
KINESIS_START_POSITIONS = ("LATEST", "TRIM_HORIZON")


def kinesis_start_position(cfg: JobConfig, source: str) -> str:
    """``kinesis.start.position`` for ``source``, checked before the job is built and normalised.

    Both Kinesis sources take LATEST and TRIM_HORIZON, in any case. ``AT_TIMESTAMP:<epoch ms or
    ISO-8601 with a zone>`` is the local boto3 path's only (``--source kinesis-local``, what
    flink_jobs.evaluate uses): the official connector's DDL is given no timestamp option here, so
    ``--source kinesis`` refuses it. Any other value is a ConfigError naming the property and what
    it takes (it was a ValueError traceback from the boto3 path's parser, and a different set of
    accepted spellings on each path). The boto3 path's own parser (StartPosition.parse) judges
    its values; it is imported for that path only (it needs botocore, which the client has not on
    Managed Flink, where the official path runs: connectors/flink_runtime.py).

    >>> cfg = JobConfig.load(overrides=["kinesis.start.position=trim_horizon"], environ={})
    >>> kinesis_start_position(cfg, "kinesis")
    'TRIM_HORIZON'
    """
    prop = "kinesis.start.position"
    text = cfg.get_str("kinesis", "start.position", allow_empty=False)
    allowed = ("LATEST or TRIM_HORIZON (any case), or, with --source kinesis-local only, "
               "AT_TIMESTAMP:<epoch ms or ISO-8601 with a zone>")
    kind = text.partition(":")[0].strip().upper()
    if kind == "AT_TIMESTAMP" and source != "kinesis-local":
        raise ConfigError(
            f"property {prop}={text!r}: AT_TIMESTAMP is supported only by the local boto3 path "
            f"(--source kinesis-local); --source {source} (the official connector) takes "
            f"{' or '.join(KINESIS_START_POSITIONS)}")
    if text.upper() not in KINESIS_START_POSITIONS and kind != "AT_TIMESTAMP":
        raise ConfigError(f"property {prop}={text!r} must be {allowed}")
    if source != "kinesis-local":
        return text.upper()
    from connectors.kinesis.poller import StartPosition

    try:
        position = StartPosition.parse(text)
        position.iterator_arguments()   # what each reader does with it: a timestamp out of range fails here
    except (ValueError, OverflowError, OSError) as exc:
        raise ConfigError(f"property {prop}={text!r}: {exc}; it must be {allowed}") from None
    return position.kind if position.timestamp_ms is None else f"{position.kind}:{position.timestamp_ms}"


def kinesis_local_options(cfg: JobConfig, s: Settings) -> dict:
    """The boto3 Kinesis source's settings, checked: by create_sources, and by make run and evaluate
    before they start anything (flink_jobs.evaluate.check_before_run)."""
    from connectors.kinesis.flink_source import DEFAULT_MAX_PARALLELISM

    if s.parallelism > DEFAULT_MAX_PARALLELISM:
        # its readers' key groups (one per shard group) are fixed at this many: Flink refused
        # the job at submission with a Java stack trace
        raise ConfigError(f"property job.parallelism={s.parallelism}: --source kinesis-local runs at most "
                          f"{DEFAULT_MAX_PARALLELISM} (its readers' max parallelism)")
    return {"stream_names": {kind: cfg.get_str("kinesis", f"{kind}.stream.name", allow_empty=False)
                             for kind in ("metrics", "events")},
            "start_position": kinesis_start_position(cfg, "kinesis-local"),
            "endpoint_url": cfg.get_endpoint_url("kinesis", "endpoint.url"),
            "region": cfg.get_str("kinesis", "region", allow_empty=False),
            "poll_interval_ms": cfg.get_int("kinesis", "poll.interval.ms", minimum=1),
            "max_records_per_poll": cfg.get_int("kinesis", "max.records.per.get", minimum=1, maximum=10000)}


def create_sources(t_env, env, cfg: JobConfig, s: Settings, source: str) -> tuple[str, str | None]:
    """Register `metrics_raw` and `events_raw` (or None when the source has no events)."""
    if source == "kinesis":   # checked before anything is built (kinesis-local: kinesis_local_options)
        start_position = kinesis_start_position(cfg, source)
    common = _common_params(s)
    et = _event_time_expr(s)
    if source == "kinesis":
        for kind in ("metrics", "events"):
            t_env.execute_sql(render_sql(
                "sources/kinesis_official.sql", table_name=f"{kind}_raw", event_time_expr=et,
                stream_arn=cfg.get_str("kinesis", f"{kind}.stream.arn", allow_empty=False),
                region=cfg.get_str("kinesis", "region", allow_empty=False),
                start_position=start_position, **common))
        if not running_on_managed_flink():     # where the package's lib/ is loaded by the service
            _require_kinesis_connector(t_env)
        return "metrics_raw", "events_raw"
    if source == "kinesis-local":
        from connectors.kinesis.flink_source import kinesis_payload_table

        options = kinesis_local_options(cfg, s)
        for kind in ("metrics", "events"):
            table = kinesis_payload_table(
                t_env, env, options["stream_names"][kind],
                event_time_expr=str(et),
                watermark_expr=str(common["watermark_expr"]),
                endpoint_url=options["endpoint_url"], region=options["region"],
                start_position=options["start_position"], poll_interval_ms=options["poll_interval_ms"],
                max_records_per_poll=options["max_records_per_poll"],
                idle_timeout=f"{s.idle_timeout_s} s" if s.idle_timeout_s > 0 else None,
                dead_letter_source=kind,
                on_invalid_encoding=lambda stream, k=kind: _attach_dead_letter_sink(stream, s, f"{k}-encoding",
                                                                                    unbounded=True),
            )
            t_env.create_temporary_view(f"{kind}_raw", table)
        return "metrics_raw", "events_raw"
    if source == "archive":
        events = None
        for kind in ("metrics", "events"):
            path = cfg.get_optional("archive", f"{kind}.path")
            if not path:
                if kind == "metrics":
                    raise ConfigError("--source archive needs archive.metrics.path")
                continue
            check_archive_files(path, f"archive.{kind}.path",
                                verify_compressed=cfg.get_bool("archive", "verify.compressed"))
            # No watermark until the end of the input: the files are read in no fixed order
            # (sql/sources/archive_watermark.sql says what the live sources' watermark did here).
            t_env.execute_sql(render_sql("sources/archive_jsonl.sql", table_name=f"{kind}_raw",
                                         event_time_expr=et, path=path, **{**common, "watermark_expr": Raw(
                                             _strip_comments(render_sql("sources/archive_watermark.sql")))}))
            if kind == "events":
                events = "events_raw"
        return "metrics_raw", events
    if source == "datagen":
        rows = cfg.get_int("datagen", "number.of.rows", minimum=1)
        partners = cfg.get_int("datagen", "partners", minimum=1)
        for stmt in split_statements(render_sql(
                "sources/datagen_metrics.sql", table_name="metrics_raw",
                rows_per_second=cfg.get_int("datagen", "rows.per.second", minimum=1),
                number_of_rows=rows, editors=cfg.get_int("datagen", "editors", minimum=1),
                partners=partners,
                partners_per_editor_minus_one=cfg.get_int("datagen", "partners.per.editor", minimum=1,
                                                          maximum=partners) - 1,
                start_epoch_ms=cfg.get_int("datagen", "start.epoch.ms", minimum=0),
                ms_per_row=cfg.get_int("datagen", "ms.per.row", minimum=1), **common)):
            t_env.execute_sql(stmt)
        return "metrics_raw", None
    raise ConfigError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")


# ----------------------------------------------------------------------------- pipeline
def materialize(t_env, table, name: str, columns: list[tuple[str, str]]):
    """Table -> DataStream -> Table with the source watermark: one shared node for every branch.

    The event_time rowtime travels as the record timestamp and comes back as the
    time attribute `event_time`."""
    from pyflink.table import Schema

    stream = t_env.to_data_stream(table)
    builder = Schema.new_builder()
    for col, typ in columns:
        builder.column(col, typ)
    builder.column_by_metadata("rowtime", "TIMESTAMP_LTZ(3)")
    builder.watermark("rowtime", "SOURCE_WATERMARK()")
    t_env.create_temporary_view(f"{name}_stream", t_env.from_data_stream(stream, builder.build()))
    cols = ", ".join(c for c, _ in columns if c != "event_time")
    t_env.create_temporary_view(name, t_env.sql_query(f"SELECT {cols}, rowtime AS event_time FROM {name}_stream"))
    return name


def mark_duplicates(t_env, parsed, s: Settings, kind: str, columns: list[tuple[str, str]], counted_condition: str):
    """sql/parse/duplicates.sql over a parse view: later copies of a counted row get DUPLICATE_RECORD.

    Runs before `materialize`, so the count happens once per record and every branch sees
    the same decision. Its only state is one counter per payload, bounded by
    `table.exec.state.ttl` = processing.dedup.retention.s (the only non-window stateful SQL
    operator of the job, so the TTL bounds nothing else). Retention 0 disables it."""
    if s.dedup_retention_s <= 0:
        return parsed
    t_env.get_config().set("table.exec.state.ttl", f"{s.dedup_retention_s} s")
    name = f"{kind}_validated"
    t_env.create_temporary_view(name, parsed)
    return t_env.sql_query(render_sql("parse/duplicates.sql", parsed_table=name,
                                      columns=Raw(_passthrough_columns(columns)),
                                      counted_condition=Raw(counted_condition)))


def mark_late(t_env, view: str, columns: list[tuple[str, str]]):
    """sql/parse/late.sql over ``view``: the parsed columns, with ``is_late`` also set for a valid
    row at or behind the watermark of the operator that evaluates it.

    The job applies it to the materialized view (`materialize`), not to the duplicate marking's
    Table: the watermark there is the one after the marking's hash exchange, the one the windows
    go by, and the DataStream round trip keeps the planner from moving the watermark test back
    before the exchange, next to the source (it did: the SQL file says why that matters)."""
    return t_env.sql_query(render_sql("parse/late.sql", marked_table=view, columns=Raw(_passthrough_columns(columns))))


def _passthrough_columns(columns: list[tuple[str, str]]) -> str:
    """The parsed columns the marking steps pass on unchanged: all but the reason code and lateness."""
    return ", ".join(c for c, _ in columns if c not in ("reason_code", "is_late"))


#: The columns of a parsed and duplicate-marked table (parse_metrics, parse_events); mark_late sets
#: ``is_late`` for the rows behind the windows' watermark too.
METRIC_PARSED_COLUMNS = [("payload", "STRING"), ("event_time", "TIMESTAMP_LTZ(3)"), ("editor_id", "STRING"),
                         ("metric", "STRING"), ("partner", "STRING"), ("metric_value", "DOUBLE"),
                         ("reason_code", "STRING"), ("is_late", "BOOLEAN")]
EVENT_PARSED_COLUMNS = [("payload", "STRING"), ("event_time", "TIMESTAMP_LTZ(3)"), ("event_type", "STRING"),
                        ("editor_id", "STRING"), ("partner", "STRING"), ("severity", "DOUBLE"),
                        ("details", "STRING"), ("reason_code", "STRING"), ("is_late", "BOOLEAN")]


def metric_aggregates() -> Raw:
    """sql/windows/*.sql's ${metric_aggregates}: per metric of the input contract, in
    detectors.classifier.METRICS order, its window mean ``m__avg`` and sample count ``m__n``
    (udfs.metric_detector.metric_windows reads them back in that order).

    >>> str(metric_aggregates()).splitlines()[0]
    "AVG(metric_value) FILTER (WHERE metric = 'rpm') AS rpm__avg, COUNT(*) FILTER (WHERE metric = 'rpm') AS rpm__n,"
    """
    from detectors.classifier import METRICS

    return Raw(",\n  ".join(f"AVG(metric_value) FILTER (WHERE metric = '{m}') AS {m}__avg, "
                            f"COUNT(*) FILTER (WHERE metric = '{m}') AS {m}__n" for m in METRICS))


def metric_columns() -> Raw:
    """The columns metric_aggregates() names, in its order.

    >>> str(metric_columns()).split(", ")[:3]
    ['rpm__avg', 'rpm__n', 'fill_rate__avg']
    """
    from detectors.classifier import METRICS

    return Raw(", ".join(f"{m}__avg, {m}__n" for m in METRICS))


def scoring_operators(s: Settings) -> tuple:
    """The two scoring operators (udfs/correlator.py), configured from the properties: (PartnerHealth,
    EditorCorrelator), sharing one udfs.metric_detector.WindowScoring."""
    from detectors.classifier import ClassifierConfig
    from udfs.correlator import EditorCorrelator, PartnerHealth

    scoring = window_scoring(s)
    # One unit for the revenue samples: the partner check's revenue impact reads them as the classifier does.
    rate_period_s = ClassifierConfig.from_properties(s.classifier_properties).rate_period_s
    return (PartnerHealth(s.window_size_s, scoring, s.timer_grace_ms, s.events_lookback_s,
                          gc_threshold=s.python_gc_threshold, rate_period_s=rate_period_s),
            EditorCorrelator(s.window_size_s, s.timer_grace_ms, s.events_lookback_s, scoring,
                             classifier_properties=s.classifier_properties, gc_threshold=s.python_gc_threshold))


def window_scoring(s: Settings):
    """The operators' udfs.metric_detector.WindowScoring, configured from the processing properties."""
    from udfs.metric_detector import WindowScoring

    return WindowScoring(s.detector, s.detector_params, s.baseline_windows, s.baseline_min_windows,
                         s.baseline_threshold, s.model_snapshot_windows, s.state_idle_retention_s * 1000,
                         cache_size=s.model_cache_size)


def window_sql(s: Settings, name: str) -> str:
    """sql/windows/<name>_windows.sql, every metric side by side: "editor" (a row per editor and
    window) and "partner_editor" (per partner, editor and window) over the view ``metrics_valid``;
    "partner" (per partner and window, its editors' windows in a JSON array) over the view
    ``partner_editor_windows``, which is "partner_editor"."""
    return render_sql(f"windows/{name}_windows.sql", valid_table="metrics_valid",
                      partner_editor_table="partner_editor_windows", window_interval=sql_interval(s.window_size_s),
                      metric_aggregates=metric_aggregates(), metric_columns=metric_columns())


@dataclass
class Pipeline:
    """What build_pipeline attached (handles for tests/benchmarks)."""

    source: str
    window_rows: object = None
    bus_events: object = None
    delivered: object = None
    dead_letters: object = None


def _attach_dead_letter_sink(stream, s: Settings, name: str, *, unbounded: bool, late: bool = False):
    from connectors.deadletter.flink_sinks import attach_deadletter_file_sink, attach_deadletter_kinesis_sink

    # As for the EventBridge sink: unbounded jobs only (the heartbeat never ends); it flushes
    # buckets restored without their flush timer (connectors.flink_buffer).
    heartbeat_ms = s.sink_heartbeat_interval_ms if unbounded else 0
    if s.deadletter_sink == "kinesis":
        # Retries exhausted (deadletter.retry.deadline.s): the lines go to files under deadletter.path.
        return attach_deadletter_kinesis_sink(stream, s.deadletter_stream, endpoint_url=s.eventbridge_endpoint,
                                              region=s.eventbridge_region, name=f"deadletter-{name}",
                                              retry_deadline_s=s.deadletter_retry_deadline_s,
                                              fallback_directory=s.deadletter_path,
                                              heartbeat_interval_ms=heartbeat_ms)
    directory = s.late_path if late and s.late_path else s.deadletter_path
    Path(directory).mkdir(parents=True, exist_ok=True)
    return attach_deadletter_file_sink(stream, directory, name=f"deadletter-{name}", heartbeat_interval_ms=heartbeat_ms)


#: The metric rows counted into a window: valid and not late (duplicate marking counts the rows
#: the parse found valid and not late).
METRIC_COUNTED = "reason_code IS NULL AND NOT is_late"


def parse_metrics(t_env, s: Settings, source_table: str):
    """sql/parse/metrics.sql over ``source_table``, then duplicate marking: every row once, with its
    reason code (None when valid) and ``is_late``, which `mark_late` completes; then the rows
    :data:`METRIC_COUNTED` selects are the windows' input."""
    parsed = t_env.sql_query(render_sql("parse/metrics.sql", source_table=source_table,
                                        max_metric_value=s.max_metric_value, **_common_params(s)))
    return mark_duplicates(t_env, parsed, s, "metrics", METRIC_PARSED_COLUMNS, METRIC_COUNTED)


def parse_events(t_env, s: Settings, source_table: str):
    """sql/parse/events.sql over ``source_table``, then duplicate marking, as for the metrics. Late
    events are still used (suspected causes), so every valid event is counted; ``is_late`` only sends a
    copy of them to the late output."""
    parsed = t_env.sql_query(render_sql("parse/events.sql", source_table=source_table,
                                        events_lookback_s=s.events_lookback_s, **_common_params(s)))
    return mark_duplicates(t_env, parsed, s, "events", EVENT_PARSED_COLUMNS, "reason_code IS NULL")


def build_pipeline(env, t_env, cfg: JobConfig, s: Settings, source: str, *, sql_only: bool = False) -> Pipeline:
    """Attach the whole job to env/t_env. sql_only: the pure-SQL baseline of the benchmark
    (same source, parse and windows, window rows discarded; no Python operator)."""
    from pyflink.common import Types
    from pyflink.table import Schema, TableDescriptor

    pipe = Pipeline(source)
    metrics_raw, events_raw = create_sources(t_env, env, cfg, s, source)
    common = _common_params(s)
    materialize(t_env, parse_metrics(t_env, s, metrics_raw), "metrics_marked", METRIC_PARSED_COLUMNS)
    t_env.create_temporary_view("metrics_parsed", mark_late(t_env, "metrics_marked", METRIC_PARSED_COLUMNS))
    t_env.create_temporary_view("metrics_valid",
                                t_env.sql_query(f"SELECT * FROM metrics_parsed WHERE {METRIC_COUNTED}"))
    t_env.create_temporary_view("partner_editor_windows", t_env.sql_query(window_sql(s, "partner_editor")))
    windows = {scope: t_env.sql_query(window_sql(s, scope)) for scope in ("editor", "partner")}

    dl_sql = [render_sql("sinks/dead_letters.sql", parsed_table="metrics_parsed", source_name="metrics", **common)]
    if events_raw:
        materialize(t_env, parse_events(t_env, s, events_raw), "events_marked", EVENT_PARSED_COLUMNS)
        t_env.create_temporary_view("events_parsed", mark_late(t_env, "events_marked", EVENT_PARSED_COLUMNS))
        dl_sql.append(render_sql("sinks/dead_letters.sql", parsed_table="events_parsed", source_name="events",
                                 **common))

    if sql_only:
        # Baseline: same plan up to the windows; blackhole sinks consume the window rows.
        stmt = t_env.create_statement_set()
        for table in windows.values():
            schema = Schema.new_builder().from_row_data_type(
                table.get_resolved_schema().to_physical_row_data_type()).build()
            stmt.add_insert(TableDescriptor.for_connector("blackhole").schema(schema).build(), table)
        stmt.attach_as_datastream()
        pipe.window_rows = windows
        return pipe

    from connectors.eventbridge.flink_sink import attach_eventbridge_sink
    from udfs.correlator import EVENT_TYPE, OUTPUT_TYPE, PARTNER_FINDINGS
    from udfs.decisions import is_partner_wide, is_platform_wide
    from udfs.platform_events import PLATFORM_KEY, PlatformEvents
    from udfs.security import SecurityFindings

    # Each operator scores its window rows' metrics itself (udfs/correlator.py says why).
    partner_health, editor_correlator = scoring_operators(s)
    editor_windows = t_env.to_data_stream(windows["editor"])
    partner_windows = t_env.to_data_stream(windows["partner"])

    # (ii) per editor: correlate with events, classify, composite anomaly
    if events_raw:
        valid_events = t_env.to_data_stream(t_env.sql_query(
            # event_time (the rowtime) must be selected: it becomes the record timestamp
            "SELECT event_type, CAST(0 AS BIGINT) AS timestamp_ms, editor_id, partner, severity, details, payload, "
            "event_time FROM events_parsed WHERE reason_code IS NULL"))
        valid_events = valid_events.process(_StampEventTime(), output_type=EVENT_TYPE) \
            .name("events-valid").uid("events-valid")
        editor_events = valid_events.filter(lambda r: r[2] is not None).name("editor-events").uid("editor-events")
        # A partner's status report, or a change made for a partner, that names no editor goes to the
        # partner operator, which passes it to the editors the partner serves (udfs/correlator.py).
        partner_events = valid_events.filter(lambda r: is_partner_wide(r[0], r[2], r[3])) \
            .name("partner-events").uid("partner-events")
        # One that names neither an editor nor a partner (a deployment of the ad server) goes to the
        # platform operator, which passes it to every editor (udfs/platform_events.py).
        platform_events = valid_events.filter(lambda r: is_platform_wide(r[0], r[2], r[3])) \
            .name("platform-events").uid("platform-events")
        security = valid_events.flat_map(SecurityFindings(s.security_min_severity), output_type=OUTPUT_TYPE) \
            .name("security-findings").uid("security-findings")
    else:
        empty = t_env.to_data_stream(t_env.sql_query(
            "SELECT CAST(NULL AS STRING) AS event_type, CAST(0 AS BIGINT) AS timestamp_ms, CAST(NULL AS STRING) "
            "AS editor_id, CAST(NULL AS STRING) AS partner, CAST(NULL AS DOUBLE) AS severity, "
            "CAST(NULL AS STRING) AS details, CAST(NULL AS STRING) AS payload FROM (VALUES (1)) AS t(x) WHERE x = 0"))
        editor_events = partner_events = platform_events = empty.map(lambda r: r, output_type=EVENT_TYPE) \
            .name("no-events").uid("no-events")
        security = None
    # (iii) partner health: a row per partner and window, and the partner-wide events, keyed by partner
    partner_checks = (
        partner_windows.connect(partner_events)
        .key_by(lambda r: r[0], lambda e: e[3], key_type=Types.STRING())
        .process(partner_health, output_type=OUTPUT_TYPE)
        .name("partner-health").uid("partner-health")
    )
    # What each partner did to each editor it hurt reaches the editor beside its events
    # (udfs/correlator.py: a DEMAND_ISSUE composite names the partner).
    # Platform-wide events reach every editor the network has, and every editor that comes while
    # they can still be a cause (udfs/platform_events.py). One key: every editor window row goes to it.
    platform_routed = (
        editor_windows.connect(platform_events)
        .key_by(lambda r: PLATFORM_KEY, lambda e: PLATFORM_KEY, key_type=Types.STRING())
        .process(PlatformEvents(s.window_size_s, s.timer_grace_ms, s.events_lookback_s,
                                s.state_idle_retention_s * 1000), output_type=EVENT_TYPE)
        .name("platform-event-routing").uid("platform-event-routing")
    )
    editor_events = editor_events.union(partner_checks.get_side_output(PARTNER_FINDINGS), platform_routed)
    composites = (
        editor_windows.connect(editor_events)
        .key_by(lambda r: r[0], lambda e: e[2], key_type=Types.STRING())
        .process(editor_correlator, output_type=OUTPUT_TYPE)
        .name("editor-correlator").uid("editor-correlator")
    )
    # The CloudWatch branch is in the job whether or not it publishes (off, it emits nothing): the
    # SQL operators' state ids are hashed from the job's topology, so an optional operator would
    # keep savepoints from restoring across the switch (flink_jobs/restore_points.py).
    from connectors.cloudwatch.flink_sink import attach_cloudwatch_metrics_sink
    from udfs.window_metrics import EditorWindowMetrics

    window_metrics = editor_windows.process(EditorWindowMetrics(s.window_size_s, enabled=s.cloudwatch_metrics_enabled),
                                            output_type=Types.STRING()) \
        .name("editor-window-metrics").uid("editor-window-metrics")
    # The same AWS endpoint and region as the bus and the dead-letter stream (one local endpoint).
    attach_cloudwatch_metrics_sink(
        window_metrics, s.cloudwatch_namespace, endpoint_url=s.eventbridge_endpoint, region=s.eventbridge_region,
        flush_interval_ms=s.cloudwatch_flush_interval_ms, enabled=s.cloudwatch_metrics_enabled,
        heartbeat_interval_ms=s.sink_heartbeat_interval_ms if source in UNBOUNDED_SOURCES else 0)
    bus_events = composites.union(partner_checks) if security is None else composites.union(partner_checks, security)
    delivered, delivery_failed = attach_eventbridge_sink(
        bus_events, s.bus_name, endpoint_url=s.eventbridge_endpoint, region=s.eventbridge_region,
        latency_log_path=s.latency_log_path, flush_interval_ms=s.sink_flush_interval_ms,
        max_in_flight=s.sink_max_in_flight,
        # Unbounded sources only: the heartbeat flushes buckets restored without their flush timer
        # (connectors.flink_buffer); it never ends, so a bounded job with it would never finish.
        # Bounded jobs flush at end of input through the final watermark instead.
        heartbeat_interval_ms=s.sink_heartbeat_interval_ms if source in UNBOUNDED_SOURCES else 0)

    # Dead letters (+ late records): built in SQL, written by connectors/deadletter.
    dl_table = t_env.sql_query("\nUNION ALL\n".join(f"SELECT reason_code, line FROM ({q})" for q in dl_sql))
    dl_rows = t_env.to_data_stream(dl_table)
    dead = dl_rows.filter(lambda r: r[0] != "LATE_RECORD").map(lambda r: r[1], output_type=Types.STRING()) \
        .name("dead-letter-lines").uid("dead-letter-lines")
    late = dl_rows.filter(lambda r: r[0] == "LATE_RECORD").map(lambda r: r[1], output_type=Types.STRING()) \
        .name("late-record-lines").uid("late-record-lines")
    unbounded = source in UNBOUNDED_SOURCES
    _attach_dead_letter_sink(dead.union(delivery_failed), s, "records", unbounded=unbounded)
    _attach_dead_letter_sink(late, s, "late", unbounded=unbounded, late=True)

    pipe.window_rows, pipe.bus_events = windows, bus_events
    pipe.delivered, pipe.dead_letters = delivered, dead
    return pipe


class _StampEventTime(ProcessFunction):
    """Valid events: take the event time (ms) from the record timestamp (the rowtime)."""

    def process_element(self, value, ctx):
        yield Row(value[0], int(ctx.timestamp()), value[2], value[3], value[4], value[5], value[6])


# ----------------------------------------------------------------------------- job handle
@dataclass
class JobHandle:
    """A detached job on the in-process mini-cluster (or a session cluster)."""

    job_client: object
    settings: Settings
    restored_from: str | None = None
    failure: str | None = None
    operators: dict[str, str] = field(default_factory=dict)  # operator id -> its task's name
    _stopped: bool = False

    @property
    def job_id(self) -> str:
        return str(self.job_client.get_job_id())

    def status(self) -> str:
        """INITIALIZING, CREATED, RUNNING, RESTARTING, FINISHED, CANCELED, FAILED, ... (JobStatus name)."""
        try:
            return self.job_client.get_job_status().result().name
        except Exception:
            # A per-job mini-cluster shuts down with its job: ask the result future instead.
            if not self.job_client._j_job_client.getJobExecutionResult().isDone():
                raise
            return self.wait(timeout_s=1.0)

    def stop(self, savepoint: bool = True, timeout_s: float = 120.0) -> str | None:
        """Stop with a savepoint (returns its path), or cancel when savepoint=False."""
        self._stopped = True
        if not savepoint:
            self.cancel()
            return None
        directory = (Path(self.settings.checkpoint_dir).resolve() / "savepoints").as_uri()
        j = self.job_client._j_job_client
        from pyflink.java_gateway import get_gateway

        fmt = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
        future = j.stopWithSavepoint(False, directory, fmt)
        path = future.get(int(timeout_s * 1000), get_gateway().jvm.java.util.concurrent.TimeUnit.MILLISECONDS)
        record_execution_mode(local_path(str(path)), self.settings.python_execution_mode)
        record_operators(local_path(str(path)), self.operators)
        return str(path)

    def cancel(self) -> None:
        self._stopped = True
        self.job_client.cancel().result()

    def wait(self, timeout_s: float | None = None) -> str:
        """Block until the job ends; returns FINISHED, CANCELED or FAILED.

        Bounded sources (archive, datagen) finish by themselves; unbounded ones run
        until stopped or cancelled. Raises TimeoutError after timeout_s."""
        from pyflink.java_gateway import get_gateway

        jvm = get_gateway().jvm
        future = self.job_client._j_job_client.getJobExecutionResult()
        try:
            if timeout_s is None:
                future.get()
            else:
                future.get(int(timeout_s * 1000), jvm.java.util.concurrent.TimeUnit.MILLISECONDS)
        except Exception as exc:  # py4j wraps the Java exceptions
            text = str(exc)
            if "TimeoutException" in text:
                raise TimeoutError(f"job {self.job_id} still running after {timeout_s} s") from None
            if self._stopped or "JobCancellationException" in text or "CANCELED" in text:
                return "CANCELED"
            self.failure = text
            return "FAILED"
        return "FINISHED"


def planned_job(env, job_name: str) -> tuple[object, dict[str, str]]:
    """(the Java StreamGraph that PyFlink's env.execute_async would submit, its job graph's operator
    ids -> task names). start_job submits the graph itself, so that the ids can be checked first."""
    stream_graph = env._generate_stream_graph(clear_transformations=True, job_name=job_name)
    return stream_graph, job_graph_operators(stream_graph)


def start_job(cfg: JobConfig, source: str | None = None, *, restore: str | None = None,
              sql_only: bool = False) -> JobHandle:
    """Build and submit the job detached; returns at once with a JobHandle."""
    s = Settings.from_config(cfg)
    source = source or cfg.get_choice("job", "source", SOURCES)
    restore_path = resolve_restore(restore, s)
    check_restore_mode(restore_path, s.python_execution_mode)
    t0 = time.monotonic()
    env, t_env = create_environments(s, restore_path=restore_path)
    build_pipeline(env, t_env, cfg, s, source, sql_only=sql_only)
    stream_graph, operators = planned_job(env, s.name)
    # A restore point holding state for operators this job lacks is refused before Flink is asked.
    check_restore_operators(restore_path, operators)
    t1 = time.monotonic()
    client = JobClient(env._j_stream_execution_environment.executeAsync(stream_graph))
    job_dir = Path(s.checkpoint_dir).resolve() / str(client.get_job_id())
    record_execution_mode(job_dir, s.python_execution_mode)
    record_operators(job_dir, operators)
    log.info("job graph built in %.1f s, submitted in %.1f s", t1 - t0, time.monotonic() - t1)
    log.info("submitted %s (job %s, source %s, restored from %s)", s.name, client.get_job_id(), source, restore_path)
    return JobHandle(client, s, restore_path, operators=operators)


# ----------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flink_jobs.main", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=SOURCES, help="input (default: job.source property)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
                   help="override a property (repeatable)")
    p.add_argument("--properties", help="application_properties.json to layer over the defaults")
    p.add_argument("--restore", help="'latest' (newest retained checkpoint/savepoint) or a checkpoint/savepoint path")
    p.add_argument("--dry-run", action="store_true", help="validate the config and print the plan, do not run")
    if not running_on_managed_flink():
        # Strict: a mistyped option (--dryrun, --surce, --sett) is an error naming it, not ignored
        # (a mistyped --dry-run started the real job, and a mistyped --set ran without the override).
        return p.parse_args(argv)
    # On Managed Flink the service starts the entry point (deploy/packaging: main.py) and may pass
    # arguments of its own through to it (why this parser ignored unknown arguments from the start;
    # not checked on the service). The job is configured there by its property groups, not a
    # command line, so they are logged and ignored rather than fail the application's start.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        log.warning("ignoring command-line arguments this job does not take: %s", " ".join(unknown))
    return args


def main(argv: list[str] | None = None) -> int:
    # A parent process that ran PyFlink in-process (a test, a harness) leaves this set in the
    # environment it hands down; this CLI is a job client, never a UDF worker, so clear it.
    os.environ.pop("PYFLINK_GATEWAY_DISABLED", None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    # Not at module level: the archive package imports pyarrow, which only the archive source needs.
    from connectors.archive.integrity import DamagedArchiveError

    try:
        cfg = JobConfig.load(args.properties, args.overrides)
        s = Settings.from_config(cfg)
        source = args.source or cfg.get_choice("job", "source", SOURCES)
        if args.dry_run:
            env, t_env = create_environments(s, managed=False)
            build_pipeline(env, t_env, cfg, s, source)
            print(env.get_execution_plan())
            return 0
        if running_on_managed_flink():
            # The service submits the job graph that execute() builds; it handles stop/savepoints.
            env, t_env = create_environments(s)
            build_pipeline(env, t_env, cfg, s, source)
            env.execute(s.name)
            return 0
        handle = start_job(cfg, source, restore=args.restore)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except DamagedArchiveError as exc:          # connectors.archive.integrity
        print(f"input error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"job_id": handle.job_id, "source": source, "restored_from": handle.restored_from,
                      "checkpoint_dir": s.checkpoint_dir, "python_execution_mode": s.python_execution_mode,
                      "flink_log_dir": str(local_flink_log_dir()),
                      "packaged_dependencies": "python.requirements" in packaged_python_dependencies()}),
          flush=True)
    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log.info("signal %s: stopping with a savepoint", signum)
        try:
            path = handle.stop(savepoint=True)
            print(json.dumps({"savepoint": path}), flush=True)
        except Exception as exc:  # bounded sources may have finished already
            log.warning("stop with savepoint failed (%s); cancelling", exc)
            try:
                handle.cancel()
            except Exception:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state = handle.wait()
    print(json.dumps({"final_state": state}), flush=True)
    return 0 if state in ("FINISHED", "CANCELED") or stopping.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
