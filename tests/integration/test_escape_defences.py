"""Escape attempts from inside a container, each asserted to fail (issue 6, "escape defences").

(a) CVE-2019-5736 class: overwrite the runtime through /proc/self/exe or /proc/PID/exe
(b) CVE-2024-21626 class: a leaked host fd or working directory
(c) CVE-2022-0492 class: cgroup release_agent
(d) a bind-mount or volume target that is a symlink pointing out of the root
(e) ``exec`` into a container whose root was changed underneath
(f) device creation outside the allowlist

The container side runs BusyBox scripts; the host side checks what must stay untouched.
"""
from __future__ import annotations

import glob
import hashlib
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers.nbc_cli import nbc_store


@pytest.fixture(scope="module")
def victim(tmp_path_factory) -> Path:
    """A host directory the hostile image's symlinks point at (must never change)."""
    d = tmp_path_factory.mktemp("victim")
    (d / "secret").write_text("host secret\n")
    return d


@pytest.fixture(scope="module")
def nbc(tmp_path_factory, victim):
    from helpers.busybox import busybox_available, write_busybox_rootfs_tar
    if not busybox_available():
        pytest.skip("busybox-static is not installed: apt-get install busybox-static")
    base = tmp_path_factory.mktemp("escape")
    tar_path = write_busybox_rootfs_tar(base / "bb.tar")
    with nbc_store(base, tar_path) as tool:
        # the hostile image: symlinks out of the root, absolute and relative
        with tarfile.open(tar_path, "a") as tf:
            for name, target in (("data", str(victim)), ("rel", "../../../../../../../.." + str(victim)),
                                 ("etcl", "/etc")):
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
                tf.addfile(info)
        tool.ok("import", str(tar_path), "evil:1")
        yield tool


@pytest.fixture
def scripts(tmp_path) -> Path:
    d = tmp_path / "scripts"
    d.mkdir()
    d.chmod(0o755)
    return d


def _script(d: Path, name: str, text: str) -> str:
    p = d / name
    p.write_text("#!/bin/sh\n" + text)
    p.chmod(0o755)
    return f"/s/{name}"


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _wait_for(nbc, cid: str, path: str, timeout: float = 10, test: str = "test") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nbc("exec", cid, test, "-e", path).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared in {cid}: {nbc('logs', cid).stderr!r}")


# -- (a) CVE-2019-5736 --------------------------------------------------------------------
SCAN = r"""
touch /tmp/scanning
while true; do
  for p in /proc/[0-9]*; do
    [ "$p" = /proc/1 ] && continue
    l=$(readlink $p/exe 2>/dev/null)
    case "$l" in */busybox|"") ;; *) echo "SEEN $p $l" >> /tmp/hits ;; esac
    # what an fd opened through the link really is (the process may exec meanwhile)
    l=$( (exec 3<$p/exe && readlink /proc/self/fd/3) 2>/dev/null)
    case "$l" in */busybox|"") ;; *) echo "READ $p $l" >> /tmp/hits ;; esac
    l=$( (exec 3>>$p/exe && echo opened) 2>/dev/null)
    [ -n "$l" ] && echo "OPENED $p" >> /tmp/hits
  done
done
"""


