"""A TCP forwarder to stand between a client and a server in fault tests.

``stop()`` closes the listening socket and every live connection, as a server that went
away would look to the client; ``start()`` listens again on the same port, so clients
configured with :attr:`TcpProxy.port` reconnect by themselves. Threads, not asyncio, so it
serves sync and async tests alike without sharing their event loop.

    with TcpProxy("127.0.0.1", 5432) as proxy:   # started
        url = with_host_port(url, "127.0.0.1", proxy.port)
        ...
        proxy.stop()   # the server is "down"
        proxy.start()  # and back
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``; ``port`` is chosen by the
    OS at the first :meth:`start` unless given, and kept across restarts."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._port = port
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has not been started")
        return self._port

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        """Listen (again) and forward new connections; a no-op if running."""
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))
        listener.listen(64)
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        """Close the listener and every live connection (both sides); a no-op if stopped."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        # shutdown() wakes the threads blocked in accept() and recv(); they close the pairs.
        for sock in [listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)
        listener.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            done = threading.Barrier(2)
            self._spawn(self._pump, client, upstream, done)
            self._spawn(self._pump, upstream, client, done)

    def _pump(self, src: socket.socket, dst: socket.socket, done: threading.Barrier) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        # Pass the close on: either side closing ends the pair, as a dropped connection does.
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # The second pump to finish closes both sockets: no thread is reading them any more.
        if done.wait() == 0:
            with self._lock:
                self._sockets.difference_update((src, dst))
            src.close()
            dst.close()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
