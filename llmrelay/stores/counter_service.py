"""The supervisor's counter service: one :class:`MemoryCounterStore` for every worker.

``llmrelay serve --workers N`` without Redis runs this in the supervisor process on a Unix
socket (``<run_dir>/counters.sock``, in a directory only the gateway's user can enter);
each worker reaches it through :class:`~llmrelay.stores.socket_counters.SocketCounterStore`.
Every operation runs on the supervisor's one event loop without awaiting between reading and
writing a counter (as in one process), so a key's limits and budgets hold across workers
exactly as in one process. Frames: :mod:`llmrelay.stores.counter_wire`. The cost per call
against the alternatives measured is in docs/benchmarks.md ("Counters shared by workers").

A connection that sends a malformed or oversized frame is closed (one warning); a store
error is answered to the caller and the connection stays. A worker that stops reading its
answers stops being read from (the transport's flow control), so its backlog stays within
the socket buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

from .counter_wire import FrameBuffer, FrameError, dispatch, pack
from .counters import CounterStore
from .memory_counters import MemoryCounterStore

__all__ = ["CLOSE_TIMEOUT_S", "CounterService"]

log = logging.getLogger("llmrelay.supervisor")

#: Seconds :meth:`CounterService.aclose` waits for its connections to end.
CLOSE_TIMEOUT_S = 1.0


class CounterService:
    """Serves ``store`` (a new :class:`MemoryCounterStore` by default) on ``path``.

    ``store``'s methods must complete without suspending (as the in-memory store's do): each
    request is answered the moment its frame is read, inside the socket's read callback,
    so no other request can run between its reading and writing a counter. A store that
    suspends is refused with an ``other`` error."""

    def __init__(self, path: Path, store: CounterStore | None = None) -> None:
        self._path = path
        self._store: CounterStore = store if store is not None else MemoryCounterStore()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        """Listen on the socket (replacing a stale file). Raises OSError."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _Connection(self), path=str(self._path)
        )
        os.chmod(self._path, 0o600)

    async def aclose(self) -> None:
        """Stop listening and drop the connections."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._server.wait_closed()
        await self._store.aclose()

    def answer(self, message: list[Any]) -> bytes:
        """The answer frame to one request frame."""
        rid = message[0]
        op = str(message[1]) if len(message) > 1 else ""
        try:
            result = _run_now(dispatch(self._store, op, list(message[2:])))
        except ValueError as err:
            return pack([rid, None, "value", str(err)[:500]])
        except Exception as err:
            return pack([rid, None, "other", f"{type(err).__name__}: {err}"[:500]])
        return pack([rid, result])


def _run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that must not suspend; its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the counter store suspended; the service needs one that does not")


class _Connection(asyncio.Protocol):
    """One worker's connection: frames in, answers out, in the read callback."""

    def __init__(self, service: CounterService) -> None:
        self._service = service
        self._frames = FrameBuffer()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._service._connections.add(self)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        try:
            messages = self._frames.feed(data)
        except FrameError as err:
            log.warning("counter service: bad frame, connection closed", extra={"error": str(err)})
            transport.close()
            return
        if messages:
            transport.write(b"".join(self._service.answer(m) for m in messages))

    def pause_writing(self) -> None:
        # The worker is not reading its answers: stop reading its requests until it does.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._service._connections.discard(self)
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
