-- Parse and validate operational events (low volume: a few per editor and hour).
-- Same shape and the same JSON-type technique as sql/parse/metrics.sql (JSON types seen
-- through JSON_QUERY(... WITH UNCONDITIONAL ARRAY WRAPPER); never JSON_VALUE ... RETURNING),
-- and the same shared fragments: fields read from the strict document of
-- sql/parse/json_document.sql, timestamps checked by sql/parse/timestamp_reason.sql.
-- One pass, one reason code per bad row, first failing rule wins:
--   OVERSIZED_RECORD, INVALID_ENCODING (as in sql/parse/metrics.sql: bytes that are not UTF-8,
--   or an unpaired surrogate escape, sql/parse/unpaired_surrogate.sql),
--   INVALID_JSON (also an object followed by `}`, garbage or another object),
--   MISSING_FIELD (event_type / timestamp),
--   WRONG_TYPE (severity not a JSON number -- "high", [9], true --; editor_id or
--   partner present (not null) but not a non-empty JSON string; details present (not
--   null) but not an object: a string, number or boolean would else be dropped unseen),
--   UNKNOWN_EVENT_TYPE, NON_FINITE_VALUE (severity overflows a double: 1e400),
--   OUT_OF_RANGE_VALUE (a security finding's severity outside 0-10:
--   the contract scores findings 0-10 and says nothing of other events' severity, so a
--   deployment with its own scale is still a suspected cause),
--   INVALID_TIMESTAMP / FUTURE_TIMESTAMP (sql/parse/timestamp_reason.sql).
-- Late events are NOT dropped: an event is a suspected cause for windows that
-- close up to ${events_lookback_s} s after it, so the correlator keeps it, late or
-- not, while a window it has not decided yet can still name it (udfs/correlator.py;
-- is_late is still reported: as for metrics, here and in sql/parse/late.sql).
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
  reason_code IS NULL AND (event_time <= CURRENT_WATERMARK(event_time)) IS TRUE AS is_late
FROM (
  SELECT
    payload, event_time, event_type, editor_id, partner, severity, details,
    CASE
      WHEN oversized THEN 'OVERSIZED_RECORD'
      -- bytes that are not UTF-8 (the test is explained in sql/parse/metrics.sql)
      WHEN CAST(payload AS BYTES) <> ENCODE(payload, 'UTF-8') OR ${unpaired_surrogate} THEN 'INVALID_ENCODING'
      WHEN NOT is_object OR NOT (doc IS JSON ARRAY) THEN 'INVALID_JSON'
      WHEN event_type IS NULL OR timestamp_text IS NULL THEN 'MISSING_FIELD'
      WHEN NOT COALESCE(editor_json LIKE '["%' OR editor_json = '[null]', TRUE) OR editor_json = '[""]'
           OR NOT COALESCE(partner_json LIKE '["%' OR partner_json = '[null]', TRUE) OR partner_json = '[""]'
           OR NOT COALESCE(details_json LIKE '[{%' OR details_json = '[null]', TRUE)
           OR (severity_json IS NOT NULL AND severity_json <> '[null]'
               AND (severity_json LIKE '["%' OR severity_json LIKE '[[%' OR severity_json LIKE '[{%'
                    OR severity_json IN ('[true]', '[false]') OR severity IS NULL))
        THEN 'WRONG_TYPE'
      WHEN event_type NOT IN ('config_change', 'deployment', 'feature_flag', 'partner_status', 'security_finding')
        THEN 'UNKNOWN_EVENT_TYPE'
      -- as sql/parse/metrics.sql tells a value that overflows a double (1e400), for any event type
      WHEN severity <> severity OR severity >= CAST('Infinity' AS DOUBLE) OR severity <= CAST('-Infinity' AS DOUBLE)
        THEN 'NON_FINITE_VALUE'
      WHEN event_type = 'security_finding' AND (severity < 0 OR severity > 10)
        THEN 'OUT_OF_RANGE_VALUE'
      ELSE ${timestamp_reason}
    END AS reason_code
  FROM (
    SELECT
      payload, event_time, oversized, doc, is_object, event_type, editor_json, partner_json, severity_json,
      timestamp_text, details_json,
      CASE WHEN details_json LIKE '[{%' THEN JSON_QUERY(details_json, '$[0]') END AS details,
      JSON_VALUE(editor_json, '$[0]') AS editor_id,
      JSON_VALUE(partner_json, '$[0]') AS partner,
      TRY_CAST(JSON_VALUE(severity_json, '$[0]') AS DOUBLE) AS severity
    FROM (
      SELECT
        payload, event_time, oversized, doc,
        -- JSON's whitespace before the object (sql/parse/metrics.sql says why not LTRIM)
        TRIM(LEADING CHR(32) || CHR(9) || CHR(10) || CHR(13) FROM payload) LIKE '{%' AS is_object,
        JSON_VALUE(doc, '$[0].record.event_type') AS event_type,
        JSON_QUERY(doc, '$[0].record.editor_id' WITH UNCONDITIONAL ARRAY WRAPPER) AS editor_json,
        JSON_QUERY(doc, '$[0].record.partner' WITH UNCONDITIONAL ARRAY WRAPPER) AS partner_json,
        JSON_QUERY(doc, '$[0].record.severity' WITH UNCONDITIONAL ARRAY WRAPPER) AS severity_json,
        JSON_VALUE(doc, '$[0].record.timestamp') AS timestamp_text,
        -- wrapped, like the other fields, so a scalar shows as itself instead of NULL
        JSON_QUERY(doc, '$[0].record.details' WITH UNCONDITIONAL ARRAY WRAPPER) AS details_json
      FROM (
        SELECT
          payload,
          event_time,
          CHAR_LENGTH(payload) > ${max_payload_bytes} AS oversized,
          ${json_document} AS doc
        FROM ${source_table}
      )
    )
  )
)
