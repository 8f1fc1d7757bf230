"""A fault-injecting HTTP proxy on loopback in front of the local AWS endpoint.

Clients (boto3 in the job, the connectors, the tests) are pointed at
``proxy.url`` instead of the endpoint. Every request is forwarded unchanged
unless a fault rule matches its AWS target (the ``X-Amz-Target`` header, e.g.
``AWSEvents.PutEvents`` or ``Kinesis_20131202.GetRecords``). Faults use the
error shapes AWS really returns, so the code under test takes the same branch
it would take in production:

- ``throttle``: 400 ``ThrottlingException`` (EventBridge, most control planes);
- ``throughput_exceeded``: 400 ``ProvisionedThroughputExceededException`` (Kinesis data plane);
- ``expired_iterator``: 400 ``ExpiredIteratorException`` (Kinesis GetRecords);
- ``partial_failure``: PutEvents / PutRecords answered 200 with some entries
  marked failed (``FailedEntryCount`` / ``FailedRecordCount`` > 0). The failed
  entries are removed from the forwarded request, so the failure is real: those
  entries never reach the endpoint and only a retry can deliver them;
- ``error``: any other status / error type (e.g. 500 InternalFailure);
- outage: ``outage(seconds, style="refuse")`` closes the listening socket and
  every open connection (clients see connection refused / reset), and
  ``style="503"`` answers every request 503 ServiceUnavailable.

The proxy only ever binds 127.0.0.1 and only forwards to a loopback upstream.
"""
from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Headers that describe one hop, not the message; never forwarded.
HOP_BY_HOP_HEADERS = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailers", "transfer-encoding", "upgrade", "content-length",
}

PUT_EVENTS = "AWSEvents.PutEvents"
KINESIS_GET_RECORDS = "Kinesis_20131202.GetRecords"
KINESIS_PUT_RECORDS = "Kinesis_20131202.PutRecords"
KINESIS_PUT_RECORD = "Kinesis_20131202.PutRecord"
KINESIS_GET_SHARD_ITERATOR = "Kinesis_20131202.GetShardIterator"
KINESIS_LIST_SHARDS = "Kinesis_20131202.ListShards"

FAULT_KINDS = ("throttle", "throughput_exceeded", "expired_iterator", "partial_failure", "error")

# The error bodies AWS JSON-protocol services return (botocore reads ``__type``).
_ERROR_SHAPES = {
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "throughput_exceeded": (
        400,
        "ProvisionedThroughputExceededException",
        "Rate exceeded for shard shardId-000000000000 in stream under account 123456789012.",
    ),
    "expired_iterator": (
        400,
        "ExpiredIteratorException",
        "Iterator expired. The iterator was created at time Mon Nov 23 10:00:00 UTC 2026 "
        "while right now it is Mon Nov 23 10:05:01 UTC 2026 which is further in the future "
        "than the tolerated delay of 300000 milliseconds.",
    ),
}

# How each batch API names its entries and its failure counter.
_BATCH_SHAPES = {
    PUT_EVENTS: ("Entries", "Entries", "FailedEntryCount"),
    KINESIS_PUT_RECORDS: ("Records", "Records", "FailedRecordCount"),
}
_PARTIAL_FAILURE_CODES = {
    PUT_EVENTS: [("ThrottlingException", "Rate exceeded"), ("InternalFailure", "Internal service error")],
    KINESIS_PUT_RECORDS: [
        ("ProvisionedThroughputExceededException", "Rate exceeded for shard in stream under account 123456789012."),
        ("InternalFailure", "Internal service failure."),
    ],
}


@dataclass
class FaultRule:
    """One switchable fault: which requests it hits and how often."""

    target: str  # exact X-Amz-Target, "Prefix.*", or "*"
    kind: str
    rate: float = 1.0  # probability per matching request
    max_injections: int | None = None  # stop after this many injections
    deadline: float | None = None  # time.monotonic() after which the rule is inert
    failed_fraction: float = 0.5  # partial_failure: share of entries to fail (at least one)
    entry_error: str | None = None  # partial_failure: this code for every failed entry (default: retryable ones)
    status: int = 500  # kind == "error"
    error_type: str = "InternalFailure"
    message: str = "Internal service error"
    injected: int = 0

    def matches(self, target: str) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        if self.max_injections is not None and self.injected >= self.max_injections:
            return False
        if self.target == "*" or self.target == target:
            return True
        return self.target.endswith("*") and target.startswith(self.target[:-1])


