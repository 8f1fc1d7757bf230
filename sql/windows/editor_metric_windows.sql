-- Per (editor, metric) tumbling windows: the seed's RPM anomaly query made valid
-- for streaming. The seed compared each value with a HAVING subquery over
-- CURRENT_TIMESTAMP, which is not a streaming query (processing-time dependent,
-- unbounded state). Here SQL only aggregates; the comparison with the editor's
-- trailing baseline and its online model happens per window in udfs/ (keyed
-- state), so Python runs once per window and key, never per record.
--
-- Window TVF aggregation emits each window once, when the watermark passes
-- window_end (append-only, no retractions), and frees its state.
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
GROUP BY editor_id, metric, window_start, window_end, window_time
