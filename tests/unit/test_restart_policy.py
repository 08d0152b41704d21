"""runtime/restart.py: docker's restart policies and back-off, and the --restart option."""
from __future__ import annotations

import pytest

from nbcontainer.containers.options import RunOptions
from nbcontainer.containers.restart_health import restart_policy
from nbcontainer.errors import InvalidArgument
from nbcontainer.runtime.restart import InvalidPolicy, RestartManager, is_none, next_delay, parse_policy


@pytest.mark.parametrize("value,expected", [
    (None, ("no", 0)), ("", ("no", 0)), ("no", ("no", 0)), ("always", ("always", 0)),
    ("unless-stopped", ("unless-stopped", 0)), ("on-failure", ("on-failure", 0)),
    ("on-failure:3", ("on-failure", 3)), ("on-failure:0", ("on-failure", 0)),
    ({"Name": "on-failure", "MaximumRetryCount": 5}, ("on-failure", 5)), ({"Name": "always"}, ("always", 0)),
    ({"name": "on-failure", "maximum_retry_count": 2}, ("on-failure", 2)), ({}, ("no", 0)),
])
def test_parse_policy(value, expected):
    p = parse_policy(value)
    assert (p["Name"], p["MaximumRetryCount"]) == expected


@pytest.mark.parametrize("value", ["sometimes", "always:3", "on-failure:x", "on-failure:-1", "no:1", 3,
                                   {"Name": "always", "MaximumRetryCount": 2}, {"Name": 1},
                                   {"Name": "on-failure", "MaximumRetryCount": "2"}])
def test_parse_policy_rejects(value):
    with pytest.raises(InvalidPolicy):
        parse_policy(value)


def test_is_none():
    assert is_none(None) and is_none({"Name": "no"}) and is_none({"Name": ""}) and not is_none({"Name": "always"})


def test_backoff_doubles_to_a_minute_and_resets_after_10s():
    d, seen = 0.0, []
    for _ in range(12):
        d = next_delay(d, 0.5)
        seen.append(d)
    assert seen[:4] == [0.1, 0.2, 0.4, 0.8]
    assert seen[-1] == 60.0 and max(seen) == 60.0
    assert next_delay(60.0, 10.0) == 0.1 and next_delay(0.8, 9.99) == 1.6


def test_on_failure_counts_and_only_restarts_failures():
    m = RestartManager({"Name": "on-failure", "MaximumRetryCount": 2})
    assert m.should_restart(0, 1.0) is None and m.restart_count == 0
    assert m.should_restart(1, 1.0) == 0.1
    assert m.should_restart(137, 1.0) == 0.2
    assert m.should_restart(1, 1.0) is None  # the third failure: limit reached
    assert m.restart_count == 2


def test_on_failure_without_limit():
    m = RestartManager({"Name": "on-failure", "MaximumRetryCount": 0})
    assert all(m.should_restart(2, 0.0) is not None for _ in range(20))
    assert m.restart_count == 20


@pytest.mark.parametrize("name", ["always", "unless-stopped"])
def test_always_and_unless_stopped_restart_any_exit_until_cancelled(name):
    m = RestartManager({"Name": name, "MaximumRetryCount": 0})
    assert m.should_restart(0, 0.0) == 0.1 and m.should_restart(3, 0.0) == 0.2
    assert m.should_restart(0, 0.0, manually_stopped=True) is None
    m.cancel()
    assert m.should_restart(1, 0.0) is None and m.restart_count == 2


def test_no_policy_never_restarts():
    assert RestartManager(None).should_restart(1, 0.0) is None
    assert RestartManager({"Name": "no"}).should_restart(1, 0.0) is None


def test_long_run_resets_backoff():
    m = RestartManager({"Name": "always"})
    for _ in range(5):
        m.should_restart(0, 0.1)
    assert m.delay == 1.6
    assert m.should_restart(0, 12.0) == 0.1


def test_restart_option_and_rm_conflict():
    assert restart_policy(RunOptions(restart_policy="on-failure:2")) == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert restart_policy(RunOptions(restart_policy="no", auto_remove=True))["Name"] == "no"
    with pytest.raises(InvalidArgument, match="Conflicting options: --restart and --rm"):
        restart_policy(RunOptions(restart_policy="always", auto_remove=True))
    with pytest.raises(InvalidArgument, match="bogus"):
        restart_policy(RunOptions(restart_policy="bogus"))


def test_cli_flag_maps_to_restart_policy():
    from nbcontainer import _args
    ns = _args.parse("run", ["--restart", "on-failure:3", "busybox"])
    assert _args.run_kwargs(ns)["restart_policy"] == "on-failure:3"


def test_docker_py_keyword_reaches_host_config():
    from nbcontainer.containers.config import build_config
    from nbcontainer.models.run_options import to_run_options
    o = to_run_options({"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 4}, "network_mode": "none"})
    _, hc, _ = build_config("img", {"Cmd": ["sh"]}, None, o)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 4}
