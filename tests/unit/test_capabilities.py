"""Capability names, Docker's defaults and the order of privilege operations (no root needed)."""
from __future__ import annotations

import pytest

from nbcontainer._linux import syscalls as sc
from nbcontainer.errors import InvalidArgument
from nbcontainer.runtime import capabilities as caps


def test_table_is_complete_and_contiguous():
    assert len(caps.CAPABILITIES) == 41
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert caps.CAP_BY_BIT[39] == "CAP_BPF"


@pytest.mark.parametrize("raw", ["net_admin", "NET_ADMIN", "CAP_NET_ADMIN", "cap_net_admin", " Net_Admin "])
def test_normalize_accepts_any_case_and_prefix(raw):
    assert caps.normalize_cap(raw) == "CAP_NET_ADMIN"


@pytest.mark.parametrize("bad", ["NET_ADMN", "CAP_", "", "ALL", "CAP_FOO"])
def test_normalize_rejects_unknown_naming_the_value(bad):
    with pytest.raises(InvalidArgument) as exc:
        caps.normalize_cap(bad)
    assert exc.value.value == bad
    assert repr(bad) in str(exc.value)


def test_docker_default_mask():
    assert len(caps.DOCKER_DEFAULT_CAPS) == 14
    assert caps.caps_to_mask(caps.DOCKER_DEFAULT_CAPS) == 0xA80425FB == caps.DOCKER_DEFAULT_MASK
    assert "CAP_SYS_ADMIN" not in caps.DOCKER_DEFAULT_CAPS
    assert set(caps.mask_to_caps(0xA80425FB)) == set(caps.DOCKER_DEFAULT_CAPS)


def test_parse_caps_forms():
    assert caps.parse_caps("chown") == {"CAP_CHOWN"}
    assert caps.parse_caps(None) == frozenset()
    assert caps.parse_caps(0b11) == {"CAP_CHOWN", "CAP_DAC_OVERRIDE"}
    with pytest.raises(InvalidArgument):
        caps.parse_caps(["chown", "bogus"])


def test_adjust_caps_add_drop_all():
    base = caps.DOCKER_DEFAULT_CAPS
    added = caps.adjust_caps(base, add=["sys_admin"], drop=["NET_RAW"])
    assert "CAP_SYS_ADMIN" in added and "CAP_NET_RAW" not in added
    assert caps.adjust_caps(base, add=["chown"], drop=["ALL"]) == ["CAP_CHOWN"]
    assert len(caps.adjust_caps(base, add=["all"])) == 41
    with pytest.raises(InvalidArgument):
        caps.adjust_caps(base, add=["nope"])


def test_compute_process_caps_root_and_user():
    root = caps.compute_process_caps(None, 0)
    assert caps.caps_to_mask(root["bounding"]) == 0xA80425FB
    assert root["effective"] == root["permitted"] == root["bounding"]
    assert root["inheritable"] == [] and root["ambient"] == []
    user = caps.compute_process_caps(caps.DOCKER_DEFAULT_CAPS, 1000)
    assert caps.caps_to_mask(user["bounding"]) == 0xA80425FB
    assert user["effective"] == user["permitted"] == user["inheritable"] == []
    # an OCI dict is accepted: its bounding set is the container's list
    assert caps.compute_process_caps({"bounding": ["CAP_KILL"]}, 0)["effective"] == ["CAP_KILL"]


def test_caps_from_spec():
    pc = caps.caps_from_spec({"bounding": ["CAP_KILL", "chown"], "effective": ["CAP_KILL"]})
    assert pc.bounding == {"CAP_KILL", "CAP_CHOWN"}
    assert pc.effective == {"CAP_KILL"} and pc.ambient == frozenset()
    with pytest.raises(InvalidArgument, match="bogus"):
        caps.caps_from_spec({"bogus": []})
    with pytest.raises(InvalidArgument, match="CAP_NOPE"):
        caps.caps_from_spec({"bounding": ["CAP_NOPE"]})


class _Recorder:
    """Fake syscalls: records the privileged calls in order."""

    def __init__(self, monkeypatch, bounding_mask=(1 << 41) - 1):
        self.calls: list[tuple] = []
        self.bounding = bounding_mask
        monkeypatch.setattr(sc, "prctl", self.prctl)
        self.permitted = bounding_mask
        monkeypatch.setattr(sc, "capset", lambda e, p, i: self.calls.append(("capset", e, p, i)))
        monkeypatch.setattr(sc, "capget", lambda pid=0: (self.permitted, self.permitted, 0))
        monkeypatch.setattr(caps.os, "setgroups", lambda g: self.calls.append(("setgroups", list(g))))
        monkeypatch.setattr(caps.os, "getgroups", lambda: [])
        monkeypatch.setattr(caps.os, "setresgid", lambda *a: self.calls.append(("setresgid",) + a))
        monkeypatch.setattr(caps.os, "setresuid", lambda *a: self.calls.append(("setresuid",) + a))
        monkeypatch.setattr(caps, "last_cap", lambda: 40)

    def prctl(self, option, a2=0, a3=0, a4=0, a5=0):
        if option == sc.PR_CAPBSET_READ:
            return self.bounding >> a2 & 1
        self.calls.append(("prctl", option, a2, a3))
        if option == sc.PR_CAPBSET_DROP:
            self.bounding &= ~(1 << a2)
        return 0

    def names(self):
        return [c[0] if c[0] != "prctl" else {sc.PR_CAPBSET_DROP: "drop", sc.PR_SET_KEEPCAPS: f"keepcaps={c[2]}",
                                             sc.PR_CAP_AMBIENT: "ambient"}[c[1]] for c in self.calls]


