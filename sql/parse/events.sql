-- Parse and validate operational events (low volume: a few per editor and hour).
-- Same shape as sql/parse/metrics.sql: one pass, one reason code per bad row.
--   OVERSIZED_RECORD, INVALID_JSON, MISSING_FIELD (event_type / timestamp),
--   UNKNOWN_EVENT_TYPE, OUT_OF_RANGE_VALUE (severity outside 0-10),
--   INVALID_TIMESTAMP, FUTURE_TIMESTAMP.
-- Late events are NOT dropped: an event is a suspected cause for windows that
-- close up to ${events_lookback_s} s after it, so the correlator keeps it in
-- keyed state regardless of the watermark (is_late is still reported).
-- details is kept as JSON text (JSON_QUERY) and parsed in Python per event.
SELECT
  payload,
  event_time,
  event_type,
  editor_id,
  partner,
  severity,
  details,
  reason_code,
  reason_code IS NULL AND (event_time < CURRENT_WATERMARK(event_time)) IS TRUE AS is_late
FROM (
  SELECT
    payload, event_time, event_type, editor_id, partner, severity, details,
    CASE
      WHEN CHAR_LENGTH(payload) > ${max_payload_bytes} THEN 'OVERSIZED_RECORD'
      WHEN NOT (payload IS JSON OBJECT) THEN 'INVALID_JSON'
      WHEN event_type IS NULL OR JSON_VALUE(payload, '$.timestamp') IS NULL THEN 'MISSING_FIELD'
      WHEN event_type NOT IN ('config_change', 'deployment', 'feature_flag', 'partner_status', 'security_finding')
        THEN 'UNKNOWN_EVENT_TYPE'
      WHEN JSON_VALUE(payload, '$.severity') IS NOT NULL AND severity IS NULL THEN 'WRONG_TYPE'
      WHEN severity < 0 OR severity > 10 THEN 'OUT_OF_RANGE_VALUE'
      WHEN event_time > TO_TIMESTAMP_LTZ(0, 3) THEN CAST(NULL AS STRING)
      WHEN COALESCE(
             TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(payload, '$.timestamp') AS BIGINT), 3),
             TO_TIMESTAMP_LTZ(JSON_VALUE(payload, '$.timestamp'), 'yyyy-MM-dd''T''HH:mm:ss[.SSS]XXX')) IS NULL
        THEN 'INVALID_TIMESTAMP'
      ELSE 'FUTURE_TIMESTAMP'
    END AS reason_code
  FROM (
    SELECT
      payload,
      event_time,
      CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes} THEN JSON_VALUE(payload, '$.event_type') END AS event_type,
      CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes} THEN JSON_VALUE(payload, '$.editor_id') END AS editor_id,
      CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes} THEN JSON_VALUE(payload, '$.partner') END AS partner,
      CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes}
           THEN TRY_CAST(JSON_VALUE(payload, '$.severity') AS DOUBLE) END AS severity,
      CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes}
           THEN JSON_QUERY(payload, '$.details') END AS details
    FROM ${source_table}
  )
)
