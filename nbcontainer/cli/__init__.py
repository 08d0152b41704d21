"""The ``nbc`` command line (docker's verbs, flags and exit codes); see main.py."""
from __future__ import annotations

__all__ = ["main"]


def main(argv=None) -> int:  # noqa: ANN001 - thin re-export that keeps `import nbcontainer.cli` light
    """Run ``nbc`` with ``argv``; returns the exit status."""
    from .main import main as _main
    return _main(argv)