def test_apply_capabilities_drops_bounding_then_capsets(monkeypatch):
    rec = _Recorder(monkeypatch)
    d = caps.DOCKER_DEFAULT_CAPS
    caps.apply_capabilities(d, d, d, [], [])
    assert rec.bounding == 0xA80425FB
    names = rec.names()
    assert names.count("drop") == 41 - 14
    assert names.index("capset") > max(i for i, n in enumerate(names) if n == "drop")
    assert ("capset", 0xA80425FB, 0xA80425FB, 0) in rec.calls
    assert names[-1] == "ambient"  # cleared after capset


def test_apply_capabilities_skips_caps_unknown_to_kernel(monkeypatch):
    rec = _Recorder(monkeypatch, bounding_mask=(1 << 38) - 1)  # an older kernel: last cap 37
    monkeypatch.setattr(caps, "last_cap", lambda: 37)
    caps.apply_capabilities(["CAP_BPF", "CAP_CHOWN"], ["CAP_BPF", "CAP_CHOWN"], ["CAP_CHOWN"], [], [])
    drops = [c[2] for c in rec.calls if c[0] == "prctl" and c[1] == sc.PR_CAPBSET_DROP]
    assert max(drops) == 37 and 39 not in drops
    capset = next(c for c in rec.calls if c[0] == "capset")
    assert capset[1] == 1  # CAP_BPF (39) masked off: unknown to this kernel


def test_finalize_process_user_switch_order(monkeypatch):
    rec = _Recorder(monkeypatch)
    pc = caps.caps_from_spec(caps.compute_process_caps(None, 1000))
    caps.finalize_process(pc, 1000, 1000, [10, 20])
    names = rec.names()
    last_drop = max(i for i, n in enumerate(names) if n == "drop")
    assert last_drop < names.index("setgroups") < names.index("setresgid") < names.index("setresuid") \
        < names.index("capset")
    assert "keepcaps=1" not in names  # empty permitted set: nothing to keep
    assert ("setgroups", [10, 20]) in rec.calls and ("setresuid", 1000, 1000, 1000) in rec.calls
    assert ("capset", 0, 0, 0) in rec.calls


def test_finalize_process_keeps_caps_for_non_root_with_permitted(monkeypatch):
    rec = _Recorder(monkeypatch)
    pc = caps.caps_from_spec({"bounding": ["CAP_NET_BIND_SERVICE"], "permitted": ["CAP_NET_BIND_SERVICE"],
                              "effective": ["CAP_NET_BIND_SERVICE"], "inheritable": ["CAP_NET_BIND_SERVICE"],
                              "ambient": ["CAP_NET_BIND_SERVICE"]})
    caps.finalize_process(pc, 1000, 1000)
    names = rec.names()
    assert names.index("keepcaps=1") < names.index("setresuid") < names.index("keepcaps=0") < names.index("capset")
    assert ("prctl", sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, 10) in rec.calls


def test_caps_the_process_lacks_are_left_out(monkeypatch):
    rec = _Recorder(monkeypatch)
    rec.permitted = ((1 << 41) - 1) & ~(1 << 24)  # like this sandbox: no CAP_SYS_RESOURCE
    every = list(caps.CAPABILITIES)
    caps.apply_capabilities(every, every, every, [], [])
    capset = next(c for c in rec.calls if c[0] == "capset")
    assert capset[1] == capset[2] == rec.permitted


def test_switch_user_rejects_negative_ids():
    with pytest.raises(InvalidArgument):
        caps.switch_user(-1, 0)


def test_syscall_wrappers_raise_oserror_with_errno():
    import errno
    import os
    eff, prm, inh = sc.capget()
    assert isinstance(eff, int) and eff & ~prm == 0  # effective is always within permitted
    with pytest.raises(OSError) as exc:
        sc.prctl(sc.PR_CAPBSET_READ, 999)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(OSError) as exc:
        sc.umount2("/nonexistent/nbcontainer-test", sc.MNT_DETACH)
    assert exc.value.errno in (errno.ENOENT, errno.EPERM) and "nbcontainer-test" in str(exc.value)
    fd = sc.pidfd_open(os.getpid())
    try:
        assert fd >= 0
    finally:
        os.close(fd)
    assert sc.prctl(sc.PR_CAPBSET_READ, 0) in (0, 1)
    assert sc.CLONE_NEWNS == 0x20000 and sc.MS_REC | sc.MS_PRIVATE == 0x44000 and sc.MNT_DETACH == 2
