"""Typed events published by long operations and lifecycle changes.

Operations take an optional ``progress`` callback (``Callable[[Event], None]``) and also
publish every event on the process-wide :data:`bus`, so widgets can subscribe without
being passed through every call.  Subscribers must be quick and must not raise; a
subscriber that raises is dropped from that one delivery and the error is ignored.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional


@dataclass
class Event:
    """Base of every event."""

    time: float = field(default_factory=time.time, init=False)


@dataclass
class Progress(Event):
    """Byte or item progress of one part (a layer, a file) of an operation."""

    operation: str  # "pull", "push", "import", "save", "load", "build", "extract", ...
    id: str  # short identifier of the part (layer digest prefix, file name)
    status: str  # "Downloading", "Extracting", "Pull complete", ...
    current: int = 0
    total: Optional[int] = None


@dataclass
class Message(Event):
    """A line of human-readable output of an operation (build step output, status)."""

    operation: str
    text: str
    stream: str = "stdout"
    stage: str = ""  # build: the stage the line comes from (stages may run side by side)


@dataclass
class BuildStep(Event):
    """A build step starts (``cached`` tells whether it came from the cache)."""

    step: int
    total: int
    instruction: str
    line: int = 0
    stage: str = ""
    cached: bool = False


@dataclass
class Lifecycle(Event):
    """An image or container changed: kind is "image" / "container" / "volume" / "network"."""

    kind: str
    action: str  # "create", "start", "die", "stop", "destroy", "tag", "untag", "delete", "pull", ...
    id: str
    name: str = ""
    attributes: dict = field(default_factory=dict)


Subscriber = Callable[[Event], None]


class EventBus:
    """A tiny thread-safe publish/subscribe hub."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: List[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Register ``fn``; returns a function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the operation
                pass


#: The process-wide bus.
bus = EventBus()


def emit(event: Event, progress: Optional[Subscriber] = None) -> None:
    """Deliver ``event`` to ``progress`` (if given) and to the process-wide bus."""
    if progress is not None:
        try:
            progress(event)
        except Exception:
            pass
    bus.publish(event)
