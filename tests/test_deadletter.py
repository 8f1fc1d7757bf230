"""Dead-letter records and writers: the record shape, truncation, and batched PutRecords to the embedded endpoint."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import EndpointConnectionError

from connectors.aws import make_client
from connectors.deadletter.records import RAW_LIMIT_BYTES, build_dead_letter, dead_letter_json, truncate_utf8
from connectors.batching import PUT_RECORDS_MAX_RECORDS
from connectors.deadletter.writers import (
    JsonLinesDeadLetterWriter,
    KinesisDeadLetterWriter,
    put_records_batches,
    read_jsonl,
)
from connectors.kinesis.poller import StreamReader
from connectors.schemas import validator
from flink_jobs.reliability.fault_proxy import KINESIS_PUT_RECORDS, FaultProxy


def test_record_has_the_contract_shape():
    record = build_dead_letter("UNKNOWN_METRIC", "metric 'ctr' is not known", "metrics", '{"metric":"ctr"}',
                               detected_at="2026-11-01T10:00:00.000Z")
    assert record == {"reason_code": "UNKNOWN_METRIC", "reason": "metric 'ctr' is not known", "source": "metrics",
                      "raw": '{"metric":"ctr"}', "detected_at": "2026-11-01T10:00:00.000Z"}
    line = dead_letter_json("INVALID_JSON", "bad", "events", b'{"a":\n')
    assert "\n" not in line and json.loads(line)["raw"] == '{"a":\n'
    with pytest.raises(ValueError):
        build_dead_letter("invalid json", "x", "metrics", "")
    with pytest.raises(ValueError):
        build_dead_letter("INVALID_JSON", "x", "kinesis", "")


def test_raw_is_truncated_to_64_kib_without_splitting_a_character():
    text = "a" + "€" * RAW_LIMIT_BYTES  # 3-byte characters: the cut falls inside one
    cut, size, truncated = truncate_utf8(text)
    assert truncated and size == 1 + 3 * RAW_LIMIT_BYTES
    assert len(cut.encode("utf-8")) <= RAW_LIMIT_BYTES and len(cut.encode("utf-8")) > RAW_LIMIT_BYTES - 3
    assert text.startswith(cut)
    exact = "b" * RAW_LIMIT_BYTES
    assert truncate_utf8(exact) == (exact, RAW_LIMIT_BYTES, False)
    record = build_dead_letter("OVERSIZED_RECORD", "too big", "metrics", text)
    assert record["raw_truncated"] is True and record["raw_size_bytes"] == size
    assert not list(validator("dead_letter_record").iter_errors(record))


def test_an_eventbridge_entry_is_kept_whole_far_beyond_64_kib():
    # An EventBridge entry may be 256 KiB (more as JSON text: its Detail's quotes are escaped once more);
    # the sink's DELIVERY_FAILED dead letter keeps it whole so that it can be re-sent.
    from connectors.deadletter.records import EVENTBRIDGE_RAW_LIMIT_BYTES

    entry = json.dumps({"Source": "adops.analytics", "Detail": json.dumps({"k": "\"q\"" * 40_000})})
    assert 300 * 1024 < len(entry.encode("utf-8")) <= EVENTBRIDGE_RAW_LIMIT_BYTES
    record = json.loads(dead_letter_json("DELIVERY_FAILED", "retries exhausted", "eventbridge", entry,
                                         raw_limit_bytes=EVENTBRIDGE_RAW_LIMIT_BYTES))
    assert record["raw"] == entry and "raw_truncated" not in record
    assert not list(validator("dead_letter_record").iter_errors(record))   # the schema allows it
    # Everything else keeps the 64 KiB cut.
    assert json.loads(dead_letter_json("OVERSIZED_RECORD", "x", "metrics", entry))["raw_truncated"] is True


def test_a_dead_letter_line_always_fits_a_kinesis_record_and_says_when_raw_was_cut():
    from connectors.deadletter.records import EVENTBRIDGE_RAW_LIMIT_BYTES, MAX_LINE_BYTES
    from connectors.batching import KINESIS_RECORD_MAX_BYTES
    from connectors.deadletter.writers import partition_key_for

    # A backslash or a quote doubles when raw is written into the line: 520 KiB of them make a 1 MiB line.
    raw = '\\"' * (EVENTBRIDGE_RAW_LIMIT_BYTES // 2)  # within the raw limit: only the line is too long
    size = len(raw.encode("utf-8"))
    line = dead_letter_json("DELIVERY_FAILED", "retries exhausted", "eventbridge", raw,
                            raw_limit_bytes=EVENTBRIDGE_RAW_LIMIT_BYTES)
    assert len(line.encode("utf-8")) <= MAX_LINE_BYTES
    assert len(line.encode("utf-8")) + len(partition_key_for(line)) <= KINESIS_RECORD_MAX_BYTES
    record = json.loads(line)
    assert raw.startswith(record["raw"]) and 400 * 1024 < len(record["raw"]) < size
    assert record["raw_truncated"] is True and record["raw_size_bytes"] == size
    assert len(line.encode("utf-8")) > MAX_LINE_BYTES - 1024  # cut to the limit, not far below it
    # Control characters grow six-fold (\u0001); a 64 KiB raw still fits, untouched.
    small = "\x01" * RAW_LIMIT_BYTES
    assert json.loads(dead_letter_json("INVALID_JSON", "x", "metrics", small))["raw"] == small
    # A reason too long for any record is cut before raw is.
    line = dead_letter_json("DELIVERY_FAILED", "e" * (2 * MAX_LINE_BYTES), "eventbridge", "{}")
    huge = json.loads(line)
    assert len(line.encode("utf-8")) <= MAX_LINE_BYTES and huge["raw"] == "{}" and "raw_truncated" not in huge
    assert huge["reason"].startswith("eee") and len(huge["reason"]) < 8 * 1024


def test_put_records_batches_respect_500_records_and_5_mib():
    small = [{"Data": b"x" * 10, "PartitionKey": "k"} for _ in range(1201)]
    assert [len(b) for b in put_records_batches(small)] == [500, 500, 201]
    big = [{"Data": b"x" * (1024 * 1024 - 1), "PartitionKey": "k"} for _ in range(7)]
    assert [len(b) for b in put_records_batches(big)] == [5, 2]


def test_kinesis_writer_writes_every_line_in_batches_and_retries_failed_records(aws_endpoint, aws_client,
                                                                              unique_name):
    stream = unique_name("adops-dead-letters-test")
    aws_client("kinesis").create_stream(StreamName=stream, ShardCount=2)
    with FaultProxy(aws_endpoint.url, seed=3) as proxy:
        # The writer's client goes through the fault proxy to the real endpoint; the requests are only observed.
        client = make_client("kinesis", endpoint_url=proxy.url, region="us-east-1")
        requests = []
        client.meta.events.register("before-send.kinesis.PutRecords",
                                    lambda request, **_: requests.append(len(json.loads(request.body)["Records"])))
        writer = KinesisDeadLetterWriter(client, stream, sleep=lambda s: None)
        lines = [dead_letter_json("INVALID_JSON", f"bad {i}", "metrics", f'{{"n":{i}') for i in range(700)]
        # The first PutRecords: 2 of its 500 records are withheld from the endpoint and answered failed.
        with proxy.fault(KINESIS_PUT_RECORDS, "partial_failure", failed_fraction=0.004, max_injections=1):
            assert writer.write(lines) == 700
        counters = proxy.counters()
    # 500 (2 failed) -> the 2 re-sent -> 200.
    assert requests == [PUT_RECORDS_MAX_RECORDS, 2, 200]
    assert counters["failed_entries"] == {KINESIS_PUT_RECORDS: 2}
    assert counters["delivered_entries"] == {KINESIS_PUT_RECORDS: 700}
    assert writer.counters.retried == 2 and writer.counters.dropped == 0 and writer.counters.written == 700
    # What really is on the stream: every line exactly once.
    assert sorted(_stored(aws_client, stream)) == sorted(lines)


def test_kinesis_writer_drops_and_counts_after_bounded_attempts_without_raising(refused_url):
    client = make_client("kinesis", endpoint_url=refused_url, region="us-east-1",
                         connect_timeout_s=0.5)
    writer = KinesisDeadLetterWriter(client, "nowhere", max_attempts=3, sleep=lambda s: None)
    assert writer.write([dead_letter_json("INVALID_JSON", "x", "metrics", "{")]) == 0
    assert writer.counters.dropped == 1 and writer.counters.requests == 3


class _FakeClock:
    """Time that only moves when the writer sleeps (or a request takes time)."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def _down_until(client, clock: _FakeClock, up_at: float) -> None:
    """The real client on the embedded endpoint, whose connections are refused until ``clock`` reaches
    ``up_at`` (injected at botocore's HTTP layer, ``before-send``); each refused call costs 0.05 s
    (a connect that fails fast, as on loopback)."""

    def refuse_while_down(request, **_):
        clock.now += 0.05
        if clock.now < up_at:
            raise EndpointConnectionError(endpoint_url=request.url)
        return None                     # up: the request goes to the endpoint

    client.meta.events.register("before-send.kinesis.PutRecords", refuse_while_down)


