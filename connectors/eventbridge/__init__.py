"""EventBridge sink: PutEvents batched within limits, retried with backoff, overflow to dead letters.

Public API (stable):

    from connectors.eventbridge.publisher import (
        EventBridgePublisher,  # (bus_name, client, max_attempts=15, base_backoff_s=0.25, max_backoff_s=8.0,
                               #  on_overflow=None, *, deadline_s=90.0) .publish(entries) -> DeliveryResult
        make_entry,            # (bus_name, source, detail_type, detail, *, event_id=None) -> PutEvents entry
        entry_size, batches, entry_id, dedup_key,
    )
    from connectors.eventbridge.flink_sink import (
        attach_eventbridge_sink,  # (events, bus_name, *, endpoint_url=None, region=None, flush_interval_ms=200,
                                  #  buckets=8, max_attempts=15, base_backoff_s=0.25, max_backoff_s=8.0,
                                  #  deadline_s=90.0, latency_log_path=None, name="eventbridge-sink")
                                  #  -> (delivered receipts DataStream[str], DELIVERY_FAILED dead letters DataStream[str])
        eventbridge_row,          # (source, detail_type, detail, emitted_at_ms=None) -> Row
        EVENTBRIDGE_INPUT_TYPE,
    )

Dedup key downstream: (detail-type, detail.incident_id | check_id | finding_id). PutEvents has no
client-supplied id, and the entries carry no Resources (that field is for AWS resource ARNs).
"""
