"""The zip Managed Service for Apache Flink runs for a PyFlink application.

Layout (the application's ``kinesis.analytics.flink.run.options`` property group
points at it: ``python=main.py``, ``jarfile=lib/<connector>.jar``)::

    main.py                 entry point: puts job/ on the path, runs flink_jobs.main
    job/flink_jobs/ job/udfs/ job/detectors/ job/connectors/ job/sql/
                            the job's code and SQL, in one folder the job ships to its
                            Python workers (python.files; connectors.flink_runtime says why)
    lib/*.jar               connector JARs from pom-free-requirements.txt
    requirements.txt        the job's Python pins, less NOT_PACKAGED (apache-flink, localstack-client)
    wheelhouse/*.whl        wheels for those pins and all they need (deploy/packaging/wheels.py);
                            the job installs them into its Python workers (python.requirements)

The zip is reproducible: sorted entries, fixed timestamps.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from connectors.flink_runtime import (PACKAGED_CODE_FOLDER, PACKAGED_ENTRY_POINT, PACKAGED_REQUIREMENTS,
                                      PACKAGED_WHEELHOUSE)

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("flink_jobs", "udfs", "detectors", "connectors", "sql")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}
# The benchmarks' measured figures (JSON files and their notes), not code the job runs.
EXCLUDED_FOLDERS = ("flink_jobs/bench/",)
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
#: Pins in pom-free-requirements.txt that the package leaves out, and why.
NOT_PACKAGED = {
    "apache-flink": "the service provides PyFlink",
    "localstack-client": "for the local endpoint only; the job does not import it",
}
FIXED_TIME = (2020, 1, 1, 0, 0, 0)

ENTRY_POINT = '''"""Managed Flink entry point (property group kinesis.analytics.flink.run.options: python=main.py)."""
import sys
from pathlib import Path

# The job's code is in {code}/, the folder the job ships to its Python workers.
sys.path.insert(0, str(Path(__file__).resolve().parent / "{code}"))

from flink_jobs.main import main  # noqa: E402

code = main(sys.argv[1:])
if code:
    sys.exit(code)
'''.replace("{code}", PACKAGED_CODE_FOLDER)


def python_requirements(requirements_text: str) -> list[str]:
    """Pinned requirement lines, minus comments and what the package leaves out (NOT_PACKAGED)."""
    lines = []
    for raw in requirements_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # The project name, normalised as PEP 503 does (apache_flink, Apache-Flink~=2.2 ...).
        project = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if project is None:     # an option line (-r, --index-url ...) or a typo: not a pin
            raise ValueError(f"requirements line {raw.strip()!r} is not a pinned requirement")
        name = re.sub(r"[-_.]+", "-", project.group(0)).lower()
        if name not in NOT_PACKAGED:
            lines.append(line)
    return lines


def code_files(repo_root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    files = []
    for package in CODE_PACKAGES:
        base = repo_root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            rel = path.relative_to(repo_root)
            if (path.is_file() and not (set(rel.parts) & EXCLUDED_PARTS) and path.suffix not in EXCLUDED_SUFFIXES
                    and not rel.as_posix().startswith(EXCLUDED_FOLDERS)):
                files.append((path, rel.as_posix()))
    return files


def _write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, FIXED_TIME)
    # Wheels and JARs are zip files already: deflating them again costs time and saves nothing.
    info.compress_type = zipfile.ZIP_STORED if name.endswith((".whl", ".jar")) else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build_zip(out: Path, jars: list[Path], requirements_text: str, repo_root: Path = REPO_ROOT,
              wheels: list[Path] = ()) -> list[str]:
    """Write the package; return its entry names."""
    entries: dict[str, bytes] = {PACKAGED_ENTRY_POINT: ENTRY_POINT.encode()}
    for path, name in code_files(repo_root):
        entries[f"{PACKAGED_CODE_FOLDER}/{name}"] = path.read_bytes()
    for jar in jars:
        entries[f"lib/{jar.name}"] = jar.read_bytes()
    for wheel in wheels:
        entries[f"{PACKAGED_WHEELHOUSE}/{wheel.name}"] = wheel.read_bytes()
    entries[PACKAGED_REQUIREMENTS] = ("\n".join(python_requirements(requirements_text)) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name in sorted(entries):
            _write(zf, name, entries[name])
    tmp.replace(out)
    return sorted(entries)


def build_lambda_zips(out_dir: Path, lambda_root: Path = REPO_ROOT / "deploy" / "lambda") -> list[Path]:
    """One zip per tool: its handler.py plus shared/action_group.py at the zip root."""
    shared = (lambda_root / "shared" / "action_group.py").read_bytes()
    built = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for handler in sorted(lambda_root.glob("*/handler.py")):
        tool = handler.parent.name
        target = out_dir / f"{tool}.zip"
        with zipfile.ZipFile(target, "w") as zf:
            _write(zf, "action_group.py", shared)
            _write(zf, "handler.py", handler.read_bytes())
        built.append(target)
    return built
