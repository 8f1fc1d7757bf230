-- Late rows: a valid row at or behind the watermark is LATE_RECORD (the late output; a late event
-- is still used as a suspected cause, sql/parse/events.sql). ${marked_table} is the parsed and
-- duplicate-marked view as materialized (flink_jobs.main.materialize: a DataStream and back);
-- every branch (windows, late output) reads it through this test, in the same task right after
-- the round trip, so each sees the same watermark at the same row and they agree.
--
-- A row is late when the parse found it late (is_late: behind its own source subtask's
-- watermark, sql/parse/metrics.sql) or when it is at or behind the watermark here. Here, behind
-- the duplicate marking's hash exchange, the watermark is the minimum over every source
-- subtask that is not idle: the one the window operator goes by (its input is one more hash
-- exchange away, which cannot make it larger). The parse's test alone missed one case: a
-- source subtask that was idle (silent for processing.idle.timeout.s, so left out of the
-- minimum while the others moved it on) and resumes with rows behind the job's watermark but
-- ahead of its own. They passed as on time and the window operator dropped them without a
-- count (tests/test_late_after_idle.py). The test here alone would make the late rows depend
-- on how far the other subtasks had got (in a 720x replay, on the timing of the two source
-- threads), so a replay would no longer give the same windows each time: a run of seed 17's
-- simulated day with it alone (2026-12-07) had 2,560 late records where runs with the parse's
-- test had 3,235, and two composites fell from CRITICAL to HIGH. So both: with both (9f8480a), a
-- run had the 3,235 late records and the same 76 bus events as before, equal in severity and
-- causes.
--
-- A DUPLICATE_RECORD is never late: a copy of an accepted record is a duplicate whatever its
-- time. (Until 2026-12-07 a late event's copy was LATE_RECORD, "still used as a suspected cause",
-- which it was not: the operators read only valid events.)
--
-- Written into the duplicate marking's query, the test here was moved back before the exchange
-- by the planner (it pushes the expression below the OVER aggregate); the DataStream round trip
-- is a boundary it cannot cross.
--
-- Known limits: with processing.dedup.retention.s = 0 there is no duplicate marking and no
-- exchange before this, so a resumed idle subtask's rows can again be dropped uncounted; and
-- right after a restore, before the first watermark (CURRENT_WATERMARK is NULL, hence the
-- IS TRUE), rows late before the restore are not late here and re-open a closed window, which
-- the Python operators leave unscored (udfs/metric_detector.py, "Re-fired windows").
SELECT
  ${columns},
  reason_code,
  reason_code IS NULL AND (is_late OR (event_time <= CURRENT_WATERMARK(event_time)) IS TRUE) AS is_late
FROM ${marked_table}
