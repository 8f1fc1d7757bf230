-- Timestamp reason code shared by sql/parse/metrics.sql and events.sql (a SQL fragment,
-- substituted as the timestamp_reason parameter, over the columns timestamp_text -- the
-- field's text -- and event_time -- the source's event time, sql/parse/event_time.sql).
-- NULL when the timestamp is usable, else INVALID_TIMESTAMP or FUTURE_TIMESTAMP.
--
-- Well-formed means an integer epoch in milliseconds (digits only: a float epoch such as
-- 1793520000000.5 is invalid, not truncated as TRY_CAST would) or ISO-8601 with a zone in
-- the contract's form (sql/parse/iso_timestamp.sql, which checks it again). The parse itself is
-- event_time's; event_time is the sentinel epoch 0 when it could not be used, and only then
-- is the text parsed again here to tell an invalid time (unparseable, at or before the
-- epoch: 0, negative, 1969) from one more than ${max_future_s} s ahead of processing time.
-- The regex only ever sees the short timestamp text (see sql/README.md on backtracking).
CASE
  WHEN NOT COALESCE(REGEXP(timestamp_text,
         '^(-?[0-9]{1,18}|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2}))$'),
         FALSE)
    THEN 'INVALID_TIMESTAMP'
  WHEN event_time > TO_TIMESTAMP_LTZ(0, 3) THEN CAST(NULL AS STRING)
  WHEN COALESCE(
         TO_TIMESTAMP_LTZ(TRY_CAST(timestamp_text AS BIGINT), 3),
         ${iso_timestamp_of_text}) IS NULL
       OR COALESCE(
         TO_TIMESTAMP_LTZ(TRY_CAST(timestamp_text AS BIGINT), 3),
         ${iso_timestamp_of_text}) <= TO_TIMESTAMP_LTZ(0, 3)
    THEN 'INVALID_TIMESTAMP'
  ELSE 'FUTURE_TIMESTAMP'
END
