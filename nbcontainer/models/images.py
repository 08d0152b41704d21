"""docker-py's ``client.images``: :class:`Image` and :class:`ImageCollection`."""
from __future__ import annotations

import os
from typing import Any, BinaryIO, Dict, Iterable, List, Optional, Sequence, Union

from ..errors import ImageNotFound, NotSupported
from .resource import Collection, Model


class Image(Model):
    """An image; ``attrs`` is the Engine API ImageInspect dict."""

    def __repr__(self) -> str:
        return "<Image: '{}'>".format("', '".join(self.tags) or self.short_id)

    @property
    def short_id(self) -> str:
        """``sha256:`` plus the first 10 hex characters (docker-py's spelling)."""
        return self.id[:17] if self.id.startswith("sha256:") else self.id[:10]

    @property
    def tags(self) -> List[str]:
        """Repository tags, e.g. ``["busybox:latest"]``."""
        return [t for t in (self.attrs.get("RepoTags") or []) if t != "<none>:<none>"]

    @property
    def labels(self) -> Dict[str, str]:
        return dict((self.attrs.get("Config") or {}).get("Labels") or {})

    def history(self) -> List[Dict[str, Any]]:
        """The image's history entries (Id, Created, CreatedBy, Tags, Size, Comment)."""
        return self.client.image_service.history(self.id)

    def tag(self, repository: str, tag: Optional[str] = None, **kwargs: Any) -> bool:
        """Tag this image as ``repository[:tag]``; returns True like docker-py."""
        target = f"{repository}:{tag}" if tag else repository
        self.client.image_service.tag(self.id, target)
        self.reload()
        return True

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise NotSupported("image save is not supported yet (image archive issue)")


class ImageCollection(Collection):
    """``client.images``."""

    model = Image

    @property
    def _svc(self) -> Any:
        return self.client.image_service

    def get(self, name: str) -> Image:
        """The image named by a reference, id or id prefix (ImageNotFound naming it)."""
        return self.prepare_model(self._svc.inspect(name))

    def get_or_none(self, name: str) -> Optional[Image]:
        try:
            return self.get(name)
        except ImageNotFound:
            return None

    def list(self, name: Optional[str] = None, all: bool = False, filters: Optional[Dict[str, Any]] = None) -> List[Image]:
        """Images (``name`` filters by reference like ``docker images NAME``)."""
        filters = dict(filters or {})
        if name:
            filters["reference"] = name
        out: List[Image] = []
        for summary in self._svc.list(all=all, filters=filters or None):
            try:
                out.append(self.get(summary["Id"]))
            except ImageNotFound:  # removed meanwhile
                continue
        return out

    def import_(self, source: Union[str, os.PathLike, BinaryIO], reference: Optional[str] = None,
                changes: Sequence[str] = (), message: Optional[str] = None, progress: Any = None) -> Image:
        """``docker import``: a root fs tar (file, URL, "-" or stream) becomes an image."""
        image_id = self._svc.import_(source, reference=reference, changes=tuple(changes or ()), message=message,
                                     progress=progress)
        return self.get(image_id)

    def bootstrap(self, suite: str = "bookworm", include: Iterable[str] = (), variant: str = "minbase",
                  tag: Optional[str] = None, progress: Any = None, mirror: Optional[str] = None) -> Image:
        """A base image made offline (``nbc bootstrap``): a Debian ``suite`` with mmdebstrap, or "busybox"."""
        extra = {"mirror": mirror} if mirror else {}
        image_id = self._svc.bootstrap(suite=suite, include=tuple(include), variant=variant, tag=tag, progress=progress,
                                       **extra)
        return self.get(image_id)

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> List[Dict[str, Any]]:
        """``docker rmi``: returns the Untagged/Deleted records."""
        return self._svc.remove(image, force=force, noprune=noprune)

    def prune(self, filters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Remove dangling images (``filters={"dangling": False}`` removes every unused one)."""
        dangling = (filters or {}).get("dangling", True)
        all_ = str(dangling).lower() in ("false", "0")
        return self._svc.prune(all=all_)

    def build(self, **kwargs: Any) -> Any:
        raise NotSupported("image build is not supported yet (builder issue)")

    def pull(self, repository: str, tag: Optional[str] = None, **kwargs: Any) -> Any:
        raise NotSupported(f"pull of {repository!r} is not supported yet (registry issue)")

    def push(self, repository: str, tag: Optional[str] = None, **kwargs: Any) -> Any:
        raise NotSupported(f"push of {repository!r} is not supported yet (registry issue)")

    def load(self, data: Any) -> Any:
        raise NotSupported("image load is not supported yet (image archive issue)")
