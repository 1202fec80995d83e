"""A TCP forwarder to put between a client and a real server, to cut the line in a test.

It runs its own event loop in a thread, so it works under sync tests, under
``asyncio.run`` and in front of other processes alike::

    proxy = TcpProxy("127.0.0.1", 6379)
    proxy.start()              # listens on 127.0.0.1:proxy.port
    ...
    proxy.stop()               # closes the listener and every live connection
    proxy.start()              # same port again
    proxy.close()              # stop and end the thread

A stopped proxy refuses new connections (connection refused), and clients with a
connection open see it reset or closed.

``proxy.blackhole()`` is the other way a server goes away: it keeps accepting connections
but forwards nothing, either way, on new connections and on those already open (a stalled
server, or a network that drops packets while the kernel still answers). Clients wait until
their own timeouts. ``proxy.start()`` ends it: the connections that lived through it are
reset (their state was lost) and new ones are forwarded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``host:port`` to ``target_host:target_port``. ``port=0`` picks a free port on
    the first :meth:`start` and keeps it for later starts."""

    def __init__(
        self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._blackhole = False

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def blackholed(self) -> bool:
        return self._blackhole

    def start(self) -> None:
        """Listen (again), or end a blackhole; returns once connections are forwarded."""
        self._call(self._start())

    def blackhole(self) -> None:
        """Accept connections but forward nothing on any connection until :meth:`start`."""
        self._call(self._start_blackhole())

    def stop(self) -> None:
        """Close the listener and every live connection; returns once they are closed."""
        self._call(self._stop())

    def close(self) -> None:
        """Stop and end the thread; the proxy cannot start again."""
        if self._loop.is_closed():
            return
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        if self._blackhole:
            self._blackhole = False
            self._abort_all()
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _start_blackhole(self) -> None:
        await self._start()
        self._blackhole = True

    def _abort_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        self._blackhole = False
        if server is not None:
            server.close()
        self._abort_all()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._blackhole:
            await self._swallow(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hold a connection made during a blackhole, reading and dropping what it sends."""
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self._blackhole:
                    continue  # dropped, as a stalled peer would
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