@dataclass
class ProxyCounters:
    forwarded: Counter = field(default_factory=Counter)  # by target
    injected: Counter = field(default_factory=Counter)  # by "target:kind"
    failed_entries: Counter = field(default_factory=Counter)  # partial failures, entries failed, by target
    delivered_entries: Counter = field(default_factory=Counter)  # batch APIs: entries the endpoint accepted
    refused_connections: int = 0  # connections dropped while an outage was on
    outage_responses: int = 0  # 503s answered while an outage was on

    def as_dict(self) -> dict:
        return {
            "forwarded": dict(self.forwarded),
            "injected": dict(self.injected),
            "failed_entries": dict(self.failed_entries),
            "delivered_entries": dict(self.delivered_entries),
            "refused_connections": self.refused_connections,
            "outage_responses": self.outage_responses,
        }


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
    server: "_ProxyHTTPServer"

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        pass  # the proxy is hit thousands of times per run; its counters are the log

    def setup(self):
        super().setup()
        self.server.proxy._track(self.connection)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self):
        with contextlib.suppress(Exception):
            super().finish()
        self.server.proxy._untrack(self.connection)
        if self._upstream is not None:
            self._upstream.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        proxy = self.server.proxy
        body = self._read_body()
        target = self.headers.get("X-Amz-Target") or f"{self.command} {urlparse(self.path).path}"
        if proxy._outage_style() == "503":
            proxy._count_outage_response()
            self._send_error(503, "ServiceUnavailableException", "Service Unavailable")
            return
        rule = proxy._pick_rule(target)
        if rule is None or rule.kind == "partial_failure" and target not in _BATCH_SHAPES:
            status, headers, payload = self._forward(body)
            proxy._count_forwarded(target)
            if status == 200 and target in _BATCH_SHAPES:
                proxy._count_delivered(target, payload)
            self._send(status, headers, payload)
            return
        if rule.kind == "partial_failure":
            self._partial_failure(target, body, rule)
            return
        if rule.kind == "error":
            status, error_type, message = rule.status, rule.error_type, rule.message
        else:
            status, error_type, message = _ERROR_SHAPES[rule.kind]
        self._send_error(status, error_type, message)

    do_POST = do_GET = do_PUT = do_DELETE = do_HEAD = _handle

    def _partial_failure(self, target: str, body: bytes, rule: FaultRule):
        proxy = self.server.proxy
        request_key, response_key, failed_key = _BATCH_SHAPES[target]
        request = json.loads(body)
        entries = request.get(request_key) or []
        failed = proxy._choose_failed(len(entries), rule.failed_fraction)
        kept = [e for i, e in enumerate(entries) if i not in failed]
        if kept:
            request[request_key] = kept
            status, headers, payload = self._forward(json.dumps(request).encode())
            proxy._count_forwarded(target)
            if status != 200:  # the endpoint itself refused the rest; pass that through untouched
                self._send(status, headers, payload)
                return
            response = json.loads(payload)
        else:
            headers = [("Content-Type", "application/x-amz-json-1.1")]
            response = {failed_key: 0, response_key: []}
        delivered = iter(response.get(response_key) or [])
        codes = ([(rule.entry_error, f"{rule.entry_error} (injected)")] if rule.entry_error
                 else _PARTIAL_FAILURE_CODES[target])
        merged = []
        for i in range(len(entries)):
            if i in failed:
                code, message = codes[i % len(codes)]
                merged.append({"ErrorCode": code, "ErrorMessage": message})
            else:
                merged.append(next(delivered))
        proxy._count_delivered(target, json.dumps(response).encode())
        response[response_key] = merged
        response[failed_key] = int(response.get(failed_key) or 0) + len(failed)
        proxy._count_failed_entries(target, len(failed))
        self._send(200, headers, json.dumps(response).encode())

    def _forward(self, body: bytes):
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP_HEADERS}
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                payload = response.read()
                return response.status, response.getheaders(), payload
            except (ConnectionError, http.client.HTTPException, OSError):
                # A kept-alive upstream connection may have been closed by the server; retry once fresh.
                self._upstream.close()
                self._upstream = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _send(self, status: int, headers, payload: bytes):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP_HEADERS and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_error(self, status: int, error_type: str, message: str):
        payload = json.dumps({"__type": error_type, "message": message}).encode()
        self._send(
            status,
            [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", error_type),
             ("x-amzn-RequestId", "fault-proxy")],
            payload,
        )


class _ProxyHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # rebinding the same port right after a "refuse" outage

    def __init__(self, address, proxy: "FaultProxy"):
        self.proxy = proxy
        super().__init__(address, _Handler)


