"""Zero-downtime deploys against a real ``llmrelay serve``: ``GET /ready``, and the drain a
SIGTERM (or SIGINT) starts (docs/operations.md).

The gateway runs as a subprocess in front of fakes that speak Anthropic's and OpenAI's wire,
driven by the official SDKs; streams are made long by the fakes' delay between events.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, json_reply, slow_reply
from tests.fakes.openai_upstream import FakeOpenAI

MSG: Any = [{"role": "user", "content": "hello there"}]
ECHO = "echo: hello there"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAnthropic, FakeOpenAI]]:
    claude, gpt = FakeAnthropic(), FakeOpenAI()
    claude.start()
    gpt.start()
    try:
        yield claude, gpt
    finally:
        claude.stop()
        gpt.stop()


def _gateway(
    tmp: Path, fakes: tuple[FakeAnthropic, FakeOpenAI], server: dict[str, Any], **over: Any
) -> GatewayProcess:
    claude, gpt = fakes
    providers = {
        "anthropic": {
            "type": "anthropic",
            "base_url": claude.url,
            "api_key": "sk-ant-upstream",
            "models": {"claude": "claude-sonnet-4-6"},
        },
        "openai": {
            "type": "openai",
            "base_url": gpt.url + "/v1",
            "api_key": "sk-openai-upstream",
            "models": {"gpt": "gpt-4o"},
        },
    }
    return start_gateway(tmp, base_config(tmp, providers, server=server, **over))


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=5).close()
    except urllib.error.URLError as e:
        return isinstance(e.reason, ConnectionRefusedError)
    return False


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def _exit_code(gw: GatewayProcess, timeout: float = 30) -> int:
    return gw.proc.wait(timeout)


def _rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM usage ORDER BY id")]
    finally:
        conn.close()


class _Stream(threading.Thread):
    """One Anthropic SDK stream in a thread: ``started`` once its first event is in; the
    text, or the error it raised, at the end."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=url, max_retries=0)
        self.started = threading.Event()
        self.text = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.messages.stream(
                model="anthropic/claude", max_tokens=64, messages=MSG
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


class _OpenAIStream(threading.Thread):
    """One OpenAI SDK stream (``model`` decides passthrough or translation)."""

    def __init__(self, url: str, model: str) -> None:
        super().__init__(daemon=True)
        self.client = openai.OpenAI(api_key=ALICE_KEY, base_url=url + "/v1", max_retries=0)
        self.model = model
        self.started = threading.Event()
        self.text = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=MSG, stream=True, max_tokens=64
            )
            for chunk in stream:
                self.started.set()
                if chunk.choices and chunk.choices[0].delta.content:
                    self.text += chunk.choices[0].delta.content
        except BaseException as err:
            self.error = err
        finally:
            self.client.close()
            self.started.set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_answers_200_once_started_and_503_from_a_signal_while_health_stays_200(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI], sig: signal.Signals
) -> None:
    claude, _ = fakes
    claude.default_stream_delay_s = 1.0  # a stream of ~8 s, open across the grace period
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 2, "drain_timeout_s": 60})
    try:
        assert _get(gw.url + "/ready") == (200, {"status": "ready"})
        stream = _Stream(gw.url)
        stream.start()
        assert stream.started.wait(10)
        gw.proc.send_signal(sig)
        _wait(lambda: _get(gw.url + "/ready")[0] == 503, 5, "/ready 503")
        # During the grace period: not ready, alive, and new connections are served.
        assert _get(gw.url + "/ready") == (503, {"status": "unavailable", "reason": "draining"})
        assert _get(gw.url + "/health") == (200, {"status": "ok"})
        # After it: the listener is closed while the stream still runs.
        _wait(lambda: _refused(gw.url), 10, "new connections refused")
        assert gw.proc.poll() is None
        assert stream.is_alive()
        stream.join(30)
        assert stream.error is None, stream.error
        assert stream.text == ECHO
        assert _exit_code(gw) == 0, gw.log()
        rows = _rows(gw.usage_db)
        streamed = [r for r in rows if r["endpoint"] == "messages"]
        assert [(r["status"], r["error_type"]) for r in streamed] == [(200, None)]
    finally:
        gw.stop()


