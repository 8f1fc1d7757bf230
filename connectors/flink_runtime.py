"""PyFlink's two Python execution modes: the configuration each needs here, and what their
RuntimeContexts answer."""
from __future__ import annotations

import os
import site
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def execution_mode_options(mode: str) -> dict[str, str]:
    """Flink configuration for ``python.execution-mode`` = ``mode`` ("thread" or "process").

    The interpreter that thread mode embeds in the JVM does not read the venv's pyvenv.cfg:
    without its site-packages (pemja, numpy, river...) and this repository on its path it
    fails with "No module named pemja". Process mode starts ``python.executable`` instead.
    """
    options = {"python.execution-mode": mode}
    if mode == "thread":
        options["python.pythonpath"] = os.pathsep.join([str(REPOSITORY), *site.getsitepackages()])
    return options


#: The Managed Flink package (deploy/packaging) puts the job's code in this folder, beside
#: main.py, lib/ (connector JARs), the job's pinned Python requirements and a folder of wheels
#: that satisfies them (the whole dependency closure).
PACKAGED_CODE_FOLDER = "job"
PACKAGED_ENTRY_POINT = "main.py"
PACKAGED_REQUIREMENTS = "requirements.txt"
PACKAGED_WHEELHOUSE = "wheelhouse"


def package_root(code_root: Path = REPOSITORY) -> Path | None:
    """The unpacked Managed Flink package this code runs from, or None in a checkout."""
    root = code_root.parent
    if code_root.name == PACKAGED_CODE_FOLDER and (root / PACKAGED_ENTRY_POINT).is_file():
        return root
    return None


def packaged_python_dependencies(code_root: Path = REPOSITORY) -> dict[str, str]:
    """Flink options that give the Python workers the job's code and dependencies when it runs
    from the Managed Flink package (on the service or unpacked anywhere); {} in a checkout,
    whose venv has both installed.

    Managed Flink provides PyFlink and what PyFlink needs, not river, scipy or boto3.
    ``python.requirements`` = "requirements.txt#wheelhouse" makes each TaskManager run
    ``pip install --no-index --find-links wheelhouse`` for the job before its Python workers
    start, so no network is needed. ``python.files`` ships the code folder to the workers
    (process mode unpickles the operators by module name). Flink puts a shipped folder itself
    on the workers' path, not its parent, which is why the package keeps the code in one
    folder and not at its root next to 128 MB of wheels. The client process, which only plans
    the job, gets neither: planning the service's run (official connector, both sinks, their
    heartbeats) imports nothing that needs them; the boto3 Kinesis source, a local path, does.
    A test runs the package with a Python that has PyFlink and nothing else of the job's, its
    workers in separate processes, and plans the service's sinks with it.

    >>> packaged_python_dependencies(Path("/nonexistent/job"))
    {}
    """
    root = package_root(code_root)
    if root is None:
        return {}
    options = {"python.files": str(code_root)}
    if (root / PACKAGED_REQUIREMENTS).is_file() and (root / PACKAGED_WHEELHOUSE).is_dir():  # not --skip-wheels
        options["python.requirements"] = f"{root / PACKAGED_REQUIREMENTS}#{root / PACKAGED_WHEELHOUSE}"
    return options


def tick_stream(env, interval_ms: int, name: str):
    """Unbounded, rate-limited ticks (the Table API datagen connector, as a DataStream): what
    drives the boto3 Kinesis source's polls and the sinks' heartbeats.

    Here rather than beside the Kinesis poller, which imports botocore: the sinks' heartbeats
    are planned in the client process, which on Managed Flink has no boto3.
    """
    from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableDescriptor

    t_env = StreamTableEnvironment.create(env)
    ticks_per_second = max(1, round(1000 / max(1, interval_ms)))
    descriptor = (
        TableDescriptor.for_connector("datagen")
        .schema(Schema.new_builder().column("tick", DataTypes.BIGINT()).build())
        .option("rows-per-second", str(ticks_per_second))
        .option("fields.tick.kind", "random")
        # One tick generator is enough; the fan-out after it runs at parallelism 1 too.
        .option("scan.parallelism", "1")
        .build()
    )
    return t_env.to_data_stream(t_env.from_descriptor(descriptor))


def subtask_index(runtime_context) -> int:
    """Index of this parallel subtask (0-based).

    PyFlink 2.2's thread ("embedded") mode forwards ``get_index_of_this_subtask`` to
    ``RuntimeContext.getIndexOfThisSubtask()``, a Java method Flink 2.0 removed (it moved to
    ``getTaskInfo()``), so the call raises AttributeError there. The process mode works.
    """
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()
