"""The state a stage carries from step to step, and the history entries steps write."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..dockerfile._text import go_quote
from .layers import Layer

COMMENT = "buildkit.dockerfile.v0"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]


def go_list(values: List[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_plain_list(values: List[str]) -> str:
    """Go's ``%v`` of a []string: ``[a b]``."""
    return "[" + " ".join(values) + "]"


@dataclass
class StageState:
    """Everything a step may read or change.  ``key`` is the cache key of the last step."""

    name: str
    index: int
    key: str
    config: Dict[str, Any] = field(default_factory=dict)  # the image config's "config" section
    top: Dict[str, Any] = field(default_factory=dict)  # architecture, os, variant, author
    layers: List[Layer] = field(default_factory=list)
    chain: Optional[str] = None
    history: List[Dict[str, Any]] = field(default_factory=list)
    args: Dict[str, Optional[str]] = field(default_factory=dict)  # declared ARGs in order (None: no value)
    last_created: str = ""  # time of the newest layer (metadata steps reuse it: stable ids)
    cmd_set: bool = False  # CMD given in this stage (ENTRYPOINT keeps it)

    def clone(self, name: str, index: int) -> "StageState":
        """A new stage built FROM this one (ARGs are inherited)."""
        st = copy.deepcopy(self)
        st.name, st.index, st.cmd_set = name, index, False
        return st

    @property
    def shell(self) -> List[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env_list(self) -> List[str]:
        return list(self.config.get("Env") or [])

    def env_dict(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for e in self.env_list():
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = self.env_list()
        for i, e in enumerate(env):
            if e.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env

    def expansion_env(self) -> Dict[str, str]:
        """What ``$VAR`` sees: ARGs in scope, overridden by ENV (ENV beats ARG)."""
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(self.env_dict())
        return out

    def add_history(self, created_by: str, created: str, empty: bool) -> None:
        entry: Dict[str, Any] = {"created": created, "created_by": created_by, "comment": COMMENT}
        if empty:
            entry["empty_layer"] = True
        self.history.append(entry)
