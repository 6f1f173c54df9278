"""The bounded LRU map behind the classify caches."""

from __future__ import annotations

import threading

from labelwise.classify.lru import LRU


def test_keeps_the_most_recent_entries() -> None:
    # Given an LRU of two entries holding a and b, with a read after b was written
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    # When a third entry is written
    lru.put("c", 3)
    # Then the least recently used (b) is dropped
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (1, None, 3)
    assert len(lru) == 2


def test_batches_evict_and_clear() -> None:
    # Given an LRU of three entries filled in one batch past its size
    lru: LRU[tuple[str, int], str] = LRU(3)
    lru.put_many(((name, n), f"{name}{n}") for name in ("x", "y") for n in (1, 2))
    # Then the oldest entry went, and a batched read returns only the present keys
    assert lru.get_many([("x", 1), ("x", 2), ("z", 9)]) == {("x", 2): "x2"}
    assert len(lru) == 3
    # When the entries of y are evicted, Then only x's remains; clear empties it
    lru.evict(lambda key: key[0] == "y")
    assert len(lru) == 1
    lru.clear()
    assert len(lru) == 0


def test_size_zero_keeps_nothing() -> None:
    # Given an LRU of size 0
    lru: LRU[str, int] = LRU(0)
    # When an entry is written, Then nothing is kept
    lru.put("a", 1)
    assert lru.get("a") is None and len(lru) == 0


def test_concurrent_writers_keep_the_bound() -> None:
    # Given an LRU of 50 entries and 8 threads writing 500 keys each
    lru: LRU[int, int] = LRU(50)

    def write(base: int) -> None:
        for i in range(500):
            lru.put(base * 1000 + i, i)
            lru.get(base * 1000 + i // 2)

    threads = [threading.Thread(target=write, args=(b,)) for b in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the size bound holds
    assert len(lru) == 50
