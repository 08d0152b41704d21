"""Rootless nbcontainer (issue 8): the CLI run as an ordinary user the test creates.

Two users: ``nbcrootless`` with a subordinate id range (full mapping through
newuidmap/newgidmap) and ``nbcrootless1`` without one (single-id mapping).  Each is created
with useradd when missing and removed at teardown; a user that already exists is reused (and
the test says so).  Commands run through ``runuser -u USER -- env ... /usr/bin/python3 -m
nbcontainer``: the checkout's interpreter (pyenv, under /root, mode 0700) is not reachable
by other users, while Debian's /usr/bin/python3 (3.11) imports everything the run/exec/
import/load path needs from the checkout (PYTHONPATH); requests/zstandard are only needed by
pull/push, which these tests do not use.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY = "/usr/bin/python3"
FULL_USER, SINGLE_USER = "nbcrootless", "nbcrootless1"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating the test users needs root")


def _userns_possible() -> str:
    """'' when unprivileged user namespaces work here, else why not."""
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return "user.max_user_namespaces is 0"
    except OSError:
        return "no /proc/sys/user/max_user_namespaces (kernel without user namespaces)"
    p = Path("/proc/sys/kernel/unprivileged_userns_clone")
    if p.exists() and p.read_text().strip() == "0":
        return "kernel.unprivileged_userns_clone is 0"
    for tool in ("runuser", "useradd", "userdel", "usermod"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if not os.path.exists(PY):
        return f"{PY} not found"
    return ""


def _free_subid_start() -> int:
    end = 100000
    for f in ("/etc/subuid", "/etc/subgid"):
        try:
            for line in Path(f).read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
        except OSError:
            pass
    return end


def _ensure_user(name: str, subids: bool) -> tuple[pwd.struct_passwd, bool]:
    """(pw entry, created by us)."""
    try:
        pw = pwd.getpwnam(name)
        print(f"reusing existing user {name}")
        created = False
    except KeyError:
        subprocess.run(["useradd", "-m", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
        pw, created = pwd.getpwnam(name), True
    has = any(line.split(":")[0] in (name, str(pw.pw_uid)) for line in Path("/etc/subuid").read_text().splitlines()) \
        if os.path.exists("/etc/subuid") else False
    if subids and not has:
        start = _free_subid_start()
        rng = f"{start}-{start + 65535}"
        subprocess.run(["usermod", "--add-subuids", rng, "--add-subgids", rng, name], check=True)
    if not subids and has:
        pytest.skip(f"user {name} exists with subordinate ids; the single-id test needs one without")
    return pw, created


class User:
    """One rootless user with a private store: ``nbc(*argv)`` runs the CLI as that user."""

    def __init__(self, pw: pwd.struct_passwd):
        self.pw = pw
        self.dir = Path(tempfile.mkdtemp(prefix="nbc-rl-", dir="/tmp"))
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.root, self.runroot = self.dir / "root", self.dir / "run"

    def env(self, **extra: str) -> list[str]:
        base = {"HOME": self.pw.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "PYTHONPATH": str(REPO), "NBCONTAINER_ROOT": str(self.root),
                "NBCONTAINER_RUNROOT": str(self.runroot), "LANG": "C.UTF-8"}
        base.update(extra)
        return ["env", "-i"] + [f"{k}={v}" for k, v in base.items()]

    def run(self, argv: list[str], input: bytes = b"", timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", self.pw.pw_name, "--"] + self.env(**env) + argv, input=input,
                              capture_output=True, cwd=str(self.dir), timeout=timeout)

    def nbc(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return self.run([PY, "-m", "nbcontainer", *argv], **kw)

    def ok(self, *argv: str, **kw) -> str:
        r = self.nbc(*argv, **kw)
        assert r.returncode == 0, (argv, r.returncode, r.stderr.decode())
        return r.stdout.decode()

    def give(self, path: Path) -> Path:
        """Copy ``path`` into the user's directory (the test's tmp dirs are root's)."""
        dst = self.dir / path.name
        shutil.copy(path, dst)
        os.chown(dst, self.pw.pw_uid, self.pw.pw_gid)
        return dst

    def cleanup(self) -> None:
        ids = self.nbc("ps", "-aq", "--no-trunc").stdout.decode().split()
        if ids:
            self.nbc("rm", "-f", *ids)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def users():
    why = _userns_possible()
    if why:
        pytest.skip(f"rootless containers impossible here: {why}")
    made = []
    try:
        full, c1 = _ensure_user(FULL_USER, subids=True)
        if c1:
            made.append(FULL_USER)
        single, c2 = _ensure_user(SINGLE_USER, subids=False)
        if c2:
            made.append(SINGLE_USER)
        r = subprocess.run(["runuser", "-u", FULL_USER, "--", "env", f"PYTHONPATH={REPO}", PY, "-c",
                            "import nbcontainer.cli.main"], capture_output=True, cwd="/")
        if r.returncode != 0:
            pytest.skip(f"{PY} cannot import the checkout as {FULL_USER}: {r.stderr.decode()[-300:]}")
        yield full, single
    finally:
        for name in made:
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


