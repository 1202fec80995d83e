"""Session affinity: a session id -> the target that last served it, so a conversation's
calls keep hitting the same provider's prompt cache.

A bounded LRU with a time to live per entry; in memory, per process. Times are
``time.monotonic`` seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["SessionAffinity", "SessionKey"]

#: (virtual model name, session id)
SessionKey = tuple[str, str]


class SessionAffinity:
    def __init__(self, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_sessions
        self._clock = clock
        self._entries: OrderedDict[SessionKey, tuple[str, float]] = OrderedDict()

    def get(self, key: SessionKey) -> str | None:
        """The pinned target, or None (never pinned, or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry[0]

    def pin(self, key: SessionKey, target: str, ttl_s: float) -> None:
        """Pin ``key`` to ``target`` for ``ttl_s`` seconds from now (most recently used)."""
        self._entries[key] = (target, self._clock() + ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def drop(self, key: SessionKey) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