class FaultProxy:
    """Loopback HTTP proxy with switchable, counted AWS faults.

    Usage (needs a running endpoint, so not run as a doctest)::

        with FaultProxy(endpoint_url) as proxy:
            with proxy.fault("AWSEvents.PutEvents", "throttle", rate=0.5):
                ...  # clients configured with endpoint_url=proxy.url
            proxy.counters()
    """

    def __init__(self, upstream_url: str, *, port: int = 0, seed: int = 0):
        parsed = urlparse(upstream_url)
        if parsed.hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"the fault proxy only forwards to loopback, not {parsed.hostname!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self._requested_port = port
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._counters = ProxyCounters()
        self._connections: set[socket.socket] = set()
        self._server: _ProxyHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._outage: tuple[str, float] | None = None  # (style, until monotonic)
        self._outage_timer: threading.Timer | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._bind(self._requested_port)
        return self

    def stop(self):
        with self._lock:
            timer, self._outage_timer = self._outage_timer, None
        if timer is not None:
            timer.cancel()
        self._unbind()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _bind(self, port: int):
        server = _ProxyHTTPServer(("127.0.0.1", port), self)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name=f"fault-proxy-{self.port}", daemon=True)
        self._server, self._serve_thread = server, thread
        thread.start()

    def _unbind(self):
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        return len(connections)

    def _track(self, conn):
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn):
        with self._lock:
            self._connections.discard(conn)

    # -- control API -----------------------------------------------------------
    def set_mode(
        self,
        target: str,
        kind: str,
        *,
        rate: float = 1.0,
        max_injections: int | None = None,
        duration_s: float | None = None,
        failed_fraction: float = 0.5,
        entry_error: str | None = None,
        status: int = 500,
        error_type: str = "InternalFailure",
        message: str = "Internal service error",
    ) -> FaultRule:
        """Add a fault rule; it stays on until cleared, exhausted or timed out."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if kind == "partial_failure" and target not in _BATCH_SHAPES:
            raise ValueError(f"partial_failure applies to batch APIs {sorted(_BATCH_SHAPES)}, not {target!r}")
        rule = FaultRule(
            target=target, kind=kind, rate=rate, max_injections=max_injections,
            deadline=None if duration_s is None else time.monotonic() + duration_s,
            failed_fraction=failed_fraction, entry_error=entry_error, status=status, error_type=error_type,
            message=message,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self, target: str | None = None):
        """Remove fault rules (all, or those for one target). Does not end an outage."""
        with self._lock:
            self._rules = [r for r in self._rules if target is not None and r.target != target]

    @contextlib.contextmanager
    def fault(self, target: str, kind: str, **options):
        rule = self.set_mode(target, kind, **options)
        try:
            yield rule
        finally:
            with self._lock:
                self._rules = [r for r in self._rules if r is not rule]

    def outage(self, seconds: float, *, style: str = "refuse"):
        """Take the endpoint away for ``seconds`` (returns at once; see ``wait_outage_over``).

        ``refuse``: nothing listens on the port and open connections are cut, so
        clients get connection refused / reset. ``503``: every request is answered
        503 ServiceUnavailable.
        """
        if style not in ("refuse", "503"):
            raise ValueError("style is 'refuse' or '503'")
        with self._lock:
            if self._outage is not None:
                raise RuntimeError("an outage is already in progress")
            self._outage = (style, time.monotonic() + seconds)
        if style == "refuse":
            dropped = self._unbind()
            with self._lock:
                self._counters.refused_connections += dropped
        timer = threading.Timer(seconds, self._end_outage)
        timer.daemon = True
        with self._lock:
            self._outage_timer = timer
        timer.start()

    def _end_outage(self):
        with self._lock:
            outage, self._outage, self._outage_timer = self._outage, None, None
        if outage and outage[0] == "refuse":
            self._bind(self.port)

    @property
    def outage_active(self) -> bool:
        with self._lock:
            return self._outage is not None

    def wait_outage_over(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.outage_active:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def counters(self) -> dict:
        with self._lock:
            return self._counters.as_dict()

    def reset_counters(self):
        with self._lock:
            self._counters = ProxyCounters()

    # -- used by the handler ---------------------------------------------------
    def _outage_style(self) -> str | None:
        with self._lock:
            return self._outage[0] if self._outage else None

    def _pick_rule(self, target: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(target) and (rule.rate >= 1.0 or self._rng.random() < rule.rate):
                    rule.injected += 1
                    self._counters.injected[f"{target}:{rule.kind}"] += 1
                    return rule
        return None

    def _choose_failed(self, n_entries: int, fraction: float) -> set[int]:
        if n_entries == 0:
            return set()
        with self._lock:
            count = min(n_entries, max(1, round(n_entries * fraction)))
            return set(self._rng.sample(range(n_entries), count))

    def _count_forwarded(self, target: str):
        with self._lock:
            self._counters.forwarded[target] += 1

    def _count_delivered(self, target: str, payload: bytes):
        _, response_key, _ = _BATCH_SHAPES[target]
        try:
            outcomes = json.loads(payload).get(response_key) or []
        except ValueError:
            return
        accepted = sum(1 for o in outcomes if not o.get("ErrorCode"))
        with self._lock:
            self._counters.delivered_entries[target] += accepted

    def _count_failed_entries(self, target: str, n: int):
        with self._lock:
            self._counters.failed_entries[target] += n

    def _count_outage_response(self):
        with self._lock:
            self._counters.outage_responses += 1
