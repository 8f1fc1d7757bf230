"""deploy.packaging: the Managed Flink zip layout, its wheels (from PyPI, as `make test` installs) and
JAR handling, without touching Maven Central."""
from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from deploy.packaging.jars import JarError, JarSpec, parse_jar_lines

REPO = Path(__file__).resolve().parents[1]
GROUP, ARTIFACT, VERSION = "org.example.flink", "fake-connector", "1.0-2.0"
JAR_BYTES = b"PK\x03\x04 not really a jar, but bytes with a known hash"
JAR_SHA = hashlib.sha256(JAR_BYTES).hexdigest()


def requirements(tmp_path: Path, sha: str) -> Path:
    path = tmp_path / "reqs.txt"
    path.write_text(f"apache-flink==2.2.1\nboto3==1.44.8  # comment\nnumpy==2.1.3\n\n"
                    f"# jar: {GROUP}:{ARTIFACT}:{VERSION} sha256={sha}\n")
    return path


def package(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.packaging", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def package_without_wheels(*args: str) -> subprocess.CompletedProcess:
    """For the checks on JARs: the wheels are checked by the layout test."""
    return package(*args, "--skip-wheels")


def test_the_repository_declares_the_kinesis_connector_for_flink_2():
    specs = parse_jar_lines((REPO / "pom-free-requirements.txt").read_text())
    kinesis = [s for s in specs if s.artifact == "flink-sql-connector-aws-kinesis-streams"]
    assert len(kinesis) == 1 and kinesis[0].group == "org.apache.flink" and kinesis[0].version.endswith("-2.0")
    assert kinesis[0].url() == ("https://repo1.maven.org/maven2/org/apache/flink/flink-sql-connector-aws-kinesis-streams/"
                                f"{kinesis[0].version}/flink-sql-connector-aws-kinesis-streams-{kinesis[0].version}.jar")


def test_malformed_jar_line_is_rejected():
    with pytest.raises(JarError, match="line 2: malformed"):
        parse_jar_lines("x==1\n# jar: only:two sha256=abc\n")
    assert parse_jar_lines(f"# jar: a.b:c:1.0 sha256={'A' * 64}") == [JarSpec("a.b", "c", "1.0", "a" * 64)]
    assert parse_jar_lines("# jar: a.b:c:1.0 sha256=UNVERIFIED")[0].sha256 is None


def test_build_layout_with_a_cached_jar(tmp_path):
    cache = tmp_path / "jars"
    cache.mkdir()
    (cache / f"{ARTIFACT}-{VERSION}.jar").write_bytes(JAR_BYTES)
    out = tmp_path / "adops-flink.zip"
    result = package("build", "--out", str(out), "--requirements", str(requirements(tmp_path, JAR_SHA)),
                     "--jar-cache", str(cache))
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"main.py", "requirements.txt", f"lib/{ARTIFACT}-{VERSION}.jar", "job/flink_jobs/main.py",
                "job/flink_jobs/application_properties.json"} <= names
        assert any(n.startswith("job/detectors/") for n in names) and any(n.startswith("job/sql/") for n in names)
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert not any(n.startswith("job/flink_jobs/bench/") for n in names)   # measured figures, not code
        # apache-flink (the service's) and localstack-client (local endpoint only) are left out.
        assert zf.read("requirements.txt").decode().split() == ["boto3==1.44.8", "numpy==2.1.3"]
        assert zf.read(f"lib/{ARTIFACT}-{VERSION}.jar") == JAR_BYTES
        compile(zf.read("main.py"), "main.py", "exec")
        assert b"from flink_jobs.main import main" in zf.read("main.py")
        # The wheels: the pins and what they need (botocore for boto3), binary for the service's
        # CPython 3.11 on manylinux, at the versions this environment has (the tested ones).
        wheels = {n.split("/", 1)[1].split("-")[0].lower(): n for n in names if n.startswith("wheelhouse/")}
        assert {"boto3", "botocore", "numpy", "jmespath"} <= set(wheels), sorted(wheels)
        assert "cp311-cp311-manylinux" in wheels["numpy"]
        assert wheels["botocore"] == f"wheelhouse/botocore-{importlib.metadata.version('botocore')}-py3-none-any.whl"
        assert zf.getinfo(wheels["numpy"]).compress_type == zipfile.ZIP_STORED


