-- Replays and backfills: JSON-lines archive files (one record per line, `.gz`
-- files are decompressed by the filesystem connector by extension) read as
-- format 'raw', so a malformed line reaches sql/parse/ as a payload with a reason
-- code instead of failing the source (format 'json' would fail or skip it silently).
-- A damaged compressed *file* cannot be handled per record: the source fails on it at
-- every restart. flink_jobs.main.check_archive_files refuses such a local archive before
-- the job starts (archive.verify.compressed).
-- JSON lines only: Flink's Parquet format JAR is only on Maven Central here, so a Parquet
-- archive (the simulator's default) is replayed through Kinesis, and the entry point refuses
-- a Parquet path (format 'raw' would read its bytes as lines).
--
-- Bounded: the job reads the directory once and ends after the last window fires
-- (end of input advances the watermark to +inf). Parallelism: one split per file, read in
-- no fixed order: hence its watermark_expr is sources/archive_watermark.sql (none before the end).
CREATE TEMPORARY TABLE ${table_name} (
  payload STRING,
  event_time AS ${event_time_expr},
  WATERMARK FOR event_time AS ${watermark_expr}
) WITH (
  'connector' = 'filesystem',
  'path' = '${path}',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)
