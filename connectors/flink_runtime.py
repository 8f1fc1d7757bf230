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
PACKAGED_REQUIREMENTS = "requirements.txt"
PACKAGED_WHEELHOUSE = "wheelhouse"


def package_root(code_root: Path = REPOSITORY) -> Path | None:
    """The unpacked Managed Flink package this code runs from, or None in a checkout."""
    root = code_root.parent
    if code_root.name == PACKAGED_CODE_FOLDER and (root / "main.py").is_file():
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
    folder and not at its root next to 130 MB of wheels. The client process, which only plans
    the job, gets neither: nothing it imports needs them. A test runs the package with a Python
    that has PyFlink and nothing else of the job's, its workers in separate processes.

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
