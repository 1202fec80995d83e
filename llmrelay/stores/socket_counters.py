"""Counters kept by the supervisor: the :class:`~llmrelay.stores.counters.CounterStore` of a
worker of ``llmrelay serve --workers N`` when no Redis is configured.

Each method is one round trip over one Unix-socket connection to the
:class:`~llmrelay.stores.counter_service.CounterService` (frames:
:mod:`llmrelay.stores.counter_wire`); many calls share the connection at once, each
answer matched to its request by id.

Failures: a call waits at most ``timeout_s`` (default ``CALL_TIMEOUT_S``) for its answer;
past it, or when the service cannot be reached or the connection drops, the call raises
:class:`~llmrelay.stores.failover_counters.CounterStoreUnavailable`, which the policy
answers with 503 and ``retry-after: 1`` (no call is admitted on counters other workers do
not see). The next call connects again. A ValueError the service's store raised is raised
here too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .counter_wire import (
    FrameBuffer,
    FrameError,
    decode_result,
    holds_out,
    pack,
    settles_out,
    windows_out,
)
from .counters import Acquired, Admitted, BudgetState, Hold, Settle, Window
from .failover_counters import CounterStoreUnavailable

__all__ = ["CALL_TIMEOUT_S", "SocketCounterStore"]

#: Seconds a call waits for the counter service's answer (connecting included).
CALL_TIMEOUT_S = 2.0


class SocketCounterStore:
    """The counter service at ``path``, seen as a :class:`CounterStore`."""

    def __init__(self, path: Path, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._path = path
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._transport: asyncio.Transport | None = None
        self._connecting = asyncio.Lock()

    async def acquire(self, windows: Sequence[Window], amounts: Sequence[int]) -> Acquired:
        result: Acquired = await self._call("acquire", windows_out(windows), list(amounts))
        return result

    async def add(
        self, windows: Sequence[Window], amounts: Sequence[int], at: float | None = None
    ) -> None:
        await self._call("add", windows_out(windows), list(amounts), at)

    async def reserve(self, key: str, limit: int, amount: int, ttl_s: int) -> BudgetState:
        result: BudgetState = await self._call("reserve", key, limit, amount, ttl_s)
        return result

    async def settle(self, key: str, reserved: int, actual: int, ttl_s: int) -> None:
        await self._call("settle", key, reserved, actual, ttl_s)

    async def admit(
        self, windows: Sequence[Window], amounts: Sequence[int], holds: Sequence[Hold]
    ) -> Admitted:
        result: Admitted = await self._call(
            "admit", windows_out(windows), list(amounts), holds_out(holds)
        )
        return result

    async def release(
        self,
        windows: Sequence[Window],
        amounts: Sequence[int],
        at: float | None,
        settles: Sequence[Settle],
    ) -> None:
        await self._call("release", windows_out(windows), list(amounts), at, settles_out(settles))

    async def seed(self, key: str, spent: int, ttl_s: int) -> bool:
        result: bool = await self._call("seed", key, spent, ttl_s)
        return result

    async def ping(self) -> None:
        """One round trip to the service. Raises ConnectionError when it does not answer
        (as the protocol's ``ping`` does)."""
        try:
            await self._call("ping")
        except CounterStoreUnavailable as err:
            raise ConnectionError(str(err)) from None

    async def aclose(self) -> None:
        transport = self._transport
        self._drop(CounterStoreUnavailable("counter store closed"))
        if transport is not None:
            await asyncio.sleep(0)  # let the transport finish closing

    async def _call(self, op: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        rid = next(self._ids)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = (op, future)
        try:
            async with asyncio.timeout(self._timeout_s):
                transport = self._transport
                if transport is None or transport.is_closing():
                    transport = await self._connect()
                transport.write(pack([rid, op, *args]))
                return await future
        except TimeoutError:
            raise CounterStoreUnavailable(
                f"the supervisor's counter service did not answer within {self._timeout_s:g} s"
            ) from None
        except OSError as err:
            raise CounterStoreUnavailable(f"counter service unreachable: {err}") from None
        finally:
            self._pending.pop(rid, None)

    async def _connect(self) -> asyncio.Transport:
        async with self._connecting:
            if self._transport is None or self._transport.is_closing():
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_unix_connection(
                    lambda: _Answers(self._answered, self._lost), str(self._path)
                )
                self._transport = transport
            return self._transport

    def _answered(self, message: list[Any]) -> None:
        entry = self._pending.get(int(message[0]))
        if entry is None or entry[1].done():
            return  # its caller gave up
        op, future = entry
        if len(message) > 2:
            kind, text = message[2], str(message[3])
            future.set_exception(
                ValueError(text) if kind == "value" else CounterStoreUnavailable(text)
            )
        else:
            future.set_result(decode_result(op, message[1]))

    def _lost(self, transport: asyncio.BaseTransport | None, error: Exception) -> None:
        if transport is not None and transport is self._transport:
            self._drop(error)  # (a connection dropped before has failed its calls already)

    def _drop(self, error: Exception) -> None:
        """The connection is gone: fail every waiting call with ``error``."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)


class _Answers(asyncio.Protocol):
    """The client's side of the connection: answer frames to :meth:`_answered`."""

    def __init__(
        self,
        answered: Callable[[list[Any]], None],
        lost: Callable[[asyncio.BaseTransport | None, Exception], None],
    ) -> None:
        self._answered = answered
        self._lost = lost
        self._frames = FrameBuffer()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._frames.feed(data)
            for message in messages:
                self._answered(message)
        except (FrameError, ValueError, TypeError, IndexError) as err:
            self._lost(
                self._transport,
                CounterStoreUnavailable(f"counter service connection failed: {err}"),
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(
            self._transport, CounterStoreUnavailable("the counter service closed the connection")
        )
