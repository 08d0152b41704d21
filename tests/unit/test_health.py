"""runtime/health.py: durations, config merging, docker's health state machine; ps view."""
from __future__ import annotations

import pytest

from nbcontainer.containers.inspect import match_filters, status_text
from nbcontainer.containers.options import RunOptions
from nbcontainer.containers.restart_health import healthcheck
from nbcontainer.errors import InvalidArgument
from nbcontainer.runtime import health as h

MS = 1_000_000
S = 1_000_000_000


@pytest.mark.parametrize("text,ns", [("200ms", 200 * MS), ("30s", 30 * S), ("1m30s", 90 * S), ("1.5s", 1500 * MS),
                                     ("0", 0), ("2h", 7200 * S), ("10us", 10_000), (5, 5)])
def test_parse_duration(text, ns):
    assert h.parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "10", "abc", "5 s", "-1s", "1x", True, 1.5, -3])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        h.parse_duration(bad)


def test_probe_args():
    assert h.probe_args({"Test": ["CMD", "curl", "-f", "x"]}) == ["curl", "-f", "x"]
    assert h.probe_args({"Test": ["CMD-SHELL", "exit 1"]}) == ["/bin/sh", "-c", "exit 1"]
    for bad in (["CMD"], ["CMD-SHELL"], ["RUN", "x"], []):
        with pytest.raises(ValueError):
            h.probe_args({"Test": bad})


def test_merge_config_like_docker():
    image = {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 4}
    assert h.merge_config(image, None) == image
    assert h.merge_config(None, None) is None
    merged = h.merge_config(image, {"Interval": 200 * MS})
    assert merged == {"Test": ["CMD", "true"], "Interval": 200 * MS, "Retries": 4}
    assert h.merge_config(image, {"Test": ["CMD-SHELL", "x"]})["Interval"] == 5 * S


def _r(code, out=""):
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": out}


def test_state_machine_retries_and_recovery():
    hc = {"Test": ["CMD", "x"], "Retries": 2}
    s = h.initial_health()
    assert s == {"Status": "starting", "FailingStreak": 0, "Log": []}
    s = h.apply_result(hc, s, _r(1), 1.0)
    assert s["Status"] == "starting" and s["FailingStreak"] == 1
    s = h.apply_result(hc, s, _r(1), 2.0)
    assert s["Status"] == "unhealthy" and s["FailingStreak"] == 2
    s = h.apply_result(hc, s, _r(0, "ok"), 3.0)
    assert s["Status"] == "healthy" and s["FailingStreak"] == 0 and s["Log"][-1]["Output"] == "ok"
    s = h.apply_result(hc, s, _r(1), 4.0)
    assert s["Status"] == "healthy" and s["FailingStreak"] == 1  # healthy until retries failures


def test_start_period_failures_do_not_count():
    hc = {"Test": ["CMD", "x"], "Retries": 1, "StartPeriod": 5 * S}
    s = h.apply_result(hc, h.initial_health(), _r(1), 1.0)
    assert s["Status"] == "starting" and s["FailingStreak"] == 0 and len(s["Log"]) == 1
    s = h.apply_result(hc, s, _r(1), 6.0)
    assert s["Status"] == "unhealthy"


def test_log_keeps_last_five():
    hc = {"Test": ["CMD", "x"]}
    s = h.initial_health()
    for i in range(8):
        s = h.apply_result(hc, s, _r(0, str(i)), float(i))
    assert [e["Output"] for e in s["Log"]] == ["3", "4", "5", "6", "7"]


def test_next_delay_uses_start_interval_in_start_period():
    hc = {"Test": ["CMD", "x"], "Interval": 10 * S, "StartPeriod": 30 * S, "StartInterval": 1 * S}
    assert h.next_delay(hc, h.initial_health(), 2.0) == 1.0
    assert h.next_delay(hc, {"Status": "healthy"}, 2.0) == 10.0
    assert h.next_delay(hc, h.initial_health(), 31.0) == 10.0
    assert h.next_delay({"Test": ["CMD", "x"]}, {"Status": "healthy"}, 0) == 30.0  # docker's default


