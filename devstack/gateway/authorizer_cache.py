"""The REST authorizer's result cache, bounded: API Gateway caches an authorizer's answer per
identity-source values for the authorizer's TTL, and a flood of distinct identities (random
API keys) must not grow the gateway's memory without bound.

``AnswerCache`` keeps at most ``capacity`` answers, least recently used out first; an expired
answer is dropped when it is looked up. ``SingleFlight`` gives one lock per identity while
requests for it are in flight (so a client's first burst makes one authorizer call), and
forgets the lock when the last of them leaves: the locks are bounded by requests in flight.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

# Far above the identities a local stack sees in one TTL (each is an API key), far below what
# would hurt: an answer is a small policy document.
DEFAULT_CAPACITY = 10_000


class AnswerCache:
    """Answers by key, each for ``ttl_s`` seconds from when it was stored; thread-safe."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: Hashable, ttl_s: float) -> dict[str, Any] | None:
        """The answer stored for ``key`` less than ``ttl_s`` seconds ago, else None."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, answer = entry
            if now - stored_at >= ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return answer

    def put(self, key: Hashable, answer: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


class SingleFlight:
    """A lock per key, alive only while some caller holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
