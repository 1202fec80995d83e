"""Bounds a call never passes, whatever the provider or the client does: a whole-call
deadline (``timeouts.total_s``) also for a provider that trickles bytes, a 200 that is not
what the wire promises is a 502 (and a fallback trigger), a ``stream`` flag that is not a
boolean is a 400 (gateway and provider must agree whether an answer streams), a stream
that ends without its last event is reported as incomplete, client strings are clipped
before they are echoed, and a body that does not arrive in time is a 408."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import ALICE_KEY, GatewayProcess, base_config, start_gateway
from tests.fakes.anthropic_upstream import FakeAnthropic, Reply, sse_reply
from tests.fakes.openai_upstream import FakeOpenAI, chunks_reply
from tests.gateway_env import raw_request

HELLO = [{"role": "user", "content": "hi"}]
TOTAL_S = 1.5
MESSAGE_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 1},
        },
    },
)


@dataclass
class Env:
    fake: FakeAnthropic
    gpt: FakeOpenAI
    gw: GatewayProcess

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=ALICE_KEY, base_url=self.gw.url, max_retries=0)

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=ALICE_KEY, base_url=self.gw.url + "/v1", max_retries=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("bounds")
    with FakeAnthropic() as fake, FakeOpenAI() as gpt:
        timeouts = {"read_s": 10, "total_s": TOTAL_S}
        providers: dict[str, Any] = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": "sk-ant-upstream",
                "models": {"claude": "claude-sonnet-4-6"},
                "timeouts": timeouts,
            },
            "openai": {
                "type": "openai",
                "base_url": gpt.url + "/v1",
                "api_key": "sk-upstream",
                "models": {"gpt": "gpt-4o"},
                "timeouts": timeouts,
            },
            "local": {"type": "mock", "models": {"echo": "echo"}},
        }
        models = {
            "claude-or-echo": {
                "targets": [
                    {"model": "anthropic/claude", "priority": 1},
                    {"model": "local/echo", "priority": 2},
                ]
            }
        }
        config = base_config(tmp, providers, models=models, server={"body_timeout_s": 1})
        gw = start_gateway(tmp, config, "--log-level", "info")
        try:
            yield Env(fake, gpt, gw)
        finally:
            gw.stop()


def trickle(body: bytes, every_s: float, content_type: str = "application/json") -> Reply:
    """A 200 whose body arrives one byte every ``every_s`` seconds."""
    chunks = tuple(body[i : i + 1] for i in range(len(body)))
    return Reply(headers={"content-type": content_type}, events=chunks, delay_s=every_s)


def test_a_trickling_answer_is_cut_at_the_total_deadline(env: Env) -> None:
    env.fake.enqueue(trickle(json.dumps({"type": "message", "content": []}).encode(), 0.3))
    began = time.monotonic()
    with env.anthropic() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="anthropic/claude", max_tokens=5, messages=HELLO)
    took = time.monotonic() - began
    assert e.value.status_code == 504
    assert "timeouts.total_s" in str(e.value)
    assert took < TOTAL_S + 3  # read_s (10 s) never ran out: total_s cut it
    rid = e.value.response.headers["request-id"]
    assert env_row(env, rid)["status"] == 504


def test_a_stream_is_ended_at_the_total_deadline(env: Env) -> None:
    env.fake.enqueue(sse_reply([MESSAGE_START] + [("ping", {"type": "ping"})] * 100, delay_s=0.3))
    with (
        env.anthropic() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model="anthropic/claude", max_tokens=5, messages=HELLO) as stream,
    ):
        for _ in stream:
            pass
    assert "timeouts.total_s" in str(e.value)
    row = env_row(env, e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"], row["input_tokens"]) == (200, "timeout_error", 7)


@pytest.mark.parametrize("stream", [False, True])
def test_a_200_that_is_not_json_is_a_502(env: Env, stream: bool) -> None:
    env.fake.enqueue(Reply(headers={"content-type": "text/html"}, body=b"<html>maintenance</html>"))
    with env.anthropic() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(
            model="anthropic/claude", max_tokens=5, messages=HELLO, stream=stream
        )
    assert e.value.status_code == 502
    assert "'anthropic'" in str(e.value) and "<html>" in str(e.value)


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/v1/messages", "anthropic/claude", "yes"),
        ("/v1/messages", "anthropic/claude", 1),
        ("/v1/chat/completions", "openai/gpt", "true"),
        ("/v1/chat/completions", "openai/gpt", [True]),
    ],
)
def test_a_stream_flag_that_is_not_a_boolean_is_a_400_before_any_provider(
    env: Env, path: str, model: str, stream: object
) -> None:
    # A provider that coerces it (as vLLM's pydantic does) streamed an answer the gateway
    # then read as JSON: a 502, and the tokens the provider spent were never billed.
    sent = len(env.fake.requests) + len(env.gpt.requests)
    body = {"model": model, "max_tokens": 5, "messages": HELLO, "stream": stream}
    status, headers, raw = raw_request(
        env.gw.url + path, json.dumps(body).encode(), {"x-api-key": ALICE_KEY}
    )
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert "stream: expected true or false" in error["message"]
    assert headers["request-id"].startswith("req_")
    assert len(env.fake.requests) + len(env.gpt.requests) == sent


def test_a_200_that_is_not_json_is_quoted_in_the_502_without_a_key(env: Env) -> None:
    # The 502's message quotes the body's start; a 200 is not masked as an error body is,
    # so a key in it went out in the message (found by the ingress fuzz): a key shape in
    # any body, and the account's own key in a stream's error event read whole.
    env.fake.enqueue(
        Reply(headers={"content-type": "text/html"}, body=b"<p>key sk-ant-api03-Leaked0123456789")
    )
    with env.anthropic() as client, pytest.raises(anthropic.APIStatusError) as e:
        client.messages.create(model="anthropic/claude", max_tokens=5, messages=HELLO)
    assert e.value.status_code == 502
    assert "Leaked" not in str(e.value) and "<p>key sk-ant-***" in str(e.value)
    env.gpt.enqueue(
        chunks_reply([{"error": {"message": "k sk-upstream", "type": "x"}}], done=False)
    )
    with env.openai() as client, pytest.raises(openai.APIStatusError) as o:
        client.chat.completions.create(model="openai/gpt", messages=HELLO)  # type: ignore[arg-type]
    assert o.value.status_code == 502
    assert "sk-upstream" not in str(o.value) and "k ***" in str(o.value)


def test_a_virtual_model_falls_back_from_a_200_that_is_not_json(env: Env) -> None:
    env.fake.enqueue(Reply(headers={"content-type": "text/plain"}, body=b"OK"))
    with env.anthropic() as client:
        raw = client.messages.with_raw_response.create(
            model="claude-or-echo", max_tokens=5, messages=HELLO
        )
    assert raw.headers["x-llmrelay-model"] == "local/echo"
    assert raw.headers["x-llmrelay-attempts"] == "2"


def test_a_stream_without_message_stop_ends_with_an_error_event(env: Env) -> None:
    env.fake.enqueue(sse_reply([MESSAGE_START]))
    with (
        env.anthropic() as client,
        pytest.raises(anthropic.APIStatusError) as e,
        client.messages.stream(model="anthropic/claude", max_tokens=5, messages=HELLO) as stream,
    ):
        for _ in stream:
            pass
    assert "before message_stop" in str(e.value)
    row = env_row(env, e.value.response.headers["request-id"])
    assert (row["status"], row["error_type"]) == (200, "api_error")


def test_an_openai_stream_without_done_ends_with_an_error_chunk_and_done(env: Env) -> None:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}],
    }
    env.gpt.enqueue(chunks_reply([chunk], done=False))
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
        )
        text = raw.http_response.read().decode()
    assert "before [DONE]" in text
    assert text.endswith("data: [DONE]\n\n")


def test_a_huge_model_name_is_clipped_in_the_404_and_the_log(env: Env) -> None:
    model = "m" * (1 << 20)
    body = json.dumps({"model": model, "max_tokens": 5, "messages": HELLO}).encode()
    status, _, raw = raw_request(
        env.gw.url + "/v1/messages",
        body,
        {"x-api-key": ALICE_KEY, "content-type": "application/json"},
    )
    assert status == 404
    message = json.loads(raw)["error"]["message"]
    assert len(message) < 400 and "1048576 characters" in message
    assert "m" * 1000 not in env.gw.log()


def test_a_body_that_does_not_arrive_in_time_is_a_408(env: Env) -> None:
    host, port = env.gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"x-api-key: {ALICE_KEY}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"model": '
        )
        began = time.monotonic()
        reply = s.recv(65536)
        took = time.monotonic() - began
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"server.body_timeout_s" in reply
    assert took < 5


@pytest.mark.parametrize(
    ("extra", "body", "status"),
    [
        # A body that does not decode: the parser cannot tell where the next request starts.
        (b"content-encoding: gzip\r\ncontent-length: 12\r\n", b"\x1f\x8bnot gzip", 400),
        # A body that is not all there: the rest may still come.
        (b"content-length: 100\r\n", b'{"model": ', 408),
    ],
)
def test_a_body_left_unread_closes_its_connection(
    env: Env, extra: bytes, body: bytes, status: int
) -> None:
    # The answer said keep-alive and the server then closed the connection: a client that
    # reused it for its next request got a reset (found by the ingress fuzz).
    host, port = env.gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
            + f"x-api-key: {ALICE_KEY}\r\n".encode()
            + extra
            + b"\r\n"
            + body
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += s.recv(65536)
    head = reply.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 %d" % status)
    assert b"\r\nconnection: close" in head


def env_row(env: Env, request_id: str) -> dict[str, Any]:
    import sqlite3

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        db = sqlite3.connect(env.gw.usage_db)
        db.row_factory = sqlite3.Row
        try:
            row = db.execute("SELECT * FROM usage WHERE request_id = ?", (request_id,)).fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            db.close()
        if row is not None:
            return dict(row)
        time.sleep(0.05)
    raise AssertionError(f"no usage row for {request_id}")


def test_an_event_that_never_ends_is_cut_at_the_sse_bound(tmp_path: Path) -> None:
    with FakeAnthropic() as fake:
        providers = {
            "anthropic": {
                "type": "anthropic",
                "base_url": fake.url,
                "api_key": "sk-ant-upstream",
                "models": {"claude": "claude-sonnet-4-6"},
            }
        }
        config = base_config(tmp_path, providers, server={"max_sse_event_mb": 0.05})
        gw = start_gateway(tmp_path, config)
        try:
            start = sse_reply([MESSAGE_START]).events or ()
            endless = (b"event: content_block_delta\ndata: ",) + (b"x" * 4096,) * 40
            fake.enqueue(
                Reply(
                    headers={"content-type": "text/event-stream"},
                    events=start + endless,
                    hang_after=True,
                )
            )
            body = {"model": "anthropic/claude", "max_tokens": 5, "messages": HELLO}
            status, _, raw = raw_request(
                gw.url + "/v1/messages",
                json.dumps({**body, "stream": True}).encode(),
                {"x-api-key": ALICE_KEY, "content-type": "application/json"},
            )
            assert status == 200
            tail = raw.decode()[-400:]
            assert "event: error" in tail
            assert "provider 'anthropic' sent an SSE event larger than" in tail
        finally:
            gw.stop()


def test_a_translated_stream_without_message_stop_ends_with_an_error_chunk(env: Env) -> None:
    env.fake.enqueue(sse_reply([MESSAGE_START]))
    with env.openai() as client:
        raw = client.chat.completions.with_raw_response.create(
            model="anthropic/claude",
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
        )
        text = raw.http_response.read().decode()
    assert "before message_stop" in text
    assert text.endswith("data: [DONE]\n\n")
