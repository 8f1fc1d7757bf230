-- Per editor tumbling windows, one row per editor and window with every metric
-- of the input contract side by side: the seed's RPM anomaly query made valid
-- for streaming. The seed compared each value with a HAVING subquery over
-- CURRENT_TIMESTAMP, which is not a streaming query (processing-time dependent,
-- unbounded state). Here SQL only aggregates; the comparison of each metric
-- with the editor's trailing baseline and its online model happens per window
-- in udfs/ (keyed state, one model per editor and metric).
--
-- Why one row per editor rather than one per (editor, metric): the metrics are
-- aligned here, in SQL, so the Python operator that scores them runs once per
-- editor and window and classifies the window in the same call. Crossing into
-- Python costs more than the scoring itself (flink_jobs/benchmark.py), and a
-- row per metric paid that ten times.
--
-- The metric_aggregates parameter is, for every metric m of the contract (in
-- detectors.classifier.METRICS order), `m__avg` (AVG over the window's samples,
-- NULL when m had none) and `m__n` (their count); flink_jobs/main.py renders it.
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
  ${metric_aggregates},
  window_time
FROM TABLE(TUMBLE(TABLE ${valid_table}, DESCRIPTOR(event_time), ${window_interval}))
WHERE partner IS NULL OR metric IN ('partner_timeouts', 'bid_rate', 'win_rate')
GROUP BY editor_id, window_start, window_end, window_time
