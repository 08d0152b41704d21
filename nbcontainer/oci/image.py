"""Descriptors, manifests, image configs and the identities derived from them (image-formats.md 2.2-2.3)."""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from ..errors import InvalidArgument
from . import mediatypes
from .digest import sha256_bytes, validate_digest

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def host_platform() -> Dict[str, str]:
    """The OCI platform of this machine, e.g. {"os": "linux", "architecture": "amd64"}."""
    machine = os.uname().machine.lower()  # what platform.machine() reads, without importing it
    out = {"os": "linux", "architecture": _ARCH.get(machine, machine)}
    if machine == "armv7l":
        out["variant"] = "v7"
    elif machine == "armv6l":
        out["variant"] = "v6"
    return out


def rfc3339(ts: Optional[float] = None) -> str:
    """A UTC timestamp the way docker writes ``created`` ("2024-05-01T12:00:00.123456Z")."""
    when = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc) if ts is not None else _dt.datetime.now(_dt.timezone.utc)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


@dataclass
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Optional[Dict[str, str]] = None
    platform: Optional[Dict[str, Any]] = None
    urls: Optional[List[str]] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # unknown fields, kept for round trips

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise InvalidArgument(f"invalid descriptor size {self.size!r}", value=self.size, what="size")

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(self.extra)
        out.update({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Descriptor":
        if not isinstance(d, dict) or "digest" not in d or "size" not in d:
            raise InvalidArgument(f"invalid descriptor {d!r}", value=d, what="descriptor")
        known = {"mediaType", "digest", "size", "annotations", "platform", "urls"}
        return cls(media_type=d.get("mediaType", ""), digest=d["digest"], size=d["size"],
                   annotations=d.get("annotations"), platform=d.get("platform"), urls=d.get("urls"),
                   extra={k: v for k, v in d.items() if k not in known})


def chain_ids(diff_ids: Iterable[str]) -> List[str]:
    """ChainID of every prefix of ``diff_ids``: C0 = D0, Cn = sha256(C(n-1) + " " + Dn)."""
    out: List[str] = []
    for d in diff_ids:
        validate_digest(d)
        out.append(d if not out else sha256_bytes(f"{out[-1]} {d}".encode()))
    return out


def new_config(*, diff_ids: Iterable[str] = (), history: Optional[List[Dict[str, Any]]] = None,
               config: Optional[Dict[str, Any]] = None, created: Optional[str] = None,
               architecture: Optional[str] = None, os: Optional[str] = None, variant: Optional[str] = None,
               author: Optional[str] = None) -> Dict[str, Any]:
    """A new image config JSON object (OCI/Docker shape); platform defaults to the host's."""
    plat = host_platform()
    cfg: Dict[str, Any] = {
        "architecture": architecture or plat["architecture"],
        "os": os or plat["os"],
        "created": created or rfc3339(),
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [validate_digest(d) for d in diff_ids]},
        "history": list(history or []),
    }
    if variant or (not architecture and "variant" in plat):
        cfg["variant"] = variant or plat["variant"]
    if author:
        cfg["author"] = author
    return cfg


def make_manifest(config_desc: Descriptor, layer_descs: Iterable[Descriptor],
                  annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """An OCI image manifest (as a dict; serialise with canonical_json)."""
    out: Dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [d.to_dict() for d in layer_descs],
    }
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def make_index(manifests: Iterable[Dict[str, Any]], annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """An OCI image index with the given manifest descriptors (dicts)."""
    out: Dict[str, Any] = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": list(manifests)}
    if annotations:
        out["annotations"] = dict(annotations)
    return out
