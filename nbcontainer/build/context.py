"""The build context: a directory, a tar stream, or nothing; with its .dockerignore rules.

A context answers three questions for COPY/ADD: which context paths a source pattern
names (Go ``filepath.Match`` per path component, ``..`` and a leading ``/`` clamped to the
context root), what lies below a directory (ignored paths skipped), and where a context
path lives on the host.  A source whose symlinks would lead out of the context is refused.
``NAME.dockerignore`` beside the Dockerfile ``NAME`` wins over ``<context>/.dockerignore``.
"""
from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Tuple, Union

from ..dockerfile.dockerignore import DockerIgnore, clean_path, load_dockerignore
from ..errors import BuildError, InvalidArgument

_MAGIC = re.compile(r"[*?\[\\]")


def clamp(path: str) -> str:
    """A source path cleaned and clamped to the context root: "" for the root itself."""
    p = clean_path("/" + path.replace("\\", "/") if not path.startswith("/") else path)
    return p.lstrip("/")


def _go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match for one path component (``[^...]`` negation, ``\\`` escapes)."""
    if "\\" in pattern:
        pattern = re.sub(r"\\(.)", lambda m: "[" + m.group(1) + "]" if m.group(1) not in "]!^" else m.group(1),
                         pattern)
    pattern = pattern.replace("[^", "[!")
    return fnmatch.fnmatchcase(name, pattern)


def looks_like_tar(stream: BinaryIO) -> Tuple[bool, BinaryIO]:
    """(is it a (possibly compressed) tar archive, a stream to read it from the start)."""
    from ..oci.compression import open_decompressed

    raw = stream.read(1 << 16)
    if isinstance(raw, str):  # a text stream: read it all, its bytes are what matter
        raw = (raw + stream.read()).encode()  # type: ignore[operator]
        stream = io.BytesIO(b"")
    buffered = io.BufferedReader(_Chain(raw, stream))  # type: ignore[arg-type]
    try:
        plain = open_decompressed(io.BytesIO(raw))
        head = plain.read(512)
    except Exception:
        return False, buffered
    ok = False
    if len(head) == 512:
        try:
            tarfile.TarInfo.frombuf(head, tarfile.ENCODING, "surrogateescape")
            ok = True
        except tarfile.HeaderError:
            ok = False
    return ok, buffered


def _resolve_in_root(root: Path, rel: str) -> str:
    """Host path of ``rel`` with every symlink (the last one too) resolved inside ``root``."""
    from .fsops import resolve_dir

    path = "/" + rel
    for _ in range(40):
        parent, name = posixpath.split(posixpath.normpath(path))
        d = resolve_dir(root, parent, create=False)
        full = os.path.join(d, name) if name else d
        if not name or not os.path.islink(full):
            return full
        target = os.readlink(full)
        path = target if target.startswith("/") else posixpath.join(parent, target)
    raise BuildError(f"too many levels of symbolic links: {rel}")


class _Chain(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[:len(data)] = data
        return len(data)


class BuildContext:
    """Files a build may COPY/ADD.  ``root`` is None for a build without context ("-")."""

    def __init__(self, root: Optional[Path], dockerfile: bytes, dockerfile_name: str = "Dockerfile",
                 ignore: Optional[DockerIgnore] = None, owned_dir: Optional[Path] = None, in_root: bool = False):
        self.root = Path(os.path.realpath(root)) if root is not None else None
        self.in_root = in_root  # an image tree: symlinks resolve inside it (absolute ones from its root)
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.ignore = ignore or DockerIgnore([])
        self._owned = owned_dir  # a temp dir we extracted into: removed by close()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_directory(cls, path: Union[str, os.PathLike], dockerfile: str = "Dockerfile") -> "BuildContext":
        """A context directory; ``dockerfile`` is absolute, relative to the context, or to the cwd."""
        root = Path(path)
        if not root.is_dir():
            raise InvalidArgument(f"unable to prepare context: path {str(path)!r} not found", str(path), "context")
        candidates = [Path(dockerfile)] if os.path.isabs(dockerfile) else [root / dockerfile, Path(dockerfile)]
        df_path = next((c for c in candidates if c.is_file()), None)
        if df_path is None:
            raise InvalidArgument(f"unable to prepare context: the Dockerfile {dockerfile!r} cannot be found in "
                                  f"{str(path)!r}", dockerfile, "--file")
        data = df_path.read_bytes()
        ignore = load_dockerignore(str(root), str(df_path))
        return cls(root, data, df_path.name, ignore)

    @classmethod
    def from_tar(cls, stream: BinaryIO, dockerfile: str = "Dockerfile", tmp: Optional[Path] = None) -> "BuildContext":
        """A context sent as a (possibly compressed) tar stream, extracted safely into a temp dir."""
        from ..oci.compression import open_decompressed
        from ..snapshots.apply import apply_layer

        d = Path(tempfile.mkdtemp(prefix="build-context-", dir=str(tmp) if tmp else None))
        try:
            apply_layer(open_decompressed(stream), d, same_owner=False)
            ctx = cls.from_directory(d, clamp(dockerfile) or "Dockerfile") if (d / clamp(dockerfile)).is_file() \
                else None
            if ctx is None:
                raise InvalidArgument(f"the Dockerfile {dockerfile!r} cannot be found in the context tar",
                                      dockerfile, "--file")
            ctx._owned = d
            return ctx
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise

    @classmethod
    def from_dockerfile(cls, data: Union[str, bytes]) -> "BuildContext":
        """No context at all (``nbc build - < Dockerfile``): COPY from the context fails."""
        return cls(None, data.encode() if isinstance(data, str) else data)

    def close(self) -> None:
        """Remove an extracted context."""
        if self._owned is not None:
            shutil.rmtree(self._owned, ignore_errors=True)
            self._owned = None

    def __enter__(self) -> "BuildContext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------
    def _need_root(self, what: str) -> Path:
        if self.root is None:
            raise BuildError(f"{what}: no build context (the Dockerfile was read from stdin)")
        return self.root

    def host_path(self, rel: str) -> Path:
        """Host path of a clamped context path; symlinks must stay inside the context."""
        root = self._need_root(rel)
        if self.in_root:
            return Path(_resolve_in_root(root, rel))
        p = root / rel if rel else root
        real = os.path.realpath(p)
        if real != str(root) and not real.startswith(str(root) + os.sep):
            raise BuildError(f"forbidden path outside the build context: {rel} ({real})")
        return Path(real)

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore.matches(rel)

    def glob(self, pattern: str) -> List[str]:
        """Context paths (clamped, "/"-separated, "" = root) a source names, sorted; [] if none."""
        root = self._need_root(pattern)
        rel = clamp(pattern)
        if not _MAGIC.search(rel):
            if self.excluded(rel):
                return []
            if self.in_root:
                try:
                    return [rel] if os.path.lexists(_resolve_in_root(root, rel)) else []
                except BuildError:
                    return []
            return [rel] if os.path.lexists(root / rel) else []
        matches = [""]
        for comp in rel.split("/"):
            nxt: List[str] = []
            for base in matches:
                d = root / base if base else root
                if not _MAGIC.search(comp):
                    cand = posixpath.join(base, comp) if base else comp
                    if os.path.lexists(root / cand):
                        nxt.append(cand)
                    continue
                try:
                    names = sorted(os.listdir(d))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                for n in names:
                    if _go_match(comp, n):
                        nxt.append(posixpath.join(base, n) if base else n)
            matches = nxt
        return sorted(m for m in matches if not self.excluded(m))

    def walk(self, rel: str) -> Iterator[Tuple[str, os.stat_result]]:
        """(path relative to ``rel``, lstat) of every non-ignored entry below directory ``rel``,
        parents before children, names sorted.  Directories excluded as a whole are skipped."""
        top = str(self.host_path(rel))
        ignore = self.ignore if self.ignore else None  # most contexts have no patterns: skip matching
        stack = [""]
        while stack:
            sub = stack.pop()
            d = top + "/" + sub if sub else top
            try:
                names = sorted(os.listdir(d))
            except OSError as e:
                raise BuildError(f"cannot read {posixpath.join(rel, sub) or '.'} in the build context: "
                                 f"{e.strerror}") from None
            batch = []
            for n in names:
                child = sub + "/" + n if sub else n
                st = os.lstat(d + "/" + n)
                if ignore is None:
                    yield child, st
                    if stat.S_ISDIR(st.st_mode):
                        batch.append(child)
                    continue
                ctx_rel = rel + "/" + child if rel else child
                if stat.S_ISDIR(st.st_mode):
                    if ignore.excluded_dirs(ctx_rel):
                        continue
                    if not self.excluded(ctx_rel):
                        yield child, st
                    batch.append(child)
                elif not self.excluded(ctx_rel):
                    yield child, st
            stack.extend(reversed(batch))
