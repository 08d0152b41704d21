"""docker config.json credentials, helpers, login/logout (registry/credentials.py)."""
from __future__ import annotations

import base64
import json
import os
import stat
import sys

import pytest

from nbcontainer.errors import InvalidArgument
from nbcontainer.registry.credentials import CredentialStore, auth_key, config_dir, normalize_host


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def docker_dir(tmp_path, monkeypatch):
    d = tmp_path / "dockercfg"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("DOCKER_AUTH_CONFIG", raising=False)
    return d


def write_cfg(d, data):
    (d / "config.json").write_text(json.dumps(data))


def test_key_normalisation():
    assert normalize_host("https://index.docker.io/v1/") == "index.docker.io"
    assert normalize_host("docker.io") == "index.docker.io"
    assert normalize_host("registry-1.docker.io") == "index.docker.io"
    assert normalize_host("http://Reg.Example.com:5000/v2/") == "reg.example.com:5000"
    assert auth_key("docker.io") == "https://index.docker.io/v1/"
    assert auth_key("https://localhost:5000/") == "localhost:5000"
    with pytest.raises(InvalidArgument):
        auth_key("https://")


def test_config_dir_from_env(docker_dir, monkeypatch):
    assert config_dir() == docker_dir
    monkeypatch.delenv("DOCKER_CONFIG")
    assert config_dir() == __import__("pathlib").Path(os.path.expanduser("~")) / ".docker"


def test_read_auths_variants(docker_dir):
    write_cfg(docker_dir, {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hub:pw")},
        "http://old.example.com/v1/": {"auth": b64("old:pw")},
        "localhost:5000": {"username": "u", "password": "p"},
        "tok.example.com": {"identitytoken": "refresh-me"},
        "reg.example.com": {"registrytoken": "bearer-x"},
        "empty.example.com": {},
    }})
    s = CredentialStore()
    hub = s.get("docker.io")
    assert (hub.username, hub.password) == ("hubuser", "hub:pw")
    assert s.get("index.docker.io").username == "hubuser"
    assert s.get("old.example.com").username == "old"
    assert (s.get("localhost:5000").username, s.get("localhost:5000").password) == ("u", "p")
    assert s.get("tok.example.com").identity_token == "refresh-me"
    assert s.get("reg.example.com").registry_token == "bearer-x"
    assert s.get("empty.example.com") is None
    assert s.get("nowhere.example.com") is None


def test_bad_auth_value_names_the_key(docker_dir):
    write_cfg(docker_dir, {"auths": {"bad.example.com": {"auth": b64("nocolon")}}})
    with pytest.raises(InvalidArgument, match="bad.example.com"):
        CredentialStore().get("bad.example.com")


