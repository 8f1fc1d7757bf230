-- Managed Flink: the official Flink Kinesis connector (flink-connector-aws-kinesis-streams,
-- the FLIP-27 KinesisStreamsSource; JAR declared in pom-free-requirements.txt and
-- shipped in the application zip's lib/ via pipeline.jars).
--
-- Option names are those of the connector's 5.x/6.x ("Flink 2.0") SQL factory:
-- 'stream.arn', 'aws.region', 'source.init.position' (LATEST | TRIM_HORIZON |
-- AT_TIMESTAMP). They changed from the 4.x connector ('stream', 'scan.stream.initpos');
-- written from the connector documentation, not verified against the JAR on this
-- machine (no JAR here: the test suite uses the boto3 path, sources/kinesis_boto3).
--
-- Not verified either: whether the connector's table source takes the WATERMARK below into its
-- reader, one watermark per shard (Flink's SupportsWatermarkPushDown). If it does not, the
-- watermark follows each subtask's records over all its shards, and a subtask catching up a
-- backlog (after a restore, an update or a rescale) marks the slower shards' records late, as
-- the boto3 path did before its per-shard floor (connectors/kinesis/README.md, "Per-shard
-- watermarks"). Watch the late output after the first restore on AWS.
--
-- format 'raw': the whole record is the payload; parsing and validation are in
-- sql/parse/ so a malformed record becomes a dead letter instead of a failed job.
CREATE TEMPORARY TABLE ${table_name} (
  payload STRING,
  event_time AS ${event_time_expr},
  WATERMARK FOR event_time AS ${watermark_expr}
) WITH (
  'connector' = 'kinesis',
  'stream.arn' = '${stream_arn}',
  'aws.region' = '${region}',
  'source.init.position' = '${start_position}',
  'format' = 'raw',
  'raw.charset' = 'UTF-8'
)
