"""connectors.flink_runtime: the thread-mode options, the subtask index in both PyFlink modes, and
what the job ships to its Python workers when it runs from the Managed Flink package.

The pipeline tests run the job in thread mode, where the fallback is the path taken; this
checks the dispatch on its own with stand-ins shaped like PyFlink 2.2's two RuntimeContexts."""
import os
from pathlib import Path

from connectors.flink_runtime import REPOSITORY, execution_mode_options, subtask_index


class _ProcessModeContext:
    def get_index_of_this_subtask(self):
        return 3


class _JavaTaskInfo:
    def getIndexOfThisSubtask(self):
        return 1


class _JavaRuntimeContext:
    def getTaskInfo(self):
        return _JavaTaskInfo()


class _ThreadModeContext:
    """PyFlink's embedded StreamingRuntimeContext forwards to a Java method Flink 2.0 removed."""

    _runtime_context = _JavaRuntimeContext()

    def get_index_of_this_subtask(self):
        return self._runtime_context.getIndexOfThisSubtask()  # AttributeError, as in PyFlink 2.2


def test_process_mode_answers_directly():
    assert subtask_index(_ProcessModeContext()) == 3


def test_thread_mode_falls_back_to_the_task_info():
    assert subtask_index(_ThreadModeContext()) == 1


def test_thread_mode_puts_the_repository_and_pemja_on_the_embedded_path():
    assert execution_mode_options("process") == {"python.execution-mode": "process"}
    options = execution_mode_options("thread")
    assert options["python.execution-mode"] == "thread"
    path = [Path(p) for p in options["python.pythonpath"].split(os.pathsep)]
    assert REPOSITORY in path and (REPOSITORY / "udfs").is_dir()
    assert any((p / "pemja").is_dir() for p in path), path  # what the embedded interpreter imports


def test_the_package_ships_its_code_and_wheels_to_the_workers_and_a_checkout_does_not(tmp_path):
    from connectors.flink_runtime import package_root, packaged_python_dependencies

    assert packaged_python_dependencies() == {}              # this checkout: the venv has everything
    code = tmp_path / "job"
    code.mkdir()
    assert packaged_python_dependencies(code) == {}          # no main.py beside it: not the package
    (tmp_path / "main.py").write_text("")
    assert package_root(code) == tmp_path
    assert packaged_python_dependencies(code) == {"python.files": str(code)}   # built with --skip-wheels
    (tmp_path / "requirements.txt").write_text("river==0.23.0\n")
    (tmp_path / "wheelhouse").mkdir()
    assert packaged_python_dependencies(code) == {
        "python.files": str(code),
        "python.requirements": f"{tmp_path / 'requirements.txt'}#{tmp_path / 'wheelhouse'}"}
    assert packaged_python_dependencies(tmp_path / "other") == {}   # the code folder has another name
