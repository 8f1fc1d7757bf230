"""`python -m deploy.local up|status|down` as a user runs it, on free ports (never 4566)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.local.endpoint import process_is_our_server, start_endpoint

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.aws


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "deploy.local", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_up_status_down_lifecycle(tmp_path):
    port, state = free_port(), tmp_path / "state"
    up = cli("up", "--port", str(port), "--state-dir", str(state))
    try:
        assert up.returncode == 0, up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout and "started now" in up.stdout
        info = json.loads((state / "server.pid.json").read_text())
        assert info["port"] == port and process_is_our_server(info["pid"], state)
        assert (state / "server.log").exists()

        status = cli("status", "--port", str(port), "--state-dir", str(state), "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["stack"] == "CREATE_COMPLETE"
        assert {"adops-metrics-stream", "adops-events-stream", "adops-dead-letter-stream"} <= set(report["streams"])
        assert "adops-production-events" in report["buses"]
        assert any(arn.startswith("arn:aws:states:") for arn in report["rules"]["adops-production-events/multi-metric-anomaly"])
        assert any(q.endswith("/multi-metric-anomaly-observation") for q in report["queues"])
        assert report["workflow_can_execute"] is True, report["workflow_execution"]

        again = cli("up", "--port", str(port), "--state-dir", str(state))  # idempotent: reuses server and stack
        assert again.returncode == 0 and "started by `up`" in again.stdout
        assert json.loads((state / "server.pid.json").read_text())["pid"] == info["pid"]
    finally:
        down = cli("down", "--port", str(port), "--state-dir", str(state))
    assert down.returncode == 0 and f"stopped embedded endpoint pid {info['pid']}" in down.stdout
    assert not pid_alive(info["pid"])
    assert not (state / "server.pid.json").exists()
    assert cli("status", "--port", str(port), "--state-dir", str(state)).returncode == 1


def test_up_reuses_a_server_already_on_the_port_and_down_leaves_it_alone(tmp_path):
    foreign = start_endpoint(port=0, log_dir=tmp_path / "foreign")
    try:
        state = tmp_path / "state"
        up = cli("up", "--port", str(foreign.port), "--state-dir", str(state))
        assert up.returncode == 0, up.stderr
        assert "already answering" in up.stdout
        assert not (state / "server.pid.json").exists()
        down = cli("down", "--port", str(foreign.port), "--state-dir", str(state))
        assert "nothing to stop" in down.stdout
        assert pid_alive(foreign.pid)
        # A pid file naming someone else's server (e.g. stale, or copied) is not obeyed either.
        state.mkdir(parents=True, exist_ok=True)
        (state / "server.pid.json").write_text(json.dumps({"pid": foreign.pid, "port": foreign.port, "url": foreign.url}))
        down = cli("down", "--port", str(foreign.port), "--state-dir", str(state))
        assert "not our server" in down.stdout
        assert pid_alive(foreign.pid)
    finally:
        foreign.stop()
    assert not pid_alive(foreign.pid)


def test_up_uses_aws_endpoint_url_when_set(tmp_path):
    foreign = start_endpoint(port=0, log_dir=tmp_path / "foreign")
    try:
        state = tmp_path / "state"
        env = {"AWS_ENDPOINT_URL": foreign.url}
        up = cli("up", "--port", str(free_port()), "--state-dir", str(state), env_extra=env)
        assert up.returncode == 0, up.stderr
        assert f"endpoint: {foreign.url} [AWS_ENDPOINT_URL]" in up.stdout
        assert not (state / "server.pid.json").exists()
        status = json.loads(cli("status", "--state-dir", str(state), "--json", env_extra=env).stdout)
        assert status["endpoint"] == foreign.url and status["stack"] == "CREATE_COMPLETE"
    finally:
        foreign.stop()


def test_status_reports_when_a_moto_server_does_not_execute_workflows(tmp_path):
    """Plain moto (no patches, execution off) must not be reported as able to run the workflow."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    plain = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        from deploy.local.endpoint import is_moto
        import time

        deadline = time.monotonic() + 30
        while not is_moto(f"http://127.0.0.1:{port}"):
            assert time.monotonic() < deadline and plain.poll() is None
            time.sleep(0.1)
        status = cli("status", "--port", str(port), "--state-dir", str(tmp_path / "s"), "--json")
        report = json.loads(status.stdout)
        assert report["workflow_can_execute"] is False
        assert "RUNNING" in report["workflow_execution"]
    finally:
        plain.terminate()
        plain.wait(10)
        log.close()


def test_server_of_a_killed_test_session_does_not_linger(tmp_path):
    """start_endpoint's server gets SIGTERM when its parent dies, even by SIGKILL."""
    import signal
    import time

    script = ("import sys, time\nfrom deploy.local.endpoint import start_endpoint\n"
              f"ep = start_endpoint(log_dir={str(tmp_path)!r})\nprint(ep.pid, flush=True)\ntime.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert pid_alive(server_pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
    deadline = time.monotonic() + 15
    while pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(server_pid)
