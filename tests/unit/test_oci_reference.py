"""References are parsed and normalised exactly as docker does."""
from __future__ import annotations

import pytest

from nbcontainer.errors import InvalidArgument
from nbcontainer.oci.reference import Reference, familiar, looks_like_image_id, parse_reference

D64 = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text,full,fam", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
    ("user/app:1", "docker.io/user/app:1", "user/app:1"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("a/b/c", "docker.io/a/b/c:latest", "a/b/c:latest"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x:y", "localhost:5000/x:y", "localhost:5000/x:y"),
    ("registry.example.com/team/app", "registry.example.com/team/app:latest", "registry.example.com/team/app:latest"),
    ("host:5000/app", "host:5000/app:latest", "host:5000/app:latest"),
    ("[::1]:5000/app:v1", "[::1]:5000/app:v1", "[::1]:5000/app:v1"),
    ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),  # upper case first component = a host
    ("a__b.c-d--e_f", "docker.io/library/a__b.c-d--e_f:latest", "a__b.c-d--e_f:latest"),
    ("busybox:Tag_1.2-x", "docker.io/library/busybox:Tag_1.2-x", "busybox:Tag_1.2-x"),
    ("busybox@" + D64, "docker.io/library/busybox@" + D64, "busybox@" + D64),
    ("busybox:1@" + D64, "docker.io/library/busybox:1@" + D64, "busybox:1@" + D64),
    ("localhost:5000/x@" + D64, "localhost:5000/x@" + D64, "localhost:5000/x@" + D64),
])
def test_valid_references_normalise_like_docker(text, full, fam):
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar == fam
    assert familiar(full) == fam
    assert str(parse_reference(full)) == full  # the normalised form is a fixed point


def test_reference_fields():
    ref = parse_reference("localhost:5000/team/app:v2")
    assert ref == Reference("localhost:5000", "team/app", "v2", None)
    assert ref.name == "localhost:5000/team/app"
    assert ref.familiar_name == "localhost:5000/team/app"
    assert parse_reference("busybox").tag is None
    assert parse_reference("busybox").tag_or_default == "latest"
    assert parse_reference("busybox@" + D64).tag is None
    assert parse_reference("busybox@" + D64).digest == D64
    assert str(parse_reference("busybox").with_tag("2")) == "docker.io/library/busybox:2"
    assert str(parse_reference("busybox:1").with_digest(D64)) == "docker.io/library/busybox@" + D64


def test_max_tag_length_is_128():
    assert parse_reference("b:" + "t" * 128).tag == "t" * 128
    with pytest.raises(InvalidArgument):
        parse_reference("b:" + "t" * 129)


@pytest.mark.parametrize("bad", [
    "", "Busybox", "library/Busybox", "UPPER/Case/x", "busybox:", ":tag", "busybox:-x", "busybox:.x",
    "busybox:a/b", "a:b:c", "-a", "a-", "a//b", "a/", "/a", "a..b", "a___b", "a_-b", "busybox@sha256:abc",
    "busybox@sha256:" + "A" * 64, "busybox@md5:" + "a" * 32, "busybox@", "ab" * 32, "has space",
    "ex@mple", "bad!char", "x" * 256, "-host.com/x", "host.com:port/x",
])
def test_malformed_references_raise_naming_the_value(bad):
    with pytest.raises(InvalidArgument) as ei:
        parse_reference(bad)
    assert ei.value.value == bad
    assert ei.value.what == "reference"
    assert repr(bad)[:40].strip("'") in str(ei.value) or bad == ""


def test_non_string_reference_is_rejected():
    with pytest.raises(InvalidArgument):
        parse_reference(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("s,expected", [
    ("abc123", True), ("sha256:" + "a" * 64, True), ("a" * 64, True), ("sha256:0f", True),
    ("busybox", False), ("ABC", False), ("a" * 65, False), ("sha256:", False), ("", False),
    ("sha512:" + "a" * 64, False),
])
def test_looks_like_image_id(s, expected):
    assert looks_like_image_id(s) is expected
