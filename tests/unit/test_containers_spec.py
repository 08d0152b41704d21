"""Unit tests: the OCI spec a default container gets (docker's confinement defaults)."""
from __future__ import annotations

from pathlib import Path

from nbcontainer.containers.config import build_config
from nbcontainer.containers.options import RunOptions
from nbcontainer.containers.rootfs import ExecUser
from nbcontainer.containers.spec import MASKED_PATHS, READONLY_PATHS, autoremove_args, build_spec

CID = "3c7dee033ced" + "a" * 52
FILES = {"hosts": Path("/c/hosts"), "hostname": Path("/c/hostname"), "resolv.conf": Path("/c/resolv.conf")}


def spec_for(o=RunOptions(), image=None, command=None, user=ExecUser(0, 0, [], "/root"), mounts=()):
    c, h, plan = build_config("bb", image or {"Cmd": ["sh"]}, command, o)
    c["Hostname"] = c["Hostname"] or CID[:12]
    return build_spec(CID, c, h, list(mounts), user, rootfs=Path("/c/rootfs"), network_files=FILES)


def test_default_confinement():
    s = spec_for()
    assert s["hostname"] == "3c7dee033ced"
    assert {n["type"] for n in s["linux"]["namespaces"]} == {"pid", "mount", "uts", "ipc", "network", "cgroup"}
    caps = s["process"]["capabilities"]
    assert len(caps["bounding"]) == 14 and caps["effective"] == caps["bounding"] and caps["inheritable"] == []
    assert "CAP_SYS_ADMIN" not in caps["bounding"] and "CAP_NET_RAW" in caps["bounding"]
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert s["linux"]["maskedPaths"] == MASKED_PATHS and s["linux"]["readonlyPaths"] == READONLY_PATHS
    assert s["process"]["noNewPrivileges"] is False
    by_dest = {m["destination"]: m for m in s["mounts"]}
    assert "size=67108864" in by_dest["/dev/shm"]["options"]
    assert by_dest["/dev"]["type"] == "tmpfs" and "ro" in by_dest["/sys"]["options"]
    assert by_dest["/etc/hosts"]["source"] == "/c/hosts" and by_dest["/etc/resolv.conf"]["type"] == "bind"
    assert s["root"] == {"path": "/c/rootfs", "readonly": False}
    env = s["process"]["env"]
    assert env[0].startswith("PATH=/usr/local/sbin") and "HOSTNAME=3c7dee033ced" in env and "HOME=/root" in env
    assert not any(e.startswith("TERM=") for e in env)
    assert s["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"
    assert "hooks" not in s and len(s["linux"]["resources"]["devices"]) == 13


def test_flags_reach_the_spec():
    o = RunOptions(tty=True, read_only=True, hostname="web", cap_drop=["ALL"], cap_add=["chown"],
                   security_opt=["no-new-privileges", "seccomp=unconfined"], env=["PATH=/x", "HOME=/h"],
                   tmpfs=["/run:exec,size=1m"], shm_size="1m", workdir="/srv")
    mounts = [{"Type": "tmpfs", "Destination": "/run", "Mode": "exec,size=1m", "RW": True, "Source": ""},
              {"Type": "bind", "Destination": "/a/b", "Source": "/host/b", "RW": False, "Propagation": "rprivate"},
              {"Type": "volume", "Destination": "/a", "Source": "/vol/_data", "RW": True}]
    s = spec_for(o, mounts=mounts, user=ExecUser(1000, 1000, [50], "/home/app"))
    assert s["hostname"] == "web" and s["root"]["readonly"] is True and s["process"]["terminal"] is True
    assert s["process"]["noNewPrivileges"] is True and "seccomp" not in s["linux"]
    assert s["process"]["capabilities"]["bounding"] == ["CAP_CHOWN"]
    assert s["process"]["capabilities"]["effective"] == []  # non-root: docker clears effective/permitted
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50]}
    env = s["process"]["env"]
    assert "PATH=/x" in env and "TERM=xterm" in env and "HOME=/h" in env and env.count("HOME=/h") == 1
    assert s["process"]["cwd"] == "/srv"
    dests = [m["destination"] for m in s["mounts"]]
    assert dests.index("/a") < dests.index("/a/b")  # parents first
    run = next(m for m in s["mounts"] if m["destination"] == "/run")
    assert "noexec" not in run["options"] and "size=1m" in run["options"]
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert "size=1048576" in shm["options"]
    bind = next(m for m in s["mounts"] if m["destination"] == "/a/b")
    assert bind["options"][-1] == "ro" and bind["source"] == "/host/b"


def test_privileged_and_host_network():
    s = spec_for(RunOptions(privileged=True, network="host"))
    assert len(s["process"]["capabilities"]["bounding"]) == 41 and "seccomp" not in s["linux"]
    assert s["linux"]["maskedPaths"] == [] and "network" not in {n["type"] for n in s["linux"]["namespaces"]}


def test_entrypoint_and_init():
    s = spec_for(RunOptions(entrypoint="/bin/echo"), command=["hi"])
    assert s["process"]["args"] == ["/bin/echo", "hi"]


def test_autoremove_hook(tmp_path):
    c, h, _ = build_config("bb", {"Cmd": ["true"]}, None, RunOptions(auto_remove=True))
    c["Hostname"] = CID[:12]
    hook = autoremove_args(tmp_path / "root", tmp_path / "run", CID)
    s = build_spec(CID, c, h, [], ExecUser(0, 0, [], "/"), rootfs=tmp_path, network_files=FILES,
                   autoremove_hook=hook)
    (h0,) = s["hooks"]["poststop"]
    # an isolated interpreter (-I -S: no site processing) that imports this very package
    assert h0["args"][1:4] == ["-I", "-S", "-c"] and "from nbcontainer.containers.autoremove import main" in h0["args"][4]
    assert h0["args"][5:] == [str(tmp_path / "root"), str(tmp_path / "run"), CID]
    assert any(e.startswith("PATH=") for e in h0["env"])


def test_python_hook_runs_the_module_isolated(tmp_path):
    import subprocess
    from nbcontainer.containers.spec import python_hook
    argv = python_hook("nbcontainer.containers.autoremove", str(tmp_path / "none"), str(tmp_path), CID)
    r = subprocess.run(argv, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert r.returncode == 0 and r.stderr == ""  # no store there: nothing to remove, no error
    r = subprocess.run(argv[:5] + ["x"], capture_output=True, text=True, env={}, cwd="/")
    assert r.returncode == 2 and "usage" in r.stderr


def test_seccomp_profile_file_is_kept_inline(tmp_path):
    import json
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
    c, h, _ = build_config("bb", {"Cmd": ["sh"]}, None, RunOptions(security_opt=[f"seccomp={prof}"]))
    prof.unlink()  # the container must not depend on the file any more
    c["Hostname"] = CID[:12]
    s = build_spec(CID, c, h, [], ExecUser(0, 0, [], "/"), rootfs=Path("/r"), network_files=FILES)
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"
    assert s["linux"]["seccomp"]["syscalls"][0]["names"] == ["mkdir"]
