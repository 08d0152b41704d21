"""A full disk as one clear line: ``nbc: no space left on device (ENOSPC) on PATH: ...``.

A store on a full file system fails deep down (an ingest write, a layer extraction, SQLite's
WAL); whatever the operation wrapped that in, the CLI names the cause and the path so the
user knows what to free.  The operations themselves roll back (nothing half-made is kept).
"""
from __future__ import annotations

import errno
from typing import Optional

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def find_no_space(exc: BaseException) -> Optional[BaseException]:
    """The ENOSPC/EDQUOT OSError (or SQLite "database or disk is full") behind ``exc``, if any."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return e
        if type(e).__module__ == "sqlite3" and "full" in str(e):
            return e
        todo += [e.__cause__, e.__context__]  # type: ignore[list-item]
    return None


def no_space_line(exc: BaseException, root: object) -> Optional[str]:
    """The error line for ``exc`` when a full disk caused it (None otherwise); ``root`` is the
    store root, named when the failing call did not say which file it was writing."""
    found = find_no_space(exc)
    if found is None:
        return None
    path = getattr(found, "filename", None) or root
    what = "ENOSPC" if not isinstance(found, OSError) or found.errno == errno.ENOSPC else "EDQUOT, quota exceeded"
    line = f"nbc: no space left on device ({what}) on {path}"
    if exc is not found:
        msg = str(exc).strip()
        for said in (f": {found}", str(found), ": No space left on device", "No space left on device"):
            msg = msg.replace(said, "")  # the operation's context without repeating the cause
        msg = msg.strip(" :")
        if msg:
            line += f": {msg}"
    return line.replace("\n", " ")
