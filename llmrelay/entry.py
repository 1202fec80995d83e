"""The ``llmrelay`` command's first lines: what must happen before the heavy imports.

``llmrelay serve`` ignores SIGHUP from its first line (:func:`ignore_hangup`) until the
reload handler is installed (``process.py``; the supervisor's forwarding handler in
``supervisor.py``). The signal's default action ends a process: without this, a SIGHUP
sent while the gateway is importing its modules (0.1-1 s), or forwarded by a supervisor to
a worker it is starting, would kill it. A supervisor starts its workers with SIGHUP
blocked; :func:`ignore_hangup` unblocks it once it is ignored, so one sent in between is
dropped, not delivered (docs/reload.md).
"""

from __future__ import annotations

import signal
import sys

__all__ = ["ignore_hangup", "main"]


def ignore_hangup(argv: list[str]) -> None:
    """For ``serve`` (``argv`` without the program name): ignore SIGHUP, then unblock it
    (a pending one is discarded). Other commands keep the default action."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or not argv or argv[0] != "serve":
        return
    signal.signal(hup, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {hup})


def main() -> int:
    """``llmrelay ...``: :func:`ignore_hangup`, then :func:`llmrelay.cli.main`."""
    ignore_hangup(sys.argv[1:])
    from .cli import main as cli_main

    return cli_main()
