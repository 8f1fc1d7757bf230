-- Late rows: a valid row at or behind the watermark is LATE_RECORD (the late output; a late
-- event is still used as a suspected cause, sql/parse/events.sql). ${marked_table} is the
-- parsed and duplicate-marked view as materialized (flink_jobs.main.materialize: a DataStream
-- and back); every branch (windows, late output) reads it through this test, in the same task
-- right after the round trip, so each sees the same watermark at the same row and they agree.
--
-- Why there and not in the parse: CURRENT_WATERMARK is the watermark of the operator that
-- evaluates it. Right after a source subtask (where the parse runs) that is the subtask's
-- own watermark. Behind the duplicate marking's hash exchange it is the minimum over every
-- source subtask that is not idle, the same watermark the window operator goes by (its own
-- input is one more hash exchange away, which cannot make it larger). Judged against the
-- subtask's own watermark, a subtask that was idle (silent for processing.idle.timeout.s, so
-- left out of the minimum while the others moved it on) and resumes with rows behind the
-- job's watermark but ahead of its own had them pass as on time, and the window operator
-- dropped them without a count (tests/test_late_after_idle.py). Written into the marking's
-- query, the test was moved back before the exchange by the planner (it pushes the
-- expression below the OVER aggregate); the DataStream round trip is a boundary it cannot
-- cross.
--
-- Known limits: with processing.dedup.retention.s = 0 there is no duplicate marking and no
-- exchange before this, so a resumed idle subtask's rows can again be dropped uncounted; and
-- right after a restore, before the first watermark (CURRENT_WATERMARK is NULL, hence the
-- IS TRUE), rows late before the restore are not late here and re-open a closed window, which
-- the Python operators leave unscored (udfs/metric_detector.py, "Re-fired windows").
-- Tolerance for out-of-order data is the watermark delay (processing.watermark.delay.s).
SELECT
  ${columns},
  reason_code,
  reason_code IS NULL AND (event_time <= CURRENT_WATERMARK(event_time)) IS TRUE AS is_late
FROM ${marked_table}
