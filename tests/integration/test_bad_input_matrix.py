"""The bad-input matrix (issue 6 item 7): hostile or malformed inputs, one table, one test.

Every case feeds one bad input to a front end -- an ``nbc`` command line, the Python API, a
Dockerfile, a reference, an archive, a layer or a registry answer -- and asserts:

- the CLI exits with docker's code for it (125 for nbc's own errors; 126/127 when the command
  cannot be run), or the API raises the typed nbcontainer error;
- the error is ONE line (plus docker's "See 'nbc VERB --help'." hint for usage errors), names
  the bad value, and is not a Python traceback;
- nothing was left behind: the store (db rows, blobs, ingest, snapshots, container dirs, tmp),
  mounts, cgroups, veths, firewall rules and processes are as before (tests/helpers/leftovers.py).

CLI cases run in-process through ``nbcontainer.cli.main.main`` (fast); cases that reach the
runtime run as ``python -m nbcontainer`` subprocesses (this process has the fake registry's
thread, and a threaded caller would start a fork server).  One session store holds the
BusyBox image ``bb:1``, a created container ``taken`` and a running one ``live``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import pytest

from helpers import hostile as H
from helpers.matrix_store import Matrix

ESCAPED = Path("/tmp/nbc-matrix-escaped")


@dataclass
class Case:
    id: str
    kind: str                 # cli | sub | api | build | load | import
    arg: Any                  # argv list; API callable(client, ctx); Dockerfile text; archive builder
    value: Union[str, Tuple[str, ...]]   # must appear in the message (any of a tuple)
    code: Union[int, Tuple[int, ...]] = 125
    exc: Any = None           # API: expected exception class (default NbContainerError)
    files: Dict[str, str] = field(default_factory=dict)   # build context files
    xfail: Optional[str] = None


def C(id, *argv, value, code=125, xfail=None):  # in-process CLI
    return Case(id, "cli", list(argv), value, code, xfail=xfail)


def S(id, *argv, value, code=125, xfail=None):  # CLI subprocess (reaches the runtime)
    return Case(id, "sub", list(argv), value, code, xfail=xfail)


def A(id, fn, value, exc=None, xfail=None):
    return Case(id, "api", fn, value, exc=exc, xfail=xfail)


def B(id, dockerfile, value, files=None, xfail=None):
    return Case(id, "build", dockerfile, value, files=files or {}, xfail=xfail)


def L(id, builder, value, kind="load", xfail=None):
    return Case(id, kind, builder, value, xfail=xfail)


def _errors():
    from nbcontainer import errors
    return errors


LONG = "a" * 256
BAD_HEX = "sha256:" + "g" * 64
SHORT_DIGEST = "sha256:abc"

CASES = [
    # -- verbs, global flags -------------------------------------------------------------------
    C("unknown-verb", "frobnicate", value="frobnicate"),
    C("global-root-no-value", "--root", value="--root"),
    C("global-unknown-flag", "--bogus", "ps", value="--bogus"),
    C("run-no-image", "run", value="run"),
    C("run-unknown-flag", "run", "--bogus-flag", "bb:1", value="--bogus-flag"),
    C("rm-no-args", "rm", value="rm"),
    C("tag-one-arg", "tag", "bb:1", value="tag"),
    # -- run/create flags ---------------------------------------------------------------------
    C("env-empty-name", "create", "-e", "=x", "bb:1", "true", value="=x"),
    C("env-file-missing", "create", "--env-file", "/nonexistent/nbc.env", "bb:1", "true", value="/nonexistent/nbc.env"),
    C("vol-empty-source", "create", "-v", ":/x", "bb:1", "true", value=":/x"),
    C("vol-relative-target", "create", "-v", "/tmp:rel", "bb:1", "true", value="rel"),
    C("vol-bad-mode", "create", "-v", "/tmp:/x:zz", "bb:1", "true", value="zz"),
    C("vol-too-many-parts", "create", "-v", "/a:/b:ro:rw:x", "bb:1", "true", value="/a:/b:ro:rw:x"),
    C("vol-target-root", "create", "-v", "/tmp:/", "bb:1", "true", value="/"),
    C("mount-bad-type", "create", "--mount", "type=bogus,dst=/x", "bb:1", "true", value="bogus"),
    C("mount-unknown-key", "create", "--mount", "type=bind,src=/tmp,dst=/x,foo=bar", "bb:1", "true", value="foo"),
    C("mount-no-target", "create", "--mount", "type=volume", "bb:1", "true", value="type=volume"),
    C("mount-bind-missing-src", "create", "--mount", "type=bind,src=/nonexistent-nbc,dst=/x", "bb:1", "true",
      value="/nonexistent-nbc"),
    C("mount-tmpfs-bad-size", "create", "--mount", "type=tmpfs,dst=/x,tmpfs-size=abc", "bb:1", "true", value="abc"),
    C("tmpfs-relative", "create", "--tmpfs", "rel", "bb:1", "true", value="rel"),
    C("user-negative", "create", "-u", "-5", "bb:1", "true", value="-5"),
    C("user-too-many-colons", "create", "-u", "1:2:3", "bb:1", "true", value="1:2:3"),
    C("publish-port-range", "create", "-p", "99999:80", "bb:1", "true", value="99999"),
    C("publish-not-a-port", "create", "-p", "abc", "bb:1", "true", value="abc"),
    C("publish-bad-proto", "create", "-p", "80:80/sctpx", "bb:1", "true", value="sctpx"),
    C("publish-bad-ip", "create", "-p", "1.2.3.4.5:80:80", "bb:1", "true", value="1.2.3.4.5"),
    C("publish-inverted-range", "create", "-p", "90-80:90-80", "bb:1", "true", value="90-80"),
    C("expose-bad", "create", "--expose", "http", "bb:1", "true", value="http"),
    C("stop-signal-name", "create", "--stop-signal", "NOPE", "bb:1", "true", value="NOPE"),
    C("stop-signal-number", "create", "--stop-signal", "99", "bb:1", "true", value="99"),
    C("stop-timeout-bad", "create", "--stop-timeout", "soon", "bb:1", "true", value="soon"),
    C("shm-size-word", "create", "--shm-size", "abc", "bb:1", "true", value="abc"),
    C("shm-size-negative", "create", "--shm-size", "-1", "bb:1", "true", value="-1"),
    C("memory-bad-unit", "create", "-m", "1zb", "bb:1", "true", value="1zb"),
    C("cpus-word", "create", "--cpus", "many", "bb:1", "true", value="many"),
    C("pids-limit-word", "create", "--pids-limit", "x", "bb:1", "true", value="x"),
    C("ulimit-bad", "create", "--ulimit", "nofile=abc", "bb:1", "true", value="nofile=abc"),
    C("ulimit-unknown", "create", "--ulimit", "bogus=1", "bb:1", "true", value="bogus"),
    C("name-illegal", "create", "--name", "bad name!", "bb:1", "true", value="bad name!"),
    C("name-slash", "create", "--name", "a/b", "bb:1", "true", value="a/b"),
    C("name-taken", "create", "--name", "taken", "bb:1", "true", value="taken"),
    C("restart-bogus", "create", "--restart", "bogus", "bb:1", "true", value="bogus"),
    C("restart-count-word", "create", "--restart", "on-failure:x", "bb:1", "true", value="on-failure:x"),
    C("workdir-relative", "create", "-w", "rel/dir", "bb:1", "true", value="rel/dir"),
    C("add-host-bad", "create", "--add-host", "nocolon", "bb:1", "true", value="nocolon"),
    C("dns-not-ip", "create", "--dns", "not-an-ip", "bb:1", "true", value="not-an-ip"),
    C("network-missing", "create", "--network", "nosuchnet", "bb:1", "true", value="nosuchnet"),
    C("cap-add-unknown", "create", "--cap-add", "NOT_A_CAP", "bb:1", "true", value="NOT_A_CAP"),
    C("seccomp-missing-file", "create", "--security-opt", "seccomp=/nonexistent/p.json", "bb:1", "true",
      value="/nonexistent/p.json"),
    C("security-opt-bogus", "create", "--security-opt", "bogus", "bb:1", "true", value="bogus"),
    C("device-missing", "create", "--device", "/dev/nonexistent-nbc", "bb:1", "true", value="/dev/nonexistent-nbc"),
    C("sysctl-not-namespaced", "create", "--sysctl", "kernel.panic=1", "bb:1", "true", value="kernel.panic"),
    C("label-file-missing", "create", "--label-file", "/nonexistent/labels", "bb:1", "true",
      value=("/nonexistent/labels", "--label-file")),
    C("image-uppercase", "create", "UPPER:1", value="UPPER:1"),
    C("image-missing-unreachable", "run", "localhost:1/nosuchimage:9", "true", value="localhost:1"),
    C("pull-policy-bogus", "run", "--pull", "sometimes", "bb:1", "true", value=("sometimes", "--pull")),
    S("cmd-not-found", "run", "--rm", "--network", "none", "bb:1", "/does/not/exist", value="/does/not/exist",
      code=127),
    S("cmd-not-executable", "run", "--rm", "--network", "none", "bb:1", "/etc/passwd", value="/etc/passwd",
      code=126),
    S("user-unknown", "run", "--rm", "--network", "none", "-u", "nosuchuser", "bb:1", "true", value="nosuchuser",
      code=(125, 126)),
    S("workdir-is-file", "run", "--rm", "--network", "none", "-w", "/etc/passwd", "bb:1", "true",
      value="/etc/passwd", code=(125, 126, 127)),
    # -- exec, logs, stop, kill, rm -------------------------------------------------------------
    C("exec-missing-container", "exec", "nosuchctr", "true", value="nosuchctr"),
    C("exec-not-running", "exec", "taken", "true", value=("taken", "{takenid}"), code=(125, 126)),
    C("exec-env-empty-name", "exec", "-e", "=x", "live", "true", value="=x"),
    C("exec-workdir-relative", "exec", "-w", "rel", "live", "true", value="rel"),
    S("exec-cmd-not-found", "exec", "live", "/does/not/exist", value="/does/not/exist", code=127),
    S("exec-user-unknown", "exec", "-u", "nosuchuser", "live", "true", value="nosuchuser", code=(125, 126)),
    C("logs-tail-word", "logs", "--tail", "abc", "live", value="abc"),
    C("logs-since-bad", "logs", "--since", "notatime", "live", value="notatime"),
    C("logs-until-bad", "logs", "--until", "xyz", "live", value="xyz"),
    C("logs-missing", "logs", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("stop-time-word", "stop", "-t", "abc", "live", value="abc"),
    C("stop-signal-bad", "stop", "-s", "NOPE", "live", value=("NOPE", "--signal")),
    C("stop-missing", "stop", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("kill-signal-bad", "kill", "-s", "NOPE", "live", value="NOPE"),
    C("rm-running", "rm", "live", value="live", code=(1, 125)),
    C("rm-missing", "rm", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("start-missing", "start", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("inspect-missing", "inspect", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("name-too-long", "inspect", "x" * 300, value="x" * 300, code=(1, 125)),
    # -- images, tags, references -----------------------------------------------------------------
    C("rmi-missing", "rmi", "nosuchimage:9", value="nosuchimage:9", code=(1, 125)),
    C("rmi-id-in-use-two-tags", "rmi", "{bbid}", value="{bbshort}", code=(1, 125)),
    C("rmi-bad-ref", "rmi", "Bad Ref", value="Bad Ref", code=(1, 125)),
    C("tag-uppercase", "tag", "bb:1", "x/UPPER:1", value="x/UPPER:1"),
    C("tag-illegal-chars", "tag", "bb:1", "x:bad tag!", value="x:bad tag!"),
    C("tag-too-long", "tag", "bb:1", "x:" + "t" * 129, value="t" * 129),
    C("tag-repo-too-long", "tag", "bb:1", LONG, value=LONG),
    C("tag-with-digest", "tag", "bb:1", "x@sha256:" + "a" * 64, value="x@sha256:" + "a" * 64),
    C("tag-bad-digest-hex", "tag", "bb:1", "x@" + BAD_HEX, value=BAD_HEX),
    C("tag-short-digest", "tag", "bb:1", "x@" + SHORT_DIGEST, value=SHORT_DIGEST),
    C("tag-double-slash", "tag", "bb:1", "x//y:1", value="x//y:1"),
    C("tag-leading-dash", "tag", "bb:1", "-x:1", value="-x:1"),
    C("tag-source-missing", "tag", "nosuch:1", "y:1", value="nosuch:1"),
    C("history-bad-ref", "history", "a b", value="a b", code=(1, 125)),
    C("pull-uppercase", "pull", "x/UPPER", value="x/UPPER"),
    C("pull-bad-digest", "pull", "x@" + SHORT_DIGEST, value=SHORT_DIGEST),
    C("push-missing", "push", "nosuchimage:9", value="nosuchimage:9"),
    C("save-missing", "save", "-o", "{tmp}/out.tar", "nosuch:1", value="nosuch:1"),
    C("save-bad-dir", "save", "-o", "/nonexistent-nbc/x.tar", "bb:1", value="/nonexistent-nbc/x.tar"),
    C("load-missing-file", "load", "-i", "/nonexistent-nbc.tar", value="/nonexistent-nbc.tar"),
    C("import-missing-file", "import", "/nonexistent-nbc.tar", value="/nonexistent-nbc.tar"),
    C("import-bad-ref", "import", "{busybox}", "BAD:ref", value="BAD:ref"),
    C("import-change-unknown", "import", "-c", "FROBNICATE x", "{busybox}", value="FROBNICATE"),
    C("import-change-expose", "import", "-c", "EXPOSE abc", "{busybox}", value="abc"),
    C("import-change-run", "import", "-c", "RUN true", "{busybox}", value="RUN"),
    C("import-url-500", "import", "http://{host}/e500/rootfs.tar", value="{host}/e500/rootfs.tar"),
    C("commit-bad-ref", "commit", "live", "BAD:tag", value="BAD:tag"),
    C("export-missing", "export", "-o", "{tmp}/x.tar", "nosuchctr", value="nosuchctr"),
    C("exec-user-bad-format", "exec", "-u", "1:2:3", "live", "true", value="1:2:3"),
    C("vol-named-bad-name", "create", "-v", "bad@vol:/x", "bb:1", "true", value="bad@vol"),
    C("port-bad-proto", "port", "live", "80/xyz", value="80/xyz", code=(1, 125)),
    C("network-gateway-outside", "network", "create", "--subnet", "10.99.0.0/16", "--gateway", "192.168.7.1",
      "mnet", value="192.168.7.1"),
    C("top-missing", "top", "nosuchctr", value="nosuchctr", code=(1, 125)),
    S("top-bad-ps-option", "top", "live", "-o", "bogus", value="bogus", code=(1, 125)),
    C("stats-missing", "stats", "--no-stream", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("update-memory-word", "update", "--memory", "lots", "live", value="lots"),
    C("wait-missing", "wait", "nosuchctr", value="nosuchctr", code=(1, 125)),
    C("reg-push-401", "push", "{host}/noauth/bb:1", value="noauth/bb"),
    # -- --format, filters --------------------------------------------------------------------------
    C("ps-format-unclosed", "ps", "--format", "{{.Nope", value="{{.Nope"),
    C("images-format-bad-field", "images", "--format", "{{.Bogus}}", value="Bogus"),
    C("inspect-format-bad", "inspect", "-f", "{{", "live", value="{{", code=(1, 125)),
    C("ps-filter-bogus", "ps", "--filter", "bogus=1", value="bogus"),
    C("ps-last-word", "ps", "-n", "abc", value="abc"),
    # -- network, volume, port -----------------------------------------------------------------------
    C("network-bad-subnet", "network", "create", "--subnet", "notacidr", "mnet", value="notacidr"),
    C("network-bad-driver", "network", "create", "--driver", "weird", "mnet", value="weird"),
    C("network-bad-name", "network", "create", "bad name!", value="bad name!"),
    C("network-rm-missing", "network", "rm", "nosuchnet", value="nosuchnet", code=(1, 125)),
    C("network-connect-missing", "network", "connect", "nosuchnet", "live", value="nosuchnet"),
    C("volume-bad-name", "volume", "create", "bad/name", value="bad/name"),
    C("volume-rm-missing", "volume", "rm", "nosuchvol", value="nosuchvol", code=(1, 125)),
    C("volume-inspect-missing", "volume", "inspect", "nosuchvol", value="nosuchvol", code=(1, 125)),
    C("port-bad-spec", "port", "live", "99999", value="99999", code=(1, 125)),
    C("port-missing-container", "port", "nosuchctr", value="nosuchctr", code=(1, 125)),
    # -- Dockerfiles ----------------------------------------------------------------------------------
    B("df-empty", "", value="Dockerfile"),
    B("df-unknown-instruction", "FROM bb:1\nFROBNICATE x\n", value="FROBNICATE"),
    B("df-from-no-args", "FROM\n", value="FROM"),
    B("df-from-uppercase", "FROM UPPER:1\n", value="UPPER:1"),
    B("df-from-bad-digest", "FROM bb@" + SHORT_DIGEST + "\n", value=SHORT_DIGEST),
    B("df-copy-outside", "FROM bb:1\nCOPY ../outside /x\n", value="../outside"),
    B("df-copy-missing", "FROM bb:1\nCOPY nosuchfile /x\n", value="nosuchfile"),
    B("df-arg-no-name", "ARG\nFROM bb:1\n", value="ARG"),
    B("df-arg-blank-name", "FROM bb:1\nARG =x\n", value=("ARG", "=x")),
    B("df-from-undefined-arg", "FROM ${NOPE}\n", value=("NOPE", "FROM")),
    B("df-mount-bad-type", "FROM bb:1\nRUN --mount=type=bogus true\n", value="bogus"),
    B("df-mount-bad-sharing", "FROM bb:1\nRUN --mount=type=cache,sharing=sometimes,target=/x true\n",
      value="sometimes"),
    B("df-mount-unknown-key", "FROM bb:1\nRUN --mount=type=bind,frob=1,target=/x true\n", value="frob"),
    B("df-heredoc-unterminated", "FROM bb:1\nRUN <<EOF\necho hi\n", value="EOF"),
    B("df-expose-bad", "FROM bb:1\nEXPOSE http\n", value="http"),
    B("df-healthcheck-interval", "FROM bb:1\nHEALTHCHECK --interval=abc CMD true\n", value="abc"),
    B("df-stopsignal-bad", "FROM bb:1\nSTOPSIGNAL NOPE\n", value="NOPE"),
    B("df-onbuild-onbuild", "FROM bb:1\nONBUILD ONBUILD RUN true\n", value="ONBUILD"),
    B("df-copy-from-missing-stage-index", "FROM bb:1\nCOPY --from=7 /a /b\n", value="7"),
    B("df-bad-stage-name", "FROM bb:1 AS b@d\n", value="b@d"),
    B("df-unknown-flag", "FROM bb:1\nCOPY --frob=1 a /a\n", value="frob", files={"a": "a"}),
    B("df-env-no-value", "FROM bb:1\nENV\n", value="ENV"),
    C("build-missing-context", "build", "/nonexistent-nbc-ctx", value="/nonexistent-nbc-ctx"),
    C("build-missing-dockerfile", "build", "-f", "/nonexistent-nbc/Dockerfile", "{ctx}",
      value="/nonexistent-nbc/Dockerfile"),
    C("build-bad-tag", "build", "-t", "BAD:tag", "{ctx}", value="BAD:tag"),
    C("build-bad-build-arg", "build", "--build-arg", "=x", "{ctx}", value="=x"),
    C("build-missing-target", "build", "--target", "nosuchstage", "{ctx}", value="nosuchstage"),
    # -- archives (load) --------------------------------------------------------------------------------
    L("load-not-a-tar", lambda: b"this is not a tar archive\n" * 40, value="{file}"),
    L("load-empty-file", lambda: b"", value="{file}"),
    L("load-truncated", lambda: H.truncated(H.docker_archive(H.files_tar({"a": b"a" * 5000}))), value="{file}"),
    L("load-no-manifest", lambda: H.files_tar({"hello.txt": b"hi"}), value=("manifest.json", "index.json")),
    L("load-manifest-bad-json", lambda: H.docker_archive(H.files_tar({"a": b"a"}), manifest=b"{nope"),
      value="manifest.json"),
    L("load-manifest-not-list", lambda: H.docker_archive(H.files_tar({"a": b"a"}), manifest={"Config": "x"}),
      value="manifest.json"),
    L("load-config-outside", lambda: H.docker_archive(
        H.files_tar({"a": b"a"}), manifest=[{"Config": "../../etc/passwd", "RepoTags": ["m:1"], "Layers": []}]),
      value="../../etc/passwd"),
    L("load-layer-absolute", lambda: H.docker_archive(
        H.files_tar({"a": b"a"}), manifest=[{"Config": "c.json", "RepoTags": ["m:1"], "Layers": ["/etc/passwd"]}],
        extra={"c.json": b"{}"}), value="/etc/passwd"),
    L("load-config-bad-json", lambda: H.docker_archive(H.files_tar({"a": b"a"}), config=b"{not json"),
      value=".json"),
    L("load-diffid-mismatch", lambda: H.docker_archive(H.files_tar({"a": b"a"}), diff_id="sha256:" + "0" * 64),
      value="sha256:" + "0" * 64),
    L("load-bad-repotag", lambda: H.docker_archive(H.files_tar({"a": b"a"}), tag="BAD TAG"), value="BAD TAG"),
    # -- layers ------------------------------------------------------------------------------------------
    # containerd's policy (reference/image-formats.md 1.1): these land inside the root, quietly;
    # the case loads, checks nothing escaped, removes the image and checks nothing was left
    L("layer-dotdot", lambda: H.docker_archive(H.layer_dotdot()), value="", kind="contain-load"),
    L("layer-abs-symlink-escape", lambda: H.docker_archive(H.layer_symlink_escape()), value="",
      kind="contain-load"),
    L("layer-rel-symlink-escape", lambda: H.docker_archive(H.layer_relative_symlink_escape()), value="",
      kind="contain-load"),
    L("layer-hardlink-outside", lambda: H.docker_archive(H.layer_hardlink_outside()), value="../../../../etc/passwd"),
    L("layer-whiteout-dotdot", lambda: H.docker_archive(H.layer_whiteout_dotdot()), value=".wh..."),
    L("layer-whiteout-escape", lambda: H.docker_archive(H.layer_whiteout_escape_name()), value="",
      kind="contain-load"),  # ".wh.../../x" cleans to "x": a plain file inside the root
    L("layer-huge-claim", lambda: H.docker_archive(H.layer_huge_claim()), value=("big", "{file}")),
    L("layer-setuid-file", lambda: H.docker_archive(H.layer_setuid()), value="", kind="contain-load"),
    L("layer-not-a-tar", lambda: H.docker_archive(b"this layer is not a tar" * 30), value=("layer", "{file}")),
    L("layer-gzip-truncated", lambda: H.docker_archive(H.gzip_truncated(H.files_tar({"a": b"a" * 9000}))),
      value=("layer", "{file}")),
    L("load-layer-file-missing", lambda: H.docker_archive(
        H.files_tar({"a": b"a"}), manifest=[{"Config": "c.json", "RepoTags": ["m:1"], "Layers": ["nope/layer.tar"]}],
        extra={"c.json": b"{}"}), value="nope/layer.tar"),
    L("load-oci-missing-blob", H.oci_layout_missing_blob, value="e" * 64),
    L("import-not-a-tar", lambda: b"definitely not a tar\n" * 50, value="{file}", kind="import"),
    L("import-truncated", lambda: H.truncated(H.files_tar({"a": b"a" * 5000})), value="{file}", kind="import"),
    L("import-dotdot", H.layer_dotdot, value="", kind="contain-import"),
    L("import-hardlink-outside", H.layer_hardlink_outside, value="../../../../etc/passwd", kind="import"),
    L("import-huge-claim", H.layer_huge_claim, value=("big", "{file}"), kind="import"),
    # -- registry responses (a misbehaving server on 127.0.0.1) --------------------------------------------
    C("reg-bad-json-manifest", "pull", "{host}/badjson/x:1", value="badjson/x"),
    C("reg-manifest-digest-mismatch", "pull", "{host}/mfdigest/x@" + H.WRONG_MANIFEST_DIGEST,
      value=H.WRONG_MANIFEST_DIGEST),
    C("reg-blob-digest-mismatch", "pull", "{host}/blobdigest/x:1", value=H.CONFIG_DIGEST),
    C("reg-401-no-challenge", "pull", "{host}/noauth/x:1", value="noauth/x"),
    C("reg-500", "pull", "{host}/e500/x:1", value="e500/x"),
    C("reg-redirect-loop", "pull", "{host}/redirect/x:1", value=("redirect/x", "{host}")),
    C("reg-truncated-body", "pull", "{host}/truncated/x:1", value="truncated/x"),
    C("reg-wrong-content-type", "pull", "{host}/ctype/x:1", value="ctype/x"),
    C("reg-oversized-manifest", "pull", "{host}/huge/x:1", value="huge/x"),
    C("reg-push-500", "push", "{host}/e500/bb:1", value="e500/bb"),
    # -- Python API ---------------------------------------------------------------------------------------
    A("api-from-env-bad-keyword", lambda c, x: __import__("nbcontainer").from_env(bogus_kw=1), "bogus_kw",
      exc=TypeError),
    A("api-run-bad-keyword", lambda c, x: c.containers.run("bb:1", "true", bogus_kw=1), "bogus_kw",
      exc=(TypeError, _errors().NbContainerError)),
    A("api-run-command-int", lambda c, x: c.containers.create("bb:1", 123), "123"),
    A("api-run-env-int", lambda c, x: c.containers.create("bb:1", "true", environment=123), "123"),
    A("api-run-env-empty-name", lambda c, x: c.containers.create("bb:1", "true", environment=["=x"]), "=x"),
    A("api-run-ports-bad", lambda c, x: c.containers.create("bb:1", "true", ports={"abc": 1}), "abc"),
    A("api-run-volumes-bad", lambda c, x: c.containers.create("bb:1", "true", volumes=[":/x"]), ":/x"),
    A("api-run-mem-limit-word", lambda c, x: c.containers.create("bb:1", "true", mem_limit="lots"), "lots"),
    A("api-run-restart-bogus", lambda c, x: c.containers.create("bb:1", "true", restart_policy={"Name": "bogus"}),
      "bogus"),
    A("api-run-user-list", lambda c, x: c.containers.create("bb:1", "true", user=["x"]), "['x']"),
    A("api-run-stop-signal", lambda c, x: c.containers.create("bb:1", "true", stop_signal="NOPE"), "NOPE"),
    A("api-run-image-int", lambda c, x: c.containers.create(42, "true"), "42"),
    A("api-get-container-missing", lambda c, x: c.containers.get("nosuchctr"), "nosuchctr"),
    A("api-get-container-int", lambda c, x: c.containers.get(123), "123"),
    A("api-list-filter-bogus", lambda c, x: c.containers.list(filters={"bogus": 1}), "bogus"),
    A("api-image-get-uppercase", lambda c, x: c.images.get("UPPER"), "UPPER"),
    A("api-image-tag-bad", lambda c, x: c.images.get("bb:1").tag("UPPER"), "UPPER"),
    A("api-pull-bad-digest", lambda c, x: c.images.pull("x@" + SHORT_DIGEST), SHORT_DIGEST),
    A("api-build-missing-path", lambda c, x: c.images.build(path="/nonexistent-nbc-ctx"), "/nonexistent-nbc-ctx"),
    A("api-load-garbage", lambda c, x: c.images.load(b"not a tar at all" * 20), ("tar", "archive")),
    A("api-volume-bad-name", lambda c, x: c.volumes.create(name="bad/name"), "bad/name"),
    A("api-volume-missing", lambda c, x: c.volumes.get("nosuchvol"), "nosuchvol"),
    A("api-stop-timeout-word", lambda c, x: c.containers.get("live").stop(timeout="abc"), "abc"),
    A("api-wait-timeout-word", lambda c, x: c.containers.get("live").wait(timeout="x"), "'x'"),
    A("api-list-filters-str", lambda c, x: c.containers.list(filters="status=running"), "status=running"),
    A("api-volume-name-int", lambda c, x: c.volumes.create(name=123), "123"),
    A("api-volumes-nul-byte", lambda c, x: c.containers.create("bb:1", "true", volumes=["/tmp\0:/x"]), "/tmp"),
    A("api-import-missing", lambda c, x: c.images.import_("/nonexistent-nbc.tar"), "/nonexistent-nbc.tar"),
]


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def matrix(tmp_path_factory, busybox_tar):
    m = Matrix(tmp_path_factory.mktemp("matrix"), busybox_tar)
    saved = {k: os.environ.get(k) for k in ("NBCONTAINER_ROOT", "NBCONTAINER_RUNROOT", "DOCKER_CONFIG",
                                            "NBCONTAINER_CONFIG")}
    try:
        # containers first, by subprocess, while this process has no extra thread
        for argv in (["import", str(busybox_tar), "bb:1"], ["create", "--name", "taken", "bb:1", "true"],
                     ["run", "-d", "--name", "live", "--network", "none", "bb:1", "sleep", "3600"]):
            r = m.sub(*argv)
            assert r.returncode == 0, (argv, r.stderr)
        for k in saved:
            os.environ[k] = m.env[k]
        import nbcontainer
        m.client = nbcontainer.from_env()
        m.registry = H.BadRegistry()
        for target in ("e500", "noauth"):
            r = m.sub("tag", "bb:1", f"{m.registry.host}/{target}/bb:1")
            assert r.returncode == 0, r.stderr
        m.bbid = m.client.images.get("bb:1").id
        m.takenid = m.client.containers.get("taken").id
        m.recorder.install()
        yield m
    finally:
        m.recorder.uninstall()
        if m.registry is not None:
            m.registry.stop()
        if m.client is not None:
            m.client.close()
        ids = m.sub("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            m.sub("rm", "-f", *ids)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(m.runroot, ignore_errors=True)


def _one_line(text: str) -> str:
    """The error line of a CLI's stderr (docker's usage hint "See 'nbc X --help'." may follow)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert "Traceback" not in text, text
    assert lines, "no error message at all"
    if len(lines) == 2 and lines[1].startswith("See '"):
        lines = lines[:1]
    assert len(lines) == 1, f"more than one line: {text!r}"
    return lines[0]


