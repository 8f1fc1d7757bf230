-- Per (editor, metric) tumbling windows: the seed's RPM anomaly query made valid
-- for streaming. The seed compared each value with a HAVING subquery over
-- CURRENT_TIMESTAMP, which is not a streaming query (processing-time dependent,
-- unbounded state). Here SQL only aggregates; the comparison with the editor's
-- trailing baseline and its online model happens per window in udfs/ (keyed
-- state), so Python runs once per window and key, never per record.
--
-- Window TVF aggregation emits each window once, when the watermark passes
-- window_end (append-only, no retractions), and frees its state.
--
-- A sample that carries `partner` is a part of the editor's traffic. For the
-- metrics reported only per partner (timeouts, bid and win rate) the editor's
-- window is their mean over its partners; for every other metric the editor
-- reports its own total (e.g. `revenue`), and the per-partner breakdown of it
-- (the ad server's revenue per demand partner) belongs to the partner windows
-- only: averaged with the total it would mix a part with the whole.
SELECT
  editor_id,
  metric,
  window_start,
  window_end,
  window_time,
  AVG(metric_value) AS avg_value,
  MIN(metric_value) AS min_value,
  MAX(metric_value) AS max_value,
  SUM(metric_value) AS sum_value,
  COUNT(*) AS sample_count
FROM TABLE(TUMBLE(TABLE ${valid_table}, DESCRIPTOR(event_time), ${window_interval}))
WHERE partner IS NULL OR metric IN ('partner_timeouts', 'bid_rate', 'win_rate')
GROUP BY editor_id, metric, window_start, window_end, window_time