def test_run_flags_over_image_healthcheck():
    image_hc = {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30 * S, "Retries": 5}
    hc = healthcheck(RunOptions(health_interval="200ms", health_retries=2), image_hc)
    assert hc == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 200 * MS, "Retries": 2}
    assert healthcheck(RunOptions(health_cmd="true"), None) == {"Test": ["CMD-SHELL", "true"]}
    assert healthcheck(RunOptions(no_healthcheck=True), image_hc) == {"Test": ["NONE"]}
    assert healthcheck(RunOptions(), image_hc) == image_hc
    assert healthcheck(RunOptions(), None) is None


def test_docker_py_healthcheck_dict():
    hc = healthcheck(RunOptions(healthcheck={"test": ["CMD", "true"], "interval": 500 * MS, "timeout": S,
                                             "retries": 3, "start_period": 2 * S}), None)
    assert hc == {"Test": ["CMD", "true"], "Interval": 500 * MS, "Timeout": S, "Retries": 3, "StartPeriod": 2 * S}
    assert healthcheck(RunOptions(healthcheck={"test": "exit 0"}), None)["Test"] == ["CMD-SHELL", "exit 0"]


@pytest.mark.parametrize("kw,bad", [
    ({"health_interval": "fast"}, "fast"), ({"health_timeout": "-1s"}, "-1s"),
    ({"health_interval": "10us"}, "10us"), ({"health_retries": -1}, "-1"),
    ({"no_healthcheck": True, "health_cmd": "true"}, "--no-healthcheck"),
    ({"healthcheck": {"test": ["RUN", "x"]}}, "RUN"),
])
def test_bad_health_options(kw, bad):
    with pytest.raises(InvalidArgument) as ei:
        healthcheck(RunOptions(**kw), None)
    assert bad in str(ei.value) or bad.lstrip("-") in str(ei.value)


def test_cli_health_flags():
    from nbcontainer import _args
    ns = _args.parse("run", ["--health-cmd", "true", "--health-interval", "200ms", "--health-retries", "2",
                             "--no-healthcheck", "busybox"])
    kw = _args.run_kwargs(ns)
    assert kw["health_cmd"] == "true" and kw["health_interval"] == "200ms" and kw["health_retries"] == 2
    assert kw["no_healthcheck"] is True


def test_ps_status_text_with_health_and_restarting():
    now = 1_000_000.0
    import time as _t
    started = _t.strftime("%Y-%m-%dT%H:%M:%S", _t.gmtime(now - 3)) + ".000000000Z"
    st = {"Running": True, "Status": "running", "StartedAt": started, "Health": {"Status": "healthy"}}
    assert status_text(st, now) == "Up 3 seconds (healthy)"
    st["Health"] = {"Status": "starting"}
    assert status_text(st, now) == "Up 3 seconds (health: starting)"
    st["Health"] = {"Status": "unhealthy"}
    assert status_text(st, now) == "Up 3 seconds (unhealthy)"
    rs = {"Running": True, "Restarting": True, "Status": "restarting", "ExitCode": 1, "FinishedAt": started}
    assert status_text(rs, now) == "Restarting (1) 3 seconds ago"


def test_ps_health_filter():
    row = {"id": "a" * 64, "name": "x"}
    summary = {"Labels": {}, "Image": "i", "ImageID": "sha256:1"}
    assert match_filters(summary, row, {"Health": {"Status": "healthy"}}, {"health": ["healthy"]})
    assert not match_filters(summary, row, {"Health": {"Status": "starting"}}, {"health": ["healthy"]})
    assert match_filters(summary, row, {}, {"health": ["none"]})
    with pytest.raises(InvalidArgument):
        match_filters(summary, row, {}, {"health": ["sick"]})
