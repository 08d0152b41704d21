"""Fixtures shared by every test directory.

- ``store_env``: a private NBCONTAINER_ROOT / NBCONTAINER_RUNROOT for one test.
- ``busybox_tar``: a BusyBox root fs tar built offline from Debian's busybox-static.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers importable as `helpers`

from helpers.busybox import busybox_available, write_busybox_rootfs_tar  # noqa: E402


def pytest_report_header(config):
    return [f"running as uid {os.geteuid()}; busybox-static: {busybox_available()}"]


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """Point NBCONTAINER_ROOT and NBCONTAINER_RUNROOT at fresh directories for this test."""
    root = tmp_path / "root"
    runroot = tmp_path / "run"
    monkeypatch.setenv("NBCONTAINER_ROOT", str(root))
    monkeypatch.setenv("NBCONTAINER_RUNROOT", str(runroot))
    return root, runroot


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    if not busybox_available():
        pytest.skip("busybox-static is not installed: apt-get install busybox-static")
    return write_busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar")
