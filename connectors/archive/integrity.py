"""Is every compressed file of an archive whole? Checked before a job reads it.

Flink's filesystem source decompresses a file by its extension. A truncated or
damaged one (a copy cut short, a part file still being written) makes the source
throw ``java.io.EOFException`` (``Unexpected end of ZLIB input stream`` for a
truncated gzip file; ``Error opening the Input Split`` for an empty one): the job
fails, restarts, reads the file again, fails again, and so on forever, with the
reason only in Flink's log. Both were seen here (2026-12-05, archive job at
parallelism 1): the truncated file until the run was stopped after 10 minutes, the
empty one 21 restarts in 150 s.
No record of such a file can be dead-lettered either, since the failure is below
the record level. So the job's entry point (``flink_jobs.main``) checks local
archive paths first and refuses to start with an error that names each damaged
file; the user re-copies or removes it. The Python reader (``iter_archive``, which
the replay into Kinesis uses) refuses such an archive before its first record, so a
replay does not stop half-way either. Nothing of the file is read silently in part.

Files Flink would skip (names starting with ``.`` or ``_``) are skipped here too.
The compressed formats the standard library reads are checked (gzip, bzip2, xz),
each file decompressed once in 1 MiB chunks without keeping the data; Parquet
files (which only the Python reader takes) by decoding every row group.

>>> import gzip, tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> whole = gzip.compress(b'{"a": 1}\\n' * 1000)
>>> _ = (root / "part-0.jsonl.gz").write_bytes(whole)
>>> _ = (root / "part-1.jsonl.gz").write_bytes(whole[: len(whole) // 2])
>>> [(p.path.name, p.reason) for p in damaged_files(root)]
[('part-1.jsonl.gz', 'truncated: the compressed stream ends before its end-of-stream marker')]
"""
from __future__ import annotations

import bz2
import lzma
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


class DamagedArchiveError(ValueError):
    """An archive holds files (compressed, or Parquet) that do not read whole; the message names each."""

    def __init__(self, damaged: list["DamagedFile"], where: str, remedy: str):
        self.damaged = damaged
        lines = "\n".join(f"  {d.path}: {d.reason}" + ("" if d.readable_bytes is None else
                                                         f" ({d.readable_bytes:,} bytes readable before it)")
                          for d in damaged)
        super().__init__(f"{len(damaged)} archive file(s) under {where} cannot be read whole:\n{lines}\n{remedy}")


def check_archive(path: str | Path | list[Path], where: str, remedy: str) -> None:
    """Raise :class:`DamagedArchiveError` when :func:`damaged_files` finds any under ``path`` (or
    among a list of files)."""
    damaged = damaged_files(path)
    if damaged:
        raise DamagedArchiveError(damaged, where, remedy)


@dataclass(frozen=True)
class DamagedFile:
    path: Path
    reason: str
    #: bytes that decompressed before the damage was met (read in 1 MiB chunks, so a lower bound);
    #: None for Parquet
    readable_bytes: int | None


def _decompressor(name: str):
    lower = name.lower()
    if lower.endswith((".gz", ".gzip")):
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)   # gzip header and trailer (CRC, length)
    if lower.endswith(".bz2"):
        return bz2.BZ2Decompressor()
    if lower.endswith(".xz"):
        return lzma.LZMADecompressor()
    return None


def _is_whole(path: Path, make) -> tuple[str | None, int]:
    """(None, bytes) for a whole file, else (reason, bytes decompressed before the damage)."""
    out = 0
    d, in_member = make(), False
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            while chunk:
                if not in_member and not chunk.strip(b"\x00"):
                    break                                    # zero padding after the last member
                try:
                    out += len(d.decompress(chunk))
                except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
                    where = "after the last complete member" if out and not in_member else "in its data"
                    return f"damaged {where}: {exc}", out
                if d.eof:
                    # A member ended. gzip and bzip2 files may hold several back to back (as
                    # `cat a.gz b.gz` makes); Flink's decompressors read them all.
                    chunk, d, in_member = d.unused_data, make(), False
                else:
                    chunk, in_member = b"", True
    if in_member:
        return "truncated: the compressed stream ends before its end-of-stream marker", out
    if path.stat().st_size == 0:
        # Flink's source fails to open an empty .gz (EOFException reading the header): endless restarts too.
        return "empty: 0 bytes, not even a header", 0
    return None, out


def _parquet_problem(path: Path) -> str | None:
    """None when every row group of the Parquet file decodes, else why not (footer, page, codec)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for _ in pq.ParquetFile(path).iter_batches(batch_size=65_536):
            pass
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"not a readable Parquet file: {exc}"
    return None


def source_files(path: str | Path) -> list[Path]:
    """The files Flink's filesystem source reads under ``path`` (the path itself when it is a file):
    every file whose name, and whose directories' names, start with neither ``.`` nor ``_``."""
    root = Path(path)
    if root.is_file():
        return [root]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith((".", "_"))]
    return files


def damaged_files(path: str | Path | list[Path]) -> list[DamagedFile]:
    """Every compressed or Parquet file under ``path`` (a file or a directory; or in a list of files)
    that does not read whole."""
    if isinstance(path, list):
        return [d for file in path for d in damaged_files(file)]
    found = []
    for file in source_files(path):
        if file.name.lower().endswith(".parquet"):
            # The Python reader's other format (the Flink source refuses Parquet paths outright).
            reason = _parquet_problem(file)
            if reason:
                found.append(DamagedFile(file, reason, None))
            continue
        if _decompressor(file.name) is None:
            continue
        reason, readable = _is_whole(file, lambda name=file.name: _decompressor(name))
        if reason:
            found.append(DamagedFile(file, reason, readable))
    return found
