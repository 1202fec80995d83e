"""Deadlines for the calls in flight, kept on one event-loop timer.

Every call runs under its deadline (``timeouts.total_s``, moved to now for a stream when a
drain is cut) and almost no call reaches it. ``asyncio.timeout_at`` schedules an event-loop
timer on entry and cancels it on exit, ~6 µs of CPU a use on the 2-core benchmark VM
(``bench/deadline_micro.py``). :func:`deadline_at` keeps the deadline in the loop's heap
instead, ~1 µs: one timer per loop waits for the earliest deadline in force.

A :class:`Deadline` behaves as ``asyncio.timeout_at``'s ``Timeout`` does: used as a
context manager (``with`` or ``async with``) inside a task; when its time comes the task is
cancelled, and the ``CancelledError`` that leaves the block becomes ``TimeoutError``
(unless the task was also cancelled from elsewhere); a time already past on entry expires
at the loop's next turn; :meth:`Deadline.reschedule` moves it, :meth:`Deadline.expired`
says whether it fired. ``None`` means no deadline. Times are the event loop's
(``loop.time()``, seconds).

Exited deadlines leave the heap lazily: it is rebuilt once it holds twice the deadlines in
force plus :data:`SLACK` entries, so its size stays bounded by the calls in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from types import TracebackType
from typing import Self

__all__ = ["Deadline", "deadline_at"]

#: Entries the heap may hold beyond twice the deadlines in force before it is rebuilt.
SLACK = 256

# Deadline states.
_NEW, _ACTIVE, _EXPIRING, _EXPIRED, _EXITED = range(5)


class Deadline:
    """One block's deadline; see the module docstring. Made by :func:`deadline_at`."""

    __slots__ = ("_cancelling", "_counted", "_heap", "_state", "_task", "when")

    def __init__(self, when: float | None) -> None:
        #: The loop's heap, found when the deadline is first scheduled.
        self._heap: _LoopDeadlines | None = None
        self._state = _NEW
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        #: Whether the heap counts this deadline among those in force.
        self._counted = False
        #: When the deadline comes (event loop time), or None (never).
        self.when = when

    def expired(self) -> bool:
        """True once the deadline has come (the task was cancelled for it)."""
        return self._state in (_EXPIRING, _EXPIRED)

    def reschedule(self, when: float | None) -> None:
        """Move the deadline (None: none) while the block runs; a time already past expires
        it at the loop's next turn.

        Raises:
            RuntimeError: the block is not running, or the deadline has already come.
        """
        if self._state != _ACTIVE:
            raise RuntimeError("Deadline.reschedule(): the block is not running")
        self.when = when
        if when is not None:
            self._schedule(when)

    def __enter__(self) -> Self:
        if self._state != _NEW:
            raise RuntimeError("a Deadline is entered once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._state = _ACTIVE
        if self.when is not None:
            self._schedule(self.when)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        state = self._state
        self._task = None
        if state == _EXPIRING:
            self._state = _EXPIRED
            assert task is not None
            if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
            return
        self._state = _EXITED
        self._uncount()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _schedule(self, when: float) -> None:
        heap = self._heap
        if heap is None:
            assert self._task is not None
            heap = self._heap = _for_loop(self._task.get_loop())
        heap.add(self, when)

    def _fire(self, when: float) -> None:
        """The heap's or the loop's call: cancel the task if ``when`` is still the deadline."""
        if self._state == _ACTIVE and self.when == when:
            self._state = _EXPIRING
            assert self._task is not None
            self._task.cancel()
            self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            assert self._heap is not None
            self._heap.active -= 1


class _LoopDeadlines:
    """One event loop's deadlines in force, in a heap by time, and the loop's one timer
    for the earliest of them."""

    __slots__ = ("__weakref__", "_entries", "_loop", "_seq", "_timer", "_timer_at", "active")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        #: Deadlines entered, not exited and not fired (each counted once, whatever its
        #: reschedules).
        self.active = 0

    def add(self, deadline: Deadline, when: float) -> None:
        loop = self._loop
        if not deadline._counted:
            deadline._counted = True
            self.active += 1
        if when <= loop.time():
            loop.call_soon(deadline._fire, when)
            return
        entries = self._entries
        if len(entries) >= 2 * self.active + SLACK:
            self._compact()
        heapq.heappush(entries, (when, next(self._seq), deadline))
        if when < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = loop.call_at(when, self._tick)

    def _compact(self) -> None:
        live = [e for e in self._entries if e[2]._state == _ACTIVE and e[2].when == e[0]]
        heapq.heapify(live)
        self._entries = live

    def _tick(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        entries = self._entries
        # The loop's clock may step (uvloop's in milliseconds): a timer can run a hair
        # before its time; what is due within a millisecond fires now.
        due = self._loop.time() + 0.001
        while entries and entries[0][0] <= due:
            when, _, deadline = heapq.heappop(entries)
            deadline._fire(when)
        while entries and not _current(entries[0]):
            heapq.heappop(entries)
        if entries:
            self._timer_at = entries[0][0]
            self._timer = self._loop.call_at(self._timer_at, self._tick)


def _current(entry: tuple[float, int, Deadline]) -> bool:
    deadline = entry[2]
    return deadline._state == _ACTIVE and deadline.when == entry[0]


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDeadlines] = (
    weakref.WeakKeyDictionary()
)


# The last loop asked for and its heap: a gateway process runs one loop (tests run many).
_last: tuple[asyncio.AbstractEventLoop | None, _LoopDeadlines | None] = (None, None)


def _for_loop(loop: asyncio.AbstractEventLoop) -> _LoopDeadlines:
    global _last
    last_loop, heap = _last
    if loop is last_loop and heap is not None:
        return heap
    heap = _LOOPS.get(loop)
    if heap is None:
        heap = _LOOPS[loop] = _LoopDeadlines(loop)
    _last = (loop, heap)
    return heap


def deadline_at(when: float | None) -> Deadline:
    """A :class:`Deadline` at ``when`` (event loop time; None: none), to use as
    ``asyncio.timeout_at(when)`` is used."""
    return Deadline(when)
