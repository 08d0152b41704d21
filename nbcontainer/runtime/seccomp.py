"""Seccomp: Docker's profile format -> the OCI ``linux.seccomp`` section -> a kernel filter.

Three steps, each usable on its own:

- :func:`load_profile` reads a profile in Docker's JSON format (``defaultAction``,
  ``defaultErrnoRet``, ``archMap``, ``syscalls[]`` with ``includes``/``excludes`` on
  ``caps``, ``arches`` and ``minKernel``).  ``seccomp_default.json`` next to this module is
  Docker's default profile as data (the interface Docker documents and ships, transcribed
  so containers here behave like ``docker run``'s).
- :func:`profile_to_oci` resolves the conditions against the container's final capability
  set (pass the *bounding* set, as Docker does, so a non-root user gets the same filter as
  root), the architecture and the running kernel, giving the OCI section the runtime stores
  in ``config.json``.
- :func:`install_filter` compiles an OCI section with libseccomp (via ctypes) and loads it
  on the calling thread; :func:`compile_filter` and :func:`load_filter` are its two halves
  (the runtime compiles during create, while the kernel moves the child into its cgroup).

Import this module (and :mod:`.capabilities`) in the parent *before* forking the container
child: libseccomp is loaded at import, and nothing may be imported or dlopen'ed after
pivot_root (it would come from the container's image).

Required order in the container child (no_new_privs off, Docker's default)::

    mounts, pivot_root, sethostname, sysctls, masked/readonly paths  (need SYS_ADMIN and
                                    are blocked by the profile: do them all first)
    install_filter(spec["linux"]["seccomp"])    loading a filter without no_new_privs needs
                                    CAP_SYS_ADMIN, so it must come before caps are dropped
    capabilities.finalize_process(caps, uid, gid, gids)   prctl(CAPBSET_DROP), setgroups,
                                    setresgid, setresuid, capset, prctl(CAP_AMBIENT): all
                                    allowed unconditionally by the default profile
    chdir(cwd), execve(...)         also allowed
    With no_new_privs requested: set_no_new_privs() then install_filter() may instead be
    the very last step before execve (the kernel then needs no CAP_SYS_ADMIN).

:func:`confine_process` does exactly this from an OCI ``process`` section.  This is the
order runc uses, and tests/integration/test_confinement_child.py checks it.
A user-supplied profile that denies capset/setresuid/execve makes the container fail to
start, as it does with runc.
"""
from __future__ import annotations

import ctypes
import json
import os

from nbcontainer._linux import syscalls as sc
from nbcontainer.errors import InvalidArgument, NotSupported, RuntimeFailure

from . import capabilities as _caps

TYPE_CHECKING = False  # typing, pathlib and platform cost a fresh supervisor's startup
if TYPE_CHECKING:
    from typing import Any, Iterable, Optional, Union

_DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_PROFILE_PATH":  # a Path, built on demand (pathlib is not imported here)
        from pathlib import Path
        return Path(_DEFAULT_PROFILE)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

#: uname -m / Go arch names -> the Go arch name Docker profiles use in includes.arches.
_GO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "arm": "arm", "i386": "386", "i686": "386", "386": "386",
    "x86": "386", "s390x": "s390x", "ppc64le": "ppc64le", "riscv64": "riscv64",
    "loongarch64": "loong64", "loong64": "loong64", "mips64": "mips64", "mips64el": "mips64le",
    "mips64le": "mips64le",
}
#: Go arch -> libseccomp architecture token of the native ABI.
_NATIVE_SCMP = {
    "amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "arm": "SCMP_ARCH_ARM",
    "386": "SCMP_ARCH_X86", "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64", "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64", "mips64le": "SCMP_ARCH_MIPSEL64",
}

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
             "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
EPERM = 1


# ----------------------------------------------------------------------------- profiles

