"""The EventBridge sink's dead letters keep the PutEvents entry whole, so that it can be re-sent.

An entry may be up to 256 KiB (EventBridge's limit, as `entry_size` counts it); its DELIVERY_FAILED
dead letter's `raw` (the entry as JSON) used to be cut at 64 KiB like any dead letter's, which
left an undeliverable composite with large details as JSON that no longer parses. Every line still
fits one Kinesis record (1 MiB with its partition key), cut only when its final encoded size needs
it, with `raw_truncated` / `raw_size_bytes` saying so.

The sink is driven without Flink (its runtime context from tests/flink_fakes.py) against an
endpoint that refuses connections, so delivery really fails after the retries.
"""
from __future__ import annotations

import json

from flink_fakes import RuntimeContext

from connectors.batching import PUT_EVENTS_MAX_BYTES
from connectors.eventbridge.flink_sink import EVENTBRIDGE_DEAD_LETTER_TAG, EventBridgeBatchSink, eventbridge_row
from connectors.eventbridge.publisher import entry_size, make_entry
from connectors.flink_buffer import END_OF_INPUT_MS


class _OneKeyCtx:
    """The operator's context for one key, with a processing-time clock that does not move."""

    def timer_service(self):
        return self

    def get_current_key(self):
        return 0

    def current_processing_time(self):
        return 1_000_000

    def register_processing_time_timer(self, t):
        pass

    delete_processing_time_timer = register_event_time_timer = register_processing_time_timer


def _dead_letters(refused_url: str, rows) -> list[str]:
    """The sink's dead-letter lines for `rows`, none of which can be delivered (connections refused)."""
    sink = EventBridgeBatchSink("adops-production-events", refused_url, "us-east-1", 200, 15, 0.01, 0.02, 0.2, None,
                                max_in_flight=1)
    sink.open(RuntimeContext())
    ctx, outputs = _OneKeyCtx(), []
    for row in rows:
        outputs += list(sink.process_element(row, ctx))
    outputs += list(sink.on_timer(END_OF_INPUT_MS, ctx))  # flushes what is buffered, then gives up
    sink.close()
    return [line for tag, line in outputs if tag is EVENTBRIDGE_DEAD_LETTER_TAG]


def _entry(detail: dict) -> dict:
    return make_entry("adops-production-events", "adops.analytics", "Composite Anomaly Detected", detail,
                      event_id=detail["incident_id"])


def test_an_undeliverable_80_kb_entry_is_dead_lettered_whole(refused_url):
    detail = {"incident_id": "inc-big", "summary": "rpm down", "evidence": "e" * 80_000}
    [line] = _dead_letters(refused_url, [eventbridge_row("adops.analytics", "Composite Anomaly Detected", detail)])
    record = json.loads(line)
    assert record["reason_code"] == "DELIVERY_FAILED" and record["source"] == "eventbridge"
    assert "EndpointConnectionError" in record["reason"]
    assert json.loads(record["raw"]) == _entry(detail) and "raw_truncated" not in record
    assert json.loads(json.loads(record["raw"])["Detail"]) == detail


def test_an_entry_near_256_kib_whose_json_is_larger_is_still_dead_lettered_whole(refused_url):
    # Many short strings: the entry's JSON text escapes every quote of its Detail once more.
    detail = {"incident_id": "inc-quoted",
              "metrics": [{"m": "rpm", "v": "low", "i": str(i)} for i in range(7_700)]}
    entry = _entry(detail)
    assert 240 * 1024 < entry_size(entry) <= PUT_EVENTS_MAX_BYTES
    [line] = _dead_letters(refused_url, [eventbridge_row("adops.analytics", "Composite Anomaly Detected", detail)])
    record = json.loads(line)
    assert len(record["raw"].encode("utf-8")) > PUT_EVENTS_MAX_BYTES + 64 * 1024
    assert json.loads(record["raw"]) == entry and "raw_truncated" not in record


def test_a_dead_letter_line_fits_a_kinesis_record_even_when_escaping_doubles_it(refused_url):
    # Backslashes: 2 bytes in the Detail, 4 in the entry's JSON, 8 in the dead-letter line (> 1 MiB).
    from connectors.deadletter.records import MAX_LINE_BYTES

    room = PUT_EVENTS_MAX_BYTES - entry_size(_entry({"incident_id": "inc-slashes", "path": ""}))
    detail = {"incident_id": "inc-slashes", "path": "\\" * (room // 2)}  # as big as an entry can be
    entry = _entry(detail)
    assert PUT_EVENTS_MAX_BYTES - 2 < entry_size(entry) <= PUT_EVENTS_MAX_BYTES
    [line] = _dead_letters(refused_url, [eventbridge_row("adops.analytics", "Composite Anomaly Detected", detail)])
    record = json.loads(line)
    whole = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    assert len(line.encode("utf-8")) <= MAX_LINE_BYTES
    assert record["raw_truncated"] is True and record["raw_size_bytes"] == len(whole.encode("utf-8"))
    assert whole.startswith(record["raw"]) and len(record["raw"]) > 500_000


def test_a_row_that_cannot_become_an_entry_is_dead_lettered_whole(refused_url):
    not_json = "{" + "x" * 80_000  # the detail is not JSON: rejected before it is buffered
    [line] = _dead_letters(refused_url, [eventbridge_row("adops.analytics", "Composite Anomaly Detected", not_json)])
    record = json.loads(line)
    assert record["reason"].startswith("not sendable to EventBridge: JSONDecodeError")
    assert json.loads(record["raw"]) == {"source": "adops.analytics", "detail_type": "Composite Anomaly Detected",
                                         "detail": not_json}


def test_a_detail_without_its_id_is_dead_lettered_not_sent_without_one(refused_url):
    """Reported: a content hash stood in for a missing id, then was dropped, so the entry went out
    with no key downstream could deduplicate on."""
    detail = {"summary": "no incident_id, check_id or finding_id"}
    [line] = _dead_letters(refused_url, [eventbridge_row("adops.analytics", "Composite Anomaly Detected", detail)])
    record = json.loads(line)
    assert record["reason_code"] == "DELIVERY_FAILED"
    assert record["reason"].startswith("not sendable to EventBridge: ValueError: detail has none of")
    assert json.loads(json.loads(record["raw"])["detail"]) == detail
