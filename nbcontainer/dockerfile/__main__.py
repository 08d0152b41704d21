"""``python -m nbcontainer.dockerfile --dump FILE``: print BuildKit's AST dump of FILE.

Exit status 1 with one line on stderr naming the file and line on a parse error.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from nbcontainer.errors import NbContainerError

from .dump import dump
from .parser import parse


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m nbcontainer.dockerfile",
                                 description="Parse a Dockerfile and print BuildKit's AST dump.")
    ap.add_argument("--dump", metavar="FILE", required=True, help="the Dockerfile to parse ('-' for stdin)")
    args = ap.parse_args(argv)
    try:
        if args.dump == "-":
            data = sys.stdin.buffer.read()
            name = "<stdin>"
        else:
            with open(args.dump, "rb") as f:
                data = f.read()
            name = args.dump
    except OSError as e:
        print(f"error: {args.dump}: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        result = parse(data, filename=name)
    except NbContainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = dump(result.ast)
    sys.stdout.buffer.write(out.encode("utf-8", "surrogateescape"))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
