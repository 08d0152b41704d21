"""``--restart`` and ``--health-*`` / docker-py ``restart_policy`` and ``healthcheck``
-> ``HostConfig.RestartPolicy`` and ``Config.Healthcheck`` (pure; InvalidArgument naming
the bad value).  The supervisor applies them (runtime/restart.py, runtime/health.py)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ..errors import InvalidArgument
from ..runtime import health as health_mod
from ..runtime.restart import InvalidPolicy, parse_policy

_HEALTH_FLAGS = ("health_cmd", "health_interval", "health_timeout", "health_retries", "health_start_period",
                 "health_start_interval")


def restart_policy(o: Any) -> Dict[str, Any]:
    """``HostConfig.RestartPolicy`` from RunOptions ``o`` (refuses --rm with a restart policy)."""
    value = getattr(o, "restart_policy", None)
    try:
        policy = parse_policy(value)
    except InvalidPolicy as e:
        raise InvalidArgument(str(e), value, "--restart") from None
    if policy["Name"] != "no" and getattr(o, "auto_remove", False):
        raise InvalidArgument("Conflicting options: --restart and --rm", value, "--restart")
    return policy


def _ns(value: Any, flag: str) -> int:
    try:
        return health_mod.parse_duration(value, flag)
    except ValueError as e:
        raise InvalidArgument(str(e), value, flag) from None


def _from_docker_py(hc: Mapping[str, Any]) -> Dict[str, Any]:
    """docker-py's ``healthcheck`` dict (lowercase keys, or docker.types.Healthcheck's
    capitalised ones) -> the Engine API's."""
    def get(*names: str) -> Any:
        for n in names:
            if n in hc:
                return hc[n]
        return None

    out: Dict[str, Any] = {}
    test = get("test", "Test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if test is not None:
        if not isinstance(test, (list, tuple)) or not all(isinstance(t, str) for t in test):
            raise InvalidArgument(f"invalid healthcheck test: {test!r}", test, "healthcheck")
        out["Test"] = list(test)
    for key, names in (("Interval", ("interval", "Interval")), ("Timeout", ("timeout", "Timeout")),
                       ("StartPeriod", ("start_period", "StartPeriod")),
                       ("StartInterval", ("start_interval", "StartInterval"))):
        v = get(*names)
        if v is not None:
            out[key] = _ns(v, f"healthcheck {names[0]}")
    r = get("retries", "Retries")
    if r is not None:
        if isinstance(r, bool) or not isinstance(r, int):
            raise InvalidArgument(f"invalid healthcheck retries: {r!r}", r, "healthcheck")
        out["Retries"] = r
    return out


def healthcheck(o: Any, image_hc: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """``Config.Healthcheck``: the run flags (or docker-py's dict) merged over the image's
    HEALTHCHECK as docker merges them; ``{"Test": ["NONE"]}`` for --no-healthcheck."""
    given = {f: getattr(o, f, None) for f in _HEALTH_FLAGS if getattr(o, f, None) is not None}
    if getattr(o, "no_healthcheck", False):
        if given or getattr(o, "healthcheck", None):
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options", "--no-healthcheck",
                                  "--no-healthcheck")
        return {"Test": ["NONE"]}
    user: Dict[str, Any] = {}
    hc = getattr(o, "healthcheck", None)
    if hc is not None:
        if not isinstance(hc, Mapping):
            raise InvalidArgument(f"invalid healthcheck: {hc!r}", hc, "healthcheck")
        user.update(_from_docker_py(hc))
    if "health_cmd" in given:
        user["Test"] = ["CMD-SHELL", str(given["health_cmd"])]
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval")):
        if flag in given:
            v = _ns(given[flag], "--" + flag.replace("_", "-"))
            if v and v < health_mod.MIN_DURATION:
                raise InvalidArgument(f"--{flag.replace('_', '-')} cannot be less than 1ms: {given[flag]}", given[flag],
                                      "--" + flag.replace("_", "-"))
            user[key] = v
    if "health_retries" in given:
        r = given["health_retries"]
        try:
            r = int(r)
        except (TypeError, ValueError):
            raise InvalidArgument(f"invalid --health-retries: {r!r}", r, "--health-retries") from None
        if r < 0:
            raise InvalidArgument(f"--health-retries cannot be negative: {r}", r, "--health-retries")
        user["Retries"] = r
    merged = health_mod.merge_config(dict(image_hc) if image_hc else None, user or None)
    if merged is None:
        return None
    try:
        health_mod.validate(merged)
    except ValueError as e:
        raise InvalidArgument(str(e), merged.get("Test"), "healthcheck") from None
    return merged


def update_restart_policy(svc: Any, id_or_name: str, value: Any) -> Dict[str, Any]:
    """``docker update --restart``: store the new ``HostConfig.RestartPolicy`` and hand it to
    the running supervisor, which applies it from the container's next exit on.

    ``svc``: the ContainerService.  Refused (like dockerd) for an AutoRemove container."""
    try:
        policy = parse_policy(value)
    except InvalidPolicy as e:
        raise InvalidArgument(str(e), value, "--restart") from None
    cid = svc.resolve(id_or_name)
    row = svc.db.get_container(cid)
    host_config = dict(row["attrs"].get("HostConfig") or {})
    if host_config.get("AutoRemove") and policy["Name"] != "no":
        raise InvalidArgument("Restart policy cannot be updated because AutoRemove is enabled for the container",
                              value, "--restart")
    host_config["RestartPolicy"] = policy
    row["attrs"]["HostConfig"] = host_config
    svc.db.update_container(cid, row["attrs"])
    setter = getattr(svc.runtime, "set_restart_policy", None)
    if setter is not None and svc._runtime_state(cid) is not None:
        setter(cid, None if policy["Name"] == "no" else policy)
    return policy
