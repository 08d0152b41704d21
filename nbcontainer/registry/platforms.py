"""Choosing a platform's manifest from an image index / manifest list (image-formats.md 2.2)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..errors import ImageNotFound, InvalidArgument
from ..oci.image import Descriptor

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def parse_platform(text: str) -> Dict[str, str]:
    """"linux/arm64/v8" -> {"os": "linux", "architecture": "arm64", "variant": "v8"}."""
    parts = text.strip().lower().split("/") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]", value=text, what="--platform")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        out["variant"] = parts[2]
    return out


def format_platform(p: Dict[str, Any]) -> str:
    """"linux/arm64/v8" from a platform dict."""
    text = f"{p.get('os', '')}/{p.get('architecture', '')}"
    return text + (f"/{p['variant']}" if p.get("variant") else "")


def _variant(p: Dict[str, Any]) -> Optional[str]:
    return p.get("variant") or _DEFAULT_VARIANT.get(p.get("architecture", ""))


def is_attestation(d: Dict[str, Any]) -> bool:
    """BuildKit attestation manifests: annotated, or platform unknown/unknown."""
    if (d.get("annotations") or {}).get(ATTESTATION_ANNOTATION) == "attestation-manifest":
        return True
    p = d.get("platform") or {}
    return p.get("os") == "unknown" and p.get("architecture") == "unknown"


def select_platform(index: Dict[str, Any], platform: Dict[str, Any]) -> Descriptor:
    """The descriptor in ``index`` for ``platform`` ({"os","architecture"[,"variant"]}).

    Matches os and architecture exactly; a requested variant must match (arm64 without a
    variant counts as v8, arm as v7); without a requested variant the first entry wins,
    preferring the architecture's default variant.  Attestation manifests are skipped.
    ImageNotFound (docker's "no matching manifest for ...") when nothing fits.
    """
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise InvalidArgument("image index has no manifests list", value=index, what="index")
    want_os, want_arch = platform.get("os", "linux"), platform.get("architecture")
    want_variant = platform.get("variant")
    candidates = []
    for d in entries:
        if not isinstance(d, dict) or is_attestation(d):
            continue
        p = d.get("platform") or {}
        if p.get("os") != want_os or p.get("architecture") != want_arch:
            continue
        if want_variant and _variant(p) != want_variant:
            continue
        candidates.append(d)
    if not candidates:
        raise ImageNotFound(f"no matching manifest for {format_platform(platform)} in the manifest list entries")
    default = _DEFAULT_VARIANT.get(want_arch or "")
    if not want_variant and default:
        candidates.sort(key=lambda d: _variant(d.get("platform") or {}) != default)
    return Descriptor.from_dict(candidates[0])