def _image_tar(busybox_tar: Path, out: Path, root_only: bool = False) -> Path:
    """The BusyBox root plus /home/owned.txt (uid 1000, mode 0600); all root with root_only."""
    with tarfile.open(busybox_tar) as src, tarfile.open(out, "w") as dst:
        for ti in src:
            f = src.extractfile(ti) if ti.isfile() else None
            if root_only:
                ti.uid = ti.gid = 0
            dst.addfile(ti, f)
        if not root_only:
            ti = tarfile.TarInfo("home/owned.txt")
            data = b"mine\n"
            ti.size, ti.uid, ti.gid, ti.mode = len(data), 1000, 1000, 0o600
            dst.addfile(ti, io.BytesIO(data))
    return out


def _layer(entries: list[tuple]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _two_layer_archive(busybox_tar: Path, out: Path) -> Path:
    """docker-archive "two:1": BusyBox + a layer with a whiteout and an opaque directory."""
    base = busybox_tar.read_bytes()
    l1 = _layer([("data/", "dir", b""), ("data/gone.txt", "file", b"x\n"), ("data/old/", "dir", b""),
                 ("data/old/a.txt", "file", b"a\n")])
    l2 = _layer([("data/", "dir", b""), ("data/.wh.gone.txt", "file", b""), ("data/old/", "dir", b""),
                 ("data/old/.wh..wh..opq", "file", b""), ("data/old/b.txt", "file", b"b\n")])
    layers = [base, l1, l2]
    diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "history": [{"created_by": f"layer {i}"} for i in range(3)]}).encode()
    cfg_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(out, "w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        add(cfg_name, config)
        names = []
        for i, b in enumerate(layers):
            names.append(f"l{i}/layer.tar")
            add(names[-1], b)
        add("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": ["two:1"], "Layers": names}]).encode())
    return out


@pytest.fixture(scope="module")
def full(users, busybox_tar, tmp_path_factory):
    u = User(users[0])
    try:
        tar = u.give(_image_tar(busybox_tar, tmp_path_factory.mktemp("rl") / "bb.tar"))
        u.ok("import", str(tar), "bb:1")
        yield u
    finally:
        u.cleanup()


def _subid_start(name: str) -> int:
    for line in Path("/etc/subuid").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return int(parts[1])
    raise AssertionError(f"no subuid range for {name}")


def _root_owned(*dirs: Path) -> list[str]:
    out = []
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                if os.lstat(p).st_uid == 0:
                    out.append(p)
    return out


# ------------------------------------------------------------------------------ tests
def test_store_defaults_follow_xdg(users):
    pw = users[0]
    code = "from nbcontainer.paths import StorePaths as S; p = S.from_env(); print(p.root); print(p.runroot)"
    r = subprocess.run(["runuser", "-u", pw.pw_name, "--", "env", "-i", f"HOME={pw.pw_dir}", f"PYTHONPATH={REPO}",
                        PY, "-c", code], capture_output=True, cwd="/")
    assert r.stdout.decode().split() == [f"{pw.pw_dir}/.local/share/nbcontainer", f"/tmp/nbcontainer-{pw.pw_uid}"]
    r = subprocess.run(["runuser", "-u", pw.pw_name, "--", "env", "-i", f"HOME={pw.pw_dir}", f"PYTHONPATH={REPO}",
                        "XDG_DATA_HOME=/xdg/data", "XDG_RUNTIME_DIR=/run/user/77", PY, "-c", code],
                       capture_output=True, cwd="/")
    assert r.stdout.decode().split() == ["/xdg/data/nbcontainer", "/run/user/77/nbcontainer"]


