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
