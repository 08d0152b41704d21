"""The one error tree of nbcontainer.

Every failure the library reports is an :class:`NbContainerError`. Front ends turn
any of them into one clear line (the CLI exits 125 like docker); the API lets them
propagate as typed exceptions.  Messages name the offending value.
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs a fresh supervisor's startup
if TYPE_CHECKING:
    from typing import Any, Optional, Sequence


class NbContainerError(Exception):
    """Root of every error nbcontainer raises on purpose."""

    #: Exit status the CLI uses for this error (docker uses 125 for its own errors).
    exit_code: int = 125

    def __str__(self) -> str:  # one line, always
        return " ".join(str(self.args[0]).split("\n")) if self.args else self.__class__.__name__


class InvalidArgument(NbContainerError, ValueError):
    """A flag, reference, spec or other input value is malformed.

    ``value`` is the offending value, ``what`` names the kind of input ("-e", "reference", ...).
    """

    def __init__(self, message: str, value: Any = None, what: Optional[str] = None):
        super().__init__(message)
        self.value = value
        self.what = what


class NotFound(NbContainerError, LookupError):
    """Something named by the user does not exist."""


class ImageNotFound(NotFound):
    """No image by that name, id or digest."""


class ContainerNotFound(NotFound):
    """No container by that name or id."""


class VolumeNotFound(NotFound):
    """No volume by that name."""


class Conflict(NbContainerError):
    """The request conflicts with current state (a name in use, a running container, ...)."""


class NotSupported(NbContainerError):
    """A feature or flag this build of nbcontainer does not offer (yet)."""


class StoreError(NbContainerError):
    """The on-disk store refused or failed an operation (digest mismatch, corruption, ...)."""


class DigestMismatch(StoreError):
    """Content did not hash to the digest (or size) it was expected to have."""

    def __init__(self, expected: str, actual: str, what: str = "content"):
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class LayerError(StoreError):
    """A layer tar is malformed or hostile (invalid whiteout, bad device numbers, ...)."""


class RuntimeFailure(NbContainerError):
    """The namespace runtime failed to create, start or manage a container."""


class ExecFailure(RuntimeFailure):
    """The container's command could not be executed.

    ``exit_code`` is 126 when the file exists but cannot be executed and 127 when it
    was not found, as docker reports them.
    """

    def __init__(self, message: str, exit_code: int = 127):
        super().__init__(message)
        self.exit_code = exit_code


class ContainerError(NbContainerError):
    """A container run in the foreground exited non-zero (docker-py's ContainerError)."""

    def __init__(self, container: Any, exit_status: int, command: Any, image: Any, stderr: Any):
        self.container = container
        self.exit_status = exit_status
        self.command = command
        self.image = image
        self.stderr = stderr
        tail = stderr.decode(errors="replace").strip().splitlines()[-5:] if isinstance(stderr, bytes) else stderr
        detail = f": {' | '.join(tail)}" if tail else ""
        where = f"image {image!r}" if image else f"container {getattr(container, 'name', container)!r}"  # exec: no image
        super().__init__(f"command {command!r} in {where} returned non-zero exit status {exit_status}{detail}")
        self.exit_code = exit_status


class BuildError(NbContainerError):
    """A Dockerfile build failed.  Carries where (stage, step, line) and why."""

    def __init__(self, message: str, *, stage: Optional[str] = None, step: Optional[int] = None,
                 line: Optional[int] = None, instruction: Optional[str] = None,
                 exit_code: Optional[int] = None, output: Sequence[str] = ()):
        super().__init__(message)
        self.stage = stage
        self.step = step
        self.line = line
        self.instruction = instruction
        self.build_exit_code = exit_code
        self.output = list(output)


class RegistryError(NbContainerError):
    """A registry answered with an error (status and the v2 error codes)."""

    def __init__(self, message: str, status: Optional[int] = None, codes: Sequence[str] = ()):
        super().__init__(message)
        self.status = status
        self.codes = list(codes)


class APIError(NbContainerError):
    """Generic API failure (docker-py compatibility name)."""
