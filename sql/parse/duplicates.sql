-- Duplicate records: the second and later copies of an accepted record become
-- DUPLICATE_RECORD dead letters; the first copy stays valid. Applied to a parse view
-- (sql/parse/metrics.sql or events.sql) before it is materialized, so every branch
-- (windows, dead letters) sees the same decision and the count runs once per record.
--
-- Identity = the exact payload text. What at-least-once delivery produces is a
-- byte-identical copy: a Kinesis producer retrying a PutRecords whose response was
-- lost, a replay of an archive range. A field-based identity (editor, metric, partner,
-- timestamp) would also flag two genuinely different samples of one series at one
-- instant (other dimensions, a corrected value) and lose a valid record; an exact copy
-- never carries new information.
--
-- Only records that were accepted are counted (counted_condition: valid, and for metrics
-- not late in the parse). An invalid, late or too-far-future first copy was never counted,
-- so a later valid copy of it is the first accepted one, not a duplicate. (A counted row
-- can still turn out late in sql/parse/late.sql, after this operator, when its source
-- subtask had been idle: a later copy of it is then LATE_RECORD if the parse finds it late,
-- else DUPLICATE_RECORD, though the first copy reached the late output rather than a
-- window.) Rows that are not counted all share the NULL copy_key: their payload is neither
-- hashed into a key nor kept in state.
--
-- Order of copies = processing time (PROCTIME()): arrival order, no buffering and no
-- watermark-based dropping (a rowtime-ordered OVER drops rows at or behind its last
-- fired timestamp, which would lose valid rows the parse did not mark late).
-- COUNT(*) OVER ... UNBOUNDED PRECEDING keeps one counter per identity (no rows), is
-- insert-only (EXPLAIN: OverAggregate, no retractions), and its keyed state is bounded
-- by table.exec.state.ttl = processing.dedup.retention.s (flink_jobs/main.py): an
-- identity not seen for that long is forgotten, so a copy arriving later than that is
-- accepted again. Restores: the counters are in checkpoints, and the records re-read
-- after a restore are those after the checkpoint, whose counts were not in it, so a
-- re-read record is not a false duplicate.
SELECT
  ${columns},
  CASE WHEN copy_key IS NOT NULL AND copy_number > 1 THEN 'DUPLICATE_RECORD' ELSE reason_code END AS reason_code,
  is_late
FROM (
  SELECT
    ${columns}, reason_code, is_late, copy_key,
    COUNT(*) OVER (PARTITION BY copy_key ORDER BY proc_time
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS copy_number
  FROM (
    SELECT
      ${columns}, reason_code, is_late,
      CASE WHEN ${counted_condition} THEN payload END AS copy_key,
      PROCTIME() AS proc_time
    FROM ${parsed_table}
  )
)
