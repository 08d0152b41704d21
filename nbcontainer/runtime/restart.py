"""Restart policies (``--restart``), decided by the supervisor: pure functions, no I/O.

Docker's rules (its restart manager), which the supervisor follows when the container's
process exits:

* ``no``: never restart.  ``always``: restart whatever the exit code.
  ``unless-stopped``: like always, unless the container was stopped by the user.
  ``on-failure[:N]``: restart on a non-zero exit code, at most N times (0 = no limit).
* A container stopped or killed by the user (``stop``/``kill``) is never restarted, whatever
  the policy (there is no daemon restart here, so ``always`` and ``unless-stopped`` agree).
* Back-off: the delay before a restart starts at 100 ms and doubles on every restart up to
  one minute; it goes back to 100 ms when the container had run for at least 10 s.
"""
from __future__ import annotations

TYPE_CHECKING = False  # (not typing.TYPE_CHECKING: the supervisor imports this at start)
if TYPE_CHECKING:
    from typing import Any, Optional

POLICIES = ("no", "always", "unless-stopped", "on-failure")
INITIAL_DELAY = 0.1      # seconds
MAX_DELAY = 60.0
RESET_AFTER = 10.0       # a run at least this long resets the back-off


class InvalidPolicy(ValueError):
    """A restart policy that cannot be parsed (the message names the bad value)."""


def parse_policy(value: Any) -> dict:
    """``"on-failure:3"`` / ``{"Name": "on-failure", "MaximumRetryCount": 3}`` / None ->
    docker's ``HostConfig.RestartPolicy`` dict.  InvalidPolicy for anything else.

    docker-py's ``restart_policy`` dict uses the same keys as the Engine API."""
    if value is None or value == "":
        return {"Name": "no", "MaximumRetryCount": 0}
    if isinstance(value, dict):
        name = value.get("Name", value.get("name", ""))
        count = value.get("MaximumRetryCount", value.get("maximum_retry_count", 0))
        if name in ("", None):
            name = "no"
        if not isinstance(name, str):
            raise InvalidPolicy(f"invalid restart policy name: {name!r}")
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidPolicy(f"invalid restart policy MaximumRetryCount: {count!r}")
    elif isinstance(value, str):
        name, sep, count_s = value.partition(":")
        count = 0
        if sep:
            if name != "on-failure" and count_s != "":
                raise InvalidPolicy(f"invalid restart policy format: maximum retry count can only be used "
                                    f"with 'on-failure': {value}")
            try:
                count = int(count_s)
            except ValueError:
                raise InvalidPolicy(f"invalid restart policy format: maximum retry count must be an integer: "
                                    f"{value}") from None
    else:
        raise InvalidPolicy(f"invalid restart policy: {value!r}")
    if name not in POLICIES:
        raise InvalidPolicy(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                            f"'on-failure', or 'unless-stopped'")
    if count < 0:
        raise InvalidPolicy(f"invalid restart policy: maximum retry count cannot be negative: {count}")
    if count and name != "on-failure":
        raise InvalidPolicy(f"invalid restart policy: maximum retry count can only be used with "
                            f"'on-failure': {name}:{count}")
    return {"Name": name, "MaximumRetryCount": count}


def is_none(policy: Optional[dict]) -> bool:
    """True when ``policy`` never restarts (absent, empty or "no")."""
    return not policy or policy.get("Name") in (None, "", "no")


class RestartManager:
    """What the supervisor asks after each exit: restart, and after which delay?

    ``restart_count``: restarts done so far (inspect's RestartCount); ``delay``: the current
    back-off (0 before the first restart); ``cancelled``: set by a user stop/kill."""

    def __init__(self, policy: Optional[dict], restart_count: int = 0):
        self.policy = dict(policy or {"Name": "no", "MaximumRetryCount": 0})
        self.restart_count = restart_count
        self.delay = 0.0
        self.cancelled = False

    def cancel(self) -> None:
        """The user stopped or killed the container: no more restarts."""
        self.cancelled = True

    def should_restart(self, exit_code: int, ran_for: float, manually_stopped: bool = False) -> Optional[float]:
        """After an exit with ``exit_code`` of a run that lasted ``ran_for`` seconds: the
        delay before restarting (seconds), or None to let the container stay exited.

        On a restart the count and the back-off advance (so call it once per exit)."""
        if is_none(self.policy) or self.cancelled or manually_stopped:
            return None
        name = self.policy["Name"]
        if name in ("always", "unless-stopped"):
            restart = True
        else:  # on-failure
            limit = int(self.policy.get("MaximumRetryCount") or 0)
            restart = exit_code != 0 and (limit == 0 or self.restart_count < limit)
        if not restart:
            return None
        self.delay = next_delay(self.delay, ran_for)
        self.restart_count += 1
        return self.delay


def next_delay(previous: float, ran_for: float) -> float:
    """Docker's back-off: 100 ms, doubling up to 1 min; reset after a run of at least 10 s."""
    if ran_for >= RESET_AFTER:
        previous = 0.0
    delay = INITIAL_DELAY if previous <= 0 else previous * 2
    return min(delay, MAX_DELAY)


__all__ = ["InvalidPolicy", "RestartManager", "is_none", "next_delay", "parse_policy"]