def test_a_pin_without_a_wheel_for_the_service_fails_clearly(tmp_path):
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("localstack-client==2.12\nriver==0.0.1\n")   # river 0.0.1 never had a cp311 wheel
    result = package("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(reqs), "--skip-jars")
    assert result.returncode == 2, result.stdout
    assert "pip could not download wheels for CPython 3.11" in result.stderr and "river" in result.stderr
    assert "(from versions: none)" not in result.stderr    # the index was reached: river has releases, not that one
    assert not (tmp_path / "x.zip").exists()


def test_requirement_names_are_normalised_and_a_line_that_is_no_pin_is_refused(tmp_path):
    from deploy.packaging.flink_zip import python_requirements

    assert python_requirements("apache_flink==2.2.1\nApache-Flink~=2.2\nlocalstack_client==2.12\n"
                               "river==0.23.0  # x\nboto3[crt]==1.44.8\n") == ["river==0.23.0", "boto3[crt]==1.44.8"]
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("river==0.23.0\n-r other.txt\n")
    result = package("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(reqs), "--skip-jars")
    assert result.returncode == 2 and "'-r other.txt' is not a pinned requirement" in result.stderr, result.stderr


def test_manylinux_platforms_cover_every_older_glibc():
    from deploy.packaging.wheels import manylinux_platforms

    tags = manylinux_platforms((2, 28))
    assert tags[0] == "manylinux_2_5_x86_64" and "manylinux_2_28_x86_64" in tags and "manylinux_2_29_x86_64" not in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)


def test_build_is_reproducible(tmp_path):
    # From a frozen copy: the live tree is being edited by others while tests run.
    import shutil

    from deploy.packaging.flink_zip import CODE_PACKAGES, build_zip

    frozen = tmp_path / "repo"
    for package_name in CODE_PACKAGES:
        if (REPO / package_name).is_dir():
            shutil.copytree(REPO / package_name, frozen / package_name)
    jar = tmp_path / f"{ARTIFACT}-{VERSION}.jar"
    jar.write_bytes(JAR_BYTES)
    text = requirements(tmp_path, JAR_SHA).read_text()
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    build_zip(first, [jar], text, repo_root=frozen)
    # The second build from another copy whose files carry other times (as a fresh clone's do),
    # so a zip that took anything from the clock or the files' times would differ.
    import os

    other = tmp_path / "other-checkout"
    shutil.copytree(frozen, other)
    three_days_ago = first.stat().st_mtime - 3 * 86400
    for path in [*other.rglob("*"), jar]:
        os.utime(path, (three_days_ago, three_days_ago))
    build_zip(second, [jar], text, repo_root=other)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2020, 1, 1, 0, 0, 0)}


def test_checksum_mismatch_refuses_to_build(tmp_path):
    cache = tmp_path / "jars"
    cache.mkdir()
    (cache / f"{ARTIFACT}-{VERSION}.jar").write_bytes(JAR_BYTES + b"tampered")
    out = tmp_path / "x.zip"
    result = package_without_wheels("build", "--out", str(out), "--requirements", str(requirements(tmp_path, JAR_SHA)),
                     "--jar-cache", str(cache))
    assert result.returncode == 2 and "SHA-256 mismatch" in result.stderr
    assert not out.exists()


def test_missing_jar_without_fetch_names_the_flag(tmp_path):
    result = package_without_wheels("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(requirements(tmp_path, JAR_SHA)),
                     "--jar-cache", str(tmp_path / "empty"))
    assert result.returncode == 2 and "--fetch-jars" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_repository_fails_clearly(tmp_path):
    result = package_without_wheels("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(requirements(tmp_path, JAR_SHA)),
                     "--jar-cache", str(tmp_path / "jars"), "--fetch-jars",
                     "--maven-repo", f"http://127.0.0.1:{_free_port()}/maven2")
    assert result.returncode == 2 and "cannot reach the Maven repository" in result.stderr
    assert not list((tmp_path / "jars").glob("*"))


