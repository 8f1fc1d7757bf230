"""A server that closes the connection without answering, against both delivery paths (PutEvents, PutRecords).

When the server (or something on the way: a load balancer, a NAT, a proxy) closes a connection
after reading the request and before answering, botocore raises ConnectionClosedError, a
BotoCoreError that is neither a ConnectionError nor a timeout. The connectors' clients are built
with max_attempts=1 (botocore does not retry), so the connectors' own retry loops must take it as
a transient failure: retried with backoff until the deadline, then overflowed (EventBridge: a
DELIVERY_FAILED dead letter) or written to the fallback file (dead-letter writer). It used to
escape publish() / write(), which never raise for delivery problems, and fail the Flink task
through the sink's buffer (connectors/flink_buffer.py, request.result()).

The clients are real boto3 clients built by connectors.aws.make_client, talking to `ClosingServer`:
a loopback socket server that reads each request whole and closes the connection without a byte of
answer; once it stops closing, it forwards the requests to the embedded endpoint, so what is
delivered really reaches the bus or the stream. Errors no retry can fix (a request botocore refuses
to send, a client without credentials) are not retried but dead-lettered at once, with the reason.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
from botocore.exceptions import NoCredentialsError, ParamValidationError

from connectors.aws import make_client
from connectors.deadletter.records import dead_letter_json
from connectors.deadletter.writers import JsonLinesDeadLetterWriter, KinesisDeadLetterWriter, read_jsonl
from connectors.eventbridge.publisher import EventBridgePublisher, dedup_key, entry_id, make_entry
from connectors.kinesis.poller import StreamReader

FAST_RETRIES = {"base_backoff_s": 0.01, "max_backoff_s": 0.02}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class ClosingServer:
    """127.0.0.1 server that reads every request whole and closes its connection without answering,
    for the first `close_first` requests (all of them when None); later requests are forwarded to
    `upstream` (the embedded endpoint) and its answer relayed."""

    def __init__(self, upstream: str | None = None, close_first: int | None = None) -> None:
        self.upstream, self.close_first = upstream, close_first
        self.closed = 0  # requests read and left unanswered
        self.forwarded = 0
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> "ClosingServer":
        return self

    def __exit__(self, *exc) -> None:
        self._socket.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return  # closed by __exit__
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                close = self.close_first is None or self.closed < self.close_first
                if close:
                    self.closed += 1
                else:
                    self.forwarded += 1
            if close:
                conn.shutdown(socket.SHUT_RDWR)  # the request was read; not a byte of answer
                return
            conn.sendall(self._forward(*request))

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        upstream = urlparse(self.upstream)
        client = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        try:
            client.request(method, path, body=body, headers=dict(headers))
            response = client.getresponse()
            payload = response.read()
        finally:
            client.close()
        lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        lines += [f"{k}: {v}" for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        lines += [f"Content-Length: {len(payload)}", "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _read_request(conn: socket.socket):
    """(method, path, headers, body) of the next request on `conn`, or None at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
    length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    method, path, _ = request_line.split(" ", 2)
    return method, path, headers, body


def _client(service: str, url: str):
    """The client as the sinks build it: botocore makes one attempt, the connector's loop retries."""
    return make_client(service, endpoint_url=url, region="us-east-1", max_attempts=1, connect_timeout_s=1,
                       read_timeout_s=5)


def _entries(bus_name: str, n: int, tag: str):
    return [make_entry(bus_name, "adops.analytics", "Composite Anomaly Detected",
                       {"incident_id": f"inc-{tag}-{i}", "editor_id": f"e-{i:03d}"}) for i in range(n)]


def _received(aws_client, queue_url: str, expected: int, timeout: float = 15.0) -> list[dict]:
    sqs, got, deadline = aws_client("sqs"), [], time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expected:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return got


def _stored(aws_client, stream: str) -> list[str]:
    reader = StreamReader(aws_client("kinesis"), stream)
    reader.discover()
    return [r.payload for r in reader.read_available()]


class _Raising:
    """A client whose every call raises `error` before anything is sent (as botocore does for a request
    it refuses to build or sign)."""

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def _raise(self, **_):
        self.calls += 1
        raise self.error

    put_events = put_records = _raise


# -- EventBridge