def _stored(aws_client, stream: str) -> list[str]:
    reader = StreamReader(aws_client("kinesis"), stream)
    reader.discover()
    return [r.payload for r in reader.read_available()]


def _lines(n, tag="x"):
    return [dead_letter_json("INVALID_JSON", f"{tag} {i}", "metrics", "{") for i in range(n)]


def test_kinesis_writer_default_retries_ride_out_a_60_second_outage(aws_client, unique_name):
    # Issue #6: the writer used to give up after 8 attempts (6-11 s of waiting) and drop.
    clock = _FakeClock()
    client = aws_client("kinesis")
    stream = unique_name("adops-dead-letters-outage")
    client.create_stream(StreamName=stream, ShardCount=1)
    _down_until(client, clock, up_at=60.0)
    writer = KinesisDeadLetterWriter(client, stream, sleep=clock.sleep, clock=clock)
    lines = _lines(3)
    assert writer.write(lines) == 3
    assert clock.now >= 60.0 and _stored(aws_client, stream) == lines
    assert writer.counters.dropped == 0 and writer.counters.fell_back == 0
    # Exponential backoff with jitter, capped: waits grow, then stay within [cap/2, cap].
    assert clock.sleeps[0] <= 0.1 and max(clock.sleeps) <= 8.0
    assert all(4.0 <= d <= 8.0 for d in clock.sleeps[8:])
    assert len(set(clock.sleeps)) == len(clock.sleeps)  # jittered, not a fixed schedule


