"""flink_jobs.benchmark.ProcessTreeCpu: the per-thread CPU split the benchmark JSON reports."""
import ctypes
import sys
import threading
import time

import pytest

from flink_jobs.benchmark import ProcessTreeCpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _burn(name: bytes, cpu_s: float, burnt: threading.Event, release: threading.Event) -> None:
    # The OS-level thread name (what /proc shows), as the JVM sets it for Flink's task threads.
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    end = time.thread_time() + cpu_s
    x = 0
    while time.thread_time() < end:
        x += 1
    burnt.set()
    # Stay alive until the final sample: a thread that exits between two samples is not seen.
    release.wait(30)


def test_cpu_is_split_by_thread_name():
    release = threading.Event()
    burnt = [threading.Event() for _ in range(2)]
    workers = [threading.Thread(target=_burn, args=(b"bench-busy", 0.4, done, release)) for done in burnt]
    try:
        with ProcessTreeCpu() as cpu:
            for w in workers:
                w.start()
            for done in burnt:
                assert done.wait(30)
        # __exit__ took a last sample while both threads were still alive
    finally:
        release.set()
        for w in workers:
            w.join()
    result = cpu.result(top=None)
    by_thread = result["cpu_s_by_thread"]
    # Both threads share the name, so their CPU is summed: 0.8 s burnt (/proc counts in ticks).
    assert 0.7 <= by_thread["bench-busy"] <= 1.2, by_thread
    assert by_thread["bench-busy"] <= result["cpu_s_total"] + 0.1


def test_a_bounded_run_that_times_out_is_cancelled_not_left_running(monkeypatch):
    """_run_bounded raised TimeoutError and left the job running in the shared JVM: the parts measured
    after it (the stages, the local Kinesis path) ran beside it, with no note in their figures."""
    import pytest

    import flink_jobs.main as job
    from flink_jobs import benchmark
    from flink_jobs.config import JobConfig

    class StillRunning:
        cancelled = False

        def wait(self, timeout_s):
            raise TimeoutError(f"still running after {timeout_s} s")

        def cancel(self):
            StillRunning.cancelled = True

    monkeypatch.setattr(job, "start_job", lambda cfg, source, sql_only=False: StillRunning())
    with pytest.raises(TimeoutError):
        benchmark._run_bounded(JobConfig.load(environ={}), sql_only=True, timeout_s=0.01)
    assert StillRunning.cancelled
