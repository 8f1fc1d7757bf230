-- Parse and validate every metric record once, in SQL (no Python per record:
-- measured here, a Python UDF per record caps the job near 86k records/s versus
-- ~330k for pure SQL). Every input row comes out exactly once, either valid
-- (reason_code IS NULL) or with one DESIGN.md reason code; flink_jobs/main.py
-- then splits valid / late / dead-letter rows.
--
-- Rules, first failing one wins (so a row has a single, most specific reason):
--   OVERSIZED_RECORD   payload longer than ${max_payload_bytes} characters (not parsed at all)
--   INVALID_ENCODING   the payload's bytes are not UTF-8. Format 'raw' (the official Kinesis
--                      connector's and the archive's) keeps the bytes as read, and every
--                      function that reads them as text sees U+FFFD in place of a bad byte, so
--                      such a record was accepted with altered text until 2026-12-05 (an
--                      editor_id "e-\uFFFD", seen with the archive source). The test: the bytes
--                      as read, CAST(payload AS BYTES), differ from the text re-encoded,
--                      ENCODE(payload, 'UTF-8'), exactly when a byte was replaced (a payload that
--                      carries U+FFFD itself, as valid UTF-8, passes). The boto3 Kinesis path
--                      decodes strictly and dead-letters such records before SQL (connectors/kinesis).
--                      Also a payload holding an unpaired surrogate escape (a lone "\ud800"):
--                      no Unicode text; it was accepted with '?' in its place
--                      (sql/parse/unpaired_surrogate.sql).
--   INVALID_JSON       not exactly one JSON object: truncated, garbage, a bare array or
--                      scalar, and also an object followed by anything (an extra `}`,
--                      trailing garbage, a second value) -- see "strict JSON" below
--   MISSING_FIELD      editor_id, metric, value or timestamp absent / null
--   WRONG_TYPE         value not a JSON number (a string -- "", "12,5", "1.5" --, boolean,
--                      array or object); editor_id not a JSON string (a number, array,
--                      object) or empty; partner present (not null) but not a non-empty
--                      JSON string (it would else be read as NULL, and the partner's
--                      sample averaged into the editor's own); dimensions present but not an object whose
--                      values are all strings (the contract: {str: str})
--   UNKNOWN_METRIC     metric outside the contract's ten names (a number or boolean too; an array or
--                      object reads as no metric at all: MISSING_FIELD)
--   NON_FINITE_VALUE   value overflows a double (1e400) or is a bare NaN/Infinity token
--   OUT_OF_RANGE_VALUE rates outside [0, 1], negative counts, or above the sanity
--                      ceiling ${max_metric_value} (absurd values)
--   INVALID_TIMESTAMP  neither an integer epoch in milliseconds nor ISO-8601 with a zone, or
--                      at or before the epoch (sql/parse/timestamp_reason.sql, as for events)
--   FUTURE_TIMESTAMP   more than ${max_future_s} s ahead of processing time (same fragment)
--
-- Strict JSON: every field is read from the document of sql/parse/json_document.sql
-- (the payload wrapped as `[{"record": payload}]`, fields as `$[0].record.field`), so an object
-- followed by anything, a second record after a comma included, is INVALID_JSON; a payload
-- that is not an object is caught by its first character.
--
-- JSON types without JSON_VALUE(... RETURNING ..) (which throws and fails the job):
-- JSON_QUERY(... WITH UNCONDITIONAL ARRAY WRAPPER) shows the JSON type of a field:
-- '[1.5]' for a number, '["1.5"]' for a string, '[[1.5]]' for an array, '[{..}]' for
-- an object.
--
-- Cost: Flink merges nested SELECTs into one Calc and inlines every column into each place
-- it is used, so each *reference* to a JSON column would re-parse the payload: the generated
-- code of the previous version had 77 JSON_VALUE/JSON_QUERY call sites, and a JFR profile of
-- the pure-SQL baseline spent ~63 % of its source-chain CPU in them. Each step below is
-- therefore computed inside `CROSS JOIN UNNEST(ARRAY[ROW(..)])`, which Flink plans as a
-- Correlate that evaluates the row once: the document is parsed once per field (five or six
-- times), and the checks on the fields once each. The fast path (first WHEN) tests validity;
-- only rows that fail it pay for the diagnosis. dimensions are only parsed when the payload
-- mentions "dimensions".
--
-- is_late: the row is at or behind the watermark of this operator, the one right after the
-- source subtask's watermark assigner: a rule that depends on the subtask's own rows, not on
-- how far the other subtasks have got, so a fast replay gives the same late rows run after
-- run. sql/parse/late.sql adds the rows behind the watermark the windows go by (after the
-- duplicate marking's exchange), which this one misses after a source subtask was idle.
-- Tolerance for out-of-order data is the watermark delay (processing.watermark.delay.s).
-- That is stricter than Flink's windows, which take a row until its window has fired. Late by
-- the windows' rule instead, tried on 2026-12-07 in the offline replay of ten simulated days:
-- 10,448 late samples of 1,562,650 instead of 30,521, and 108 of 110 incidents detected instead
-- of 110 (the same false alarms). Not adopted: the samples kept cost two detections there.
SELECT
  payload,
  event_time,
  editor_id,
  metric,
  partner,
  metric_value,
  reason_code,
  reason_code IS NULL AND (event_time <= CURRENT_WATERMARK(event_time)) IS TRUE AS is_late
FROM (
  SELECT
    payload,
    event_time,
    editor_id,
    metric,
    partner,
    metric_value,
    CASE
      WHEN oversized THEN 'OVERSIZED_RECORD'
      WHEN is_object AND CAST(payload AS BYTES) = ENCODE(payload, 'UTF-8') AND REGEXP(editor_json, '^\["[^"]')
           AND metric IN ('rpm', 'fill_rate', 'bid_latency_ms', 'error_rate', 'partner_timeouts',
                          'cache_hit_rate', 'impressions', 'revenue', 'bid_rate', 'win_rate')
           AND value_is_number
           AND metric_value > -${max_metric_value} AND metric_value < ${max_metric_value}
           AND (metric_value >= 0)
           AND (metric_value <= 1 OR metric NOT IN ('fill_rate', 'error_rate', 'cache_hit_rate', 'bid_rate', 'win_rate'))
           AND timestamp_reason IS NULL
           AND NOT dimensions_bad
           AND NOT partner_bad
           AND NOT unpaired_surrogate
        THEN CAST(NULL AS STRING)
      -- Only rows that failed the fast path above pay for the diagnosis below.
      WHEN CAST(payload AS BYTES) <> ENCODE(payload, 'UTF-8') OR unpaired_surrogate THEN 'INVALID_ENCODING'
      WHEN NOT is_object OR NOT (doc IS JSON ARRAY) THEN 'INVALID_JSON'
      WHEN editor_json IS NULL OR editor_json = '[null]' OR metric IS NULL
           OR value_json IS NULL OR value_json = '[null]' OR timestamp_text IS NULL THEN 'MISSING_FIELD'
      WHEN NOT (editor_json LIKE '["%') OR editor_id = '' OR NOT COALESCE(value_is_number, FALSE) OR dimensions_bad
           OR partner_bad
        THEN 'WRONG_TYPE'
      WHEN metric NOT IN ('rpm', 'fill_rate', 'bid_latency_ms', 'error_rate', 'partner_timeouts',
                          'cache_hit_rate', 'impressions', 'revenue', 'bid_rate', 'win_rate') THEN 'UNKNOWN_METRIC'
      WHEN metric_value IS NULL OR metric_value <> metric_value
           OR metric_value >= CAST('Infinity' AS DOUBLE) OR metric_value <= CAST('-Infinity' AS DOUBLE)
        THEN 'NON_FINITE_VALUE'
      WHEN metric_value < 0 OR metric_value >= ${max_metric_value} OR metric_value <= -${max_metric_value}
           OR (metric_value > 1 AND metric IN ('fill_rate', 'error_rate', 'cache_hit_rate', 'bid_rate', 'win_rate'))
        THEN 'OUT_OF_RANGE_VALUE'
      ELSE timestamp_reason
    END AS reason_code
  FROM (
    SELECT payload, event_time, oversized, doc, is_object, editor_json, metric, value_json,
           timestamp_text, checks.*
    FROM (
      SELECT payload, event_time, oversized, doc, is_object, fields.*
      FROM (
        SELECT
          payload,
          event_time,
          CHAR_LENGTH(payload) > ${max_payload_bytes} AS oversized,
          ${json_document} AS doc,
          -- An oversized payload is never handed to the JSON parser (doc is NULL).
          -- JSON's whitespace before the object: tab, line feed, carriage return, space (LTRIM
          -- strips spaces only, so a valid record sent with a leading tab was INVALID_JSON).
          TRIM(LEADING CHR(32) || CHR(9) || CHR(10) || CHR(13) FROM payload) LIKE '{%' AS is_object
        FROM ${source_table}
      )
      -- Each JSON field is read from the document exactly once, here (see "Cost" above).
      CROSS JOIN UNNEST(ARRAY[ROW(
        JSON_QUERY(doc, '$[0].record.editor_id' WITH UNCONDITIONAL ARRAY WRAPPER),
        JSON_VALUE(doc, '$[0].record.metric'),
        JSON_QUERY(doc, '$[0].record.partner' WITH UNCONDITIONAL ARRAY WRAPPER),
        JSON_QUERY(doc, '$[0].record.value' WITH UNCONDITIONAL ARRAY WRAPPER),
        JSON_VALUE(doc, '$[0].record.timestamp'),
        CASE WHEN POSITION('"dimensions"' IN payload) > 0
             THEN JSON_QUERY(doc, '$[0].record.dimensions' WITH UNCONDITIONAL ARRAY WRAPPER) END
      )]) AS fields (editor_json, metric, partner_json, value_json, timestamp_text, dimensions_json)
    )
    -- The checks on those fields, also evaluated once per row (the CASE below references
    -- each of them several times).
    CROSS JOIN UNNEST(ARRAY[ROW(
      JSON_VALUE(editor_json, '$[0]'),
      TRY_CAST(JSON_VALUE(value_json, '$[0]') AS DOUBLE),
      SUBSTRING(value_json FROM 2 FOR 1) NOT IN ('"', '[', '{', 't', 'f', 'n'),
      -- NULL for a usable timestamp (one REGEXP on the fast path; the rest only for bad rows)
      ${timestamp_reason},
      -- {str: str}: the object's values, listed by `$[0].*` as '["a","b"]', must all be JSON
      -- strings. Without a backtracking regex (a 64 KiB value overflows Java's regex stack and
      -- fails the job): drop escaped backslashes and quotes, turn every string literal into s;
      -- what is left between the brackets must be only s and commas (a number, true, false,
      -- null, object or array leaves another character).
      dimensions_json IS NOT NULL AND dimensions_json <> '[null]'
        AND (dimensions_json NOT LIKE '[{%'
             OR COALESCE(REPLACE(REPLACE(REGEXP_REPLACE(REPLACE(REPLACE(
                  JSON_QUERY(dimensions_json, '$[0].*' WITH CONDITIONAL ARRAY WRAPPER),
                  '\\', ''), '\"', ''), '"[^"]*"', 's'), 's', ''), ',', ''), '') NOT IN ('[]', '')),
      -- partner: absent or null (an editor-level sample), else a non-empty JSON string
      CASE WHEN partner_json LIKE '["%' THEN JSON_VALUE(partner_json, '$[0]') END,
      partner_json IS NOT NULL AND partner_json <> '[null]'
        AND (partner_json NOT LIKE '["%' OR partner_json = '[""]'),
      ${unpaired_surrogate}
    )]) AS checks (editor_id, metric_value, value_is_number, timestamp_reason, dimensions_bad, partner, partner_bad,
                   unpaired_surrogate)
  )
)
