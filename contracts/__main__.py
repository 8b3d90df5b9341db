"""``python -m contracts``: tools for the participant contracts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._schemas import SCHEMA_DIR, outdated_schemas, write_schemas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts")
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser("schemas", help="export the JSON Schemas of the contract models")
    schemas.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="where to write them")
    schemas.add_argument(
        "--check", action="store_true", help="only report outdated files; exit 1 if any"
    )
    args = parser.parse_args(argv)

    if args.check:
        outdated = outdated_schemas(args.dir)
        for name in outdated:
            print(f"outdated: {args.dir / name}", file=sys.stderr)
        return 1 if outdated else 0
    for name in write_schemas(args.dir):
        print(f"wrote {args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
