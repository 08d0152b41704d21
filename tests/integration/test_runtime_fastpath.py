"""The run-latency fast paths of the runtime: seccomp compiled apart from its load (and
cached on disk), and the fork server.  Needs root and libseccomp."""
from __future__ import annotations

import errno
import os

import pytest

from nbcontainer.errors import RuntimeFailure
from nbcontainer.runtime import capabilities as caps
from nbcontainer.runtime import seccomp, seccomp_cache
from test_runtime_support import busybox_lower, make_bundle, rt, sh  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (seccomp without no_new_privs, cgroups)")

# getcwd answers ENOTSUP (a syscall the child never needs to report its result)
DENY_GETCWD = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOTSUP}]}


@pytest.fixture(scope="module", autouse=True)
def _need_libseccomp():
    try:
        seccomp._libseccomp()
    except RuntimeFailure as e:
        pytest.skip(f"libseccomp unavailable: {e}")


def in_child(fn) -> tuple[int, str]:
    """Run ``fn()`` in a forked child; (exit code, what it wrote).  fn returns a str."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.write(w, str(fn()).encode())
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - never run pytest code in the child
            os.write(w, f"CHILD-ERROR {type(e).__name__}: {e}".encode())
            os._exit(111)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def _getcwd_errno() -> str:
    try:
        os.getcwd()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def test_compiled_filter_loads_and_denies():
    compiled = seccomp.compile_filter(DENY_GETCWD)
    assert compiled.bpf and len(compiled.bpf) % 8 == 0
    assert in_child(_getcwd_errno) == (0, "ok")  # compiling alone confines nothing
    assert in_child(lambda: (seccomp.load_filter(compiled), _getcwd_errno())[1]) == (0, "ENOTSUP")


def test_load_filter_with_no_new_privs_sets_it():
    compiled = seccomp.compile_filter(DENY_GETCWD)

    def child() -> str:
        from nbcontainer._linux import syscalls as sc
        seccomp.load_filter(compiled, no_new_privs=True)
        return f"{sc.get_no_new_privs()} {_getcwd_errno()}"
    assert in_child(child) == (0, "True ENOTSUP")


def test_flagged_section_keeps_libseccomps_loader():
    oci = dict(DENY_GETCWD, flags=["SECCOMP_FILTER_FLAG_LOG"])
    compiled = seccomp.compile_filter(oci)
    assert compiled.bpf is None
    assert in_child(lambda: (seccomp.load_filter(compiled), _getcwd_errno())[1]) == (0, "ENOTSUP")


def test_install_filter_is_compile_then_load():
    oci = seccomp.default_oci(list(caps.DOCKER_DEFAULT_CAPS))
    code, out = in_child(lambda: " ".join(seccomp.install_filter(oci)))
    assert code == 0 and out.split() == seccomp.compile_filter(oci).skipped


def test_cache_round_trip_and_mismatch(tmp_path):
    cache = str(tmp_path / "cache")
    first = seccomp_cache.compile_cached(DENY_GETCWD, cache)
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".bpf")
    again = seccomp_cache.compile_cached(DENY_GETCWD, cache)
    assert again.bpf == first.bpf and again.oci is DENY_GETCWD
    assert in_child(lambda: (seccomp.load_filter(again), _getcwd_errno())[1]) == (0, "ENOTSUP")
    # an entry whose stored key differs (e.g. a crc collision) is never used
    other = {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]}
    path = os.path.join(cache, files[0])
    data = open(path, "rb").read()
    key = seccomp_cache.cache_key(DENY_GETCWD)
    open(path, "wb").write(data.replace(key, seccomp_cache.cache_key(other)))
    assert seccomp_cache._read(path, key) is None
    assert seccomp_cache.compile_cached(DENY_GETCWD, cache).bpf == first.bpf  # recompiled, rewritten
    assert seccomp_cache._read(path, key) is not None


def test_cache_ignores_garbage_and_unwritable_dirs(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    key = seccomp_cache.cache_key(DENY_GETCWD)
    import zlib
    (cache / f"{zlib.crc32(key):08x}.bpf").write_bytes(b"NBC-BPF2\n" + key + b"\n[]\n" + b"x" * 7)  # not n*8
    assert seccomp_cache.compile_cached(DENY_GETCWD, str(cache)).bpf == seccomp.compile_filter(DENY_GETCWD).bpf
    blocker = tmp_path / "file"
    blocker.write_text("")
    got = seccomp_cache.compile_cached(DENY_GETCWD, str(blocker / "sub"))  # cannot create: still compiles
    assert got.bpf == seccomp.compile_filter(DENY_GETCWD).bpf


def test_precompiled_error_surfaces_at_start():
    from nbcontainer.runtime.init import PrecompiledSeccomp
    bad = PrecompiledSeccomp({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NOPE"]})
    with pytest.raises(Exception, match="unknown architecture"):
        bad.get()


# -- in real containers: the filter compiled during create, from the cache the second time --

def test_cached_filter_confines_a_second_container(rt, make_bundle):
    from nbcontainer.runtime.api import single_threaded
    if rt.spawn == "fork" and not single_threaded():
        pytest.skip("spawn='fork' needs a single-threaded test process (an earlier test left threads)")
    script = "grep Seccomp: /proc/self/status; unshare -n true 2>&1; echo done"
    first = sh(rt, make_bundle, script)
    cache = rt.runroot / seccomp_cache.CACHE_DIR
    entries = sorted((p.name, p.stat().st_ino) for p in cache.iterdir())
    assert len(entries) == 1  # written by the first container's child
    rt.delete("t1")
    second = sh(rt, make_bundle, script)
    assert sorted((p.name, p.stat().st_ino) for p in cache.iterdir()) == entries  # a hit: not rewritten
    for code, out, _ in (first, second):
        assert code == 0 and "Seccomp:\t2" in out, out
        assert "unshare(0x40000000): Operation not permitted" in out, out


# -- the fork server (spawn="server", and "auto" in a multi-threaded caller) --------------
@pytest.fixture
def server_rt(tmp_path):
    from nbcontainer.runtime import Runtime, forkserver
    runtime = Runtime(tmp_path / "run", spawn="server")
    yield runtime
    for cid in runtime.list():
        try:
            runtime.delete(cid, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
    forkserver.get_server().close()


def _server_pid() -> int:
    from nbcontainer.runtime import forkserver
    proc = forkserver.get_server()._proc
    return proc.pid if proc is not None else 0


def test_server_runs_containers_and_is_reused(server_rt, make_bundle):
    code, out, _ = sh(server_rt, make_bundle, "echo hi; grep Seccomp: /proc/self/status")
    assert code == 0 and out.startswith("hi\n") and "Seccomp:\t2" in out, out
    first = _server_pid()
    assert first
    server_rt.delete("t1")
    assert sh(server_rt, make_bundle, "exit 3")[0] == 3
    assert _server_pid() == first  # one server for the whole process


def test_dead_server_is_replaced(server_rt, make_bundle):
    assert sh(server_rt, make_bundle, "true")[0] == 0
    server_rt.delete("t1")
    old = _server_pid()
    os.kill(old, 9)
    assert sh(server_rt, make_bundle, "echo again")[1] == "again\n"
    assert _server_pid() not in (0, old)


def test_server_exits_when_its_caller_closes_it(server_rt, make_bundle):
    from nbcontainer.runtime import forkserver
    assert sh(server_rt, make_bundle, "true")[0] == 0
    proc = forkserver.get_server()._proc
    forkserver.get_server().close()
    assert proc.poll() is not None


def test_auto_in_a_threaded_caller_uses_the_server(tmp_path, make_bundle):
    import threading
    from nbcontainer.runtime import Runtime, forkserver
    forkserver.get_server().close()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        runtime = Runtime(tmp_path / "run")
        assert sh(runtime, make_bundle, "echo threaded")[1] == "threaded\n"
        assert _server_pid()
        runtime.delete("t1")
    finally:
        stop.set()
        t.join()
        forkserver.get_server().close()


def test_exec_loads_the_cached_filter(rt, make_bundle):
    from nbcontainer.runtime.api import single_threaded
    if rt.spawn == "fork" and not single_threaded():
        pytest.skip("spawn='fork' needs a single-threaded test process (an earlier test left threads)")
    b = make_bundle(["sleep", "60"])
    rt.create("ex", b, log_path=b / "log.jsonl")
    rt.start("ex")
    cache = rt.runroot / seccomp_cache.CACHE_DIR
    entries = sorted((p.name, p.stat().st_ino) for p in cache.iterdir())  # a miss would replace the file
    h = rt.exec("ex", {"args": ["sh", "-c", "grep Seccomp: /proc/self/status; unshare -n true 2>&1"],
                       "env": ["PATH=/bin"], "cwd": "/"})
    out, _ = h.communicate()
    assert b"Seccomp:\t2" in out and b"Operation not permitted" in out, out
    assert sorted((p.name, p.stat().st_ino) for p in cache.iterdir()) == entries  # served from the cache
    rt.delete("ex", force=True)


def test_exec_through_the_server(server_rt, make_bundle):
    from nbcontainer.errors import ExecFailure
    b = make_bundle(["sleep", "60"])
    server_rt.create("ex", b, log_path=b / "log.jsonl")
    server_rt.start("ex")
    env = {"env": ["PATH=/bin"], "cwd": "/"}
    h = server_rt.exec("ex", dict(env, args=["sh", "-c", "cat; echo err >&2; exit 5"]))
    out, err = h.communicate(b"in\n")
    assert (out, err, h.wait()) == (b"in\n", b"err\n", 5)
    h = server_rt.exec("ex", dict(env, args=["sh", "-c", "grep Seccomp: /proc/self/status"]))
    assert h.communicate()[0] == b"Seccomp:\t2\n" and h.wait() == 0
    with pytest.raises(ExecFailure) as e:
        server_rt.exec("ex", dict(env, args=["nosuchcmd"]))
    assert e.value.exit_code == 127
    h = server_rt.exec("ex", dict(env, args=["sleep", "0.1"]), detach=True)
    assert h.wait(timeout=10) == 0
    server_rt.delete("ex", force=True)
