"""Docker's credentials: ``~/.docker/config.json``, credential helpers, ``login``/``logout``.

Read (image-formats.md 3.4):
* the directory is ``$DOCKER_CONFIG`` or ``~/.docker``; the file ``config.json`` in it;
* ``DOCKER_AUTH_CONFIG`` (JSON ``{"auths": {...}}``) overrides the file's ``auths`` entries;
* ``credHelpers[host]`` wins over ``credsStore``; both name ``docker-credential-<suffix>``
  run with ``get`` (server URL on stdin, ``{"Username","Secret"}`` on stdout; a Username of
  ``<token>`` means the secret is an identity token);
* ``auths`` entries: ``auth`` (base64 ``user:password``), ``username``/``password``,
  ``identitytoken``, ``registrytoken``.  Keys are matched after stripping scheme and path;
  Docker Hub's key is always ``https://index.docker.io/v1/``.

Write: :meth:`CredentialStore.login` / :meth:`logout` change only the entry of that registry
(other keys of the file are kept as read), atomically (temp file, fsync, rename), mode 0600.
With a helper in effect the secret goes to the helper (``store``/``erase``) and ``auths``
keeps an empty entry, as docker does.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import InvalidArgument, RegistryError
from .auth import AuthConfig
from .config import HUB_AUTH_KEY, is_hub

TOKEN_USERNAME = "<token>"
_HELPER_TIMEOUT = 60


def config_dir() -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``."""
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path(os.path.expanduser("~")) / ".docker"


def normalize_host(key: str) -> str:
    """A registry name from an ``auths`` key or a user's argument: scheme and path stripped,
    lowercased; every Docker Hub alias becomes ``index.docker.io``."""
    k = key.strip()
    low = k.lower()
    for prefix in ("http://", "https://"):
        if low.startswith(prefix):
            k = k[len(prefix):]
            break
    k = k.split("/", 1)[0].lower()
    return "index.docker.io" if is_hub(k) else k


def auth_key(host: str) -> str:
    """The ``auths`` key docker writes for a registry ("docker.io" -> "https://index.docker.io/v1/")."""
    h = normalize_host(host)
    if not h:
        raise InvalidArgument(f"invalid registry address {host!r}", value=host, what="registry")
    return HUB_AUTH_KEY if h == "index.docker.io" else h


def decode_entry(entry: Dict[str, Any], key: str = "") -> AuthConfig:
    """An ``auths`` entry as AuthConfig; InvalidArgument naming the key for a bad ``auth`` value."""
    cfg = AuthConfig(username=entry.get("username") or "", password=entry.get("password") or "",
                     identity_token=entry.get("identitytoken") or "",
                     registry_token=entry.get("registrytoken") or "",
                     server_address=entry.get("serveraddress") or key)
    raw = entry.get("auth")
    if raw:
        try:
            text = base64.b64decode(raw, validate=False).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"invalid auth value for {key!r} in docker config: not base64", value=key,
                                  what="config.json") from None
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise InvalidArgument(f"invalid auth value for {key!r} in docker config: expected user:password",
                                  value=key, what="config.json")
        cfg.username, cfg.password = user, password
    return cfg


