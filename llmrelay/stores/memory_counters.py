"""In-process counters: the :class:`~llmrelay.stores.counters.CounterStore` for one instance.

Plain dicts on one event loop. No method awaits between reading and writing a counter, so
each call is atomic without a lock; every call costs O(buckets of its windows).

Memory stays bounded: a window's buckets that have left it are dropped when the window is
next touched, and at most once every ``sweep_interval_s`` a sweep drops whole windows and
budgets that nobody touched for longer than their lifetime (window length plus one bucket;
a budget's ``ttl_s``).

A key always names one window shape: the same ``window_s`` and ``bucket_s`` on every call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmrelay.stores.counters import Acquired, Admitted, BudgetState, Hold, Settle, Window

__all__ = ["MemoryCounterStore"]


@dataclass(slots=True)
class _Buckets:
    counts: dict[int, int] = field(default_factory=dict)  # bucket index -> amount
    expires_at: float = 0.0


@dataclass(slots=True)
class _Budget:
    spent: int = 0
    reserved: int = 0
    expires_at: float = 0.0


def check_windows(windows: Sequence[Window], amounts: Sequence[int]) -> None:
    """Raise ValueError for mismatched lengths or a window that is not whole buckets."""
    if len(windows) != len(amounts):
        raise ValueError(f"{len(windows)} windows but {len(amounts)} amounts")
    for w in windows:
        if w.bucket_s <= 0 or w.window_s <= 0 or w.window_s % w.bucket_s:
            raise ValueError(f"window {w.key!r}: window_s must be a multiple of bucket_s > 0")


def check_admit(windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]) -> None:
    """Raise ValueError for what :meth:`CounterStore.admit` refuses to take."""
    check_windows(windows, amounts)
    if any(a < 0 for a in amounts):
        raise ValueError("admit takes amounts >= 0; settle with release()")
    if any(h.amount < 0 for h in holds):
        raise ValueError("admit takes hold amounts >= 0")
    if len({h.key for h in holds}) != len(holds):
        raise ValueError("the holds of one call must have distinct keys")


def check_settles(settles: Sequence[Settle]) -> None:
    """Raise ValueError for a settle with a negative ``reserved`` or ``actual``."""
    if any(s.reserved < 0 or s.actual < 0 for s in settles):
        raise ValueError("settle takes reserved >= 0 and actual >= 0")


def retry_after(
    live: Sequence[tuple[int, int]], total: int, amount: int, w: Window, now: float
) -> float:
    """Seconds until ``amount`` fits window ``w`` that now holds ``total`` in ``live``
    ``(bucket index, count)`` pairs, oldest first; the window length if it never fits."""
    if amount > w.limit:
        return float(w.window_s)
    excess = total + amount - w.limit
    n = w.window_s // w.bucket_s
    removed = 0
    for idx, count in live:
        removed += count
        if removed >= excess:
            return (idx + n) * w.bucket_s - now
    return float(w.window_s)  # unreachable while buckets are never negative


class MemoryCounterStore:
    """Counters in this process. ``clock`` returns Unix seconds (tests drive it)."""

    def __init__(
        self, clock: Callable[[], float] = time.time, *, sweep_interval_s: float = 60.0
    ) -> None:
        self._clock = clock
        self._windows: dict[str, _Buckets] = {}
        self._budgets: dict[str, _Budget] = {}
        self._sweep_interval_s = sweep_interval_s
        self._next_sweep = 0.0

    def __len__(self) -> int:
        """Windows and budgets held (expired ones not yet swept included)."""
        return len(self._windows) + len(self._budgets)

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        """Admit all amounts or none. Raises ValueError for a negative amount."""
        check_windows(windows, amounts)
        if any(a < 0 for a in amounts):
            raise ValueError("acquire takes amounts >= 0; settle with add()")
        now = self._clock()
        self._maybe_sweep(now)
        refused = self._refusal(windows, amounts, now)
        if refused is not None:
            return Acquired(False, refused[0], refused[1], now)
        self._credit_all(windows, amounts, now)
        return Acquired(True, at=now)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        """Admit every window and hold or none (audit holds never refuse)."""
        check_admit(windows, amounts, holds)
        now = self._clock()
        self._maybe_sweep(now)
        refused = self._refusal(windows, amounts, now)
        if refused is not None:
            return Admitted(False, refused[0], refused[1], at=now)
        seen: list[BudgetState] = []  # before any write: what a refusal reports
        for j, h in enumerate(holds):
            b = self._budget(h.key, now)
            spent, reserved = (0, 0) if b is None else (b.spent, b.reserved)
            fits = spent + reserved + h.amount <= h.limit
            seen.append(BudgetState(fits, spent, reserved))
            if not fits and h.enforce:
                return Admitted(False, refused_hold=j, holds=tuple(seen), at=now)
        self._credit_all(windows, amounts, now)
        states: list[BudgetState] = []
        for h, state in zip(holds, seen, strict=True):
            if state.ok:
                b = self._hold(h.key, h.ttl_s, now)
                b.reserved += h.amount
                state = BudgetState(True, b.spent, b.reserved)
            states.append(state)
        return Admitted(True, holds=tuple(states), at=now)

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        """Count amounts unchecked; a negative one is taken from the bucket of ``at``."""
        check_windows(windows, amounts)
        self._add(windows, amounts, at, self._clock())

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        """:meth:`add` and every settle, with nothing in between."""
        check_windows(windows, amounts)
        check_settles(settles)
        now = self._clock()
        self._add(windows, amounts, at, now)
        for s in settles:
            self._settle(s.key, s.reserved, s.actual, s.ttl_s, now)

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        """Reserve ``amount`` micro-USD iff ``spent + reserved + amount <= limit``."""
        if amount < 0:
            raise ValueError("reserve takes an amount >= 0")
        now = self._clock()
        self._maybe_sweep(now)
        b = self._budget(key, now)
        spent, reserved = (0, 0) if b is None else (b.spent, b.reserved)
        if spent + reserved + amount > limit:
            return BudgetState(False, spent, reserved)
        b = self._hold(key, ttl_s, now)
        b.reserved += amount
        return BudgetState(True, b.spent, b.reserved)

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        """Release up to ``reserved`` (never below zero) and add ``actual`` to ``spent``."""
        if reserved < 0 or actual < 0:
            raise ValueError("settle takes reserved >= 0 and actual >= 0")
        self._settle(key, reserved, actual, ttl_s, self._clock())

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        now = self._clock()
        if self._budget(key, now) is not None:
            return False
        self._budgets[key] = _Budget(spent=spent, expires_at=now + ttl_s)
        return True

    async def ping(self) -> None:
        """In process: always answers."""

    async def aclose(self) -> None:
        self._windows.clear()
        self._budgets.clear()

    def _refusal(
        self, windows: Sequence[Window], amounts: Sequence[int], now: float
    ) -> tuple[int, float] | None:
        """The first window without room for its amount and the retry-after, or None."""
        for i, (w, amount) in enumerate(zip(windows, amounts, strict=True)):
            b = self._live(w, now)
            total = sum(b.counts.values())
            if total + amount > w.limit:
                live = sorted(b.counts.items())
                return i, retry_after(live, total, amount, w, now)
        return None

    def _credit_all(self, windows: Sequence[Window], amounts: Sequence[int], now: float) -> None:
        for w, amount in zip(windows, amounts, strict=True):
            if amount:
                self._credit(w, amount, now)

    def _add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None, now: float
    ) -> None:
        for w, amount in zip(windows, amounts, strict=True):
            if amount > 0:
                self._credit(w, amount, now)
            elif amount < 0:
                self._debit(w, -amount, now if at is None else min(at, now), now)

    def _settle(self, key: str, reserved: int, actual: int, ttl_s: int, now: float) -> None:
        b = self._budget(key, now)
        if b is None:
            if not actual:
                return
            b = self._hold(key, ttl_s, now)
        b.reserved -= min(reserved, b.reserved)
        b.spent += actual

    def _hold(self, key: str, ttl_s: int, now: float) -> _Budget:
        """The live budget under ``key``, created (expiring ``ttl_s`` from now) if absent."""
        b = self._budget(key, now)
        if b is None:
            b = self._budgets[key] = _Budget(expires_at=now + ttl_s)
        return b

    def _live(self, w: Window, now: float) -> _Buckets:
        """The window's buckets with those that left it dropped."""
        b = self._windows.get(w.key)
        if b is None:
            return _Buckets()
        oldest = math.floor(now / w.bucket_s) - w.window_s // w.bucket_s
        for idx in [i for i in b.counts if i <= oldest]:
            del b.counts[idx]
        return b

    def _credit(self, w: Window, amount: int, now: float) -> None:
        b = self._windows.get(w.key)
        if b is None:
            b = self._windows[w.key] = _Buckets()
        idx = math.floor(now / w.bucket_s)
        b.counts[idx] = b.counts.get(idx, 0) + amount
        b.expires_at = now + w.window_s + w.bucket_s

    def _debit(self, w: Window, amount: int, at: float, now: float) -> None:
        b = self._live(w, now)
        idx = math.floor(at / w.bucket_s)
        have = b.counts.get(idx, 0)
        if have <= amount:
            b.counts.pop(idx, None)
        else:
            b.counts[idx] = have - amount

    def _budget(self, key: str, now: float) -> _Budget | None:
        b = self._budgets.get(key)
        if b is not None and b.expires_at <= now:
            del self._budgets[key]
            return None
        return b

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval_s
        for key in [k for k, b in self._windows.items() if b.expires_at <= now]:
            del self._windows[key]
        for key in [k for k, g in self._budgets.items() if g.expires_at <= now]:
            del self._budgets[key]