def test_publisher_retries_a_closed_connection_and_delivers_when_the_server_answers(aws_endpoint, aws_client,
                                                                                    bus_with_queue):
    bus_name, queue_url = bus_with_queue(["adops.analytics"])
    entries = _entries(bus_name, 3, "closed-then-up")
    with ClosingServer(upstream=aws_endpoint.url, close_first=3) as server:
        publisher = EventBridgePublisher(bus_name, _client("events", server.url), deadline_s=10, **FAST_RETRIES)
        result = publisher.publish(entries)  # used to raise ConnectionClosedError at the first close
    assert [entry_id(e) for e in result.delivered] == [entry_id(e) for e in entries] and not result.overflowed
    assert server.closed == 3 and server.forwarded == 1
    assert publisher.counters.requests == 4 and publisher.counters.throttled_requests == 3
    assert publisher.counters.retried == 9
    # What really reached the bus: each entry once.
    assert sorted(dedup_key(e) for e in _received(aws_client, queue_url, 3)) == sorted(
        ("Composite Anomaly Detected", entry_id(e)) for e in entries)


def test_publisher_overflows_with_the_reason_when_the_server_keeps_closing_until_the_deadline():
    overflowed = []
    entries = _entries("bus", 2, "closed-for-good")
    with ClosingServer() as server:
        publisher = EventBridgePublisher("bus", _client("events", server.url), max_attempts=100, deadline_s=0.3,
                                         on_overflow=lambda e, r: overflowed.append((e, r)), **FAST_RETRIES)
        started = time.monotonic()
        result = publisher.publish(entries)
        elapsed = time.monotonic() - started
    assert result.delivered == [] and [entry_id(e) for e, _ in overflowed] == [entry_id(e) for e in entries]
    assert all(r.startswith("DELIVERY_FAILED after ") and "ConnectionClosedError" in r and "deadline 0.3s" in r
               for _, r in overflowed)
    assert publisher.counters.requests == server.closed > 2 and elapsed < 5


def test_eventbridge_sink_dead_letters_instead_of_failing_the_task_when_the_server_keeps_closing():
    from flink_fakes import RuntimeContext

    from connectors.eventbridge.flink_sink import EVENTBRIDGE_DEAD_LETTER_TAG, EventBridgeBatchSink, eventbridge_row
    from connectors.flink_buffer import END_OF_INPUT_MS

    with ClosingServer() as server:
        # Concurrent flushes (the job's default): the request runs on a worker thread and its outcome is
        # read by request.result() on the operator's thread, where an exception fails the task.
        sink = EventBridgeBatchSink("bus", server.url, "us-east-1", 200, 15, 0.01, 0.02, 0.3, None, max_in_flight=4)
        sink.open(RuntimeContext())
        ctx = _OneKeyCtx()
        row = eventbridge_row("adops.analytics", "Composite Anomaly Detected", {"incident_id": "inc-sink-closed"})
        list(sink.process_element(row, ctx))
        ctx.now += 1000
        outputs = list(sink.on_timer(ctx.timers[0], ctx))  # the flush timer: the request starts
        outputs += list(sink.on_timer(END_OF_INPUT_MS, ctx))  # waits for the request (used to raise here)
        sink.close()
    dead = [json.loads(line) for tag, line in outputs if tag is EVENTBRIDGE_DEAD_LETTER_TAG]
    assert len(dead) == 1 and dead[0]["reason_code"] == "DELIVERY_FAILED"
    assert "ConnectionClosedError" in dead[0]["reason"]
    assert json.loads(json.loads(dead[0]["raw"])["Detail"]) == {"incident_id": "inc-sink-closed"}
    assert server.closed > 1


class _OneKeyCtx:
    """The operator's context for one key: processing time in `now`, timers registered in `timers`."""

    def __init__(self) -> None:
        self.now, self.timers = 1_000_000, []

    def timer_service(self):
        return self

    def get_current_key(self):
        return 0

    def current_processing_time(self):
        return self.now

    def register_processing_time_timer(self, t):
        self.timers.append(t)

    def delete_processing_time_timer(self, t):
        pass

    def register_event_time_timer(self, t):
        pass


@pytest.mark.parametrize("error", [ParamValidationError(report="Invalid type for parameter Entries[0].Detail"),
                                   NoCredentialsError()], ids=lambda error: type(error).__name__)
def test_publisher_does_not_retry_a_configuration_error_and_overflows_with_the_reason(error):
    client, overflowed, slept = _Raising(error), [], []
    publisher = EventBridgePublisher("bus", client, on_overflow=lambda e, r: overflowed.append(r),
                                     sleep=slept.append)
    result = publisher.publish(_entries("bus", 2, "config"))
    assert client.calls == 1 and slept == [] and not result.delivered
    assert len(overflowed) == 2 and all(r.startswith(f"DELIVERY_FAILED after 1 attempts: {type(error).__name__}")
                                        for r in overflowed)


