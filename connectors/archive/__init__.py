"""Firehose-style archives of the two input streams (Parquet or gzipped JSON lines, by hour).

    from connectors.archive import ArchiveWriter, iter_archive
    with ArchiveWriter("out/archive", fmt="parquet") as writer:
        writer.add({"editor_id": "e-001", "metric": "rpm", "value": 2.1,
                    "timestamp": "2026-11-02T10:00:00Z"}, arrival_s=1793613600.0)
    [r.record for r in iter_archive("out/archive", "metrics")]

Command line: ``python -m connectors.archive capture --stream NAME --out DIR``
archives a live Kinesis stream; ``python -m connectors.archive stats DIR`` counts.
"""
from .formats import EVENTS, KINDS, METRICS, dumps, kind_of
from .store import (JSONL, PARQUET, ArchivedRecord, ArchiveWriter, data_files, iter_archive, partition_dir,
                    read_records)

__all__ = ["ArchiveWriter", "ArchivedRecord", "EVENTS", "JSONL", "KINDS", "METRICS", "PARQUET", "data_files",
           "dumps", "iter_archive", "kind_of", "partition_dir", "read_records"]
