"""Unit tests: hosts files, names, time formats, log reading, ps views, volumes."""
from __future__ import annotations

import json
import threading
import time

import pytest

from nbcontainer.containers import hosts, names, timefmt
from nbcontainer.containers.inspect import container_summary, match_filters, status_text
from nbcontainer.containers.logs import read_logs
from nbcontainer.containers.volumes import VolumeService
from nbcontainer.errors import Conflict, InvalidArgument, NotSupported, VolumeNotFound
from nbcontainer.metadata.db import MetadataDB
from nbcontainer.paths import StorePaths


def test_hosts_and_resolv(tmp_path):
    resolv = tmp_path / "resolv"
    resolv.write_text("search example.org\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\noptions edns0\n")
    paths = hosts.write_network_files(tmp_path / "c", "abcdef123456", host_resolv=str(resolv),
                                      extra_hosts=[("db", "10.1.1.1")])
    text = paths["resolv.conf"].read_text()
    assert "127.0.0.53" not in text and "::1" not in text and "nameserver 10.0.0.2" in text and "search" in text
    assert paths["hostname"].read_text() == "abcdef123456\n"
    h = paths["hosts"].read_text()
    assert h.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert "ff02::2\tip6-allrouters\n" in h and "10.1.1.1\tdb\n" in h
    assert hosts.resolv_text("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    with pytest.raises(InvalidArgument):
        hosts.parse_add_host("db:notanip")


def test_random_names():
    n = names.random_name()
    adj, _, surname = n.partition("_")
    assert adj in names.ADJECTIVES and surname.rstrip("0123456789") in names.SURNAMES
    taken = set()
    for _ in range(50):
        taken.add(names.random_name(lambda x: x in taken))
    assert len(taken) == 50


def test_times():
    assert timefmt.rfc3339nano(1700000000.5) == "2023-11-14T22:13:20.500000000Z"
    assert timefmt.parse_rfc3339("2023-11-14T22:13:20.500000000Z") == 1700000000.5
    assert timefmt.parse_rfc3339("2023-11-14T23:13:20+01:00") == 1700000000
    assert timefmt.parse_since("10m", now=1000.0) == 400.0
    assert timefmt.parse_since("1700000000") == 1700000000.0
    with pytest.raises(InvalidArgument):
        timefmt.parse_since("yesterday-ish")
    assert timefmt.human_duration(0.3) == "Less than a second"
    assert timefmt.human_duration(3) == "3 seconds"
    assert timefmt.human_duration(65) == "About a minute"
    assert timefmt.human_duration(600) == "10 minutes"
    assert timefmt.human_duration(3700) == "About an hour"
    assert timefmt.human_duration(5 * 3600) == "5 hours"
    assert timefmt.human_duration(3 * 86400) == "3 days"


def _log(path, recs):
    with open(path, "a") as f:
        for t, s, line in recs:
            f.write(json.dumps({"time": timefmt.rfc3339nano(t), "stream": s, "log": line}) + "\n")


def test_read_logs_filters(tmp_path):
    p = tmp_path / "log.jsonl"
    _log(p, [(100, "stdout", "one\n"), (200, "stderr", "two\n"), (300, "stdout", "three\n")])
    assert list(read_logs(p)) == [("stdout", b"one\n"), ("stderr", b"two\n"), ("stdout", b"three\n")]
    assert list(read_logs(p, stderr=False)) == [("stdout", b"one\n"), ("stdout", b"three\n")]
    assert list(read_logs(p, tail=2)) == [("stderr", b"two\n"), ("stdout", b"three\n")]
    assert list(read_logs(p, tail=0)) == []
    assert list(read_logs(p, since=150, until=250)) == [("stderr", b"two\n")]
    ts = list(read_logs(p, tail=1, timestamps=True))
    assert ts == [("stdout", timefmt.rfc3339nano(300).encode() + b" three\n")]
    with pytest.raises(InvalidArgument):
        list(read_logs(p, tail="many"))
    assert list(read_logs(tmp_path / "missing.jsonl")) == []


def test_read_logs_follow(tmp_path):
    p = tmp_path / "log.jsonl"
    _log(p, [(1, "stdout", "a\n")])
    running = {"on": True}

    def writer():
        time.sleep(0.2)
        _log(p, [(2, "stdout", "b\n")])
        time.sleep(0.2)
        _log(p, [(3, "stderr", "c\n")])
        running["on"] = False

    t = threading.Thread(target=writer)
    t.start()
    start = time.monotonic()
    got = list(read_logs(p, follow=True, is_running=lambda: running["on"], poll=0.02))
    t.join()
    assert got == [("stdout", b"a\n"), ("stdout", b"b\n"), ("stderr", b"c\n")]
    assert time.monotonic() - start < 3


ROW = {"id": "f" * 64, "name": "web", "image_ref": "busybox", "image_id": "sha256:" + "1" * 64, "created": 0,
       "attrs": {"Created": "2026-01-01T00:00:00.000000000Z", "Config": {"Cmd": ["sh", "-c", "x"],
                 "Labels": {"tier": "front", "x": "1"}}, "HostConfig": {"NetworkMode": "none"}, "Mounts": []}}


def test_status_and_summary():
    now = 1000.0
    assert status_text({"Running": True, "StartedAt": timefmt.rfc3339nano(997)}, now) == "Up 3 seconds"
    assert status_text({"Status": "exited", "ExitCode": 3, "FinishedAt": timefmt.rfc3339nano(995)},
                       now) == "Exited (3) 5 seconds ago"
    assert status_text({"Status": "created"}) == "Created"
    st = {"Status": "exited", "ExitCode": 0, "Running": False, "FinishedAt": timefmt.rfc3339nano(1)}
    s = container_summary(ROW, st)
    assert s["Names"] == ["/web"] and s["Command"] == "sh -c x" and s["State"] == "exited"
    assert match_filters(s, ROW, st, {"status": ["exited"]})
    assert not match_filters(s, ROW, st, {"status": ["running"]})
    assert match_filters(s, ROW, st, {"label": ["tier=front", "x"]})
    assert not match_filters(s, ROW, st, {"label": ["tier=back"]})
    assert match_filters(s, ROW, st, {"name": ["^we"], "exited": ["0"], "id": ["fff"]})
    assert match_filters(s, ROW, st, {"ancestor": ["busybox"]})
    with pytest.raises(InvalidArgument):
        match_filters(s, ROW, st, {"status": ["sleeping"]})
    with pytest.raises(InvalidArgument):
        match_filters(s, ROW, st, {"colour": ["red"]})


def test_volume_service(tmp_path):
    paths = StorePaths(tmp_path / "root", tmp_path / "run").ensure()
    db = MetadataDB(paths.metadata_db)
    vs = VolumeService(paths, db)
    v = vs.create("data", labels={"a": "b"})
    assert v["Name"] == "data" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Mountpoint"] == str(paths.volumes / "data" / "_data") and (paths.volumes / "data" / "_data").is_dir()
    assert vs.create("data") == v  # idempotent like docker
    anon = vs.create()
    assert len(anon["Name"]) == 64
    assert [x["Name"] for x in vs.list(filters={"label": "a=b"})] == ["data"]
    with pytest.raises(InvalidArgument):
        vs.create("bad name")
    with pytest.raises(NotSupported):
        vs.create("x1", driver="nfs")
    db.put_container("c" * 64, "user1", "bb", "sha256:1", {"Mounts": [{"Type": "volume", "Name": "data"}]})
    with pytest.raises(Conflict, match="volume is in use"):
        vs.remove("data")
    pr = vs.prune()
    assert pr["VolumesDeleted"] == [anon["Name"]]
    db.delete_container("c" * 64)
    vs.remove("data")
    assert not (paths.volumes / "data").exists()
    with pytest.raises(VolumeNotFound):
        vs.inspect("data")
    with pytest.raises(VolumeNotFound):
        vs.remove("data")


def test_follow_wakes_on_write_without_polling(tmp_path):
    from nbcontainer.containers.logs import _FileWatch
    p = tmp_path / "log.jsonl"
    p.write_text("")
    w = _FileWatch(p, poll=5.0)
    assert w.fd >= 0, "inotify unavailable"
    threading.Timer(0.1, lambda: _log(p, [(1, "stdout", "x\n")])).start()
    t0 = time.monotonic()
    w.wait(5.0)
    assert time.monotonic() - t0 < 2  # woken by the write, not by the 5 s timeout
    w.close()
