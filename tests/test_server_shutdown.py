"""``llmrelay.process.run`` gives the default executor's threads a bounded time at shutdown:
a thread stuck in a call that never returns (a store that stalls) no longer keeps the
process alive; past ``EXECUTOR_SHUTDOWN_TIMEOUT_S`` one ERROR line, then exit status 1.
A normal shutdown still exits 0, at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import asyncio, sys, threading, time
from aiohttp import web
from llmrelay import process
from llmrelay.config import ServerConfig
from llmrelay.obs.log import setup_logging

setup_logging("info")
process.EXECUTOR_SHUTDOWN_TIMEOUT_S = float(sys.argv[2])

async def startup(app):
    loop = asyncio.get_running_loop()
    if sys.argv[1] == "stuck":
        loop.run_in_executor(None, threading.Event().wait)  # never returns
    else:
        await loop.run_in_executor(None, time.sleep, 0.01)

app = web.Application()
app.on_startup.append(startup)
config = ServerConfig(shutdown_grace_s=0)
process.run(app, config, "127.0.0.1", 0, lambda: print("listening", flush=True))
"""

BOUND_S = 1.0


def _serve_and_stop(tmp_path: Path, mode: str) -> tuple[int, float, str]:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    with subprocess.Popen(
        [sys.executable, str(script), mode, str(BOUND_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"listening\n"
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return proc.returncode, took, err.decode()


def test_a_stuck_executor_thread_exits_with_1_after_the_bound(tmp_path: Path) -> None:
    code, took, err = _serve_and_stop(tmp_path, "stuck")
    assert code == 1, err
    assert BOUND_S <= took < BOUND_S + 5, took
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    errors = [r for r in lines if r["level"] == "error"]
    assert len(errors) == 1, err
    assert errors[0]["logger"] == "llmrelay.server"
    assert "stuck in a store call" in errors[0]["msg"], errors


def test_a_normal_shutdown_exits_0_at_once(tmp_path: Path) -> None:
    code, took, err = _serve_and_stop(tmp_path, "idle")
    assert code == 0, err
    assert took < BOUND_S, took
    assert '"level":"error"' not in err, err
