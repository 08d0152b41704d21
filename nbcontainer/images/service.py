"""ImageService: the image store's API (resolve, list, inspect, history, tag, rmi, prune, gc, import).

Images are OCI content (gzip layers, canonical-JSON config, OCI manifest) in the
ContentStore, named by rows of the ``images`` table (see ``records.py`` for the tag /
dangling-row invariant), with every layer unpacked as a committed snapshot keyed by its
chain id.  Methods return Docker Engine API shapes.

Decisions worth knowing:
* ``resolve`` tries, in order: a full id ("sha256:<64 hex>"), a reference (familiar or full,
  ``name@sha256:<manifest digest>`` within that repository), then an id prefix of at least 4
  hex digits (optionally "sha256:"-prefixed; ambiguity is an InvalidArgument).
* ``remove`` follows docker rmi: a name untags (and deletes the image with its last tag); an
  id deletes every tag, refusing without ``force`` when tags span several repositories or a
  container uses the image.  A forced untag of an image a container uses leaves it dangling.
  Deletion ends with a garbage collection unless ``noprune``.
* Image sizes are the unpacked layer sizes recorded on the snapshots (label
  ``nbcontainer.size``), falling back to the compressed blob sizes.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ..errors import Conflict, DigestMismatch, ImageNotFound, InvalidArgument, NbContainerError
from ..events import Lifecycle, Progress, emit
from ..oci.image import chain_ids
from ..oci.reference import parse_reference
from . import gc as _gc
from . import views
from .records import Record, Records

def _create() -> Any:
    """images.create, imported on first use (its gzip/secrets imports are not on `run`'s path)."""
    from . import create
    return create


_FULL_ID = re.compile(r"sha256:[0-9a-f]{64}")
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})")
_CHUNK = 1 << 20


def _norm_id(value: Optional[str]) -> str:
    if not value:
        return ""
    return value if value.startswith("sha256:") else "sha256:" + value


