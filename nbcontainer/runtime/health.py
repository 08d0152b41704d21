"""HEALTHCHECK, run by the supervisor: the configuration, the probe, and State.Health.

The configuration is docker's ``Config.Healthcheck``: ``{"Test": ["CMD", ...] |
["CMD-SHELL", "cmd"] | ["NONE"], "Interval", "Timeout", "StartPeriod", "StartInterval"
(nanoseconds; 0 = default), "Retries"}``.  The supervisor runs a probe every interval (every
start interval during the start period) as an exec in the container with the container's
own process settings (env, user, cwd, capabilities), with a timeout, and keeps
``{"Status": "starting"|"healthy"|"unhealthy", "FailingStreak": n, "Log": [last 5 results]}``
in its state.json, where inspect and ps read it.  The result rules are docker's:
exit 0 = healthy (streak 0); any other result increments the failing streak (except while
still starting within the start period) and ``Retries`` consecutive failures = unhealthy.
"""
from __future__ import annotations

import os
import re
import time

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: the supervisor imports this)
if TYPE_CHECKING:
    from typing import Any, Optional

NS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_START_INTERVAL = 5 * NS
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1 ms: docker refuses shorter intervals/timeouts
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: Any, what: str = "duration") -> int:
    """A Go duration (``"200ms"``, ``"1m30s"``, ``"0"``) or an int of nanoseconds -> ns.
    ValueError naming the value when malformed or negative."""
    if isinstance(value, bool):
        raise ValueError(f"invalid {what}: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} cannot be negative: {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid {what}: {value!r}")
    s = value.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError(f"invalid {what}: {value!r}")
        return 0
    neg = s.startswith("-")
    body = s.lstrip("+-")
    total, pos = 0.0, 0
    for m in _DUR_RE.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or not body:
        raise ValueError(f"invalid {what}: {value!r} (a duration like 200ms, 30s or 1m)")
    if neg and total:
        raise ValueError(f"{what} cannot be negative: {value}")
    return int(round(total))


def merge_config(image_hc: Optional[dict], user_hc: Optional[dict]) -> Optional[dict]:
    """The container's Healthcheck: the user's (``--health-*``) over the image's, field by
    field, as docker merges them (an empty Test or a zero duration takes the image's)."""
    if not user_hc:
        return dict(image_hc) if image_hc else None
    out = dict(user_hc)
    if image_hc:
        if not out.get("Test"):
            out["Test"] = image_hc.get("Test")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not out.get(key) and image_hc.get(key):
                out[key] = image_hc[key]
    return out


def is_enabled(hc: Optional[dict]) -> bool:
    """True when ``hc`` asks for a probe (a Test other than NONE)."""
    test = (hc or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def probe_args(hc: dict) -> list:
    """The argv of the probe: ``CMD a b`` -> [a, b]; ``CMD-SHELL s`` -> [/bin/sh, -c, s]."""
    test = list(hc.get("Test") or [])
    if not test:
        raise ValueError("healthcheck has no test")
    kind, rest = test[0], test[1:]
    if kind == "CMD":
        if not rest:
            raise ValueError("healthcheck CMD needs a command")
        return rest
    if kind == "CMD-SHELL":
        if len(rest) != 1:
            raise ValueError("healthcheck CMD-SHELL needs exactly one command string")
        return ["/bin/sh", "-c", rest[0]]
    raise ValueError(f"unknown healthcheck test type {kind!r} (CMD, CMD-SHELL or NONE)")


def validate(hc: dict) -> None:
    """ValueError for durations below 1 ms (0 = default) or negative retries, like dockerd."""
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = hc.get(key) or 0
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"Healthcheck {key} must be a non-negative number of nanoseconds: {v!r}")
        if v and v < MIN_DURATION and key != "StartPeriod":
            raise ValueError(f"{key} in Healthcheck cannot be less than 1ms: {v}ns")
    r = hc.get("Retries") or 0
    if not isinstance(r, int) or isinstance(r, bool) or r < 0:
        raise ValueError(f"Retries in Healthcheck cannot be negative: {r!r}")
    if is_enabled(hc):
        probe_args(hc)


def interval_s(hc: dict) -> float:
    return (hc.get("Interval") or DEFAULT_INTERVAL) / NS


def timeout_s(hc: dict) -> float:
    return (hc.get("Timeout") or DEFAULT_TIMEOUT) / NS


def start_interval_s(hc: dict) -> float:
    return (hc.get("StartInterval") or DEFAULT_START_INTERVAL) / NS


def start_period_s(hc: dict) -> float:
    return (hc.get("StartPeriod") or 0) / NS


def retries(hc: dict) -> int:
    return hc.get("Retries") or DEFAULT_RETRIES


def initial_health() -> dict:
    """State.Health right after a (re)start."""
    return {"Status": "starting", "FailingStreak": 0, "Log": []}


