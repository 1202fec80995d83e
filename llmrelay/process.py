"""The gateway process: :func:`serve` on an event loop, the OS limits it needs, a bounded exit.

* **open files**: the soft limit is raised toward what ``server.max_connections`` needs (a
  client connection, maybe an upstream one, and refused ones); a warning when the hard
  limit does not allow it.
* **listen backlog**: a warning when Linux caps ``server.backlog`` (``net.core.somaxconn``).
* **SIGHUP**: reloads the config file in this process (``reload.py``, docs/reload.md).
* **shutdown**: :func:`~llmrelay.server.serve` drains on SIGTERM/SIGINT (``/ready`` 503,
  ``server.shutdown_grace_s``, ``server.drain_timeout_s``; ``docs/operations.md``), in this
  process: each worker of several drains on its own signal. Once it has returned (the
  usage writer has stored or spilled its rows), :func:`run` waits at most
  ``EXECUTOR_SHUTDOWN_TIMEOUT_S`` for the threads of the loop's default executor (where
  store calls run). A thread stuck in a call that never returns (a PostgreSQL that accepts
  and acknowledges but never answers) would otherwise keep the process alive forever:
  ``asyncio.Runner.close()`` and concurrent.futures' exit hook both join it without limit.
  Past the bound one ERROR line is logged and the process exits with status 1 without
  waiting for it (``os._exit``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from aiohttp import web

from .config import ServerConfig
from .reload import RELOADER
from .server import serve
from .workers import Listen

__all__ = ["EXECUTOR_SHUTDOWN_TIMEOUT_S", "run"]

log = logging.getLogger("llmrelay.server")

#: Seconds :func:`run` waits, after :func:`serve` returned, for the default executor's threads
#: (store calls run there) before it gives up on them and exits the process with status 1.
EXECUTOR_SHUTDOWN_TIMEOUT_S = 10.0


def run(
    app: web.Application,
    config: ServerConfig,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    listen: Listen | None = None,
) -> None:
    """:func:`serve` on a new event loop (uvloop's where installed); returns after shutdown.
    ``listen``: how a worker of ``--workers N`` shares the port (see :func:`serve`).

    Raises:
        OSError: the address cannot be bound.
    """
    _raise_fd_limit(config.max_connections)
    _check_somaxconn(config.backlog)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_reloading(app, config, host, port, on_listening, listen))
        if not runner.run(_shutdown_default_executor(EXECUTOR_SHUTDOWN_TIMEOUT_S)):
            # serve() has returned: the usage writer stored or spilled its rows. What is
            # left is a thread that may never return; the runner's close() would join it
            # without limit, and so would concurrent.futures' exit hook.
            log.error(
                "a worker thread is stuck in a store call; the gateway exits without"
                " waiting for it",
                extra={"waited_s": EXECUTOR_SHUTDOWN_TIMEOUT_S},
            )
            logging.shutdown()
            os._exit(1)


async def _serve_reloading(
    app: web.Application,
    config: ServerConfig,
    host: str,
    port: int,
    on_listening: Callable[[], None],
    listen: Listen | None = None,
) -> None:
    """:func:`serve`, with SIGHUP reloading the config file (``reload.py``) in this process.
    Each process registers its own handler, so a supervisor reloads its workers by sending
    each one SIGHUP. Registered before start-up: a SIGHUP then is logged and ignored instead
    of ending the process (the signal's default action)."""
    reloader = app.get(RELOADER)
    loop = asyncio.get_running_loop()
    hup = getattr(signal, "SIGHUP", None)
    if reloader is None or hup is None:  # SIGHUP stays ignored (``entry.py``)
        await serve(app, config, host, port, on_listening, listen)
        return
    loop.add_signal_handler(hup, reloader.request, "sighup")
    try:
        await serve(app, config, host, port, on_listening, listen)
    finally:
        loop.remove_signal_handler(hup)  # restores the default action, which would end us
        signal.signal(hup, signal.SIG_IGN)


async def _shutdown_default_executor(timeout_s: float) -> bool:
    """Shut the loop's default executor down, waiting for its threads at most ``timeout_s``;
    False if some are still running then.

    ``loop.shutdown_default_executor()`` cannot simply be cancelled: on Python 3.11 (and in
    uvloop, without its ``timeout`` argument) its ``finally`` joins its helper thread without
    limit. Shielded, the wait is abandoned instead and the helper thread is left to the
    process's exit.
    """
    loop = asyncio.get_running_loop()
    shutdown = loop.create_task(loop.shutdown_default_executor())
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(shutdown)
    except TimeoutError:
        return False
    return True


def _raise_fd_limit(max_connections: int) -> None:
    """Raise the soft open-files limit toward what ``max_connections`` needs: a client
    connection, maybe an upstream one, and refused ones. A 1024 soft limit is common."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * max_connections + 256
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < max_connections + 256:
        log.warning(
            "open-files limit below server.max_connections",
            extra={"limit": target, "max_connections": max_connections},
        )


def _check_somaxconn(backlog: int) -> None:
    """Linux silently caps the listen backlog at ``net.core.somaxconn`` (128 before 5.4)."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            cap = int(f.read())
    except (OSError, ValueError):
        return
    if cap < backlog:
        log.warning(
            "listen backlog capped by the kernel (sysctl net.core.somaxconn)",
            extra={"backlog": backlog, "somaxconn": cap},
        )
