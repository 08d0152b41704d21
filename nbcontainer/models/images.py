"""docker-py's ``client.images``: :class:`Image` and :class:`ImageCollection`."""
from __future__ import annotations

import os
from typing import Any, BinaryIO, Dict, Iterable, List, Optional, Sequence, Union

from ..errors import ImageNotFound, InvalidArgument, NotSupported
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

    def save(self, chunk_size: int = 2097152, named: Union[bool, str] = False) -> Iterable[bytes]:
        """``docker save`` of this image as a generator of tar chunks (docker-py's shape).

        ``named``: True keeps the first tag in the archive, a string names the tag to keep;
        False saves by id (untagged, as docker-py does).
        """
        import tempfile

        from ..images.archive_save import save
        if named is True:
            name = self.tags[0] if self.tags else self.id
        elif isinstance(named, str) and named:
            if named not in self.tags:
                raise InvalidArgument(f"{named!r} is not a tag of image {self.short_id}", value=named, what="named")
            name = named
        else:
            name = self.id
        svc = self.client.image_service
        with tempfile.TemporaryFile(dir=str(svc.paths.tmp) if os.path.isdir(svc.paths.tmp) else None) as f:
            save(svc, [name], f)
            f.seek(0)
            while True:
                chunk = f.read(chunk_size)
                if not chunk:
                    return
                yield chunk


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

    def build(self, path: Optional[str] = None, fileobj: Optional[BinaryIO] = None, tag: Union[str, Sequence[str], None] = None,
              dockerfile: str = "Dockerfile", buildargs: Optional[Dict[str, str]] = None, target: Optional[str] = None,
              nocache: bool = False, labels: Optional[Dict[str, str]] = None, network_mode: Optional[str] = None,
              secrets: Optional[Dict[str, str]] = None, progress: Any = None, rm: bool = True, forcerm: bool = False,
              quiet: bool = False, **kwargs: Any) -> Any:
        """``docker build``: returns ``(Image, log_generator)`` like docker-py.

        The log items are docker's stream dicts (``{"stream": "Step 1/3 : FROM busybox\n"}``);
        ``progress`` also receives every typed event as it happens (live output).  Build
        containers are always removed (``rm``/``forcerm`` are accepted for that reason);
        other docker-py keywords are refused rather than ignored.
        """
        refused = sorted(k for k, v in kwargs.items() if v not in (None, False, {}, [], ""))
        if refused:
            raise NotSupported(f"images.build: {', '.join(refused)} is not supported")
        from ..events import BuildStep, Message
        logs: List[Dict[str, str]] = []

        def collect(event: Any) -> None:
            if isinstance(event, BuildStep):
                cached = " (CACHED)" if event.cached else ""
                logs.append({"stream": f"Step {event.step}/{event.total} : {event.instruction}{cached}\n"})
            elif isinstance(event, Message) and event.operation == "build":
                logs.append({"stream": event.text if event.text.endswith("\n") else event.text + "\n"})
            if progress is not None:
                progress(event)

        tags = [tag] if isinstance(tag, str) else list(tag or ())
        image_id = self.client.build_service.build(
            context_path=path, fileobj=fileobj, dockerfile=dockerfile, tags=tags, buildargs=buildargs, target=target,
            nocache=nocache, labels=labels, progress=collect, secrets=secrets, network=network_mode)
        logs.append({"aux": {"ID": image_id}})  # type: ignore[dict-item]
        return self.get(image_id), iter(logs)

    def pull(self, repository: str, tag: Optional[str] = None, all_tags: bool = False,
             platform: Optional[str] = None, progress: Any = None, **kwargs: Any) -> Union[Image, List[Image]]:
        """``docker pull``: the Image (a list of Images with ``all_tags``), like docker-py.

        ``repository`` may carry a tag or ``@sha256:`` digest; ``tag`` may also be a digest.
        ``platform``: "os/arch[/variant]" (default: the host's).  ``auth_config`` is refused:
        credentials come from docker's config.json (``nbc login``).
        """
        if kwargs.get("auth_config"):
            raise NotSupported("auth_config is not supported: log in with client.login() or `nbc login`")
        from ..images.pull import pull_all_tags, pull_image
        ref = repository
        if tag:
            ref = f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}"
        if all_tags and not tag:
            return [self.get(r.reference) for r in pull_all_tags(self._svc, repository, platform=platform,
                                                                   progress=progress)]
        return self.get(pull_image(self._svc, ref, platform=platform, progress=progress).reference)

    def push(self, repository: str, tag: Optional[str] = None, stream: bool = False, decode: bool = False,
             progress: Any = None, **kwargs: Any) -> Any:
        """``docker push``: docker-py returns the JSON status stream -- a string of JSON lines, a
        generator of them with ``stream``, of dicts with ``decode``."""
        import json

        from ..events import Message, Progress
        from ..images.push import push_image
        if kwargs.get("auth_config"):
            raise NotSupported("auth_config is not supported: log in with client.login() or `nbc login`")
        lines: List[Dict[str, Any]] = []

        def collect(event: Any) -> None:
            if isinstance(event, Message):
                lines.append({"status": event.text})
            elif isinstance(event, Progress) and event.operation == "push":
                lines.append({"status": event.status, "progressDetail": {"current": event.current,
                                                                         "total": event.total}, "id": event.id})
            if progress is not None:
                progress(event)

        ref = f"{repository}:{tag}" if tag else repository
        result = push_image(self._svc, ref, progress=collect)
        lines.append({"progressDetail": {}, "aux": {"Tag": result.tag, "Digest": result.digest, "Size": result.size}})
        if decode:
            return iter(lines) if stream else lines
        text = [json.dumps(line) + "\r\n" for line in lines]
        return iter(text) if stream else "".join(text)

    def search(self, term: str, limit: int = 25, filters: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
        """``docker search``: Docker Hub, or ``HOST:PORT/TERM`` on a registry's catalog."""
        from ..registry import RegistryClient
        with RegistryClient() as client:
            return client.search(term, limit=limit, filters=filters)

    def load(self, data: Union[bytes, BinaryIO]) -> List[Image]:
        """``docker load`` from bytes or a binary stream; returns the loaded Images."""
        import io

        from ..images.archive_load import load
        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        return [self.get(name) for name in load(self._svc, stream)]  # type: ignore[arg-type]