def load_profile(source: Union[str, os.PathLike, dict, None] = None) -> dict:
    """Read and validate a Docker-format profile.

    ``source`` is a path, a JSON string (starting with ``{``), a dict, or None for
    Docker's default.  InvalidArgument names the file or the bad field.
    """
    if source is None:
        source = _DEFAULT_PROFILE
    if isinstance(source, dict):
        profile = source
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        try:
            profile = json.loads(source)
        except ValueError as e:
            raise InvalidArgument(f"seccomp profile is not valid JSON: {e}", source, "seccomp") from None
    else:
        try:
            with open(source) as f:  # what Path(source).read_text() did
                profile = json.loads(f.read())
        except OSError as e:
            raise InvalidArgument(f"cannot read seccomp profile {os.fspath(source)!r}: {e.strerror}",
                                  source, "seccomp") from None
        except ValueError as e:
            raise InvalidArgument(f"seccomp profile {os.fspath(source)!r} is not valid JSON: {e}",
                                  source, "seccomp") from None
    _validate(profile)
    return profile


def _validate(profile: Any) -> None:
    if not isinstance(profile, dict):
        raise InvalidArgument("seccomp profile must be a JSON object", profile, "seccomp")
    if profile.get("defaultAction") not in ACTIONS:
        raise InvalidArgument(f"seccomp profile: invalid defaultAction {profile.get('defaultAction')!r}",
                              profile.get("defaultAction"), "seccomp")
    if profile.get("archMap") and profile.get("architectures"):
        raise InvalidArgument("seccomp profile: use either 'architectures' or 'archMap', not both",
                              "architectures", "seccomp")
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise InvalidArgument(f"seccomp profile: invalid syscall rule {rule!r}", rule, "seccomp")
        if rule.get("action") not in ACTIONS:
            raise InvalidArgument(f"seccomp profile: invalid action {rule.get('action')!r}",
                                  rule.get("action"), "seccomp")
        if rule.get("name") and rule.get("names"):
            raise InvalidArgument(f"seccomp profile: rule uses both 'name' and 'names': {rule['name']!r}",
                                  rule["name"], "seccomp")
        for arg in rule.get("args") or []:
            if arg.get("op") not in OPERATORS:
                raise InvalidArgument(f"seccomp profile: invalid operator {arg.get('op')!r}",
                                      arg.get("op"), "seccomp")
            if not 0 <= int(arg.get("index", -1)) <= 5:
                raise InvalidArgument(f"seccomp profile: invalid argument index {arg.get('index')!r}",
                                      arg.get("index"), "seccomp")


def host_arch() -> str:
    """The host's architecture as Docker profiles name it (Go names: amd64, arm64, ...)."""
    machine = os.uname().machine  # = platform.machine()
    return _GO_ARCH.get(machine, machine)


def kernel_version(release: Optional[str] = None) -> tuple[int, int]:
    """(major, minor) of the running kernel (or of ``release``, e.g. "6.1.0-13-amd64")."""
    release = release or os.uname().release
    parts = release.split("-", 1)[0].split(".")
    nums = []
    for p in parts[:2]:
        digits = "".join(ch for ch in p if ch.isdigit()) or "0"
        nums.append(int(digits))
    while len(nums) < 2:
        nums.append(0)
    return nums[0], nums[1]


def _parse_min_kernel(value: str) -> tuple[int, int]:
    try:
        major, _, minor = str(value).partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        raise InvalidArgument(f"seccomp profile: invalid minKernel {value!r}", value, "seccomp") from None


