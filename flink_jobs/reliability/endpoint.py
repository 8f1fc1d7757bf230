"""The embedded endpoint of deploy/local, plus Kinesis SplitShard as AWS does it.

    python -m flink_jobs.reliability.endpoint --host 127.0.0.1 --port 0 --ready-file PATH

Same server, same patches (``deploy.local.server``), with
``aws_kinesis_split.apply()`` first: unpatched moto routes every record put after
a split into the closed parent shard (see tests/test_reliability_endpoint_split.py),
which would make the harness's shard-split measurement a measurement of moto.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SplitFaithfulEndpoint:
    url: str
    port: int
    pid: int
    log_file: Path
    process: subprocess.Popen

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start(log_dir: str | Path | None = None, timeout: float = 60.0) -> SplitFaithfulEndpoint:
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="reliability-aws-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    ready = log_dir / f"ready-{os.getpid()}-{time.monotonic_ns()}.json"
    log_file = log_dir / "endpoint.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("AWS_ENDPOINT_URL", None)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flink_jobs.reliability.endpoint", "--host", "127.0.0.1", "--port", "0",
             "--ready-file", str(ready)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO_ROOT))
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"endpoint exited with {process.returncode}; see {log_file}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"endpoint not ready after {timeout}s; see {log_file}")
        time.sleep(0.1)
    info = json.loads(ready.read_text())
    return SplitFaithfulEndpoint(f"http://127.0.0.1:{info['port']}", info["port"], process.pid, log_file, process)


def main(argv: list[str] | None = None) -> int:
    from flink_jobs.reliability import aws_kinesis_split
    from deploy.local import server

    aws_kinesis_split.apply()
    return server.main(argv)


if __name__ == "__main__":
    sys.exit(main())
