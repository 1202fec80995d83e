"""The counter store protocol: sliding-window rate limits and budget reservations.

This is the only state the hot path touches per request, so the methods are async and
each is one round trip (one Lua script on Redis, one dict operation in memory).

**Sliding windows.** A window of ``window_s`` seconds is kept as ``window_s / bucket_s``
buckets. :meth:`CounterStore.acquire` admits an amount only if, for *every* window, the sum
of the buckets still inside ``(now - window_s, now]`` plus the amount is ``<= limit``; then
it adds the amount to the current bucket of every window, atomically. If any window would
be exceeded nothing is added, and the answer says which window and in how many seconds
enough old buckets leave it for the amount to pass.

**Budgets.** A budget is ``spent`` plus ``reserved`` micro-USD (integers) under one key.
:meth:`CounterStore.reserve` admits ``amount`` iff ``spent + reserved + amount <= limit``
(the one comparison; equality passes) and then adds it to ``reserved``; :meth:`settle`
moves a reservation to ``spent`` at its actual amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Acquired", "BudgetState", "CounterStore", "Window"]


@dataclass(slots=True, frozen=True)
class Window:
    """One sliding window: ``key`` names the counter (e.g. ``rl:key:vk_1:rpm``), ``limit``
    is the most it may hold, ``window_s`` its length and ``bucket_s`` its resolution
    (seconds; ``window_s`` is a multiple of ``bucket_s``)."""

    key: str
    limit: int
    window_s: int
    bucket_s: int


@dataclass(slots=True, frozen=True)
class Acquired:
    """The answer of :meth:`CounterStore.acquire`: ``ok``; if not, the index of the first
    refusing window in the request and the seconds until the amount would pass there."""

    ok: bool
    refused: int = -1
    retry_after_s: float = 0.0


@dataclass(slots=True, frozen=True)
class BudgetState:
    """A budget's counters in micro-USD after an operation; ``ok`` says if it was admitted."""

    ok: bool
    spent: int
    reserved: int


class CounterStore(Protocol):
    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        """Atomically check every window and, if all pass, add ``amounts[i]`` to window i."""
        ...

    async def add(self, windows: Sequence[Window], amounts: Sequence[int]) -> None:
        """Add (possibly negative) amounts without checking: settles a token estimate to the
        tokens actually used."""
        ...

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        """Reserve ``amount`` micro-USD under budget ``key`` if it fits ``limit``. ``ttl_s``
        bounds how long the counters live (the period plus a margin)."""
        ...

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        """Release a reservation of ``reserved`` and add ``actual`` to ``spent``."""
        ...

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        """Set ``spent`` for a budget key that does not exist yet (from the usage store after a
        restart or in a new period); False if it existed already (left unchanged)."""
        ...

    async def aclose(self) -> None: ...