def _params():
    out = []
    for c in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def test_case_table_is_big_and_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 90, len(CASES)


@pytest.mark.parametrize("case", _params())
def test_bad_input(matrix, case: Case):
    from nbcontainer.errors import NbContainerError
    m = matrix
    extra: Dict[str, str] = {}
    argv = None
    if case.kind in ("load", "import", "contain-load", "contain-import"):
        path = m.files / f"{case.id}.tar"
        path.write_bytes(case.arg())
        extra["file"] = str(path)
        argv = (["load", "-i", str(path)] if case.kind.endswith("load")
                else ["import", str(path), "matrix/imported:1"])
    elif case.kind == "build":
        ctx = m.files / f"ctx-{case.id}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(case.arg)
        for name, text in case.files.items():
            (ctx / name).write_text(text)
        argv = ["build", "-t", "matrix/built:1", str(ctx)]
    elif case.kind in ("cli", "sub"):
        argv = [m.fmt(a) for a in case.arg]
    values = case.value if isinstance(case.value, tuple) else (case.value,)
    values = tuple(m.fmt(v, **extra) for v in values)

    before = m.leftovers.snapshot()
    if case.kind == "api":
        with pytest.raises(BaseException) as info:
            case.arg(m.client, m)
        exc = info.value
        want = case.exc or NbContainerError
        assert isinstance(exc, want), f"{type(exc).__name__}: {exc} (wanted {want})"
        message = str(exc)
        assert "\n" not in message, message
    else:
        if case.kind == "sub":
            r = m.sub(*argv)
            code, out, err = r.returncode, r.stdout, r.stderr
        else:
            code, out, err = m.cli(*argv)
        if case.kind.startswith("contain-"):
            assert code == 0, err
            assert not ESCAPED.exists(), "a layer wrote outside the root"
            code, out, err = m.cli("rmi", "matrix/loaded:1" if case.kind.endswith("load") else "matrix/imported:1")
            assert code == 0, err
            _assert_nothing_left(m, before)
            return
        codes = case.code if isinstance(case.code, tuple) else (case.code,)
        assert code in codes, f"exit {code}, wanted {codes}; stderr: {err!r}"
        assert "Traceback" not in out
        message = _one_line(err)
    print(f"[{case.id}] {message}")  # (shown with -s: the matrix doubles as a catalogue of messages)
    assert any(v in message for v in values), f"{values} not named in: {message!r}"
    _assert_nothing_left(m, before)


