"""The counter store protocol: sliding-window rate limits and budget reservations.

This is the only state the hot path touches per request, so the methods are async and
each is one round trip (one Lua script on Redis, one dict operation in memory). A governed
call uses two: :meth:`CounterStore.admit` (every window and every budget hold) when it is
admitted, :meth:`CounterStore.release` (token correction and every budget settle) when it
ends. The per-part methods (``acquire``, ``add``, ``reserve``, ``settle``) do the same
things one part at a time, with the same rules.

**Sliding windows.** A window of ``window_s`` seconds is kept as ``window_s / bucket_s``
buckets. :meth:`CounterStore.acquire` admits an amount only if, for *every* window, the sum
of the buckets still inside ``(now - window_s, now]`` plus the amount is ``<= limit``; then
it adds the amount to the current bucket of every window, atomically. If any window would
be exceeded nothing is added, and the answer says which window and in how many seconds
enough old buckets leave it for the amount to pass. The windows of one call have distinct
keys, and a key always has the same ``window_s`` and ``bucket_s``.

**Negative amounts.** :meth:`CounterStore.add` takes negative amounts to settle a token
estimate down to the tokens actually used. A debit is taken from the bucket the estimate was
counted in (the ``at`` that :meth:`CounterStore.acquire` returned), never from other
buckets, and never below zero: if that bucket has already left the window, the estimate has
stopped counting and the debit is dropped. Taking it from newer buckets instead would free
room that other requests are using, so the window would admit more than its limit.
Positive amounts always go to the current bucket. Without ``at`` a debit is taken from the
current bucket (clamped the same way), which is exact only when the call settles within the
bucket it started in.

**Budgets.** A budget is ``spent`` plus ``reserved`` micro-USD (integers) under one key.
:meth:`CounterStore.reserve` admits ``amount`` iff ``spent + reserved + amount <= limit``
(the one comparison; equality passes) and then adds it to ``reserved``; :meth:`settle`
moves a reservation to ``spent`` at its actual amount.

**One trip.** :meth:`CounterStore.admit` checks the windows exactly as ``acquire`` does,
then each :class:`Hold` in order with the budget comparison, and adds everything or
nothing: a refused window or a refused enforced hold leaves every counter as it was. A hold
with ``enforce=False`` (audit mode) never refuses; if it does not fit it reserves 0 and its
state says ``ok=False``. The holds of one call have distinct keys.
:meth:`CounterStore.release` is ``add`` followed by one ``settle`` per :class:`Settle`,
atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Acquired",
    "Admitted",
    "BudgetState",
    "CounterStore",
    "Hold",
    "Settle",
    "Window",
]


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
    refusing window in the request and the seconds until the amount would pass there.
    ``at`` is the store clock (Unix seconds) the amounts were counted at: pass it back to
    :meth:`CounterStore.add` when settling them."""

    ok: bool
    refused: int = -1
    retry_after_s: float = 0.0
    at: float = 0.0


@dataclass(slots=True, frozen=True)
class BudgetState:
    """A budget's counters in micro-USD after an operation; ``ok`` says if it was admitted."""

    ok: bool
    spent: int
    reserved: int


@dataclass(slots=True, frozen=True)
class Hold:
    """A budget reservation asked of :meth:`CounterStore.admit`: ``amount`` micro-USD under
    budget ``key`` if ``spent + reserved + amount <= limit``; ``ttl_s`` as in
    :meth:`CounterStore.reserve`. ``enforce=False`` (audit mode): never refuse the call."""

    key: str
    limit: int
    amount: int
    ttl_s: int
    enforce: bool = True


@dataclass(slots=True, frozen=True)
class Settle:
    """A reservation to settle in :meth:`CounterStore.release`: release up to ``reserved``
    under budget ``key`` and add ``actual`` to its ``spent`` (micro-USD, both ``>= 0``)."""

    key: str
    reserved: int
    actual: int
    ttl_s: int


@dataclass(slots=True, frozen=True)
class Admitted:
    """The answer of :meth:`CounterStore.admit`.

    ``ok``: the call is admitted (every window's amount and every fitting hold counted).
    Otherwise either ``refused_window`` is the index of the first refusing window and
    ``retry_after_s`` as in :class:`Acquired` (``holds`` is then empty: no hold was looked
    at), or ``refused_hold`` is the index of the first enforced hold without room.
    ``holds[i]`` is hold i's state after the operation: ``ok`` if it fit (and, when the call
    is admitted, ``reserved`` includes its amount); ``ok=False`` with the counters it was
    refused on for the refused hold, and for an audit hold that did not fit (it reserved 0,
    the call is still admitted). After a refused hold, ``holds`` ends with it (later holds
    were not looked at). ``at`` is the store clock the amounts were counted at, as
    :attr:`Acquired.at`: pass it to :meth:`CounterStore.release`."""

    ok: bool
    refused_window: int = -1
    retry_after_s: float = 0.0
    refused_hold: int = -1
    holds: tuple[BudgetState, ...] = ()
    at: float = 0.0


class CounterStore(Protocol):
    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        """Atomically check every window and, if all pass, add ``amounts[i]`` to window i."""
        ...

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        """Add (possibly negative) amounts without checking: settles a token estimate to the
        tokens actually used. ``at`` is :attr:`Acquired.at` of the call being settled; it
        says which bucket a negative amount is taken from (see the module docstring)."""
        ...

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        """Reserve ``amount`` micro-USD under budget ``key`` if it fits ``limit``. ``ttl_s``
        bounds how long the counters live (the period plus a margin)."""
        ...

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        """Release a reservation of ``reserved`` and add ``actual`` to ``spent``."""
        ...

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        """Atomically check every window (as :meth:`acquire`), then every hold in order;
        if all pass (audit holds always do), add ``amounts[i]`` to window i and each fitting
        hold's amount to its ``reserved``; else add nothing anywhere. Raises ValueError for
        a negative amount, mismatched lengths or two holds on one key."""
        ...

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        """Atomically :meth:`add` ``amounts`` (``at`` as there) and :meth:`settle` every
        ``settles[i]``. Raises ValueError for a negative ``reserved`` or ``actual``."""
        ...

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        """Set ``spent`` for a budget key that does not exist yet (from the usage store after a
        restart or in a new period); False if it existed already (left unchanged)."""
        ...

    async def ping(self) -> None:
        """Check the store answers (a no-op in process); raises as the other calls do when
        it does not (``ConnectionError``, ``TimeoutError``). For ``GET /ready``."""
        ...

    async def aclose(self) -> None: ...
