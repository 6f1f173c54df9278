"""A small bounded, thread-safe LRU map: the one cache behind the classify caches."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``maxsize`` entries; reading or writing one makes it the most recent, and writing
    past ``maxsize`` drops the least recent. ``maxsize <= 0`` keeps nothing. Thread-safe.

    >>> lru: LRU[str, int] = LRU(2)
    >>> lru.put("a", 1); lru.put("b", 2); lru.get("a"); lru.put("c", 3)
    1
    >>> lru.get("b") is None, len(lru)
    (True, 2)
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value of ``key`` (now the most recent), or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """The values of those ``keys`` present (each now recent), under one lock."""
        found: dict[K, V] = {}
        with self._lock:
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    found[key] = self._items[key]
        return found

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` as the most recent entry, dropping the least recent past
        ``maxsize``."""
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[K, V]]) -> None:
        """:meth:`put` each ``(key, value)`` in order, under one lock."""
        if self.maxsize <= 0:
            return
        with self._lock:
            for key, value in items:
                self._items[key] = value
                self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def evict(self, matches: Callable[[K], bool]) -> None:
        """Drop every entry whose key ``matches``."""
        with self._lock:
            for key in [k for k in self._items if matches(k)]:
                del self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
