"""kinesis-local (the npm package of kinesis-mock, LocalStack's Kinesis engine) as a second Kinesis.

Lets the boto3 Kinesis path be tested against an implementation other than moto:

    from deploy.local.kinesis_local import start_kinesis_local
    kl = start_kinesis_local(log_dir=...)      # needs Node.js; installs the pinned package on first use
    boto3.client("kinesis", endpoint_url=kl.url, ...)
    kl.stop()

The package is installed with npm into <repo>/.local-aws/kinesis-local (git-ignored),
pinned to KINESIS_LOCAL_VERSION.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.endpoint import REPO_ROOT, _die_with_parent

KINESIS_LOCAL_VERSION = "0.6.2"
DEFAULT_INSTALL_DIR = REPO_ROOT / ".local-aws" / "kinesis-local"
#: npm's error codes for a registry it cannot reach (DNS, refused, reset, timed out, offline).
NPM_NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                      "EHOSTUNREACH", "ENOTCACHED", "ERR_SOCKET_TIMEOUT")


class KinesisLocalUnavailable(RuntimeError):
    """kinesis-local could not be started (the message says why)."""


class KinesisLocalNotInstallable(KinesisLocalUnavailable):
    """The machine lacks what installs it: Node.js, npm, or npm's registry. Unlike a server that
    was installed but crashed or did not answer, this is the environment, not kinesis-local."""


@dataclass
class KinesisLocal:
    url: str
    port: int
    pid: int
    log_file: Path
    _process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 2.0) -> None:
        # It keeps everything in memory, so nothing is lost by not waiting long
        # (its runtime takes ~10 s to honour SIGTERM).
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)


def ensure_installed(install_dir: Path = DEFAULT_INSTALL_DIR) -> Path:
    """Path of the package's directory (main.js + server.json); npm-installs it if missing."""
    if shutil.which("node") is None:
        raise KinesisLocalNotInstallable("Node.js (node) is not on PATH; install Node.js 18+ to use kinesis-local")
    package_dir = install_dir / "node_modules" / "kinesis-local"
    manifest = package_dir / "package.json"
    if manifest.exists() and f'"{KINESIS_LOCAL_VERSION}"' in manifest.read_text():
        return package_dir
    npm = shutil.which("npm")
    if npm is None:
        raise KinesisLocalNotInstallable("npm is not on PATH; it is needed once to install kinesis-local")
    install_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(install_dir), "--no-audit", "--no-fund", "--no-save",
         f"kinesis-local@{KINESIS_LOCAL_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0 and any(code in result.stderr for code in NPM_NETWORK_ERRORS):
        raise KinesisLocalNotInstallable(
            f"npm's registry cannot be reached to install kinesis-local@{KINESIS_LOCAL_VERSION}: "
            f"{result.stderr[-2000:]}")
    if result.returncode != 0 or not (package_dir / "main.js").exists():
        # Any other failure is the package's, not the machine's (a version npm does not have, a
        # layout without main.js): an error, never a reason to skip the tests that use it.
        raise KinesisLocalUnavailable(
            f"npm install kinesis-local@{KINESIS_LOCAL_VERSION} failed (exit {result.returncode}"
            f"{', no main.js in the package' if result.returncode == 0 else ''}): {result.stderr[-2000:]}")
    return package_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_kinesis_local(log_dir: str | Path, install_dir: Path = DEFAULT_INSTALL_DIR,
                        timeout: float = 60.0, region: str = "us-east-1") -> KinesisLocal:
    package_dir = ensure_installed(install_dir)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "kinesis-local.log"
    port, tls_port = _free_port(), _free_port()
    env = dict(os.environ, KINESIS_MOCK_PLAIN_PORT=str(port), KINESIS_MOCK_TLS_PORT=str(tls_port),
               AWS_REGION=region, LOG_LEVEL="WARN",
               # Tests create and reshard streams; AWS-like 500 ms transitions only slow them down.
               CREATE_STREAM_DURATION="50ms", DELETE_STREAM_DURATION="50ms", SPLIT_SHARD_DURATION="50ms",
               MERGE_SHARDS_DURATION="50ms", UPDATE_SHARD_COUNT_DURATION="50ms")
    with open(log_file, "ab") as log:
        # cwd: the server reads server.json (its TLS settings) from the working directory.
        process = subprocess.Popen(["node", str(package_dir / "main.js")], cwd=str(package_dir), env=env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("kinesis", endpoint_url=url, region_name=region,
                          aws_access_key_id="test", aws_secret_access_key="test")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise KinesisLocalUnavailable(f"kinesis-local exited with {process.returncode}; log: {log_file}")
        try:
            client.list_streams()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                process.kill()
                raise KinesisLocalUnavailable(f"kinesis-local did not answer within {timeout}s; log: {log_file}")
            time.sleep(0.2)
    return KinesisLocal(url=url, port=port, pid=process.pid, log_file=log_file, _process=process)
