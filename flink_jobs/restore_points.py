"""Restoring the job from a checkpoint or savepoint: finding one, and refusing one that would not
restore whole, with an error that says why, before Flink is asked.

Two things make a restore point unfit for a job, and both would otherwise surface as a Java
stack trace from the submission, or worse:

* **PyFlink's execution mode.** Its two modes do not share Python keyed state: a savepoint
  taken in process mode and restored in thread mode started the Kinesis source from
  TRIM_HORIZON again (measured 2026-12-05: 5,539 re-read records, caught only by duplicate
  marking), and the detectors' state would restart cold the same way. The client records the
  mode beside each job's checkpoints and in each savepoint it takes (EXECUTION_MODE_MARKER).
* **Operators whose state has nowhere to go.** Flink keys each operator's state by an id.
  Ours (sources, Python operators, sinks) set theirs (`uid`), but the ids of Flink SQL's
  operators (duplicate marking, the windows) are hashed from the job's topology: add or remove
  one operator and most of them change. When the CloudWatch branch was built only with the
  metrics on, 68 of the 92 operator ids of the job graph (`--source kinesis-local`, parallelism
  2, ids as `job_graph_operators` reads them, 0da485c) differed between on and off (2026-12-06).
  Flink then refuses the restore, and skipping what does not map (its allowNonRestoredState)
  would drop the windows and the duplicate marking while the Kinesis positions restore: the
  records of the open windows would be lost. So a restore point
  holding state for an operator the job lacks is refused here, naming the operators (the client
  records each job's operator names, OPERATORS_MARKER) and what changes a topology.
  tests/test_job_plan.py checks that no operational setting does.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flink_jobs.config import ConfigError

if TYPE_CHECKING:
    from flink_jobs.main import Settings

log = logging.getLogger(__name__)


def _latest_restore_point(checkpoint_dir: str) -> str | None:
    """Newest complete checkpoint (chk-N with _metadata) or savepoint under checkpoint_dir."""
    root = Path(checkpoint_dir)
    candidates = [p.parent for p in root.glob("*/chk-*/_metadata")]
    candidates += [p.parent for p in (root / "savepoints").glob("*/_metadata")]
    if not candidates:
        return None
    return str(max(candidates, key=lambda p: (p / "_metadata").stat().st_mtime))


def resolve_restore(restore: str | None, settings: "Settings") -> str | None:
    if not restore:
        return None
    if restore == "latest":
        found = _latest_restore_point(settings.checkpoint_dir)
        if found is None:
            raise ConfigError(f"--restore latest: no retained checkpoint or savepoint under {settings.checkpoint_dir}")
        return found
    restore = str(local_path(restore))
    metadata = Path(restore) if Path(restore).name == "_metadata" else Path(restore) / "_metadata"
    if not metadata.is_file():
        raise ConfigError(f"--restore {restore}: not a checkpoint/savepoint directory (no _metadata)")
    return restore


# Written beside each job's checkpoints (<checkpoint dir>/<job id>/) and into each savepoint this
# client takes (module docstring).
EXECUTION_MODE_MARKER = "python-execution-mode"
OPERATORS_MARKER = "operators.json"


def local_path(uri_or_path: str) -> Path:
    """A local path of a restore point given as a path or a file: URI (Flink reports the latter)."""
    return Path("/" + uri_or_path[len("file:"):].lstrip("/")) if uri_or_path.startswith("file:") else Path(uri_or_path)


def _recorded(restore_path: str, marker_name: str) -> str | None:
    """A marker's text for a checkpoint (chk-N: the job's directory holds it) or a savepoint."""
    path = local_path(restore_path)
    if path.name == "_metadata":
        path = path.parent
    for marker in (path / marker_name, path.parent / marker_name):
        if marker.is_file():
            return marker.read_text()
    return None


def recorded_execution_mode(restore_path: str) -> str | None:
    """The Python execution mode that wrote a checkpoint or savepoint, if this client recorded it."""
    text = _recorded(restore_path, EXECUTION_MODE_MARKER)
    return None if text is None else text.strip()


def check_restore_mode(restore_path: str | None, mode: str) -> None:
    recorded = recorded_execution_mode(restore_path) if restore_path else None
    if recorded is not None and recorded != mode:
        raise ConfigError(
            f"--restore {restore_path}: written with job.python.execution.mode={recorded}, this run uses {mode}; "
            "PyFlink's two modes do not share Python keyed state (the Kinesis positions and the detectors "
            f"would start over). Restore with job.python.execution.mode={recorded}, or start without --restore.")


def record_execution_mode(directory: Path, mode: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXECUTION_MODE_MARKER).write_text(mode + "\n")


# ------------------------------------------------------------------------ operator ids
def _java_items(iterable: Any):
    """A java.lang.Iterable's items (py4j makes only Lists, Sets and Maps iterable)."""
    iterator = iterable.iterator()
    while iterator.hasNext():
        yield iterator.next()


