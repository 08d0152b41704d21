"""``nbc bootstrap``: a Debian base image from Debian's own packages with mmdebstrap.

Runs ``mmdebstrap --variant=<v> [--include=a,b] --format=tar <suite> <tmp.tar> <mirror>``
(how Debian's official images are made), streaming its output as Message events, and
stores the tarball as a one-layer image with ``Cmd ["bash"]``.  The mirror defaults to
the first Debian archive URI this host's apt is configured with (so it works wherever
apt does), else http://deb.debian.org/debian.  SOURCE_DATE_EPOCH is passed through
(mmdebstrap makes reproducible trees with it) and used as the image's creation time.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional

from ..errors import InvalidArgument, NbContainerError
from ..events import Lifecycle, Message, emit
from .create import create_image, default_created, parse_tag

DEFAULT_MIRROR = "http://deb.debian.org/debian"
VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "standard")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SUITE_RE = re.compile(r"[a-z][a-z0-9.-]*")
_PACKAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.:~=/-]*")


def _uris_from_sources(path: str) -> List[str]:
    """Debian archive URIs of a deb822 .sources file (skipping -security suites)."""
    out: List[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        stanzas = re.split(r"\n\s*\n", f.read())
    for stanza in stanzas:
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        if suites and all("security" in s for s in suites):
            continue
        out.extend(fields.get("uris", "").split())
    return out


def _uris_from_list(path: str) -> List[str]:
    out: List[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 2 and "security" not in words[1]:
                out.append(words[0])
    return out


def host_mirror(etc: str = "/etc/apt") -> str:
    """The first Debian archive mirror of the host's apt configuration (DEFAULT_MIRROR if none)."""
    candidates: List[str] = []
    files = [os.path.join(etc, "sources.list")] + sorted(glob.glob(os.path.join(etc, "sources.list.d", "*")))
    for path in files:
        try:
            if path.endswith(".sources"):
                candidates += _uris_from_sources(path)
            elif path.endswith(".list"):
                candidates += _uris_from_list(path)
        except OSError:
            continue
    for uri in candidates:
        if "/debian" in uri and "security" not in uri and uri.startswith(("http://", "https://")):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def bootstrap(svc: Any, suite: str = "bookworm", include: Iterable[str] = (), variant: str = "minbase",
              tag: Optional[str] = None, progress: Optional[Callable] = None, mirror: Optional[str] = None) -> str:
    """Build a Debian ``suite`` image with mmdebstrap; returns its id (tagged ``debian:<suite>`` by default)."""
    if not isinstance(suite, str) or not _SUITE_RE.fullmatch(suite):
        raise InvalidArgument(f"invalid Debian suite {suite!r}", value=suite, what="suite")
    if variant not in VARIANTS:
        raise InvalidArgument(f"invalid variant {variant!r} (one of: {', '.join(VARIANTS)})", value=variant,
                              what="--variant")
    packages: List[str] = []
    for item in include or ():
        for pkg in str(item).replace(",", " ").split():
            if not _PACKAGE_RE.fullmatch(pkg):
                raise InvalidArgument(f"invalid package name {pkg!r}", value=pkg, what="--include")
            packages.append(pkg)
    ref = parse_tag(tag or f"debian:{suite}")
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise NbContainerError("mmdebstrap is not installed: apt-get install mmdebstrap")
    mirror = mirror or host_mirror()
    created = default_created()

    svc.paths.tmp.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bootstrap-", dir=svc.paths.tmp))
    out_tar = workdir / "rootfs.tar"
    cmd = [exe, f"--variant={variant}", "--format=tar"]
    if packages:
        cmd.append("--include=" + ",".join(packages))
    cmd += [suite, str(out_tar), mirror]
    try:
        emit(Message("bootstrap", "$ " + " ".join(cmd)), progress)
        tail: List[str] = []
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=dict(os.environ, TMPDIR=str(workdir)))
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                tail = (tail + [line])[-10:]
                emit(Message("bootstrap", line, stream="stderr"), progress)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0 or not out_tar.is_file():
            detail = " | ".join(l for l in tail if l.strip())[-800:]
            raise NbContainerError(f"mmdebstrap {suite} failed with exit status {rc}: {detail}")
        created_by = " ".join(["mmdebstrap", f"--variant={variant}"] +
                              (["--include=" + ",".join(packages)] if packages else []) + [suite, mirror])
        history = [{"created": created, "created_by": created_by,
                    "comment": f"debian {suite} ({variant}) bootstrapped by nbcontainer"}]
        config = {"created": created, "config": {"Env": [DEFAULT_PATH], "Cmd": ["bash"]}}
        image_id = create_image(svc, config, [out_tar], history, tag=str(ref), progress=progress,
                                operation="bootstrap")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(Lifecycle("image", "import", image_id, name=ref.familiar, attributes={"source": "mmdebstrap"}), progress)
    return image_id
