"""OCI data types: digests, references, media types, descriptors/manifests/configs, compression.

Everything here is pure data handling (no store, no network) so every layer may import it.
"""
from __future__ import annotations

from . import mediatypes
from .digest import Digester, sha256_bytes, validate_digest
from .image import Descriptor, canonical_json, chain_ids, host_platform, make_manifest, new_config
from .reference import Reference, familiar, looks_like_image_id, parse_reference

__all__ = [
    "mediatypes", "Digester", "sha256_bytes", "validate_digest", "Descriptor", "canonical_json",
    "chain_ids", "host_platform", "make_manifest", "new_config", "Reference", "familiar",
    "looks_like_image_id", "parse_reference",
]
