"""The ``# syntax=`` parser directive (and the ``BUILDKIT_SYNTAX`` build-arg that overrides it).

BuildKit runs the frontend image the directive names.  nbcontainer implements BuildKit's own
Dockerfile frontend (``docker/dockerfile:1``) in-process, so a directive naming that
frontend -- any ``1``, ``1.x``, ``1.x.y`` or ``1-labs`` style tag, with or without
``docker.io/`` and a digest -- is accepted quietly; any other frontend image (a custom
parser, ``dockerfile-upstream``, ``0.x`` releases) cannot be honoured and is refused with
an error naming it, rather than building something other than what the file asks for.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Union

from ..errors import BuildError

_OURS = re.compile(r"^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?docker/dockerfile"
                   r"(?::1(?:[.\-][A-Za-z0-9.\-]*)?)?(?:@sha256:[0-9a-f]{64})?$")
_DIRECTIVE = re.compile(r"^#\s*syntax\s*=\s*(.*?)\s*$", re.I)


def directive_line(dockerfile: Union[bytes, str]) -> int:
    """The 1-based line of the ``# syntax=`` directive (1 when it cannot be told)."""
    text = dockerfile.decode("utf-8", "replace") if isinstance(dockerfile, bytes) else dockerfile
    for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if _DIRECTIVE.match(line.strip()):
            return n
        if not line.strip().startswith("#"):
            break
    return 1


def check_syntax(directives: Dict[str, str], buildargs: Dict[str, str], dockerfile: Union[bytes, str],
                 filename: str = "Dockerfile") -> Optional[str]:
    """Accept the frontend the Dockerfile asks for, or raise BuildError naming it.

    Returns the frontend reference in force (None when none is named)."""
    from_arg = (buildargs or {}).get("BUILDKIT_SYNTAX") or ""
    ref = from_arg or (directives or {}).get("syntax") or ""
    ref = ref.strip()
    if not ref:
        return None
    if _OURS.match(ref):
        return ref
    if from_arg:
        raise BuildError(f"--build-arg BUILDKIT_SYNTAX={ref}: unsupported Dockerfile frontend {ref!r}: nbcontainer "
                         "builds the docker/dockerfile:1 syntax itself and cannot run other frontend images")
    line = directive_line(dockerfile)
    raise BuildError(f"{filename}:{line}: # syntax={ref}: unsupported Dockerfile frontend {ref!r}: nbcontainer builds "
                     "the docker/dockerfile:1 syntax itself and cannot run other frontend images (remove the "
                     "directive or use docker/dockerfile:1)", line=line, instruction=f"# syntax={ref}")