class ImageService:
    """Images of one store.  ``paths``: StorePaths; ``db``: MetadataDB; ``content``: ContentStore;
    ``snapshots``: Snapshotter."""

    def __init__(self, paths: Any, db: Any, content: Any, snapshots: Any):
        self.paths = paths
        self.db = db
        self.content = content
        self.snapshots = snapshots
        self.records = Records(db, content, Path(paths.root) / "images.lock")

    # -- lookups -------------------------------------------------------------------------
    def _lookup(self, ref_or_id: str) -> Tuple[str, Optional[Record]]:
        """(image id, the row matched by name or None when matched by id)."""
        if not isinstance(ref_or_id, str) or not ref_or_id.strip():
            raise ImageNotFound(f"No such image: {ref_or_id!r}")
        s = ref_or_id.strip()
        if _FULL_ID.fullmatch(s):
            if self.records.get(s) is not None or any(r.image_id == s for r in self.records.all()):
                return s, None
            raise ImageNotFound(f"No such image: {s}")
        parse_error: Optional[InvalidArgument] = None
        try:
            ref = parse_reference(s)
        except InvalidArgument as e:
            ref, parse_error = None, e
        if ref is not None:
            direct = self.records.get(str(ref))  # the common case: one indexed row lookup
            if direct is not None:
                return direct.image_id, direct
        records = self.records.all()
        if ref is not None:
            if ref.digest is not None:
                for r in records:
                    if r.dangling:
                        continue
                    if r.digest == ref.digest and parse_reference(r.name).name == ref.name:
                        return r.image_id, r
        m = _ID_PREFIX.fullmatch(s)
        if m:
            hits = {r.image_id for r in records if r.image_id[7:].startswith(m.group(1))}
            if len(hits) == 1:
                return hits.pop(), None
            if len(hits) > 1:
                raise InvalidArgument(f"image id prefix {s!r} is ambiguous: it matches {len(hits)} images",
                                      value=s, what="image")
        if parse_error is not None and not m:
            raise parse_error
        raise ImageNotFound(f"No such image: {s}")

    def resolve(self, ref_or_id: str) -> str:
        """The image id ("sha256:<config hex>") of a reference, id, id prefix (>= 4 hex) or name@digest."""
        return self._lookup(ref_or_id)[0]

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve(ref_or_id)
            return True
        except (ImageNotFound, InvalidArgument):
            return False

    def _records_of(self, image_id: str) -> List[Record]:
        recs = self.records.for_image(image_id)
        if not recs:
            raise ImageNotFound(f"No such image: {image_id}")
        return recs

    def manifest_digest(self, image_id: str) -> str:
        """Digest of the manifest a (resolved) image is stored under (tagged rows first)."""
        recs = sorted(self._records_of(self.resolve(image_id)), key=lambda r: (r.dangling, r.name))
        return recs[0].digest

    def manifest(self, image_id: str) -> Dict[str, Any]:
        """The image's manifest JSON (for an image stored as an index: the host platform's manifest)."""
        return self.records.manifest(self.records.platform_manifest(self.manifest_digest(image_id)))

    def config(self, image_id: str) -> Dict[str, Any]:
        """The image config JSON (architecture, os, created, config, rootfs, history)."""
        image_id = self.resolve(image_id)
        return self.content.read_json(image_id)

    def chain_ids(self, image_id: str) -> List[str]:
        diff_ids = (self.config(image_id).get("rootfs") or {}).get("diff_ids") or []
        return chain_ids(diff_ids)

    def chain_id(self, image_id: str) -> Optional[str]:
        """The chain id of the image's top layer (its snapshot key), None for an image without layers."""
        chains = self.chain_ids(image_id)
        return chains[-1] if chains else None

    def containers_using(self, image_id: str) -> List[str]:
        """Ids of containers created from the image."""
        return [c["id"] for c in self.db.list_containers() if _norm_id(c.get("image_id")) == image_id]

    def layer_sizes(self, image_id: str) -> List[int]:
        """Per layer: unpacked size (snapshot label) or, failing that, the compressed blob size."""
        layers = self.manifest(image_id).get("layers") or []
        out = []
        for i, chain in enumerate(self.chain_ids(image_id)):
            row = self.db.get_snapshot(chain)
            label = (row or {}).get("labels", {}).get(_create().SIZE_LABEL) if row else None
            if label and label.isdigit():
                out.append(int(label))
            else:
                out.append(int(layers[i].get("size", 0)) if i < len(layers) else 0)
        return out

    def size(self, image_id: str) -> int:
        return sum(self.layer_sizes(image_id))

    # -- unpack ----------------------------------------------------------------------------
    def unpack(self, ref_or_id: str, progress: Optional[Callable] = None) -> Optional[str]:
        """Make sure every layer of the image is unpacked; returns the top chain id."""
        image_id = self.resolve(ref_or_id)
        cfg = self.config(image_id)
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
        chains = chain_ids(diff_ids)
        layers = self.manifest(image_id).get("layers") or []
        if all(self.snapshots.exists(c) for c in chains):
            return chains[-1] if chains else None
        lease = f"unpack-{os.urandom(8).hex()}"  # = secrets.token_hex(8)
        self.db.add_lease(lease, list(chains) + [image_id], expires=time.time() + 24 * 3600)
        try:
            for i, chain in enumerate(chains):
                if self.snapshots.exists(chain):
                    continue
                self._unpack_blob(chain, chains[i - 1] if i else None, layers[i]["digest"], diff_ids[i], progress)
        finally:
            self.db.delete_lease(lease)
        return chains[-1] if chains else None

    def _unpack_blob(self, chain: str, parent: Optional[str], blob: str, diff_id: str,
                     progress: Optional[Callable]) -> None:
        from ..oci.compression import open_decompressed  # here: `run` of an unpacked image never needs them
        from ..oci.digest import Digester
        emit(Progress("unpack", diff_id[7:19], "Extracting", 0, self.content.size(blob)), progress)
        hasher = Digester()

        class _Hashing:
            def __init__(self, raw: BinaryIO):
                self.raw = raw

            def read(self, n: int = -1) -> bytes:
                data = self.raw.read(n)
                hasher.update(data)
                return data

        with self.content.open(blob) as f:
            plain = open_decompressed(f)
            try:
                reader = _Hashing(plain)
                size = self.snapshots.unpack_layer(chain, parent, reader, progress=progress)  # type: ignore[arg-type]
                while reader.read(_CHUNK):  # the DiffID covers the tar's trailing padding too
                    pass
            finally:
                plain.close()
        if hasher.digest != diff_id:
            self.snapshots.remove(chain)
            raise DigestMismatch(diff_id, hasher.digest, what=f"layer {blob}")
        _create().record_size(self.db, chain, size)
        emit(Progress("unpack", diff_id[7:19], "Unpacked", size, size), progress)

    # -- Engine API views ----------------------------------------------------------------
    def _grouped(self) -> Dict[str, List[Record]]:
        groups: Dict[str, List[Record]] = {}
        for r in self.records.all():
            groups.setdefault(r.image_id, []).append(r)
        return groups

    def list(self, all: bool = False, filters: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
        """ImageSummary of every image, newest first (``all`` is accepted: we keep no intermediates)."""
        filters = {k: ([v] if isinstance(v, (str, bool)) else list(v)) for k, v in (filters or {}).items()}
        filters = {k: [str(x).lower() if isinstance(x, bool) else x for x in v] for k, v in filters.items()}
        counts: Dict[str, int] = {}
        for c in self.db.list_containers():
            key = _norm_id(c.get("image_id"))
            counts[key] = counts.get(key, 0) + 1
        out = []
        for image_id, recs in self._grouped().items():
            try:
                cfg = self.content.read_json(image_id)
                size = self.size(image_id)
            except (NbContainerError, OSError):
                continue  # a missing manifest/config: the record is broken, rmi/gc can still clear it
            if filters and not views.match_filters(image_id, recs, cfg, filters, self._created_of):
                continue
            out.append(views.summary(image_id, recs, cfg, size, counts.get(image_id, 0)))
        out.sort(key=lambda s: (-s["Created"], s["Id"]))
        return out

    def _created_of(self, ref_or_id: str) -> int:
        return views.parse_created(self.config(self.resolve(ref_or_id)).get("created"))

    def inspect(self, ref_or_id: str) -> Dict[str, Any]:
        """ImageInspect of one image."""
        image_id = self.resolve(ref_or_id)
        recs = self._records_of(image_id)
        top = sorted(recs, key=lambda r: (r.dangling, r.name))[0]
        desc = {"mediaType": top.media_type, "digest": top.digest, "size": top.size}
        return views.inspect(image_id, recs, self.config(image_id), desc, self.size(image_id))

    def history(self, ref_or_id: str) -> List[Dict[str, Any]]:
        """HistoryResponseItem list, newest first."""
        image_id = self.resolve(ref_or_id)
        tags = views.repo_tags(self._records_of(image_id))
        return views.history(image_id, self.config(image_id), self.layer_sizes(image_id), tags)

    # -- mutations -----------------------------------------------------------------------
    def create_image(self, config: Optional[Dict[str, Any]], layer_tars: Sequence[Union[str, Path]],
                     history: Optional[List[Dict[str, Any]]] = None, tag: Union[None, str, Sequence[str]] = None,
                     base_image: Optional[str] = None, *, progress: Optional[Callable] = None,
                     operation: str = "create") -> str:
        """Store an image made of ``base_image``'s layers (if any) plus ``layer_tars``; returns its id.

        ``config`` is the container config section (Cmd, Env, ...) or a whole image config
        (detected by a ``config``/``rootfs``/``architecture`` key; its architecture, os,
        created, author, ... are kept, rootfs/history are replaced).  ``layer_tars`` are
        uncompressed layer tars; ``history`` describes the new layers (entries with
        ``empty_layer`` take none) and is appended to the base's.  ``tag``: one reference or a
        list (docker build -t a -t b).  ``created`` defaults to
        SOURCE_DATE_EPOCH or now.  Untagged images keep a dangling row.  Atomic: on failure
        nothing this call created is left.
        """
        return _create().create_image(self, config, layer_tars, history, tag, base_image, progress=progress,
                            operation=operation)

    def import_(self, source: Union[str, Path, BinaryIO], reference: Optional[str] = None,
                changes: Iterable[str] = (), message: Optional[str] = None,
                progress: Optional[Callable] = None) -> str:
        """docker import: FILE, http(s) URL, "-" (stdin) or a binary stream of a root fs tarball."""
        from .importer import import_image
        return import_image(self, source, reference, changes, message, progress)

    def bootstrap(self, suite: str = "bookworm", include: Iterable[str] = (), variant: str = "minbase",
                  tag: Optional[str] = None, progress: Optional[Callable] = None, mirror: Optional[str] = None) -> str:
        """A base image made offline: ``busybox`` from the host's busybox-static (images/busybox.py),
        any other suite a Debian image built with mmdebstrap (images/bootstrap.py)."""
        if suite == "busybox":
            if include or variant != "minbase" or mirror:
                raise InvalidArgument("--include, --variant and a mirror apply to Debian suites, not busybox",
                                      value=suite, what="bootstrap")
            from .busybox import bootstrap_busybox
            return bootstrap_busybox(self, tag=tag, progress=progress)
        from .bootstrap import bootstrap
        return bootstrap(self, suite=suite, include=include, variant=variant, tag=tag, progress=progress,
                         mirror=mirror)

    def pull(self, reference: str, platform: Optional[str] = None, progress: Optional[Callable] = None,
             all_tags: bool = False) -> Any:
        """docker pull (images/pull.py): a PullResult, or a list of them with ``all_tags``."""
        from .pull import pull_all_tags, pull_image
        if all_tags:
            return pull_all_tags(self, reference, platform=platform, progress=progress)
        return pull_image(self, reference, platform=platform, progress=progress)

    def push(self, reference: str, progress: Optional[Callable] = None, all_tags: bool = False) -> Any:
        """docker push (images/push.py): a PushResult, or a list of them with ``all_tags``."""
        from .push import push_all_tags, push_image
        if all_tags:
            return push_all_tags(self, reference, progress=progress)
        return push_image(self, reference, progress=progress)

    def tag(self, ref_or_id: str, target: str) -> None:
        """Point ``target`` (a reference without digest) at the image."""
        ref = _create().parse_tag(target)
        with self.records.lock():
            image_id = self.resolve(ref_or_id)
            top = sorted(self._records_of(image_id), key=lambda r: (r.dangling, r.name))[0]
            displaced = self.records.put(str(ref), top.digest, top.size, image_id)
        if displaced:
            emit(Lifecycle("image", "untag", displaced, name=ref.familiar))
        emit(Lifecycle("image", "tag", image_id, name=ref.familiar))

    def remove(self, ref_or_id: str, force: bool = False, noprune: bool = False) -> List[Dict[str, str]]:
        """docker rmi: untag a reference, or delete an image by id; returns Untagged/Deleted items."""
        out: List[Dict[str, str]] = []
        events: List[Lifecycle] = []
        with self.records.lock():
            broken = self._broken_row(ref_or_id)
            if broken is not None:  # its manifest or config blob is gone: just drop the name
                self.records.delete(broken)
                return [{"Untagged": _familiar(broken)}]
            image_id, matched = self._lookup(ref_or_id)
            recs = self._records_of(image_id)
            tags = [r for r in recs if not r.dangling]
            users = self.containers_using(image_id)
            short = image_id[7:19]
            if matched is not None and not matched.dangling:
                name = _familiar(matched.name)
                if len(tags) > 1 or (users and force):
                    # other tags remain (or a container keeps the image): only untag
                    self.records.delete(matched.name, keep_dangling=True)
                    events.append(Lifecycle("image", "untag", image_id, name=name))
                    out.append({"Untagged": name})
                    to_delete: List[Record] = []
                elif users:
                    raise Conflict(f'conflict: unable to remove repository reference "{ref_or_id}" (must force) - '
                                   f"container {users[0][:12]} is using its referenced image {short}")
                else:
                    to_delete = recs
            else:
                repos = {parse_reference(r.name).name for r in tags}
                if len(repos) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - "
                                   "image is referenced in multiple repositories")
                if users and not force:
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - "
                                   f"image is being used by container {users[0][:12]}")
                to_delete = recs
            if to_delete:
                for r in sorted(to_delete, key=lambda r: r.name):
                    self.records.db.delete_image(r.name)
                    if not r.dangling:
                        events.append(Lifecycle("image", "untag", image_id, name=_familiar(r.name)))
                        out.append({"Untagged": _familiar(r.name)})
                self.records.sync_index()
                events.append(Lifecycle("image", "delete", image_id))
                out.append({"Deleted": image_id})
                if not noprune:
                    self.gc()
        for e in events:
            emit(e)
        return out

    def _broken_row(self, ref: str) -> Optional[str]:
        """The row name ``ref`` names if that row's manifest or config can no longer be read."""
        try:
            name = ref.strip() if _FULL_ID.fullmatch(ref.strip()) else str(parse_reference(ref.strip()))
        except (InvalidArgument, AttributeError):
            return None
        row = self.db.get_image(name)
        if row is None:
            return None
        try:
            self.records.manifest(self.records.platform_manifest(row["digest"]))
            self.content.read_json(self.records.config_digest(row["digest"]))
        except (NbContainerError, OSError):
            return name
        return None

    def prune(self, all: bool = False, filters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Delete dangling images (every unused image with ``all``), then collect garbage."""
        deleted: List[Dict[str, str]] = []
        with self.records.lock():
            used = {_norm_id(c.get("image_id")) for c in self.db.list_containers()}
            for image_id, recs in self._grouped().items():
                if image_id in used:
                    continue
                if not all and not all_dangling(recs):
                    continue
                if filters:
                    try:
                        cfg = self.content.read_json(image_id)
                    except Exception:
                        cfg = {}
                    norm = {k: ([v] if isinstance(v, str) else list(v)) for k, v in filters.items()}
                    if not views.match_filters(image_id, recs, cfg, norm, self._created_of):
                        continue
                for r in sorted(recs, key=lambda r: r.name):
                    self.records.db.delete_image(r.name)
                    if not r.dangling:
                        deleted.append({"Untagged": _familiar(r.name)})
                deleted.append({"Deleted": image_id})
                emit(Lifecycle("image", "delete", image_id))
            self.records.sync_index()
            result = self.gc()
        return {"ImagesDeleted": deleted, "SpaceReclaimed": result["SpaceReclaimed"]}

    def gc(self, dry_run: bool = False) -> Dict[str, Any]:
        """Mark-and-sweep over blobs and committed snapshots (see images/gc.py)."""
        with self.records.lock():
            return _gc.collect(self.db, self.content, self.snapshots, dry_run=dry_run, tmp=Path(self.paths.tmp))

    def df(self) -> Dict[str, Any]:
        """The images part of ``docker system df``: LayersSize and Images (with SharedSize)."""
        users: Dict[str, int] = {}
        sizes: Dict[str, int] = {}
        chains: Dict[str, List[str]] = {}
        images = []
        for s in self.list(all=True):
            try:
                chains[s["Id"]] = self.chain_ids(s["Id"])
                layer_sizes = self.layer_sizes(s["Id"])
            except ImageNotFound:
                continue  # removed by another process since list()
            images.append(s)
            for chain, size in zip(chains[s["Id"]], layer_sizes):
                users[chain] = users.get(chain, 0) + 1
                sizes[chain] = size
        for s in images:
            s["SharedSize"] = sum(sizes[c] for c in chains[s["Id"]] if users.get(c, 0) > 1)
        return {"LayersSize": sum(sizes.values()), "Images": images}


def all_dangling(recs: List[Record]) -> bool:
    return all(r.dangling for r in recs)


def _familiar(name: str) -> str:
    try:
        return parse_reference(name).familiar
    except InvalidArgument:
        return name
