-- Per (demand partner, editor) tumbling windows: partner-level samples are the
-- metric records that carry a `partner` field (timeouts, bid rate, win rate
-- ...). Each editor's traffic through a partner is its own series: editors
-- differ in size and rates, so an average across editors moves whenever the mix
-- of editors reporting in a window changes, and the partner would look degraded
-- when it is not. The partner operator (udfs/correlator.PartnerHealth) scores
-- each (partner, editor, metric) against its own history, and
-- udfs/decisions.partner_window_check judges the partner by how many of its
-- editors are hurt. Same window size and watermark as the editor windows.
--
-- One row per (partner, editor) and window with the metrics side by side, for
-- the reason sql/windows/editor_windows.sql gives: metric_aggregates is the
-- same `m__avg`, `m__n` pair per metric of the contract. The window's time is
-- renamed: sql/windows/partner_windows.sql windows these rows again by it, and
-- a window TVF adds a `window_time` column of its own.
SELECT
  partner,
  editor_id,
  ${metric_aggregates},
  window_time AS editor_window_time
FROM TABLE(TUMBLE(TABLE ${valid_table}, DESCRIPTOR(event_time), ${window_interval}))
WHERE partner IS NOT NULL
GROUP BY partner, editor_id, window_start, window_end, window_time
