"""The embedded endpoint's Kinesis shard patches answer exactly like moto 5.2.5, in O(log n)."""
import random

from moto.kinesis.models import Shard

from deploy.local.patches.kinesis import get_records_fastpath


def _shard_with_records(count: int) -> Shard:
    shard = Shard(0, 0, 2**128 - 1)
    for n in range(count):
        shard.put_record(f"k{n % 7}", f"data-{n}", str(n))
    return shard


def _answers(shard: Shard, queries):
    return [
        (
            [record.sequence_number for record in records],
            last,
            millis,
        )
        for records, last, millis in (shard.get_records(str(after), limit) for after, limit in queries)
    ] + [(shard.get_min_sequence_number(), shard.get_max_sequence_number())]


def test_shard_reads_match_moto_for_every_position_and_limit():
    rng = random.Random(5)
    queries = [(rng.randint(0, 1300), rng.choice([None, 0, 1, 7, 300, 10_000])) for _ in range(300)]
    queries += [(0, None), (1200, 5), (1199, 1), (-1, 3)]
    plain_shard = _shard_with_records(1200)
    plain = _answers(plain_shard, queries)
    get_records_fastpath.apply()
    try:
        fast_shard = _shard_with_records(1200)
        for record_a, record_b in zip(plain_shard.records.values(), fast_shard.records.values()):
            record_b.created_at = record_a.created_at  # same clock, so MillisBehindLatest compares
        fast = _answers(fast_shard, queries)
        # Appends after the key cache was built are seen, in order.
        fast_shard.put_record("k", "late", "1")
        records, last, _ = fast_shard.get_records("1199", None)
        assert [r.sequence_number for r in records] == [1200, 1201] and last == 1201
    finally:
        get_records_fastpath.revert()
    assert fast == plain
    assert plain[-1] == (1, 1200)



def _read_while_putting(shard: Shard, count: int) -> tuple[list[int], list[BaseException]]:
    """A producer thread puts `count` records while a reader thread follows the shard with
    GetRecords from its last sequence number, as the server's request threads do. The
    interpreter switches threads as often as it can, so an unguarded interleaving shows."""
    import sys
    import threading

    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def produce():
        try:
            for n in range(count):
                shard.put_record(f"k{n % 7}", f"data-{n}", "1")
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            done.set()

    def read():
        last = 0
        while True:
            finished = done.is_set()
            try:
                records, _, _ = shard.get_records(str(last), 50)
            except BaseException as error:  # noqa: BLE001 - reported by the test
                errors.append(error)
                continue
            seen.extend(record.sequence_number for record in records)
            if records:
                last = records[-1].sequence_number
            elif finished:
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=produce), threading.Thread(target=read)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return seen, errors


def test_a_reader_following_a_shard_while_records_are_put_sees_every_record_once():
    get_records_fastpath.apply()
    try:
        seen, errors = _read_while_putting(Shard(0, 0, 2**128 - 1), 20_000)
    finally:
        get_records_fastpath.revert()
    # Unguarded (before the shard lock): dozens of "OrderedDict mutated during iteration".
    assert not errors, errors[:3]
    assert seen == list(range(1, 20_001))


def test_a_put_landing_while_the_key_cache_is_extended_waits_and_is_read_later():
    """The race CI hit, made deterministic: a put from another thread arrives right after
    GetRecords has read the shard's length. Unguarded, the key cache then took the newest
    keys as the ones after its end, and the read returned 13 and 14 without 11 and 12."""
    import threading
    from collections import OrderedDict

    get_records_fastpath.apply()
    try:
        shard = Shard(0, 0, 2**128 - 1)
        for n in range(10):
            shard.put_record("k", f"data-{n}", "1")
        shard.get_records("0", None)  # builds the key cache: 1..10
        producer: list[threading.Thread] = []

        class PutDuringLengthRead(OrderedDict):
            armed = False

            def __len__(self):
                length = super().__len__()
                if self.armed:
                    self.armed = False
                    thread = threading.Thread(target=lambda: [shard.put_record("k", "racing", "1") for _ in range(2)])
                    thread.start()
                    thread.join(timeout=0.5)  # unguarded, it completes here
                    producer.append(thread)
                return length

        shard.records = PutDuringLengthRead(shard.records)
        shard.put_record("k", "data-10", "1")
        shard.put_record("k", "data-11", "1")
        shard.records.armed = True
        first, _, _ = shard.get_records("10", None)
        producer[0].join()
        second, _, _ = shard.get_records(str(first[-1].sequence_number), None)
    finally:
        get_records_fastpath.revert()
    assert [r.sequence_number for r in first] == [11, 12]
    assert [r.sequence_number for r in second] == [13, 14]


def _kinesis_app_client():
    from moto.server import create_backend_app
    from werkzeug.test import Client

    return Client(create_backend_app("kinesis"))


def _call(client, action: str, body: dict):
    import json

    response = client.post("/", data=json.dumps(body), headers={
        "X-Amz-Target": f"Kinesis_20131202.{action}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, "
                         "SignedHeaders=host, Signature=x"})
    return response.status_code, response.headers.get("Content-Type"), json.loads(response.data or b"{}")


def test_put_records_answers_match_moto_including_errors():
    import base64

    from deploy.local.patches.kinesis import put_records_fastpath

    records = [{"Data": base64.b64encode(f"record-{n}".encode()).decode(), "PartitionKey": f"e-{n % 37:03d}"}
               for n in range(500)]
    too_big = [{"Data": base64.b64encode(b"x" * (1024 * 1024)).decode(), "PartitionKey": "k"}]
    calls = [{"Records": records}, {"Records": records[:3]}, {"Records": records + records[:1]},
             {"Records": too_big}]

    def answers(stream: str):
        client = _kinesis_app_client()
        assert _call(client, "CreateStream", {"StreamName": stream, "ShardCount": 3})[0] == 200
        return [_call(client, "PutRecords", {"StreamName": stream, **call}) for call in calls]

    plain = answers("plain")
    put_records_fastpath.apply()
    try:
        fast = answers("fast")
    finally:
        put_records_fastpath.revert()
    assert [status for status, _, _ in plain] == [200, 200, 400, 400]
    assert fast == plain
    assert len(fast[0][2]["Records"]) == 500 and fast[0][2]["FailedRecordCount"] == 0
