"""``nbc run`` confinement options end to end: capabilities, --privileged, seccomp profiles,
no-new-privileges, --device, --device-cgroup-rule and --sysctl, checked from inside.

Every test runs the CLI as a separate process against one private store (module scope) with
the BusyBox image ``bb:1``; containers run with ``--network none`` unless the test is about
a network sysctl.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from helpers.nbc_cli import REPO, nbc_store
from nbcontainer.runtime import seccomp as seccomp_mod


@pytest.fixture(scope="module")
def nbc(tmp_path_factory, busybox_tar_module):
    with nbc_store(tmp_path_factory.mktemp("confine"), busybox_tar_module) as tool:
        yield tool


@pytest.fixture(scope="module")
def busybox_tar_module(tmp_path_factory):
    from helpers.busybox import busybox_available, write_busybox_rootfs_tar
    if not busybox_available():
        pytest.skip("busybox-static is not installed: apt-get install busybox-static")
    return write_busybox_rootfs_tar(tmp_path_factory.mktemp("bb") / "busybox-rootfs.tar")


def _status(out: str, key: str) -> str:
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in {out!r}")


def _host_status(key: str) -> str:
    with open("/proc/self/status") as f:
        return _status(f.read(), key)


def _ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout.decode()


# -- capabilities -------------------------------------------------------------------------
def test_cap_drop_all_leaves_no_capabilities(nbc):
    out = _ok(nbc.sh("grep Cap /proc/self/status", "--cap-drop", "ALL"))
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(_status(out, key), 16) == 0, out


def test_cap_add_sys_admin_allows_mount(nbc):
    script = "mount -t tmpfs t /mnt && echo mounted && grep -c ' /mnt tmpfs' /proc/mounts"
    without = nbc.sh(script)
    assert without.returncode != 0 and b"mounted" not in without.stdout
    assert _ok(nbc.sh(script, "--cap-add", "SYS_ADMIN")).split() == ["mounted", "1"]


def test_cap_add_net_admin_allows_configuring_interfaces(nbc):
    script = "ip addr add 10.99.0.1/32 dev lo && ip addr show lo | grep -c 10.99.0.1"
    without = nbc.sh(script)
    assert without.returncode != 0 and b"Operation not permitted" in without.stderr
    assert _ok(nbc.sh(script, "--cap-add", "NET_ADMIN")).strip() == "1"


def test_cap_drop_chown_makes_chown_fail(nbc):
    script = "touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u /tmp/f"
    assert _ok(nbc.sh(script)).strip() == "1000"  # root may chown by default
    r = nbc.sh(script, "--cap-drop", "CHOWN")
    assert r.returncode != 0 and b"Operation not permitted" in r.stderr, r.stderr


def test_unknown_capability_is_refused(nbc):
    r = nbc("run", "--rm", "--cap-add", "NOT_A_CAP", "bb:1", "true")
    assert r.returncode == 125 and b"NOT_A_CAP" in r.stderr


# -- --privileged --------------------------------------------------------------------------
def test_privileged_has_every_capability_devices_no_seccomp_and_rw_sys(nbc):
    script = ("grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; grep ' /sys sysfs ' /proc/mounts; "
              "ls /dev; wc -c < /proc/timer_list")
    out = _ok(nbc.sh(script, "--privileged"))
    assert _status(out, "CapEff") == _host_status("CapBnd")  # everything the host may grant
    assert _status(out, "Seccomp") == "0"
    sys_line = next(line for line in out.splitlines() if " /sys sysfs " in line)
    assert sys_line.split()[3].startswith("rw"), sys_line
    names = out.split()
    host_loops = [n for n in os.listdir("/dev") if n.startswith("loop") and n[4:].isdigit()]
    assert host_loops and set(host_loops) <= set(names)  # host devices are visible
    assert int(out.split()[-1]) > 0  # /proc/timer_list is not masked

    default = _ok(nbc.sh(script))
    assert _status(default, "Seccomp") == "2"
    assert int(_status(default, "CapEff"), 16) < int(_status(out, "CapEff"), 16)
    assert " ro," in next(line for line in default.splitlines() if " /sys sysfs " in line)
    assert not set(host_loops) & set(default.split())
    assert default.split()[-1] == "0"  # masked with /dev/null


# -- seccomp -------------------------------------------------------------------------------
def test_seccomp_unconfined(nbc):
    assert _status(_ok(nbc.sh("cat /proc/self/status", "--security-opt", "seccomp=unconfined")), "Seccomp") == "0"
    assert _status(_ok(nbc.sh("cat /proc/self/status")), "Seccomp") == "2"


def test_seccomp_profile_denying_mkdir(nbc, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    path = tmp_path / "deny-mkdir.json"
    path.write_text(json.dumps(profile))
    r = nbc.sh("touch /tmp/file && echo touched; mkdir /tmp/d", "--security-opt", f"seccomp={path}")
    assert r.stdout == b"touched\n"
    assert r.returncode != 0 and b"Operation not permitted" in r.stderr, r.stderr
    assert _ok(nbc.sh("mkdir /tmp/d && echo made")) == "made\n"


def test_seccomp_allowlist_profile_with_errno_default(nbc, tmp_path):
    """Docker's own default profile (defaultAction SCMP_ACT_ERRNO + an allowlist) with mkdir
    taken out of the allowlist: everything works but mkdir, which gets EPERM."""
    profile = json.loads(json.dumps(seccomp_mod.load_profile()))
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule.get("names", []) if n not in ("mkdir", "mkdirat")]
    path = tmp_path / "no-mkdir.json"
    path.write_text(json.dumps(profile))
    r = nbc.sh("echo hi > /tmp/f && cat /tmp/f; mkdir /tmp/d", "--security-opt", f"seccomp={path}")
    assert r.stdout == b"hi\n"
    assert r.returncode != 0 and b"Operation not permitted" in r.stderr, r.stderr


def test_bad_seccomp_profile_is_refused(nbc, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    r = nbc("run", "--rm", "--security-opt", f"seccomp={path}", "bb:1", "true")
    assert r.returncode == 125 and len(r.stderr.decode().strip().splitlines()) == 1


# -- no-new-privileges ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def setuid_euid(tmp_path_factory):
    """A static setuid-root program printing its effective uid (compiled with the host's gcc)."""
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.skip("gcc is not installed: no way to build a static setuid test program")
    d = tmp_path_factory.mktemp("suid")
    d.chmod(0o755)  # uid 1000 in the container must reach the program
    (d / "euid.c").write_text('#include <stdio.h>\n#include <unistd.h>\n'
                              'int main(void){printf("%d\\n",(int)geteuid());return 0;}\n')
    r = subprocess.run([gcc, "-static", "-O1", "-o", str(d / "euid"), str(d / "euid.c")], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static program: {r.stderr.decode()[-200:]}")
    os.chown(d / "euid", 0, 0)
    os.chmod(d / "euid", 0o4755)
    assert os.stat(d / "euid").st_mode & stat.S_ISUID
    return d


def test_no_new_privileges(nbc, setuid_euid):
    vol = f"{setuid_euid}:/suid:ro"
    out = _ok(nbc.sh("grep NoNewPrivs /proc/self/status; /suid/euid", "-u", "1000", "-v", vol))
    assert out.split() == ["NoNewPrivs:", "0", "0"]  # the setuid bit works without the option
    out = _ok(nbc.sh("grep NoNewPrivs /proc/self/status; /suid/euid", "-u", "1000", "-v", vol,
                     "--security-opt", "no-new-privileges"))
    assert out.split() == ["NoNewPrivs:", "1", "1000"]  # ... and gains nothing with it


# -- devices -------------------------------------------------------------------------------
def _need(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this host")


def test_device_fuse_is_created_and_allowed(nbc):
    _need("/dev/fuse")
    script = "ls -l /dev/fuse; test -c /dev/fuse && exec 3<>/dev/fuse && echo opened"
    out = _ok(nbc.sh(script, "--device", "/dev/fuse"))
    assert out.startswith("c") and "10," in out and "229" in out and out.endswith("opened\n")
    without = nbc.sh(script)
    assert without.returncode != 0 and b"opened" not in without.stdout


def test_device_with_container_path_and_permissions(nbc):
    _need("/dev/loop0")
    script = ("ls -l /dev/xloop; (exec 3</dev/xloop) && echo read-ok; "
              "(exec 3>/dev/xloop) 2>/dev/null && echo write-ok || echo write-denied")
    out = _ok(nbc.sh(script, "--device", "/dev/loop0:/dev/xloop:r"))
    assert out.startswith("b") and "7," in out
    assert out.split()[-2:] == ["read-ok", "write-denied"]
    out = _ok(nbc.sh(script, "--device", "/dev/loop0:/dev/xloop"))  # default permissions: rwm
    assert out.split()[-2:] == ["read-ok", "write-ok"]


def test_device_cgroup_rule_allows_a_node_made_inside(nbc):
    _need("/dev/fuse")
    script = "mknod /tmp/f c 10 229 && (exec 3<>/tmp/f) && echo opened"
    assert b"opened" not in nbc.sh(script).stdout
    assert _ok(nbc.sh(script, "--device-cgroup-rule", "c 10:229 rwm")) == "opened\n"


@pytest.mark.parametrize("argv,needle", [
    (["--device", "/etc/passwd"], b"not a device node"),
    (["--device", "/dev/nonexistent-dev"], b"/dev/nonexistent-dev"),
    (["--device", "/dev/null:/dev/x:rwz"], b"rwz"),
    (["--device", "dev/null"], b"dev/null"),
    (["--device-cgroup-rule", "x 1:2 rwm"], b"x 1:2 rwm"),
    (["--sysctl", "vm.swappiness=10"], b"vm.swappiness"),
    (["--sysctl", "kernel.pid_max=100000"], b"kernel.pid_max"),
    (["--sysctl", "kernel.hostname=x"], b"kernel.hostname"),
    (["--sysctl", "noequals"], b"noequals"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], b"net.ipv4.ip_forward"),
])
def test_bad_device_and_sysctl_values_are_refused_leaving_nothing(nbc, argv, needle):
    before = nbc.ok("ps", "-aq")
    r = nbc("run", "--rm", *argv, "bb:1", "true")
    assert r.returncode == 125
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and needle.decode() in lines[0], r.stderr
    assert nbc.ok("ps", "-aq") == before


# -- sysctls -------------------------------------------------------------------------------
def test_sysctl_net_is_set_inside_only(nbc):
    key = "/proc/sys/net/ipv4/tcp_keepalive_time"
    with open(key) as f:
        host_before = f.read().strip()
    assert host_before != "1234"
    r = nbc("run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "net.ipv4.tcp_keepalive_time=1234",
            "bb:1", "cat", "/proc/sys/net/ipv4/ip_forward", key)
    assert _ok(r).split() == ["1", "1234"]
    assert _ok(nbc("run", "--rm", "bb:1", "cat", key)).strip() != "1234"
    with open(key) as f:
        assert f.read().strip() == host_before


def test_sysctl_ipc_is_set_inside_only(nbc):
    with open("/proc/sys/kernel/msgmax") as f:
        host_before = f.read().strip()
    out = _ok(nbc.sh("cat /proc/sys/kernel/msgmax /proc/sys/fs/mqueue/msg_max", "--sysctl", "kernel.msgmax=4321",
                     "--sysctl", "fs.mqueue.msg_max=33"))
    assert out.split() == ["4321", "33"]
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read().strip() == host_before


def test_sysctl_and_devices_through_the_python_api(nbc):
    _need("/dev/fuse")
    script = """
import json, nbcontainer
client = nbcontainer.from_env()
c = client.containers.create("bb:1", ["sh", "-c", "cat /proc/sys/kernel/shmmni; ls /dev/fuse"],
                             devices=["/dev/fuse:/dev/fuse:rwm"], sysctls={"kernel.shmmni": "555"},
                             network_mode="none")
try:
    hc = c.attrs["HostConfig"]
    c.start()
    code = c.wait()["StatusCode"]
    print(json.dumps({"devices": hc["Devices"], "sysctls": hc["Sysctls"], "code": code,
                      "logs": c.logs().decode()}))
finally:
    c.remove(force=True)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, env=nbc.env, cwd=str(REPO), timeout=60)
    got = json.loads(_ok(r))
    assert got == {"devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}],
                   "sysctls": {"kernel.shmmni": "555"}, "code": 0, "logs": "555\n/dev/fuse\n"}
