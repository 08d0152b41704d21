"""RegistryClient against an in-process fake registry (http.server on 127.0.0.1:0 in a thread).

The fake speaks enough of the distribution API to exercise: Bearer token auth (anonymous,
basic credentials, identity-token POST form, token cache, re-auth after revocation), Basic
auth, error mapping, Accept negotiation checks, manifest size cap and digest checks, blob
redirects to another host (Authorization must not follow), dropped connections resumed with
Range, chunked uploads with a fallback, tag and catalog pagination, Docker Hub style search.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import pytest

from nbcontainer.errors import DigestMismatch, RegistryError
from nbcontainer.oci import mediatypes
from nbcontainer.registry import AuthConfig, RegistryClient
from nbcontainer.registry import search as search_mod

_PATH_RE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>blobs/uploads|blobs|manifests|tags)/(?P<rest>.*)$")


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Fake:
    """State and behaviour switches of the fake registry."""

    def __init__(self) -> None:
        self.blobs: Dict[str, bytes] = {}
        self.repo_blobs: Dict[str, set] = {}
        self.manifests: Dict[tuple, tuple] = {}
        self.uploads: Dict[str, bytearray] = {}
        self.auth: Optional[str] = None  # None | "basic" | "bearer"
        self.users = {"alice": "secret"}
        self.refresh_tokens = {"idtok": "alice"}
        self.tokens: Dict[str, set] = {}  # token -> granted scopes
        self.token_requests: List[Dict[str, Any]] = []
        self.log: List[tuple] = []
        self.drop_once: Dict[str, int] = {}  # digest -> bytes sent before the connection drops
        self.ignore_range = False
        self.redirect_base: Optional[str] = None  # blob GETs redirect there
        self.reject_patch = False
        self.fail_blob_gets = 0  # answer this many blob GETs with 503 first
        self.serve_override: Dict[tuple, tuple] = {}  # (name, ref) -> (body, content type)
        self.port = 0

    # -- helpers -------------------------------------------------------------------------------
    def put_blob(self, name: str, data: bytes) -> str:
        d = sha(data)
        self.blobs[d] = data
        self.repo_blobs.setdefault(name, set()).add(d)
        return d

    def put_manifest(self, name: str, ref: str, data: bytes, mt: str) -> str:
        d = sha(data)
        self.manifests[(name, ref)] = (data, mt)
        self.manifests[(name, d)] = (data, mt)
        return d

    def challenge(self, h: "Handler", scope: str) -> None:
        if self.auth == "basic":
            h.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    {"WWW-Authenticate": 'Basic realm="fake"'})
        else:
            h.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    {"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{self.port}/token",service="fake",'
                                         f'scope="{scope}"'})

    def authorized(self, h: "Handler", scope: str) -> bool:
        got = h.headers.get("Authorization", "")
        if self.auth is None:
            return True
        if self.auth == "basic":
            if got.startswith("Basic "):
                user, _, pw = base64.b64decode(got[6:]).decode().partition(":")
                return self.users.get(user) == pw
            return False
        if got.startswith("Bearer "):
            granted = self.tokens.get(got[7:])
            if granted is None:
                return False
            if not scope:
                return True
            typ_name, _, actions = scope.rpartition(":")
            for g in granted:
                g_tn, _, g_actions = g.rpartition(":")
                if g_tn == typ_name and set(actions.split(",")) <= set(g_actions.split(",")):
                    return True
        return False

    # -- routes --------------------------------------------------------------------------------
    def token(self, h: "Handler", method: str, query: Dict[str, List[str]]) -> None:
        if method == "POST":
            form = parse_qs(h.body().decode())
            self.token_requests.append({"method": "POST", **{k: v for k, v in form.items()}})
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token", [""])[0] not in self.refresh_tokens:
                return h.reply(401, {"details": "bad refresh token"})
            scopes = form.get("scope", [""])[0].split()
        else:
            auth = h.headers.get("Authorization", "")
            self.token_requests.append({"method": "GET", "auth": auth, **query})
            if auth.startswith("Basic "):
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                if self.users.get(user) != pw:
                    return h.reply(401, {"details": "incorrect username or password"})
            elif query.get("scope") and any(":push" in s or "push" in s.split(":")[-1] for s in query["scope"]):
                scopes = []  # anonymous users get no push
            scopes = query.get("scope", [])
            if not auth.startswith("Basic "):
                scopes = [s for s in scopes if "push" not in s.split(":")[-1]]
        tok = "tok-" + uuid.uuid4().hex[:8]
        self.tokens[tok] = set(scopes)
        h.reply(200, {"token": tok, "expires_in": 300})

    def handle(self, h: "Handler", method: str) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        path = parts.path
        self.log.append((method, h.path, h.headers.get("Authorization")))
        if path == "/token":
            return self.token(h, method, query)
        if path.startswith("/redirected/"):  # the "CDN" side of a redirect: no auth, blobs only
            return self.send_blob(h, path.rsplit("/", 1)[1])
        if path == "/v1/search":
            q = query.get("q", [""])[0]
            rows = [{"name": n, "description": f"{n} image", "star_count": s, "is_official": o, "is_automated": False}
                    for n, s, o in (("busybox", 3000, True), ("user/busybox", 2, False), ("other", 5, False))
                    if q in n]
            return h.reply(200, {"query": q, "num_results": len(rows), "results": rows})
        if path == "/v2/":
            if not self.authorized(h, ""):
                return self.challenge(h, "")
            return h.reply(200, {})
        if path == "/v2/_catalog":
            if not self.authorized(h, "registry:catalog:*"):
                return self.challenge(h, "registry:catalog:*")
            names = sorted({n for n, _ in self.manifests} | set(self.repo_blobs))
            return self.page(h, names, query, "/v2/_catalog", "repositories")
        m = _PATH_RE.match(path)
        if not m:
            return h.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no route"}]})
        name, kind, rest = m.group("name"), m.group("kind"), m.group("rest")
        write = method in ("PUT", "POST", "PATCH", "DELETE")
        scope = f"repository:{name}:{'pull,push' if write else 'pull'}"
        if not self.authorized(h, scope):
            return self.challenge(h, scope)
        if kind == "manifests":
            return self.manifest(h, method, name, rest)
        if kind == "tags":
            tags = sorted(ref for n, ref in self.manifests if n == name and not ref.startswith("sha256:"))
            if not tags:
                return h.reply(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]})
            return self.page(h, tags, query, f"/v2/{name}/tags/list", "tags", extra={"name": name})
        if kind == "blobs":
            return self.blob(h, method, name, rest)
        return self.upload(h, method, name, rest, query)

    def page(self, h, items, query, base, key, extra=None):
        n = int(query.get("n", ["1000"])[0])
        last = query.get("last", [""])[0]
        items = [i for i in items if i > last]
        chunk, more = items[:n], len(items) > n
        headers = {"Link": f'<{base}?last={chunk[-1]}&n={n}>; rel="next"'} if more else {}
        h.reply(200, {**(extra or {}), key: chunk}, headers)

    def manifest(self, h, method, name, ref):
        if method == "PUT":
            data = h.body()
            mt = h.headers.get("Content-Type")
            d = self.put_manifest(name, ref, data, mt)
            return h.reply(201, b"", {"Docker-Content-Digest": d, "Location": f"/v2/{name}/manifests/{d}"})
        if (name, ref) in self.serve_override:
            body, ct = self.serve_override[(name, ref)]
            return h.reply(200, body, {"Content-Type": ct}, head=method == "HEAD")
        if (name, ref) not in self.manifests:
            return h.reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown",
                                             "detail": {"Tag": ref}}]}, head=method == "HEAD")
        data, mt = self.manifests[(name, ref)]
        if mt not in h.headers.get("Accept", ""):
            return h.reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "accept header mismatch"}]})
        h.reply(200, data, {"Content-Type": mt, "Docker-Content-Digest": sha(data)}, head=method == "HEAD")

    def blob(self, h, method, name, digest):
        if digest not in self.repo_blobs.get(name, set()):
            return h.reply(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]},
                           head=method == "HEAD")
        data = self.blobs[digest]
        if method == "HEAD":
            return h.reply(200, b"", {"Content-Length": str(len(data)), "Docker-Content-Digest": digest}, head=True)
        if self.fail_blob_gets:
            self.fail_blob_gets -= 1
            return h.reply(503, {"errors": [{"code": "UNAVAILABLE", "message": "try later"}]})
        if self.redirect_base:
            return h.reply(307, b"", {"Location": f"{self.redirect_base}/redirected{h.path}"})
        return self.send_blob(h, digest)

    def send_blob(self, h, digest):
        data = self.blobs[digest]
        rng = h.headers.get("Range")
        start = int(rng[6:].split("-")[0]) if rng and not self.ignore_range else 0
        body = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Length", str(len(body)))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        cut = self.drop_once.pop(digest, None)
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        h.wfile.write(body)

    def upload(self, h, method, name, rest, query):
        if method == "POST" and not rest:
            if "mount" in query:
                d = query["mount"][0]
                if d in self.repo_blobs.get(query["from"][0], set()):
                    self.repo_blobs.setdefault(name, set()).add(d)
                    return h.reply(201, b"", {"Location": f"/v2/{name}/blobs/{d}", "Docker-Content-Digest": d})
            uid = uuid.uuid4().hex
            self.uploads[uid] = bytearray()
            return h.reply(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{uid}?_state=abc", "Range": "0-0"})
        uid = rest
        if uid not in self.uploads:
            return h.reply(404, {"errors": [{"code": "BLOB_UPLOAD_UNKNOWN", "message": "blob upload unknown"}]})
        buf = self.uploads[uid]
        if method == "DELETE":
            del self.uploads[uid]
            return h.reply(204, b"")
        if method == "PATCH":
            if self.reject_patch:
                return h.reply(405, {"errors": [{"code": "UNSUPPORTED", "message": "PATCH not allowed"}]})
            start = int(h.headers["Content-Range"].split("-")[0])
            if start != len(buf):
                return h.reply(416, b"")
            buf += h.body()
            return h.reply(202, b"", {"Location": f"/v2/{name}/blobs/uploads/{uid}?_state=p{len(buf)}",
                                      "Range": f"0-{len(buf) - 1}"})
        if method == "PUT":
            buf += h.body()
            want = query["digest"][0]
            if sha(bytes(buf)) != want:
                return h.reply(400, {"errors": [{"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"}]})
            self.put_blob(name, bytes(buf))
            del self.uploads[uid]
            return h.reply(201, b"", {"Docker-Content-Digest": want, "Location": f"/v2/{name}/blobs/{want}"})
        h.reply(405, b"")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def body(self) -> bytes:
        self._body_read = True
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(n) if n else b""

    def reply(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None, head: bool = False) -> None:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        self.send_response(status)
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(data)))
        headers.setdefault("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if not head and self.command != "HEAD":
            self.wfile.write(data)

    def _any(self):
        self._body_read = False
        self.server.fake.handle(self, self.command)
        if not self._body_read and int(self.headers.get("Content-Length") or 0):
            self.close_connection = True  # an unread request body would poison the connection

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any


def _serve(fake: Fake):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.fake = fake
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    return srv, t


@pytest.fixture
def fake():
    f = Fake()
    srv, t = _serve(f)
    f.port = srv.server_address[1]
    yield f
    srv.shutdown()
    srv.server_close()
    t.join(5)


def host(f: Fake) -> str:
    return f"127.0.0.1:{f.port}"


def client(**creds) -> RegistryClient:
    return RegistryClient(credentials=creds.get("creds", {}), insecure=[], timeout=10)


def oci_manifest(cfg_digest: str, layers: List[tuple]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
                       "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": cfg_digest, "size": 2},
                       "layers": [{"mediaType": mediatypes.OCI_LAYER_GZIP, "digest": d, "size": s} for d, s in layers]},
                      sort_keys=True).encode()


# ------------------------------------------------------------------------------------------ tests


def test_anonymous_bearer_token_and_cache(fake):
    fake.auth = "bearer"
    data = b"layer-bytes" * 1000
    d = fake.put_blob("library/app", data)
    m = fake.put_manifest("library/app", "1", oci_manifest(d, [(d, len(data))]), mediatypes.OCI_MANIFEST)
    with client() as c:
        ref = f"{host(fake)}/library/app:1"
        assert c.resolve(ref) == (m, mediatypes.OCI_MANIFEST, len(fake.manifests[("library/app", "1")][0]))
        body, mt, digest = c.get_manifest(ref)
        assert digest == m and mt == mediatypes.OCI_MANIFEST
        out = bytearray()
        assert c.fetch_blob(f"{host(fake)}/library/app", d, len(data), out.extend) == len(data)
        assert bytes(out) == data
    # one anonymous token for the pull scope, reused for every later request
    assert len(fake.token_requests) == 1
    req = fake.token_requests[0]
    assert req["auth"] == "" and req["service"] == ["fake"] and req["scope"] == ["repository:library/app:pull"]


def test_bearer_with_basic_credentials_for_push_and_reauth(fake):
    fake.auth = "bearer"
    h = host(fake)
    with client(creds={h: ("alice", "secret")}) as c:
        data = b"x" * 5000
        assert c.push_blob(f"{h}/team/app", sha(data), len(data), lambda: io.BytesIO(data)) == "uploaded"
        assert fake.blobs[sha(data)] == data
        assert fake.token_requests[-1]["auth"].startswith("Basic ")
        assert fake.token_requests[-1]["account"] == ["alice"]
        n = len(fake.token_requests)
        fake.tokens.clear()  # the registry forgets every token: the client re-authenticates once
        assert c.blob_exists(f"{h}/team/app", sha(data))
        assert len(fake.token_requests) == n + 1


def test_bearer_wrong_password_is_unauthorized(fake):
    fake.auth = "bearer"
    h = host(fake)
    with client(creds={h: ("alice", "wrong")}) as c:
        with pytest.raises(RegistryError, match="^unauthorized: incorrect username or password") as ei:
            c.list_tags(f"{h}/team/app")
    assert ei.value.status == 401


def test_anonymous_push_is_refused(fake):
    fake.auth = "bearer"
    h = host(fake)
    with client() as c:
        with pytest.raises(RegistryError, match="unauthorized") as ei:
            c.push_blob(f"{h}/team/app", sha(b"a"), 1, lambda: io.BytesIO(b"a"))
    assert ei.value.status == 401 and "UNAUTHORIZED" in ei.value.codes
    assert not fake.uploads


def test_identity_token_uses_oauth_post(fake):
    fake.auth = "bearer"
    h = host(fake)
    with client(creds={h: AuthConfig(identity_token="idtok")}) as c:
        c.ping(h, authenticate=True)
        fake.put_manifest("a/b", "t", oci_manifest(sha(b"{}"), []), mediatypes.OCI_MANIFEST)
        assert c.list_tags(f"{h}/a/b") == ["t"]
    posts = [r for r in fake.token_requests if r["method"] == "POST"]
    assert posts and posts[-1]["grant_type"] == ["refresh_token"] and posts[-1]["client_id"] == ["nbcontainer"]
    assert posts[-1]["scope"] == ["repository:a/b:pull"]


def test_registry_token_sent_directly(fake):
    fake.auth = "bearer"
    fake.tokens["static-token"] = {"repository:a/b:pull"}
    fake.put_manifest("a/b", "t", oci_manifest(sha(b"{}"), []), mediatypes.OCI_MANIFEST)
    h = host(fake)
    with client(creds={h: AuthConfig(registry_token="static-token")}) as c:
        assert c.list_tags(f"{h}/a/b") == ["t"]
    assert not fake.token_requests
    assert fake.log[-1][2] == "Bearer static-token"


def test_basic_auth(fake):
    fake.auth = "basic"
    h = host(fake)
    fake.put_manifest("a/b", "t", oci_manifest(sha(b"{}"), []), mediatypes.OCI_MANIFEST)
    with client(creds={h: ("alice", "secret")}) as c:
        info = c.ping(h)
        assert info["status"] == 401 and info["auth"] == "basic" and info["realm"] == "fake"
        assert c.list_tags(f"{h}/a/b") == ["t"]
        assert c.list_tags(f"{h}/a/b") == ["t"]
    sent = [a for _, _, a in fake.log]
    assert sent[-1].startswith("Basic ")  # known scheme: credentials sent up front, no extra 401
    assert sum(1 for a in sent if a is None) == 2  # the ping and the first request only
    with client(creds={h: ("alice", "nope")}) as c:
        with pytest.raises(RegistryError, match="^unauthorized: incorrect username or password"):
            c.list_tags(f"{h}/a/b")
    with client() as c:
        with pytest.raises(RegistryError, match="^unauthorized: authentication required"):
            c.list_tags(f"{h}/a/b")
        with pytest.raises(RegistryError, match="unauthorized"):
            c.ping(h, authenticate=True)


def test_error_mapping(fake):
    h = host(fake)
    with client() as c:
        with pytest.raises(RegistryError) as ei:
            c.get_manifest(f"{h}/no/such:tag")
        assert str(ei.value) == f"manifest for {h}/no/such:tag not found: manifest unknown: manifest unknown"
        assert ei.value.status == 404 and ei.value.codes == ["MANIFEST_UNKNOWN"]
        with pytest.raises(RegistryError, match=f"manifest for {h}/no/such:tag not found"):
            c.resolve(f"{h}/no/such:tag")  # HEAD has no body: the GET fallback gives the codes
        with pytest.raises(RegistryError) as ei:
            c.list_tags(f"{h}/no/such")
        assert str(ei.value).startswith(f"repository {h}/no/such not found: name unknown")
        with pytest.raises(RegistryError, match="blob unknown") as ei:
            c.open_blob(f"{h}/no/such", sha(b"z"))
        assert ei.value.codes == ["BLOB_UNKNOWN"]
        assert c.blob_exists(f"{h}/no/such", sha(b"z")) is False


def test_unreachable_host_names_it():
    with client() as c:
        with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
            c.list_tags("127.0.0.1:9/a/b")
        with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
            c.search("127.0.0.1:9/a")


def test_manifest_checks(fake):
    h = host(fake)
    body = oci_manifest(sha(b"{}"), [])
    d = fake.put_manifest("a/b", "ok", body, mediatypes.OCI_MANIFEST)
    with client() as c:
        # by digest: verified
        assert c.get_manifest(f"{h}/a/b", digest=d)[2] == d
        wrong = sha(b"other")
        fake.serve_override[("a/b", wrong)] = (body, mediatypes.OCI_MANIFEST)
        with pytest.raises(DigestMismatch):
            c.get_manifest(f"{h}/a/b@{wrong}")
        # unknown media type
        fake.serve_override[("a/b", "v1")] = (json.dumps({"schemaVersion": 1, "name": "a/b"}).encode(),
                                              mediatypes.DOCKER_MANIFEST_V1_SIGNED)
        with pytest.raises(RegistryError, match="unsupported manifest media type.*schema 1"):
            c.get_manifest(f"{h}/a/b:v1")
        # Content-Type disagrees with the body's mediaType
        fake.serve_override[("a/b", "liar")] = (body, mediatypes.DOCKER_MANIFEST)
        with pytest.raises(RegistryError, match="does not match"):
            c.get_manifest(f"{h}/a/b:liar")
        # over the 4 MiB cap
        big = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "pad": "x" * (4 << 20)}).encode()
        fake.serve_override[("a/b", "big")] = (big, mediatypes.OCI_MANIFEST)
        with pytest.raises(RegistryError, match="too large"):
            c.get_manifest(f"{h}/a/b:big")
        # OCI manifests may omit mediaType: the Content-Type decides
        plain = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
        fake.serve_override[("a/b", "plain")] = (plain, "application/json")
        assert c.get_manifest(f"{h}/a/b:plain")[1] == mediatypes.OCI_INDEX
        # digest reference resolves to itself
        assert c.resolve(f"{h}/a/b@{d}")[0] == d


def test_accept_header_sent_with_all_types(fake):
    h = host(fake)
    for mt in (mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST, mediatypes.OCI_INDEX):
        body = json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": []}).encode()
        fake.put_manifest("a/b", "t", body, mt)
        with client() as c:
            assert c.get_manifest(f"{h}/a/b:t")[1] == mt


@pytest.mark.parametrize("ignore_range", [False, True])
def test_dropped_connection_is_resumed(fake, ignore_range):
    h = host(fake)
    data = bytes(range(256)) * 4096  # 1 MiB
    d = fake.put_blob("a/b", data)
    fake.drop_once[d] = 300_000
    fake.ignore_range = ignore_range
    out = bytearray()
    events = []
    with client() as c:
        assert c.fetch_blob(f"{h}/a/b", d, len(data), out.extend, progress=events.append) == len(data)
    assert bytes(out) == data  # every byte exactly once, in order
    ranges = [p for m, p, _ in fake.log if m == "GET" and "/blobs/" in p]
    assert len(ranges) == 2
    assert events[-1].status == "Download complete" and events[-1].current == len(data)


def test_blob_digest_mismatch_and_size(fake):
    h = host(fake)
    data = b"hello world"
    d = fake.put_blob("a/b", data)
    fake.blobs[d] = b"hello WORLD"  # corrupted on the server
    with client() as c:
        with pytest.raises(DigestMismatch):
            c.fetch_blob(f"{h}/a/b", d, len(data), lambda b: None)
        fake.blobs[d] = data + b"!!"
        with pytest.raises(DigestMismatch, match="more than"):
            c.fetch_blob(f"{h}/a/b", d, len(data), lambda b: None)


def test_retries_exhausted(fake):
    h = host(fake)
    data = b"z" * 100_000
    d = fake.put_blob("a/b", data)

    class Always(dict):
        def pop(self, k, default=None):
            return 10 if k == d else default

    fake.drop_once = Always()
    with client() as c:
        with pytest.raises(RegistryError, match="failed after 1 retries"):
            c.fetch_blob(f"{h}/a/b", d, len(data), lambda b: None, retries=1)


def test_redirect_does_not_forward_authorization(fake):
    other = Fake()  # the "CDN": serves the same blobs, no auth
    srv, t = _serve(other)
    try:
        fake.auth = "basic"
        data = b"cdn-content" * 100
        d = fake.put_blob("a/b", data)
        other.put_blob("a/b", data)
        fake.redirect_base = f"http://localhost:{srv.server_address[1]}"
        h = host(fake)
        out = bytearray()
        with client(creds={h: ("alice", "secret")}) as c:
            c.fetch_blob(f"{h}/a/b", d, len(data), out.extend)
        assert bytes(out) == data
        assert other.log and all(a is None for _, _, a in other.log)
        assert fake.log[-1][2].startswith("Basic ")
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_push_chunked_mount_and_fallback(fake):
    h = host(fake)
    data = bytes(range(256)) * 1000
    d = sha(data)
    events = []
    with client() as c:
        assert c.push_blob(f"{h}/a/src", d, len(data), lambda: io.BytesIO(data), chunk_size=100_000,
                           progress=events.append) == "uploaded"
        patches = [p for m, p, _ in fake.log if m == "PATCH"]
        assert len(patches) == 3 and "_state=p100000" in patches[1]  # always the newest Location
        assert fake.blobs[d] == data
        assert events[-1].status == "Pushed" and events[-1].current == len(data)
        assert c.push_blob(f"{h}/a/src", d, len(data), lambda: io.BytesIO(data)) == "exists"
        assert c.push_blob(f"{h}/a/dst", d, len(data), lambda: io.BytesIO(data), mount_from=f"{h}/a/src") == "mounted"
        assert d in fake.repo_blobs["a/dst"]
        # a registry that refuses PATCH: the same blob goes up in one PUT
        fake.reject_patch = True
        data2 = b"q" * 250_000
        assert c.push_blob(f"{h}/a/other", sha(data2), len(data2), lambda: io.BytesIO(data2),
                           chunk_size=100_000) == "uploaded"
        assert fake.blobs[sha(data2)] == data2
        assert not fake.uploads  # the refused session was cancelled
        # wrong digest: the registry refuses, the error says so
        with pytest.raises(RegistryError, match="digest invalid") as ei:
            c.push_blob(f"{h}/a/other", sha(b"not this"), 3, lambda: io.BytesIO(b"abc"))
        assert ei.value.status == 400 and ei.value.codes == ["DIGEST_INVALID"]


def test_put_manifest_and_pagination(fake):
    h = host(fake)
    with client() as c:
        body = oci_manifest(sha(b"{}"), [])
        for tag in ("a", "b", "c", "d", "e"):
            assert c.put_manifest(f"{h}/x/y", tag, body, mediatypes.OCI_MANIFEST) == sha(body)
        assert c.list_tags(f"{h}/x/y", page_size=2) == ["a", "b", "c", "d", "e"]
        assert [p for m, p, _ in fake.log if "tags/list" in p][-1] == "/v2/x/y/tags/list?last=d&n=2"
        with pytest.raises(DigestMismatch):
            c.put_manifest(f"{h}/x/y", sha(b"else"), body, mediatypes.OCI_MANIFEST)
        for name in ("x/z", "w/v"):
            c.put_manifest(f"{h}/{name}", "t", body, mediatypes.OCI_MANIFEST)
        assert c.catalog(h, page_size=1) == ["w/v", "x/y", "x/z"]
        found = c.search(f"{h}/x")
        assert [r["name"] for r in found] == [f"{h}/x/y", f"{h}/x/z"]
        assert set(found[0]) == {"name", "description", "star_count", "is_official", "is_automated"}


def test_hub_search_shape_and_filters(fake, monkeypatch):
    monkeypatch.setattr(search_mod, "HUB_INDEX_HOST", host(fake))
    with client() as c:
        rows = c.search("busybox")
        assert [r["name"] for r in rows] == ["busybox", "user/busybox"]
        assert rows[0] == {"name": "busybox", "description": "busybox image", "star_count": 3000,
                           "is_official": True, "is_automated": False}
        assert [r["name"] for r in c.search("busybox", filters=["is-official=true"])] == ["busybox"]
        assert [r["name"] for r in c.search("busybox", filters={"stars": "5"})] == ["busybox"]
        assert len(c.search("busybox", limit=1)) == 1
    assert any(p.startswith("/v1/search?q=busybox&n=25") for _, p, _ in fake.log)


def test_transient_server_errors_are_retried(fake):
    h = host(fake)
    data = b"payload" * 100
    d = fake.put_blob("a/b", data)
    fake.fail_blob_gets = 2
    out = bytearray()
    with client() as c:
        c.fetch_blob(f"{h}/a/b", d, len(data), out.extend, retries=3)
        assert bytes(out) == data
        fake.fail_blob_gets = 5
        with pytest.raises(RegistryError, match="unavailable: try later") as ei:
            c.fetch_blob(f"{h}/a/b", d, len(data), lambda b: None, retries=2)
        assert ei.value.status == 503


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_login_checks_then_writes(fake, scheme, tmp_path, monkeypatch):
    from nbcontainer.registry import login, logout

    fake.auth = scheme
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("DOCKER_AUTH_CONFIG", raising=False)
    h = host(fake)
    with pytest.raises(RegistryError, match="^unauthorized: incorrect username or password"):
        login(h, "alice", "wrong")
    assert not (tmp_path / "docker" / "config.json").exists()  # nothing written on failure
    assert login(f"http://{h}/", "alice", "secret") == "Login Succeeded"
    cfg = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert cfg["auths"][h]["auth"] == base64.b64encode(b"alice:secret").decode()
    assert logout(h) is True and logout(h) is False
