"""RegistryClient: the Docker Registry V2 / OCI distribution API as bytes and descriptors.

It never writes the image store: callers pass ``write`` callbacks and stream openers.
Repositories are given as a :class:`Reference` or a string ("localhost:5000/app",
"busybox" = docker.io/library/busybox); tags and digests in them are ignored where only the
repository matters.  Every failure is a :class:`RegistryError` (status, codes) or, for content
that does not hash to its digest, a :class:`DigestMismatch`.

Progress: blob downloads and uploads publish :class:`events.Progress` events (operation
"pull"/"push", id = the 12-hex short digest) through :func:`events.emit` to the ``progress``
callback given and to the process-wide bus.
"""
from __future__ import annotations

import time
from typing import Any, BinaryIO, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import requests
from urllib3.exceptions import HTTPError as _Urllib3Error

from ..errors import DigestMismatch, RegistryError
from ..events import Progress, emit
from ..oci import mediatypes
from ..oci.digest import Digester, sha256_bytes, validate_digest
from ..oci.image import Descriptor
from ..oci.reference import Reference, parse_reference
from . import upload
from .auth import AuthConfig, _reason, parse_challenges, repository_scope
from .config import RegistryConfig, api_host, is_hub
from .credentials import CredentialStore
from .errmap import error_from_response
from .platforms import select_platform as _select_platform
from .transport import Transport

MAX_MANIFEST_SIZE = 4 << 20
RepoLike = Union[Reference, str]
ProgressFn = Optional[Callable[[Any], None]]
Credentials = Union[None, CredentialStore, Callable[[str], Optional[AuthConfig]],
                    Mapping[str, Union[AuthConfig, Tuple[str, str]]]]
_CHUNK = 256 << 10
_STEP = 1 << 20
_DROPPED = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
            requests.exceptions.Timeout, _Urllib3Error, ConnectionError, TimeoutError)
SUPPORTED_MANIFESTS = mediatypes.MANIFESTS | mediatypes.INDEXES


def _version() -> str:
    try:
        from .. import __version__
        return str(__version__)
    except ImportError:  # pragma: no cover - package always has a version
        return "0"


def _lookup_from(credentials: Credentials) -> Callable[[str], Optional[AuthConfig]]:
    """A host -> AuthConfig function from any accepted ``credentials`` argument."""
    if credentials is None:
        return CredentialStore().get
    if isinstance(credentials, CredentialStore):
        return credentials.get
    if callable(credentials):
        return credentials
    table: Dict[str, AuthConfig] = {}
    for host, value in credentials.items():
        table[host] = value if isinstance(value, AuthConfig) else AuthConfig(username=value[0], password=value[1])

    def lookup(host: str) -> Optional[AuthConfig]:
        if host in table:
            return table[host]
        return next((v for k, v in table.items() if is_hub(k) and is_hub(host)), None)

    return lookup


def _media_type(header: Optional[str]) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


