-- Benchmark source: synthetic metric records built in SQL as JSON payloads, so
-- the benchmark exercises exactly the parse -> validate -> window path that real
-- Kinesis/archive payloads take (no Python per record anywhere).
--
-- `seq` is a bounded sequence (split between the parallel datagen readers), so
-- event time advances by ${ms_per_row} ms per row from ${start_epoch_ms} and the
-- windows fire while the benchmark runs; the source ends after ${number_of_rows}
-- rows. rows-per-second MUST be set: datagen defaults to 10k rows/s.
--
-- Flink does not let a computed column reference another computed column, so
-- event_time is computed from `seq` (the same number the payload carries) instead
-- of re-parsing the JSON.
CREATE TEMPORARY TABLE ${table_name} (
  seq BIGINT,
  ed INT,
  m INT,
  p INT,
  noise DOUBLE,
  payload AS JSON_OBJECT(
    'editor_id' VALUE CONCAT('e-', LPAD(CAST(ed AS STRING), 4, '0')),
    'metric' VALUE ARRAY['rpm', 'fill_rate', 'bid_latency_ms', 'error_rate', 'partner_timeouts',
                         'cache_hit_rate', 'impressions', 'revenue', 'bid_rate', 'win_rate'][m],
    -- plausible magnitudes per metric; rates stay within [0, 1]
    'value' VALUE ARRAY[2.5, 0.85, 120.0, 0.01, 3.0, 0.9, 5000.0, 12.5, 0.6, 0.2][m] * noise,
    'timestamp' VALUE ${start_epoch_ms} + seq * ${ms_per_row},
    -- as in the input contract and the simulator, only partner-level samples carry `partner`:
    -- timeouts, bid and win rate (reported per demand partner), and half of the revenue
    -- samples, standing for the ad server's revenue per partner beside the editor's total (the
    -- Partner Health Check's revenue impact; editor windows skip these). The editor's other
    -- metrics do not (a partner on every record would score 10 metrics per (partner, editor)).
    -- Each editor works with datagen.partners.per.editor of the datagen.partners partners (the
    -- simulator's editors use 2-4): partner 1 + (ed + p) mod partners, p drawn per record. Drawing from all
    -- partners for every editor would give each (partner, editor, metric) series a sample every
    -- few minutes, sparser than the contract's 10-60 s, and triple the partner keys.
    'partner' VALUE CASE WHEN m IN (5, 9, 10) OR (m = 8 AND MOD(seq, 2) = 0)
                         THEN CONCAT('p-', CAST(1 + MOD(ed + p, ${partners}) AS STRING)) END
    ABSENT ON NULL
  ),
  event_time AS TO_TIMESTAMP_LTZ(${start_epoch_ms} + seq * ${ms_per_row}, 3),
  WATERMARK FOR event_time AS ${watermark_expr}
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '${rows_per_second}',
  'fields.seq.kind' = 'sequence',
  'fields.seq.start' = '1',
  'fields.seq.end' = '${number_of_rows}',
  'fields.ed.min' = '1',
  'fields.ed.max' = '${editors}',
  'fields.m.min' = '1',
  'fields.m.max' = '10',
  'fields.p.min' = '0',
  'fields.p.max' = '${partners_per_editor_minus_one}',
  'fields.noise.min' = '0.9',
  'fields.noise.max' = '1.1'
)
