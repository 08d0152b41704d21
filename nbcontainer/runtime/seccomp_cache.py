"""An on-disk cache of compiled seccomp filters (runroot/.seccomp-cache/<crc>.bpf).

Compiling Docker's profile with libseccomp takes ~13 ms, every container gets the same
few filters (one per capability set), and a supervisor started as a fresh interpreter
(the Jupyter path) keeps nothing in memory between containers.  An entry stores the
exact key it was compiled for -- the resolved OCI section as canonical JSON, the
libseccomp version and API level, the machine -- and is used only when that key is equal
(the crc32 in the file name just finds it; no hash library to import).  The cache lives
in the run root (root-only, like the state beside it); an unreadable or malformed entry
is compiled again.
"""
from __future__ import annotations

import ctypes
import json
import os
import zlib

from . import seccomp
from .state import SECCOMP_CACHE_DIR as CACHE_DIR  # runroot/CACHE_DIR

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: importing typing costs startup)
if TYPE_CHECKING:
    from typing import Optional
_MAGIC = b"NBC-BPF2\n"


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def _lib_tag() -> str:
    lib = seccomp._libseccomp()
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    lib.seccomp_api_get.restype = ctypes.c_uint
    v = lib.seccomp_version().contents
    return f"libseccomp {v.major}.{v.minor}.{v.micro} api {lib.seccomp_api_get()} {os.uname().machine}"


def cache_key(oci_seccomp: dict) -> bytes:
    """What the compiled program depends on, as one line of bytes."""
    doc = json.dumps(oci_seccomp, sort_keys=True, separators=(",", ":"))
    return f"{_lib_tag()} {doc}".encode()


def _read(path: str, key: bytes) -> Optional[seccomp.CompiledFilter]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    stored_key, _, rest = data[len(_MAGIC):].partition(b"\n")
    skipped_json, sep, bpf = rest.partition(b"\n")
    if stored_key != key or not sep or not bpf or len(bpf) % 8:
        return None
    try:
        skipped = json.loads(skipped_json)
    except ValueError:
        return None
    return seccomp.CompiledFilter({}, bpf, skipped)


def compile_cached(oci_seccomp: dict, cache_dir: Optional[str]) -> seccomp.CompiledFilter:
    """:func:`seccomp.compile_filter`, from ``cache_dir`` when it holds the same filter."""
    if not cache_dir or oci_seccomp.get("flags"):  # flagged sections keep libseccomp's loader
        return seccomp.compile_filter(oci_seccomp)
    key = cache_key(oci_seccomp)
    path = os.path.join(cache_dir, f"{zlib.crc32(key):08x}.bpf")
    hit = _read(path, key)
    if hit is not None:
        hit.oci = oci_seccomp
        return hit
    compiled = seccomp.compile_filter(oci_seccomp)
    try:
        os.makedirs(cache_dir, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(_MAGIC + key + b"\n" + json.dumps(compiled.skipped).encode() + b"\n" + compiled.bpf)
        os.replace(tmp, path)  # a crc collision just replaces the other entry
    except OSError:
        pass  # a cache we cannot write only costs time
    return compiled
