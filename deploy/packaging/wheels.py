"""The job's Python dependencies as wheels, for the Managed Flink package's ``wheelhouse/``.

Managed Flink provides PyFlink and what PyFlink needs; the job also needs river, scipy and
boto3 in its Python workers. The job sets ``python.requirements`` to
"requirements.txt#wheelhouse" when it runs from the package
(``connectors.flink_runtime.packaged_python_dependencies``): Flink then installs them with
``pip install --no-index --find-links wheelhouse`` on each TaskManager, so the application
needs no access to PyPI. Flink installs with ``--ignore-installed``, so the wheelhouse holds
the whole dependency closure (numpy and pandas too), which ``pip download`` resolves.

The wheels are for the service's interpreter, not this machine's: CPython ``python_version``
on x86_64 Linux, any manylinux tag up to glibc ``max_glibc`` (river 0.23 and pyarrow 16 publish
manylinux_2_28 wheels only, so the service's glibc must be 2.28 or newer). Neither the
service's Python version nor its glibc could be checked here; both are options of the build.
"""
from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_PYTHON_VERSION = "3.11"
DEFAULT_MAX_GLIBC = (2, 28)


class WheelError(RuntimeError):
    pass


def manylinux_platforms(max_glibc: tuple[int, int] = DEFAULT_MAX_GLIBC, arch: str = "x86_64") -> list[str]:
    """Every manylinux platform tag a wheel may carry to run on glibc ``max_glibc``.

    ``pip download --platform`` takes tags literally (it does not widen manylinux_2_28 to the
    older tags it implies), so all of them are listed.

    >>> manylinux_platforms((2, 17))[-4:]
    ['manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64']
    """
    major, newest = max_glibc
    tags = [f"manylinux_{major}_{minor}_{arch}" for minor in range(5, newest + 1)]
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    return tags + [f"{name}_{arch}" for glibc, name in legacy.items() if glibc <= max_glibc]


def installed_versions() -> list[str]:
    """``name==version`` for every distribution in this environment (the versions the tests ran with).

    Used as pip constraints: the workers install with ``--ignore-installed``, so their pandas,
    numpy and pyarrow come from the wheelhouse and shadow PyFlink's own; pinning them to what
    PyFlink was tested with here keeps them inside PyFlink's ranges (pandas < 2.3, for one,
    which an unconstrained resolve exceeds).
    """
    pins, editable = {}, set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if json.loads(dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
            editable.add(name)                   # this repository itself, installed with -e
        elif name:     # the first found is the one Python imports
            pins.setdefault(name, f"{dist.metadata['Name']}=={dist.version}")
    return sorted(pin for name, pin in pins.items() if name not in editable)


def download_wheels(requirements: list[str], dest: Path, *, python_version: str = DEFAULT_PYTHON_VERSION,
                    max_glibc: tuple[int, int] = DEFAULT_MAX_GLIBC,
                    constraints: list[str] = ()) -> list[Path]:
    """Download wheels for ``requirements`` and everything they need into ``dest``; return them.

    Binary wheels only: the service cannot build an sdist without a compiler. ``constraints``
    pin the versions of whatever the resolve pulls in. pip's cache makes a repeated build (or
    one after ``make venv``) read little from the network.
    """
    dest.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python_version.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="adops-pip-") as work:
        req_file, constraint_file = Path(work) / "requirements.txt", Path(work) / "constraints.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        constraint_file.write_text("\n".join(constraints) + "\n")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
               "--abi", abi, "--dest", str(dest), "-r", str(req_file), "-c", str(constraint_file)]
        for platform in manylinux_platforms(max_glibc):
            cmd += ["--platform", platform]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()[-5:]
        raise WheelError(f"pip could not download wheels for CPython {python_version} on "
                         f"manylinux (glibc <= {max_glibc[0]}.{max_glibc[1]}): " + " | ".join(errors))
    return sorted(dest.glob("*.whl"))
