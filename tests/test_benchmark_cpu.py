"""flink_jobs.benchmark.ProcessTreeCpu: the per-thread CPU split the benchmark JSON reports."""
import ctypes
import sys
import threading
import time

import pytest

from flink_jobs.benchmark import ProcessTreeCpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _burn(name: bytes, cpu_s: float) -> None:
    # The OS-level thread name (what /proc shows), as the JVM sets it for Flink's task threads.
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    end = time.thread_time() + cpu_s
    x = 0
    while time.thread_time() < end:
        x += 1


def test_cpu_is_split_by_thread_name():
    with ProcessTreeCpu() as cpu:
        workers = [threading.Thread(target=_burn, args=(b"bench-busy", 0.4)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        time.sleep(0.3)  # one more sample after the workers ended
    result = cpu.result()
    by_thread = result["cpu_s_by_thread"]
    # Both threads share the name, so their CPU is summed (0.8 s burnt; /proc counts in ticks
    # and the last 0.25 s before a thread exits may fall between samples).
    assert 0.4 <= by_thread["bench-busy"] <= 1.2, by_thread
    assert by_thread["bench-busy"] <= result["cpu_s_total"] + 0.1
