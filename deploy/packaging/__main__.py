"""python -m deploy.packaging build|lambdas ...

build    the Managed Flink package: python code + lib/ JARs + requirements.txt + wheelhouse/.
         JARs come from pom-free-requirements.txt '# jar:' lines; they are taken
         from --jar-cache and downloaded from Maven Central only with --fetch-jars.
         The wheels (the job's Python dependencies, for the service's Python workers)
         are downloaded from PyPI by pip, for --python-version and --max-glibc.
lambdas  one zip per action-group Lambda (deploy/lambda/<tool>) for the cloud-only stack.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from deploy.packaging.flink_zip import REPO_ROOT, build_lambda_zips, build_zip, python_requirements
from deploy.packaging.jars import MAVEN_CENTRAL, JarError, parse_jar_lines, resolve
from deploy.packaging.wheels import (DEFAULT_MAX_GLIBC, DEFAULT_PYTHON_VERSION, WheelError, download_wheels,
                                     installed_versions)


def _glibc(text: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MAJOR.MINOR, e.g. 2.28, got {text!r}") from None
    return major, minor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.packaging", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the Managed Flink zip")
    build.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "adops-flink.zip")
    build.add_argument("--requirements", type=Path, default=REPO_ROOT / "pom-free-requirements.txt")
    build.add_argument("--jar-cache", type=Path, default=REPO_ROOT / "build" / "jars")
    build.add_argument("--fetch-jars", action="store_true", help="download JARs missing from the cache")
    build.add_argument("--maven-repo", default=MAVEN_CENTRAL)
    build.add_argument("--skip-jars", action="store_true",
                       help="package without JARs (layout checks only; the result cannot run on Managed Flink)")
    build.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION,
                       help="the service runtime's CPython version the wheels are for (default %(default)s)")
    build.add_argument("--max-glibc", type=_glibc, default=".".join(map(str, DEFAULT_MAX_GLIBC)), metavar="MAJOR.MINOR",
                       help="newest manylinux glibc the service's hosts have (default %(default)s)")
    build.add_argument("--skip-wheels", action="store_true",
                       help="package without wheelhouse/ (layout checks only; the job's Python workers "
                            "on Managed Flink would lack river, scipy and boto3)")
    lambdas = sub.add_parser("lambdas", help="build the action-group Lambda zips")
    lambdas.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "lambda")
    args = parser.parse_args(argv)

    if args.command == "lambdas":
        for path in build_lambda_zips(args.out):
            print(path)
        return 0

    try:
        text = args.requirements.read_text()
        specs = parse_jar_lines(text)
        if not specs and not args.skip_jars:
            raise JarError(f"{args.requirements} declares no '# jar:' lines; the Kinesis connector is required")
        jars = [] if args.skip_jars else resolve(specs, args.jar_cache, args.fetch_jars, args.maven_repo,
                                                 log=lambda m: print(m, file=sys.stderr))
        with tempfile.TemporaryDirectory(prefix="adops-wheels-") as wheel_dir:
            # A fresh folder per build, so wheels of older pins never reach the package.
            wheels = [] if args.skip_wheels else download_wheels(
                python_requirements(text), Path(wheel_dir), python_version=args.python_version,
                max_glibc=args.max_glibc, constraints=installed_versions())
            entries = build_zip(args.out, [path for _, path, _ in jars], text, wheels=wheels)
    except (JarError, WheelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(entries)} entries)")
    for spec, path, digest in jars:
        print(f"  lib/{path.name}  sha256={digest}")
    for wheel in wheels:
        print(f"  wheelhouse/{wheel.name}")
    if args.skip_jars:
        print("  WARNING: built without connector JARs (--skip-jars)", file=sys.stderr)
    if args.skip_wheels:
        print("  WARNING: built without the Python dependencies' wheels (--skip-wheels)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
