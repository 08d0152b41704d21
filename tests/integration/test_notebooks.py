"""Execute every notebooks/*.ipynb with nbclient and fail on any error.

nbval (``pytest --nbval-lax notebooks/``) compares outputs but cannot see a ``UsageError``
(IPython prints it without an error message); nbclient reads each cell's execute_reply, so
this catches every failure.  Cells tagged ``raises-exception`` may raise (nbclient's rule).
The kernel gets private NBCONTAINER_ROOT / NBCONTAINER_RUNROOT directories.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (pip install nbcontainer[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (pip install nbclient)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: notebooks need a kernel")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.busybox import busybox_available  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _kernel_env(root: Path, runroot: str) -> dict:
    env = dict(os.environ)
    env.update(NBCONTAINER_ROOT=str(root), NBCONTAINER_RUNROOT=runroot, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p))
    return env


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_without_errors(path, tmp_path):
    if not busybox_available():
        pytest.skip("busybox-static is not installed: the notebooks bootstrap their base image from it")
    nb = nbformat.read(str(path), as_version=4)
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")  # short: socket paths have a length limit
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute(env=_kernel_env(tmp_path / "root", runroot))
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell failed:\n{e}")
    finally:
        _cleanup(tmp_path / "root", runroot)
    errors = [c for c in nb.cells if c.cell_type == "code" and "raises-exception" not in c.metadata.get("tags", [])
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    # a UsageError is printed on stderr without an error output: look for it too
    usage = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("name") == "stderr" and "UsageError" in o.get("text", "")]
    assert usage == []


def _cleanup(root: Path, runroot: str) -> None:
    """Remove what a notebook left behind (containers first: their mounts live under root)."""
    if root.exists():
        try:
            from nbcontainer.client import NbClient
            with NbClient(root=root, runroot=runroot) as client:
                for c in client.containers.list(all=True):
                    c.remove(force=True)
        except Exception:
            pass
    shutil.rmtree(runroot, ignore_errors=True)


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/*.ipynb missing"
