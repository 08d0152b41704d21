"""Integration tests use real namespaces, overlayfs and cgroups: they need root."""
from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    # The runtime's fork mode (how `nbc` starts supervisors) refuses a multi-threaded caller, and
    # other tests leave library threads behind in this process (IPython, HTTP test servers,
    # thread pools): run the fork-mode runtime tests first, while the process has one thread.
    fork_first = [i for i in items if "[fork" in i.nodeid and "tests/integration/" in i.nodeid]
    if fork_first:
        rest = [i for i in items if i not in fork_first]
        items[:] = fork_first + rest
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root (namespaces, overlayfs, cgroups); run as root")
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def registry():
    """A local docker-registry on 127.0.0.1 for one test module; stopped and removed afterwards."""
    from helpers.registry import Registry
    reg = Registry()
    yield reg
    reg.stop()
    assert reg.proc.returncode is not None and not reg.dir.exists()