def test_an_answer_sent_after_the_grace_period_says_connection_close(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    claude, _ = fakes
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "late"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    claude.enqueue(slow_reply(3.0, json_reply(body)))
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0.5, "drain_timeout_s": 60})
    try:
        port = int(gw.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        # Kept-alive connections: the first answers (before the signal) keep them open.
        for c in (conn, idle):
            c.request("GET", "/health")
            first = c.getresponse()
            first.read()
            assert first.getheader("connection", "keep-alive").lower() == "keep-alive"
        payload = {"model": "anthropic/claude", "max_tokens": 8, "messages": MSG}
        headers = {
            "x-api-key": ALICE_KEY,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        }
        conn.request("POST", "/v1/messages", json.dumps(payload), headers)
        _wait(lambda: len(claude.requests_to("/v1/messages")) == 1, 10, "call upstream")
        gw.proc.send_signal(signal.SIGTERM)
        answer = conn.getresponse()
        assert answer.status == 200
        assert json.loads(answer.read())["content"][0]["text"] == "late"
        assert answer.getheader("connection", "").lower() == "close"
        conn.close()
        # The idle one was closed by the gateway when the grace period ended.
        assert idle.sock is not None
        assert idle.sock.recv(1) == b""
        idle.close()
        assert _exit_code(gw) == 0, gw.log()
    finally:
        gw.stop()


def test_sigterm_during_20_long_streams_lets_all_of_them_finish(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    claude, _ = fakes
    claude.default_stream_delay_s = 0.4  # ~3 s a stream
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0.2, "drain_timeout_s": 120})
    try:
        streams = [_Stream(gw.url) for _ in range(20)]
        for s in streams:
            s.start()
        for s in streams:
            assert s.started.wait(20)
        gw.proc.send_signal(signal.SIGTERM)
        for s in streams:
            s.join(60)
        assert [s.error for s in streams] == [None] * 20
        assert [s.text for s in streams] == [ECHO] * 20
        assert _exit_code(gw) == 0, gw.log()
        rows = _rows(gw.usage_db)
        assert len(rows) == 20
        assert {(r["status"], r["error_type"]) for r in rows} == {(200, None)}
        assert all(r["output_tokens"] > 0 for r in rows)
    finally:
        gw.stop()


def _cut_streams(url: str) -> tuple[_Stream, _OpenAIStream, _OpenAIStream]:
    anth = _Stream(url)
    translated = _OpenAIStream(url, "anthropic/claude")
    passthrough = _OpenAIStream(url, "openai/gpt")
    for s in (anth, translated, passthrough):
        s.start()
    for s in (anth, translated, passthrough):
        assert s.started.wait(20)
    return anth, translated, passthrough


def _assert_cut(anth: _Stream, translated: _OpenAIStream, passthrough: _OpenAIStream) -> None:
    # Anthropic's SDK raises the error event as an APIStatusError carrying its body.
    assert isinstance(anth.error, anthropic.APIStatusError), anth.error
    assert isinstance(anth.error.body, dict)
    assert anth.error.body["error"]["type"] == "overloaded_error"
    assert "gateway restarting" in anth.error.body["error"]["message"]
    assert anth.text != ECHO  # it was cut before its end
    # OpenAI's SDK raises an error chunk as an APIError carrying the error object.
    for s in (translated, passthrough):
        assert isinstance(s.error, openai.APIError), s.error
        assert isinstance(s.error.body, dict)
        assert s.error.body["code"] == "overloaded_error"
        assert s.error.body["type"] == "server_error"
        assert "gateway restarting" in s.error.body["message"]


def _assert_cut_rows(rows: list[dict[str, Any]], why: str) -> None:
    assert len(rows) == 3
    for r in rows:
        assert (r["status"], r["error_type"]) == (200, "overloaded_error"), r
        assert why in r["error_message"], r
        # Anthropic's message_start carries input usage; OpenAI's comes in the last chunk.
        assert (r["input_tokens"] > 0) is (r["provider"] == "anthropic"), r
    assert sorted((r["surface"], r["provider"]) for r in rows) == [
        ("anthropic", "anthropic"),
        ("openai", "anthropic"),
        ("openai", "openai"),
    ]


