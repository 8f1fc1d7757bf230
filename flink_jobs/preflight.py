"""Check the two things this project needs from the machine: Python 3.11 and a JDK 17.

Runs with the system interpreter before any virtualenv exists, so it uses only
the standard library. Exits non-zero with a message that names what is missing
and how to get it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

REQUIRED_PYTHON = (3, 11)
REQUIRED_JAVA_MAJOR = 17


def _java_binary() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.path.exists(os.path.join(java_home, "bin", "java")):
        return os.path.join(java_home, "bin", "java")
    return shutil.which("java")


def java_major_version(java: str) -> int | None:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8".
    return int(match.group(2)) if major == 1 and match.group(2) else major


def problems() -> list[str]:
    found = []
    if sys.version_info[:2] != REQUIRED_PYTHON:
        found.append(
            f"Python {REQUIRED_PYTHON[0]}.{REQUIRED_PYTHON[1]} is required (PyFlink 2.2 and the "
            f"pinned dependencies are tested on it); this is {sys.version.split()[0]}. "
            "Install it (e.g. `apt-get install python3.11` or pyenv) and run with PYTHON=python3.11."
        )
    java = _java_binary()
    if java is None:
        found.append(
            "A Java 17 runtime is required by the Flink mini-cluster and none was found on PATH "
            "or in JAVA_HOME. Install it, e.g. `apt-get install openjdk-17-jdk-headless`."
        )
    else:
        major = java_major_version(java)
        if major != REQUIRED_JAVA_MAJOR:
            found.append(
                f"Java {REQUIRED_JAVA_MAJOR} is required by Flink 2.2; `{java} -version` reports "
                f"{major if major is not None else 'an unreadable version'}. Install OpenJDK 17 "
                "(`apt-get install openjdk-17-jdk-headless`) and set JAVA_HOME to it."
            )
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(f"preflight: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
