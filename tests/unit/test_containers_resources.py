"""Unit tests: resource-limit flags -> HostConfig -> OCI resources/rlimits -> cgroup v1/v2 files,
stats numbers, top parsing and update, all without root (fake cgroup trees in tmp_path)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from nbcontainer import _args
from nbcontainer.containers import resources as res
from nbcontainer.containers import stats as st
from nbcontainer.containers.config import build_config
from nbcontainer.containers.options import RunOptions
from nbcontainer.containers.rootfs import ExecUser
from nbcontainer.containers.spec import build_spec
from nbcontainer.errors import InvalidArgument, NotSupported
from nbcontainer.models.run_options import to_run_options
from nbcontainer.runtime import cgroups

ONLINE = [0, 1]
MiB = 1024 * 1024
CID = "ab" * 32
FILES = {"hosts": Path("/c/hosts"), "hostname": Path("/c/hostname"), "resolv.conf": Path("/c/resolv.conf")}


def hc_for(online=ONLINE, **kw):
    return res.host_config_fields(kw, online)


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("64m", 64 * MiB), ("64M", 64 * MiB), ("64mb", 64 * MiB), ("1g", 1024 * MiB), ("1.5g", 1536 * MiB),
    ("512k", 512 * 1024), ("1024", 1024), ("10b", 10), (7 * MiB, 7 * MiB), ("2 m", 2 * MiB),
])
def test_parse_bytes(text, expected):
    assert res.parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["12x", "", "-1", "m", "1.2.3g", "64 mbb", -5, True])
def test_parse_bytes_refuses_with_docker_wording(bad):
    with pytest.raises(InvalidArgument) as e:
        res.parse_bytes(bad)
    assert str(e.value) == f'invalid argument "{bad}" for "-m, --memory" flag: invalid size: \'{bad}\''
    with pytest.raises(InvalidArgument, match="too large"):
        res.parse_bytes("99999999999p")
    with pytest.raises(InvalidArgument, match="at most 4194304"):
        hc_for(pids_limit=10 ** 9)
    with pytest.raises(InvalidArgument, match="invalid ulimit argument"):
        res.parse_ulimit(f"core={2 ** 64}")


@pytest.mark.parametrize("text, nano", [("1.5", 1_500_000_000), ("0.01", 10_000_000), ("2", 2_000_000_000),
                                        (0.5, 500_000_000), ("1/4", 250_000_000)])
def test_parse_cpus(text, nano):
    assert res.parse_cpus(text) == nano


def test_parse_cpus_errors():
    with pytest.raises(InvalidArgument, match=r'"abc" for "--cpus" flag: failed to parse abc as a rational'):
        res.parse_cpus("abc")
    with pytest.raises(InvalidArgument, match="too precise"):
        res.parse_cpus("0.0000000001")
    with pytest.raises(InvalidArgument, match=r"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs"):
        hc_for(cpus="3")


def test_cpuset_validation_against_online_cpus():
    assert res.parse_cpu_list("0-2,4") == [0, 1, 2, 4]
    assert res.online_cpus("0-3,6\n") == [0, 1, 2, 3, 6]
    assert res.format_cpu_list([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert hc_for(cpuset_cpus="0,1")["CpusetCpus"] == "0,1"
    with pytest.raises(InvalidArgument, match=r"Requested CPUs are not available - requested 0-7, available: 0-1"):
        hc_for(cpuset_cpus="0-7")
    for bad in ("a", "1-0", "0-", "0,,1", "0-100000000000"):
        with pytest.raises(InvalidArgument, match=f"Invalid value {bad} for cpuset cpus"):
            hc_for(cpuset_cpus=bad)


def test_ulimits_strings_dicts_and_objects():
    assert res.parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert res.parse_ulimit("core=0") == {"Name": "core", "Soft": 0, "Hard": 0}
    assert res.parse_ulimit("memlock=-1:-1") == {"Name": "memlock", "Soft": -1, "Hard": -1}
    assert res.parse_ulimit("stack=unlimited") == {"Name": "stack", "Soft": -1, "Hard": -1}
    assert res.parse_ulimit({"Name": "nproc", "Soft": 10, "Hard": 20}) == {"Name": "nproc", "Soft": 10, "Hard": 20}
    assert res.parse_ulimit({"name": "nproc", "soft": 10}) == {"Name": "nproc", "Soft": 10, "Hard": 10}
    obj = SimpleNamespace(name="nofile", soft=100, hard=200)  # docker.types.Ulimit has these attributes
    assert res.parse_ulimit(obj) == {"Name": "nofile", "Soft": 100, "Hard": 200}


@pytest.mark.parametrize("bad, msg", [
    ("nofile", "invalid ulimit argument: nofile"),
    ("nofile=abc", "invalid ulimit argument: nofile=abc"),
    ("bogus=1", "invalid ulimit type: bogus"),
    ("nofile=2048:1024", "soft limit must be less than or equal to hard limit: 2048 > 1024"),
    ("nofile=-1:10", "unlimited > 10"),
    ("=5", "invalid ulimit argument"),
])
def test_ulimit_errors_name_the_value(bad, msg):
    with pytest.raises(InvalidArgument) as e:
        res.parse_ulimit(bad)
    assert msg in str(e.value) and "--ulimit" in str(e.value)


def test_duplicate_ulimit_refused():
    with pytest.raises(InvalidArgument, match="nofile"):
        hc_for(ulimits=["nofile=1", "nofile=2"])


# -- HostConfig --------------------------------------------------------------------------------
def test_defaults_are_unlimited():
    hc = hc_for()
    assert hc == {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "NanoCpus": 0, "CpuShares": 0,
                  "CpusetCpus": "", "PidsLimit": None, "Ulimits": None, **res.UNSUPPORTED_DEFAULTS}
    assert res.oci_resources(hc) == {} and res.oci_rlimits(hc) == []


def test_docker_adjustments():
    assert hc_for(mem_limit="32m")["MemorySwap"] == 64 * MiB  # swap as large as the memory
    assert hc_for(mem_limit="32m", memswap_limit="-1")["MemorySwap"] == -1
    assert hc_for(mem_limit="32m", memswap_limit="32m")["MemorySwap"] == 32 * MiB
    assert hc_for(cpu_shares="1")["CpuShares"] == 2
    assert hc_for(cpu_shares=10 ** 7)["CpuShares"] == 262144
    assert hc_for(pids_limit="-1")["PidsLimit"] is None
    assert hc_for(pids_limit=0)["PidsLimit"] is None
    assert hc_for(pids_limit="64")["PidsLimit"] == 64
    assert hc_for(nano_cpus=250_000_000)["NanoCpus"] == 250_000_000


@pytest.mark.parametrize("kw, msg", [
    (dict(mem_limit="1m"), "Minimum memory limit allowed is 6MB"),
    (dict(memswap_limit="64m"), "always set the Memory limit when using Memoryswap"),
    (dict(mem_limit="64m", memswap_limit="32m"), "memoryswap limit should be larger than memory limit"),
    (dict(mem_reservation="1m"), "Minimum memory reservation allowed is 6MB"),
    (dict(mem_limit="32m", mem_reservation="64m"), "can not be less than memory reservation"),
    (dict(cpu_shares="-5"), "must not be negative"),
    (dict(cpus="1", nano_cpus=1), "conflicting options"),
    (dict(pids_limit="1.5"), 'invalid argument "1.5" for "--pids-limit" flag'),
    (dict(cpu_shares="x"), 'invalid argument "x" for "-c, --cpu-shares" flag'),
])
def test_inconsistent_limits_refused(kw, msg):
    with pytest.raises(InvalidArgument, match=msg):
        hc_for(**kw)


def test_cli_flags_reach_hostconfig_and_oci_spec():
    ns = _args.parse("run", ["-m", "32m", "--memory-swap", "-1", "--memory-reservation", "16m", "--cpus", "1.5",
                             "-c", "512", "--cpuset-cpus", "0", "--pids-limit", "64", "--ulimit", "nofile=1024:2048",
                             "--ulimit", "core=0", "bb", "sh"])
    kw = _args.run_kwargs(ns)
    assert kw["mem_limit"] == "32m" and kw["memswap_limit"] == "-1" and kw["ulimits"] == ["nofile=1024:2048", "core=0"]
    c, h, _ = build_config("bb", {"Cmd": ["sh"]}, None, to_run_options(kw))
    assert (h["Memory"], h["MemorySwap"], h["MemoryReservation"]) == (32 * MiB, -1, 16 * MiB)
    assert (h["NanoCpus"], h["CpuShares"], h["CpusetCpus"], h["PidsLimit"]) == (1_500_000_000, 512, "0", 64)
    assert h["Ulimits"] == [{"Name": "nofile", "Hard": 2048, "Soft": 1024}, {"Name": "core", "Hard": 0, "Soft": 0}]
    c["Hostname"] = CID[:12]
    spec = build_spec(CID, c, h, [], ExecUser(0, 0, [], "/root"), rootfs=Path("/c/rootfs"), network_files=FILES)
    r = spec["linux"]["resources"]
    assert r["memory"] == {"limit": 32 * MiB, "swap": -1, "reservation": 16 * MiB}
    assert r["cpu"] == {"quota": 150000, "period": 100000, "shares": 512, "cpus": "0"}
    assert r["pids"] == {"limit": 64}
    assert r["devices"]  # the device allow-list is still there
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
                                          {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]


def test_no_limits_no_rlimits_in_spec():
    c, h, _ = build_config("bb", {"Cmd": ["sh"]}, None, RunOptions())
    c["Hostname"] = CID[:12]
    spec = build_spec(CID, c, h, [], ExecUser(0, 0, [], "/root"), rootfs=Path("/c/rootfs"), network_files=FILES)
    assert "rlimits" not in spec["process"]  # docker's default: inherit (nofile included)
    assert set(spec["linux"]["resources"]) == {"devices"}


def test_docker_py_keywords():
    o = to_run_options({"mem_limit": 64 * MiB, "memswap_limit": -1, "nano_cpus": 500_000_000, "cpu_shares": 256,
                        "cpuset_cpus": "1", "pids_limit": 32,
                        "ulimits": [{"Name": "nofile", "Soft": 512, "Hard": 1024}]})
    _, h, _ = build_config("bb", {"Cmd": ["sh"]}, None, o)
    assert (h["Memory"], h["MemorySwap"], h["NanoCpus"], h["CpuShares"], h["CpusetCpus"], h["PidsLimit"]) == \
        (64 * MiB, -1, 500_000_000, 256, "1", 32)
    assert h["Ulimits"] == [{"Name": "nofile", "Soft": 512, "Hard": 1024}]


def test_unlimited_rlimit_is_rlim_infinity():
    assert res.oci_rlimits({"Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}]}) == [
        {"type": "RLIMIT_MEMLOCK", "hard": 2 ** 64 - 1, "soft": 2 ** 64 - 1}]


# -- update ------------------------------------------------------------------------------------
def test_update_host_config():
    cur = hc_for(mem_limit="32m", pids_limit=64)
    new, changed = res.update_host_config(cur, {"mem_limit": "48m", "cpus": "0.5", "pids_limit": -1}, ONLINE)
    assert changed == {"Memory": 48 * MiB, "NanoCpus": 500_000_000, "PidsLimit": None}
    assert new["MemorySwap"] == 64 * MiB and new["PidsLimit"] is None
    live = res.oci_update_resources(new, changed)
    assert live == {"memory": {"limit": 48 * MiB, "swap": 64 * MiB}, "cpu": {"quota": 50000, "period": 100000},
                    "pids": {"limit": -1}}
    with pytest.raises(InvalidArgument, match="smaller than already set memoryswap"):
        res.update_host_config(cur, {"mem_limit": "128m"}, ONLINE)
    new, changed = res.update_host_config(cur, {"mem_limit": "128m", "memswap_limit": "-1"}, ONLINE)
    assert changed == {"Memory": 128 * MiB, "MemorySwap": -1}
    assert res.oci_update_resources(new, changed)["memory"] == {"limit": 128 * MiB, "swap": -1}
    with pytest.raises(InvalidArgument, match='"12x"'):
        res.update_host_config(cur, {"mem_limit": "12x"}, ONLINE)
    with pytest.raises(InvalidArgument, match="not available"):
        res.update_host_config(cur, {"cpuset_cpus": "5"}, ONLINE)
    assert res.update_host_config(cur, {"mem_limit": 0}, ONLINE)[1] == {}  # 0: unchanged, like docker


def test_update_kwargs_and_specs():
    ns = _args.parse("update", ["-m", "64m", "--cpus", "1", "--pids-limit", "-1", "c1", "c2"])
    assert _args.update_kwargs(ns) == {"mem_limit": "64m", "cpus": "1", "pids_limit": "-1"}
    assert ns.containers == ["c1", "c2"]
    assert _args.update_kwargs(_args.parse("update", ["--restart", "on-failure:2", "c1"])) == {
        "restart_policy": "on-failure:2"}
    with pytest.raises(NotSupported, match="--cpu-quota"):
        _args.parse("update", ["--cpu-quota", "5000", "c1"])
    with pytest.raises(NotSupported, match="kernel_memory"):
        res.update_host_config({}, {"kernel_memory": "10m"}, ONLINE)
    ns = _args.parse("top", ["c1", "-o", "pid,comm"])
    assert (ns.container, ns.ps_args) == ("c1", ["-o", "pid,comm"])
    ns = _args.parse("stats", ["--no-stream", "--format", "json", "-a"])
    assert ns.no_stream and ns.all and ns.format == "json" and ns.containers == []
    assert _args.resolve_verb(["container", "stats"])[0] == "stats"


# -- cgroup files ------------------------------------------------------------------------------
def test_resource_writes_v1_and_v2():
    r = {"memory": {"limit": 32 * MiB, "swap": 64 * MiB, "reservation": 16 * MiB},
         "cpu": {"quota": 50000, "period": 100000, "shares": 1024, "cpus": "0-1"}, "pids": {"limit": 64}}
    v1 = cgroups.resource_writes(r, {"memory": 1, "cpu": 1, "cpuset": 1, "pids": 1})
    assert ("memory", "memory.limit_in_bytes", str(32 * MiB)) in v1
    assert ("memory", "memory.memsw.limit_in_bytes", str(64 * MiB)) in v1
    assert ("memory", "memory.soft_limit_in_bytes", str(16 * MiB)) in v1
    assert ("cpu", "cpu.cfs_quota_us", "50000") in v1 and ("cpu", "cpu.cfs_period_us", "100000") in v1
    assert ("cpu", "cpu.shares", "1024") in v1 and ("pids", "pids.max", "64") in v1
    assert ("cpuset", "cpuset.cpus", "0-1") in v1
    v2 = cgroups.resource_writes(r, {"memory": 2, "cpu": 2, "cpuset": 2, "pids": 2})
    assert ("memory", "memory.max", str(32 * MiB)) in v2
    assert ("memory", "memory.swap.max", str(32 * MiB)) in v2  # v2 counts swap alone
    assert ("memory", "memory.low", str(16 * MiB)) in v2
    assert ("cpu", "cpu.max", "50000 100000") in v2
    assert ("cpu", "cpu.weight", "100") in v2  # default shares -> default weight (crun's mapping)
    unl = cgroups.resource_writes({"memory": {"limit": 32 * MiB, "swap": -1}, "cpu": {"quota": -1, "period": 100000},
                                   "pids": {"limit": -1}}, {"memory": 2, "cpu": 2, "pids": 2})
    assert ("memory", "memory.swap.max", "max") in unl and ("cpu", "cpu.max", "max 100000") in unl
    assert ("pids", "pids.max", "max") in unl
    assert ("cpu", "cpu.weight", "1") in cgroups.resource_writes({"cpu": {"shares": 2}}, {"cpu": 2})
    assert ("cpu", "cpu.weight", "10000") in cgroups.resource_writes({"cpu": {"shares": 262144}}, {"cpu": 2})
    assert [cgroups.shares_to_weight(s) for s in (2, 512, 1024, 2048, 262144)] == [1, 59, 100, 174, 10000]


def test_v1_memsw_written_first_when_raising_the_limit():
    w = [("memory", "memory.limit_in_bytes", str(128 * MiB)), ("memory", "memory.memsw.limit_in_bytes", str(256 * MiB))]
    assert cgroups.order_writes(w, 64 * MiB)[0][1] == "memory.memsw.limit_in_bytes"
    assert cgroups.order_writes(w, 512 * MiB)[0][1] == "memory.limit_in_bytes"
    lower = [("memory", "memory.limit_in_bytes", str(8 * MiB)),
             ("memory", "memory.memsw.limit_in_bytes", str(16 * MiB))]
    assert cgroups.order_writes(lower, 64 * MiB)[0][1] == "memory.limit_in_bytes"


def _fake_v1(tmp_path: Path, rel: str = "nbcontainer/c1"):
    ctrls = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio")
    hs = [cgroups.Hierarchy(str(tmp_path / c), 1, (c,)) for c in ctrls]
    paths = cgroups.paths_for(hs, rel)
    for p in paths.values():
        os.makedirs(p)
    (Path(paths[str(tmp_path / "memory")]) / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    return hs, paths


def test_apply_and_update_on_fake_v1_tree(tmp_path):
    hs, paths = _fake_v1(tmp_path)
    hc = hc_for(mem_limit="32m", cpus="0.5", cpu_shares=512, cpuset_cpus="1", pids_limit=64)
    cgroups.apply_resources(paths, hs, res.oci_resources(hc), devices=False)
    d = {c: Path(paths[str(tmp_path / c)]) for c in ("memory", "cpu", "cpuset", "pids")}
    assert (d["memory"] / "memory.limit_in_bytes").read_text() == str(32 * MiB)
    assert (d["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(64 * MiB)
    assert (d["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    assert (d["cpu"] / "cpu.shares").read_text() == "512"
    assert (d["cpuset"] / "cpuset.cpus").read_text() == "1"
    assert (d["pids"] / "pids.max").read_text() == "64"
    new, changed = res.update_host_config(hc, {"mem_limit": "48m", "pids_limit": -1, "cpus": "1"}, ONLINE)
    cgroups.update_resources(paths, hs, res.oci_update_resources(new, changed))
    assert (d["memory"] / "memory.limit_in_bytes").read_text() == str(48 * MiB)
    assert (d["pids"] / "pids.max").read_text() == "max"
    assert (d["cpu"] / "cpu.cfs_quota_us").read_text() == "100000"


def test_missing_swap_accounting_is_skipped(tmp_path):
    hs, paths = _fake_v1(tmp_path)
    mem = Path(paths[str(tmp_path / "memory")])
    (mem / "memory.memsw.limit_in_bytes").unlink()
    cgroups.apply_resources(paths, hs, {"memory": {"limit": 32 * MiB, "swap": 64 * MiB}}, devices=False)
    assert (mem / "memory.limit_in_bytes").read_text() == str(32 * MiB)
    assert not (mem / "memory.memsw.limit_in_bytes").exists()


def _fake_v2(tmp_path: Path):
    hs = [cgroups.Hierarchy(str(tmp_path), 2, ())]
    paths = cgroups.paths_for(hs, "nbcontainer/c1")
    d = Path(paths[str(tmp_path)])
    d.mkdir(parents=True)
    (d / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (d / "memory.swap.max").write_text("max\n")
    return hs, paths, d


def test_apply_on_fake_v2_tree(tmp_path):
    hs, paths, d = _fake_v2(tmp_path)
    hc = hc_for(mem_limit="32m", memswap_limit="96m", cpus="1.5", cpu_shares=1024, cpuset_cpus="0-1", pids_limit=10)
    cgroups.apply_resources(paths, hs, res.oci_resources(hc))
    assert (d / "memory.max").read_text() == str(32 * MiB)
    assert (d / "memory.swap.max").read_text() == str(64 * MiB)
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "cpu.weight").read_text() == "100"
    assert (d / "cpuset.cpus").read_text() == "0-1"
    assert (d / "pids.max").read_text() == "10"
    assert not (d / "devices.allow").exists()  # v2 devices are a BPF program, not files


def test_read_stats_v1(tmp_path):
    hs, paths = _fake_v1(tmp_path)
    p = {c: Path(paths[str(tmp_path / c)]) for c in ("memory", "cpu", "cpuacct", "pids", "blkio")}
    (p["cpuacct"] / "cpuacct.usage").write_text("5000000000\n")
    (p["cpuacct"] / "cpuacct.usage_percpu").write_text("3000000000 2000000000 \n")
    (p["cpuacct"] / "cpuacct.stat").write_text("user 300\nsystem 100\n")
    (p["cpu"] / "cpu.stat").write_text("nr_periods 10\nnr_throttled 2\nthrottled_time 999\n")
    (p["memory"] / "memory.usage_in_bytes").write_text(str(10 * MiB))
    (p["memory"] / "memory.max_usage_in_bytes").write_text(str(12 * MiB))
    (p["memory"] / "memory.limit_in_bytes").write_text(str(32 * MiB))
    (p["memory"] / "memory.stat").write_text(f"cache 100\ntotal_inactive_file {2 * MiB}\n")
    (p["pids"] / "pids.current").write_text("3\n")
    (p["pids"] / "pids.max").write_text("max\n")
    (p["blkio"] / "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n")
    s = cgroups.read_stats(paths, hs)
    u = s["cpu_stats"]["cpu_usage"]
    assert u["total_usage"] == 5_000_000_000 and u["percpu_usage"] == [3_000_000_000, 2_000_000_000]
    assert u["usage_in_usermode"] == 3_000_000_000 and u["usage_in_kernelmode"] == 1_000_000_000
    assert s["cpu_stats"]["throttling_data"] == {"periods": 10, "throttled_periods": 2, "throttled_time": 999}
    assert s["memory_stats"]["usage"] == 10 * MiB and s["memory_stats"]["limit"] == 32 * MiB
    assert s["memory_stats"]["stats"]["total_inactive_file"] == 2 * MiB
    assert s["pids_stats"] == {"current": 3}
    ops = {(e["op"], e["value"]) for e in s["blkio_stats"]["io_service_bytes_recursive"]}
    assert ("Read", 4096) in ops and ("Write", 8192) in ops
    row = st.summarize(dict(s, id=CID, name="/web"))
    assert row["MemUsage"] == "8MiB / 32MiB" and row["MemPerc"] == "25.00%"
    assert row["BlockIO"] == "4.1kB / 8.19kB" and row["PIDs"] == "3" and row["Name"] == "web"


def test_read_stats_v2(tmp_path):
    hs, paths, d = _fake_v2(tmp_path)
    (d / "cpu.stat").write_text("usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 4\n"
                                "nr_throttled 1\nthrottled_usec 7\n")
    (d / "memory.current").write_text(str(5 * MiB))
    (d / "memory.max").write_text("max\n")
    (d / "memory.stat").write_text("anon 100\ninactive_file 0\n")
    (d / "pids.current").write_text("2\n")
    (d / "pids.max").write_text("64\n")
    (d / "io.stat").write_text("8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n")
    s = cgroups.read_stats(paths, hs)
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] == 2_000_000
    assert s["cpu_stats"]["throttling_data"]["throttled_time"] == 7000
    assert s["memory_stats"]["usage"] == 5 * MiB and s["memory_stats"]["limit"] == 0  # "max"
    assert s["pids_stats"] == {"current": 2, "limit": 64}
    assert {"major": 8, "minor": 0, "op": "read", "value": 100} in s["blkio_stats"]["io_service_bytes_recursive"]
    assert {"major": 8, "minor": 0, "op": "write", "value": 2} in s["blkio_stats"]["io_serviced_recursive"]


# -- stats numbers, top ------------------------------------------------------------------------
def test_cpu_percent_like_docker():
    s = {"cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}, "system_cpu_usage": 20_000_000_000,
                       "online_cpus": 2},
         "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 18_000_000_000}}
    assert st.cpu_percent(s) == pytest.approx(200.0)
    assert st.cpu_percent({"cpu_stats": s["cpu_stats"], "precpu_stats": {}}) == 0.0
    assert st.summarize(dict(s, id=CID))["CPUPerc"] == "200.00%"


def test_sizes_and_net_dev():
    assert st.binary_size(1536 * 1024) == "1.5MiB" and st.binary_size(0) == "0B"
    assert st.decimal_size(1234) == "1.23kB" and st.decimal_size(0) == "0B"
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
            " carrier compressed\n"
            "    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0"
            "       0          0\n"
            "  eth0:    2000      20    1    2    0     0          0         0     3000      30    3    4    0     0"
            "       0          0\n")
    nets = st.net_dev(text)
    assert list(nets) == ["eth0"]
    assert nets["eth0"] == {"rx_bytes": 2000, "rx_packets": 20, "rx_errors": 1, "rx_dropped": 2,
                            "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 3, "tx_dropped": 4}
    assert st.summarize({"id": CID, "networks": nets})["NetIO"] == "2kB / 3kB"


def test_system_cpu_usage_from_proc_stat():
    ticks = 100 + 0 + 50 + 800 + 30 + 0 + 20
    expected = ticks * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
    assert st.system_cpu_usage("cpu  100 0 50 800 30 0 20 5 0 0\n") == expected


def test_parse_ps_keeps_the_containers_rows():
    out = ("UID          PID    PPID  C STIME TTY          TIME CMD\n"
           "root           1       0  0 10:00 ?        00:00:01 /sbin/init\n"
           "root        4242    4241  0 10:01 ?        00:00:00 sh -c sleep 100\n"
           "root        4243    4242  0 10:01 ?        00:00:00 sleep 100\n")
    r = st.parse_ps(out, [4242, 4243])
    assert r["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert r["Processes"] == [["root", "4242", "4241", "0", "10:01", "?", "00:00:00", "sh -c sleep 100"],
                              ["root", "4243", "4242", "0", "10:01", "?", "00:00:00", "sleep 100"]]
    with pytest.raises(InvalidArgument, match="Couldn't find PID field"):
        st.parse_ps("USER COMMAND\nroot sh\n", [1])


def test_stats_table_and_template_headers():
    from nbcontainer.cli.commands_stats import render
    row = {"Container": "abc", "ID": "abc", "Name": "web", "CPUPerc": "1.00%", "MemUsage": "1MiB / 2MiB",
           "MemPerc": "50.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "1"}
    text = render(None, [row])
    import re
    assert re.split(r"\s{2,}", text.splitlines()[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %",
                                                         "NET I/O", "BLOCK I/O", "PIDS"]
    assert "MEM USAGE / LIMIT" in text and "BLOCK I/O" in text and "PIDS" in text
    assert render("table {{.Name}}\t{{.CPUPerc}}", [row]).splitlines()[0].split() == ["NAME", "CPU", "%"]
    assert render("{{.Name}} {{.MemPerc}}", [row]) == "web 50.00%"
    assert render("json", [row]).startswith('{"Container":"abc"')


# -- update / top / stats against a fake service ---------------------------------------------
class FakeDB:
    def __init__(self, attrs):
        self.row = {"id": CID, "name": "web", "attrs": attrs}

    def get_container(self, cid):
        return {"id": self.row["id"], "name": self.row["name"], "attrs": dict(self.row["attrs"])}

    def update_container(self, cid, attrs):
        self.row["attrs"] = attrs


class FakeSvc:
    def __init__(self, hc, running, cg_paths=None):
        self.db = FakeDB({"HostConfig": hc})
        self.running = running
        self.runtime = SimpleNamespace(
            state=lambda cid: SimpleNamespace(status="running", pid=os.getpid(), cgroups=cg_paths or {}),
            pids=lambda cid: [os.getpid()])

    def resolve(self, name):
        return CID

    def state(self, cid):
        return {"Running": self.running}


def test_update_writes_running_cgroup_and_stores(tmp_path, monkeypatch):
    hs, paths = _fake_v1(tmp_path)
    monkeypatch.setattr(cgroups, "discover", lambda mountinfo=None: hs)
    svc = FakeSvc(hc_for(mem_limit="32m", pids_limit=10), running=True, cg_paths=paths)
    assert st.update(svc, "web", mem_limit="40m", pids_limit=20) == {"Warnings": []}
    hc = svc.db.row["attrs"]["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["PidsLimit"]) == (40 * MiB, 64 * MiB, 20)
    assert (Path(paths[str(tmp_path / "memory")]) / "memory.limit_in_bytes").read_text() == str(40 * MiB)
    assert (Path(paths[str(tmp_path / "pids")]) / "pids.max").read_text() == "20"
    with pytest.raises(NotSupported, match="running container"):  # a runtime without live policies
        st.update(svc, "web", restart_policy="always")
    told = []
    svc.runtime.set_restart_policy = lambda cid, policy: told.append(policy)
    st.update(svc, "web", restart_policy="on-failure:2")
    assert told == [{"Name": "on-failure", "MaximumRetryCount": 2}]
    assert svc.db.row["attrs"]["HostConfig"]["RestartPolicy"] == told[0]
    with pytest.raises(InvalidArgument, match='"lots"'):
        st.update(svc, "web", mem_limit="lots")
    assert svc.db.row["attrs"]["HostConfig"]["Memory"] == 40 * MiB  # a refused update changes nothing


def test_update_of_stopped_container_only_stores(tmp_path):
    svc = FakeSvc(hc_for(), running=False)
    st.update(svc, "web", restart_policy="on-failure:3", cpus="0.5")
    hc = svc.db.row["attrs"]["HostConfig"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3} and hc["NanoCpus"] == 500_000_000
    with pytest.raises(InvalidArgument, match="sometimes"):
        st.update(svc, "web", restart_policy="sometimes")
    auto = FakeSvc(dict(hc_for(), AutoRemove=True), running=False)
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        st.update(auto, "web", restart_policy="always")


def test_top_and_stats_of_a_stopped_container():
    from nbcontainer.errors import Conflict
    svc = FakeSvc(hc_for(), running=False)
    with pytest.raises(Conflict, match="is not running"):
        st.top(svc, "web")
    s = next(st.stats(svc, "web", stream=False))
    assert s["read"] == st.ZERO_TIME and s["name"] == "/web" and s["memory_stats"] == {}
    assert st.summarize(s)["MemUsage"] == "0B / 0B"


def test_top_runs_ps_on_the_containers_pids():
    svc = FakeSvc(hc_for(), running=True)
    r = st.top(svc, "web")  # our own pid stands in for the container's process
    assert r["Titles"][:3] == ["UID", "PID", "PPID"]
    assert [p[1] for p in r["Processes"]] == [str(os.getpid())]
    r = st.top(svc, "web", ["-o", "pid,comm"])
    assert r["Titles"] == ["PID", "COMMAND"] and r["Processes"][0][0] == str(os.getpid())


def test_host_support_v1_and_v2(tmp_path):
    hs, _ = _fake_v1(tmp_path)
    (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("0")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    info = cgroups.host_support(hs)
    assert info["CgroupVersion"] == "1" and info["MemoryLimit"] and info["SwapLimit"] and info["PidsLimit"]
    assert info["CpuCfsQuota"] and not info["CpuCfsPeriod"]  # no cpu.cfs_period_us in the fake tree
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    info = cgroups.host_support([cgroups.Hierarchy(str(v2), 2, ())])
    assert info["CgroupVersion"] == "2" and info["MemoryLimit"] and info["CpuCfsQuota"] and not info["CPUSet"]


def test_update_patches_the_bundle(tmp_path):
    import json
    svc = FakeSvc(hc_for(mem_limit="32m", pids_limit=10), running=False)
    svc.paths = SimpleNamespace(container_dir=lambda cid: tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"resources": {
        "devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 32 * MiB}, "pids": {"limit": 10}}}}))
    st.update(svc, "web", mem_limit="48m", pids_limit=-1)
    r = json.loads((tmp_path / "config.json").read_text())["linux"]["resources"]
    assert r == {"devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 48 * MiB, "swap": 64 * MiB}}
