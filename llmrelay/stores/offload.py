"""Running a blocking store call off the event loop in a daemon thread of its own.

``asyncio.to_thread`` uses the loop's default executor, a handful of threads that the usage
writer, the key cache and the admin API share, and that the interpreter joins at exit. A
database that stalls (connections open, nothing answered: a hung server, a network that
drops packets while a middlebox still acknowledges them) holds a thread for as long as the
connection lives, so a few stalled calls would starve every other user of the executor and
keep the process from exiting. Calls that may meet a stalled database on the way of a
request, or of an admin write, run here instead; their callers bound the wait
(``asyncio.timeout``) and their number (single flight, or the connection pool's size and
``timeout``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["in_daemon_thread"]

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: object, name: str = "llmrelay-db") -> T:
    """``fn(*args)`` in a new daemon thread called ``name``; its result or exception.
    Cancelling the caller does not stop the thread: its outcome is then dropped."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def succeed(result: T) -> None:
        if not future.done():
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            try:
                result = fn(*args)
            except BaseException as err:
                loop.call_soon_threadsafe(fail, err)
            else:
                loop.call_soon_threadsafe(succeed, result)
        except RuntimeError:
            pass  # the loop closed while the call ran: nobody is waiting

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
