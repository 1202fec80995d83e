"""The HTTP server: serves the app on its port until a shutdown signal, then drains.

``llmrelay serve`` runs :func:`serve` through :func:`llmrelay.process.run`. From ``server:``
in the config (:class:`~llmrelay.config.ServerConfig`):

* **backlog**: the listen socket's queue is ``backlog`` long (aiohttp's default, 128,
  overflows in a burst of connections; the kernel then drops SYNs and clients retry after
  1 s, 3 s, 7 s...).
* **keep-alive**: an idle connection between two requests is closed after
  ``keepalive_timeout_s``.
* **TLS** on the listener (``server.tls``, :func:`listener_tls`).
* the header timeout, the connection limit and malformed requests:
  :mod:`llmrelay.connections`.
* **shutdown** (SIGTERM or SIGINT, see :func:`serve` and ``docs/operations.md``): ``/ready``
  answers 503 at once; the listener keeps accepting for ``shutdown_grace_s``, then closes;
  calls in flight get ``drain_timeout_s`` to finish (answers from then on say
  ``connection: close``, idle kept-alive connections are closed); streams still open then
  end with the client's in-stream ``overloaded_error`` (:mod:`llmrelay.drain`); the usage
  queue is flushed. A second signal skips what is left of the grace period and the drain,
  never the flush.

Running it as a process (the event loop, OS limits, a bounded exit): :mod:`llmrelay.process`.
The request *body* is bounded where it is read: ``pipeline/body.py`` ``read_body``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from .config import ServerConfig, TLSConfig
from .connections import GatewayRunner, GatewayServer
from .drain import DRAIN, Drain
from .workers import Listen

__all__ = ["END_GRACE_S", "SHUTDOWN_SIGNALS", "GatewayServer", "serve"]

log = logging.getLogger("llmrelay.server")


def listener_tls(tls: TLSConfig) -> ssl.SSLContext:
    """The TLS context of the gateway's listener (``server.tls``): the certificate chain
    and key from PEM files, TLS 1.2 or later, Python's default server ciphers.

    Raises:
        ssl.SSLError, OSError: the files cannot be read or do not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


#: The signals that shut the gateway down (:func:`serve`): the first drains, the second cuts
#: the drain short. Signal handlers are registered in :func:`serve` only.
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Seconds, after the drain was cut (``drain_timeout_s`` ran out, or a second signal), that
#: cut streams have to send their error event and calls still running have to end, before
#: what is left is cancelled (a client that stopped reading, a call still waiting on its
#: provider: its usage row is then a 499).
END_GRACE_S = 5.0

# Seconds aiohttp's own shutdown then waits for a cancelled handler (twice at most).
_CANCEL_WAIT_S = 1.0


class _Signals:
    """The shutdown signals received: the first starts the drain, the second cuts it
    (``drain.cut``); later ones are only logged. The usage queue is flushed in every case."""

    def __init__(self, drain: Drain) -> None:
        self.drain = drain
        self.count = 0
        self.first = asyncio.Event()
        self.second = asyncio.Event()

    def received(self, signum: int) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            self.drain.begin()
            self.first.set()
        elif self.count == 2:
            log.warning(
                "second shutdown signal: ending open calls now; queued usage rows are"
                " still written",
                extra={"signal": name},
            )
            self.drain.cut("a second shutdown signal")
            self.second.set()
        else:
            log.warning("shutdown already under way (SIGKILL ends the process at once)")


async def _first(timeout_s: float, *events: asyncio.Event) -> bool:
    """Wait until one of ``events`` is set, at most ``timeout_s``; True if one was."""
    if any(e.is_set() for e in events):
        return True
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return bool(done)


async def _drain(
    runner: web.AppRunner,
    site: web.BaseSite,
    drain: Drain,
    config: ServerConfig,
    signals: _Signals,
) -> None:
    """The shutdown after the first signal (``/ready`` already answers 503): grace period,
    listener closed, calls in flight finish or are cut; returns when no connection is left
    or :data:`END_GRACE_S` after the cut."""
    grace, drain_s = config.shutdown_grace_s, config.drain_timeout_s
    log.info(
        "shutting down: /ready answers 503, draining",
        extra={"shutdown_grace_s": grace, "drain_timeout_s": drain_s},
    )
    await _first(grace, signals.second)
    server = runner.server
    assert isinstance(server, GatewayServer)
    await site.stop()  # new connections are refused from now on
    server.close_connections()
    if not await _first(drain_s, server.idle, signals.second):
        drain.cut(f"calls still open when server.drain_timeout_s ({drain_s:g}s) ran out")
    if not server.idle.is_set():
        await _first(END_GRACE_S, server.idle)
    log.info(
        "drained",
        extra={"open_connections": server.open, "streams_cut": drain.cut_reason is not None},
    )


async def serve(
    app: web.Application,
    config: ServerConfig,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    listen: Listen | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then drain and shut down.

    The app's startup runs before the socket is bound; ``on_listening`` runs once it is.
    On the first signal the app's :class:`~llmrelay.drain.Drain` (``app[DRAIN]``) begins
    (``/ready`` answers 503); the listener stays open ``config.shutdown_grace_s``, then
    closes; connections left get ``config.drain_timeout_s`` to finish their calls, after
    which open streams are cut (:data:`END_GRACE_S` to end, then cancelled). The app's
    cleanup (the usage queue's flush, bounded by ``usage.shutdown_timeout_s``) runs last,
    whatever happened. A second signal skips the rest of the grace period and the drain.
    ``listen`` (a worker of ``llmrelay serve --workers N``): bind with ``SO_REUSEPORT``, or
    serve a socket the supervisor bound.

    Raises:
        OSError: the address cannot be bound.
    """
    drain = app.get(DRAIN) or Drain()
    runner = GatewayRunner(
        app,
        config,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=_CANCEL_WAIT_S,
        keepalive_timeout=config.keepalive_timeout_s,
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    signals = _Signals(drain)
    try:
        tls = None if config.tls is None else listener_tls(config.tls)
        site: web.BaseSite
        if listen is not None and listen.sock is not None:
            site = web.SockSite(runner, listen.sock, backlog=config.backlog, ssl_context=tls)
        else:
            reuse_port = listen is not None and listen.reuse_port
            site = web.TCPSite(
                runner,
                host,
                port,
                backlog=config.backlog,
                ssl_context=tls,
                reuse_port=reuse_port or None,
            )
        await site.start()
        for sig in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(sig, signals.received, sig)
        on_listening()
        await signals.first.wait()
        await _drain(runner, site, drain, config, signals)
    finally:
        # Signals stay handled through the cleanup: a second one must not kill the process
        # before the usage queue is flushed.
        try:
            await runner.cleanup()
        finally:
            for sig in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(sig)
