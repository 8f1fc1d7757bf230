-- Dead-letter and late records as DESIGN.md dead-letter JSON lines
-- (connectors/schemas/dead_letter_record.schema.json):
--   {"reason_code", "reason", "source", "raw", "detected_at"}
--   + "event_time" when the record's timestamp was read (not the parse's epoch-0 sentinel)
--   + "raw_truncated": true and "raw_size_chars" when the payload was cut.
-- Built in SQL (JSON_OBJECT) so a burst of bad records costs no Python.
-- Flink SQL has no byte-length function, so `raw` is cut at 65,536 characters
-- (the Python dead letters cut at 65,536 bytes of UTF-8 and say raw_size_bytes);
-- with the default processing.max.payload.bytes only an OVERSIZED_RECORD is cut.
-- ABSENT ON NULL: the optional keys are left out rather than written as null.
-- ${parsed_table} is a parsed view (sql/parse/*.sql); ${source_name} is
-- 'metrics' or 'events'. Late rows (valid but behind the watermark) get
-- reason_code LATE_RECORD; flink_jobs/main.py routes them to the late output.
SELECT
  reason_code,
  JSON_OBJECT(
    'reason_code' VALUE reason_code,
    'reason' VALUE CASE reason_code
      WHEN 'OVERSIZED_RECORD' THEN 'payload longer than ${max_payload_bytes} characters'
      WHEN 'INVALID_ENCODING' THEN 'payload bytes are not valid UTF-8, or it escapes an unpaired UTF-16 surrogate (\uD800-\uDFFF)'
      WHEN 'INVALID_JSON' THEN 'payload is not a JSON object'
      WHEN 'MISSING_FIELD' THEN 'a required field is missing or null'
      WHEN 'WRONG_TYPE' THEN 'a field has the wrong JSON type'
      WHEN 'UNKNOWN_METRIC' THEN 'metric is not one of the contract''s metric names'
      WHEN 'UNKNOWN_EVENT_TYPE' THEN 'event_type is not one of the contract''s event types'
      WHEN 'NON_FINITE_VALUE' THEN 'value is NaN or infinite'
      WHEN 'OUT_OF_RANGE_VALUE' THEN 'value outside the metric''s valid range'
      WHEN 'INVALID_TIMESTAMP' THEN 'timestamp is neither epoch milliseconds nor ISO-8601 with a zone'
      WHEN 'FUTURE_TIMESTAMP' THEN 'timestamp more than ${max_future_s} s ahead of processing time'
      WHEN 'DUPLICATE_RECORD' THEN 'an identical record was already accepted (within the last ${dedup_retention_s} s)'
      -- A late event is still used (sql/parse/events.sql): its copy here is a record, not a loss.
      WHEN 'LATE_RECORD' THEN CASE '${source_name}'
        WHEN 'events' THEN 'event arrived at or behind the watermark (still used as a suspected cause)'
        -- Not "its window closed": a record 31 s behind the newest is late though its window may not
        -- have fired yet (the allowed lateness is the watermark delay, README "Configuration").
        ELSE 'record arrived at or behind the watermark (further behind the newest records than processing.watermark.delay.s allows)' END
      ELSE reason_code END,
    'source' VALUE '${source_name}',
    'raw' VALUE SUBSTRING(payload FROM 1 FOR 65536),
    'raw_truncated' VALUE CASE WHEN CHAR_LENGTH(payload) > 65536 THEN TRUE END,
    'raw_size_chars' VALUE CASE WHEN CHAR_LENGTH(payload) > 65536 THEN CHAR_LENGTH(payload) END,
    'event_time' VALUE CASE WHEN event_time > TO_TIMESTAMP_LTZ(0, 3)
                            THEN DATE_FORMAT(event_time, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') END,
    'detected_at' VALUE DATE_FORMAT(CURRENT_TIMESTAMP, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')
    ABSENT ON NULL
  ) AS line
FROM (
  SELECT payload, event_time, CASE WHEN is_late THEN 'LATE_RECORD' ELSE reason_code END AS reason_code
  FROM ${parsed_table}
  WHERE reason_code IS NOT NULL OR is_late
)
