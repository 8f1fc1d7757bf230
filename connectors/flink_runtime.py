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