class RegistryClient:
    """A client for many registries: pooled connections, cached auth, per-host scheme."""

    def __init__(self, credentials: Credentials = None,
                 insecure: Union[None, RegistryConfig, Iterable[str]] = None,
                 timeout: float = 30, user_agent: Optional[str] = None):
        """``credentials``: a CredentialStore (default: docker's config.json), a function
        host -> AuthConfig|None, or a mapping host -> AuthConfig / (user, password).
        ``insecure``: a RegistryConfig (default: loaded from the config file) or extra
        host[:port] names allowed over plain HTTP besides loopback."""
        if insecure is None:
            config = RegistryConfig.load()
        elif isinstance(insecure, RegistryConfig):
            config = insecure
        else:
            config = RegistryConfig.with_hosts(insecure)
        self.transport = Transport(_lookup_from(credentials), config, timeout,
                                   user_agent or f"nbcontainer/{_version()}")

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def repository(repo: RepoLike) -> Reference:
        """``repo`` as a Reference (strings are parsed and normalised)."""
        return repo if isinstance(repo, Reference) else parse_reference(repo)

    def _host(self, domain: str) -> str:
        host = api_host(domain)
        if host != domain:
            self.transport.alias_credentials(host, domain)
        return host

    def _request(self, method: str, ref: Reference, url: str, scopes: Iterable[str] = (), **kw: Any) -> requests.Response:
        return self.transport.request(method, self._host(ref.domain), url, scopes=scopes, **kw)

    @staticmethod
    def _pull(ref: Reference) -> List[str]:
        return [repository_scope(ref.path, "pull")]

    # -- version check ---------------------------------------------------------------------
    def ping(self, host: str, authenticate: bool = False) -> Dict[str, Any]:
        """GET /v2/ on a registry (a reference domain: "docker.io", "localhost:5000").

        Returns {"host", "url", "status", "api_version", "auth": "basic"|"bearer"|None, "realm",
        "service"}.  With ``authenticate`` the request is answered with the stored credentials
        (a login check): RegistryError "unauthorized: ..." when they are refused.
        """
        api = self._host(host)
        if authenticate:
            resp = self.transport.request("GET", api, "/v2/")
        else:
            url = self.transport.base_url(api) + "/v2/"
            try:
                resp = self.transport.session.get(url, timeout=self.transport.timeout,
                                                  verify=self.transport.verify_for(api))
            except requests.RequestException as e:
                raise RegistryError(f"cannot reach registry {api}: {_reason(e)}") from None
        with resp:
            challenges = parse_challenges(resp.headers.get("WWW-Authenticate"))
            if authenticate and resp.status_code != 200 or resp.status_code not in (200, 401):
                raise error_from_response(resp, what=host)
            ch = next((c for c in challenges if c.scheme == "bearer"), challenges[0] if challenges else None)
            if ch is None and authenticate:
                ch = self.transport.auth.scheme(api)
            return {"host": api, "url": self.transport.base_url(api), "status": resp.status_code,
                    "api_version": resp.headers.get("Docker-Distribution-Api-Version"),
                    "auth": ch.scheme if ch else None, "realm": ch.params.get("realm") if ch else None,
                    "service": ch.params.get("service") if ch else None}

    # -- manifests -------------------------------------------------------------------------
    def resolve(self, ref: RepoLike) -> Tuple[str, str, int]:
        """(digest, media type, size) of the manifest a tag or digest names, by HEAD (GET fallback)."""
        r = self.repository(ref)
        target = r.digest or r.tag_or_default
        resp = self._request("HEAD", r, f"/v2/{r.path}/manifests/{target}", self._pull(r),
                             headers={"Accept": mediatypes.MANIFEST_ACCEPT})
        with resp:
            digest = resp.headers.get("Docker-Content-Digest", "")
            mt = _media_type(resp.headers.get("Content-Type"))
            size = resp.headers.get("Content-Length", "")
            if resp.status_code == 200 and digest.startswith("sha256:") and size.isdigit():
                if r.digest and digest != r.digest:
                    raise DigestMismatch(r.digest, digest, what=f"manifest {r}")
                return digest, mt, int(size)
        data, mt, digest = self.get_manifest(r)  # GET gives the error body, or the digest itself
        return digest, mt, len(data)

    def get_manifest(self, ref: RepoLike, digest: Optional[str] = None) -> Tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, by tag or digest.

        ``digest`` overrides the reference's tag/digest.  Content fetched by digest is verified
        (DigestMismatch otherwise); the size is capped at 4 MiB; media types other than OCI /
        Docker v2 manifests and indexes are refused with a RegistryError naming the type.
        """
        r = self.repository(ref)
        want = validate_digest(digest) if digest else r.digest
        target = want or r.tag_or_default
        what = f"{r.name}@{want}" if want else f"{r.name}:{r.tag_or_default}"
        resp = self._request("GET", r, f"/v2/{r.path}/manifests/{target}", self._pull(r),
                             headers={"Accept": mediatypes.MANIFEST_ACCEPT}, stream=True)
        with resp:
            if resp.status_code != 200:
                raise error_from_response(resp, what=what, kind="manifest")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest for {what} is too large ({length} bytes, limit {MAX_MANIFEST_SIZE})")
            data = self._read_capped(resp, what)
            header_digest = resp.headers.get("Docker-Content-Digest", "")
            header_type = _media_type(resp.headers.get("Content-Type"))
        media_type = self._check_media_type(data, header_type, what)  # first: schema 1 digests differ
        actual = sha256_bytes(data)
        if want and actual != want:
            raise DigestMismatch(want, actual, what=f"manifest {what}")
        if not want and header_digest.startswith("sha256:") and header_digest != actual:
            raise DigestMismatch(header_digest, actual, what=f"manifest {what}")
        return data, media_type, actual

    @staticmethod
    def _read_capped(resp: requests.Response, what: str) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_content(_CHUNK):
                buf += chunk
                if len(buf) > MAX_MANIFEST_SIZE:
                    raise RegistryError(f"manifest for {what} is larger than {MAX_MANIFEST_SIZE} bytes")
        except _DROPPED as e:
            raise RegistryError(f"connection dropped while reading manifest for {what}: {_reason(e)}") from None
        return bytes(buf)

    @staticmethod
    def _check_media_type(data: bytes, header_type: str, what: str) -> str:
        import json

        try:
            body = json.loads(data)
        except ValueError:
            raise RegistryError(f"manifest for {what} is not valid JSON", codes=["MANIFEST_INVALID"]) from None
        if not isinstance(body, dict):
            raise RegistryError(f"manifest for {what} is not a JSON object", codes=["MANIFEST_INVALID"])
        declared = body.get("mediaType") or ""
        mt = declared or header_type
        if declared and header_type in SUPPORTED_MANIFESTS and declared != header_type:
            raise RegistryError(f"manifest for {what}: Content-Type {header_type} does not match its "
                                f"mediaType {declared}", codes=["MANIFEST_INVALID"])
        if mt not in SUPPORTED_MANIFESTS and not declared and body.get("schemaVersion") == 2:
            mt = mediatypes.OCI_INDEX if "manifests" in body else mediatypes.OCI_MANIFEST  # OCI may omit it
        if mt not in SUPPORTED_MANIFESTS:
            hint = " (Docker schema 1 is no longer supported)" if "manifest.v1" in mt else ""
            raise RegistryError(f"unsupported manifest media type {mt or '(none)'!r} for {what}{hint}",
                                codes=["MANIFEST_UNSUPPORTED"])
        return mt

    @staticmethod
    def select_platform(index: Dict[str, Any], platform: Dict[str, Any]) -> Descriptor:
        """The platform's descriptor in an index (attestations skipped); see platforms.select_platform."""
        return _select_platform(index, platform)

    def put_manifest(self, repo: RepoLike, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or digest; returns its digest (checked against the registry's)."""
        r = self.repository(repo)
        digest = sha256_bytes(data)
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatch(reference, digest, what="manifest")
        resp = self._request("PUT", r, f"/v2/{r.path}/manifests/{reference}",
                             [repository_scope(r.path, "pull", "push")], data=data,
                             headers={"Content-Type": media_type})
        with resp:
            if resp.status_code not in (200, 201, 202):
                raise error_from_response(resp, what=f"{r.name}:{reference}", kind="manifest upload")
            got = resp.headers.get("Docker-Content-Digest", "")
        if got.startswith("sha256:") and got != digest:
            raise RegistryError(f"registry stored manifest as {got}, expected {digest}", codes=["DIGEST_INVALID"])
        return digest

    # -- blobs -----------------------------------------------------------------------------
    def blob_exists(self, repo: RepoLike, digest: str, *, push: bool = False) -> bool:
        """HEAD a blob: True when the repository has it."""
        r = self.repository(repo)
        scopes = [repository_scope(r.path, "pull", "push")] if push else self._pull(r)
        resp = self._request("HEAD", r, f"/v2/{r.path}/blobs/{validate_digest(digest)}", scopes)
        with resp:
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            raise error_from_response(resp, what=f"{digest} in {r.name}", kind="blob", body=b"")

    def open_blob(self, repo: RepoLike, digest: str, offset: int = 0) -> requests.Response:
        """A streaming response for a blob from ``offset`` (Range request).  The caller closes it.

        Status 206 means the range was honoured; 200 means the whole blob comes (skip ``offset``).
        """
        r = self.repository(repo)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._request("GET", r, f"/v2/{r.path}/blobs/{validate_digest(digest)}", self._pull(r),
                             headers=headers, stream=True)
        if resp.status_code not in (200, 206):
            try:
                raise error_from_response(resp, what=f"{digest} in {r.name}", kind="blob")
            finally:
                resp.close()
        return resp

    def fetch_blob(self, repo: RepoLike, digest: str, size: Optional[int], write: Callable[[bytes], None],
                   progress: ProgressFn = None, retries: int = 3) -> int:
        """Stream a blob into ``write``, verifying size and digest; returns the byte count.

        A dropped connection (or a short body) is resumed with a Range request up to ``retries``
        times; ``write`` sees every byte exactly once, in order.  DigestMismatch when the bytes
        do not hash to ``digest`` (the caller must then discard what it wrote).
        """
        validate_digest(digest)
        d = Digester()
        short = upload.short_id(digest)
        failures, last = 0, -_STEP
        while True:
            try:
                resp = self.open_blob(repo, digest, d.size)
            except RegistryError as e:
                transient = e.status is None or e.status in (429, 500, 502, 503, 504)
                if not transient or failures >= retries:
                    raise
                failures += 1
                time.sleep(min(0.2 * 2 ** (failures - 1), 5))
                continue
            try:
                skip = d.size if (d.size and resp.status_code == 200) else 0
                for chunk in resp.iter_content(_CHUNK):
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                        if not chunk:
                            continue
                    if size is not None and d.size + len(chunk) > size:
                        raise DigestMismatch(digest, f"more than {size} bytes", what="blob")
                    d.update(chunk)
                    write(chunk)
                    if d.size - last >= _STEP:
                        last = d.size
                        emit(Progress("pull", short, "Downloading", d.size, size), progress)
                if size is None or d.size >= size:
                    break
                error: BaseException = EOFError(f"connection closed after {d.size} of {size} bytes")
            except _DROPPED as e:
                error = e
            finally:
                resp.close()
            failures += 1
            if failures > retries:
                raise RegistryError(f"download of blob {digest} failed after {retries} retries: {_reason(error)}")
            time.sleep(min(0.2 * 2 ** (failures - 1), 5))
        if d.digest != digest:
            raise DigestMismatch(digest, d.digest, what="blob")
        emit(Progress("pull", short, "Download complete", d.size, size if size is not None else d.size), progress)
        return d.size

    def get_blob(self, repo: RepoLike, digest: str, size: Optional[int] = None, max_size: int = 64 << 20) -> bytes:
        """A small blob (an image config) in memory, verified."""
        if size is not None and size > max_size:
            raise RegistryError(f"blob {digest} is too large to read into memory ({size} bytes)")
        buf = bytearray()

        def write(b: bytes) -> None:
            if len(buf) + len(b) > max_size:
                raise RegistryError(f"blob {digest} is larger than {max_size} bytes")
            buf.extend(b)

        self.fetch_blob(repo, digest, size, write)
        return bytes(buf)

    def push_blob(self, repo: RepoLike, digest: str, size: int, open_stream: Callable[[], BinaryIO],
                  mount_from: Optional[RepoLike] = None, chunk_size: Optional[int] = None,
                  progress: ProgressFn = None) -> str:
        """Make ``repo`` hold the blob: "exists" (HEAD found it), "mounted" (cross-repository mount
        from ``mount_from`` on the same registry) or "uploaded" (one PUT, or PATCH chunks of
        ``chunk_size`` with a one-PUT fallback).  ``open_stream`` returns a fresh stream of the blob."""
        r = self.repository(repo)
        validate_digest(digest)
        if self.blob_exists(r, digest, push=True):
            emit(Progress("push", upload.short_id(digest), "Layer already exists", size, size), progress)
            return "exists"
        scopes = [repository_scope(r.path, "pull", "push")]
        mount_path = None
        if mount_from is not None:
            src = self.repository(mount_from)
            if src.domain == r.domain and src.path != r.path:
                mount_path = src.path
                scopes.append(repository_scope(src.path, "pull"))
        return upload.push(self.transport, self._host(r.domain), r.path, scopes, digest, size, open_stream,
                           mount_path=mount_path, chunk_size=chunk_size, progress=progress,
                           what=f"{digest} to {r.name}")

    # -- listings --------------------------------------------------------------------------
    def _paginate(self, ref: Reference, url: str, scopes: List[str], key: str, what: str, kind: str) -> List[str]:
        out: List[str] = []
        seen = set()
        while url and url not in seen and len(seen) < 10000:
            seen.add(url)
            resp = self._request("GET", ref, url, scopes)
            with resp:
                if resp.status_code != 200:
                    raise error_from_response(resp, what=what, kind=kind)
                try:
                    items = resp.json().get(key) or []
                except (ValueError, AttributeError):
                    raise RegistryError(f"registry sent an invalid {kind} list for {what}") from None
                out.extend(str(x) for x in items)
                nxt = resp.links.get("next", {}).get("url")
                url = requests.compat.urljoin(resp.url, nxt) if nxt else ""
        return out

    def list_tags(self, repo: RepoLike, page_size: Optional[int] = None) -> List[str]:
        """Every tag of a repository (following Link pagination)."""
        r = self.repository(repo)
        url = f"/v2/{r.path}/tags/list" + (f"?n={int(page_size)}" if page_size else "")
        return self._paginate(r, url, self._pull(r), "tags", r.name, "repository")

    def catalog(self, host: str, page_size: Optional[int] = 100) -> List[str]:
        """Every repository of a registry's /v2/_catalog (following Link pagination)."""
        anchor = Reference(host, "catalog")
        url = "/v2/_catalog" + (f"?n={int(page_size)}" if page_size else "")
        return self._paginate(anchor, url, ["registry:catalog:*"], "repositories", host, "catalog")

    def search(self, term: str, limit: int = 25, filters: Any = None) -> List[Dict[str, Any]]:
        """``docker search``: Docker Hub's index, or ``HOST:PORT/TERM`` through a v2 catalog."""
        from .search import search
        return search(self, term, limit=limit, filters=filters)
