"""Start, find and check the embedded AWS endpoint.

``start_endpoint`` runs ``deploy.local.server`` as a child process on a free port
(tests, and ``python -m deploy.local up``), waits until it answers, and returns a
handle whose ``stop()`` ends exactly that process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566  # LocalStack's port, so localstack-client / awslocal conventions work
DEFAULT_REGION = "us-east-1"


class EndpointError(RuntimeError):
    pass


@dataclass
class LocalEndpoint:
    url: str
    port: int
    pid: int
    log_file: Path | None = None
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server process this handle started (and nothing else)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout)
            return
        stop_pid(self.pid, timeout)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback/configured URL
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:  # any HTTP answer means something is listening
        return exc.code, exc.read()


def is_answering(url: str, timeout: float = 2.0) -> bool:
    """True if an HTTP server answers at url (any status code)."""
    try:
        http_get(url.rstrip("/") + "/", timeout)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_moto(url: str) -> bool:
    try:
        status, _ = http_get(url.rstrip("/") + "/moto-api/config")
        return status in (200, 201)  # moto 5.2.5 answers GET /moto-api/config with 201
    except (urllib.error.URLError, OSError, ValueError):
        return False


def enable_state_machine_execution(url: str) -> bool:
    """Ask a moto server to really execute ASL. False if the endpoint is not moto."""
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    req = urllib.request.Request(
        url.rstrip("/") + "/moto-api/config", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return resp.status in (200, 201)
    except (urllib.error.URLError, OSError):
        return False


def probe_state_machine_execution(url: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Does this endpoint really execute ASL? Run a one-state machine and see.

    moto's GET /moto-api/config does not report the Step Functions setting, and
    moto without it accepts StartExecution but leaves executions RUNNING forever,
    so the only trustworthy answer is an execution that finishes.
    """
    import uuid

    from deploy.local.stack import client

    sfn = client("stepfunctions", url)
    name = f"adops-execution-probe-{uuid.uuid4().hex[:8]}"
    definition = json.dumps({"StartAt": "Probe", "States": {"Probe": {"Type": "Pass", "Result": {"ok": True}, "End": True}}})
    machine = sfn.create_state_machine(
        name=name, definition=definition, roleArn="arn:aws:iam::123456789012:role/adops-execution-probe")
    try:
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = sfn.describe_execution(executionArn=arn)["status"]
            if status == "SUCCEEDED":
                return True, "a probe execution ran to SUCCEEDED"
            if status != "RUNNING":
                return False, f"a probe execution ended {status}"
            time.sleep(0.2)
        return False, f"a probe execution stayed RUNNING for {timeout}s (execution disabled?)"
    finally:
        sfn.delete_state_machine(stateMachineArn=machine["stateMachineArn"])


def process_is_our_server(pid: int, state_dir: str | Path | None = None) -> bool:
    """The pid is alive and runs our server module (guards against pid reuse).

    With ``state_dir``, it must also be the server started with that state
    directory (its ready file lives there), so `down` never stops a server that
    a test or another checkout started.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"deploy.local.server" not in cmdline:
        return False
    if state_dir is not None:
        prefix = str(Path(state_dir).resolve()).encode() + b"/"
        return any(arg.startswith(prefix) for arg in cmdline)
    return True


def stop_pid(pid: int, timeout: float = 10.0, state_dir: str | Path | None = None) -> bool:
    """SIGTERM the pid if (and only if) it is our server; wait for it to exit."""
    if not process_is_our_server(pid, state_dir):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_is_our_server(pid, state_dir):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def start_endpoint(
    port: int = 0,
    log_dir: str | Path | None = None,
    host: str = DEFAULT_HOST,
    # Importing moto and its patches takes ~2 s on a quiet machine; with the machine shared by
    # several Flink jobs (load average 60-80) a `make run` saw no ready file after 60 s.
    timeout: float = 180.0,
    detach: bool = False,
) -> LocalEndpoint:
    """Start the embedded endpoint in a child process; port 0 picks a free port.

    ``detach=True`` puts the server in its own session so it outlives the caller
    (used by ``python -m deploy.local up``).
    """
    log_dir = (Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="adops-local-aws-"))).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    ready_file = log_dir / f"server-ready-{os.getpid()}-{time.monotonic_ns()}.json"
    log_file = log_dir / "server.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # The server itself never needs to reach another endpoint.
    env.pop("AWS_ENDPOINT_URL", None)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local.server", "--host", host,
             "--port", str(port), "--ready-file", str(ready_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT), env=env, start_new_session=detach,
            # A test session that dies (even by SIGKILL) must not leave its server behind.
            preexec_fn=None if detach else _die_with_parent,
        )
    deadline = time.monotonic() + timeout
    while not ready_file.exists():
        if process.poll() is not None:
            raise EndpointError(
                f"embedded AWS endpoint exited with code {process.returncode}; "
                f"log: {log_file}\n{_tail(log_file)}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise EndpointError(f"embedded AWS endpoint did not start within {timeout}s; log: {log_file}")
        time.sleep(0.05)
    info = json.loads(ready_file.read_text())
    ready_file.unlink(missing_ok=True)
    url = f"http://{host}:{info['port']}"
    while not is_moto(url):  # health check: the moto API answers
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise EndpointError(f"embedded AWS endpoint at {url} failed its health check; log: {log_file}")
        time.sleep(0.05)
    return LocalEndpoint(url=url, port=int(info["port"]), pid=process.pid,
                         log_file=log_file, _process=None if detach else process)


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux/glibc: LocalEndpoint.stop() is still the normal way out


# Resolved in the parent: after fork the child must not import (another thread may hold the import lock).
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent exits (Linux prctl PR_SET_PDEATHSIG)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