def profile_to_oci(profile: dict, caps: Iterable[str], arch: Optional[str] = None,
                   kernel: Optional[tuple[int, int]] = None) -> dict:
    """Resolve a Docker profile into the OCI ``linux.seccomp`` section.

    ``caps`` is the container's final capability list (the bounding set; any name form);
    ``arch`` defaults to the host (Go or uname names); ``kernel`` (major, minor) to the
    running kernel.  A rule is kept when every ``includes`` condition holds and no
    ``excludes`` condition does: caps (all listed must be present / any present excludes),
    arches, minKernel.
    """
    _validate(profile)
    cap_set = _caps.parse_caps(caps)
    go_arch = _GO_ARCH.get(arch or host_arch(), arch or host_arch())
    kver = kernel or kernel_version()

    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = int(profile["defaultErrnoRet"])
    arches = list(profile.get("architectures") or [])
    native = _NATIVE_SCMP.get(go_arch)
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches = [native] + list(entry.get("subArchitectures") or [])
    if arches:
        out["architectures"] = arches
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])

    rules = []
    for rule in profile.get("syscalls") or []:
        inc = rule.get("includes") or {}
        exc = rule.get("excludes") or {}
        if inc.get("arches") and go_arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(_caps.normalize_cap(c) in cap_set for c in inc["caps"]):
            continue
        if inc.get("minKernel") and kver < _parse_min_kernel(inc["minKernel"]):
            continue
        if exc.get("arches") and go_arch in exc["arches"]:
            continue
        if exc.get("caps") and any(_caps.normalize_cap(c) in cap_set for c in exc["caps"]):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        oci_rule: dict = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            oci_rule["errnoRet"] = int(rule["errnoRet"])
        if rule.get("args"):
            oci_rule["args"] = [{"index": int(a["index"]), "value": int(a.get("value", 0)),
                                 "valueTwo": int(a.get("valueTwo", 0)), "op": a["op"]}
                                for a in rule["args"]]
        rules.append(oci_rule)
    out["syscalls"] = rules
    return out


def default_oci(caps: Iterable[str], arch: Optional[str] = None) -> dict:
    """Docker's default profile resolved for ``caps`` (convenience for the containers layer)."""
    return profile_to_oci(load_profile(None), caps, arch)


# ------------------------------------------------------------------------ libseccomp

_ACT_ALLOW = 0x7FFF0000
_ACT_KILL_THREAD = 0x00000000
_ACT_KILL_PROCESS = 0x80000000
_ACT_TRAP = 0x00030000
_ACT_LOG = 0x7FFC0000
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_FLTATR_API_SYSRAWRC = 9  # libseccomp >= 2.5: report the kernel's errno, not ECANCELED
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp {unsigned int arg; enum scmp_compare op; uint64 datum_a, datum_b}."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib: Optional[ctypes.CDLL] = None
_lib_error: Optional[str] = None


def preload() -> bool:
    """Load libseccomp now (also done on import); True if it is available.

    The container child must never dlopen after pivot_root: the library would come from
    the container's image (or be missing).  Importing this module before the fork is
    enough; call this to fail early with :func:`_libseccomp`'s message if you prefer.
    """
    try:
        _libseccomp()
        return True
    except RuntimeFailure:
        return False


def _libseccomp() -> ctypes.CDLL:
    """Load libseccomp.so.2 once; RuntimeFailure explains how to get it when missing."""
    global _lib, _lib_error
    if _lib is not None:
        return _lib
    if _lib_error is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            _lib_error = ("seccomp: libseccomp.so.2 not found (install the libseccomp2 package, "
                          "or run with --security-opt seccomp=unconfined)")
    if _lib_error is not None:  # remembered: never retry a dlopen, e.g. after pivot_root
        raise RuntimeFailure(_lib_error)
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    _lib = lib
    return lib


preload()  # at import, i.e. before any fork/pivot_root of the container child


def action_value(action: str, errno_ret: Optional[int] = None) -> int:
    """libseccomp action code for an OCI action name (errnoRet defaults to EPERM)."""
    ret = EPERM if errno_ret is None else int(errno_ret)
    if action == "SCMP_ACT_ALLOW":
        return _ACT_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return 0x00050000 | (ret & 0xFFFF)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return _ACT_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return _ACT_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return _ACT_TRAP
    if action == "SCMP_ACT_LOG":
        return _ACT_LOG
    if action == "SCMP_ACT_TRACE":
        return 0x7FF00000 | (ret & 0xFFFF)
    if action == "SCMP_ACT_NOTIFY":
        raise NotSupported("seccomp: SCMP_ACT_NOTIFY (a seccomp agent) is not supported")
    raise InvalidArgument(f"seccomp: invalid action {action!r}", action, "seccomp")


