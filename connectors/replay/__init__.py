"""Replay archives: into Kinesis (paced, per-key order) and from the EventBridge archive (StartReplay).

    from connectors.replay import replay_archive
    stats = replay_archive("out/sim", {"metrics": "adops-metrics-stream", "events": "adops-events-stream"},
                           speed=720.0)
"""
from .eventbridge import replay_from_archive
from .kinesis import (KinesisReplayer, ReplayStats, event_time_ms, merged_archive, parse_speed, partition_key,
                      replay_archive)

__all__ = ["KinesisReplayer", "ReplayStats", "event_time_ms", "merged_archive", "parse_speed", "partition_key",
           "replay_archive", "replay_from_archive"]