def test_publisher_does_not_send_a_request_botocore_refuses_and_overflows_it():
    # A real client: botocore's own parameter validation refuses the entry (no request is made).
    overflowed = []
    with ClosingServer() as server:
        publisher = EventBridgePublisher("bus", _client("events", server.url),
                                         on_overflow=lambda e, r: overflowed.append(r), **FAST_RETRIES)
        bad = dict(_entries("bus", 1, "refused")[0], Unknown="x")
        result = publisher.publish([bad])
    assert server.closed == 0 and publisher.counters.requests == 1 and result.overflowed
    assert "ParamValidationError" in overflowed[0]


# -- dead-letter writer (PutRecords)


def _lines(n: int, tag: str) -> list[str]:
    return [dead_letter_json("INVALID_JSON", f"{tag} {i}", "metrics", "{") for i in range(n)]


def test_dead_letter_writer_retries_a_closed_connection_and_writes_when_the_server_answers(aws_endpoint,
                                                                                          aws_client,
                                                                                          unique_name):
    stream = unique_name("adops-dead-letters-closed")
    aws_client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    lines = _lines(3, "closed")
    with ClosingServer(upstream=aws_endpoint.url, close_first=2) as server:
        writer = KinesisDeadLetterWriter(_client("kinesis", server.url), stream, deadline_s=10, **FAST_RETRIES)
        assert writer.write(lines) == 3  # used to raise ConnectionClosedError at the first close
    assert server.closed == 2 and server.forwarded == 1
    assert writer.counters.requests == 3 and writer.counters.retried == 6
    assert writer.counters.fell_back == 0 and writer.counters.dropped == 0
    assert _stored(aws_client, stream) == lines


def test_dead_letter_writer_falls_back_when_the_server_keeps_closing_until_the_deadline(tmp_path):
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    lines = _lines(4, "closed-for-good")
    with ClosingServer() as server:
        writer = KinesisDeadLetterWriter(_client("kinesis", server.url), "s", deadline_s=0.3, fallback=fallback,
                                         **FAST_RETRIES)
        assert writer.write(lines) == 0
    fallback.close()
    assert [r["reason"] for r in read_jsonl(str(tmp_path / "fallback.jsonl"))] == [f"closed-for-good {i}"
                                                                                   for i in range(4)]
    assert writer.counters.fell_back == 4 and writer.counters.dropped == 0
    assert writer.counters.requests == server.closed > 2


@pytest.mark.parametrize("error", [ParamValidationError(report="Invalid type for parameter Records[0].Data"),
                                   NoCredentialsError()], ids=lambda error: type(error).__name__)
def test_dead_letter_writer_does_not_retry_a_configuration_error_and_falls_back(error, tmp_path):
    client, slept = _Raising(error), []
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    writer = KinesisDeadLetterWriter(client, "s", fallback=fallback, sleep=slept.append)
    assert writer.write(_lines(2, "config")) == 0
    fallback.close()
    assert client.calls == 1 and slept == [] and writer.counters.fell_back == 2
    assert len(read_jsonl(str(tmp_path / "fallback.jsonl"))) == 2


def test_dead_letter_writer_without_fallback_counts_and_logs_a_configuration_error(caplog):
    writer = KinesisDeadLetterWriter(_Raising(NoCredentialsError()), "s", sleep=lambda s: None)
    assert writer.write(_lines(1, "config")) == 0
    assert writer.counters.dropped == 1
    assert "NoCredentialsError" in caplog.text


# -- the shared classification (connectors.retry)


def test_every_botocore_error_is_transient_but_configuration_errors():
    from botocore import exceptions as e

    from connectors.retry import is_permanent_sdk_error

    transient = [e.ConnectionClosedError(endpoint_url="u"), e.ReadTimeoutError(endpoint_url="u"),
                 e.ConnectTimeoutError(endpoint_url="u"), e.EndpointConnectionError(endpoint_url="u"),
                 e.ProxyConnectionError(proxy_url="p"), e.HTTPClientError(error="reset"),
                 e.ResponseStreamingError(error="x"), e.IncompleteReadError(actual_bytes=1, expected_bytes=2),
                 e.CredentialRetrievalError(provider="container-role", error_msg="timed out"),
                 e.BotoCoreError()]
    permanent = [e.ParamValidationError(report="r"), e.NoCredentialsError(),
                 e.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
                 e.NoRegionError(), e.UnknownServiceError(service_name="x", known_service_names="y"),
                 e.UnknownEndpointError(service_name="x", region_name="y"), e.ProfileNotFound(profile="p")]
    assert [is_permanent_sdk_error(x) for x in transient] == [False] * len(transient)
    assert [is_permanent_sdk_error(x) for x in permanent] == [True] * len(permanent)
    assert not is_permanent_sdk_error(ValueError("not botocore's"))
