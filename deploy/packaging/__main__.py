"""python -m deploy.packaging build|lambdas ...

build    the Managed Flink package: python code + lib/ JARs + requirements.txt.
         JARs come from pom-free-requirements.txt '# jar:' lines; they are taken
         from --jar-cache and downloaded from Maven Central only with --fetch-jars.
lambdas  one zip per action-group Lambda (deploy/lambda/<tool>) for the cloud-only stack.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.packaging.flink_zip import REPO_ROOT, build_lambda_zips, build_zip
from deploy.packaging.jars import MAVEN_CENTRAL, JarError, parse_jar_lines, resolve


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
    except (JarError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    entries = build_zip(args.out, [path for _, path, _ in jars], text)
    print(f"wrote {args.out} ({len(entries)} entries)")
    for spec, path, digest in jars:
        print(f"  lib/{path.name}  sha256={digest}")
    if args.skip_jars:
        print("  WARNING: built without connector JARs (--skip-jars)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
