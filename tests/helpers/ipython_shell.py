"""The IPython shell the tests drive, created without its history-saving thread.

InteractiveShell keeps a background thread for its SQLite history; a thread left in the
pytest process makes it multi-threaded, and the runtime then (rightly) refuses to fork the
CLI's way for every later test.  An in-memory history has no thread.
"""
from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config


def shell_instance() -> InteractiveShell:
    """The process-wide InteractiveShell (the first call decides its configuration)."""
    if not InteractiveShell.initialized():
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        return InteractiveShell.instance(config=config)
    return InteractiveShell.instance()