def test_runtime_binary_cannot_be_reached_through_proc_exe(nbc, scripts):
    """A container scanning /proc/*/exe while `nbc exec` joins it never sees, reads or opens
    for writing anything but its own BusyBox; the host's interpreter is unchanged."""
    host_bins = {os.path.realpath(sys.executable), os.path.realpath("/proc/self/exe")}
    before = {b: _sha256(b) for b in host_bins}
    cid = nbc.ok("run", "-d", "--network", "none", "-v", f"{scripts}:/s:ro", "bb:1",
                 _script(scripts, "scan.sh", SCAN)).strip()
    try:
        _wait_for(nbc, cid, "/tmp/scanning")
        for _ in range(12):
            # the exec'd process tries its own parent too (outside the pid namespace: PPid 0)
            r = nbc("exec", cid, "sh", "-c", 'echo $PPID; (exec 3>>/proc/$PPID/exe) 2>/dev/null && echo OPENED; '
                    '(exec 3>>/proc/self/exe) 2>/dev/null && echo OPENED-SELF; readlink /proc/self/exe')
            assert r.returncode == 0, r.stderr
            assert r.stdout.split() == [b"0", b"/bin/busybox"], r.stdout
        assert nbc("ps", "-q", "--no-trunc").stdout.decode().split() == [cid]  # the scanner still runs
        hits = nbc("exec", cid, "sh", "-c", "cat /tmp/hits 2>/dev/null; true").stdout.decode()
        assert hits == "", hits
        # PID 1 itself is the container's binary and writing to it is refused (text file busy)
        r = nbc("exec", cid, "sh", "-c", "readlink /proc/1/exe; (exec 3>>/proc/1/exe) && echo OPENED")
        assert r.stdout.split() == [b"/bin/busybox"], r.stdout
    finally:
        nbc("rm", "-f", cid)
    assert {b: _sha256(b) for b in host_bins} == before


def test_init_binary_from_the_host_cannot_be_written(nbc):
    """``--init`` bind-mounts the host's init read-only: opening it for writing fails."""
    from nbcontainer.containers.config import find_init_binary
    init = find_init_binary()
    if not init:
        pytest.skip("no init binary (catatonit, tini, docker-init) on this host")
    before = _sha256(init)
    r = nbc("run", "--rm", "--network", "none", "--init", "bb:1", "sh", "-c",
            "(exec 3>>/sbin/docker-init) 2>/dev/null && echo OPENED; "
            "mount -o remount,rw /sbin/docker-init 2>/dev/null && echo REMOUNTED; echo done")
    assert r.stdout == b"done\n", (r.stdout, r.stderr)
    assert _sha256(init) == before