def job_graph_operators(stream_graph: Any) -> dict[str, str]:
    """Every operator id of the job graph a (Java) StreamGraph becomes, with its task's name."""
    operators: dict[str, str] = {}
    for vertex in _java_items(stream_graph.getJobGraph().getVertices()):
        name = str(vertex.getName())
        for pair in vertex.getOperatorIDs():
            operators[str(pair.getGeneratedOperatorID())] = name
            user_defined = pair.getUserDefinedOperatorID()
            if user_defined.isPresent():
                operators[str(user_defined.get())] = name
    return operators


def record_operators(directory: Path, operators: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / OPERATORS_MARKER).write_text(json.dumps(operators, indent=1, sort_keys=True) + "\n")


def operators_with_state(restore_path: str) -> set[str] | None:
    """Ids of the operators a checkpoint or savepoint holds state for, read from its _metadata as
    Flink reads it (empty states are ignored by Flink's restore too); None, with a warning, if
    Flink cannot read it here (then Flink's own restore says why)."""
    from py4j.protocol import Py4JJavaError
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    path = local_path(restore_path)
    metadata = path if path.name == "_metadata" else path / "_metadata"
    try:
        stream = jvm.java.io.DataInputStream(jvm.java.io.FileInputStream(str(metadata)))
        try:
            loaded = jvm.org.apache.flink.runtime.checkpoint.Checkpoints.loadCheckpointMetadata(
                stream, jvm.java.lang.Thread.currentThread().getContextClassLoader(), str(metadata.parent))
        finally:
            stream.close()
    except Py4JJavaError as exc:
        log.warning("--restore %s: its operators were not checked, Flink cannot read %s here (%s); "
                    "Flink checks them on restore", restore_path, metadata, exc.java_exception.toString())
        return None
    found = set()
    for state in _java_items(loaded.getOperatorStates()):
        if state.getCoordinatorState() is not None or any(s.hasState() for s in _java_items(state.getStates())):
            found.add(str(state.getOperatorID()))
    return found


def check_restore_operators(restore_path: str | None, operators: dict[str, str]) -> None:
    """Refuse a restore point holding state for operators the job (`operators`, its job graph's
    ids) does not have (module docstring)."""
    if not restore_path:
        return
    saved = operators_with_state(restore_path)
    if saved is None:
        return
    missing = sorted(saved - set(operators))
    if not missing:
        return
    recorded_text = _recorded(restore_path, OPERATORS_MARKER)
    recorded = json.loads(recorded_text) if recorded_text else {}
    named = sorted({recorded[i][:160] for i in missing if i in recorded})
    unnamed = [i for i in missing if i not in recorded]
    parts = ["; ".join(named[:8]) + (f" (+{len(named) - 8} more)" if len(named) > 8 else "")] if named else []
    if unnamed:   # a restore point this client did not write, or from before it recorded names
        parts.append(f"ids {', '.join(unnamed[:5])}" + (f" (+{len(unnamed) - 5} more)" if len(unnamed) > 5 else ""))
    shown = ", and ".join(parts)
    raise ConfigError(
        f"--restore {restore_path}: it holds the state of {len(missing)} operator(s) this job does not have: "
        f"{shown}. The job's topology is not the one that wrote it: a different Kinesis stream name (the "
        "reader keeps its positions under the stream's name), eventbridge.heartbeat.interval.ms or "
        "processing.dedup.retention.s changed between 0 and not 0, archive.events.path set or unset, another "
        "--source, or code that adds or removes an operator. Flink SQL's operators (the "
        "windows, duplicate marking) keep their state under ids hashed from the topology, so skipping what does "
        "not map would drop it. Restore with the settings and code that wrote it, or start without --restore.")
