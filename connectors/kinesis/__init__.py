"""Kinesis source (b) of DESIGN.md: boto3 inside PyFlink, for runs without the connector JAR.

Public API (stable):

    from connectors.kinesis.flink_source import (
        kinesis_payload_table,          # (t_env, env, stream_name, *, event_time_expr, watermark_expr, endpoint_url=None,
                                        #  region=None, start_position="TRIM_HORIZON", poll_interval_ms=200,
                                        #  max_records_per_poll=10000, shard_discovery_interval_ms=10000,
                                        #  idle_timeout="5 s", dead_letter_source="metrics", on_invalid_encoding=None,
                                        #  alignment_max_ahead_ms=0, alignment_dir=None) -> Table
        kinesis_payload_stream,         # (env, stream_name, *, endpoint_url, region, start_position, poll_interval_ms,
                                        #  max_records_per_poll, shard_discovery_interval_ms, dead_letter_source="metrics",
                                        #  max_parallelism=128, name=None, alignment_max_ahead_ms=0,
                                        #  alignment_dir=None) -> DataStream[Row(KINESIS_ROW_TYPE)]
        kinesis_invalid_encoding_stream,  # (payload_stream) -> DataStream[str] of INVALID_ENCODING dead letters
        KINESIS_ROW_TYPE, INVALID_ENCODING_TAG,
    )
    from connectors.kinesis.poller import StreamReader, ShardPoller, StartPosition, list_shards   # Flink-free core
    from connectors.kinesis.benchmark import measure_kinesis_throughput                          # records/s figures

Job configuration this source relies on (see flink_source's docstring):
  * `table.exec.source.idle-timeout` (set by kinesis_payload_table unless idle_timeout=None) so a
    subtask without records (idle shard, or more subtasks than lineage groups) does not hold the
    watermark back;
  * checkpointing on: shard positions live in keyed state (operator uid `kinesis-<stream>-get-records`);
  * `python.fn-execution.bundle.time` bounds how long records wait in a Python bundle (default
    1000 ms; 100 ms keeps end-to-end latency low at little throughput cost).
"""
