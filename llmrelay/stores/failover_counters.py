"""Shared counters with an in-process fallback: fail open (or closed) when Redis goes away.

:class:`FailoverCounterStore` sends every call to ``primary`` (Redis) while it answers. When
a call fails with an ``OSError`` (``ConnectionError``, ``TimeoutError``: what
:class:`~llmrelay.stores.redis_counters.RedisCounterStore` raises for an unreachable Redis),
it logs one warning and from then on serves from ``local`` (a
:class:`~llmrelay.stores.memory_counters.MemoryCounterStore`), or, with ``fail_closed``,
refuses admissions with :class:`CounterStoreUnavailable`. At most once every
``retry_after_s`` one call probes the primary; when a probe succeeds it logs one info line
and goes back to the primary. Other exceptions (bugs, bad arguments) propagate unchanged.

**What the fallback knows.** Local counters start empty, at every outage: what they held
from an earlier one is stale (the primary counted since), so each switch to ``local``
empties it (its ``aclose``; the in-process store stays usable after it). During an outage
each instance enforces rate limits and budgets on its own traffic only (so the fleet can
admit up to N times a limit), and a budget starts from whatever was seeded there:
``on_local(local)`` runs after the store is emptied and before the call that found the
primary down is served from it (the policy seeds every budget it knows with the last spend
it knew, see :mod:`llmrelay.policy.budget`; without that, that call would create its
budgets' counters at $0 and later seeds would find them existing). Nothing counted
locally is copied to the primary afterwards, with one exception: the spend of every call
settled while the primary was down, and the release of reservations the primary holds, are
kept per budget key (up to ``max_owed`` keys) and replayed to the primary after it
recovers, a few keys per call in one :meth:`release`, so a shared budget does not forget
money spent during the outage. Budget reservations made locally are not copied back.

**Settling across the switch.** The wrapper counts the reservations it made locally per
budget key (by :meth:`reserve`, and by each fitting hold of an :meth:`admit` the local
store admitted). :meth:`settle`, and :meth:`release` for each of its settles, releases a
reservation from the local store up to that count and the rest from the primary (in one
primary :meth:`release` for a call's budgets and token windows), so a reservation made on
one store is never released from the other while the first still holds it: neither store's
``reserved`` goes below zero or frees another call's reservation. (Reservations of one key
are interchangeable amounts, not handles; only their sums per store are exact.) Token
debits (a negative amount to :meth:`add` or :meth:`release`) are not tracked that way: a
call admitted on one store and settled on the other takes its debit from the other store's
bucket of the same ``at``, never below zero, so at most that call's over-estimate is freed
early, once, for calls that straddle a switch.
Settling, :meth:`release` and :meth:`add` never raise for a down primary, in either mode:
the call they account for has already happened. :meth:`admit` fails over like
:meth:`acquire` and :meth:`reserve`: to the local store, or CounterStoreUnavailable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from llmrelay.stores.counters import (
    Acquired,
    Admitted,
    BudgetState,
    CounterStore,
    Hold,
    Settle,
    Window,
)
from llmrelay.stores.memory_counters import check_settles, check_windows

__all__ = ["CounterStoreUnavailable", "FailoverCounterStore"]

log = logging.getLogger("llmrelay.stores")

T = TypeVar("T")

#: Owed budget keys replayed per call after the primary recovers.
_FLUSH_BATCH = 16


class CounterStoreUnavailable(Exception):
    """The shared counter store is unreachable and the policy is ``fail_closed``: the call
    must be refused (503), not admitted on local counters."""


@dataclass(slots=True)
class _Owed:
    release: int  # micro-USD reserved on the primary, to release there
    spent: int  # micro-USD spent while the primary was down, to add there
    ttl_s: int


class FailoverCounterStore:
    """A :class:`~llmrelay.stores.counters.CounterStore` over ``primary`` with ``local`` as
    the fallback. ``on_state(True|False)`` is called when calls move to the primary / the
    fallback (for a metric); ``on_local(local)`` is awaited when calls move to the emptied
    fallback, before it serves any (to seed it); ``monotonic`` paces the probes
    (seconds)."""

    def __init__(
        self,
        primary: CounterStore,
        local: CounterStore,
        *,
        fail_closed: bool = False,
        retry_after_s: float = 1.0,
        on_state: Callable[[bool], None] | None = None,
        on_local: Callable[[CounterStore], Awaitable[None]] | None = None,
        max_owed: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._local = local
        self._fail_closed = fail_closed
        self._retry_after_s = retry_after_s
        self._on_state = on_state
        self._on_local = on_local
        self._max_owed = max_owed
        self._monotonic = monotonic
        self._up = True
        self._epoch = 0  # bumped on every switch, so a stale failure cannot switch again
        self._next_probe = 0.0
        self._local_reserved: dict[str, int] = {}
        self._owed: dict[str, _Owed] = {}
        #: Budget keys whose outage spend could not be kept (``max_owed`` reached).
        self.owed_dropped = 0

    @property
    def using_primary(self) -> bool:
        return self._up

    async def ping(self) -> None:
        """Ping the primary: while it is up, a failure moves calls to the fallback (as any
        call's would); while it is down, this is a probe (at most one every
        ``retry_after_s``), and its success moves calls back. Never raises for a down
        primary: read :attr:`using_primary` after it."""
        await self._try_primary(self._primary.ping)

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        """As :meth:`CounterStore.acquire`; raises CounterStoreUnavailable when the primary
        is down and the policy is fail-closed."""
        result = await self._try_primary(lambda: self._primary.acquire(windows, amounts))
        if result is not None:
            return result
        self._refuse_if_closed()
        return await self._local.acquire(windows, amounts)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        """As :meth:`CounterStore.admit`; raises CounterStoreUnavailable when the primary
        is down and the policy is fail-closed."""
        result = await self._try_primary(lambda: self._primary.admit(windows, amounts, holds))
        if result is not None:
            return result
        self._refuse_if_closed()
        result = await self._local.admit(windows, amounts, holds)
        if result.ok:
            for hold, state in zip(holds, result.holds, strict=True):
                if state.ok and hold.amount:
                    self._local_reserved[hold.key] = (
                        self._local_reserved.get(hold.key, 0) + hold.amount
                    )
        return result

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        """As :meth:`add` and :meth:`settle` for every ``settles[i]``: reservations are
        released from the store that holds them, the rest goes to the primary in one call
        (to the local store, and owed to the primary, while it is down)."""
        check_windows(windows, amounts)
        check_settles(settles)
        to_local: list[Settle] = []
        to_primary: list[Settle] = []
        for s in settles:
            from_local = self._take_local(s.key, s.reserved)
            if from_local:
                to_local.append(Settle(s.key, from_local, 0, s.ttl_s))
            if s.reserved > from_local or s.actual:
                to_primary.append(Settle(s.key, s.reserved - from_local, s.actual, s.ttl_s))
        if to_local:
            await self._local.release((), (), None, to_local)
        if not to_primary and not any(amounts):
            return
        if await self._try_primary(
            lambda: self._ok(self._primary.release(windows, amounts, at, to_primary))
        ):
            return
        spent = [Settle(s.key, 0, s.actual, s.ttl_s) for s in to_primary if s.actual]
        await self._local.release(windows, amounts, at, spent)
        for s in to_primary:
            self._owe(s.key, s.reserved, s.actual, s.ttl_s)

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        if await self._try_primary(lambda: self._ok(self._primary.add(windows, amounts, at))):
            return
        await self._local.add(windows, amounts, at)

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        """As :meth:`CounterStore.reserve`; raises CounterStoreUnavailable when the primary
        is down and the policy is fail-closed."""
        result = await self._try_primary(lambda: self._primary.reserve(key, limit, amount, ttl_s))
        if result is not None:
            return result
        self._refuse_if_closed()
        state = await self._local.reserve(key, limit, amount, ttl_s)
        if state.ok and amount:
            self._local_reserved[key] = self._local_reserved.get(key, 0) + amount
        return state

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        """Release ``reserved`` from the store that holds it and add ``actual`` to the
        primary's ``spent`` (replayed later if the primary is down)."""
        if reserved < 0 or actual < 0:
            raise ValueError("settle takes reserved >= 0 and actual >= 0")
        from_local = self._take_local(key, reserved)
        if from_local:
            await self._local.settle(key, from_local, 0, ttl_s)
        from_primary = reserved - from_local
        if not from_primary and not actual:
            return
        if await self._try_primary(
            lambda: self._ok(self._primary.settle(key, from_primary, actual, ttl_s))
        ):
            return
        await self._local.settle(key, 0, actual, ttl_s)
        self._owe(key, from_primary, actual, ttl_s)

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        """As :meth:`CounterStore.seed`; raises CounterStoreUnavailable when the primary is
        down and the policy is fail-closed."""
        result = await self._try_primary(lambda: self._primary.seed(key, spent, ttl_s))
        if result is not None:
            return result
        self._refuse_if_closed()
        return await self._local.seed(key, spent, ttl_s)

    async def aclose(self) -> None:
        try:
            await self._primary.aclose()
        finally:
            await self._local.aclose()

    @staticmethod
    async def _ok(call: Awaitable[None]) -> bool:
        await call
        return True

    async def _try_primary(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The primary's answer, or None when it is down (or just went down)."""
        if not self._up:
            now = self._monotonic()
            if now < self._next_probe:
                return None
            self._next_probe = now + self._retry_after_s  # one probe at a time
        epoch = self._epoch
        try:
            result = await call()
        except OSError as e:
            if self._up and epoch == self._epoch:
                await self._went_down(e)
            return None
        if not self._up:
            self._switch(True, None)
        if self._owed:
            await self._flush_owed()
        return result

    def _switch(self, up: bool, error: OSError | None) -> None:
        self._up = up
        self._epoch += 1
        if up:
            log.info("counter store reachable again, using shared counters")
        else:
            self._next_probe = self._monotonic() + self._retry_after_s
            log.warning("counter store unreachable, using in-process counters: %s", error)
        if self._on_state is not None:
            self._on_state(up)

    async def _went_down(self, error: OSError) -> None:
        """Move calls to the local store, emptied (what it held from an earlier outage is
        stale) and prepared by ``on_local``."""
        self._switch(False, error)
        await self._local.aclose()
        if self._on_local is not None:
            try:
                await self._on_local(self._local)
            except Exception as err:
                log.warning(
                    "could not prepare the in-process counters: %s: %s", type(err).__name__, err
                )

    def _take_local(self, key: str, reserved: int) -> int:
        """How much of a ``reserved`` to release from the local store (what it holds for
        ``key``, at most), taken off the count of local reservations."""
        held = self._local_reserved.get(key, 0)
        from_local = min(reserved, held)
        if from_local:
            if held > from_local:
                self._local_reserved[key] = held - from_local
            else:
                del self._local_reserved[key]
        return from_local

    def _refuse_if_closed(self) -> None:
        if self._fail_closed:
            raise CounterStoreUnavailable("counter store unreachable (fail_closed)")

    def _owe(self, key: str, release: int, spent: int, ttl_s: int) -> None:
        owed = self._owed.get(key)
        if owed is not None:
            owed.release += release
            owed.spent += spent
            owed.ttl_s = ttl_s
        elif len(self._owed) < self._max_owed:
            self._owed[key] = _Owed(release, spent, ttl_s)
        else:
            self.owed_dropped += 1

    async def _flush_owed(self) -> None:
        """Replay a few owed budget keys to the primary in one call; on failure keep them."""
        batch = [self._owed.popitem() for _ in range(min(_FLUSH_BATCH, len(self._owed)))]
        settles = [Settle(key, o.release, o.spent, o.ttl_s) for key, o in batch]
        try:
            await self._primary.release((), (), None, settles)
        except OSError as e:
            for key, o in batch:
                self._owe(key, o.release, o.spent, o.ttl_s)
            if self._up:
                await self._went_down(e)
