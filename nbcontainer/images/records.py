"""Image records: the ``images`` table rows, the tag/dangling invariant, and index.json.

Every image in the store has at least one row in ``images``:

* a **tagged** row per tag, named by the full normalised reference
  (``docker.io/library/busybox:latest``), or a digest reference (``name@sha256:...``) for images
  known only by digest;
* a **dangling** row named by the image id (``sha256:<config hex>``) when it has no tag, so
  ``nbc images`` shows it as ``<none>:<none>`` and garbage collection keeps it.

Rows map to the manifest digest; the image id is the manifest's config digest (resolved
through an in-memory cache: blobs are immutable).  ``content/index.json`` mirrors the
tagged rows (annotations ``org.opencontainers.image.ref.name`` = tag and
``io.containerd.image.name`` = full reference).  Mutations take :meth:`Records.lock`
(an ``flock`` on ``ROOT/images.lock``) so two processes keep the invariant and index.json
consistent.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from ..errors import StoreError
from ..oci import mediatypes
from ..oci.image import host_platform
from ..oci.reference import parse_reference

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_ID_NAME = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass
class Record:
    """One row of the images table with the image id it points to."""

    name: str
    digest: str  # manifest digest
    media_type: str
    size: int
    created: float
    updated: float
    image_id: str

    @property
    def dangling(self) -> bool:
        return bool(_ID_NAME.fullmatch(self.name))


def is_dangling_name(name: str) -> bool:
    """True for the row name of an untagged image ("sha256:<64 hex>")."""
    return bool(_ID_NAME.fullmatch(name))


class Records:
    """Typed access to image rows on top of MetadataDB and the ContentStore."""

    def __init__(self, db: Any, content: Any, lock_path: os.PathLike):
        self.db = db
        self.content = content
        self.lock_path = lock_path
        self._config_of: Dict[str, str] = {}  # manifest digest -> config digest (immutable)
        self._local = threading.local()

    # -- locking -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for image mutations and garbage collection (re-entrant per thread)."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another thread of this process blocks here too (new fd)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
        finally:
            os.close(fd)  # closing drops the flock

    # -- reading -------------------------------------------------------------------------
    def manifest(self, digest: str) -> Dict[str, Any]:
        doc = self.content.read_json(digest)
        if not isinstance(doc, dict):
            raise StoreError(f"manifest {digest} is not a JSON object")
        return doc

    def platform_manifest(self, digest: str) -> str:
        """``digest`` itself for a manifest; for an index, the host platform's manifest held locally."""
        doc = self.manifest(digest)
        if "config" in doc or "manifests" not in doc:
            return digest
        plat = host_platform()
        fallback = None
        for child in doc.get("manifests") or []:
            if not isinstance(child, dict) or not self.content.has(child.get("digest", "sha256:" + "0" * 64)):
                continue
            p = child.get("platform") or {}
            if p.get("os") == plat["os"] and p.get("architecture") == plat["architecture"]:
                if p.get("variant") in (None, plat.get("variant")):
                    return self.platform_manifest(child["digest"])
                fallback = fallback or child["digest"]
        if fallback:
            return self.platform_manifest(fallback)
        raise StoreError(f"index {digest} has no manifest for {plat['os']}/{plat['architecture']} in the store")

    def config_digest(self, manifest_digest: str) -> str:
        """The config digest (= image id) a manifest (or index: its host platform manifest) points to."""
        cached = self._config_of.get(manifest_digest)
        if cached is None:
            doc = self.manifest(self.platform_manifest(manifest_digest))
            try:
                cached = doc["config"]["digest"]
            except (KeyError, TypeError):
                raise StoreError(f"manifest {manifest_digest} has no config descriptor") from None
            self._config_of[manifest_digest] = cached
        return cached

    def all(self) -> List[Record]:
        """Every row, with its image id (rows whose manifest is unreadable are skipped)."""
        out = []
        for row in self.db.list_images():
            try:
                image_id = self.config_digest(row["digest"])
            except Exception:  # a missing/corrupt manifest must not hide every other image
                continue
            out.append(Record(row["name"], row["digest"], row["media_type"], row["size"], row["created"],
                              row["updated"], image_id))
        return out

    def get(self, name: str) -> Optional[Record]:
        row = self.db.get_image(name)
        if row is None:
            return None
        return Record(row["name"], row["digest"], row["media_type"], row["size"], row["created"],
                      row["updated"], self.config_digest(row["digest"]))

    def for_image(self, image_id: str) -> List[Record]:
        """Rows of one image (its tags and/or its dangling row)."""
        return [r for r in self.all() if r.image_id == image_id]

    def image_ids(self) -> List[str]:
        seen: Dict[str, None] = {}
        for r in self.all():
            seen.setdefault(r.image_id, None)
        return list(seen)

    # -- writing (call under lock()) -----------------------------------------------------
    def put(self, name: str, manifest_digest: str, size: int, image_id: str) -> Optional[str]:
        """Point ``name`` at a manifest; keeps the invariant; returns the image id it displaced (if any).

        A tagged name drops the image's dangling row; an image that loses its last row
        because a tag moved away gets a dangling row.
        """
        self._config_of[manifest_digest] = image_id
        media_type = self._media_type(manifest_digest) or mediatypes.OCI_MANIFEST
        displaced = None
        with self.db.transaction():  # one transaction: a kill never leaves a tag beside its dangling row
            old = self.get(name)
            self.db.put_image(name, manifest_digest, media_type, size)
            if not is_dangling_name(name):
                self.db.delete_image(image_id)
            if old is not None and old.image_id != image_id:
                displaced = old.image_id
                if not self.for_image(old.image_id):
                    self.db.put_image(old.image_id, old.digest, old.media_type, old.size)
        self.sync_index()
        return displaced

    def _media_type(self, manifest_digest: str) -> Optional[str]:
        try:
            mt = self.manifest(manifest_digest).get("mediaType")
        except Exception:
            return None
        return mt if isinstance(mt, str) and mt else None

    def ensure_present(self, image_id: str, manifest_digest: str, size: int) -> None:
        """Give an untagged image its dangling row unless it already has a row."""
        self._config_of[manifest_digest] = image_id
        if not self.for_image(image_id):
            self.db.put_image(image_id, manifest_digest, self._media_type(manifest_digest) or mediatypes.OCI_MANIFEST,
                              size)

    def delete(self, name: str, keep_dangling: bool = False) -> None:
        """Drop one row; with ``keep_dangling`` an image losing its last tag keeps a dangling row."""
        old = self.get(name)
        self.db.delete_image(name)
        if old is not None and keep_dangling and not self.for_image(old.image_id):
            self.db.put_image(old.image_id, old.digest, old.media_type, old.size)
        self.sync_index()

    def sync_index(self) -> None:
        """Rewrite content/index.json from the tagged rows."""
        manifests = []
        for r in sorted(self.all(), key=lambda r: r.name):
            if r.dangling:
                continue
            annotations = {CONTAINERD_NAME: r.name}
            try:
                ref = parse_reference(r.name)
                if ref.tag:
                    annotations[REF_NAME] = ref.tag
            except Exception:
                pass
            manifests.append({"mediaType": r.media_type, "digest": r.digest, "size": r.size,
                              "annotations": annotations})
        self.content.set_index(manifests)
