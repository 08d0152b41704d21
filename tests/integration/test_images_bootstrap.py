"""nbc bootstrap: a real Debian minbase image from Debian's mirror with mmdebstrap (a minute or more)."""
from __future__ import annotations

import os
import shutil

import pytest

from nbcontainer.errors import InvalidArgument, NbContainerError
from nbcontainer.events import Message
from nbcontainer.images.bootstrap import host_mirror

from helpers.stores import make_image_service as make_service  # noqa: E402



def test_host_mirror_reads_deb822_and_list_files(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n")
    assert host_mirror(str(etc)) == "http://mirror.example/debian"
    (etc / "sources.list").write_text("# x\ndeb [arch=amd64] https://other.example/debian bookworm main\n")
    assert host_mirror(str(etc)) == "https://other.example/debian"
    assert host_mirror(str(tmp_path / "none")) == "http://deb.debian.org/debian"


def test_bootstrap_refuses_bad_arguments(tmp_path):
    svc = make_service(tmp_path)
    with pytest.raises(InvalidArgument, match="Bookworm"):
        svc.bootstrap("Bookworm")
    with pytest.raises(InvalidArgument, match="tiny"):
        svc.bootstrap("bookworm", variant="tiny")
    with pytest.raises(InvalidArgument, match="bad;pkg"):
        svc.bootstrap("bookworm", include=["bad;pkg"])


def test_bootstrap_missing_mmdebstrap_says_how_to_install(tmp_path, monkeypatch):
    svc = make_service(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NbContainerError, match="apt-get install mmdebstrap"):
        svc.bootstrap("bookworm")


@pytest.mark.slow
def test_bootstrap_bookworm_minbase(tmp_path, monkeypatch):
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed: apt-get install mmdebstrap")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    svc = make_service(tmp_path)
    messages = []
    image_id = svc.bootstrap("bookworm", progress=messages.append)
    assert any(isinstance(m, Message) and m.operation == "bootstrap" for m in messages)
    assert svc.resolve("debian:bookworm") == image_id
    assert svc.inspect("docker.io/library/debian:bookworm")["RepoTags"] == ["debian:bookworm"]
    cfg = svc.config(image_id)
    assert cfg["config"]["Cmd"] == ["bash"] and cfg["created"] == "2023-11-14T22:13:20Z"
    assert "mmdebstrap --variant=minbase" in cfg["history"][0]["created_by"]
    fs = svc.snapshots.upper_dir(svc.chain_id(image_id))
    assert (fs / "etc/debian_version").read_text().startswith("12")
    assert os.access(fs / "usr/bin/bash", os.X_OK)
    assert not (fs / "bin/busybox").exists()
    assert svc.inspect(image_id)["Size"] > 50 * 1024 * 1024
    assert not os.listdir(svc.paths.tmp)
