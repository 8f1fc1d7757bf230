-- Per (demand partner, metric) tumbling windows across editors: partner-level
-- samples are the metric records that carry a `partner` field (timeouts, bid
-- rate, win rate, fill, revenue ...). COUNT(DISTINCT editor_id) is how many
-- editors reported through that partner in the window (editors affected when the
-- partner degrades); `editors` lists them (comma-separated) for the detail. Same window size and watermark as the editor windows.
SELECT
  partner,
  metric,
  window_start,
  window_end,
  window_time,
  AVG(metric_value) AS avg_value,
  MIN(metric_value) AS min_value,
  MAX(metric_value) AS max_value,
  SUM(metric_value) AS sum_value,
  COUNT(*) AS sample_count,
  COUNT(DISTINCT editor_id) AS editor_count,
  LISTAGG(DISTINCT editor_id) AS editors
FROM TABLE(TUMBLE(TABLE ${valid_table}, DESCRIPTOR(event_time), ${window_interval}))
WHERE partner IS NOT NULL
GROUP BY partner, metric, window_start, window_end, window_time
