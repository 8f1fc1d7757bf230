"""The process that hosts the embedded AWS endpoint.

Runs moto's ThreadedMotoServer (werkzeug) with this project's patches applied in
the same interpreter — the patches change moto's in-memory backends, so they
must live in the process that serves the requests. Started by
``deploy.local.endpoint.start_endpoint`` (tests) and ``python -m deploy.local up``.

    python -m deploy.local.server --host 127.0.0.1 --port 0 --ready-file PATH

Port 0 picks a free port; the bound port is written to the ready file (JSON) once
the server accepts requests, which is what the parent waits for.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

# Marker the parent checks (with the pid) before it ever signals a process, so
# `down` can never stop someone else's server that reused the pid.
SERVER_MARKER = "deploy.local.server"
# The GIL switch interval of the server process (see main()).
SWITCH_INTERVAL_S = 0.0002


def enable_state_machine_execution() -> None:
    # Same effect as POSTing {"stepfunctions": {"execute_state_machine": true}}
    # to /moto-api/config, done before the first request so no caller can race it.
    from moto.core.config import default_user_config

    default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--log-requests", action="store_true",
                        help="log every HTTP request (off by default: at Kinesis benchmark rates it costs CPU)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.log_requests:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from deploy.local.patches import UnsupportedMotoVersion, apply_all

    try:
        apply_all()
    except UnsupportedMotoVersion as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    enable_state_machine_execution()
    # One interpreter serves every request thread and the rule-target delivery thread (Step
    # Functions executions, SNS, SQS: CPU-bound Python). A request thread gives up the GIL at
    # every socket call and then waits up to a whole switch interval (5 ms by default) to get
    # it back from the busy thread: the convoy effect. Measured on this machine (2026-12-04,
    # core stack, 15 PutEvents of 10 composites each, quiet machine): median 73 / 183 ms
    # (LOW / CRITICAL composites) at 5 ms, 22 / 50 ms at 0.5 ms, 17 / 27 ms at 0.2 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Step Functions service integrations (DynamoDB, SNS, SQS tasks) call
    # http://localhost:$MOTO_PORT; point them back at this very server.
    os.environ["MOTO_PORT"] = str(port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    tmp = args.ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid(), "marker": SERVER_MARKER}))
    tmp.replace(args.ready_file)
    logging.getLogger("deploy.local.server").info("serving on http://%s:%s (pid %s)", host, port, os.getpid())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
