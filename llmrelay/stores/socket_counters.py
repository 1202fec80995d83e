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
import contextlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .counter_wire import (
    FrameError,
    decode_result,
    holds_out,
    pack,
    read_frame,
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
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
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

    async def aclose(self) -> None:
        writer = self._writer
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._drop(CounterStoreUnavailable("counter store closed"))
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _call(self, op: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        rid = next(self._ids)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = (op, future)
        try:
            async with asyncio.timeout(self._timeout_s):
                writer = await self._connected()
                writer.write(pack([rid, op, *args]))
                return await future
        except TimeoutError:
            raise CounterStoreUnavailable(
                f"the supervisor's counter service did not answer within {self._timeout_s:g} s"
            ) from None
        except OSError as err:
            raise CounterStoreUnavailable(f"counter service unreachable: {err}") from None
        finally:
            self._pending.pop(rid, None)

    async def _connected(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                reader, self._writer = await asyncio.open_unix_connection(str(self._path))
                self._reader_task = asyncio.get_running_loop().create_task(
                    self._read(reader), name="counter-service-reader"
                )
            return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        error: Exception = CounterStoreUnavailable("the counter service closed the connection")
        try:
            while True:
                message = await read_frame(reader)
                entry = self._pending.get(int(message[0]))
                if entry is None or entry[1].done():
                    continue  # its caller gave up
                op, future = entry
                if len(message) > 2:
                    kind, text = message[2], str(message[3])
                    future.set_exception(
                        ValueError(text) if kind == "value" else CounterStoreUnavailable(text)
                    )
                else:
                    future.set_result(decode_result(op, message[1]))
        except (asyncio.IncompleteReadError, ConnectionError, FrameError, ValueError) as err:
            if not isinstance(err, asyncio.IncompleteReadError):
                error = CounterStoreUnavailable(f"counter service connection failed: {err}")
        finally:
            self._drop(error)

    def _drop(self, error: Exception) -> None:
        """The connection is gone: fail every waiting call with ``error``."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)
