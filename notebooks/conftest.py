"""pytest settings for running the tutorial notebooks under nbval.

``pytest --nbval-lax notebooks/`` (what test.sh runs) compares the outputs of the cells tagged
``nbval-check-output``; the sanitize rules in ``sanitize.cfg`` (ports, digests, ids, temporary
paths, durations, sizes) apply unless ``--nbval-sanitize-with`` names another file.
"""
from __future__ import annotations

from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "sanitize.cfg"


def pytest_configure(config) -> None:
    option = config.option
    if hasattr(option, "nbval_sanitize_with") and not option.nbval_sanitize_with:
        option.nbval_sanitize_with = str(SANITIZE)
