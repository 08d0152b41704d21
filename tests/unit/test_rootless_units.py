"""Rootless mode without namespaces: store defaults, subordinate ids, mapping, limit refusal."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbcontainer import paths
from nbcontainer.cli.commands_unshare import unshare_command
from nbcontainer.errors import InvalidArgument, NotSupported
from nbcontainer._linux import userns as linux_userns
from nbcontainer.runtime import userns


@pytest.fixture
def as_user(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    for k in ("NBCONTAINER_ROOT", "NBCONTAINER_RUNROOT", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")


def test_rootless_defaults_follow_xdg(as_user, monkeypatch):
    p = paths.StorePaths.from_env()
    assert (str(p.root), str(p.runroot)) == ("/home/someone/.local/share/nbcontainer", "/tmp/nbcontainer-4242")
    monkeypatch.setenv("XDG_DATA_HOME", "/d")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    p = paths.StorePaths.from_env()
    assert (str(p.root), str(p.runroot)) == ("/d/nbcontainer", "/run/user/4242/nbcontainer")


def test_env_overrides_win(as_user, monkeypatch):
    monkeypatch.setenv("NBCONTAINER_ROOT", "/x")
    monkeypatch.setenv("NBCONTAINER_RUNROOT", "/y")
    p = paths.StorePaths.from_env()
    assert (str(p.root), str(p.runroot)) == ("/x", "/y")


def test_store_owned_by_someone_else_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "store"
    d.mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(d).st_uid + 1)
    with pytest.raises(InvalidArgument, match="not a directory owned by uid") as e:
        paths.StorePaths(d, tmp_path / "run").ensure()
    assert str(d) in str(e.value)
    link = tmp_path / "link"
    link.symlink_to(d)
    if os.getuid() == 0:
        os.lchown(link, 4242, 4242)
    owner = os.lstat(link).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner)
    with pytest.raises(InvalidArgument):  # a symlink planted in /tmp is not our directory
        paths.check_owner(link)


def test_subordinate_ranges_by_name_or_uid(tmp_path):
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\nbob:200000:1000\n4242:300000:10\nalice:500000:5\nbad line\nalice:x:1\n")
    assert userns.subordinate_ranges(str(f), "alice", 1) == [(100000, 65536), (500000, 5)]
    assert userns.subordinate_ranges(str(f), "carol", 4242) == [(300000, 10)]
    assert userns.subordinate_ranges(str(tmp_path / "missing"), "alice", 1) == []


def test_full_mapping_concatenates_ranges(tmp_path, monkeypatch):
    import pwd
    name = pwd.getpwuid(os.getuid()).pw_name
    (tmp_path / "subuid").write_text(f"{name}:100000:65536\n{name}:500000:5\n")
    (tmp_path / "subgid").write_text(f"{name}:100000:65536\n")
    monkeypatch.setattr(linux_userns.shutil, "which", lambda n: "/usr/bin/" + n)
    m = userns.current_mapping(str(tmp_path / "subuid"), str(tmp_path / "subgid"))
    assert m.full and userns.mapping_note(m) == ""
    assert m.uid_map == [(0, os.getuid(), 1), (1, 100000, 65536), (65537, 500000, 5)]
    assert m.gid_map == [(0, os.getgid(), 1), (1, 100000, 65536)]
    assert m.host_uid(1000) == 100999 and m.host_uid(0) == os.getuid() and m.host_uid(70000) is None
    assert m.inside_id(100999) == 1000 and m.inside_id(os.getgid(), gid=True) == 0 and m.inside_id(99) in (None, 0)
    assert userns.Mapping.from_dict(m.to_dict()).uid_map == m.uid_map


def test_single_mapping_says_why(tmp_path, monkeypatch):
    (tmp_path / "subuid").write_text("")
    (tmp_path / "subgid").write_text("")
    monkeypatch.setattr(linux_userns.shutil, "which", lambda n: "/usr/bin/" + n)
    m = userns.current_mapping(str(tmp_path / "subuid"), str(tmp_path / "subgid"))
    assert not m.full and m.uid_map == [(0, os.getuid(), 1)]
    note = userns.mapping_note(m)
    assert "single-id" in note and "usermod --add-subuids" in note and "\n" not in note
    monkeypatch.setattr(linux_userns.shutil, "which", lambda n: None)
    m = userns.current_mapping(str(tmp_path / "subuid"), str(tmp_path / "subgid"))
    assert "uidmap package" in userns.mapping_note(m)


def test_limits_are_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(userns, "delegated_cgroup", lambda: None)
    userns.check_limits(None)
    userns.check_limits({"devices": [{"allow": False, "access": "rwm"}]})  # not a limit
    with pytest.raises(NotSupported) as e:
        userns.check_limits({"memory": {"limit": 1 << 26}, "pids": {"limit": 5}})
    msg = str(e.value)
    assert "--memory" in msg and "--pids-limit" in msg and "delegated cgroup" in msg and "\n" not in msg


def test_delegated_cgroup_detection(tmp_path):
    unified = tmp_path / "unified"
    mine = unified / "user.slice" / "me"
    mine.mkdir(parents=True)
    (mine / "cgroup.procs").write_text("")
    (mine / "cgroup.controllers").write_text("cpu memory pids\n")
    proc = tmp_path / "cgroup"
    proc.write_text("1:name=systemd:/\n0::/user.slice/me\n")
    assert userns.delegated_cgroup(str(unified), str(proc)) == str(mine)
    (mine / "cgroup.controllers").write_text("\n")
    assert userns.delegated_cgroup(str(unified), str(proc)) is None
    proc.write_text("1:name=systemd:/\n")
    assert userns.delegated_cgroup(str(unified), str(proc)) is None


def test_unshare_command_defaults_to_the_shell(monkeypatch):
    monkeypatch.setenv("SHELL", "/bin/zsh")
    assert unshare_command([]) == ["/bin/zsh"]
    assert unshare_command(["--", "id", "-u"]) == ["id", "-u"]
    monkeypatch.delenv("SHELL")
    assert unshare_command([]) == ["/bin/sh"]


def test_overlay_mounts_get_userxattr_rootless(tmp_path, monkeypatch):
    from nbcontainer.metadata.db import MetadataDB
    from nbcontainer.snapshots.store import Snapshotter
    db = MetadataDB(tmp_path / "metadata.db")
    s = Snapshotter(tmp_path / "snapshots", db)
    s.prepare("base", None)
    s.commit("c1", "base")
    s.prepare("top", "c1")
    s.commit("c2", "top")
    s.prepare("ctr", "c2")
    assert "userxattr" not in s.mounts("ctr")[0]["options"] or os.geteuid() != 0
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert "userxattr" in s.mounts("ctr")[0]["options"]


def test_userns_check_in_child(tmp_path):
    assert userns.in_child_userns() is (Path("/proc/self/uid_map").read_text().split()[:3] != ["0", "0", "4294967295"])


def test_low_host_ports_name_the_sysctl():
    from nbcontainer.runtime import usernet
    usernet.check_ports([{"host_port": 8080}], start=1024)
    with pytest.raises(InvalidArgument, match=r"ip_unprivileged_port_start=80\b"):
        usernet.check_ports([{"host_port": 8080}, {"host_port": 80}], start=1024)
    usernet.check_ports([{"host_port": 80}], start=0)


def test_port_bindings_become_forwards():
    from nbcontainer.runtime import usernet
    ports = usernet.bindings_to_ports({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"},
                                                  {"HostIp": "::", "HostPort": "8080"}],
                                       "53/udp": [{"HostIp": "", "HostPort": ""}]})
    assert ports[0]["proto"] == "udp" and ports[0]["host_ip"] == "0.0.0.0" and ports[0]["host_port"] > 0
    assert ports[1] == {"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80}
    assert len(ports) == 2  # the IPv6 host address is not forwarded
    assert usernet.settings_ports(ports[1:]) == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert usernet.network_settings(ports[1:])["IPAddress"] == "10.0.2.100"
    with pytest.raises(InvalidArgument, match="sctp"):
        usernet.bindings_to_ports({"80/sctp": [{"HostPort": "1"}]})


def test_rootless_network_choice(monkeypatch):
    from nbcontainer.containers import service
    monkeypatch.setattr(service.shutil, "which", lambda n: "/usr/bin/" + n)
    hc = {"NetworkMode": "none", "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}
    service._rootless_network(hc, explicit=False)
    assert hc["NetworkMode"] == "bridge"  # the user-mode network is the default
    with pytest.raises(NotSupported, match="user-mode network"):
        service._rootless_network({"NetworkMode": "none", "PortBindings": hc["PortBindings"]}, explicit=True)
    with pytest.raises(NotSupported, match="needs root"):
        service._rootless_network({"NetworkMode": "mynet"}, explicit=True)
    monkeypatch.setattr(service.shutil, "which", lambda n: None)
    hc = {"NetworkMode": "none"}
    service._rootless_network(hc, explicit=False)
    assert hc["NetworkMode"] == "none"  # no slirp4netns: no network rather than a broken one
    with pytest.raises(NotSupported, match="apt-get install slirp4netns"):
        service._rootless_network({"NetworkMode": "bridge"}, explicit=True)


# ------------------------------------------------ /dev/net/tun fallback (usernet), commit pause
def test_tun_override_and_note(monkeypatch, tmp_path, capsys):
    from nbcontainer.runtime import usernet
    monkeypatch.setenv("NBCONTAINER_ROOTLESS_TUN", "0")
    assert usernet.tun_usable() is False
    monkeypatch.setenv("NBCONTAINER_ROOTLESS_TUN", "1")
    assert usernet.tun_usable(str(tmp_path / "missing")) is True
    monkeypatch.delenv("NBCONTAINER_ROOTLESS_TUN")
    assert usernet.tun_usable(str(tmp_path / "missing")) is False
    note = usernet.fallback_note()
    assert "no outbound network" in note and "chmod 0666 /dev/net/tun" in note and "udev" in note
    monkeypatch.setenv("NBCONTAINER_ROOTLESS_TUN", "0")
    monkeypatch.setattr(usernet, "_FALLBACK_NOTED", [])
    usernet.check_ports([{"host_port": 8080}], start=1024)
    usernet.check_ports([{"host_port": 8081}], start=1024)
    assert capsys.readouterr().err.count("/dev/net/tun is not usable") == 1  # once per process


def test_forwarder_relays_both_ways_and_ends_on_exit_fd():
    import socket
    import threading
    from nbcontainer.runtime import usernet
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen(1)

    def serve():
        c, _ = backend.accept()
        data = b""
        while not data.endswith(b"\n"):
            data += c.recv(100)
        c.sendall(data.upper())
        c.close()
    threading.Thread(target=serve, daemon=True).start()
    front = socket.socket()
    front.bind(("127.0.0.1", 0))
    front.listen(4)
    exit_r, exit_w = os.pipe()
    t = threading.Thread(target=usernet._forward, args=([(front, backend.getsockname()[1])], exit_r), daemon=True)
    t.start()
    with socket.create_connection(front.getsockname(), timeout=5) as c:
        c.sendall(b"hello\n")
        got = b""
        while True:
            chunk = c.recv(100)
            if not chunk:
                break
            got += chunk
    assert got == b"HELLO\n"
    os.close(exit_w)
    t.join(5)
    assert not t.is_alive()
    for s in (front, backend):
        s.close()
    os.close(exit_r)


def test_forwarder_refuses_udp_and_busy_ports(tmp_path):
    import socket
    from nbcontainer.runtime import usernet
    n = usernet.UserNet(-1, str(tmp_path))
    n.fallback = True
    with pytest.raises(RuntimeError, match="only tcp ports"):
        n.add_ports([{"proto": "udp", "host_ip": "127.0.0.1", "host_port": 5353, "container_port": 53}])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}/tcp"):
            n.add_ports([{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": port, "container_port": 80}])
    assert n.forwarder is None


def test_commit_pause_by_sigstop_stops_then_continues():
    import subprocess
    import time
    from nbcontainer.runtime import freezer
    p = subprocess.Popen(["sleep", "30"])
    try:
        stopped = freezer.stop_processes([p.pid, 2 ** 22 + 7])  # a pid that does not exist is skipped
        assert stopped == [p.pid]
        state = open(f"/proc/{p.pid}/stat").read().rpartition(")")[2].split()[0]
        assert state == "T"
        freezer.continue_processes([p.pid])
        time.sleep(0.05)
        state = open(f"/proc/{p.pid}/stat").read().rpartition(")")[2].split()[0]
        assert state == "S"
    finally:
        p.kill()
        p.wait()


def test_call_in_userns_reports_a_helper_that_cannot_start(monkeypatch):
    from nbcontainer.snapshots import rootless
    monkeypatch.setattr(linux_userns, "helper_argv", lambda module, req: ["/bin/sh", "-c", "echo broken >&2; exit 3"])
    with pytest.raises(RuntimeError, match="broken"):
        rootless.call_in_userns("os:getcwd")


def test_copy_driver_layer_is_the_difference_to_the_parent_tree(tmp_path):
    """snapshots/copydiff.py: a full-copy snapshot's layer = changes + whiteouts, nothing else."""
    import io
    import shutil
    import tarfile
    from nbcontainer.snapshots import copydiff
    old = tmp_path / "1" / "fs"
    (old / "etc").mkdir(parents=True)
    (old / "etc" / "keep").write_text("same\n")
    (old / "etc" / "edit").write_text("before\n")
    (old / "gone").mkdir()
    (old / "gone" / "f").write_text("x")
    (old / "rm.txt").write_text("x")
    os.symlink("etc/keep", old / "link")
    new = tmp_path / "2" / "fs"
    new.parent.mkdir()
    shutil.copytree(old, new, symlinks=True, copy_function=shutil.copy2)
    copydiff.record_parent(str(old), str(new))
    assert copydiff.parent_tree(str(new)) == str(old) and copydiff.parent_tree(str(old)) is None
    (new / "etc" / "edit").write_text("after, longer\n")
    shutil.rmtree(new / "gone")
    (new / "rm.txt").unlink()
    (new / "link").unlink()
    os.symlink("etc/edit", new / "link")
    (new / "added" / "sub").mkdir(parents=True)
    (new / "added" / "sub" / "n").write_text("n")
    out = io.BytesIO()
    stats = copydiff.write_diff(str(new), str(old), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = [m.name for m in tf]
        assert tf.extractfile("etc/edit").read() == b"after, longer\n"
        assert tf.getmember("link").linkname == "etc/edit"
    assert names == ["added", "added/sub", "added/sub/n", "etc", "etc/edit", ".wh.gone", "link", ".wh.rm.txt"]
    assert stats.entries == len(names)
    same = io.BytesIO()
    shutil.rmtree(new)
    shutil.copytree(old, new, symlinks=True, copy_function=shutil.copy2)
    copydiff.write_diff(str(new), str(old), same)
    with tarfile.open(fileobj=io.BytesIO(same.getvalue())) as tf:
        assert tf.getnames() == []  # an unchanged copy is an empty layer
