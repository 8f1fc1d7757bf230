"""Firehose-style archive on a file system: write partitions, read them back in order.

Layout (the S3 prefix layout Firehose writes with its default
``YYYY/MM/DD/HH`` partitioning, in Hive style so Athena/Glue read it as is)::

    ROOT/metrics/year=2026/month=11/day=02/hour=13/part-00000.parquet
    ROOT/events/year=2026/month=11/day=02/hour=13/part-00000.jsonl.gz

Records are partitioned by *arrival* time (when the delivery stream received
them, as Firehose does), and written in arrival order, so reading partitions
and parts in path order gives the stream back in the order it was received.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from . import formats
from .formats import EVENTS, KINDS, METRICS, kind_of
from .integrity import check_archive

PARQUET = "parquet"
JSONL = "jsonl"
SUFFIX = {PARQUET: ".parquet", JSONL: ".jsonl.gz"}
PART_NUMBER = re.compile(r"part-(\d+)")
_DATA_FILE = re.compile(r".*\.(parquet|jsonl|jsonl\.gz|json\.gz|ndjson|ndjson\.gz)$")
#: What the simulator writes beside its archive's metrics/ and events/ (connectors/simulator):
#: the labelled incidents, not traffic, so not worth a warning when a replay leaves it out.
SIMULATOR_LABELS = "labels.jsonl"

log = logging.getLogger(__name__)


def partition_dir(kind: str, arrival_s: float) -> str:
    t = datetime.fromtimestamp(arrival_s, tz=timezone.utc)
    return f"{kind}/year={t.year:04d}/month={t.month:02d}/day={t.day:02d}/hour={t.hour:02d}"


class ArchiveWriter:
    """Buffers records per (kind, hour partition) and writes a part file per flush.

    ``max_records_per_part`` plays the role of Firehose's buffer size: a
    partition that reaches it is written out at once; :meth:`flush` (Firehose's
    buffer interval) writes whatever is buffered; :meth:`close` flushes.
    """

    def __init__(self, root: str | Path, fmt: str = PARQUET, max_records_per_part: int = 250_000):
        if fmt not in SUFFIX:
            raise ValueError(f"format must be one of {', '.join(SUFFIX)}; got {fmt!r}")
        self.root = Path(root)
        self.fmt = fmt
        self.max_records_per_part = max_records_per_part
        self._buffers: dict[str, list[Any]] = {}
        self.written_files: list[Path] = []
        self.record_counts = {kind: 0 for kind in KINDS}

    def add(self, record: Any, arrival_s: float, kind: str | None = None, payload: str | None = None) -> None:
        """Buffer ``record`` in its arrival hour's partition.

        ``payload``: the record's text as received (the capture passes it), kept as it is so the
        archive reads back what came, NaN and 1e999 included (formats' module docstring). The
        record is turned into its line or row here, not at the flush: a record the archive cannot
        hold raises ValueError now, on its own, instead of failing the write of a whole buffer
        of other records.
        """
        kind = kind or kind_of(record)
        if kind not in KINDS:
            raise ValueError(f"cannot tell whether this is a metric or an event record: {str(record)[:200]}")
        entry = (formats.TO_ROW[kind](record, payload) if self.fmt == PARQUET
                 else formats.jsonl_line(record, payload))
        key = partition_dir(kind, arrival_s)
        buffer = self._buffers.setdefault(key, [])
        buffer.append(entry)
        self.record_counts[kind] += 1
        if len(buffer) >= self.max_records_per_part:
            self._write(key)

    def flush(self) -> None:
        for key in sorted(self._buffers):
            self._write(key)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "ArchiveWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()

    def _write(self, key: str) -> None:
        entries = self._buffers.get(key)
        if not entries:
            self._buffers.pop(key, None)
            return
        directory = self.root / key
        directory.mkdir(parents=True, exist_ok=True)
        # After the highest part, not after as many as there are: a part deleted by hand, or a
        # temporary file left by a crash, must not make the next write replace a real part.
        numbers = [int(match.group(1)) for p in directory.glob("part-*")
                   if (match := PART_NUMBER.match(p.name))]
        path = directory / f"part-{max(numbers, default=-1) + 1:05d}{SUFFIX[self.fmt]}"
        kind = key.split("/", 1)[0]
        data = (formats.parquet_table_bytes(kind, entries) if self.fmt == PARQUET
                else formats.jsonl_gz_bytes(entries))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        # Dropped only once written: a failed write (disk full) leaves the records for the next flush.
        del self._buffers[key]
        self.written_files.append(path)


@dataclass(frozen=True)
class ArchivedRecord:
    kind: str | None        # metrics / events; None for a line that is not a contract-shaped object
    record: Any             # the parsed record (None for a line that is not JSON)
    payload: str            # the text to put on the stream: the line as written, or the record as JSON


def data_files(path: str | Path) -> list[Path]:
    """Every archive data file under ``path`` (or ``path`` itself), in path order. Names starting
    with ``.`` or ``_`` are left out, files and folders, as Flink's filesystem source leaves them
    (a writer's part in progress, macOS's ``._`` copies)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no archive at {path}")
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        found.extend(Path(dirpath) / f for f in sorted(filenames)
                     if _DATA_FILE.match(f) and not f.startswith((".", "_")))
    return sorted(found, key=lambda p: p.relative_to(path).parts)


def _kind_from_path(file: Path, root: Path) -> str | None:
    # one file given: the folders it is in, the innermost first (sim/metrics/year=.../part-00000.parquet)
    parts = file.relative_to(root).parts if file != root else [p.name for p in file.parents]
    for part in parts:
        if part in KINDS:
            return part
    return None


def iter_archive(path: str | Path, kind: str | None = None, *, unrecognised: bool = False,
                 report_left_out: bool = True) -> Iterator[ArchivedRecord]:
    """All records of an archive (a Firehose-style tree, any directory of data files, or one file).

    Under a ``metrics/`` or ``events/`` directory the kind comes from the path (for one
    file, from the folders it is in); elsewhere each record's fields say which it is,
    and a Parquet file's columns say which schema it has. When some files are
    under such a directory, the path is a tree and only those are read: data
    files beside them are left out, with a warning that names them (unless
    ``report_left_out`` is false) -- except the simulator's ``labels.jsonl``.

    A line outside those directories whose kind cannot be told -- not UTF-8, not
    JSON, or an object without ``metric``/``value``/``event_type`` -- has kind
    None. Without a ``kind`` every line is yielded; with one, such lines are
    yielded too only when ``unrecognised`` is true (the replay asks for them with
    the metrics, so that they reach the job and are dead-lettered with their
    reason instead of vanishing: ``connectors/replay/README.md``).
    """
    root = Path(path)
    files = [(file, _kind_from_path(file, root) or (root.name if root.name in KINDS else None))
             for file in data_files(root)]
    if any(file_kind is not None for _, file_kind in files):
        # A tree: its records are under metrics/ and events/. Files beside those (the simulator's
        # labels.jsonl) are not traffic; read as records of unknown kind they would be replayed to
        # the metrics stream and dead-lettered, line by line.
        beside = [file for file, file_kind in files if file_kind is None]
        files = [(file, file_kind) for file, file_kind in files if file_kind is not None]
        unexpected = [file for file in beside if not (file.name == SIMULATOR_LABELS and file.parent == root)]
        if unexpected and report_left_out:
            log.warning("%s: %d data file(s) beside its metrics/ and events/ directories are not part of the "
                        "archive and were not read (move them under metrics/ or events/, or replay them on "
                        "their own): %s", root, len(unexpected),
                        ", ".join(str(f.relative_to(root)) for f in unexpected[:10])
                        + (", ..." if len(unexpected) > 10 else ""))
    # A damaged compressed file would otherwise stop the reading half-way, after the records
    # before it were used (replayed into Kinesis): refuse the archive before the first record.
    check_archive([file for file, file_kind in files if file_kind is None or kind in (None, file_kind)],
                  str(root), "Re-copy or remove them; nothing of the archive was read.")
    wanted = (None, kind) if unrecognised else (kind,)
    for file, file_kind in files:
        if file.suffix == ".parquet" and file_kind is None:
            file_kind = formats.parquet_kind(file)
            if file_kind is None:
                raise ValueError(f"{file}: a Parquet file whose columns are neither the metrics' nor the events' "
                                 "schema (connectors/archive/formats.py), and not under a metrics/ or events/ folder")
        if file_kind is not None and kind not in (None, file_kind):
            continue                                     # another kind's file (its path says so)
        if file.suffix == ".parquet":
            for record, payload in formats.read_parquet(file_kind, file):
                yield ArchivedRecord(file_kind, record, payload)
            continue
        for record, line in formats.read_jsonl(file):
            record_kind = file_kind or kind_of(record)
            if kind is None or record_kind in wanted:
                yield ArchivedRecord(record_kind, record, line)


def read_records(path: str | Path, kind: str) -> list[Any]:
    """The parsed records of one kind, in archive order (convenience for tests and small archives)."""
    return [r.record for r in iter_archive(path, kind)]


__all__ = ["ArchiveWriter", "ArchivedRecord", "EVENTS", "JSONL", "METRICS", "PARQUET", "data_files",
           "iter_archive", "partition_dir", "read_records"]
