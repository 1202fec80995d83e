"""``llmrelay serve --workers N``: N worker processes on one port under a supervisor.

The supervisor (this process) does no HTTP. It

* makes a private run directory (mode 0700) for the Unix sockets the workers share;
* without Redis, serves the rate-limit and budget counters to every worker
  (:class:`~llmrelay.stores.counter_service.CounterService`), so limits hold across
  workers exactly as in one process;
* starts each worker as ``python -m llmrelay serve ... --worker I/N`` (the ordinary
  per-process entry, :func:`llmrelay.process.run`). Where the platform has ``SO_REUSEPORT``
  each worker binds the port itself and the kernel spreads connections; elsewhere the
  supervisor binds it and passes the listening socket down;
* restarts a worker that dies, after ``RESTART_BACKOFF_S`` doubling per quick death up to
  ``MAX_RESTART_BACKOFF_S`` (reset once a worker has served ``STABLE_S``), with one log line
  each time;
* ignores SIGHUP from its first line (``entry.py``) until its forwarding handler is
  installed, and starts each worker with SIGHUP blocked (unblocked once the worker ignores
  it), so a SIGHUP during anyone's start ends nobody;
* forwards SIGTERM and SIGINT (as SIGTERM: each worker shuts down as one process does) and
  SIGHUP to every worker (workers run in their own session, so a terminal's signals reach
  them only through the supervisor, once each); a second SIGTERM/SIGINT is forwarded too
  (each worker then cuts its drain short, as one process does). It waits for the workers
  at most ``stop_timeout_s`` (the drain's whole length, from the config: see
  :func:`stop_timeout`), then kills what is left;
* exits with status 1 when a worker fails ``MAX_START_FAILURES`` times in a row before it
  listens (it exits, or is killed after ``START_TIMEOUT_S`` without listening: a bad port,
  a config the workers cannot start with), after stopping the others.

A worker notices its supervisor's death (its parent changes) within ``PARENT_POLL_S`` and
shuts down as on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .stores.counter_service import CounterService

__all__ = [
    "MAX_RESTART_BACKOFF_S",
    "MAX_START_FAILURES",
    "PARENT_POLL_S",
    "RESTART_BACKOFF_S",
    "STABLE_S",
    "START_TIMEOUT_S",
    "STOP_MARGIN_S",
    "supervise",
    "watch_parent",
]

log = logging.getLogger("llmrelay.supervisor")

#: Seconds before restarting a worker that died; doubles per quick death.
RESTART_BACKOFF_S = 0.1
#: The longest wait before restarting a worker, in seconds.
MAX_RESTART_BACKOFF_S = 10.0
#: Seconds a worker must have served for its next death to count as a first one.
STABLE_S = 10.0
#: Deaths in a row of one worker before it listened, after which the supervisor gives up.
MAX_START_FAILURES = 3
#: Seconds a worker has to start listening before the supervisor kills it (a start failure).
START_TIMEOUT_S = 60.0
#: Seconds the supervisor waits for its workers to stop before it kills them, past the
#: drain the config allows them (:func:`stop_timeout`).
STOP_MARGIN_S = 10.0
#: Seconds between a worker's checks that its supervisor is alive.
PARENT_POLL_S = 1.0


@dataclass(slots=True)
class _Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    quick_deaths: int = 0
    start_failures: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class _Supervisor:
    def __init__(
        self,
        count: int,
        argv: list[str],
        host: str,
        port: int,
        counters: bool,
        reuse_port: bool,
        stop_timeout_s: float,
    ) -> None:
        self._count = count
        self._argv = argv
        self._host = host
        self._port = port
        self._counters = counters
        self._reuse_port = reuse_port
        self._stop_timeout_s = stop_timeout_s
        self._stop = asyncio.Event()
        self._failed = False
        self._slots = [_Slot(i) for i in range(count)]
        self._run_dir = Path(tempfile.mkdtemp(prefix="llmrelay-"))
        self._sock: socket.socket | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        service: CounterService | None = None
        try:
            self._listen()
            if self._counters:
                service = CounterService(self._run_dir / "counters.sock")
                await service.start()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop_signal)
            loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
            log.warning(
                "supervising workers",
                extra={"workers": self._count, "pid": os.getpid(), "counters": self._mode()},
            )
            keepers = [loop.create_task(self._keep(slot)) for slot in self._slots]
            await self._stop.wait()
            await self._stop_workers()
            _, late = await asyncio.wait(keepers, timeout=STOP_MARGIN_S)
            if late:  # a worker started while stopping and did not stop in time
                self._forward(signal.SIGKILL)
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # not the default action: exit
            if service is not None:
                await service.aclose()
            if self._sock is not None:
                self._sock.close()
            shutil.rmtree(self._run_dir, ignore_errors=True)
        return 1 if self._failed else 0

    def _mode(self) -> str:
        return "supervisor (shared)" if self._counters else "redis"

    def _listen(self) -> None:
        """Check nobody listens on the port (OSError ``EADDRINUSE`` if someone does); without
        ``SO_REUSEPORT`` keep the socket to pass to the workers.

        The probe never sets ``SO_REUSEPORT``: with it, the bind would succeed beside another
        gateway's workers (which set it) and the two would split the traffic. Without it,
        any socket listening on the port refuses the bind (``SO_REUSEADDR`` only lets it pass
        connections in TIME_WAIT). The probe is closed before the workers start (a bound
        socket without ``SO_REUSEPORT`` would refuse theirs), so two supervisors started
        within the same second (between one's probe and its first worker's bind) can still
        both start: the remaining window, documented in docs/workers.md."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        if self._reuse_port:
            sock.close()  # a probe: each worker binds its own
            return
        sock.set_inheritable(True)
        self._sock = sock

    async def _keep(self, slot: _Slot) -> None:
        """Run worker ``slot.index`` until the supervisor stops, restarting it when it dies."""
        while not self._stop.is_set():
            slot.ready = asyncio.Event()
            started = time.monotonic()
            proc = slot.proc = await self._spawn(slot)
            if self._stop.is_set():  # stopping began while it was being started
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            await self._until_ready(slot, proc)
            code = await proc.wait()
            if self._stop.is_set():
                return
            if not slot.ready.is_set():
                slot.start_failures += 1
                log.error(
                    "worker exited before it was listening",
                    extra={
                        "worker": slot.index,
                        "exit_code": code,
                        "in_a_row": slot.start_failures,
                    },
                )
                if slot.start_failures >= MAX_START_FAILURES:
                    log.error(
                        "workers keep failing at start; stopping",
                        extra={"worker": slot.index, "failures": slot.start_failures},
                    )
                    self._failed = True
                    self._stop.set()
                    return
            else:
                slot.start_failures = 0
                served = time.monotonic() - started
                slot.quick_deaths = 0 if served >= STABLE_S else slot.quick_deaths + 1
                log.error(
                    "worker died; restarting it",
                    extra={"worker": slot.index, "exit_code": code, "served_s": round(served, 1)},
                )
            delay = min(
                MAX_RESTART_BACKOFF_S,
                RESTART_BACKOFF_S * 2 ** max(slot.quick_deaths, slot.start_failures),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _until_ready(self, slot: _Slot, proc: asyncio.subprocess.Process) -> None:
        """Wait for the worker to listen or exit; kill it if it does neither within
        ``START_TIMEOUT_S`` (it then counts as failing at start)."""
        waits = {asyncio.ensure_future(slot.ready.wait()), asyncio.ensure_future(proc.wait())}
        done, pending = await asyncio.wait(
            waits, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        for w in pending:
            w.cancel()
        if not done:
            log.error(
                "worker did not listen in time; killing it",
                extra={"worker": slot.index, "waited_s": START_TIMEOUT_S},
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def _spawn(self, slot: _Slot) -> asyncio.subprocess.Process:
        ready_r, ready_w = os.pipe()
        argv = [
            *self._argv,
            "--worker",
            f"{slot.index}/{self._count}",
            "--run-dir",
            str(self._run_dir),
            "--ready-fd",
            str(ready_w),
        ]
        fds = [ready_w]
        if self._sock is not None:
            argv += ["--listen-fd", str(self._sock.fileno())]
            fds.append(self._sock.fileno())
        # The worker starts with SIGHUP blocked (the mask survives fork and exec) until its
        # first line ignores it (``entry.py``): a SIGHUP forwarded meanwhile cannot end it.
        # Here, one that arrives is delivered once the mask is restored.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            # Its own session: a terminal's Ctrl-C or hangup reaches the supervisor only, which
            # forwards it once (a worker signalled twice would cut its own shutdown short).
            proc = await asyncio.create_subprocess_exec(*argv, pass_fds=fds, start_new_session=True)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
            os.close(ready_w)
        loop = asyncio.get_running_loop()
        ready = slot.ready

        def on_readable() -> None:
            # One byte when the worker listens; end of file when it exits first.
            with contextlib.suppress(OSError):
                if os.read(ready_r, 16):
                    ready.set()
            loop.remove_reader(ready_r)
            os.close(ready_r)

        loop.add_reader(ready_r, on_readable)
        return proc

    def _on_stop_signal(self) -> None:
        if self._stop.is_set():  # a second signal: the workers cut their drains short
            self._forward(signal.SIGTERM)
        self._stop.set()

    def _forward(self, sig: int) -> None:
        for slot in self._slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def _stop_workers(self) -> None:
        self._forward(signal.SIGTERM)
        procs = [s.proc for s in self._slots if s.proc is not None]
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=self._stop_timeout_s)
        if pending:
            log.error("workers did not stop in time; killing them", extra={"left": len(pending)})
            self._forward(signal.SIGKILL)
            await asyncio.gather(*pending, return_exceptions=True)


def supervise(
    count: int,
    argv: list[str],
    host: str,
    port: int,
    counters: bool,
    reuse_port: bool = hasattr(socket, "SO_REUSEPORT"),
    stop_timeout_s: float = 30.0,
) -> int:
    """Run ``count`` workers, each ``argv`` plus its worker arguments, until SIGTERM/SIGINT;
    ``counters``: serve the shared counters (no Redis configured); ``reuse_port``: each
    worker binds the port (else the supervisor binds it and passes the socket);
    ``stop_timeout_s``: how long stopping workers may take before they are killed. The exit
    status: 0, or 1 when workers kept failing at start.

    Raises:
        OSError: ``host:port`` cannot be bound.
    """
    supervisor = _Supervisor(count, argv, host, port, counters, reuse_port, stop_timeout_s)
    return asyncio.run(supervisor.run())


def stop_timeout(grace_s: float, drain_s: float, end_grace_s: float, flush_s: float) -> float:
    """Seconds a worker may take to stop: ``server.shutdown_grace_s``,
    ``server.drain_timeout_s``, the cut streams' end grace, ``usage.shutdown_timeout_s``,
    the executor's bound (:data:`~llmrelay.process.EXECUTOR_SHUTDOWN_TIMEOUT_S`) and
    ``STOP_MARGIN_S``."""
    from .process import EXECUTOR_SHUTDOWN_TIMEOUT_S

    return grace_s + drain_s + end_grace_s + flush_s + EXECUTOR_SHUTDOWN_TIMEOUT_S + STOP_MARGIN_S


def worker_argv(args: list[str]) -> list[str]:
    """The command line of a worker: this interpreter running ``llmrelay`` with ``args``."""
    return [sys.executable, "-m", "llmrelay", *args]


def watch_parent() -> None:
    """In a worker: SIGTERM this process once its supervisor has gone (checked every
    ``PARENT_POLL_S`` on a daemon thread, off the event loop)."""
    parent = os.getppid()
    # Until the process handles SIGHUP itself (a config reload), a SIGHUP the supervisor
    # forwards must not end the worker (the default action); a handler installed later wins.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="llmrelay-parent-watch", daemon=True).start()
