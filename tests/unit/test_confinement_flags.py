"""--device, --device-cgroup-rule and --sysctl: parsing, validation, HostConfig and the OCI spec
(no root needed: host device nodes are only stat'ed)."""
from __future__ import annotations

import os

import pytest

from nbcontainer.containers import devices_opt
from nbcontainer.containers.config import build_config
from nbcontainer.containers.options import RunOptions
from nbcontainer.containers.rootfs import ExecUser
from nbcontainer.containers.spec import DEFAULT_DEVICE_RULES, build_spec
from nbcontainer.containers.sysctl import validate_sysctls
from nbcontainer.errors import InvalidArgument

IMAGE_CONFIG = {"Cmd": ["sh"], "Env": ["PATH=/bin"]}


def _build(**kw):
    kw.setdefault("network", "none")
    return build_config("bb:1", IMAGE_CONFIG, None, RunOptions(**kw))


def _spec(host_config, tmp_path):
    config = {"Cmd": ["sh"], "Env": [], "Hostname": "h"}
    return build_spec("c" * 64, config, host_config, [], ExecUser(0, 0, [], "/root"), rootfs=tmp_path,
                      network_files={})


# -- --device parsing ------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    ("/dev/fuse", ("/dev/fuse", "/dev/fuse", "rwm")),
    ("/dev/fuse:rw", ("/dev/fuse", "/dev/fuse", "rw")),
    ("/dev/fuse:r", ("/dev/fuse", "/dev/fuse", "r")),
    ("/dev/sdc:/dev/xvdc", ("/dev/sdc", "/dev/xvdc", "rwm")),
    ("/dev/sdc:/dev/xvdc:m", ("/dev/sdc", "/dev/xvdc", "m")),
    ("/dev/null:/dev/sub/dir/", ("/dev/null", "/dev/sub/dir", "rwm")),
])
def test_parse_device(value, expected):
    d = devices_opt.parse_device(value)
    assert (d["PathOnHost"], d["PathInContainer"], d["CgroupPermissions"]) == expected


@pytest.mark.parametrize("value", ["", "dev/fuse", "/dev/fuse:/x:rwx", "/dev/fuse:/x:rr", "/a:/b:r:extra",
                                   "/dev/fuse:relative", "/dev/fuse:/", "/dev/fuse:/dev/../etc/x", "/dev/\0x",
                                   "/dev/fuse:/dev", "/dev/fuse:/etc/fuse"])
def test_parse_device_refuses(value):
    with pytest.raises(InvalidArgument) as ei:
        devices_opt.parse_device(value)
    assert "\n" not in str(ei.value)


def test_host_path_must_be_a_device(tmp_path):
    assert devices_opt.parse_devices(["/dev/null:/dev/mynull:r"]) == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidArgument, match="not a device node") as ei:
        devices_opt.parse_devices([str(f)])
    assert str(f) in str(ei.value)
    with pytest.raises(InvalidArgument, match="no such file"):
        devices_opt.parse_devices([str(tmp_path / "missing")])
    with pytest.raises(InvalidArgument, match="no device nodes"):
        devices_opt.parse_devices([str(tmp_path)])
    os.symlink("/dev/null", tmp_path / "devlink")
    with pytest.raises(InvalidArgument, match="below /dev"):
        devices_opt.parse_devices([str(tmp_path / "devlink")])  # a device, but outside /dev by default
    assert devices_opt.parse_devices([f"{tmp_path / 'devlink'}:/dev/ok"])[0]["PathInContainer"] == "/dev/ok"
    with pytest.raises(InvalidArgument, match="duplicate"):
        devices_opt.parse_devices(["/dev/null:/dev/x", "/dev/zero:/dev/x"])


def test_a_directory_of_devices_is_expanded(tmp_path):
    d = tmp_path / "devs"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_text("not a device")
    os.symlink("/dev/null", d / "null")  # docker follows links to device nodes
    os.symlink("/dev/zero", d / "sub" / "zero")
    got = devices_opt.parse_devices([f"{d}:/dev/mine:rw"])
    assert got == [
        {"PathOnHost": str(d / "null"), "PathInContainer": "/dev/mine/null", "CgroupPermissions": "rw"},
        {"PathOnHost": str(d / "sub" / "zero"), "PathInContainer": "/dev/mine/sub/zero", "CgroupPermissions": "rw"},
    ]