def next_delay(hc: dict, health: dict, since_start: float) -> float:
    """Seconds until the next probe: the start interval while starting within the start
    period (docker 25+), else the interval."""
    if health.get("Status") == "starting" and since_start < start_period_s(hc):
        return min(start_interval_s(hc), interval_s(hc))
    return interval_s(hc)


def apply_result(hc: dict, health: dict, result: dict, since_start: float) -> dict:
    """Fold one probe ``result`` ({Start, End, ExitCode, Output}) into ``health`` (a new dict).

    ``since_start``: seconds from the container's start to the probe's start."""
    h = {"Status": health.get("Status", "starting"), "FailingStreak": health.get("FailingStreak", 0),
         "Log": (list(health.get("Log") or []) + [result])[-MAX_LOG_ENTRIES:]}
    if result.get("ExitCode") == 0:
        h["Status"], h["FailingStreak"] = "healthy", 0
        return h
    if h["Status"] == "starting" and since_start < start_period_s(hc):
        return h  # failures in the start period do not count
    h["FailingStreak"] += 1
    if h["FailingStreak"] >= retries(hc):
        h["Status"] = "unhealthy"
    return h


# ------------------------------------------------------------------ the probe (in a helper process)
def run_probe(st_dict: dict, config: dict, hc: dict, seccomp_cache: Optional[str]) -> dict:
    """Run one probe in the container described by ``st_dict`` (RuntimeState fields) and
    ``config`` (its OCI spec); returns {Start, End, ExitCode, Output}.

    Called in a process forked from the supervisor for this one probe (it blocks)."""
    from .state import RuntimeState, now_rfc3339
    start = now_rfc3339()
    process = dict(config.get("process") or {})
    process["terminal"] = False
    try:
        process["args"] = probe_args(hc)
    except ValueError as e:
        return {"Start": start, "End": now_rfc3339(), "ExitCode": -1, "Output": str(e)}
    from .execproc import spawn_exec
    from nbcontainer.errors import NbContainerError
    import subprocess
    st = RuntimeState.from_dict(st_dict)
    r, w = os.pipe2(os.O_CLOEXEC)  # stdout and stderr together, like docker's probe output
    try:
        try:
            handle = spawn_exec(st, process, stdin=subprocess.DEVNULL, stdout=w, stderr=w, command=[],
                                fork=True, seccomp_cache=seccomp_cache)
        finally:
            os.close(w)
    except NbContainerError as e:
        os.close(r)
        code = getattr(e, "exit_code", None)
        return {"Start": start, "End": now_rfc3339(), "ExitCode": code if isinstance(code, int) else -1,
                "Output": str(e)}
    out = bytearray()
    deadline = time.monotonic() + timeout_s(hc)
    timed_out = False
    import select
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if not select.select([r], [], [], left)[0]:
            continue
        data = os.read(r, 65536)
        if not data:
            break
        if len(out) < MAX_OUTPUT:
            out += data[:MAX_OUTPUT - len(out)]
    if timed_out:
        try:
            os.kill(handle.pid, 9)
        except ProcessLookupError:
            pass
    os.close(r)
    try:
        code = handle.wait(5)
    except subprocess.TimeoutExpired:
        code = -1
    if timed_out:
        return {"Start": start, "End": now_rfc3339(), "ExitCode": -1,
                "Output": f"Health check exceeded timeout ({_fmt_seconds(timeout_s(hc))})"}
    return {"Start": start, "End": now_rfc3339(), "ExitCode": code, "Output": out.decode(errors="replace")}


def _fmt_seconds(s: float) -> str:
    if s >= 1 and s == int(s):
        return f"{int(s)}s"
    return f"{s * 1000:g}ms" if s < 1 else f"{s:g}s"


def start_probe(st_dict: dict, config: dict, hc: dict, seccomp_cache: Optional[str]) -> tuple:
    """Fork a helper running :func:`run_probe`; returns (pid, read fd of its JSON result).

    The caller (the single-threaded supervisor) polls the fd and reaps the pid."""
    import json
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from nbcontainer._linux import syscalls as sc
            import signal
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(s, signal.SIG_DFL)
            if w > 3:  # the supervisor's sockets and pipes are not ours
                sc.close_range(3, w - 1)
            sc.close_range(w + 1)
            try:
                result = run_probe(st_dict, config, hc, seccomp_cache)
            except BaseException as e:  # noqa: BLE001 - a broken probe is a failed probe
                from .state import now_rfc3339
                result = {"Start": now_rfc3339(), "End": now_rfc3339(), "ExitCode": -1, "Output": str(e)}
            os.write(w, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


__all__ = ["apply_result", "initial_health", "is_enabled", "merge_config", "next_delay", "parse_duration",
           "probe_args", "run_probe", "start_probe", "validate"]