def test_kinesis_writer_falls_back_to_the_local_file_when_the_retry_deadline_passes(aws_client, unique_name,
                                                                                    tmp_path):
    clock = _FakeClock()
    client = aws_client("kinesis")
    stream = unique_name("adops-dead-letters-down")
    client.create_stream(StreamName=stream, ShardCount=1)
    _down_until(client, clock, up_at=float("inf"))
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    writer = KinesisDeadLetterWriter(client, stream, deadline_s=20, fallback=fallback,
                                     sleep=clock.sleep, clock=clock)
    lines = _lines(4)
    assert writer.write(lines) == 0
    assert _stored(aws_client, stream) == []
    fallback.close()
    assert [r["reason"] for r in read_jsonl(str(tmp_path / "fallback.jsonl"))] == [f"x {i}" for i in range(4)]
    assert writer.counters.fell_back == 4 and writer.counters.dropped == 0
    assert 10 <= clock.now <= 20 + 0.05  # bounded by the deadline (plus the last failed call)


def test_kinesis_writer_falls_back_at_once_when_the_stream_does_not_exist(aws_client, unique_name, tmp_path):
    client = aws_client("kinesis")
    fallback = JsonLinesDeadLetterWriter(str(tmp_path / "fallback.jsonl"))
    slept = []
    writer = KinesisDeadLetterWriter(client, unique_name("no-such-stream"), fallback=fallback, sleep=slept.append)
    assert writer.write(_lines(2)) == 0
    assert writer.counters.requests == 1 and slept == [] and writer.counters.fell_back == 2
    assert len(read_jsonl(str(tmp_path / "fallback.jsonl"))) == 2


