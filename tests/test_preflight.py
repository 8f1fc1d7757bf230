import subprocess
import sys

from flink_jobs import preflight


def test_this_machine_passes_preflight():
    assert preflight.problems() == []


def test_java_version_parsing_handles_old_and_new_formats(tmp_path):
    fake = tmp_path / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    assert preflight.java_major_version(str(fake)) == 8
    fake.write_text('#!/bin/sh\necho \'openjdk version "17.0.15" 2025-04-15\' >&2\n')
    assert preflight.java_major_version(str(fake)) == 17


def test_missing_java_is_named_with_how_to_install(tmp_path):
    env = {"PATH": str(tmp_path), "JAVA_HOME": str(tmp_path / "nope")}
    out = subprocess.run([sys.executable, "flink_jobs/preflight.py"], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert "Java 17" in out.stderr and "openjdk-17" in out.stderr