@pytest.fixture()
def maven_mirror(tmp_path):
    """A real HTTP server on loopback laid out like Maven Central, serving one JAR."""
    root = tmp_path / "mirror"
    jar_dir = root / "maven2" / GROUP.replace(".", "/") / ARTIFACT / VERSION
    jar_dir.mkdir(parents=True)
    (jar_dir / f"{ARTIFACT}-{VERSION}.jar").write_bytes(JAR_BYTES)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/maven2"
    server.shutdown()


def test_fetch_jars_downloads_and_verifies(tmp_path, maven_mirror):
    out, cache = tmp_path / "x.zip", tmp_path / "jars"
    result = package_without_wheels("build", "--out", str(out), "--requirements", str(requirements(tmp_path, JAR_SHA)),
                     "--jar-cache", str(cache), "--fetch-jars", "--maven-repo", maven_mirror)
    assert result.returncode == 0, result.stderr
    assert (cache / f"{ARTIFACT}-{VERSION}.jar").read_bytes() == JAR_BYTES
    assert f"sha256={JAR_SHA}" in result.stdout


def test_fetch_with_wrong_recorded_hash_keeps_nothing(tmp_path, maven_mirror):
    cache = tmp_path / "jars"
    result = package_without_wheels("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(requirements(tmp_path, "0" * 64)),
                     "--jar-cache", str(cache), "--fetch-jars", "--maven-repo", maven_mirror)
    assert result.returncode == 2 and "SHA-256 mismatch" in result.stderr
    assert not list(cache.glob("*"))


def test_unverified_jar_is_packaged_with_its_hash_reported(tmp_path, maven_mirror):
    result = package_without_wheels("build", "--out", str(tmp_path / "x.zip"), "--requirements", str(requirements(tmp_path, "UNVERIFIED")),
                     "--jar-cache", str(tmp_path / "jars"), "--fetch-jars", "--maven-repo", maven_mirror)
    assert result.returncode == 0, result.stderr
    assert f"record 'sha256={JAR_SHA}'" in result.stderr


def test_lambda_zips_hold_handler_and_shared_module(tmp_path):
    result = package("lambdas", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    zips = {p.stem: p for p in tmp_path.glob("*.zip")}
    assert set(zips) == {"get_editor_metrics", "get_recent_changes", "rollback_config", "adjust_floor_price",
                         "pause_demand_partner", "invoke_orchestrator"}
    for tool, path in zips.items():
        with zipfile.ZipFile(path) as zf:
            assert sorted(zf.namelist()) == ["action_group.py", "handler.py"]
            extracted = tmp_path / tool
            zf.extractall(extracted)
        # The zip alone is importable the way Lambda imports it (handler.handler).
        check = subprocess.run([sys.executable, "-c", "import handler; assert callable(handler.handler)"],
                               cwd=extracted, capture_output=True, text=True, env={"PATH": "/usr/bin"})
        assert check.returncode == 0, (tool, check.stderr)


def test_lambda_zips_are_reproducible(tmp_path):
    """deploy/README.md names the functions' S3 keys by the zips' content, so that a rebuild of
    unchanged code keeps its keys and CloudFormation leaves the functions as they are."""
    import os
    import shutil

    from deploy.packaging.flink_zip import build_lambda_zips

    source = tmp_path / "lambda"
    shutil.copytree(REPO / "deploy" / "lambda", source)
    first = {p.name: p.read_bytes() for p in build_lambda_zips(tmp_path / "a", source)}
    for path in source.rglob("*.py"):
        os.utime(path, (1_000_000_000, 1_000_000_000))        # other file times, as a fresh clone's
    second = {p.name: p.read_bytes() for p in build_lambda_zips(tmp_path / "b", source)}
    assert first == second and len(first) == len(list(source.glob("*/handler.py")))
