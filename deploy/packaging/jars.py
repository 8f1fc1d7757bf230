"""Connector JARs declared in pom-free-requirements.txt (``# jar:`` lines) and fetched from Maven Central.

    # jar: <groupId>:<artifactId>:<version> sha256=<hex|UNVERIFIED>

Nothing is downloaded unless asked; a recorded SHA-256 is always enforced, for
cached files too, so a tampered or truncated JAR never reaches a package.
"""
from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
JAR_LINE = re.compile(
    r"^#\s*jar:\s*(?P<group>[\w.\-]+):(?P<artifact>[\w.\-]+):(?P<version>[\w.\-]+)"
    r"(?:\s+sha256=(?P<sha>[0-9a-fA-F]{64}|UNVERIFIED))?\s*$"
)


class JarError(RuntimeError):
    pass


@dataclass(frozen=True)
class JarSpec:
    group: str
    artifact: str
    version: str
    sha256: str | None  # None when the file says UNVERIFIED (or nothing)

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repository: str = MAVEN_CENTRAL) -> str:
        return f"{repository.rstrip('/')}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"


def parse_jar_lines(text: str) -> list[JarSpec]:
    specs = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not re.match(r"^#\s*jar:", stripped):
            continue
        match = JAR_LINE.match(stripped)
        if not match:
            raise JarError(f"line {number}: malformed jar declaration {stripped!r}; expected "
                           "'# jar: group:artifact:version sha256=<64 hex>|UNVERIFIED'")
        sha = match["sha"]
        specs.append(JarSpec(match["group"], match["artifact"], match["version"],
                             None if sha in (None, "UNVERIFIED") else sha.lower()))
    return specs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(spec: JarSpec, path: Path) -> str:
    """Return the file's SHA-256; raise if a recorded one does not match."""
    actual = sha256_of(path)
    if spec.sha256 is not None and actual != spec.sha256:
        raise JarError(f"{spec.coordinates}: SHA-256 mismatch for {path}: recorded {spec.sha256}, got {actual}; "
                       "refusing to package it (delete the file to re-download, or fix the recorded hash)")
    return actual


def fetch(spec: JarSpec, cache_dir: Path, repository: str = MAVEN_CENTRAL, timeout: float = 30.0) -> Path:
    """Download into cache_dir (atomically) and verify."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / spec.file_name
    url = spec.url(repository)
    partial = target.with_suffix(".jar.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:  # noqa: S310
            while block := response.read(1 << 20):
                out.write(block)
    except urllib.error.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise JarError(f"{spec.coordinates}: {url} answered HTTP {exc.code}; check the coordinates") from exc
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise JarError(f"cannot reach the Maven repository for {spec.coordinates} ({url}): {reason}. "
                       "Connect to the network (or pass --maven-repo with a reachable mirror) and retry; "
                       "or place the JAR in the cache directory yourself.") from exc
    try:
        verify(spec, partial)
    except JarError:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def resolve(specs: list[JarSpec], cache_dir: Path, fetch_missing: bool, repository: str = MAVEN_CENTRAL,
            log=print) -> list[tuple[JarSpec, Path, str]]:
    """(spec, local path, sha256) for every JAR: from the cache, else downloaded if allowed."""
    resolved = []
    for spec in specs:
        path = cache_dir / spec.file_name
        if not path.exists():
            if not fetch_missing:
                raise JarError(f"{spec.coordinates} is not in {cache_dir}; run with --fetch-jars to download it "
                               f"from {repository} (or copy {spec.file_name} there)")
            log(f"downloading {spec.url(repository)}")
            path = fetch(spec, cache_dir, repository)
        digest = verify(spec, path)
        if spec.sha256 is None:
            log(f"WARNING {spec.coordinates} has no recorded SHA-256; its file hashes to {digest}: "
                f"record 'sha256={digest}' in pom-free-requirements.txt after checking it")
        resolved.append((spec, path, digest))
    return resolved
