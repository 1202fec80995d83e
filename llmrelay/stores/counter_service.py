"""The supervisor's counter service: one :class:`MemoryCounterStore` for every worker.

``llmrelay serve --workers N`` without Redis runs this in the supervisor process on a Unix
socket (``<run_dir>/counters.sock``, in a directory only the gateway's user can enter);
each worker reaches it through :class:`~llmrelay.stores.socket_counters.SocketCounterStore`.
Every operation runs on the supervisor's one event loop without awaiting between reading and
writing a counter (as in one process), so a key's limits and budgets hold across workers
exactly as in one process. Frames: :mod:`llmrelay.stores.counter_wire`. The cost per call
against the alternatives measured is in docs/benchmarks.md ("Counters shared by workers").

A connection that sends a malformed or oversized frame is closed (one warning); a store
error is answered to the caller and the connection stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from .counter_wire import FrameError, dispatch, pack, read_frame
from .counters import CounterStore
from .memory_counters import MemoryCounterStore

__all__ = ["CLOSE_TIMEOUT_S", "CounterService"]

log = logging.getLogger("llmrelay.supervisor")

#: Seconds :meth:`CounterService.aclose` waits for its connections to end.
CLOSE_TIMEOUT_S = 1.0


class CounterService:
    """Serves ``store`` (a new :class:`MemoryCounterStore` by default) on ``path``."""

    def __init__(self, path: Path, store: CounterStore | None = None) -> None:
        self._path = path
        self._store: CounterStore = store if store is not None else MemoryCounterStore()
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        """Listen on the socket (replacing a stale file). Raises OSError."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self._path))
        os.chmod(self._path, 0o600)

    async def aclose(self) -> None:
        """Stop listening and drop the connections."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections.values()):
            writer.close()  # each handler then ends at its next read
        if self._connections:
            tasks = list(self._connections)
            _, late = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in late:  # pragma: no cover - a handler stuck in a write
                task.cancel()
        await self._store.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            while True:
                message = await read_frame(reader)
                writer.write(await self._answer(message))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away
        except FrameError as err:
            log.warning("counter service: bad frame, connection closed", extra={"error": str(err)})
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(self, message: list[object]) -> bytes:
        rid = message[0]
        op = str(message[1]) if len(message) > 1 else ""
        try:
            result = await dispatch(self._store, op, list(message[2:]))
        except ValueError as err:
            return pack([rid, None, "value", str(err)[:500]])
        except Exception as err:
            return pack([rid, None, "other", f"{type(err).__name__}: {err}"[:500]])
        return pack([rid, result])
