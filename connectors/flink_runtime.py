"""What PyFlink's RuntimeContext answers in every Python execution mode."""
from __future__ import annotations


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
