-- ISO-8601 text with a zone -> TIMESTAMP_LTZ(3); NULL when the text is not one (a SQL
-- fragment over ${iso_text}, used by sql/parse/event_time.sql and timestamp_reason.sql).
--
-- Accepted: the input contract's form (connectors/schemas/metric_record.schema.json):
-- `yyyy-MM-dd`, `T` or a space, `HH:mm`, optional `:ss` with 1-9 fraction digits (cut to
-- milliseconds), then `Z` or an offset `+hh:mm` / `+hhmm`.
--   * Why the zone is a third argument: Flink 2.2's two-argument TO_TIMESTAMP_LTZ(text,
--     pattern) parses an offset but drops it (10:05:00+02:00 came out as 10:05Z), so the
--     regex cuts the zone out of the text and hands it over as the time zone to read in.
--     The same regex checks the whole form: no zone, no match, no zone argument, NULL.
--   * Why nine fraction sections: a pattern's `S` count is a fixed width, so the optional
--     sections go from nine digits down to one and the first that fits is taken.
TO_TIMESTAMP_LTZ(
  ${iso_text},
  'yyyy-MM-dd[''T''][ ]HH:mm[:ss][.SSSSSSSSS][.SSSSSSSS][.SSSSSSS][.SSSSSS][.SSSSS][.SSSS][.SSS][.SS][.S][XXX][XX]',
  REGEXP_EXTRACT(${iso_text},
    '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})$', 3))
