"""SIGHUP while ``llmrelay serve`` starts: ignored until the config reload's handler is
installed (``process.py``), so a signal sent during the imports never ends the process.
Imports nothing of llmrelay: the ``llmrelay`` entry (``entry.py``) calls it first thing."""

from __future__ import annotations

import signal

__all__ = ["ignore_hangup"]


def ignore_hangup(argv: list[str]) -> None:
    """For ``serve`` (``argv`` without the program name): ignore SIGHUP, then unblock it
    (a pending one is discarded). Other commands keep the default action."""
    hup = getattr(signal, "SIGHUP", None)
    if hup is None or not argv or argv[0] != "serve":
        return
    signal.signal(hup, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {hup})
