"""DESIGN.md section 1's layer rules, checked on the source (AST) and in a fresh interpreter."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

PKG = Path(__file__).resolve().parents[2] / "nbcontainer"

FRONT_ENDS = {"cli", "ipython", "widgets", "_args"}
API = {"client", "models"}
SERVICES = {"build", "images", "containers"}
STORES = {"dockerfile", "content", "snapshots", "metadata", "registry", "runtime"}
DATA_AND_BASE = {"oci", "errors", "events", "paths", "_linux"}
GUI_PACKAGES = {"IPython", "ipywidgets", "traitlets", "ipykernel"}
# the package itself (lazy hooks such as load_ipython_extension) and `python -m nbcontainer`
ENTRY_POINTS = {"", "__main__"}


def _modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module: str, path: Path) -> Set[str]:
    """Absolute names of every module imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            out.add(target)
            if not node.module or node.level:  # "from . import x" may name submodules
                out.update(f"{target}.{a.name}" for a in node.names)
    return out


def _area(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "nbcontainer" else ""


def _graph() -> Dict[str, Tuple[str, Set[str]]]:
    return {m: (_area(m), {_area(i) for i in _imports(m, p) if i.startswith("nbcontainer.")} | {
        i.split(".")[0] for i in _imports(m, p) if not i.startswith("nbcontainer")}) for m, p in _modules()}


def _violations(rule) -> list:
    bad = []
    for module, (area, imported) in _graph().items():
        for target in imported:
            if target != area and rule(area, target):
                bad.append(f"{module} imports {target}")
    return sorted(bad)


def test_the_import_scanner_sees_relative_imports():
    imports = _imports("nbcontainer.cli.main", PKG / "cli" / "main.py")
    assert "nbcontainer._args" in imports and "nbcontainer.errors" in imports


def test_nothing_below_the_front_ends_imports_ipython_widgets_or_front_ends():
    def rule(area: str, target: str) -> bool:
        if area in ENTRY_POINTS:
            return target in GUI_PACKAGES
        return area not in FRONT_ENDS and (target in GUI_PACKAGES or target in FRONT_ENDS)
    assert _violations(rule) == []


def test_services_and_below_do_not_import_the_api_layer():
    assert _violations(lambda a, t: a in SERVICES | STORES | DATA_AND_BASE and t in API) == []


def test_stores_and_drivers_do_not_import_services():
    assert _violations(lambda a, t: a in STORES | DATA_AND_BASE and t in SERVICES) == []


def test_runtime_knows_nothing_of_images_or_the_store():
    forbidden = {"images", "registry", "content", "snapshots", "metadata", "containers", "build", "dockerfile"}
    assert _violations(lambda a, t: a == "runtime" and t in forbidden) == []


def test_data_and_base_do_not_import_upwards():
    upper = FRONT_ENDS | API | SERVICES | STORES
    assert _violations(lambda a, t: a in DATA_AND_BASE and t in upper) == []


def test_stores_are_siblings():
    assert _violations(lambda a, t: a in STORES and t in STORES) == []


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(PKG.parent),
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_nbcontainer_loads_no_ipython_and_no_services():
    mods = _fresh("import json, sys, nbcontainer; nbcontainer.from_env; "
                  "print(json.dumps(sorted(sys.modules)))")
    assert not GUI_PACKAGES & {m.split(".")[0] for m in mods}
    # opening the package stays cheap: no service, store or runtime module yet
    heavy = [m for m in mods if _area(m) in SERVICES | STORES]
    assert heavy == []


def test_library_and_cli_load_no_ipython():
    code = ("import json, sys, nbcontainer\n"
            "import nbcontainer.client, nbcontainer.models.images, nbcontainer.models.containers\n"
            "import nbcontainer.models.volumes, nbcontainer.cli.main, nbcontainer._args\n"
            "for name in ('images', 'containers', 'runtime', 'content', 'snapshots', 'metadata'):\n"
            "    try:\n"
            "        __import__('nbcontainer.' + name)\n"
            "    except ImportError:\n"
            "        pass\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    mods = _fresh(code)
    assert "nbcontainer.cli.main" in mods
    assert not GUI_PACKAGES & {m.split(".")[0] for m in mods}


def test_cli_version_is_fast_and_light():
    out = subprocess.run([sys.executable, "-m", "nbcontainer", "--version"], capture_output=True, text=True,
                         cwd=str(PKG.parent), timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("nbc version ")


if not PKG.is_dir():  # pragma: no cover - the tests live beside the package
    pytest.skip("nbcontainer source tree not found next to tests/", allow_module_level=True)
