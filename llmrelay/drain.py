"""The process's shutdown state, shared by the server (which drives it) and the stream writer
(which ends open streams when told to).

A gateway process goes through three states (``docs/operations.md``):

* **serving**: ``GET /ready`` answers 200 (when its stores allow, see ``app.py``).
* **draining** (:meth:`Drain.begin`, on the first SIGTERM or SIGINT): ``/ready`` answers 503;
  calls and streams go on as before.
* **cut** (:meth:`Drain.cut`, when ``server.drain_timeout_s`` runs out or on a second
  signal): every stream still open, and every stream that starts later, ends at once with
  :class:`GatewayRestarting` rendered as the client's in-stream error (Anthropic's
  ``event: error`` with ``overloaded_error``, OpenAI's error chunk then ``[DONE]``), and its
  usage row says so (``error_type`` ``overloaded_error``).

A stream is ended through its own deadline: the stream writer (``pipeline/relay.py``)
takes the :class:`~llmrelay.deadlines.Deadline` that bounds it from :meth:`Drain.deadline`,
and the cut moves that deadline to now. No task is cancelled from outside, so the writer
still sends the error event and closes the provider's response itself.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from aiohttp import web

from .deadlines import Deadline
from .errors import GatewayError

__all__ = ["DRAIN", "Drain", "GatewayRestarting", "StreamWatch"]


class GatewayRestarting(GatewayError):
    """A stream still open when the drain was cut: 529 ``overloaded_error``, so clients retry
    (the Anthropic SDK retries 529; OpenAI's maps the error chunk to an ``APIError``)."""

    status = 529


class StreamWatch(Deadline):
    """One open stream's deadline, registered with its :class:`Drain` while the block runs;
    ``cut`` is True once the drain moved it (the stream's ``TimeoutError`` then means
    "gateway restarting", not its own deadline)."""

    __slots__ = ("_drain", "cut")

    def __init__(self, drain: Drain, when: float | None) -> None:
        super().__init__(when)
        self._drain = drain
        self.cut = False

    def __enter__(self) -> Self:
        super().__enter__()
        drain = self._drain
        if drain.cut_reason is not None:
            _expire(self)
        drain._streams.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._drain._streams.discard(self)
        super().__exit__(exc_type, exc, tb)


class Drain:
    """Whether this process is draining, and the deadlines of its open streams.

    Not thread-safe: used on the event loop only.
    """

    def __init__(self) -> None:
        #: True from the first shutdown signal on: ``/ready`` answers 503.
        self.draining = False
        #: Why open streams were ended (None until :meth:`cut`); the usage rows' message.
        self.cut_reason: str | None = None
        self._streams: set[StreamWatch] = set()

    @property
    def open_streams(self) -> int:
        """Streams being written now."""
        return len(self._streams)

    def begin(self) -> None:
        """Start draining: ``/ready`` answers 503 from now on."""
        self.draining = True

    def cut(self, reason: str) -> None:
        """End every open stream now, and every stream that starts from now on, with
        :class:`GatewayRestarting` (its message is ``reason``). Idempotent: the first
        reason stays."""
        self.draining = True
        if self.cut_reason is None:
            self.cut_reason = reason
        for watch in self._streams:
            _expire(watch)

    def error(self) -> GatewayRestarting:
        """The error a cut stream ends with."""
        return GatewayRestarting(f"gateway restarting: {self.cut_reason or 'shutting down'}")

    def deadline(self, when: float | None) -> StreamWatch:
        """A stream's deadline at ``when`` (event loop time; None: none), as
        ``asyncio.timeout_at(when)`` (use it with ``with`` or ``async with``), registered
        while the block runs: a cut moves it to now, and after a cut it expires at once.
        Raises ``TimeoutError`` out of the block as ``timeout_at`` does."""
        return StreamWatch(self, when)


def _expire(watch: StreamWatch) -> None:
    if watch.expired():
        return
    watch.cut = True
    watch.reschedule(asyncio.get_running_loop().time())


#: The app's :class:`Drain` (``app.py`` sets it; :func:`llmrelay.server.serve` drives it).
DRAIN = web.AppKey("drain", Drain)
