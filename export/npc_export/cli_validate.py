"""`npcrt validate DIR [--json]`: check a package against its profile and manifest.

Exit codes: 0 valid; 1 the package's files disagree with its manifest (hash, missing file, graph); 2 the
manifest itself is malformed or absent-in-part (not JSON, a field missing or of the wrong type, an unsafe file
name, a required file not listed). Always one line per error, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="model package directory")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from .checks import validate_package

    report = validate_package(args.dir)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        m = report.manifest or {}
        status = "valid" if report.ok else f"INVALID ({len(report.errors)} problem(s))"
        print(f"{args.dir}: {status} [{m.get('kind', '?')} {m.get('target', '?')}/{m.get('precision', '?')}, "
              f"{len(report.checked_files)} files hashed]")
    if report.ok:
        return 0
    return EXIT_MALFORMED_MANIFEST if report.manifest_problem else EXIT_INVALID


EXIT_INVALID = 1
EXIT_MALFORMED_MANIFEST = 2
