"""Typed Dockerfile instruction dataclasses (one per instruction, with 1-based line ranges).

Built by :func:`nbcontainer.dockerfile.instructions.parse_instructions`.  Values are
kept as written; ``expand(expander)`` returns a copy with ARG/ENV variables expanded
for the instructions BuildKit expands (``expander`` maps one word to its expansion).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Optional, Union

from .mounts import Mount, parse_mount
from .nodes import Heredoc
from .parser import DockerfileParseError

Expander = Callable[[str], str]


@dataclass(kw_only=True)
class Instruction:
    """Common part: keyword (lowercase), the source text and its 1-based line range."""

    keyword: str = ""
    original: str = ""
    start_line: int = 0
    end_line: int = 0

    def __str__(self) -> str:
        return self.original


@dataclass(kw_only=True)
class KeyValue:
    """One ENV/LABEL pair; ``no_delim`` for the legacy ``ENV key value`` form."""

    key: str
    value: str
    no_delim: bool = False


@dataclass(kw_only=True)
class ArgPair:
    """One ARG declaration; ``value`` is None when no default was given."""

    key: str
    value: Optional[str] = None


@dataclass(kw_only=True)
class SourceContent:
    """A COPY/ADD source written as a heredoc (``COPY <<EOF /dst``)."""

    path: str
    data: str
    expand: bool


@dataclass(kw_only=True)
class From(Instruction):
    image: str
    name: str = ""
    platform: str = ""


@dataclass(kw_only=True)
class Run(Instruction):
    """``cmd`` is the exec argv (json=True) or a one-element list with the shell text."""

    cmd: list[str]
    json: bool = False
    mount_specs: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"
    heredocs: list[Heredoc] = field(default_factory=list)
    flags_used: list[str] = field(default_factory=list)

    @property
    def prepend_shell(self) -> bool:
        return not self.json

    def expand(self, expander: Expander) -> "Run":
        """Evaluate the ``--mount`` options with variables expanded."""
        try:
            mounts = [parse_mount(s, expander) for s in self.mount_specs]
        except ValueError as e:
            raise DockerfileParseError(str(e), line=self.start_line, end_line=self.end_line,
                                       instruction=self.keyword.upper()) from None
        return replace(self, mounts=mounts)


@dataclass(kw_only=True)
class _CopyBase(Instruction):
    sources: list[str]
    dest: str
    contents: list[SourceContent] = field(default_factory=list)
    chown: str = ""
    chmod: str = ""
    link: bool = False
    exclude: list[str] = field(default_factory=list)

    def _expand_common(self, expander: Expander) -> dict:
        return dict(chown=expander(self.chown), chmod=expander(self.chmod),
                    sources=[expander(s) for s in self.sources], dest=expander(self.dest))

    def expand_raw(self, expander: Expander) -> "_CopyBase":
        """Expand heredoc bodies whose delimiter was unquoted (quotes kept as text)."""
        return replace(self, contents=[replace(c, data=expander(c.data)) if c.expand else c for c in self.contents])


@dataclass(kw_only=True)
class Copy(_CopyBase):
    from_: str = ""
    parents: bool = False

    def expand(self, expander: Expander) -> "Copy":
        return replace(self, **self._expand_common(expander))


@dataclass(kw_only=True)
class Add(_CopyBase):
    checksum: str = ""
    keep_git_dir: Optional[bool] = None
    unpack: Optional[bool] = None

    def expand(self, expander: Expander) -> "Add":
        return replace(self, checksum=expander(self.checksum), **self._expand_common(expander))


@dataclass(kw_only=True)
class Env(Instruction):
    pairs: list[KeyValue]

    def expand(self, expander: Expander) -> "Env":
        return replace(self, pairs=[replace(p, key=expander(p.key), value=expander(p.value)) for p in self.pairs])


@dataclass(kw_only=True)
class Label(Instruction):
    pairs: list[KeyValue]

    def expand(self, expander: Expander) -> "Label":
        return replace(self, pairs=[replace(p, key=expander(p.key), value=expander(p.value)) for p in self.pairs])


@dataclass(kw_only=True)
class Arg(Instruction):
    args: list[ArgPair]

    def expand(self, expander: Expander) -> "Arg":
        return replace(self, args=[ArgPair(key=expander(a.key), value=None if a.value is None else expander(a.value))
                                   for a in self.args])


@dataclass(kw_only=True)
class Expose(Instruction):
    """Ports as written (sorted like BuildKit); the builder expands and splits them."""

    ports: list[str]


@dataclass(kw_only=True)
class Workdir(Instruction):
    path: str

    def expand(self, expander: Expander) -> "Workdir":
        return replace(self, path=expander(self.path))


@dataclass(kw_only=True)
class User(Instruction):
    user: str

    def expand(self, expander: Expander) -> "User":
        return replace(self, user=expander(self.user))


@dataclass(kw_only=True)
class Volume(Instruction):
    volumes: list[str]

    def expand(self, expander: Expander) -> "Volume":
        return replace(self, volumes=[expander(v) for v in self.volumes])


@dataclass(kw_only=True)
class Cmd(Instruction):
    cmd: list[str]
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass(kw_only=True)
class Entrypoint(Instruction):
    """``cmd`` is None for ``ENTRYPOINT []`` (clears the entrypoint)."""

    cmd: Optional[list[str]]
    json: bool = False
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass(kw_only=True)
class StopSignal(Instruction):
    signal: str

    def expand(self, expander: Expander) -> "StopSignal":
        return replace(self, signal=expander(self.signal))


@dataclass(kw_only=True)
class Healthcheck(Instruction):
    """``test`` as in the image config (["NONE"], ["CMD", ...], ["CMD-SHELL", "..."]).

    Durations are nanoseconds (0 = inherit the default), as Docker stores them.
    """

    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(kw_only=True)
class Shell(Instruction):
    shell: list[str]


@dataclass(kw_only=True)
class Onbuild(Instruction):
    """``expression`` is the trigger's source (heredoc bodies appended), run by child builds."""

    expression: str
    trigger: str = ""


@dataclass(kw_only=True)
class Maintainer(Instruction):
    maintainer: str


Command = Union[Run, Copy, Add, Env, Label, Arg, Expose, Workdir, User, Volume, Cmd, Entrypoint, StopSignal,
                Healthcheck, Shell, Onbuild, Maintainer]


@dataclass
class Stage:
    """One build stage: its FROM and the commands up to the next FROM."""

    from_: From
    index: int
    commands: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.from_.name

    @property
    def image(self) -> str:
        return self.from_.image

    @property
    def platform(self) -> str:
        return self.from_.platform

    @property
    def start_line(self) -> int:
        return self.from_.start_line

    @property
    def end_line(self) -> int:
        return self.commands[-1].end_line if self.commands else self.from_.end_line


class Instructions(NamedTuple):
    """``parse_instructions`` result: stages in file order and ARGs before the first FROM."""

    stages: list[Stage]
    meta_args: list[Arg]

    def stage(self, ref: str) -> Optional[Stage]:
        """The stage named ``ref`` (case-insensitive) or at index ``ref`` ("0", "1"...), else None."""
        for st in self.stages:
            if st.name and st.name == ref.lower():
                return st
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None