@pytest.mark.parametrize("rule", ["c 1:3 rwm", "b *:* m", "a *:* rwm", "c 136:* rw", " c 10:229 r "])
def test_cgroup_rule_ok(rule):
    assert devices_opt.parse_cgroup_rule(rule) == rule.strip()


@pytest.mark.parametrize("rule", ["", "c 1:3", "x 1:3 rwm", "c 1 rwm", "c a:b rwm", "c 1:3 rwx", "c 1:3 rrw"])
def test_cgroup_rule_refused(rule):
    with pytest.raises(InvalidArgument, match="device cgroup rule"):
        devices_opt.parse_cgroup_rule(rule)


def test_oci_devices_nodes_and_rules():
    st = os.stat("/dev/null")
    nodes, rules = devices_opt.oci_devices(
        [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/other", "CgroupPermissions": "rw"}], ["b 8:* r"])
    assert nodes == [{"path": "/dev/other", "type": "c", "major": 1, "minor": 3, "fileMode": st.st_mode & 0o7777,
                      "uid": st.st_uid, "gid": st.st_gid}]
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                     {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "r"}]


def test_host_devices_skip_runtime_provided_entries():
    nodes = devices_opt.host_devices()
    paths = {n["path"] for n in nodes}
    assert "/dev/null" in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/", "/dev/mqueue/")) for p in paths)
    assert "/dev/console" not in paths and "/dev/ptmx" not in paths
    assert all(n["type"] in ("c", "b") for n in nodes)


# -- sysctls ---------------------------------------------------------------------------------
def test_namespaced_sysctls_are_accepted():
    assert validate_sysctls(["kernel.shmmax=1", "kernel.msgmnb=2", "fs.mqueue.msg_max=3", "net.ipv4.ip_forward=1",
                             "kernel.sem=250 32000 100 128"]) == {
        "kernel.shmmax": "1", "kernel.msgmnb": "2", "fs.mqueue.msg_max": "3", "net.ipv4.ip_forward": "1",
        "kernel.sem": "250 32000 100 128"}
    assert validate_sysctls({"net.core.somaxconn": 1024}) == {"net.core.somaxconn": "1024"}
    assert validate_sysctls(["kernel.shm_rmid_forced=1"], "host") == {"kernel.shm_rmid_forced": "1"}


@pytest.mark.parametrize("values,network,needle", [
    (["vm.swappiness=1"], "bridge", "vm.swappiness"),
    (["kernel.pid_max=4194304"], "bridge", "kernel.pid_max"),
    (["kernel.hostname=x"], "bridge", "--hostname"),
    (["kernel.domainname=x"], "bridge", "--domainname"),
    (["fs.file-max=1"], "bridge", "fs.file-max"),
    (["net.ipv4.ip_forward=1"], "host", "--network host"),
    (["net.ipv4.ip_forward=1"], "container:abc", "container:abc"),
    (["novalue"], "bridge", "novalue"),
    (["=1"], "bridge", "=1"),
    (["net.ipv4.ip_forward=1\nvm.x=2"], "bridge", "net.ipv4.ip_forward"),
    (["../../etc=1"], "bridge", "../../etc"),
])
def test_sysctls_refused_with_one_line_naming_the_key(values, network, needle):
    with pytest.raises(InvalidArgument) as ei:
        validate_sysctls(values, network)
    assert needle in str(ei.value) and "\n" not in str(ei.value)


# -- HostConfig and spec -----------------------------------------------------------------------
def test_host_config_fields():
    _, hc, _ = _build(devices=["/dev/null:/dev/n:r"], device_cgroup_rules=["c 1:5 rwm"],
                      sysctls=["kernel.msgmax=99"])
    assert hc["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "r"}]
    assert hc["DeviceCgroupRules"] == ["c 1:5 rwm"]
    assert hc["Sysctls"] == {"kernel.msgmax": "99"}
    _, hc, _ = _build()
    assert hc["Devices"] == [] and hc["DeviceCgroupRules"] is None and "Sysctls" not in hc


def test_host_network_refuses_net_sysctls_in_build_config():
    with pytest.raises(InvalidArgument, match="net.core.somaxconn"):
        _build(network="host", sysctls={"net.core.somaxconn": "1"})


def test_spec_devices_rules_and_sysctls(tmp_path):
    _, hc, _ = _build(network="bridge", devices=["/dev/null:/dev/n:r"], device_cgroup_rules=["c 10:229 rwm"],
                      sysctls={"kernel.shmmni": "7"})
    linux = _spec(hc, tmp_path)["linux"]
    assert [d["path"] for d in linux["devices"]] == ["/dev/n"]
    rules = linux["resources"]["devices"]
    assert rules[:len(DEFAULT_DEVICE_RULES)] == DEFAULT_DEVICE_RULES  # deny-all first, then the defaults
    assert rules[len(DEFAULT_DEVICE_RULES):] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]
    assert linux["sysctl"]["kernel.shmmni"] == "7"
    assert linux["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"  # docker's defaults stay


def test_spec_privileged_gets_every_host_device(tmp_path):
    _, hc, _ = _build(privileged=True)
    linux = _spec(hc, tmp_path)["linux"]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "/dev/null" in {d["path"] for d in linux["devices"]}
    assert "seccomp" not in linux and linux["maskedPaths"] == [] and linux["readonlyPaths"] == []


def test_default_spec_has_no_extra_devices(tmp_path):
    _, hc, _ = _build()
    linux = _spec(hc, tmp_path)["linux"]
    assert "devices" not in linux
    assert linux["resources"]["devices"] == DEFAULT_DEVICE_RULES


# -- front ends ----------------------------------------------------------------------------------
def test_cli_flags_map_to_docker_py_keywords():
    from nbcontainer._args import parse, run_kwargs
    ns = parse("run", ["--device", "/dev/fuse", "--device-cgroup-rule", "c 1:3 rwm", "--sysctl", "net.ipv4.ip_forward=1",
                       "bb:1"])
    kw = run_kwargs(ns)
    assert kw["devices"] == ["/dev/fuse"] and kw["device_cgroup_rules"] == ["c 1:3 rwm"]
    assert kw["sysctls"] == ["net.ipv4.ip_forward=1"]


def test_docker_py_keywords_reach_run_options():
    from nbcontainer.models.run_options import to_run_options
    o = to_run_options({"devices": ["/dev/fuse:/dev/fuse:rwm"], "sysctls": {"kernel.msgmax": 5},
                        "device_cgroup_rules": ["c 1:3 rwm"]})
    assert list(o.devices) == ["/dev/fuse:/dev/fuse:rwm"]
    assert list(o.sysctls) == ["kernel.msgmax=5"]
    assert list(o.device_cgroup_rules) == ["c 1:3 rwm"]


# -- mount targets: the symlink-exchange race (CVE-2021-30465 class) -------------------------------
def test_mount_target_swapped_for_a_symlink_is_refused(tmp_path):
    import shutil
    from nbcontainer.runtime import mounts
    base = tmp_path.resolve()
    root, outside = base / "root", base / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "b").mkdir(parents=True)
    dest = mounts.resolve_in_root(str(root), "/a/b")
    assert dest == str(root / "a" / "b")
    os.close(mounts.open_verified(dest))  # unchanged: accepted
    # the race: after resolving, /a becomes a symlink out of the root
    shutil.rmtree(root / "a")
    (root / "a").symlink_to(outside)
    with pytest.raises(OSError, match="changed while being mounted"):
        mounts.open_verified(dest)
    # ... or the last component itself is swapped for a symlink
    (root / "a").unlink()
    (root / "a").mkdir()
    (root / "a" / "b").symlink_to(outside / "b")
    with pytest.raises(OSError, match="changed while being mounted"):
        mounts.open_verified(dest)
