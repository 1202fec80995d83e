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

import sys

from .hangup import ignore_hangup

__all__ = ["main"]


def main() -> int:
    """``llmrelay ...``: :func:`ignore_hangup`, then :func:`llmrelay.cli.main`."""
    ignore_hangup(sys.argv[1:])
    from .cli import main as cli_main

    return cli_main()
