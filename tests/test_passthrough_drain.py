"""The native passthrough during a shutdown's drain (docs/operations.md): an answer still
streaming when ``server.drain_timeout_s`` runs out is cut, and its row says why."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anthropic

from tests.conftest import ALICE_KEY, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic


class _ProxyStream(threading.Thread):
    """An Anthropic SDK stream through ``/proxy/anthropic``, in a thread."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = anthropic.Anthropic(
            api_key=ALICE_KEY, base_url=f"{url}/proxy/anthropic", max_retries=0
        )
        self.started = threading.Event()
        self.text = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.messages.stream(
                model="claude-sonnet-4-6",
                max_tokens=64,
                messages=[{"role": "user", "content": "a long answer please"}],
            ) as stream:
                for event in stream:
                    self.started.set()
                    if event.type == "text":
                        self.text += event.text
        except BaseException as err:  # kept for the test to look at
            self.error = err
        finally:
            self.client.close()
            self.started.set()


def test_a_passthrough_stream_open_when_the_drain_runs_out_is_cut(tmp_path: Path) -> None:
    with FakeAnthropic() as fake:
        fake.default_stream_delay_s = 1.5  # a stream of several seconds
        providers: dict[str, Any] = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": "sk-ant-upstream",
                "models": {"claude": "claude-sonnet-4-6"},
            }
        }
        server = {"shutdown_grace_s": 0, "drain_timeout_s": 2}
        gw = start_gateway(tmp_path, base_config(tmp_path, providers, server=server))
        try:
            stream = _ProxyStream(gw.url)
            stream.start()
            assert stream.started.wait(10)
            gw.proc.send_signal(signal.SIGTERM)
            stream.join(30)
            assert gw.proc.wait(30) == 0, gw.log()
        finally:
            gw.stop()
        assert stream.error is not None  # the answer was cut, not finished
        assert stream.text != "echo: a long answer please"
        db = sqlite3.connect(gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in db.execute("SELECT * FROM usage WHERE endpoint = 'proxy'")]
        finally:
            db.close()
        assert len(rows) == 1
        row = rows[0]
        assert (row["status"], row["error_type"]) == (200, "overloaded_error")
        assert "server.drain_timeout_s (2s) ran out" in row["error_message"]
        assert row["input_tokens"] > 0  # message_start was read before the cut
