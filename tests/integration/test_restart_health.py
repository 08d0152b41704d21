"""Restart policies and HEALTHCHECK, run by the supervisor (runtime level and service level)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from test_runtime_support import busybox_lower, make_bundle, rt  # noqa: F401
from helpers.nbc_cli import inspect as _inspect, until  # noqa: E402


def _cgroup_dirs(cid: str) -> list[str]:
    return [p for p in (f"/sys/fs/cgroup/{c}/nbcontainer/{cid}" for c in os.listdir("/sys/fs/cgroup"))
            if os.path.isdir(p)]


def _until(pred, timeout=10.0, step=0.02):
    """Poll faster than the shared helper's default: restarts and probes here take milliseconds."""
    return until(pred, timeout, step)


def _log_lines(b: Path) -> list[str]:
    try:
        return [json.loads(x)["log"] for x in (b / "log.jsonl").read_text().splitlines()]
    except FileNotFoundError:
        return []


def test_runtime_on_failure_max_retries(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo run; exit 3"])
    rt.create("rp1", b, log_path=b / "log.jsonl", restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    rt.start("rp1")
    st = _until(lambda: (s := rt.state("rp1")).status == "stopped" and s, timeout=15)
    assert st and st.exit_code == 3 and st.restart_count == 2
    assert _log_lines(b) == ["run\n"] * 3  # one json log across the runs
    assert st.error == ""


def test_runtime_on_failure_success_not_restarted(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo ok"])
    rt.create("rp2", b, log_path=b / "log.jsonl", restart_policy={"Name": "on-failure", "MaximumRetryCount": 0})
    rt.start("rp2")
    assert rt.wait("rp2", timeout=10) == 0
    st = _until(lambda: (s := rt.state("rp2")).status == "stopped" and s)
    assert st.restart_count == 0 and _log_lines(b) == ["ok\n"]


def test_runtime_always_restarts_with_backoff_until_killed(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo up; exit 0"])
    rt.create("rp3", b, log_path=b / "log.jsonl", restart_policy={"Name": "always", "MaximumRetryCount": 0})
    t0 = time.monotonic()
    rt.start("rp3")
    # back-off 0.1 + 0.2 + 0.4 + 0.8 s: the 5th run starts no sooner than 1.5 s after the first
    assert _until(lambda: len(_log_lines(b)) >= 5, timeout=15)
    assert time.monotonic() - t0 >= 1.4
    st = rt.state("rp3")
    assert st.status in ("running", "restarting", "created") and st.restart_count >= 4
    rt.kill("rp3", signal.SIGKILL)  # a user kill: no more restarts, also while waiting
    st = _until(lambda: (s := rt.state("rp3")).status == "stopped" and s, timeout=10)
    assert st
    n = len(_log_lines(b))
    time.sleep(1.0)
    assert len(_log_lines(b)) == n and rt.state("rp3").status == "stopped"


def test_runtime_restart_gets_new_process_keeps_netns(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo $$; sleep 1; exit 1"])
    rt.create("rp4", b, log_path=b / "log.jsonl", restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    rt.start("rp4")
    pid1 = rt.state("rp4").pid
    net1 = os.readlink(f"/proc/{pid1}/ns/net")
    pid2 = _until(lambda: (p := rt.state("rp4").pid) not in (0, pid1) and p, timeout=10)
    assert pid2
    net2 = os.readlink(f"/proc/{pid2}/ns/net")
    st = _until(lambda: (s := rt.state("rp4")).status == "stopped" and s, timeout=10)
    assert _log_lines(b) == ["1\n", "1\n"]   # a new pid namespace each run
    assert net1 == net2  # the network namespace is kept (held by the supervisor) for the caller's wiring
    assert st.restart_count == 1 and st.exit_code == 1


def test_runtime_kill_during_backoff_cancels_the_restart(rt, make_bundle):
    b = make_bundle(["sh", "-c", "echo r; exit 1"])
    rt.create("rp6", b, log_path=b / "log.jsonl", restart_policy={"Name": "unless-stopped", "MaximumRetryCount": 0})
    rt.start("rp6")
    # from the 4th restart on the back-off is >= 0.8 s: catch it waiting
    assert _until(lambda: (s := rt.state("rp6")).status == "restarting" and s.restart_count >= 4, timeout=15,
                  step=0.005)
    st = rt.state("rp6")
    assert st.pid == 0 and st.exit_code == 1 and not _cgroup_dirs("rp6")
    t0 = time.monotonic()
    rt.kill("rp6", signal.SIGTERM)  # nothing to signal: the supervisor just stays exited
    assert rt.wait("rp6", timeout=5) == 1 and time.monotonic() - t0 < 2
    n = len(_log_lines(b))
    time.sleep(2.0)
    st = rt.state("rp6")
    assert st.status == "stopped" and len(_log_lines(b)) == n


def test_runtime_delete_while_restarting(rt, make_bundle):
    b = make_bundle(["sh", "-c", "exit 1"])
    rt.create("rp5", b, log_path=b / "log.jsonl", restart_policy={"Name": "always", "MaximumRetryCount": 0})
    rt.start("rp5")
    assert _until(lambda: rt.state("rp5").restart_count >= 3, timeout=10)
    shim = rt.state("rp5").shim_pid
    rt.delete("rp5", force=True)
    assert "rp5" not in rt.list()
    assert _until(lambda: not os.path.exists(f"/proc/{shim}") or
                  open(f"/proc/{shim}/stat").read().split()[2] == "Z", timeout=10)


def test_runtime_healthcheck_states(rt, make_bundle):
    b = make_bundle(["sh", "-c", "sleep 30"])
    hc = {"Test": ["CMD-SHELL", "test -e /tmp/ok && echo fine || (echo bad; exit 1)"], "Interval": 100_000_000,
          "Timeout": 2_000_000_000, "Retries": 2}
    rt.create("hc1", b, log_path=b / "log.jsonl", healthcheck=hc)
    rt.start("hc1")
    assert rt.state("hc1").health["Status"] == "starting"
    st = _until(lambda: (s := rt.state("hc1")).health["Status"] == "unhealthy" and s, timeout=10)
    assert st and st.health["FailingStreak"] >= 2
    entry = st.health["Log"][-1]
    assert entry["ExitCode"] == 1 and entry["Output"] == "bad\n" and entry["Start"] <= entry["End"]
    h = rt.exec("hc1", {"args": ["touch", "/tmp/ok"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}})
    assert h.wait() == 0
    st = _until(lambda: (s := rt.state("hc1")).health["Status"] == "healthy" and s, timeout=10)
    assert st and st.health["FailingStreak"] == 0 and st.health["Log"][-1]["Output"] == "fine\n"
    assert len(st.health["Log"]) <= 5
    rt.kill("hc1", signal.SIGKILL)
    rt.wait("hc1", timeout=10)


def test_runtime_healthcheck_timeout(rt, make_bundle):
    b = make_bundle(["sh", "-c", "sleep 30"])
    hc = {"Test": ["CMD", "sleep", "5"], "Interval": 100_000_000, "Timeout": 200_000_000, "Retries": 1}
    rt.create("hc2", b, log_path=b / "log.jsonl", healthcheck=hc)
    rt.start("hc2")
    st = _until(lambda: (s := rt.state("hc2")).health["Status"] == "unhealthy" and s, timeout=10)
    assert st and st.health["Log"][-1]["ExitCode"] == -1
    assert st.health["Log"][-1]["Output"] == "Health check exceeded timeout (200ms)"
    rt.kill("hc2", signal.SIGKILL)
    rt.wait("hc2", timeout=10)


# ---------------------------------------------------------------------------------- nbc end to end
from test_cli_lifecycle import nbc  # noqa: E402,F401


def _ps_status(nbc, name) -> str:
    return nbc.ok("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").strip()


def test_cli_on_failure_restarts_n_times_in_one_log(nbc):
    nbc.ok("run", "-d", "--name", "of", "--network", "none", "--restart", "on-failure:2", "bb:1",
           "sh", "-c", "echo run; exit 5")
    assert _until(lambda: _inspect(nbc, "of")["State"]["Status"] == "exited", timeout=20)
    info = _inspect(nbc, "of")
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 5
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert nbc.ok("logs", "of") == "run\n" * 3
    assert _ps_status(nbc, "of").startswith("Exited (5)")


def test_cli_always_shows_restarting_and_stop_ends_it(nbc):
    # runs 1-5 fail at once (back-offs 0.1 .. 1.6 s: "Restarting" is visible), run 6 stays up
    script = "n=$(cat /count 2>/dev/null || echo 0); echo $((n+1)) > /count; [ $n -ge 5 ] && exec sleep 60; exit 1"
    nbc.ok("run", "-d", "--name", "al", "--network", "none", "--restart", "always", "bb:1", "sh", "-c", script)
    status = _until(lambda: (s := _ps_status(nbc, "al")).startswith("Restarting (1)") and s, timeout=20, step=0.01)
    assert status and status.endswith("ago"), status
    assert _until(lambda: (i := _inspect(nbc, "al"))["RestartCount"] == 5 and i["State"]["Running"]
                  and not i["State"]["Restarting"], timeout=20)
    assert _ps_status(nbc, "al").startswith("Up ")
    r = nbc("stop", "-t", "1", "al")
    assert r.returncode == 0, r.stderr
    info = _inspect(nbc, "al")
    assert info["State"]["Status"] == "exited" and not info["State"]["Restarting"] and info["RestartCount"] == 5
    time.sleep(0.5)
    assert _inspect(nbc, "al")["State"]["Status"] == "exited"  # stopped by the user: not restarted
    # a manual start runs it again under the same policy, RestartCount starting from 0
    nbc.ok("start", "al")
    info = _inspect(nbc, "al")
    assert info["RestartCount"] == 0 and info["State"]["Running"]
    nbc.ok("rm", "-f", "al")
    assert nbc.ok("ps", "-aq") == ""


def test_cli_rm_with_restart_is_refused(nbc):
    r = nbc("run", "--rm", "--restart", "always", "bb:1", "true")
    assert r.returncode == 125 and b"Conflicting options: --restart and --rm" in r.stderr
    assert nbc.ok("ps", "-aq") == ""
    r = nbc("run", "--restart", "sometimes", "bb:1", "true")
    assert r.returncode == 125 and b"sometimes" in r.stderr


def test_cli_foreground_run_returns_first_exit(nbc):
    t0 = time.monotonic()
    r = nbc("run", "--name", "fg", "--network", "none", "--restart", "always", "bb:1", "sh", "-c", "exit 3")
    assert r.returncode == 3 and time.monotonic() - t0 < 20
    assert _until(lambda: _inspect(nbc, "fg")["RestartCount"] >= 1, timeout=10)
    nbc.ok("rm", "-f", "fg")


@pytest.mark.skipif(os.geteuid() != 0, reason="bridge networking needs root")
def test_cli_restart_keeps_bridge_network(nbc):
    nbc.ok("run", "-d", "--name", "br", "--restart", "on-failure:1", "bb:1",
           "sh", "-c", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; exit 1")
    assert _until(lambda: _inspect(nbc, "br")["State"]["Status"] == "exited", timeout=20)
    lines = nbc.ok("logs", "br").splitlines()
    assert len(lines) == 2 and lines[0].startswith("inet ") and lines[0] == lines[1]


def test_cli_healthcheck_in_inspect_and_ps(nbc):
    nbc.ok("run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "test -e /tmp/ok",
           "--health-interval", "200ms", "--health-retries", "2", "bb:1", "sleep", "60")
    info = _inspect(nbc, "hc")
    assert info["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 200_000_000,
                                             "Retries": 2}
    assert _until(lambda: _ps_status(nbc, "hc").endswith("(unhealthy)"), timeout=15)
    assert nbc.ok("ps", "-q", "--filter", "health=unhealthy") != ""
    assert nbc.ok("ps", "-q", "--filter", "health=healthy") == ""
    health = _inspect(nbc, "hc")["State"]["Health"]
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    nbc.ok("exec", "hc", "touch", "/tmp/ok")
    assert _until(lambda: _ps_status(nbc, "hc").endswith("(healthy)"), timeout=15)
    assert nbc.ok("ps", "-q", "--filter", "health=healthy") != ""
    assert nbc.ok("ps", "-q", "--filter", "health=none") == ""
    nbc.ok("rm", "-f", "hc")


def test_python_api_restart_policy_and_healthcheck(nbc, monkeypatch):
    """docker-py keywords, from a (threaded) Python process: the fork server's supervisors."""
    for k in ("NBCONTAINER_ROOT", "NBCONTAINER_RUNROOT"):
        monkeypatch.setenv(k, nbc.env[k])
    import nbcontainer
    client = nbcontainer.from_env()
    c = client.containers.run("bb:1", ["sh", "-c", "echo go; exit 2"], detach=True, network_mode="none",
                              restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    assert _until(lambda: (c.reload() or c.status) == "exited", timeout=20)
    assert c.attrs["RestartCount"] == 1 and c.attrs["State"]["ExitCode"] == 2
    assert c.logs() == b"go\ngo\n"
    from nbcontainer.events import Lifecycle, bus
    seen = []
    unsubscribe = bus.subscribe(lambda e: seen.append(e) if isinstance(e, Lifecycle) else None)
    try:
        h = client.containers.run("bb:1", ["sleep", "60"], detach=True, network_mode="none",
                                  healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "retries": 1})
        assert _until(lambda: (h.reload() or h.health) == "healthy", timeout=20)
    finally:
        unsubscribe()
    assert [e.action for e in seen if e.id == h.id and e.action.startswith("health_status")] == [
        "health_status: healthy"]
    h.remove(force=True)
    c.remove()


def test_update_restart_policy_of_a_running_container(nbc, monkeypatch):
    """update --restart (containers/restart_health.update_restart_policy): live in the supervisor."""
    for k in ("NBCONTAINER_ROOT", "NBCONTAINER_RUNROOT"):
        monkeypatch.setenv(k, nbc.env[k])
    import nbcontainer
    from nbcontainer.containers.restart_health import update_restart_policy
    from nbcontainer.errors import InvalidArgument
    client = nbcontainer.from_env()
    svc = client.container_service
    c = client.containers.run("bb:1", ["sh", "-c", "sleep 0.5; echo bye; exit 1"], detach=True, network_mode="none")
    assert update_restart_policy(svc, c.id, "on-failure:1") == {"Name": "on-failure", "MaximumRetryCount": 1}
    assert _until(lambda: (c.reload() or c.status) == "exited" and c.attrs["RestartCount"] == 1, timeout=20)
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "on-failure" and c.logs() == b"bye\nbye\n"
    with pytest.raises(InvalidArgument, match="nope"):
        update_restart_policy(svc, c.id, "nope")
    r = client.containers.run("bb:1", ["true"], detach=True, network_mode="none", auto_remove=True)
    with pytest.raises(InvalidArgument, match="AutoRemove"):
        update_restart_policy(svc, r.id, "always")
    c.remove()
