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

import atexit
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


def _user_pythonpath() -> str:
    """Where the test users import nbcontainer from: the checkout when other users can reach it,
    else a world-readable copy of the package (a checkout under a 0700 `mktemp -d` is not)."""
    if all(os.stat(p).st_mode & 0o001 for p in [REPO, *REPO.parents]):
        return str(REPO)
    copy = Path(tempfile.mkdtemp(prefix="nbc-rootless-pkg-"))
    os.chmod(copy, 0o755)
    shutil.copytree(REPO / "nbcontainer", copy / "nbcontainer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(copy):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    atexit.register(shutil.rmtree, copy, True)
    return str(copy)


USER_PYTHONPATH = _user_pythonpath()
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
                "PYTHONPATH": USER_PYTHONPATH, "NBCONTAINER_ROOT": str(self.root),
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
        r = subprocess.run(["runuser", "-u", FULL_USER, "--", "env", f"PYTHONPATH={USER_PYTHONPATH}", PY, "-c",
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
    r = subprocess.run(["runuser", "-u", pw.pw_name, "--", "env", "-i", f"HOME={pw.pw_dir}", f"PYTHONPATH={USER_PYTHONPATH}",
                        PY, "-c", code], capture_output=True, cwd="/")
    assert r.stdout.decode().split() == [f"{pw.pw_dir}/.local/share/nbcontainer", f"/tmp/nbcontainer-{pw.pw_uid}"]
    r = subprocess.run(["runuser", "-u", pw.pw_name, "--", "env", "-i", f"HOME={pw.pw_dir}", f"PYTHONPATH={USER_PYTHONPATH}",
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


# ------------------------------------------------- issue 8 item 5: build COPY, commit, export
def _context(u: User, files: dict) -> Path:
    """A build context owned by the user: {relative path: text}."""
    ctx = Path(tempfile.mkdtemp(prefix="ctx-", dir=u.dir))
    for rel, text in files.items():
        p = ctx / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    subprocess.run(["chown", "-R", f"{u.pw.pw_uid}:{u.pw.pw_gid}", str(ctx)], check=True)
    return ctx


def test_build_copy_add_and_run(full):
    ctx = _context(full, {
        "a.txt": "alpha\n", "dir/b.txt": "beta\n",
        "Dockerfile": ("FROM bb:1 AS first\nRUN echo from-stage > /made.txt && chmod 0640 /made.txt\n"
                       "FROM bb:1\nCOPY a.txt /home/app/\nCOPY --chown=1000:1000 dir/ /home/app/d/\n"
                       "COPY --from=first /made.txt /made.txt\nCOPY --link a.txt /linked.txt\n"
                       "RUN stat -c '%u:%g %n' /home/app/a.txt /home/app/d/b.txt /made.txt /linked.txt > /owners\n"
                       "CMD [\"cat\", \"/owners\", \"/home/app/d/b.txt\", \"/made.txt\"]\n")})
    full.ok("build", "-q", "-t", "copied:1", str(ctx), timeout=180)
    out = full.ok("run", "--rm", "copied:1")
    assert out == ("0:0 /home/app/a.txt\n1000:1000 /home/app/d/b.txt\n0:0 /made.txt\n0:0 /linked.txt\n"
                   "beta\nfrom-stage\n"), out
    # the layer records the ids inside: a second build is all cache, and save shows 1000 in the tar
    assert full.ok("run", "--rm", "-u", "1000", "copied:1", "cat", "/home/app/d/b.txt") == "beta\n"
    assert _root_owned(full.root) == []
    full.ok("rmi", "copied:1")


def test_commit_and_export(full):
    full.ok("run", "-d", "--name", "tocommit", "bb:1", "sh", "-c",
            "echo changed > /home/app/new.txt; chown 1000:1000 /home/app/new.txt; rm /home/owned.txt; "
            "touch /ready; while true; do echo tick >> /ticks; sleep 0.05; done")
    try:
        deadline = time.monotonic() + 10
        while full.nbc("exec", "tocommit", "test", "-e", "/ready").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = full.nbc("commit", "-c", "CMD [\"cat\", \"/home/app/new.txt\"]", "tocommit", "committed:1")
        assert r.returncode == 0, r.stderr.decode()
        # paused by SIGSTOP while the layer was written, continued afterwards
        assert full.ok("inspect", "-f", "{{.State.Status}}", "tocommit").strip() == "running"
        n1 = full.ok("exec", "tocommit", "wc", "-l", "/ticks").split()[0]
        time.sleep(0.3)
        assert int(full.ok("exec", "tocommit", "wc", "-l", "/ticks").split()[0]) > int(n1)
        assert full.ok("run", "--rm", "committed:1") == "changed\n"
        out = full.ok("run", "--rm", "committed:1", "sh", "-c",
                      "stat -c %u:%g /home/app/new.txt; test -e /home/owned.txt && echo there || echo gone")
        assert out == "1000:1000\ngone\n"
        tar_path = full.dir / "export.tar"
        full.ok("export", "-o", str(tar_path), "tocommit")
        with tarfile.open(tar_path) as tf:
            names = {m.name.lstrip("./"): m for m in tf}
            assert (names["home/app/new.txt"].uid, names["home/app/new.txt"].gid) == (1000, 1000)
            assert "home/owned.txt" not in names and "bin/busybox" in names
            assert tf.extractfile(names["home/app/new.txt"]).read() == b"changed\n"
        # exporting a container of an image with a 0600 file of uid 1000 reads it inside the namespace
        full.ok("create", "--name", "plain", "bb:1", "true")
        full.ok("export", "-o", str(full.dir / "plain.tar"), "plain")
        with tarfile.open(full.dir / "plain.tar") as tf:
            m = tf.getmember("home/owned.txt")
            assert (m.uid, m.mode, tf.extractfile(m).read()) == (1000, 0o600, b"mine\n")
    finally:
        full.nbc("rm", "-f", "tocommit", "plain")
        full.nbc("rmi", "committed:1")
    assert _root_owned(full.root) == []
    assert not list((full.root / "tmp").glob("mnt-*")) if (full.root / "tmp").exists() else True


# ------------------------------------- pull / push / save / load / magics as the user (a venv)
VENV = Path("/tmp/nbc-rootless-venv")
VENV_PKGS = ("requests", "zstandard", "tqdm", "ipython", "ipywidgets")


@pytest.fixture(scope="session")
def venv_py() -> str:
    """A venv of Debian's python3 with what pull/push (requests, zstandard), the progress bars
    (tqdm), the magics (IPython) and the dashboard (ipywidgets) need, readable by the test users (the checkout's own
    interpreter lives under /root, 0700).  Kept in /tmp across sessions; built once from PyPI."""
    py = VENV / "bin" / "python"
    probe = "import requests, zstandard, tqdm, IPython, ipywidgets"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return str(py)
    shutil.rmtree(VENV, ignore_errors=True)
    r = subprocess.run([PY, "-m", "venv", str(VENV)], capture_output=True)
    if r.returncode == 0:
        r = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *VENV_PKGS], capture_output=True,
                           timeout=600)
    if r.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        msg = f"cannot build the test users' venv ({' '.join(VENV_PKGS)}): {r.stderr.decode()[-300:]}"
        print(msg)
        pytest.skip(msg)
    subprocess.run(["chmod", "-R", "a+rX", str(VENV)], check=True)
    return str(py)


@pytest.fixture(scope="module")
def local_registry():
    import sys
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.registry import Registry
    reg = Registry()
    try:
        yield reg
    finally:
        reg.stop()


def _vnbc(u: User, py: str, *argv: str, timeout: float = 120) -> str:
    r = u.run([py, "-m", "nbcontainer", *argv], timeout=timeout)
    assert r.returncode == 0, (argv, r.returncode, r.stderr.decode())
    return r.stdout.decode()


def test_push_pull_save_load_as_the_user(full, venv_py, local_registry):
    ref = f"{local_registry.host}/rootless/bb:1"
    _vnbc(full, venv_py, "tag", "bb:1", ref)
    _vnbc(full, venv_py, "push", ref)
    _vnbc(full, venv_py, "rmi", ref)
    other = full.dir / "pullroot"  # a fresh store: every layer comes from the registry
    env = {"NBCONTAINER_ROOT": str(other)}
    r = full.run([venv_py, "-m", "nbcontainer", "pull", ref], timeout=120, **env)
    assert r.returncode == 0, r.stderr.decode()
    r = full.run([venv_py, "-m", "nbcontainer", "run", "--rm", ref, "stat", "-c", "%u %a", "/home/owned.txt"], **env)
    assert r.stdout == b"1000 600\n", r.stderr
    saved = full.dir / "saved.tar"
    r = full.run([venv_py, "-m", "nbcontainer", "save", "-o", str(saved), ref], **env)
    assert r.returncode == 0, r.stderr.decode()
    _vnbc(full, venv_py, "load", "-i", str(saved))
    assert _vnbc(full, venv_py, "run", "--rm", "-u", "1000", ref, "cat", "/home/owned.txt") == "mine\n"
    # the saved tar records the ids inside (1000), not the subordinate ids of the host
    with tarfile.open(saved) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        owners = set()
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=tf.extractfile(layer)) as lt:
                owners |= {(m.uid, m.gid) for m in lt if m.name.endswith("owned.txt")}
    assert owners == {(1000, 1000)}
    _vnbc(full, venv_py, "rmi", ref)
    assert _root_owned(full.root, other) == []


def test_container_run_magic_as_the_user(full, venv_py):
    script = ("from IPython.core.interactiveshell import InteractiveShell\n"
              "ip = InteractiveShell.instance()\n"
              "ip.run_line_magic('load_ext', 'nbcontainer')\n"
              "r = ip.run_cell('%container_run --rm bb:1 sh -c \"id -u; echo hi-magic\"')\n"
              "assert r.success, r.error_in_exec\n"
              "r = ip.run_cell('%container_run --rm bb:1 sh -c \"exit 3\"')\n"
              "print('failed-as-expected' if not r.success else 'wrongly-succeeded')\n")
    r = full.run([venv_py, "-c", script], timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "0\nhi-magic\n" in out and "failed-as-expected" in out, out


# ------------------------------------------ issue 8 item 3: no usable /dev/net/tun -> forwarder
@needs_slirp
def test_ports_without_tun_use_the_forwarder(full):
    """NBCONTAINER_ROOTLESS_TUN=0 (as where /dev/net/tun is 0600): no slirp4netns, -p still
    answers through the forwarder, and the note names the fix."""
    import urllib.request
    port = _free_port()
    env = {"NBCONTAINER_ROOTLESS_TUN": "0"}
    r = full.nbc("run", "-d", "--name", "fwd", "-p", f"127.0.0.1:{port}:80", "bb:1", "sh", "-c",
                 "mkdir -p /www && echo via-forwarder > /www/index.html && exec httpd -f -p 80 -h /www", **env)
    assert r.returncode == 0, r.stderr.decode()
    note = r.stderr.decode()
    assert note.count("/dev/net/tun is not usable") == 1 and "no outbound network" in note
    assert "chmod 0666 /dev/net/tun" in note and "udev" in note
    try:
        body, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"via-forwarder\n"
        assert subprocess.run(["pgrep", "-u", full.pw.pw_name, "slirp4netns"], capture_output=True).stdout == b""
        # no tap device, so nothing outbound: only lo inside
        assert _names(full.ok("exec", "fwd", "cat", "/proc/net/dev")) == ["lo"]
        busy = full.nbc("run", "--rm", "-p", f"127.0.0.1:{port}:80", "bb:1", "true", **env)
        err = busy.stderr.decode()
        assert busy.returncode == 125 and str(port) in err, err
    finally:
        full.ok("rm", "-f", "fwd")
    import socket
    deadline, freed = time.monotonic() + 5, False
    while not freed and time.monotonic() < deadline:  # the forwarder ended with the container
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (TIME_WAIT of the test's own connection)
            try:
                s.bind(("127.0.0.1", port))
                s.listen(1)
                freed = True
            except OSError:
                time.sleep(0.05)
    assert freed, f"port {port} is still bound after rm -f"


def test_call_in_userns_results_errors_mounts_and_stdout(tmp_path):
    """snapshots.rootless.call_in_userns (what rootless COPY and export use), here as root:
    results and exceptions travel back, a read-only bind is mounted for the call only."""
    from nbcontainer.snapshots.rootless import call_in_userns, mounted_path
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("x\n")
    assert call_in_userns("os:getuid") == 0
    with pytest.raises(FileNotFoundError):
        call_in_userns("os:stat", str(tmp_path / "missing"))
    with pytest.raises((RuntimeError, ValueError), match="Expecting"):
        call_in_userns("json:loads", "{")
    spec = {"type": "bind", "source": str(src), "options": ["rbind", "ro"]}
    with mounted_path([spec], str(tmp_path / "tmp")) as target:
        assert call_in_userns("os:listdir", target, mounts={target: spec}) == ["d"]
        with pytest.raises(OSError, match="Read-only"):
            call_in_userns("os:mkdir", target + "/new", mounts={target: spec})
        out = io.BytesIO()
        call_in_userns("nbcontainer.snapshots.rootless:tree_to_stdout", target, mounts={target: spec}, sink=out)
        out.seek(0)
        with tarfile.open(fileobj=out) as tf:
            assert sorted(tf.getnames()) == ["d", "d/f.txt"]
        assert os.listdir(target) == []  # the mount lived in the helper only
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").iterdir()) == []


def test_layers_of_files_only_the_namespace_may_read(full):
    """A RUN step (and a commit) writing a 0600 file of uid 1000: the layer writer must read it."""
    ctx = _context(full, {"Dockerfile": "FROM bb:1\nRUN echo secret > /s.txt && chown 1000:1000 /s.txt "
                                        "&& chmod 0600 /s.txt\n"})
    full.ok("build", "-q", "-t", "secret:1", str(ctx), timeout=180)
    assert full.ok("run", "--rm", "-u", "1000", "secret:1", "cat", "/s.txt") == "secret\n"
    full.ok("run", "--name", "sec", "bb:1", "sh", "-c", "echo c > /c.txt; chown 1000 /c.txt; chmod 0600 /c.txt")
    try:
        full.ok("commit", "sec", "secret:2")
        assert full.ok("run", "--rm", "-u", "1000", "secret:2", "cat", "/c.txt") == "c\n"
    finally:
        full.nbc("rm", "-f", "sec")
        full.nbc("rmi", "secret:1", "secret:2")


def test_copy_driver_build_commit_export(full, tmp_path):
    """The copying driver (kernels without overlayfs in user namespaces): COPY, RUN deleting a
    file of the base, commit and export give the same results as with overlay."""
    root = full.dir / "copyroot2"
    env = {"NBCONTAINER_ROOT": str(root), "NBCONTAINER_ROOTLESS_DRIVER": "copy"}
    tar = full.dir / "bb.tar"
    if not tar.exists():
        pytest.skip("the module fixture's image tar is gone")
    full.ok("import", str(tar), "bb:1", **env)
    ctx = _context(full, {"a.txt": "alpha\n", "Dockerfile": "FROM bb:1\nCOPY a.txt /a.txt\nRUN rm /home/owned.txt\n"})
    full.ok("build", "-q", "-t", "cp:1", str(ctx), timeout=180, **env)
    out = full.ok("run", "--rm", "cp:1", "sh", "-c", "cat /a.txt; ls /home", **env)
    assert out.splitlines()[0] == "alpha" and "owned.txt" not in out, out
    # the layers are differences to the parent (whiteouts included), not full copies of the tree
    full.ok("save", "-o", str(full.dir / "cp1.tar"), "cp:1", **env)
    with tarfile.open(full.dir / "cp1.tar") as tf:
        layers = json.load(tf.extractfile("manifest.json"))[0]["Layers"]
        contents = []
        for name in layers[1:]:
            with tarfile.open(fileobj=tf.extractfile(name)) as lt:
                contents.append(sorted(m.name for m in lt))
    assert contents[0] == ["a.txt"], contents
    # (the RUN layer also whites out the base's empty /dev and /sys: build/runner.py's mount
    # point cleanup removes "copied-up" parents, which under the copying driver are the real ones)
    assert {"home", "home/.wh.owned.txt"} <= set(contents[1]) and "bin/busybox" not in contents[1], contents
    full.ok("run", "--name", "c1", "cp:1", "sh", "-c", "rm /a.txt; echo n > /new.txt", **env)
    full.ok("commit", "c1", "cp:2", **env)
    out = full.ok("run", "--rm", "cp:2", "sh", "-c", "ls /a.txt /new.txt 2>&1; true", **env)
    assert "/new.txt" in out and "No such file" in out, out
    full.ok("export", "-o", str(full.dir / "c1.tar"), "c1", **env)
    with tarfile.open(full.dir / "c1.tar") as tf:
        names = set(tf.getnames())
    assert "new.txt" in names and "a.txt" not in names and "home/owned.txt" not in names
    full.ok("rm", "c1", **env)
    assert "no problems found" in full.ok("system", "check", "--no-verify", **env)
    assert _root_owned(root) == []


def test_dashboard_as_the_user(full, venv_py):
    script = ("import nbcontainer\n"
              "from nbcontainer.widgets import Dashboard\n"
              "c = nbcontainer.from_env()\n"
              "c.containers.run('bb:1', ['sleep', '30'], name='dash', detach=True)\n"
              "board = Dashboard(client=c, threaded=False, watch_exits=False)\n"
              "try:\n"
              "    board.refresh()\n"
              "    print('containers:', 'dash' in board.containers_html.value)\n"
              "    print('images:', 'bb' in board.images_html.value)\n"
              "finally:\n"
              "    board.close()\n"
              "    c.containers.get('dash').remove(force=True)\n")
    r = full.run([venv_py, "-c", script], timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().split() == ["containers:", "True", "images:", "True"], r.stdout


def test_build_workdir_and_user(full):
    ctx = _context(full, {"Dockerfile": "FROM bb:1\nUSER 1000\nWORKDIR /srv/app\nRUN pwd > out; stat -c %u . >> out\n"
                                        "CMD [\"cat\", \"out\"]\n"})
    full.ok("build", "-q", "-t", "wd:1", str(ctx), timeout=180)
    assert full.ok("run", "--rm", "wd:1") == "/srv/app\n1000\n"
    full.ok("rmi", "wd:1")


def test_named_volume_prepopulated_from_the_image(full):
    out = full.nbc("run", "--rm", "-v", "rlvol:/home", "bb:1", "sh", "-c",
                   "stat -c '%u %a' /home/owned.txt; cat /home/owned.txt")
    try:
        assert out.returncode == 0 and out.stdout == b"1000 600\nmine\n", (out.stdout, out.stderr)
    finally:
        full.nbc("volume", "rm", "rlvol")


def test_build_run_mounts(full):
    """RUN --mount: a bind of the context (read-only, and rw: a scratch copy), a cache, a tmpfs."""
    ctx = _context(full, {"src/in.txt": "from-context\n", "Dockerfile": (
        "# syntax=docker/dockerfile:1\nFROM bb:1\n"
        "RUN --mount=type=bind,source=src,target=/m cat /m/in.txt > /bound.txt\n"
        "RUN --mount=type=bind,source=src,target=/m,rw echo scratch > /m/in.txt && cat /m/in.txt > /rw.txt\n"
        "RUN --mount=type=cache,target=/cache echo c > /cache/x && ls /cache > /cached.txt\n"
        "RUN --mount=type=tmpfs,target=/t touch /t/y && ls /t > /tmpfs.txt\n"
        "RUN --mount=type=bind,from=bb:1,source=/home,target=/h cat /h/owned.txt > /fromimg.txt\n"
        "CMD [\"cat\", \"/bound.txt\", \"/rw.txt\", \"/cached.txt\", \"/tmpfs.txt\", \"/fromimg.txt\"]\n")})
    full.ok("build", "-q", "-t", "mounts:1", str(ctx), timeout=180)
    assert full.ok("run", "--rm", "mounts:1") == "from-context\nscratch\nx\ny\nmine\n"
    assert (ctx / "src" / "in.txt").read_text() == "from-context\n"  # the rw bind's writes were discarded
    full.ok("rmi", "mounts:1")


def test_copy_link_layer_reused_on_a_new_parent(full):
    """COPY --link after a changed step: the layer is unpacked on the new parent (rebase), inside the namespace."""
    ctx = _context(full, {"a.txt": "linked\n"})
    for version in ("v1", "v2"):
        (ctx / "Dockerfile").write_text(f"FROM bb:1\nRUN echo {version} > /v\nCOPY --link --chown=1000:1000 a.txt /a.txt\n")
        os.chown(ctx / "Dockerfile", full.pw.pw_uid, full.pw.pw_gid)
        full.ok("build", "-q", "-t", f"link:{version}", str(ctx), timeout=180)
    out = full.ok("run", "--rm", "link:v2", "sh", "-c", "cat /v /a.txt; stat -c %u /a.txt")
    assert out == "v2\nlinked\n1000\n"
    ids = [json.loads(full.ok("inspect", f"link:{v}"))[0]["RootFS"]["Layers"][-1] for v in ("v1", "v2")]
    assert ids[0] == ids[1]  # the same --link layer on both parents
    full.ok("rmi", "link:v1", "link:v2")
