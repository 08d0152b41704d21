"""Interop with real tools: skopeo puts an nbc-saved image into a registry and nbc pulls and runs it;
nbc pushes and skopeo inspects/copies the result to an OCI layout that umoci unpacks."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nbcontainer.cli.main import main
from nbcontainer.client import NbClient

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")


@pytest.fixture
def work(monkeypatch):
    base = Path(tempfile.mkdtemp(prefix="nbc-io-", dir="/tmp"))
    monkeypatch.setenv("DOCKER_CONFIG", str(base / "docker"))
    clients = []

    def client(name: str) -> NbClient:
        c = NbClient(root=base / name, runroot=base / f"r{name}")
        clients.append(c)
        return c

    client.base = base  # type: ignore[attr-defined]
    yield client
    for c in clients:
        c.close()
    shutil.rmtree(base, ignore_errors=True)


def nbc(client: NbClient, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--root", str(client.paths.root), "--runroot", str(client.paths.runroot), *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run(*argv: str) -> str:
    proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {proc.stderr[-2000:]}"
    return proc.stdout


def needs(tool: str | None, name: str) -> None:
    if tool is None:
        pytest.skip(f"{name} is not installed: apt-get install {name}")


def test_skopeo_copy_then_nbc_pull_and_run(registry, work, busybox_tar):
    needs(SKOPEO, "skopeo")
    a = work("a")
    a.image_service.bootstrap("busybox", tag="skopeo-src:1")
    archive = work.base / "bb.tar"
    code, _, err = nbc(a, "save", "-o", str(archive), "skopeo-src:1")
    assert code == 0, err
    dest = f"{registry.host}/skopeo/busybox:copied"
    run(SKOPEO, "--insecure-policy", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{dest}")
    b = work("b")
    code, out, err = nbc(b, "pull", dest)
    assert code == 0 and out.splitlines()[-1] == dest, err
    # skopeo re-compresses layers, but the config is carried as is: same image id
    assert b.image_service.resolve(dest) == a.image_service.resolve("skopeo-src:1")
    code, out, err = nbc(b, "run", "--rm", dest, "sh", "-c", "echo from-skopeo $((6*7))")
    assert (code, out) == (0, "from-skopeo 42\n"), err


def test_nbc_push_then_skopeo_inspect_copy_and_umoci_unpack(registry, work, busybox_tar):
    needs(SKOPEO, "skopeo")
    needs(UMOCI, "umoci")
    a = work("a")
    ref = f"{registry.host}/nbc/busybox:pushed"
    a.image_service.bootstrap("busybox", tag=ref)
    code, out, err = nbc(a, "push", ref)
    assert code == 0, err
    digest = out.splitlines()[-1].split()[2]
    info = json.loads(run(SKOPEO, "inspect", "--tls-verify=false", f"docker://{ref}"))
    assert info["Digest"] == digest and info["Architecture"] and len(info["Layers"]) == 1
    raw = run(SKOPEO, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.encode() == a.content.read(digest)  # the registry holds our manifest byte for byte
    layout = work.base / "oci"
    run(SKOPEO, "--insecure-policy", "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{layout}:pushed")
    bundle = work.base / "bundle"
    run(UMOCI, "unpack", "--image", f"{layout}:pushed", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    assert (bundle / "config.json").is_file()
