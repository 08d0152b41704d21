"""`nbc bootstrap busybox`: a runnable BusyBox image made offline, reproducibly."""
from __future__ import annotations

import os
import time

import pytest

from nbcontainer.errors import InvalidArgument

from helpers.stores import make_image_service as make_service  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/bin/busybox"),
                                reason="busybox-static is not installed: apt-get install busybox-static")



def test_bootstrap_busybox_makes_a_tagged_image_with_applets(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    svc = make_service(tmp_path / "a")
    image_id = svc.bootstrap("busybox", tag="demo/bb:1")
    info = svc.inspect("demo/bb:1")
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["demo/bb:1"]
    assert info["Config"]["Cmd"] == ["sh"]
    upper = svc.snapshots.upper_dir(svc.chain_id(image_id))
    assert (upper / "bin" / "busybox").is_file()
    assert os.readlink(upper / "bin" / "sh") == "busybox"
    assert oct((upper / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert "app:x:1000:1000" in (upper / "etc" / "passwd").read_text()
    # same host binary and SOURCE_DATE_EPOCH -> the same image id in another store
    assert make_service(tmp_path / "b").bootstrap("busybox") == image_id


def test_bootstrap_busybox_twice_gives_one_image_without_source_date_epoch(tmp_path, monkeypatch):
    """The creation time is the binary's own: no <none> image left behind by a second bootstrap."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    svc = make_service(tmp_path / "a")
    first = svc.bootstrap("busybox", tag="bb:1")
    assert svc.bootstrap("busybox", tag="bb:1") == first
    assert [i["Id"] for i in svc.list(all=True)] == [first]
    day = time.strftime("%Y-%m-%d", time.gmtime(os.stat("/bin/busybox").st_mtime))
    assert svc.inspect(first)["Created"].startswith(day)


def test_bootstrap_busybox_refuses_debian_options(tmp_path):
    svc = make_service(tmp_path)
    with pytest.raises(InvalidArgument, match="busybox"):
        svc.bootstrap("busybox", include=["curl"])
    assert svc.db.list_images() == []
