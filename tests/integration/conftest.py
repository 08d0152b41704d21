"""Integration tests use real namespaces, overlayfs and cgroups: they need root."""
from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root (namespaces, overlayfs, cgroups); run as root")
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(skip)
