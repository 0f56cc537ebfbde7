"""A worker's copy of something small read from the database, used for a few seconds.

The grid asks on every page whether there is news (launcher/engage/announcements.py,
:class:`~launcher.engage.announcements.Current`) or a notice waiting
(launcher/app_requests.py, :class:`~launcher.app_requests.Pending`); the answer hardly ever
changes, so each worker keeps it for ``seconds`` and most pages read nothing. A change made
through this worker calls :meth:`Fresh.clear` and is seen at once; one made through another
worker is seen once the copy is ``seconds`` old.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Fresh(Generic[T]):
    """A value and the ``key`` it was read for (e.g. the day), used until ``seconds`` after
    its read began, or until :meth:`clear`. The value is never None (None means "read it")."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.reads = 0  # how often the value was read (tests)
        self._lock = threading.Lock()
        # (used until, the key it is for, the value); None: read it
        self._held: tuple[float, Hashable, T] | None = None
        self._cleared = 0  # clear() calls: a read begun before one is not kept

    def peek(self, key: Hashable = None) -> T | None:
        """The value when it is fresh and for ``key``, else None (nothing is read here)."""
        held = self._held
        if held is None or held[1] != key or self.clock() >= held[0]:
            return None
        return held[2]

    def get(self, read: Callable[[], T], key: Hashable = None) -> T:
        """The value, from ``read()`` when the copy is not fresh or is for another key."""
        value = self.peek(key)
        if value is not None:
            return value
        with self._lock:  # one thread reads; the others wait for its answer
            value = self.peek(key)
            if value is None:
                cleared = self._cleared
                until = self.clock() + self.seconds  # counted from before the read
                value = read()
                self.reads += 1
                if self._cleared == cleared:  # a change meanwhile: the next caller reads again
                    self._held = (until, key, value)
        return value

    def clear(self) -> None:
        """Forget the value: a change made through this worker is seen on the next call."""
        self._cleared += 1
        self._held = None
