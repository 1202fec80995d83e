"""What a budget has spent this period, as far as this process knows, read from the usage
store without ever holding a call for long.

:class:`RecordedSpend` serves :class:`~llmrelay.policy.budget.Budgets` when a budget's
counter must be seeded: its first call of a period in this process, or after the counter
store switched between Redis and in-process counters. Its rules:

- **One query per budget at a time** (single flight): concurrent calls that need the same
  budget's figure wait for the same query.
- **No call waits longer than** ``timeout_s`` (``governance.store_timeout_s``). A query a
  caller stopped waiting for goes on in its thread, and its answer is kept.
- **Bounded threads.** Queries run in daemon threads of their own, at most ``max_queries``
  at once, so a database that stalls (its connections open, nothing answered) holds at most
  that many threads, never one of the event loop's default executor (which the usage writer
  and the key cache use), and never keeps the process from exiting.
- **Down and back.** A query that fails, or that a caller stopped waiting for, marks the
  usage store down: one warning. While it is down a call does not wait for a query already
  in flight, and at most one new query (a probe) starts every ``probe_every_s``; a call
  whose budget has no query in flight and no probe due goes on at once. The first answer
  marks the store up again: one info line. Only a query that started after the one whose
  outcome set the state can change it (a query that callers stopped waiting for counts as
  failed), so a straggler that fails after the store came back, or answers after it was
  given up on, does not flip it again.
- **What is known** per budget key (micro-USD): the largest spend read from the usage store
  or seen in the counter store's answers (:meth:`observe`), plus what this process settled
  since (:meth:`add`). That is the figure a budget is seeded with when the usage store does
  not answer, so a budget never starts over from $0 because its database is away: it
  counts on from the last figure it knew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..stores.offload import in_daemon_thread
from ..stores.usage import UsageStore
from .pricing import to_micro_usd

__all__ = ["RecordedSpend"]

log = logging.getLogger("llmrelay.budget")


@dataclass(slots=True)
class _Query:
    task: asyncio.Task[int]
    #: The order in which its thread started (0 while it waits for a slot).
    seq: int = 0


@dataclass(slots=True)
class _Known:
    micro: int
    #: Unix seconds after which the figure's period is over and it can be forgotten.
    until: float


class RecordedSpend:
    """Budget spend per budget key (``bg:<scope>:<name>:<period>:<label>``), in micro-USD.

    ``usage`` None means nothing is recorded anywhere: every read answers 0 at once.
    ``monotonic`` paces the probes (seconds).
    """

    def __init__(
        self,
        usage: UsageStore | None,
        *,
        timeout_s: float,
        max_queries: int = 2,
        probe_every_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._usage = usage
        self._timeout_s = timeout_s
        self._max_queries = max_queries
        self._probe_every_s = probe_every_s
        self._monotonic = monotonic
        self._known: dict[str, _Known] = {}
        self._prune_at = 1024
        self._inflight: dict[str, _Query] = {}
        self._slots: asyncio.Semaphore | None = None
        self._down = False
        self._next_probe = 0.0
        self._started = 0  # query threads started
        self._state_seq = 0  # the query whose outcome set ``_down``
        #: Queries started (for tests and metrics).
        self.queries = 0

    @property
    def down(self) -> bool:
        """The last query failed or did not answer in time, and none has answered since."""
        return self._down

    def known(self, key: str) -> int | None:
        """The figure known for ``key`` (micro-USD); None when it was never read nor seen."""
        k = self._known.get(key)
        return None if k is None else k.micro

    def figures(self, now: float) -> list[tuple[str, int, float]]:
        """Every figure known for a period not over at ``now``: (key, micro-USD, until)."""
        return [(k, v.micro, v.until) for k, v in self._known.items() if v.until > now]

    def observe(self, key: str, spent: int, until: float) -> None:
        """Spend seen for ``key`` (read, or in a counter store's answer): the known figure
        becomes the larger of the two. ``until``: Unix seconds when it may be forgotten."""
        k = self._known.get(key)
        if k is None:
            self._known[key] = _Known(spent, until)
            if len(self._known) >= self._prune_at:
                self._prune()
        elif spent > k.micro:
            k.micro = spent

    def add(self, key: str, amount: int) -> None:
        """This process settled ``amount`` micro-USD of spend on ``key`` (ignored for a key
        nothing is known of: its figure will be read or seen)."""
        k = self._known.get(key)
        if k is not None and amount > 0:
            k.micro += amount

    async def read(
        self, key: str, scope: Literal["key", "team"], name: str, since: float, until: float
    ) -> bool:
        """Read the spend of ``scope`` ``name`` since ``since`` (Unix seconds) from the usage
        store into the known figure of ``key``; True if it answered within ``timeout_s``.
        Never raises: a failure is logged (once, until the store answers again)."""
        if self._usage is None:
            self.observe(key, 0, until)
            return True
        query = self._inflight.get(key)
        if query is None:
            if self._down and not self._probe_due():
                return False
            query = self._start(key, self._usage, scope, name, since, until)
        elif self._down:
            return False  # a query stuck on a store that is down: do not wait for it
        try:
            async with asyncio.timeout(self._timeout_s):
                await asyncio.shield(query.task)
        except Exception:
            if not query.task.done():
                # Not started: the queries ahead of it in the queue are the ones too slow.
                self._set_state(
                    False,
                    query.seq or self._started,
                    f"no answer within {self._timeout_s:g} s",
                )
            # else: the query failed and said so
            return False
        return True

    def _probe_due(self) -> bool:
        slots = self._semaphore()
        now = self._monotonic()
        if now < self._next_probe or slots.locked():
            return False
        self._next_probe = now + self._probe_every_s
        return True

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, inside the running loop.
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_queries)
        return self._slots

    def _start(
        self,
        key: str,
        usage: UsageStore,
        scope: Literal["key", "team"],
        name: str,
        since: float,
        until: float,
    ) -> _Query:
        async def run() -> int:
            async with self._semaphore():
                self._started += 1
                query.seq = seq = self._started
                try:
                    spent = await in_daemon_thread(
                        usage.spend, scope, name, since, name="llmrelay-spend"
                    )
                except Exception as err:
                    self._set_state(False, seq, f"{type(err).__name__}: {err}")
                    raise
            micro = to_micro_usd(spent)
            self.observe(key, micro, until)
            self._set_state(True, seq, "")
            return micro

        self.queries += 1
        query = _Query(asyncio.get_running_loop().create_task(run(), name=f"spend {key}"))
        self._inflight[key] = query

        def finished(t: asyncio.Task[int]) -> None:
            if self._inflight.get(key) is query:
                del self._inflight[key]
            if not t.cancelled():
                t.exception()  # seen: run() reported it

        query.task.add_done_callback(finished)
        return query

    def _set_state(self, up: bool, seq: int, reason: str) -> None:
        """The outcome of query ``seq``: it changes the state only if that query started
        after the one whose outcome set it."""
        if seq <= self._state_seq:
            return
        self._state_seq = seq
        if up and self._down:
            self._down = False
            log.info("usage store reachable again: budgets are seeded from recorded spend")
        elif not up and not self._down:
            self._down = True
            self._next_probe = self._monotonic() + self._probe_every_s
            log.warning(
                "usage store unreachable: budgets count on from the last spend this instance"
                " read or saw, plus what it settles since",
                extra={"error": reason},
            )

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, v in self._known.items() if v.until <= now]:
            del self._known[key]
        self._prune_at = max(1024, 2 * len(self._known))
