"""SIGHUP while ``llmrelay serve`` starts ends nobody (``llmrelay/entry.py``): not one
process importing its modules, not a supervisor, not a worker it is replacing (docs/reload.md:
"ignored" during start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import anthropic
import yaml

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, free_port
from tests.test_workers import MOCK, children, wait_for_workers

#: SIGHUP is signal 1: bit 0 of the masks in /proc/<pid>/status.
_HUP_BIT = 1 << (signal.SIGHUP - 1)


def _hup_ignored(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & _HUP_BIT)
    return False


class _Storm:
    """SIGHUP to ``pid`` every 10 ms on a thread, from when the process ignores it (its first
    lines) or 0.3 s after it was started, whichever is first, until :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sent = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic() + 0.3
        while not _hup_ignored(self.pid) and time.monotonic() < start:
            time.sleep(0.002)
        while not self._done.wait(0.01):
            try:
                os.kill(self.pid, signal.SIGHUP)
            except ProcessLookupError:
                return
            self.sent += 1

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _launch(tmp: Path, *extra: str) -> GatewayProcess:
    port = free_port()
    cfg_path = tmp / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(base_config(tmp, MOCK)))
    log_path = tmp / "gw.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "llmrelay", "serve", "--config", str(cfg_path)),
                *("--port", str(port), *extra),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return GatewayProcess(f"http://127.0.0.1:{port}", cfg_path, log_path, proc, tmp / "usage.db")


def _until_healthy(gw: GatewayProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert gw.proc.poll() is None, f"died with {gw.proc.returncode}:\n{gw.log()}"
        assert time.monotonic() < deadline, gw.log()
        try:
            with urllib.request.urlopen(gw.url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)


def _answers(gw: GatewayProcess) -> bool:
    client = anthropic.Anthropic(base_url=gw.url, api_key=ALICE_KEY, max_retries=0, timeout=30)
    with client:
        msg = client.messages.create(
            model="local/echo", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    return bool(msg.content)


def test_a_sighup_storm_while_one_process_starts_ends_nothing(tmp_path: Path) -> None:
    gw = _launch(tmp_path)
    storm = _Storm(gw.proc.pid)
    try:
        _until_healthy(gw)
        time.sleep(0.3)  # reloads asked now are handled (or refused while starting)
        storm.stop()
        assert storm.sent > 10
        assert gw.proc.poll() is None, gw.log()
        assert _answers(gw)
    finally:
        storm.stop()
        gw.stop()
    assert gw.proc.returncode == 0


def test_a_sighup_storm_on_a_supervisor_starting_and_replacing_workers_ends_nothing(
    tmp_path: Path,
) -> None:
    gw = _launch(tmp_path, "--workers", "2")
    storm = _Storm(gw.proc.pid)  # forwarded to every worker, starting ones included
    try:
        _until_healthy(gw)
        wait_for_workers(gw, 2)
        for _ in range(2):  # a replacement worker starts under the storm, twice
            before = children(gw.proc.pid)
            os.kill(min(before), signal.SIGKILL)
            deadline = time.monotonic() + 30
            while len((now := children(gw.proc.pid)) - before) < 1 or len(now) < 2:
                assert gw.proc.poll() is None, gw.log()
                assert time.monotonic() < deadline, gw.log()
                time.sleep(0.05)
            wait_for_workers(gw, 2)
        storm.stop()
        assert storm.sent > 10
        assert gw.proc.poll() is None, gw.log()
        assert "exited before it was listening" not in gw.log()
        assert gw.log().count("worker died; restarting it") == 2
        assert _answers(gw)
    finally:
        storm.stop()
        gw.stop()
    assert gw.proc.returncode == 0
