"""A least-recently-used map bounded by bytes, safe across threads: the reports' per-process
caches (the decoded bitmaps in launcher/reports/distinct.py, the key sums in
launcher/reports/personkeys.py) hold values whose sizes differ by orders of magnitude, so they
are bounded by what they hold rather than by a count."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SizedLRU(Generic[K, V]):
    """Values by key; once their sizes (``size_of(key, value)``, in bytes) pass ``budget``, the
    least recently used go first. A value larger than the whole budget is not kept."""

    def __init__(self, budget: int, size_of: Callable[[K, V], int]) -> None:
        self.budget = budget
        self.size = 0
        self.hits = self.misses = 0
        self._size_of = size_of
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key: K, value: V) -> None:
        size = self._size_of(key, value)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= old[1]
            if size > self.budget:
                return
            self._entries[key] = (value, size)
            self.size += size
            while self.size > self.budget:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)
