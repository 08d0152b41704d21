"""Progress bars from events: drawn on a terminal, silent otherwise."""
from __future__ import annotations

import io

from nbcontainer.cli.progress import ProgressBars
from nbcontainer.events import Message, Progress


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_tty():
    stream = io.StringIO()
    with ProgressBars(stream) as bars:
        bars(Progress("import", "layer", "Extracting", 10, 100))
        bars(Message("import", "hello"))
    assert stream.getvalue() == ""


def test_verbose_prints_messages_without_bars():
    stream = io.StringIO()
    with ProgressBars(stream, verbose=True) as bars:
        bars(Message("bootstrap", "I: installing"))
        bars(Progress("bootstrap", "x", "Running", 1, 2))
    assert stream.getvalue() == "I: installing\n"


def test_bars_on_a_terminal():
    stream = TTY()
    with ProgressBars(stream) as bars:
        bars(Progress("import", "sha256:abcdef0123456789", "Extracting", 500, 1000))
        bars(Progress("import", "sha256:abcdef0123456789", "Extracting", 1000, 1000))
        bars(Progress("import", "other", "Done", 5, None))
        assert len(bars._bars) == 2
    text = stream.getvalue()
    assert "sha256:abcde: Extracting" in text  # id cut to 12 characters
    assert "1.00k" in text or "1.0k" in text or "1000" in text
    assert bars._bars == {}
