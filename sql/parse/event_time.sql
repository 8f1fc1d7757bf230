-- Event-time expression shared by every metrics/events source (a SQL fragment,
-- substituted as the event_time_expr parameter into the source DDLs as a computed column).
--
-- Why a computed column: the watermark must be declared on the source table, and
-- Flink only lets a WATERMARK reference a column of that table.
--
-- `timestamp` is either integer epoch milliseconds or ISO-8601 with a zone
-- (`2026-11-01T10:05:00Z`, `2026-11-01T10:05:00.123456+02:00`; sql/parse/iso_timestamp.sql).
--   * TRY_CAST, never JSON_VALUE(... RETURNING ...): RETURNING with a type the
--     JSON value does not have throws a ClassCastException that fails the job.
--   * Digits only before the cast: TRY_CAST(.. AS BIGINT) also reads "+<ms>", "<ms> " and a
--     fraction ("<ms>.5", cut), texts sql/parse/timestamp_reason.sql calls INVALID_TIMESTAMP;
--     until 2026-12-07 such a record was dead-lettered with that time and still moved the
--     watermark. (A negative epoch is invalid too, and gets the sentinel.) REGEXP_EXTRACT, not a
--     REGEXP test before the cast: Flink evaluates each reference to JSON_VALUE again (no common
--     subexpressions), and the test's second reference cost two more JSON parses per record. This
--     expression alone over 2M payloads: 93,371 rec/s before the rule, 77,250 with REGEXP, 89,606
--     with REGEXP_EXTRACT (flink_jobs/bench/event-time-digits-ab.json).
--   * Never NULL: a missing/invalid timestamp, an oversized payload, or a
--     timestamp more than ${max_future_s} s ahead of processing time gets the
--     sentinel epoch 0. The sentinel is older than any real record, so it can never
--     advance the watermark (a single bogus "year 2099" record would otherwise
--     close every window and make all real records late). sql/parse/metrics.sql
--     gives those rows their reason code (INVALID_TIMESTAMP / FUTURE_TIMESTAMP /
--     OVERSIZED_RECORD) before they are ever considered late.
COALESCE(
  CASE WHEN CHAR_LENGTH(payload) <= ${max_payload_bytes} THEN
    CASE WHEN COALESCE(
           TO_TIMESTAMP_LTZ(TRY_CAST(REGEXP_EXTRACT(JSON_VALUE(payload, '$.timestamp'), '^([0-9]{1,18})$', 1)
                                    AS BIGINT), 3),
           ${iso_timestamp_of_payload})
         <= TIMESTAMPADD(SECOND, ${max_future_s}, CURRENT_TIMESTAMP)
    THEN COALESCE(
           TO_TIMESTAMP_LTZ(TRY_CAST(REGEXP_EXTRACT(JSON_VALUE(payload, '$.timestamp'), '^([0-9]{1,18})$', 1)
                                    AS BIGINT), 3),
           ${iso_timestamp_of_payload})
    END
  END,
  TO_TIMESTAMP_LTZ(0, 3))