def _assert_nothing_left(m: Matrix, before: Dict[str, Any]) -> None:
    # --rm's remover may still be finishing after the CLI returned (seconds, on a loaded machine)
    left = m.leftovers.settle(before, timeout=20)
    escaped = ESCAPED.exists()
    if escaped:
        ESCAPED.unlink(missing_ok=True)
    assert not escaped, "a layer wrote outside the root"
    assert left == {}, f"left behind: {json.dumps(left, indent=1)[:3000]}"


def test_leftovers_helper_sees_each_kind(matrix):
    """The snapshot helper must be able to fail: plant one leftover of each kind and find it."""
    m = matrix
    before = m.leftovers.snapshot()
    fake = "f" * 64
    planted_dir = m.root / "tmp" / "planted"
    planted_dir.mkdir(parents=True)
    cg = Path("/sys/fs/cgroup/pids/nbcontainer") / fake
    child = subprocess.Popen(["sleep", "30"], env=dict(os.environ, MARK=str(m.runroot)))
    mounted = False
    try:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(planted_dir)], check=True)
        mounted = True
        cg.mkdir(parents=True)
        with open(m.recorder.path, "a") as f:
            f.write(fake + "\n")
        left = m.leftovers.diff(before, m.leftovers.snapshot())
        assert left.get("tmp") == ["planted"]
        assert any(str(planted_dir) in line for line in left.get("mounts", []))
        assert left.get("cgroups") == [f"pids/nbcontainer/{fake}"]
        assert any(line.startswith(f"{child.pid}@") for line in left.get("processes", []))
    finally:
        child.kill()
        child.wait()
        if mounted:
            subprocess.run(["umount", str(planted_dir)], check=True)
        planted_dir.rmdir()
        if cg.exists():
            cg.rmdir()
    assert m.leftovers.settle(before) == {}