def test_malformed_file_is_a_clear_error(docker_dir):
    (docker_dir / "config.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="config.json"):
        CredentialStore().get("x.example.com")


def test_missing_file_means_no_credentials(docker_dir):
    assert CredentialStore().get("docker.io") is None


def test_docker_auth_config_env_overrides_file(docker_dir, monkeypatch):
    write_cfg(docker_dir, {"auths": {"localhost:5000": {"auth": b64("file:pw")}}})
    monkeypatch.setenv("DOCKER_AUTH_CONFIG", json.dumps({"auths": {"localhost:5000": {"auth": b64("env:pw")}}}))
    assert CredentialStore().get("localhost:5000").username == "env"


def test_login_keeps_other_keys_and_is_0600(docker_dir):
    write_cfg(docker_dir, {"auths": {"other:1": {"auth": b64("o:p")}}, "psFormat": "table {{.ID}}",
                           "proxies": {"default": {"httpProxy": "http://p:3128"}}})
    s = CredentialStore()
    assert s.login("docker.io", "alice", "s3cret") == "https://index.docker.io/v1/"
    data = json.loads((docker_dir / "config.json").read_text())
    assert data["psFormat"] == "table {{.ID}}" and data["proxies"]["default"]["httpProxy"] == "http://p:3128"
    assert data["auths"]["other:1"] == {"auth": b64("o:p")}
    assert data["auths"]["https://index.docker.io/v1/"] == {"auth": b64("alice:s3cret")}
    assert stat.S_IMODE((docker_dir / "config.json").stat().st_mode) == 0o600
    assert s.get("index.docker.io").password == "s3cret"
    assert sorted(p.name for p in docker_dir.iterdir()) == ["config.json"]  # no temp files left


def test_login_replaces_other_spellings_and_logout(docker_dir):
    write_cfg(docker_dir, {"auths": {"https://localhost:5000/v2/": {"auth": b64("old:x")}}})
    s = CredentialStore()
    s.login("localhost:5000", "new", "pw")
    assert list(json.loads((docker_dir / "config.json").read_text())["auths"]) == ["localhost:5000"]
    assert s.logout("http://localhost:5000") is True
    assert json.loads((docker_dir / "config.json").read_text())["auths"] == {}
    assert s.logout("localhost:5000") is False
    assert s.get("localhost:5000") is None


def test_login_creates_directory(tmp_path, monkeypatch):
    d = tmp_path / "new" / "dir"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    CredentialStore().login("r.example.com", "u", "p")
    assert json.loads((d / "config.json").read_text())["auths"]["r.example.com"]["auth"] == b64("u:p")


def test_login_needs_a_username(docker_dir):
    with pytest.raises(InvalidArgument):
        CredentialStore().login("r.example.com", "", "p")
    assert not (docker_dir / "config.json").exists()


HELPER = """#!{python}
import json, os, sys
store = os.path.join(os.path.dirname(os.path.abspath(__file__)), "secrets.json")
data = json.load(open(store)) if os.path.exists(store) else {{}}
action = sys.argv[1]
inp = sys.stdin.read()
with open(store + ".log", "a") as log:
    log.write(action + " " + (inp.strip() if action != "store" else json.loads(inp)["ServerURL"]) + "\\n")
if action == "get":
    if inp.strip() not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    u, s = data[inp.strip()]
    print(json.dumps({{"ServerURL": inp.strip(), "Username": u, "Secret": s}}))
elif action == "store":
    req = json.loads(inp)
    data[req["ServerURL"]] = [req["Username"], req["Secret"]]
    json.dump(data, open(store, "w"))
elif action == "erase":
    if data.pop(inp.strip(), None) is None:
        print("credentials not found in native keychain"); sys.exit(1)
    json.dump(data, open(store, "w"))
"""


@pytest.fixture
def helper_bin(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    prog = bindir / "docker-credential-test"
    prog.write_text(HELPER.format(python=sys.executable))
    prog.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bindir


def test_creds_store_helper_roundtrip(docker_dir, helper_bin):
    write_cfg(docker_dir, {"credsStore": "test", "auths": {}})
    s = CredentialStore()
    s.login("localhost:5000", "alice", "pw1")
    data = json.loads((docker_dir / "config.json").read_text())
    assert data["auths"] == {"localhost:5000": {}}  # the secret lives in the helper, not the file
    assert data["credsStore"] == "test"
    got = s.get("localhost:5000")
    assert (got.username, got.password) == ("alice", "pw1")
    assert s.logout("localhost:5000") is True
    assert s.get("localhost:5000") is None
    log = (helper_bin / "secrets.json.log").read_text().splitlines()
    assert log[0] == "store localhost:5000" and "erase localhost:5000" in log


def test_cred_helpers_win_over_creds_store_and_token_username(docker_dir, helper_bin):
    (helper_bin / "secrets.json").write_text(json.dumps({
        "https://index.docker.io/v1/": ["<token>", "refresh-token"], "r.example.com": ["bob", "pw"]}))
    write_cfg(docker_dir, {"credsStore": "missing-helper", "credHelpers": {"docker.io": "test", "r.example.com": "test"},
                           "auths": {"plain.example.com": {"auth": b64("p:q")}}})
    s = CredentialStore()
    hub = s.get("docker.io")
    assert hub.identity_token == "refresh-token" and not hub.username
    assert s.get("r.example.com").username == "bob"
    # credsStore names a helper that is not installed: falls back to the file's auths
    assert s.get("plain.example.com").username == "p"


def test_helper_not_found_on_login_is_clear(docker_dir):
    write_cfg(docker_dir, {"credsStore": "definitely-not-installed"})
    from nbcontainer.errors import RegistryError
    with pytest.raises(RegistryError, match="docker-credential-definitely-not-installed"):
        CredentialStore().login("r.example.com", "u", "p")
