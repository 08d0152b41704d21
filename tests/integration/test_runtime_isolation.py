"""What a process sees inside a default container (namespaces, mounts, /dev, privileges)."""
from __future__ import annotations

import os

from test_runtime_support import busybox_lower, make_bundle, rt, run, sh  # noqa: F401


def test_pid1_is_the_command(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
    assert code == 0
    assert out.splitlines() == ["1", "sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' ' "]


def test_hostname_and_no_host_processes(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "hostname; ps -o pid,comm | tail -n +2 | wc -l; cat /etc/hostname 2>/dev/null; ls /proc | grep -c '^[0-9]'")
    lines = out.split()
    assert code == 0
    assert lines[0] == "c0ffee123456"
    assert int(lines[1]) <= 4  # sh, ps, tail/wc: nothing of the host's hundreds
    assert int(lines[-1]) <= 5


def test_no_host_mounts_and_docker_mount_table(rt, make_bundle, tmp_path):
    code, out, _ = sh(rt, make_bundle, "cat /proc/self/mounts")
    assert code == 0
    assert str(tmp_path) not in out and "/work" not in out
    table = {line.split()[1]: line.split() for line in out.splitlines()}
    assert table["/"][2] == "overlay"
    assert table["/proc"][2] == "proc" and "nosuid,nodev,noexec" in table["/proc"][3]
    assert table["/dev"][2] == "tmpfs" and "size=65536k,mode=755" in table["/dev"][3]
    assert "nodev" not in table["/dev"][3]
    assert table["/dev/pts"][2] == "devpts" and "gid=5,mode=620,ptmxmode=666" in table["/dev/pts"][3]
    assert table["/dev/shm"][3].startswith("rw,nosuid,nodev,noexec") and "size=65536k" in table["/dev/shm"][3]
    assert table["/dev/mqueue"][2] == "mqueue"
    assert table["/sys"][2] == "sysfs" and table["/sys"][3].startswith("ro,")
    assert table["/sys/fs/cgroup"][2] in ("tmpfs", "cgroup2")
    cg = [m for m in table.values() if m[1].startswith("/sys/fs/cgroup/")]
    assert all(m[3].startswith("ro,") for m in cg)


def test_files_written_inside_stay_in_the_upper_dir(rt, make_bundle, busybox_lower):
    bundle = make_bundle(["sh", "-c", "echo data > /newfile; rm /bin/vi; echo ok"])
    code, out, _, _ = run(rt, bundle)
    assert (code, out) == (0, b"ok\n")
    assert not (busybox_lower / "newfile").exists()
    assert (busybox_lower / "bin" / "vi").is_symlink()  # the lower layer is untouched
    assert (bundle / "upper" / "newfile").read_text() == "data\n"
    assert not os.path.exists("/newfile")


def test_dev_contents(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "ls -l /dev | tail -n +2 | awk '{print $1, $NF}'")
    assert code == 0
    entries = {line.split()[-1]: line.split()[0] for line in out.splitlines()}
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        assert entries[node] == "crw-rw-rw-", node
    for link in ("/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"):
        assert link in entries
    assert {"pts", "shm", "mqueue"} <= set(entries)


def test_masked_and_readonly_paths(rt, make_bundle):
    script = ("cat /proc/keys | wc -c; ls /proc/acpi 2>/dev/null | wc -l; ls /sys/firmware | wc -l; "
              "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo writable || echo ro; "
              "echo x > /proc/sysrq-trigger 2>/dev/null && echo writable || echo ro")
    code, out, _ = sh(rt, make_bundle, script)
    assert out.split() == ["0", "0", "0", "ro", "ro"]


def test_default_privileges(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "grep -E '^(CapEff|CapBnd|CapInh|NoNewPrivs|Seccomp):' /proc/self/status")
    status = dict(line.split(":\t") for line in out.splitlines())
    assert status["CapEff"] == "00000000a80425fb"
    assert status["CapBnd"] == "00000000a80425fb"
    assert status["CapInh"] == "0000000000000000"
    assert status["NoNewPrivs"] == "0"
    assert status["Seccomp"] == "2"


def test_blocked_by_seccomp_and_caps(rt, make_bundle):
    code, out, err = sh(rt, make_bundle, "mount -t tmpfs t /mnt 2>&1; unshare -n true 2>&1; echo done")
    assert "done" in out
    assert "mount: permission denied" in out, out
    assert "unshare(0x40000000): Operation not permitted" in out, out


def test_pid1_has_only_stdio_fds_and_cwd_inside(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "ls /proc/1/fd; readlink /proc/1/cwd", cwd="/tmp")
    assert out.split() == ["0", "1", "2", "/tmp"]


def test_loopback_is_up_and_no_other_interfaces(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo pong")
    assert out.split()[0] == "lo" and "pong" in out.split()


def test_user_and_readonly_root(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "id -u; id -g; touch /x 2>/dev/null && echo rw || echo ro; grep CapEff /proc/self/status",
                      uid=1000, gid=1000, readonly_root=True)
    lines = out.split()
    assert lines[:3] == ["1000", "1000", "ro"]
    assert lines[-1] == "0000000000000000"


def test_symlinked_mount_target_stays_inside_the_root(rt, make_bundle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "payload"
    src.write_text("payload\n")

    def hook(spec, bundle):
        (bundle / "upper" / "escape").symlink_to(str(outside))  # absolute: means in-root
        spec["mounts"].append({"destination": "/escape/file", "type": "bind", "source": str(src),
                               "options": ["rbind", "ro"]})
    code, out, _, _ = run(rt, make_bundle(["cat", f"{outside}/file"], spec_hook=hook))
    assert (code, out) == (0, b"payload\n")
    assert not (outside / "file").exists()  # nothing was created on the host side


def test_cgroup_is_the_containers_own(rt, make_bundle):
    code, out, _ = sh(rt, make_bundle, "cat /proc/self/cgroup")
    assert code == 0
    assert all(line.endswith(":/") for line in out.splitlines()), out


def test_sysctls_and_rlimits_are_applied(rt, make_bundle):
    def hook(spec, bundle):
        spec["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "1234"}
        spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]
    code, out, _, _ = run(rt, make_bundle(["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start "
                                           "/proc/sys/kernel/shmmni; ulimit -n; ulimit -Hn"], spec_hook=hook))
    assert out.split() == [b"0", b"1234", b"321", b"654"]
    with open("/proc/sys/kernel/shmmni") as f:
        assert f.read().strip() != "1234"  # the host's IPC namespace is untouched
