"""Insecure registries, reference -> endpoint mapping, platform choice, search terms and filters."""
from __future__ import annotations

import json

import pytest

from nbcontainer.errors import ImageNotFound, InvalidArgument
from nbcontainer.oci import mediatypes
from nbcontainer.registry import RegistryClient
from nbcontainer.registry.config import RegistryConfig, api_host, config_path, is_loopback, split_host_port
from nbcontainer.registry.platforms import format_platform, parse_platform, select_platform
from nbcontainer.registry.search import parse_filters, split_term

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64
F = "sha256:" + "c" * 64
G = "sha256:" + "d" * 64


@pytest.mark.parametrize("host,expected", [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
    ("[::1]:5000", True), ("::1", True), ("10.0.0.1:5000", False), ("registry.example.com", False),
    ("128.0.0.1", False), ("localhost.example.com", False),
])
def test_loopback(host, expected):
    assert is_loopback(host) is expected


def test_split_host_port():
    assert split_host_port("Reg.Example.com:5000") == ("reg.example.com", 5000)
    assert split_host_port("[::1]:80") == ("::1", 80)
    assert split_host_port("host") == ("host", None)
    with pytest.raises(InvalidArgument):
        split_host_port("host:port")


def test_insecure_list_from_config_file(tmp_path, monkeypatch):
    f = tmp_path / "registries.json"
    f.write_text(json.dumps({"insecure": ["registry.lan:5000", "http://build.internal/"]}))
    monkeypatch.setenv("NBCONTAINER_CONFIG", str(f))
    assert config_path() == f
    cfg = RegistryConfig.load()
    assert cfg.is_insecure("registry.lan:5000")
    assert not cfg.is_insecure("registry.lan:5001")  # a port in the entry pins the port
    assert cfg.is_insecure("build.internal") and cfg.is_insecure("build.internal:8443")
    assert cfg.is_insecure("127.0.0.1:1234")
    assert not cfg.is_insecure("docker.io")


def test_xdg_config_location_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.delenv("NBCONTAINER_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "nbcontainer").mkdir()
    (tmp_path / "nbcontainer" / "registries.json").write_text('{"insecure": ["a.lan"]}')
    assert RegistryConfig.load().insecure == ["a.lan"]
    monkeypatch.setenv("NBCONTAINER_CONFIG", str(tmp_path / "absent.json"))
    assert RegistryConfig.load().insecure == []


@pytest.mark.parametrize("content", ["{bad", '{"insecure": "a.lan"}', '{"insecure": [1]}'])
def test_malformed_config_names_file(tmp_path, content):
    f = tmp_path / "r.json"
    f.write_text(content)
    with pytest.raises(InvalidArgument, match="r.json"):
        RegistryConfig.load(f)


def test_reference_to_endpoint_mapping():
    c = RegistryClient(credentials={}, insecure=[])
    r = c.repository("busybox")
    assert (r.domain, r.path) == ("docker.io", "library/busybox")
    assert api_host(r.domain) == "registry-1.docker.io"
    r = c.repository("localhost:5000/demo/app:1")
    assert (api_host(r.domain), r.path, r.tag) == ("localhost:5000", "demo/app", "1")
    assert api_host("ghcr.io") == "ghcr.io"
    assert c.transport.verify_for("ghcr.io") and not c.transport.verify_for("localhost:5000")
    assert c.transport.base_url("ghcr.io") == "https://ghcr.io"  # secure hosts are never probed
    with pytest.raises(InvalidArgument):
        c.repository("library/Busybox")
    c.close()


def _index():
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": [
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": D, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": E, "size": 10,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": F, "size": 10,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": G, "size": 10, "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": mediatypes.OCI_MANIFEST, "digest": "sha256:" + "e" * 64, "size": 10,
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    ]}


def test_select_platform():
    idx = _index()
    assert select_platform(idx, {"os": "linux", "architecture": "amd64"}).digest == D
    assert select_platform(idx, {"os": "linux", "architecture": "arm"}).digest == F  # v7 preferred
    assert select_platform(idx, parse_platform("linux/arm/v6")).digest == E
    assert select_platform(idx, parse_platform("linux/arm64/v8")).digest == G  # absent variant = v8
    with pytest.raises(ImageNotFound, match="linux/s390x"):
        select_platform(idx, {"os": "linux", "architecture": "s390x"})
    with pytest.raises(ImageNotFound):
        select_platform(idx, {"os": "unknown", "architecture": "unknown"})  # attestations never chosen
    assert RegistryClient.select_platform(idx, {"os": "linux", "architecture": "amd64"}).digest == D


def test_parse_platform():
    assert parse_platform("linux/arm64/v8") == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert parse_platform("amd64") == {"os": "linux", "architecture": "amd64"}
    assert format_platform({"os": "linux", "architecture": "arm", "variant": "v7"}) == "linux/arm/v7"
    for bad in ("", "a/b/c/d", "linux//v7"):
        with pytest.raises(InvalidArgument):
            parse_platform(bad)


def test_search_terms_and_filters():
    assert split_term("busybox") == (None, "busybox")
    assert split_term("library/busybox") == (None, "library/busybox")
    assert split_term("docker.io/busybox") == (None, "busybox")
    assert split_term("localhost:5000/demo") == ("localhost:5000", "demo")
    assert split_term("reg.example.com/x") == ("reg.example.com", "x")
    assert parse_filters(["is-official=true", "stars=3"]) == {"is-official": True, "stars": 3}
    assert parse_filters({"is-automated": "false"}) == {"is-automated": False}
    assert parse_filters(None) == {}
    for bad in (["nope=1"], ["stars=many"], ["is-official=maybe"], ["stars"]):
        with pytest.raises(InvalidArgument):
            parse_filters(bad)
    with pytest.raises(InvalidArgument):
        split_term("  ")


def test_search_limit_range():
    c = RegistryClient(credentials={}, insecure=[])
    for bad in (0, 101):
        with pytest.raises(InvalidArgument, match="range"):
            c.search("busybox", limit=bad)
    c.close()


def test_registry_imports_only_allowed_layers():
    """DESIGN.md: registry/ may import only oci/, errors and events (and its own modules)."""
    import ast
    from pathlib import Path

    import nbcontainer.registry as pkg

    allowed = {"oci", "errors", "events", ""}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                top = (node.module or "").split(".")[0]
                names = {a.name for a in node.names}
                assert top in allowed and (top or names <= {"__version__"}), f"{path.name} imports ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("nbcontainer"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert not a.name.startswith(("nbcontainer", "IPython", "ipywidgets")), path.name
