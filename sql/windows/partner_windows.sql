-- Per (demand partner, editor, metric) tumbling windows: partner-level samples
-- are the metric records that carry a `partner` field (timeouts, bid rate, win
-- rate ...). Each editor's traffic through a partner is its own series: editors
-- differ in size and rates, so an average across editors moves whenever the mix
-- of editors reporting in a window changes, and the partner would look degraded
-- when it is not. The scorer keys on (partner, editor, metric) -- `editors` is
-- that one editor -- and udfs/decisions.partner_window_check judges the partner
-- by how many of its editors are hurt against their own baselines. Same window
-- size and watermark as the editor windows.
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
  CAST(1 AS BIGINT) AS editor_count,
  editor_id AS editors
FROM TABLE(TUMBLE(TABLE ${valid_table}, DESCRIPTOR(event_time), ${window_interval}))
WHERE partner IS NOT NULL
GROUP BY partner, editor_id, metric, window_start, window_end, window_time