class CredentialStore:
    """Credentials from a docker config directory (``$DOCKER_CONFIG`` / ``~/.docker`` by default)."""

    def __init__(self, directory: Optional[os.PathLike] = None, env: Optional[Dict[str, str]] = None):
        self._env = os.environ if env is None else env
        self.directory = Path(directory) if directory is not None else config_dir()

    @property
    def path(self) -> Path:
        return self.directory / "config.json"

    # -- reading --------------------------------------------------------------------------------
    def load(self) -> Dict[str, Any]:
        """The config file as a dict ({} when missing); InvalidArgument naming a malformed file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise InvalidArgument(f"cannot read {str(self.path)!r}: {e.strerror}", value=str(self.path),
                                  what="config.json") from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidArgument(f"invalid JSON in {str(self.path)!r}: {e}", value=str(self.path),
                                  what="config.json") from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"invalid docker config {str(self.path)!r}: not a JSON object",
                                  value=str(self.path), what="config.json")
        return data

    def _env_auths(self) -> Dict[str, Any]:
        raw = self._env.get("DOCKER_AUTH_CONFIG")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise InvalidArgument("invalid JSON in DOCKER_AUTH_CONFIG", value="DOCKER_AUTH_CONFIG",
                                  what="environment") from None
        auths = data.get("auths") if isinstance(data, dict) else None
        return auths if isinstance(auths, dict) else {}

    def helper_for(self, host: str, data: Optional[Dict[str, Any]] = None) -> Optional[str]:
        """The credential helper suffix that applies to ``host`` (credHelpers first, then credsStore)."""
        data = self.load() if data is None else data
        want = normalize_host(host)
        for key, helper in (data.get("credHelpers") or {}).items():
            if normalize_host(key) == want and helper:
                return helper
        return data.get("credsStore") or None

    def get(self, host: str) -> Optional[AuthConfig]:
        """Credentials for the registry ``host`` (a reference domain like "docker.io" or "h:5000"), or None."""
        want = normalize_host(host)
        env_auths = self._env_auths()
        for key, entry in env_auths.items():
            if normalize_host(key) == want and isinstance(entry, dict):
                return decode_entry(entry, key)
        data = self.load()
        helper = self.helper_for(host, data)
        if helper:
            creds = self._helper_get(helper, auth_key(host))
            if creds is not None:
                return creds
        auths = data.get("auths") or {}
        # an exact key first, then any key that normalises to the host
        ordered = sorted(auths.items(), key=lambda kv: kv[0] != auth_key(host))
        for key, entry in ordered:
            if normalize_host(key) == want and isinstance(entry, dict):
                cfg = decode_entry(entry, key)
                if cfg.username or cfg.identity_token or cfg.registry_token:
                    return cfg
        return None

    __call__ = get  # a store can be passed where a lookup function is expected

    # -- helpers ---------------------------------------------------------------------------------
    def _run_helper(self, helper: str, action: str, stdin: str) -> subprocess.CompletedProcess:
        program = f"docker-credential-{helper}"
        path = shutil.which(program, path=self._env.get("PATH"))
        if path is None:
            raise RegistryError(f"credential helper {program!r} not found in PATH")
        try:
            return subprocess.run([path, action], input=stdin.encode("utf-8"), capture_output=True,
                                  timeout=_HELPER_TIMEOUT, env=dict(self._env))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RegistryError(f"credential helper {program!r} failed: {e}") from None

    def _helper_get(self, helper: str, server: str) -> Optional[AuthConfig]:
        try:
            proc = self._run_helper(helper, "get", server)
        except RegistryError:
            return None  # a missing helper falls back to the file's auths
        if proc.returncode != 0:
            return None  # "credentials not found in native keychain"
        try:
            out = json.loads(proc.stdout.decode("utf-8"))
        except ValueError:
            raise RegistryError(f"credential helper docker-credential-{helper} printed invalid JSON") from None
        user, secret = out.get("Username") or "", out.get("Secret") or ""
        if not secret:
            return None
        if user == TOKEN_USERNAME:
            return AuthConfig(identity_token=secret, server_address=server)
        return AuthConfig(username=user, password=secret, server_address=server)

    # -- writing --------------------------------------------------------------------------------
    def _write(self, data: Dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(json.dumps(data, indent="\t") + "\n")
                f.flush()
                os.fsync(f.fileno())
            target = self.path.resolve() if self.path.is_symlink() else self.path
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def login(self, host: str, username: str, password: str = "", identity_token: str = "") -> str:
        """Store credentials for ``host``; returns the key written. Other file keys are kept."""
        if not username and not identity_token:
            raise InvalidArgument("login needs a username", value=username, what="username")
        key = auth_key(host)
        data = self.load()
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = {}
        helper = self.helper_for(host, data)
        # entries that name the same registry under another spelling are replaced
        for k in [k for k in auths if normalize_host(k) == normalize_host(host) and k != key]:
            del auths[k]
        if helper:
            secret_user = TOKEN_USERNAME if identity_token else username
            payload = json.dumps({"ServerURL": key, "Username": secret_user,
                                  "Secret": identity_token or password})
            proc = self._run_helper(helper, "store", payload)
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
                raise RegistryError(f"error storing credentials with docker-credential-{helper}: {err}")
            auths[key] = {}
        else:
            entry: Dict[str, Any] = {"auth": base64.b64encode(f"{username}:{password if not identity_token else ''}"
                                                            .encode("utf-8")).decode("ascii")}
            if identity_token:
                entry["identitytoken"] = identity_token
            auths[key] = entry
        data["auths"] = auths
        self._write(data)
        return key

    def logout(self, host: str) -> bool:
        """Forget credentials for ``host``; False when none were stored."""
        data = self.load()
        auths = data.get("auths") if isinstance(data.get("auths"), dict) else {}
        want = normalize_host(host)
        keys = [k for k in auths if normalize_host(k) == want]
        removed = bool(keys)
        helper = self.helper_for(host, data)
        if helper:
            try:
                proc = self._run_helper(helper, "erase", auth_key(host))
                removed = removed or proc.returncode == 0
            except RegistryError:
                pass
        if keys:
            for k in keys:
                del auths[k]
            data["auths"] = auths
            self._write(data)
        return removed