def _import_in_child(planted: Path, seal: bool) -> str:
    """In a fork: maybe seal imports, then import a module planted on sys.path."""
    from nbcontainer.runtime import init
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            sys.path.insert(0, str(planted))
            if seal:
                init.seal_imports()
            builtin = next(n for n in sys.builtin_module_names if n not in sys.modules)
            __import__(builtin)  # built-in modules still load
            try:
                __import__("nbc_planted_mod")
                os.write(w, b"IMPORTED")
            except ImportError as e:
                os.write(w, b"REFUSED " + str(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    return msg


def test_no_python_imports_from_the_container_file_system(tmp_path):
    """Once the runtime is inside the container's root (after pivot_root, or setns for exec) it
    still runs Python with full privileges: a module the image planted on the interpreter's
    path must never be imported."""
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "ran"
    (planted / "nbc_planted_mod.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    assert _import_in_child(planted, seal=True).startswith("REFUSED nbcontainer: refusing to import")
    assert not marker.exists()
    assert _import_in_child(planted, seal=False) == "IMPORTED" and marker.exists()  # the test can fail


# -- (b) CVE-2024-21626 -------------------------------------------------------------------
def test_pid1_and_exec_have_only_stdio_fds_and_cwd_inside(nbc):
    cid = nbc.ok("run", "-d", "--network", "none", "-w", "/tmp", "bb:1", "sleep", "60").strip()
    try:
        out = nbc.ok("exec", cid, "sh", "-c", "ls /proc/1/fd; readlink /proc/1/cwd")
        assert out.split() == ["0", "1", "2", "/tmp"]
        out = nbc.ok("exec", cid, "sh", "-c", "ls /proc/$$/fd; readlink /proc/$$/cwd; pwd")
        assert out.split() == ["0", "1", "2", "/tmp", "/tmp"]
        for n in range(3, 10):
            for wd in (f"/proc/self/fd/{n}", f"/proc/1/fd/{n}"):
                r = nbc("exec", "-w", wd, cid, "sh", "-c", "pwd; ls -a")
                _assert_refused_or_inside(r, wd)
        r = nbc("exec", "-w", "/proc/1/cwd", cid, "pwd")
        assert r.stdout == b"/tmp\n" or r.returncode != 0
    finally:
        nbc("rm", "-f", cid)


def _assert_refused_or_inside(r, wd: str) -> None:
    """``-w`` through a magic link: refused with one line, or a cwd inside the root."""
    if r.returncode != 0:
        assert len(r.stderr.decode().strip().splitlines()) == 1, (wd, r.stderr)
        return
    out = r.stdout.decode().split("\n")
    assert out[0].startswith("/") and "unreachable" not in out[0], (wd, r.stdout)
    # a directory of the host (store, bundle, run root) would list host names
    assert not {"config.json", "state.json", "rootfs", "log.jsonl", "metadata.db"} & set(out[1:]), (wd, r.stdout)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_run_workdir_through_proc_fd_stays_inside(nbc, n):
    r = nbc("run", "--rm", "--network", "none", "-w", f"/proc/self/fd/{n}", "bb:1", "sh", "-c", "pwd; ls -a")
    _assert_refused_or_inside(r, f"/proc/self/fd/{n}")


def test_chdir_inside_refuses_a_directory_outside_the_root(tmp_path):
    """The runtime's chdir: ``/proc/self/fd/N`` of a leaked host directory resolves inside the
    root (textually), and a cwd the kernel reports unreachable from the root is refused."""
    from nbcontainer._linux import syscalls as sc
    from nbcontainer.runtime import init, mounts
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fd = os.open(str(outside), os.O_RDONLY | os.O_DIRECTORY)  # the "leaked" fd
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.mount("proc", str(root / "proc"), "proc")
            os.chroot(str(root))
            results = []
            for attempt in ("magic-link", "guard"):
                try:
                    if attempt == "guard":  # as if the path had followed the magic link
                        os.fchdir(fd)
                        mounts.resolve_in_root = lambda root, path: "."
                    init.chdir_inside(f"/proc/self/fd/{fd}")
                    results.append(f"{attempt}:ACCEPTED:{os.getcwd()}")
                except OSError as e:
                    results.append(f"{attempt}:REFUSED:{e}")
            os.write(w, "\n".join(results).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        lines = f.read().decode().splitlines()
    os.waitpid(pid, 0)
    assert len(lines) == 2, lines
    assert lines[0].startswith("magic-link:REFUSED:"), lines  # resolved inside: no such directory
    assert lines[1].startswith("guard:REFUSED:") and "outside the container" in lines[1], lines
    assert os.listdir(outside) == []


# -- (c) CVE-2022-0492 --------------------------------------------------------------------
RELEASE_AGENT = r"""
mkdir -p /m
for o in memory devices pids freezer rdma cpu,cpuacct none,name=nbcx; do
  mkdir -p /m/$o
  mount -t cgroup -o $o cgroup /m/$o 2>/dev/null && echo "MOUNTED $o"
done
for d in /sys/fs/cgroup/*; do mount -o remount,rw $d 2>/dev/null && echo "REMOUNTED $d"; done
for f in $(find / -xdev -name release_agent 2>/dev/null) $(find /m /sys/fs/cgroup -name release_agent 2>/dev/null); do
  echo "FOUND $f"
  (echo /evil > $f) 2>/dev/null && echo "WROTE $f"
done
echo end
"""


def _release_agents() -> dict:
    out = {}
    for f in glob.glob("/sys/fs/cgroup/*/release_agent"):
        with open(f) as fh:
            out[f] = fh.read()
    return out


@pytest.mark.parametrize("flags", [(), ("--cap-add", "SYS_ADMIN"),
                                   ("--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined")])
def test_release_agent_is_out_of_reach(nbc, scripts, flags):
    before = _release_agents()
    r = nbc("run", "--rm", "--network", "none", *flags, "-v", f"{scripts}:/s:ro", "bb:1",
            _script(scripts, "ra.sh", RELEASE_AGENT))
    out = r.stdout.decode()
    assert out.endswith("end\n"), (out, r.stderr)
    assert "FOUND" not in out and "WROTE" not in out, out
    if not flags:
        assert "MOUNTED" not in out and "REMOUNTED" not in out, out  # no CAP_SYS_ADMIN: no mount at all
    assert _release_agents() == before


# -- (d) mount targets that are symlinks out of the root ----------------------------------
def _host_unchanged(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == ["secret"]
    assert (victim / "secret").read_text() == "host secret\n"
    assert not os.path.ismount(victim)


@pytest.mark.parametrize("target", ["/data", "/rel", "/data/sub/deeper", "/rel/sub"])
def test_bind_mount_on_symlinked_target_stays_in_the_root(nbc, victim, tmp_path, target):
    src = tmp_path / "src"
    src.mkdir()
    (src / "payload").write_text("payload\n")
    r = nbc("run", "--rm", "--network", "none", "-v", f"{src}:{target}", "evil:1", "sh", "-c",
            f"cat {target}/payload; ls {target}; cat {victim}/payload; echo x > {target}/written")
    assert r.stdout.startswith(b"payload\npayload\n"), (r.stdout, r.stderr)
    _host_unchanged(victim)
    assert (src / "written").read_text() == "x\n"  # the write went to the bind source


def test_file_bind_on_symlinked_target_creates_nothing_on_the_host(nbc, victim, tmp_path):
    src = tmp_path / "f"
    src.write_text("file\n")
    marker = "/etc/nbc-escape-test-marker"
    assert not os.path.exists(marker)
    r = nbc("run", "--rm", "--network", "none", "-v", f"{src}:/data/newfile", "-v", f"{src}:/etcl/nbc-escape-test-marker",
            "evil:1", "sh", "-c", "cat /data/newfile /etcl/nbc-escape-test-marker")
    assert r.stdout == b"file\nfile\n", r.stderr
    _host_unchanged(victim)
    assert not os.path.exists(marker)


def test_volume_and_tmpfs_on_symlinked_target(nbc, victim):
    assert not os.path.exists("/etc/nbc-escape-t")
    r = nbc("run", "--rm", "--network", "none", "-v", "nbcesc:/data", "--tmpfs", "/etcl", "evil:1", "sh", "-c",
            "ls -a /data /etcl; echo v > /data/v; echo t > /etcl/nbc-escape-t")
    assert r.returncode == 0, r.stderr
    assert b"secret" not in r.stdout and b"passwd" not in r.stdout  # host dirs neither copied up nor shown
    _host_unchanged(victim)
    assert not os.path.exists("/etc/nbc-escape-t") and not os.path.ismount("/etc")
    r = nbc("run", "--rm", "--network", "none", "-v", "nbcesc:/vol", "bb:1", "cat", "/vol/v")
    assert r.stdout == b"v\n", (r.stdout, r.stderr)
    nbc("volume", "rm", "nbcesc")


# -- (e) exec after the root changed underneath ------------------------------------------
REPLACE_BIN = r"""
/bin/busybox mkdir /keep
/bin/busybox cp /bin/busybox /keep/
/keep/busybox ln -s busybox /keep/test
/keep/busybox rm -rf /bin
/keep/busybox mkdir /bin
/keep/busybox printf '#!/keep/busybox sh\necho CONTAINER-TRUE\n' > /bin/true
/keep/busybox chmod +x /bin/true
/keep/busybox touch /ready
exec /keep/busybox sleep 60
"""

PIVOT = r"""
mkdir /new
mount -t tmpfs t /new || exit 3
mkdir -p /new/bin /new/old /new/proc /new/tmp
cp /bin/busybox /new/bin/
for a in sh cat ls readlink sleep touch test mount umount; do ln -s busybox /new/bin/$a; done
echo NEWROOT > /new/marker
cd /new
pivot_root . old || exit 4
mount -t proc proc /proc
umount -l /old
touch /tmp/ready
exec sleep 60
"""


def test_exec_after_bin_was_replaced_runs_container_binaries(nbc, scripts):
    cid = nbc.ok("run", "-d", "--network", "none", "-v", f"{scripts}:/s:ro", "bb:1",
                 "/bin/sh", _script(scripts, "replace.sh", REPLACE_BIN)).strip()
    try:
        _wait_for(nbc, cid, "/ready", test="/keep/test")
        r = nbc("exec", cid, "ls", "/")
        assert r.returncode == 127 and b"executable file not found" in r.stderr  # the host's ls is not used
        assert nbc("exec", cid, "true").stdout == b"CONTAINER-TRUE\n"
        for p in ("/bin/sh", "/usr/bin/env", "/etc/os-release"):
            assert nbc("exec", cid, p).returncode in (126, 127)
        out = nbc.ok("exec", cid, "/keep/busybox", "sh", "-c",
                     "/keep/busybox readlink /proc/self/ns/mnt; /keep/busybox readlink /proc/1/ns/mnt")
        ours, theirs = out.split()
        assert ours == theirs and ours != os.readlink("/proc/self/ns/mnt")
    finally:
        nbc("rm", "-f", cid)


def test_exec_after_the_container_pivoted_stays_in_its_namespace(nbc, scripts):
    # docker's seccomp profile denies pivot_root even with CAP_SYS_ADMIN: unconfined to try it
    cid = nbc.ok("run", "-d", "--network", "none", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
                 "-v", f"{scripts}:/s:ro", "bb:1", "/bin/sh", _script(scripts, "pivot.sh", PIVOT)).strip()
    try:
        _wait_for(nbc, cid, "/tmp/ready")
        assert nbc.ok("exec", cid, "cat", "/marker") == "NEWROOT\n"
        assert nbc.ok("exec", cid, "ls", "/old") == ""
        assert nbc("exec", cid, "cat", "/etc/os-release").returncode != 0  # nothing of the host
        assert nbc.ok("exec", cid, "readlink", "/proc/self/ns/mnt") != os.readlink("/proc/self/ns/mnt") + "\n"
    finally:
        nbc("rm", "-f", cid)


# -- (f) devices outside the allowlist ----------------------------------------------------
def _host_block_device() -> tuple[str, int, int]:
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram")):
            continue
        with open(f"/sys/block/{name}/dev") as f:
            major, minor = f.read().strip().split(":")
        return name, int(major), int(minor)
    pytest.skip("no disk block device on this host")


def test_mknod_outside_the_allowlist_cannot_be_opened(nbc):
    name, major, minor = _host_block_device()
    script = (f"mknod /dev/{name} b {major} {minor} && echo made; head -c 512 /dev/{name} | wc -c; "
              "mknod /dev/mem2 c 1 1 && echo made; head -c 16 /dev/mem2 | wc -c; "
              "mknod /tmp/kmsg c 1 11; (exec 3</tmp/kmsg) 2>/dev/null && echo opened-kmsg; echo end")
    r = nbc("run", "--rm", "--network", "none", "bb:1", "sh", "-c", script)
    out = r.stdout.decode().split()
    assert out == ["made", "0", "made", "0", "end"], (r.stdout, r.stderr)
    assert r.stderr.count(b"Operation not permitted") >= 2, r.stderr
    # without CAP_MKNOD the node cannot even be made
    r = nbc("run", "--rm", "--network", "none", "--cap-drop", "MKNOD", "bb:1", "mknod", f"/dev/{name}", "b",
            str(major), str(minor))
    assert r.returncode != 0 and b"Operation not permitted" in r.stderr
