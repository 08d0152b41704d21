"""Docker's default seccomp profile as data, and its resolution into the OCI section."""
from __future__ import annotations

import json

import pytest

from nbcontainer.errors import InvalidArgument, NotSupported
from nbcontainer.runtime import capabilities as caps
from nbcontainer.runtime import seccomp

DEFAULT = caps.DOCKER_DEFAULT_CAPS


@pytest.fixture(scope="module")
def profile():
    return seccomp.load_profile()


def _allowed(rules):
    out = set()
    for r in rules:
        if r["action"] == "SCMP_ACT_ALLOW":
            out |= set(r["names"])
    return out


def _unconditional(rules):
    return {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def test_profile_shape(profile):
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1
    archs = {a["architecture"]: a["subArchitectures"] for a in profile["archMap"]}
    assert archs["SCMP_ARCH_X86_64"] == ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert archs["SCMP_ARCH_AARCH64"] == ["SCMP_ARCH_ARM"]
    assert {"SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64"} <= set(archs)
    rules = profile["syscalls"]
    assert len(rules) == 33
    first = rules[0]
    assert first["action"] == "SCMP_ACT_ALLOW" and not first.get("includes") and not first.get("args")
    assert len(first["names"]) == len(set(first["names"])) == 361
    assert len(_allowed(rules)) == 426


def test_unconditional_list_contents(profile):
    first = set(profile["syscalls"][0]["names"])
    for name in ("read", "write", "execve", "capset", "prctl", "setresuid", "setgroups", "chdir",
                 "close_range", "openat2", "pidfd_open", "seccomp", "rseq", "statx"):
        assert name in first, name
    never = {"kexec_load", "kexec_file_load", "swapon", "swapoff", "move_pages", "migrate_pages",
             "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup", "io_uring_enter",
             "io_uring_register", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "nfsservctl",
             "create_module", "get_kernel_syms", "query_module", "pivot_root"}
    assert not never & _allowed(profile["syscalls"])
    for name in ("mount", "unshare", "setns", "clone", "clone3", "personality", "socket", "ptrace"):
        assert name not in first, name


def _rules_for(profile, name):
    return [r for r in profile["syscalls"] if name in r["names"]]


def test_capability_groups(profile):
    def cap_of(name):
        return {tuple(r.get("includes", {}).get("caps", [])) for r in _rules_for(profile, name)}
    for name in ("mount", "umount2", "unshare", "setns", "sethostname", "fsopen", "open_tree",
                 "mount_setattr", "quotactl", "fanotify_init", "lookup_dcookie", "lsm_list_modules"):
        assert cap_of(name) == {("CAP_SYS_ADMIN",)}, name
    assert cap_of("kcmp") == cap_of("pidfd_getfd") == cap_of("process_madvise") == {("CAP_SYS_PTRACE",)}
    assert cap_of("init_module") == cap_of("finit_module") == {("CAP_SYS_MODULE",)}
    assert cap_of("reboot") == {("CAP_SYS_BOOT",)}
    assert cap_of("acct") == {("CAP_SYS_PACCT",)}
    assert cap_of("iopl") == {("CAP_SYS_RAWIO",)}
    assert cap_of("settimeofday") == cap_of("clock_settime") == {("CAP_SYS_TIME",)}
    assert cap_of("vhangup") == {("CAP_SYS_TTY_CONFIG",)}
    assert cap_of("mbind") == {("CAP_SYS_NICE",)}
    assert cap_of("open_by_handle_at") == {("CAP_DAC_READ_SEARCH",)}
    assert cap_of("syslog") == {("CAP_SYS_ADMIN",), ("CAP_SYSLOG",)}
    assert cap_of("bpf") == {("CAP_SYS_ADMIN",), ("CAP_BPF",)}
    assert cap_of("perf_event_open") == {("CAP_SYS_ADMIN",), ("CAP_PERFMON",)}
    ptrace = [r for r in _rules_for(profile, "ptrace") if r.get("includes", {}).get("minKernel")]
    assert ptrace and ptrace[0]["includes"]["minKernel"] == "4.8"


def test_argument_filters(profile):
    personality = sorted(r["args"][0]["value"] for r in _rules_for(profile, "personality"))
    assert personality == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(r["args"][0]["op"] == "SCMP_CMP_EQ" for r in _rules_for(profile, "personality"))
    socket = {(r["args"][0]["op"], r["args"][0]["value"]) for r in _rules_for(profile, "socket")}
    assert socket == {("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40)}


def _oci_rules(oci, name):
    return [r for r in oci["syscalls"] if name in r["names"]]


def test_profile_to_oci_default_caps(profile):
    oci = seccomp.profile_to_oci(profile, DEFAULT, arch="amd64", kernel=(6, 1))
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(oci["syscalls"])
    assert not {"mount", "unshare", "setns", "umount2", "bpf", "kcmp", "reboot"} & allowed
    assert {"chroot", "arch_prctl", "modify_ldt", "ptrace", "process_vm_readv"} <= allowed
    assert not {"riscv_flush_icache", "s390_runtime_instr", "cacheflush"} & allowed
    clone = _oci_rules(oci, "clone")
    assert len(clone) == 1
    assert clone[0]["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    clone3 = _oci_rules(oci, "clone3")
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert "includes" not in json.dumps(oci) and "excludes" not in json.dumps(oci)


def test_profile_to_oci_with_sys_admin(profile):
    oci = seccomp.profile_to_oci(profile, list(DEFAULT) + ["sys_admin"], arch="x86_64", kernel=(6, 1))
    allowed = _unconditional(oci["syscalls"])
    assert {"mount", "unshare", "setns", "clone", "clone3", "umount2", "bpf", "perf_event_open"} <= allowed
    assert not [r for r in oci["syscalls"] if r["action"] == "SCMP_ACT_ERRNO"]  # clone3 ENOSYS gone
    assert all(not r.get("args") for r in _oci_rules(oci, "clone"))


def test_profile_to_oci_kernel_and_arch(profile):
    old = seccomp.profile_to_oci(profile, DEFAULT, arch="amd64", kernel=(4, 4))
    assert "ptrace" not in _allowed(old["syscalls"])
    with_ptrace = seccomp.profile_to_oci(profile, DEFAULT + ("CAP_SYS_PTRACE",), arch="amd64", kernel=(4, 4))
    assert {"ptrace", "kcmp"} <= _allowed(with_ptrace["syscalls"])
    s390 = seccomp.profile_to_oci(profile, DEFAULT, arch="s390x", kernel=(6, 1))
    assert s390["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    assert _oci_rules(s390, "clone")[0]["args"][0]["index"] == 1
    arm = seccomp.profile_to_oci(profile, DEFAULT, arch="aarch64", kernel=(6, 1))
    assert "cacheflush" in _allowed(arm["syscalls"]) and "arch_prctl" not in _allowed(arm["syscalls"])


def test_load_profile_errors(tmp_path):
    with pytest.raises(InvalidArgument, match="nope.json"):
        seccomp.load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidArgument, match="bad.json"):
        seccomp.load_profile(bad)
    with pytest.raises(InvalidArgument, match="SCMP_ACT_BOGUS"):
        seccomp.load_profile({"defaultAction": "SCMP_ACT_BOGUS"})
    with pytest.raises(InvalidArgument, match="SCMP_CMP_XX"):
        seccomp.load_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]})
    assert seccomp.load_profile('{"defaultAction": "SCMP_ACT_ALLOW"}')["defaultAction"] == "SCMP_ACT_ALLOW"


def test_unknown_cap_in_caps_is_rejected(profile):
    with pytest.raises(InvalidArgument, match="CAP_WHATEVER"):
        seccomp.profile_to_oci(profile, ["CAP_WHATEVER"])


def test_action_values():
    assert seccomp.action_value("SCMP_ACT_ALLOW") == 0x7FFF0000
    assert seccomp.action_value("SCMP_ACT_ERRNO") == 0x00050001
    assert seccomp.action_value("SCMP_ACT_ERRNO", 38) == 0x00050026
    assert seccomp.action_value("SCMP_ACT_KILL_PROCESS") == 0x80000000
    with pytest.raises(NotSupported):
        seccomp.action_value("SCMP_ACT_NOTIFY")


def test_kernel_version_parsing():
    assert seccomp.kernel_version("6.1.0-13-amd64") == (6, 1)
    assert seccomp.kernel_version("4.19.0") == (4, 19)
    assert seccomp.kernel_version("6.18.44-fc-v769") == (6, 18)


def test_missing_libseccomp_is_a_clear_runtime_failure(monkeypatch):
    from nbcontainer.errors import RuntimeFailure

    def no_lib(*a, **k):
        raise OSError("libseccomp.so.2: cannot open shared object file")
    monkeypatch.setattr(seccomp, "_lib", None)
    monkeypatch.setattr(seccomp, "_lib_error", None)
    monkeypatch.setattr(seccomp.ctypes, "CDLL", no_lib)
    assert seccomp.preload() is False
    with pytest.raises(RuntimeFailure, match="libseccomp.so.2 not found"):
        seccomp.install_filter({"defaultAction": "SCMP_ACT_ALLOW"})