def _arg_sets(args: list[dict]) -> list[list[dict]]:
    """Split args into rule argument lists: libseccomp refuses two conditions on one
    argument in a single rule, so (like runc) such rules become one rule per condition."""
    indexes = [int(a["index"]) for a in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [[a] for a in args]


class CompiledFilter:
    """A filter compiled by libseccomp and exported as classic BPF, ready for :func:`load_filter`.

    Compiling (building libseccomp's rule database, then generating BPF) is ~13 ms for
    Docker's profile; loading the exported program is one prctl.  The runtime compiles
    while the container child waits for its cgroup move (create) and only loads at start.
    ``skipped``: syscall names libseccomp does not know (sorted).  A section with
    ``flags`` (TSYNC, LOG, SPEC_ALLOW) keeps libseccomp's own load path (``bpf`` is None).
    """

    __slots__ = ("oci", "bpf", "skipped")

    def __init__(self, oci: dict, bpf: Optional[bytes], skipped: list[str]):
        self.oci, self.bpf, self.skipped = oci, bpf, skipped


class _SockFprog(ctypes.Structure):
    """struct sock_fprog {unsigned short len; struct sock_filter *filter}."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_MODE_FILTER = 2
_LOAD_WHAT = "loading the filter (needs CAP_SYS_ADMIN or no_new_privs)"


def _build(lib: ctypes.CDLL, oci_seccomp: dict, no_new_privs: bool, skipped: set) -> int:
    """A libseccomp context holding every rule of ``oci_seccomp`` (the caller releases it)."""
    default = action_value(oci_seccomp.get("defaultAction", "SCMP_ACT_ALLOW"),
                           oci_seccomp.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise RuntimeFailure(f"seccomp: seccomp_init failed for defaultAction {oci_seccomp.get('defaultAction')!r}")
    try:
        _rc(lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 1 if no_new_privs else 0), "setting no_new_privs")
        lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)  # best effort: older libseccomp lacks it
        for flag in oci_seccomp.get("flags") or []:
            attr = {"SECCOMP_FILTER_FLAG_LOG": _FLTATR_CTL_LOG,
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _FLTATR_CTL_SSB,
                    "SECCOMP_FILTER_FLAG_TSYNC": _FLTATR_CTL_TSYNC}.get(flag)
            if attr is None:
                raise InvalidArgument(f"seccomp: unsupported flag {flag!r}", flag, "seccomp")
            _rc(lib.seccomp_attr_set(ctx, attr, 1), f"setting flag {flag}")
        for arch in oci_seccomp.get("architectures") or []:
            token = arch.lower().removeprefix("scmp_arch_").encode()
            code = lib.seccomp_arch_resolve_name(token)
            if code == 0:
                raise InvalidArgument(f"seccomp: unknown architecture {arch!r}", arch, "seccomp")
            rc = lib.seccomp_arch_add(ctx, code)
            if rc < 0 and rc != -17:  # -EEXIST: the native arch is always present
                _rc(rc, f"adding architecture {arch}")
        for rule in oci_seccomp.get("syscalls") or []:
            _add_rule(lib, ctx, rule, default, skipped)
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx


def compile_filter(oci_seccomp: dict) -> CompiledFilter:
    """Compile the OCI ``linux.seccomp`` section to BPF without loading it (any process may).

    Raises what :func:`install_filter` raises for a bad section, RuntimeFailure on a
    libseccomp error."""
    lib = _libseccomp()
    skipped: set[str] = set()
    ctx = _build(lib, oci_seccomp, False, skipped)
    try:
        if oci_seccomp.get("flags"):
            return CompiledFilter(oci_seccomp, None, sorted(skipped))
        r, w = os.pipe2(os.O_CLOEXEC)  # a BPF program is at most 4096 * 8 bytes: fits a pipe
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            _rc(rc, "exporting the filter")
            bpf = sc.read_to_eof(r)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        if not bpf or len(bpf) % 8:
            raise RuntimeFailure(f"seccomp: exporting the filter gave {len(bpf)} bytes")
        return CompiledFilter(oci_seccomp, bpf, sorted(skipped))
    finally:
        lib.seccomp_release(ctx)


def load_filter(compiled: CompiledFilter, *, no_new_privs: bool = False) -> list[str]:
    """Load a :func:`compile_filter` result on the calling thread; the skipped names.

    ``no_new_privs`` sets NoNewPrivs first (as libseccomp's NNP attribute does); without
    it the caller needs CAP_SYS_ADMIN (see the module docstring for the order)."""
    if compiled.bpf is None:  # flags: libseccomp's own loader (it uses seccomp(2) with them)
        lib = _libseccomp()
        ctx = _build(lib, compiled.oci, no_new_privs, set())
        try:
            _rc(lib.seccomp_load(ctx), _LOAD_WHAT)
        finally:
            lib.seccomp_release(ctx)
        return compiled.skipped
    if no_new_privs:
        sc.set_no_new_privs()
    buf = ctypes.create_string_buffer(compiled.bpf, len(compiled.bpf))
    prog = _SockFprog(len(compiled.bpf) // 8, ctypes.addressof(buf))
    try:
        sc.prctl(sc.PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog))
    except OSError as e:
        raise RuntimeFailure(f"seccomp: {_LOAD_WHAT} failed: {os.strerror(e.errno or 0)}") from None
    return compiled.skipped


def install_filter(oci_seccomp: dict, *, no_new_privs: bool = False) -> list[str]:
    """Compile the OCI ``linux.seccomp`` section and load it on the calling thread.

    Syscall names libseccomp does not know are skipped (a profile lists every arch's
    names, and libseccomp 2.5.4 predates e.g. mseal); they are returned, sorted.
    ``no_new_privs`` False leaves NoNewPrivs at 0 like Docker, which requires
    CAP_SYS_ADMIN at this point: see the module docstring for where to call it.
    Raises RuntimeFailure on any libseccomp error.
    """
    return load_filter(compile_filter(oci_seccomp), no_new_privs=no_new_privs)


def _add_rule(lib: ctypes.CDLL, ctx: int, rule: dict, default: int, skipped: set) -> None:
    action = action_value(rule["action"], rule.get("errnoRet"))
    if action == default:  # libseccomp rejects rules that repeat the default action
        return
    for arg_list in _arg_sets(list(rule.get("args") or [])):
        cmps = (_ArgCmp * max(1, len(arg_list)))()
        for i, a in enumerate(arg_list):
            op = OPERATORS.get(a.get("op"))
            if op is None:
                raise InvalidArgument(f"seccomp: invalid operator {a.get('op')!r}", a.get("op"), "seccomp")
            cmps[i] = _ArgCmp(int(a["index"]), op, int(a.get("value", 0)) & 0xFFFFFFFFFFFFFFFF,
                              int(a.get("valueTwo", 0)) & 0xFFFFFFFFFFFFFFFF)
        for name in rule.get("names") or []:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                skipped.add(name)  # unknown to this libseccomp: the default action applies
                continue
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(arg_list), cmps)
            if rc < 0 and nr >= 0:
                _rc(rc, f"adding rule for {name}")
            # nr < 0 is a pseudo number (e.g. chown32 on x86_64): libseccomp adds it to the
            # sub-arches that have it; an error only means no arch in the filter has it.


def _rc(rc: int, what: str) -> None:
    if rc < 0:
        raise RuntimeFailure(f"seccomp: {what} failed: {os.strerror(-rc)}")


def confine_process(process: dict, oci_seccomp: Optional[dict],
                    compiled: Optional[CompiledFilter] = None) -> None:
    """Apply an OCI ``process`` section's privileges and a seccomp section, in order.

    For the container child right before chdir/execve, after every mount, pivot_root,
    sethostname and sysctl.  Reads ``process.user`` (uid, gid, additionalGids),
    ``process.capabilities`` and ``process.noNewPrivileges``.  Without no_new_privs the
    filter goes first (loading it needs CAP_SYS_ADMIN); with it, it goes last.
    ``compiled``: ``oci_seccomp`` already compiled (:func:`compile_filter`), so only the
    load happens here.
    """
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    gids = [int(g) for g in user.get("additionalGids") or []]
    pcaps = _caps.caps_from_spec(process.get("capabilities"))
    nnp = bool(process.get("noNewPrivileges"))
    if oci_seccomp and not nnp:
        load_filter(compiled or compile_filter(oci_seccomp))
    _caps.finalize_process(pcaps, uid, gid, gids)
    if nnp:
        sc.set_no_new_privs()
        if oci_seccomp:
            load_filter(compiled or compile_filter(oci_seccomp), no_new_privs=True)