def test_streams_open_when_drain_timeout_runs_out_end_with_overloaded_error(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    claude, gpt = fakes
    claude.default_stream_delay_s = gpt.default_stream_delay_s = 1.5  # ~10 s streams
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0, "drain_timeout_s": 2})
    try:
        streams = _cut_streams(gw.url)
        gw.proc.send_signal(signal.SIGTERM)
        for s in streams:
            s.join(30)
        _assert_cut(*streams)
        assert _exit_code(gw) == 0, gw.log()
        _assert_cut_rows(_rows(gw.usage_db), "server.drain_timeout_s (2s) ran out")
    finally:
        gw.stop()


def test_a_second_sigterm_skips_the_drain_but_still_flushes_usage(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    claude, gpt = fakes
    claude.default_stream_delay_s = gpt.default_stream_delay_s = 1.5
    # Rows wait in the queue (a minute between writes) until the shutdown flushes them.
    usage = {"path": str(tmp_path / "usage.db"), "flush_interval_s": 60}
    server = {"shutdown_grace_s": 300, "drain_timeout_s": 600}
    gw = _gateway(tmp_path, fakes, server, usage=usage)
    try:
        client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
        with client:
            for _ in range(3):
                client.messages.create(model="anthropic/claude", max_tokens=8, messages=MSG)
        streams = _cut_streams(gw.url)
        gw.proc.send_signal(signal.SIGTERM)
        _wait(lambda: _get(gw.url + "/ready")[0] == 503, 5, "/ready 503")
        gw.proc.send_signal(signal.SIGTERM)
        for s in streams:
            s.join(30)
        _assert_cut(*streams)
        assert _exit_code(gw) == 0, gw.log()
        rows = _rows(gw.usage_db)
        assert len(rows) == 6
        assert [(r["status"], r["error_type"]) for r in rows[:3]] == [(200, None)] * 3
        _assert_cut_rows(rows[3:], "a second shutdown signal")
        assert "second shutdown signal" in gw.log()
    finally:
        gw.stop()


def test_a_call_still_waiting_on_its_provider_after_the_drain_is_cancelled_with_a_row(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    claude, _ = fakes
    claude.latency_s = 60  # the provider never answers in time
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0, "drain_timeout_s": 1})
    try:
        client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
        failed: list[BaseException] = []

        def call() -> None:
            try:
                client.messages.create(model="anthropic/claude", max_tokens=8, messages=MSG)
            except BaseException as err:
                failed.append(err)
            finally:
                client.close()

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        _wait(lambda: len(claude.requests_to("/v1/messages")) == 1, 10, "call upstream")
        gw.proc.send_signal(signal.SIGTERM)
        caller.join(30)
        # Cancelled END_GRACE_S after the drain ran out: the connection closes unanswered.
        assert len(failed) == 1 and isinstance(failed[0], anthropic.APIConnectionError)
        assert _exit_code(gw) == 0, gw.log()
        [row] = _rows(gw.usage_db)
        assert (row["status"], row["error_type"]) == (499, "gateway_restarting"), row
        assert row["error_message"] == (
            "cancelled at shutdown: calls still open when server.drain_timeout_s (1s) ran out"
        )
    finally:
        gw.stop()


