"""``python -m nbcontainer`` runs the ``nbc`` command line."""
from __future__ import annotations

from .cli.main import run_program

if __name__ == "__main__":
    run_program()
