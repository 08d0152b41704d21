"""Small plumbing for the magics: the cell's streams, short tracebacks, async interrupts.

- :class:`CellStream` writes to the cell's ``sys.stdout``/``sys.stderr`` as they were when the
  magic started, and deliberately has no ``fileno()``/``buffer``: ipykernel's ``fileno()`` is
  the kernel's original terminal, so a process handed that descriptor would print outside
  the notebook.  Without one, the CLI handlers capture and relay output into the cell.
- :func:`short_traceback` makes IPython show a library error as one line (the error is
  still raised, so nbclient and nbval see a failed cell).
- :func:`async_raise` raises an exception in another thread (used to end the kernel's
  ``input()`` prompt when an interactive container exits).
"""
from __future__ import annotations

import ctypes
import io
import sys
from typing import Any, List, Optional, Sequence


class CellStream(io.TextIOBase):
    """A text stream forwarding to ``target`` (default: the current sys.stdout)."""

    def __init__(self, target: Any = None, name: str = "stdout") -> None:
        super().__init__()
        self.target = target if target is not None else getattr(sys, name)
        self.name = name

    def write(self, s: str) -> int:  # type: ignore[override]
        self.target.write(s)
        return len(s)

    def flush(self) -> None:
        try:
            self.target.flush()
        except (AttributeError, ValueError):
            pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class NoStdin(io.RawIOBase):
    """Standard input of commands run from a magic: always at end of file."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return 0

    def read1(self, n: int = -1) -> bytes:
        return b""

    @property
    def buffer(self) -> "NoStdin":
        return self


def _red(text: str) -> str:
    return f"\x1b[0;31m{text}\x1b[0m"


def short_traceback(exc: BaseException, extra: Sequence[str] = ()) -> BaseException:
    """Give ``exc`` a one-line IPython rendering (``Name: message`` plus ``extra`` lines)."""
    lines: List[str] = [_red(f"{type(exc).__name__}") + f": {exc}"]
    lines.extend(extra)
    try:
        exc._render_traceback_ = lambda: list(lines)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # exceptions with __slots__: keep the normal traceback
        pass
    return exc


def async_raise(thread_id: Optional[int], exc_type: Optional[type]) -> bool:
    """Raise ``exc_type`` in thread ``thread_id`` at its next bytecode (None clears a pending one)."""
    if thread_id is None:
        return False
    obj = ctypes.py_object(exc_type) if exc_type is not None else ctypes.c_void_p(0)
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)
    return n == 1
