"""``nbc unshare [COMMAND...]``: a shell (or COMMAND) in the rootless user namespace.

Like ``podman unshare``: inside, the user is root and the store's files show the owners
they have in the images (uid N of a layer, stored as a subordinate id on the host), so the
store can be inspected or cleaned up with ordinary tools.  ``NBCONTAINER_ROOT`` and
``NBCONTAINER_RUNROOT`` point at the store in the command's environment.  As root the
command just runs (there is nothing to map).
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, List

from ..errors import InvalidArgument


def unshare_command(argv: List[str]) -> List[str]:
    """The command to run: ``argv``, else the user's login shell, else /bin/sh."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    return list(argv) or [os.environ.get("SHELL") or "/bin/sh"]


def cmd_unshare(ctx: Any, ns: Any) -> int:
    from ..paths import StorePaths
    cmd = unshare_command(list(ns.command or ()))
    paths = StorePaths.from_env(ctx.root, ctx.runroot)
    env = dict(os.environ, NBCONTAINER_ROOT=str(paths.root), NBCONTAINER_RUNROOT=str(paths.runroot))
    for s in (ctx.stdout, ctx.stderr):
        try:
            s.flush()
        except (OSError, ValueError):
            pass
    if os.geteuid() == 0:
        try:
            return subprocess.run(cmd, env=env).returncode
        except FileNotFoundError:
            raise InvalidArgument(f"{cmd[0]}: executable file not found", cmd[0], "command") from None
    from .._linux import userns
    m = userns.current_mapping()
    userns.warn_once(m)
    # stdio stay the terminal's (a shell must be interactive); errors of the helper itself
    # (cannot create the namespace, command not found) come on stderr with exit code 125/1
    return userns.run(cmd, mapping=m, check=False, env=env, stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)


COMMANDS = {"unshare": cmd_unshare}
