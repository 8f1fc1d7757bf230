-- One row per demand partner and window, holding the window of every editor
-- that reported through the partner (sql/windows/partner_editor_windows.sql) as
-- a JSON array of arrays: [editor_id, then each metric's `m__avg`, `m__n` in
-- detectors.classifier.METRICS order] (metric_columns lists them).
--
-- Why one row: the partner is judged on all its editors at once
-- (udfs/decisions.partner_window_check counts how many are hurt), so with a row
-- per editor the Python operator had to hold each row in state until an
-- event-time timer said the window was complete. A second window over the
-- editor windows' own time is complete when it fires: it fires at the same
-- watermark as the first (their rows carry window_end - 1 ms), so the partner
-- is scored and judged in one Python call per window, with no timer and no
-- buffered results.
--
-- Why JSON and not ARRAY_AGG(ROW(..)): with pipeline.object-reuse (on, see
-- flink_jobs/main.py) ARRAY_AGG kept references to a row object its input
-- reuses, and every element became the last editor's row (seen 2026-12-05 in
-- the pipeline test's partner outage). JSON_ARRAYAGG renders each element to a
-- new string as it is added. NULL ON NULL keeps a metric without samples in
-- its position.
SELECT
  partner,
  JSON_ARRAYAGG(JSON_ARRAY(editor_id, ${metric_columns} NULL ON NULL)) AS editor_windows,
  window_time
FROM TABLE(TUMBLE(TABLE ${partner_editor_table}, DESCRIPTOR(editor_window_time), ${window_interval}))
GROUP BY partner, window_start, window_end, window_time
