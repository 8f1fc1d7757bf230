"""CloudWatch: the job's per-editor window means as custom metrics (PutMetricData).

`publisher` is Flink-free (datums, batching, retries); `flink_sink` attaches it to a
DataStream with the same checkpointed buffer as the other sinks (connectors.flink_buffer).
"""
