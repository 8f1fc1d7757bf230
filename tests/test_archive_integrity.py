"""connectors/archive/integrity.py and the entry point's check of local archive paths.

A damaged compressed archive file used to put the archive job into endless restarts (Flink's
filesystem source throws EOFException on it at every attempt; seen 2026-12-05). The entry point
now refuses to start, naming the file. The CLI case runs `python -m flink_jobs.main` up to the
check: no job is submitted.
"""
from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.archive.integrity import DamagedArchiveError, damaged_files
from flink_jobs.config import ConfigError
from flink_jobs.main import check_archive_files

REPO = Path(__file__).resolve().parent.parent
DATA = b'{"editor_id":"e-1","metric":"rpm","value":2.5,"timestamp":1793520000000}\n' * 40000  # ~3 MB: several 1 MiB reads
GZ = gzip.compress(DATA)

WHOLE = {
    "whole.jsonl.gz": GZ,
    "two-members.jsonl.gz": GZ + GZ,                # `cat a.gz b.gz`: Flink reads both members
    "zero-padded.jsonl.gz": GZ + b"\0" * 512,
    "whole.jsonl.bz2": bz2.compress(DATA),
    "whole.jsonl.xz": lzma.compress(DATA),
    "plain.jsonl": DATA[:1000],                     # not compressed: nothing to check
    "_SUCCESS.gz": b"not gzip",                     # Flink skips files starting with _ or .
    ".part-0.jsonl.gz.inprogress": GZ[:100],
}
DAMAGED = {
    "truncated.jsonl.gz": (GZ[: len(GZ) // 2], "truncated"),
    "no-trailer.jsonl.gz": (GZ[:-4], "truncated"),
    "second-member-cut.jsonl.gz": (GZ + GZ[:200], "truncated"),
    "bit-flip.jsonl.gz": (GZ[:-6] + bytes([GZ[-6] ^ 0x01]) + GZ[-5:], "damaged"),
    "garbage-after.jsonl.gz": (GZ + b"<html>oops</html>", "damaged after the last complete member"),
    "empty.jsonl.gz": (b"", "empty"),
    "truncated.jsonl.bz2": (bz2.compress(DATA)[:-20], "truncated"),
    "truncated.jsonl.xz": (lzma.compress(DATA)[:-20], "truncated"),
}


@pytest.fixture
def archive(tmp_path):
    nested = tmp_path / "metrics" / "year=2026" / "month=11"
    nested.mkdir(parents=True)
    for name, data in WHOLE.items():
        (nested / name).write_bytes(data)
    for name, (data, _) in DAMAGED.items():
        (nested / name).write_bytes(data)
    return tmp_path / "metrics"


def test_damaged_files_are_found_and_whole_ones_pass(archive):
    found = {d.path.name: d for d in damaged_files(archive)}
    assert set(found) == set(DAMAGED)
    for name, (_, reason) in DAMAGED.items():
        assert found[name].reason.startswith(reason), (name, found[name].reason)
    # what decompressed before the damage: the whole first member of a file cut in its second
    assert found["second-member-cut.jsonl.gz"].readable_bytes >= len(DATA)
    assert found["truncated.jsonl.gz"].readable_bytes < len(DATA)


def test_a_single_file_path_is_checked_too(archive):
    assert [d.path.name for d in damaged_files(archive / "year=2026" / "month=11" / "empty.jsonl.gz")] == \
        ["empty.jsonl.gz"]
    assert damaged_files(archive / "year=2026" / "month=11" / "whole.jsonl.gz") == []


def test_the_entry_point_check_names_the_files(archive, tmp_path):
    with pytest.raises(DamagedArchiveError) as err:
        check_archive_files(archive.as_uri(), "archive.metrics.path")   # file: URIs are local too
    message = str(err.value)
    assert f"{len(DAMAGED)} archive file(s)" in message
    for name in DAMAGED:
        assert name in message
    with pytest.raises(ConfigError, match="no such file"):
        check_archive_files(str(tmp_path / "nowhere"), "archive.metrics.path")
    check_archive_files("s3://bucket/archive/metrics/", "archive.metrics.path")   # remote: read as it is


def test_the_entry_point_refuses_a_parquet_archive(tmp_path):
    """The simulator writes Parquet by default; format 'raw' would read its bytes as lines."""
    from connectors.archive import PARQUET, ArchiveWriter

    with ArchiveWriter(tmp_path / "sim", fmt=PARQUET) as writer:
        writer.add({"editor_id": "e-1", "metric": "rpm", "value": 2.5, "timestamp": 1793520000000}, 1793520000.0)
    for verify_compressed in (True, False):     # archive.verify.compressed only skips the decompression
        with pytest.raises(ConfigError, match=r"holds 1 Parquet file\(s\).*connectors.replay"):
            check_archive_files(str(tmp_path / "sim" / "metrics"), "archive.metrics.path",
                                verify_compressed=verify_compressed)
        with pytest.raises(ConfigError, match="no such file"):
            check_archive_files(str(tmp_path / "nowhere"), "archive.metrics.path", verify_compressed=verify_compressed)


def test_files_flink_skips_are_not_refused(tmp_path):
    """Flink's filesystem source skips names starting with `.` or `_` (a writer's temporary part):
    neither the Parquet refusal nor the decompression check looks at them."""
    (tmp_path / "part-0.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n'))
    (tmp_path / "_part-1.parquet").write_bytes(b"PAR1 half-written")
    (tmp_path / ".part-2.jsonl.gz").write_bytes(b"\x1f\x8b truncated")
    check_archive_files(str(tmp_path), "archive.metrics.path")


def test_verify_compressed_false_starts_anyway(archive):
    check_archive_files(str(archive), "archive.metrics.path", verify_compressed=False)


def test_cli_refuses_to_start_on_a_damaged_archive(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "part-0.jsonl.gz").write_bytes(GZ)
    (tmp_path / "metrics" / "part-1.jsonl.gz").write_bytes(GZ[:1000])
    cmd = [sys.executable, "-m", "flink_jobs.main", "--source", "archive",
           "--set", f"archive.metrics.path={tmp_path / 'metrics'}",
           "--set", f"job.checkpoint.dir={tmp_path / 'ckpt'}", "--set", f"deadletter.path={tmp_path / 'dl'}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "input error: 1 archive file(s)" in proc.stderr and "part-1.jsonl.gz: truncated" in proc.stderr
    assert "job_id" not in proc.stdout


def test_the_python_reader_refuses_a_damaged_archive_before_the_first_record(tmp_path):
    from connectors.archive import iter_archive

    (tmp_path / "metrics").mkdir()
    (tmp_path / "events").mkdir()
    (tmp_path / "metrics" / "part-0.jsonl.gz").write_bytes(GZ)
    (tmp_path / "events" / "part-0.jsonl.gz").write_bytes(GZ[:1000])
    records = iter_archive(tmp_path, "metrics")          # the damaged file is another kind's: not read
    assert next(records).record["editor_id"] == "e-1"
    with pytest.raises(DamagedArchiveError, match=r"events/part-0.jsonl.gz: truncated"):
        next(iter_archive(tmp_path))


def test_a_damaged_parquet_part_is_refused_before_the_first_record(tmp_path):
    """The simulator's default format: pyarrow used to fail at that file, after the parts before it."""
    from connectors.archive import PARQUET, ArchiveWriter, iter_archive

    with ArchiveWriter(tmp_path / "sim", fmt=PARQUET, max_records_per_part=2000) as writer:
        for i in range(5000):
            writer.add({"editor_id": f"e-{i % 7}", "metric": "rpm", "value": 2.5 + i % 3,
                        "timestamp": 1793520000000 + i * 1000}, 1793520000.0 + i)
    parts = sorted((tmp_path / "sim" / "metrics").rglob("*.parquet"))
    assert len(parts) >= 2
    assert sum(1 for _ in iter_archive(tmp_path / "sim")) == 5000       # whole: read as before
    whole = parts[-1].read_bytes()
    parts[-1].write_bytes(whole[: len(whole) // 2])                      # cut: no footer
    with pytest.raises(DamagedArchiveError, match=r"not a readable Parquet file"):
        next(iter_archive(tmp_path / "sim"))
    found = damaged_files(tmp_path / "sim")
    assert [d.path for d in found] == [parts[-1]] and found[0].readable_bytes is None


def test_the_python_reader_keeps_a_line_that_is_not_utf8_as_its_bytes(tmp_path):
    from connectors.archive import iter_archive

    good = b'{"editor_id":"e-1","metric":"rpm","value":2.5,"timestamp":1793520000000}'
    bad = b'{"editor_id":"e-\xff\xfe","metric":"rpm","value":2.5,"timestamp":1793520000000}'
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "part-0.jsonl.gz").write_bytes(gzip.compress(good + b"\n" + bad + b"\r\n" + good))
    items = list(iter_archive(tmp_path))
    assert [i.record is None for i in items] == [False, True, False]
    assert [i.payload.encode("utf-8", "surrogateescape") for i in items] == [good, bad, good]
