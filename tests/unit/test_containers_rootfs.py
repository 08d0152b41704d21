"""Unit tests: reading overlay layers without mounting, and -u resolution."""
from __future__ import annotations

import os

import pytest

from nbcontainer.containers.rootfs import LayeredRoot, copy_tree, resolve_user
from nbcontainer.errors import InvalidArgument

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:app,other\napp:x:1000:\nwheel:x:10:app\n"


@pytest.fixture
def layers(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text(PASSWD)
    (lower / "etc" / "group").write_text(GROUP)
    (lower / "data").mkdir()
    (lower / "data" / "a").write_text("lower-a")
    (lower / "data" / "gone").write_text("x")
    upper.mkdir()
    return LayeredRoot([upper, lower]), upper, lower


def test_top_layer_wins_and_merges(layers):
    root, upper, lower = layers
    (upper / "data").mkdir()
    (upper / "data" / "b").write_text("upper-b")
    (upper / "data" / "a").write_text("upper-a")
    assert root.read_file("/data/a") == b"upper-a"
    assert root.listdir("/data") == ["a", "b", "gone"]


def test_whiteout_hides_lower(layers):
    root, upper, lower = layers
    if os.geteuid() != 0:
        pytest.skip("creating a whiteout (char device 0/0) needs root")
    (upper / "data").mkdir()
    os.mknod(upper / "data" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    assert root.read_file("/data/gone") is None
    assert "gone" not in root.listdir("/data")


def test_symlinks_stay_inside_root(layers, tmp_path):
    root, upper, lower = layers
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    os.symlink(str(secret), lower / "abs")                       # absolute: re-rooted, not followed out
    os.symlink("../../../../" + str(secret), lower / "rel")      # .. clamps at the root
    os.symlink("/etc/passwd", lower / "ok")
    assert root.read_file("/abs") is None
    assert root.read_file("/rel") is None
    assert root.read_file("/ok") == PASSWD.encode()
    os.symlink("loop2", lower / "loop1")
    os.symlink("loop1", lower / "loop2")
    assert root.read_file("/loop1") is None


def test_etc_symlinked_directory(tmp_path):
    lay = tmp_path / "l"
    (lay / "real").mkdir(parents=True)
    (lay / "real" / "passwd").write_text(PASSWD)
    os.symlink("/real", lay / "etc")
    assert resolve_user(LayeredRoot([lay]), "app").uid == 1000


def test_resolve_user(layers):
    root = layers[0]
    u = resolve_user(root, "")
    assert (u.uid, u.gid, u.home) == (0, 0, "/root")
    u = resolve_user(root, "app")
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, [50, 10], "/home/app")
    u = resolve_user(root, "app:staff")
    assert (u.uid, u.gid, u.additional_gids) == (1000, 50, [])
    u = resolve_user(root, "1000")
    assert (u.uid, u.gid, u.home) == (1000, 1000, "/home/app")
    u = resolve_user(root, "4242:7")
    assert (u.uid, u.gid, u.home) == (4242, 7, "/")
    u = resolve_user(root, "app", group_add=["wheel", "99"])
    assert u.additional_gids == [50, 10, 99]
    with pytest.raises(InvalidArgument, match="unable to find user nosuch: no matching entries in passwd file"):
        resolve_user(root, "nosuch")
    with pytest.raises(InvalidArgument, match="unable to find group nogroup"):
        resolve_user(root, "app:nogroup")


def test_no_passwd_file(tmp_path):
    root = LayeredRoot([tmp_path])
    assert resolve_user(root, "123:45").uid == 123
    with pytest.raises(InvalidArgument):
        resolve_user(root, "app")


def test_copy_tree(layers, tmp_path):
    root, upper, lower = layers
    (lower / "data" / "sub").mkdir()
    (lower / "data" / "sub" / "f").write_text("deep")
    os.symlink("a", lower / "data" / "link")
    os.chmod(lower / "data" / "a", 0o640)
    dest = tmp_path / "vol"
    dest.mkdir()
    n = copy_tree(root, "/data", dest)
    assert n == 5
    assert (dest / "a").read_text() == "lower-a" and oct((dest / "a").stat().st_mode & 0o777) == "0o640"
    assert (dest / "sub" / "f").read_text() == "deep"
    assert os.readlink(dest / "link") == "a"


def test_special_files_are_not_read(layers):
    root, upper, lower = layers
    os.mkfifo(lower / "fifo")  # a FIFO must not block the reader
    assert root.read_file("/fifo") is None
    os.symlink("/etc", upper / "etc2")
    assert root.read_file("/etc2/passwd") == PASSWD.encode()  # in-root link: fine
    assert root.open_host("/somewhere/else") is None