def test_jsonl_writer_appends_one_object_per_line(tmp_path):
    path = str(tmp_path / "dl" / "dead-letters.jsonl")
    writer = JsonLinesDeadLetterWriter(path)
    writer.write([dead_letter_json("LATE_RECORD", "behind the watermark", "metrics", '{"n":1}')])
    writer.write([dead_letter_json("DELIVERY_FAILED", "retries exhausted", "eventbridge", '{"x":\n2}')])
    writer.close()
    records = read_jsonl(path)
    assert [r["reason_code"] for r in records] == ["LATE_RECORD", "DELIVERY_FAILED"]
    assert records[1]["raw"] == '{"x":\n2}'


def test_a_jsonl_writer_that_cannot_write_counts_and_logs_the_lines_and_leaves_no_half_line(tmp_path):
    """A full disk raised out of the file sink and failed the job (a restart loop, since the batch is
    restored and written again). The file here can hold 64 bytes (RLIMIT_FSIZE, in a child process):
    a batch that does not fit is dropped whole and counted, and the next one that fits is written."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "dead.jsonl"
    child = textwrap.dedent(f"""
        import resource, signal
        from connectors.deadletter.writers import JsonLinesDeadLetterWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
        writer = JsonLinesDeadLetterWriter({str(path)!r})
        first = writer.write(['{{"n": 1}}'])
        too_big = writer.write(['{{"n": 2, "pad": "' + 'x' * 100 + '"}}'])
        after = writer.write(['{{"n": 3}}'])
        print(first, too_big, after, writer.counters.written, writer.counters.dropped)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "1", "2", "1"]
    assert "1 dead letters not written to" in done.stderr and '"n": 2' in done.stderr
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 1}, {"n": 3}]


def test_a_lone_surrogate_in_a_letter_is_written_as_its_escape_not_dropped_with_its_batch(tmp_path):
    """A line holding a lone surrogate (a payload's "\\ud800" decoded) cannot be encoded as UTF-8:
    the file writer, which now drops a batch its file cannot take, dropped the whole batch for it."""
    writer = JsonLinesDeadLetterWriter(str(tmp_path / "d.jsonl"))
    lone = json.dumps({"raw": "\ud800 x"}, ensure_ascii=False)
    assert writer.write([lone, '{"n": 2}']) == 2 and writer.counters.dropped == 0
    writer.close()
    assert [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()] == [
        {"raw": "\ud800 x"}, {"n": 2}]


def test_a_lone_surrogate_in_a_letter_reaches_the_kinesis_stream_as_its_escape(aws_client, unique_name):
    """The Kinesis writer and its Flink sink encoded lines plainly: a lone surrogate raised
    UnicodeEncodeError (the sink's item_size first, in the task: the job failed). Written now as
    the escape the file writer writes, which reads back as the same JSON."""
    from connectors.deadletter.flink_sinks import KinesisDeadLetterSink

    stream = unique_name("adops-dead-letters-test")
    aws_client("kinesis").create_stream(StreamName=stream, ShardCount=1)
    lone = json.dumps({"raw": "\ud800 x"}, ensure_ascii=False)
    sink = KinesisDeadLetterSink.__new__(KinesisDeadLetterSink)    # item_size reads nothing of the sink
    assert sink.item_size(lone) > len(lone)
    writer = KinesisDeadLetterWriter(aws_client("kinesis"), stream, sleep=lambda s: None)
    assert writer.write([lone, '{"n": 2}']) == 2 and writer.counters.dropped == 0
    stored = [json.loads(line) for line in _stored(aws_client, stream)]
    assert {"raw": "\ud800 x"} in stored and {"n": 2} in stored