def test_run_exec_logs_stop_rm(full):
    cid = full.ok("run", "-d", "--name", "web", "bb:1", "sh", "-c",
                  "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done").strip()
    assert len(cid) == 64
    deadline = time.monotonic() + 10
    while "started" not in full.ok("logs", "web") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert full.ok("logs", "web") == "started\n"
    assert full.ok("exec", "web", "id", "-u") == "0\n"
    assert full.ok("exec", "web", "cat", "/proc/1/cmdline").startswith("sh\0-c")
    assert full.ok("exec", "-u", "1000", "web", "id", "-u") == "1000\n"
    top = full.ok("top", "web").splitlines()  # no cgroup of its own: found by pid namespace
    assert top[0].split()[0] == "UID" and any("sh -c" in ln for ln in top[1:]), top
    t0 = time.monotonic()
    full.ok("stop", "web")
    assert time.monotonic() - t0 < 5  # the TERM trap ran: no 10 s kill timeout
    assert full.ok("inspect", "-f", "{{.State.ExitCode}}", "web").strip() == "0"
    full.ok("rm", "web")
    assert full.ok("ps", "-aq") == ""


def test_container_sees_itself_as_root_mapped_to_the_user(full):
    out = full.ok("run", "--rm", "bb:1", "sh", "-c", "id -u; cat /proc/self/uid_map; hostname")
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(full.pw.pw_uid), "1"]
    assert lines[2].split() == ["1", str(_subid_start(FULL_USER)), "65536"]
    assert len(lines[3]) == 12  # its own uts namespace: the short id


def test_file_owned_by_1000_in_a_layer(full):
    assert full.ok("run", "--rm", "bb:1", "stat", "-c", "%u:%g %a", "/home/owned.txt") == "1000:1000 600\n"
    # mode 0600: only uid 1000 inside can read it, so the mapping is real, not a display trick
    assert full.ok("run", "--rm", "-u", "1000", "bb:1", "cat", "/home/owned.txt") == "mine\n"
    r = full.nbc("run", "--rm", "-u", "1001", "bb:1", "cat", "/home/owned.txt")
    assert r.returncode == 1 and b"Permission denied" in r.stderr
    on_host = list(full.root.glob("snapshots/*/fs/home/owned.txt"))
    assert on_host and os.lstat(on_host[0]).st_uid == _subid_start(FULL_USER) + 999


def test_nothing_in_the_store_is_owned_by_root(full):
    full.ok("run", "--rm", "bb:1", "sh", "-c", "echo x > /root/new; mkdir /newdir")
    full.ok("run", "-d", "--name", "keep", "bb:1", "sleep", "30")
    try:
        assert _root_owned(full.root, full.runroot) == []
    finally:
        full.ok("rm", "-f", "keep")
    assert _root_owned(full.root, full.runroot) == []
    assert "no problems found" in full.ok("system", "check", "--no-verify")  # no probe or mount leftovers


def test_limit_flags_are_refused_clearly(full):
    for flags in (["--memory", "64m"], ["--cpus", "1"], ["--pids-limit", "20"]):
        r = full.nbc("run", "--rm", *flags, "bb:1", "true")
        err = r.stderr.decode().strip()
        assert r.returncode == 125, (flags, err)
        assert len(err.splitlines()) == 1 and "not available rootless" in err and flags[0] in err, err
    assert full.ok("ps", "-aq") == ""


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _names(text: str) -> list[str]:
    return sorted(ln.split(":")[0].strip() for ln in text.splitlines()[2:])


needs_slirp = pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns is not installed")


@needs_slirp
def test_default_network_is_user_mode_none_and_host_work(full):
    assert _names(full.ok("run", "--rm", "bb:1", "cat", "/proc/net/dev")) == ["lo", "tap0"]
    assert "inet 10.0.2.100/24" in full.ok("run", "--rm", "bb:1", "ip", "-4", "addr", "show", "tap0")
    assert _names(full.ok("run", "--rm", "--network", "none", "bb:1", "cat", "/proc/net/dev")) == ["lo"]
    host = full.ok("run", "--rm", "--network", "host", "bb:1", "cat", "/proc/net/dev")
    assert _names(host) == _names(Path("/proc/net/dev").read_text())


@needs_slirp
def test_published_port_answers_on_localhost(full):
    import urllib.request
    port = _free_port()
    full.ok("run", "-d", "--name", "httpd", "-p", f"{port}:80", "bb:1", "sh", "-c",
            "mkdir -p /www && echo hello-rootless > /www/index.html && exec httpd -f -p 80 -h /www")
    try:
        body, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello-rootless\n"
        assert full.ok("port", "httpd") == f"80/tcp -> 0.0.0.0:{port}\n"
        assert f"0.0.0.0:{port}->80/tcp" in full.ok("ps")
        busy = full.nbc("run", "--rm", "-p", f"{port}:80", "bb:1", "true")
        err = busy.stderr.decode().strip()
        assert busy.returncode == 125 and str(port) in err and len(err.splitlines()) == 1, err
    finally:
        full.ok("rm", "-f", "httpd")
    left = subprocess.run(["pgrep", "-u", full.pw.pw_name, "slirp4netns"], capture_output=True).stdout
    assert left == b""  # the supervisor ended its slirp4netns with the container
    r = full.nbc("run", "--rm", "--network", "none", "-p", "8080:80", "bb:1", "true")
    assert r.returncode == 125 and b"need the rootless user-mode network" in r.stderr


