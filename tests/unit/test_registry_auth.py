"""WWW-Authenticate parsing, scope merging, credentials -> headers (registry/auth.py)."""
from __future__ import annotations

import base64

import pytest

from nbcontainer.registry.auth import AuthConfig, merge_scopes, parse_challenges, repository_scope


def test_bearer_challenge_with_quoted_commas():
    h = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
         'scope="repository:library/alpine:pull,push",error="insufficient_scope"')
    (ch,) = parse_challenges(h)
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                         "scope": "repository:library/alpine:pull,push", "error": "insufficient_scope"}


def test_several_challenges_and_case_and_spaces():
    h = 'Basic realm="local registry" , BEARER Realm = "http://x/token" ,Service=svc'
    chs = parse_challenges(h)
    assert [c.scheme for c in chs] == ["basic", "bearer"]
    assert chs[0].params == {"realm": "local registry"}
    assert chs[1].params == {"realm": "http://x/token", "service": "svc"}


def test_escaped_quote_and_token68_and_empty():
    (ch,) = parse_challenges(r'Basic realm="say \"hi\", ok"')
    assert ch.params["realm"] == 'say "hi", ok'
    chs = parse_challenges("Negotiate YWJj==, Basic realm=r")
    assert chs[0].scheme == "negotiate" and chs[0].params == {"token68": "YWJj=="}
    assert chs[1].params == {"realm": "r"}
    assert parse_challenges("") == [] and parse_challenges(None) == []
    (bare,) = parse_challenges("Basic")
    assert bare.scheme == "basic" and bare.params == {}


def test_multiple_space_separated_scopes_kept_in_one_param():
    (ch,) = parse_challenges('Bearer realm="r",scope="repository:a:pull repository:b:pull,push"')
    assert ch.params["scope"] == "repository:a:pull repository:b:pull,push"


def test_merge_scopes_unions_actions_per_resource():
    got = merge_scopes(["repository:a/b:pull", "repository:a/b:push,pull", "repository:c:pull",
                        "registry:catalog:*", ""])
    assert got == ("registry:catalog:*", "repository:a/b:pull,push", "repository:c:pull")
    assert merge_scopes(["repository:x:pull repository:y:push"]) == ("repository:x:pull", "repository:y:push")
    assert repository_scope("lib/app", "pull", "push") == "repository:lib/app:pull,push"


def test_basic_header():
    cfg = AuthConfig(username="alice", password="p:w")
    assert cfg.has_password
    assert base64.b64decode(cfg.basic_header().split()[1]) == b"alice:p:w"
    assert not AuthConfig(username="alice").has_password


@pytest.mark.parametrize("header", ['Bearer realm="unterminated', "Basic realm=", ",,,", "=oops"])
def test_malformed_headers_do_not_raise(header):
    parse_challenges(header)  # must not raise