def test_a_request_whose_body_arrives_after_the_grace_period_is_answered(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    import socket

    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0.5, "drain_timeout_s": 30})
    try:
        port = int(gw.url.rsplit(":", 1)[1])
        payload = json.dumps({"model": "anthropic/claude", "max_tokens": 8, "messages": MSG})
        head = (
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\n"
            f"x-api-key: {ALICE_KEY}\r\nanthropic-version: 2023-06-01\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head.encode() + payload[:10].encode())  # in progress: body half in
            time.sleep(0.2)
            gw.proc.send_signal(signal.SIGTERM)
            _wait(lambda: _refused(gw.url), 10, "the listener closed after the grace period")
            sock.sendall(payload[10:].encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head_out, _, body_out = answer.partition(b"\r\n\r\n")
        assert head_out.startswith(b"HTTP/1.1 200"), answer
        assert b"connection: close" in head_out.lower()
        assert json.loads(body_out)["content"][0]["text"] == ECHO
        assert _exit_code(gw) == 0, gw.log()
        assert "calls still open" not in gw.log()
        assert [r["status"] for r in _rows(gw.usage_db)] == [200]
    finally:
        gw.stop()


def test_50_keep_alive_clients_in_a_loop_across_sigterm_see_answers_or_closed_connections(
    tmp_path: Path,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    mock = {"local": {"type": "mock", "models": {"echo": "echo"}}}
    server = {"shutdown_grace_s": 1, "drain_timeout_s": 20}
    gw = start_gateway(tmp_path, base_config(tmp_path, mock, server=server))
    stopping = threading.Event()
    calls = 50

    def loop(_: int) -> tuple[int, int, list[str]]:
        """Calls on one kept-alive connection until the gateway refuses: (answered,
        connection errors, other errors)."""
        client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0, timeout=60)
        answered, dropped, other = 0, 0, []
        with client:
            while True:
                try:
                    client.messages.create(model="local/echo", max_tokens=8, messages=MSG)
                    answered += 1
                except anthropic.APIConnectionError:
                    dropped += 1  # closed between requests, or refused at connect
                    if stopping.is_set() and _refused(gw.url):
                        return answered, dropped, other
                except anthropic.APIStatusError as err:
                    other.append(f"{err.status_code}: {err.message}")
                if stopping.is_set() and gw.proc.poll() is not None:
                    return answered, dropped, other

    try:
        with ThreadPoolExecutor(calls) as pool:
            results = [pool.submit(loop, i) for i in range(calls)]
            time.sleep(1.0)  # every client is calling on its kept-alive connection
            stopping.set()
            gw.proc.send_signal(signal.SIGTERM)
            assert _exit_code(gw) == 0, gw.log()
            outcomes = [r.result(timeout=120) for r in results]
    finally:
        stopping.set()
        gw.stop()
    assert all(answered > 0 for answered, _, _ in outcomes)
    assert [o for _, _, errors in outcomes for o in errors] == []
    assert "calls still open" not in gw.log()  # nothing hung until the drain's end
    statuses = {r["status"] for r in _rows(gw.usage_db)}
    bad = [r for r in _rows(gw.usage_db) if r["status"] != 200]
    assert statuses == {200}, [
        (r["status"], r["model"], r["error_type"], r["error_message"]) for r in bad
    ]


def test_a_stream_the_drain_cuts_is_charged_what_it_delivered(
    tmp_path: Path, fakes: tuple[FakeAnthropic, FakeOpenAI]
) -> None:
    # message_start, content_block_start, ping, then three long deltas, 2 s apart: the drain
    # (7 s) cuts the stream after the first delta (at 6 s) and before the second (at 8 s).
    claude, _ = fakes
    claude.default_stream_delay_s = 2.0
    gw = _gateway(tmp_path, fakes, {"shutdown_grace_s": 0, "drain_timeout_s": 7})
    words = "the quick brown fox jumps over the lazy dog " * 12
    got: list[str] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        client = anthropic.Anthropic(api_key=ALICE_KEY, base_url=gw.url, max_retries=0)
        try:
            with (
                client,
                client.messages.stream(
                    model="anthropic/claude",
                    max_tokens=512,
                    messages=[{"role": "user", "content": words}],
                ) as stream,
            ):
                for event in stream:
                    started.set()
                    if event.type == "text":
                        got.append(event.text)
        except BaseException as err:  # looked at below
            errors.append(err)
        finally:
            started.set()

    try:
        reader = threading.Thread(target=run, daemon=True)
        reader.start()
        assert started.wait(20)
        gw.proc.send_signal(signal.SIGTERM)
        reader.join(30)
        assert _exit_code(gw) == 0, gw.log()
        assert len(got) == 1 and errors, (got, errors)  # one delta, then the error event
        (row,) = _rows(gw.usage_db)
        assert (row["status"], row["error_type"]) == (200, "overloaded_error"), row
        note = re.search(
            r"stream cut after (\d+) content deltas; output_tokens=(\d+)", row["error_message"]
        )
        assert note is not None and note[1] == "1", row["error_message"]
        # The delivered delta's estimate (a third of the echo, ~4 ASCII bytes a token),
        # not message_start's placeholder of 1.
        assert row["output_tokens"] == int(note[2]) == len(got[0]) // 4, row
    finally:
        gw.stop()