def test_unshare_is_root_in_the_mapping(full):
    assert full.ok("unshare", "id", "-u") == "0\n"
    snap = next(full.root.glob("snapshots/*/fs/home/owned.txt"))
    assert full.ok("unshare", "stat", "-c", "%u", str(snap)) == "1000\n"
    r = full.nbc("unshare", "sh", "-c", "exit 7")
    assert r.returncode == 7
    r = full.nbc("unshare", "no-such-command")
    assert r.returncode == 127 and b"no-such-command" in r.stderr


def test_layers_with_whiteouts_and_opaque_dirs(full, busybox_tar, tmp_path):
    archive = full.give(_two_layer_archive(busybox_tar, tmp_path / "two.tar"))
    full.ok("load", "-i", str(archive))
    out = full.ok("run", "--rm", "two:1", "sh", "-c", "ls /data; echo --; ls /data/old")
    assert out == "old\n--\nb.txt\n"
    # the upper layer's whiteout is an overlay whiteout made inside the namespace: a 0/0 char device
    assert full.ok("run", "--rm", "two:1", "sh", "-c", "rm /data/old/b.txt; ls /data/old | wc -l").strip() == "0"
    full.ok("rmi", "two:1")


def test_copying_driver_when_overlay_is_refused(full, busybox_tar, tmp_path):
    """NBCONTAINER_ROOTLESS_DRIVER=copy: the fallback for kernels without overlayfs in user
    namespaces (this one has it: forced here), recorded once per store."""
    root = full.dir / "copyroot"
    env = {"NBCONTAINER_ROOT": str(root), "NBCONTAINER_ROOTLESS_DRIVER": "copy"}
    archive = full.give(_two_layer_archive(busybox_tar, tmp_path / "two.tar"))
    full.ok("load", "-i", str(archive), **env)
    assert (root / "rootless-driver").read_text() == "copy\n"
    out = full.ok("run", "--rm", "two:1", "sh", "-c", "ls /data; echo --; ls /data/old; stat -c %u /home/app; "
                  "grep -c ' / overlay ' /proc/mounts || true", **env)
    assert out == "old\n--\nb.txt\n1000\n0\n"
    full.ok("rmi", "two:1", **env)
    assert list((root / "snapshots").iterdir()) == []
    assert _root_owned(root) == []
    # the default store probed the kernel once and kept overlay
    assert (full.root / "rootless-driver").read_text() == "overlay\n"


def test_another_user_cannot_reach_the_store(full, users):
    other = User(users[1])
    try:
        r = other.run(["ls", str(full.root)])
        assert r.returncode != 0 and b"Permission denied" in r.stderr
        r = other.nbc("ps", "-a", NBCONTAINER_ROOT=str(full.root), NBCONTAINER_RUNROOT=str(full.runroot))
        assert r.returncode == 125 and b"not a directory owned by uid" in r.stderr, r.stderr
    finally:
        other.cleanup()


def test_single_id_mapping(users, busybox_tar, tmp_path):
    u = User(users[1])
    try:
        rooted = u.give(_image_tar(busybox_tar, tmp_path / "bb0.tar", root_only=True))
        r = u.nbc("import", str(rooted), "bb0:1")
        assert r.returncode == 0, r.stderr
        note = r.stderr.decode()
        assert note.count("single-id user namespace") == 1 and "usermod --add-subuids" in note
        out = u.ok("run", "--rm", "bb0:1", "sh", "-c", "id -u; cat /proc/self/uid_map")
        assert out.split() == ["0", "0", str(u.pw.pw_uid), "1"]
        mixed = u.give(_image_tar(busybox_tar, tmp_path / "bb.tar"))
        r = u.nbc("import", str(mixed), "bb:1")
        assert r.returncode == 125
        assert b"cannot set owner 1000:1000" in r.stderr
        assert u.ok("images", "-q", "bb") == ""
        assert _root_owned(u.root) == []
    finally:
        u.cleanup()
