"""Store maintenance: ``nbc system check [--repair]`` (consistency check and crash repair).

A service-level package (DESIGN.md section 1): it reads and fixes the stores (content,
metadata, snapshots) and uses the images service's records, gc and unpack; front ends call
:func:`check_store`.
"""
from __future__ import annotations

from .check import CheckReport, Problem, StoreChecker
from .repair import StoreRepairer, check_store

__all__ = ["CheckReport", "Problem", "StoreChecker", "StoreRepairer", "check_store"]
