"""Capabilities + seccomp applied in a forked child, then checked from the exec'd program.

The child follows the order the runtime must use (nbcontainer.runtime.seccomp docstring):
install_filter while still privileged, then finalize_process (bounding drop, user switch,
capset), then execve.  Needs root and libseccomp.
"""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from nbcontainer.errors import RuntimeFailure
from nbcontainer.runtime import capabilities as caps
from nbcontainer.runtime import seccomp

DEFAULT = list(caps.DOCKER_DEFAULT_CAPS)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop capabilities and switch users")


@pytest.fixture(scope="module", autouse=True)
def _need_libseccomp():
    try:
        seccomp._libseccomp()
    except RuntimeFailure as e:
        pytest.skip(f"libseccomp unavailable: {e}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed on this host")
    return path


def run_confined(argv, *, cap_list=DEFAULT, uid=0, gid=0, filter_caps=None, drop_caps=True,
                 nnp=False, wrong_order=False, process=None):
    """Fork; in the child confine and exec ``argv``.  Returns (exit status, combined output)."""
    oci = seccomp.profile_to_oci(seccomp.load_profile(), filter_caps if filter_caps is not None else cap_list)
    process_caps = caps.caps_from_spec(caps.compute_process_caps(cap_list, uid))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.chdir("/")
            if process is not None:  # the one-call API the runtime uses
                seccomp.confine_process(process, oci)
            elif wrong_order:
                caps.finalize_process(process_caps, uid, gid, [])
                seccomp.install_filter(oci)
            elif nnp:
                if drop_caps:
                    caps.finalize_process(process_caps, uid, gid, [])
                from nbcontainer._linux import syscalls as sc
                sc.set_no_new_privs()
                seccomp.install_filter(oci, no_new_privs=True)
            else:
                seccomp.install_filter(oci)
                if drop_caps:
                    caps.finalize_process(process_caps, uid, gid, [])
            os.execve(argv[0], argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except BaseException as e:  # report to the parent, never run pytest code
            os.write(2, f"CHILD-ERROR {type(e).__name__}: {e}\n".encode())
            os._exit(111)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _status_fields(out: str) -> dict:
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Seccomp", "NoNewPrivs", "Uid"):
            fields[key] = value.split()[0] if value.split() else ""
    return fields


def test_root_gets_docker_defaults():
    sh = _tool("sh")
    rc, out = run_confined([sh, "-c", "cat /proc/self/status"])
    assert rc == 0, out
    f = _status_fields(out)
    assert f["CapEff"] == "00000000a80425fb"
    assert f["CapPrm"] == "00000000a80425fb"
    assert f["CapBnd"] == "00000000a80425fb"
    assert f["CapInh"] == "0000000000000000"
    assert f["CapAmb"] == "0000000000000000"
    assert f["Seccomp"] == "2"
    assert f["NoNewPrivs"] == "0"


def test_namespaces_mount_and_personality_are_refused():
    sh, _u, _s, _b = _tool("sh"), _tool("unshare"), _tool("setarch"), _tool("busybox")
    script = ("unshare -U true; echo unshare_rc=$?; "
              "busybox mount -t tmpfs none /mnt; echo mount_rc=$?; "
              "setarch -R true; echo setarch_rc=$?; "
              "setarch linux64 true; echo setarch_plain_rc=$?")
    rc, out = run_confined([sh, "-c", script])
    assert rc == 0, out
    assert "unshare_rc=1" in out and "Operation not permitted" in out
    assert "mount_rc=0" not in out
    assert "setarch_rc=1" in out
    assert "setarch_plain_rc=0" in out  # personality(PER_LINUX) stays allowed


def test_non_root_user_gets_no_effective_caps():
    sh = _tool("sh")
    rc, out = run_confined([sh, "-c", "cat /proc/self/status; id -u"], uid=1000, gid=1000)
    assert rc == 0, out
    f = _status_fields(out)
    assert f["Uid"] == "1000"
    assert f["CapEff"] == f["CapPrm"] == f["CapInh"] == f["CapAmb"] == "0000000000000000"
    assert f["CapBnd"] == "00000000a80425fb"
    assert f["Seccomp"] == "2" and f["NoNewPrivs"] == "0"


def test_seccomp_alone_blocks_unshare_even_with_full_caps():
    unshare = _tool("unshare")
    rc, out = run_confined([unshare, "-m", "true"], drop_caps=False)
    assert rc != 0 and "Operation not permitted" in out, out
    # control: the same filter resolved with CAP_SYS_ADMIN allows it
    rc, out = run_confined([unshare, "-m", "true"], drop_caps=False, filter_caps=DEFAULT + ["CAP_SYS_ADMIN"])
    assert rc == 0, out


PY_PROBE = r"""
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(435, None, 0)  # clone3
print("clone3", r, ctypes.get_errno())
for fam in (38, 40):
    try:
        socket.socket(fam, socket.SOCK_SEQPACKET)
        print("family", fam, "ok")
    except OSError as e:
        print("family", fam, e.errno)
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
print("inet ok")
import subprocess
print("child", subprocess.run(["true"]).returncode)
"""


def test_clone3_enosys_and_socket_families():
    rc, out = run_confined([sys.executable, "-c", PY_PROBE])
    assert rc == 0, out
    assert "clone3 -1 38" in out
    assert "family 38 1" in out and "family 40 1" in out
    assert "inet ok" in out
    assert "child 0" in out  # fork/exec (clone without CLONE_NEW*) still works


def test_no_new_privs_variant_installs_last():
    sh = _tool("sh")
    rc, out = run_confined([sh, "-c", "cat /proc/self/status"], nnp=True)
    assert rc == 0, out
    f = _status_fields(out)
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "2" and f["CapEff"] == "00000000a80425fb"


def test_wrong_order_fails_clearly():
    sh = _tool("sh")
    rc, out = run_confined([sh, "-c", "true"], wrong_order=True)
    assert rc == 111
    assert "RuntimeFailure" in out and "CAP_SYS_ADMIN" in out


def test_confine_process_from_oci_spec():
    sh = _tool("sh")
    process = {"user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
               "capabilities": caps.compute_process_caps(DEFAULT, 1000), "noNewPrivileges": False}
    rc, out = run_confined([sh, "-c", "cat /proc/self/status"], process=process)
    assert rc == 0, out
    f = _status_fields(out)
    assert f["Uid"] == "1000" and f["CapEff"] == "0000000000000000" and f["CapBnd"] == "00000000a80425fb"
    assert f["Seccomp"] == "2" and f["NoNewPrivs"] == "0"
    groups = next(line for line in out.splitlines() if line.startswith("Groups:")).split()[1:]
    assert groups == ["10", "20"]
    process = {"user": {"uid": 0, "gid": 0}, "capabilities": caps.compute_process_caps(DEFAULT, 0),
               "noNewPrivileges": True}
    rc, out = run_confined([sh, "-c", "cat /proc/self/status"], process=process)
    f = _status_fields(out)
    assert rc == 0 and f["NoNewPrivs"] == "1" and f["CapEff"] == "00000000a80425fb" and f["Seccomp"] == "2"


def test_install_filter_reports_names_unknown_to_libseccomp():
    oci = seccomp.default_oci(DEFAULT)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            skipped = seccomp.install_filter(oci)
            os.write(w, ("\n".join(skipped) + "\n").encode())
            os._exit(0)
        except BaseException:
            os._exit(111)
    os.close(w)
    data = os.read(r, 65536).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    skipped = set(data.split())
    listed = {n for rule in oci["syscalls"] for n in rule["names"]}
    assert skipped <= listed
    assert not {"read", "write", "execve", "clone", "socket"} & skipped


def test_privileged_gets_every_cap_the_host_allows():
    sh = _tool("sh")
    every = list(caps.CAPABILITIES)
    with open("/proc/self/status") as f:
        host = _status_fields(f.read())
    rc, out = run_confined([sh, "-c", "cat /proc/self/status"], cap_list=every, filter_caps=every)
    assert rc == 0, out
    f = _status_fields(out)
    assert f["CapEff"] == f["CapPrm"] == f["CapBnd"] == host["CapBnd"]


def _has_interpreter(path: str) -> bool:
    """True if the ELF file has a PT_INTERP header (is dynamically linked); 64-bit LE only."""
    import struct
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return True  # not a 64-bit ELF: don't try to run it in a bare root
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def test_in_namespaces_after_pivot_root(tmp_path):
    """mounts + pivot_root + sethostname, then confine_process, then exec: the runtime's order."""
    from nbcontainer._linux import syscalls as sc
    busybox = _tool("busybox")
    if _has_interpreter(busybox):
        pytest.skip("busybox is dynamically linked; need busybox-static for a bare root")
    root = tmp_path / "rootfs"
    for d in ("bin", "proc", "mnt", "tmp"):
        (root / d).mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    process = {"user": {"uid": 0, "gid": 0}, "capabilities": caps.compute_process_caps(DEFAULT, 0)}
    oci = seccomp.default_oci(DEFAULT)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
            sc.mount("proc", root / "proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
            os.chdir(root)
            sc.pivot_root(".", ".")
            sc.umount2(".", sc.MNT_DETACH)
            os.chdir("/")
            sc.sethostname("c0ffee123456")
            seccomp.confine_process(process, oci)
            os.execve("/bin/busybox", ["sh", "-c", "cat /proc/self/status; hostname; "
                                       "busybox mount -t tmpfs none /mnt; echo mount_rc=$?; "
                                       "busybox hostname other; echo hostname_rc=$?"], {"PATH": "/bin"})
        except BaseException as e:
            os.write(2, f"CHILD-ERROR {type(e).__name__}: {e}\n".encode())
            os._exit(111)
    os.close(w)
    chunks = []
    while (b := os.read(r, 65536)):
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, out
    f = _status_fields(out)
    assert f["CapEff"] == "00000000a80425fb" and f["Seccomp"] == "2", out
    assert "c0ffee123456" in out
    assert "mount_rc=0" not in out and "hostname_rc=0" not in out
