"""Self-test: the official ``anthropic`` SDK, pointed directly at the fake, accepts its wire."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .anthropic_upstream import (
    WIRE_DIR,
    FakeAnthropic,
    count_tokens_for,
    fixture_reply,
    hang_reply,
    json_reply,
    slow_reply,
    sse_reply,
)

MODEL = "claude-sonnet-4-6"
MSGS: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as f:
        yield f


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="sk-test", base_url=fake.url, max_retries=0) as c:
        yield c


def _stream_final(client: anthropic.Anthropic) -> anthropic.types.Message:
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
        return stream.get_final_message()


def test_fixture_files_are_wire_exact() -> None:
    for path in sorted(WIRE_DIR.glob("*.sse")):
        blocks = [b for b in path.read_text().split("\n\n") if b.strip()]
        for block in blocks:
            event_line, data_line = block.strip("\n").split("\n")
            assert event_line.startswith("event: ")
            assert data_line.startswith("data: ")
            assert json.loads(data_line[6:])["type"] == event_line[7:]
        assert json.loads(blocks[0].split("data: ", 1)[1])["type"] == "message_start"
    for path in sorted(WIRE_DIR.glob("*.json")):
        assert isinstance(json.loads(path.read_text()), dict)


def test_text_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(fixture_reply("text_stream.sse"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
        texts = list(stream.text_stream)
        msg = stream.get_final_message()
    assert "".join(texts) == "Hello, world! How can I help today?"
    assert len(texts) == 4
    block = msg.content[0]
    assert block.type == "text" and block.text == "Hello, world! How can I help today?"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    u = msg.usage
    assert (u.input_tokens, u.output_tokens) == (25, 15)
    assert (u.cache_creation_input_tokens, u.cache_read_input_tokens) == (7, 11)


def test_tool_use_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(fixture_reply("tool_use_stream.sse"))
    msg = _stream_final(client)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    tool = msg.content[1]
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.id.startswith("toolu_")
    assert tool.input == {"location": "San Francisco, CA", "unit": "celsius"}
    assert msg.stop_reason == "tool_use"
    assert msg.usage.output_tokens == 89


def test_thinking_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(fixture_reply("thinking_stream.sse"))
    msg = _stream_final(client)
    thinking, text = msg.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user asks for 27 * 453. 27 * 453 = 12231."
    assert thinking.signature.startswith("EqQB") and thinking.signature.endswith("==")
    assert text.type == "text" and text.text == "27 * 453 = 12,231"


def test_error_midstream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(fixture_reply("error_midstream.sse"))
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream,
    ):
        stream.get_final_message()
    body: Any = info.value.body
    assert body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("message.json", "text"), ("tool_use_message.json", "tool_use")],
)
def test_json_fixtures(
    fake: FakeAnthropic, client: anthropic.Anthropic, name: str, kind: str
) -> None:
    fake.enqueue(fixture_reply(name))
    msg = client.messages.create(model=MODEL, max_tokens=64, messages=MSGS)
    assert msg.id.startswith("msg_") and msg.role == "assistant"
    assert msg.content[-1].type == kind
    if kind == "text":
        assert msg.usage.input_tokens == 25 and msg.usage.output_tokens == 15
        assert msg.usage.cache_creation_input_tokens == 7
        assert msg.usage.cache_read_input_tokens == 11
    else:
        tool = msg.content[-1]
        assert tool.type == "tool_use"
        assert tool.input == {"location": "San Francisco, CA", "unit": "celsius"}


def test_thinking_message(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.enqueue(fixture_reply("thinking_message.json"))
    msg = client.messages.create(model=MODEL, max_tokens=64, messages=MSGS)
    thinking, text = msg.content
    assert thinking.type == "thinking" and thinking.signature.startswith("EqQB")
    assert text.type == "text" and text.text == "27 * 453 = 12,231"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, anthropic.BadRequestError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
def test_error_fixtures(
    fake: FakeAnthropic, client: anthropic.Anthropic, status: int, exc: type[Exception]
) -> None:
    fake.enqueue(fixture_reply(f"error_{status}.json"))
    with pytest.raises(exc) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=MSGS)
    err = info.value
    assert isinstance(err, anthropic.APIStatusError) and err.status_code == status
    assert err.request_id is not None and err.request_id.startswith("req_")
    body: Any = err.body
    assert body["type"] == "error" and body["request_id"] == err.request_id
    assert len(fake.requests) == 1  # max_retries=0


def test_default_create_and_stream(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="claude-x-test", max_tokens=64, messages=MSGS)
    assert msg.model == "claude-x-test"
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: Hello there"
    assert msg.usage.input_tokens == count_tokens_for(fake.requests[0].body)

    fake.default_stream_delay_s = 0.01
    with client.messages.stream(
        model="claude-y-test",
        max_tokens=64,
        messages=[{"role": "user", "content": [{"type": "text", "text": "blocks too"}]}],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) >= 3 and "".join(texts) == "echo: blocks too"
    assert final.model == "claude-y-test" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len("echo: blocks too") // 4 + 1


def test_raw_sse_headers(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=8, messages=MSGS, stream=True
    ) as resp:
        raw = b"".join(resp.iter_bytes())
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["cache-control"] == "no-cache"
        assert resp.headers["request-id"].startswith("req_")
        assert "anthropic-ratelimit-requests-remaining" in resp.headers
    assert raw.startswith(b"event: message_start\ndata: {")
    assert raw.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_count_tokens_and_models(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    res = client.messages.count_tokens(model=MODEL, messages=MSGS)
    assert res.input_tokens == count_tokens_for(fake.requests[-1].body)
    fake.enqueue_count_tokens(json_reply({"input_tokens": 4242}))
    assert client.messages.count_tokens(model=MODEL, messages=MSGS).input_tokens == 4242
    models = list(client.models.list())
    assert len(models) == 1 and models[0].id.startswith("claude-")
    assert fake.requests[-1].method == "GET" and fake.requests[-1].path == "/v1/models"


def test_requests_recorded(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=MSGS,
        extra_headers={"anthropic-beta": "a-2025-01-01,b-2025-02-02"},
    )
    req = fake.requests[0]
    assert (req.method, req.path, req.query) == ("POST", "/v1/messages", "")
    # anthropic 2.x sends the api_key as "authorization: Bearer" and a newer anthropic-version
    # (0.x sent "x-api-key" and "2023-06-01"); api_key() reads either header.
    assert req.api_key() == "sk-test"
    assert req.headers["anthropic-version"]
    assert req.headers["user-agent"].startswith("Anthropic/Python")
    assert req.headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    assert req.json() == {"model": MODEL, "max_tokens": 64, "messages": MSGS}


def test_expected_api_key(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.expected_api_key = "sk-right"
    with pytest.raises(anthropic.AuthenticationError) as info:
        client.messages.create(model=MODEL, max_tokens=8, messages=MSGS)
    body: Any = info.value.body
    assert body["error"]["type"] == "authentication_error"
    with anthropic.Anthropic(api_key="sk-right", base_url=fake.url, max_retries=0) as ok:
        assert ok.messages.create(model=MODEL, max_tokens=8, messages=MSGS).content
    # a raw client using the classic x-api-key header (and a repeated header) is accepted too
    data = json.dumps({"model": MODEL, "max_tokens": 8, "messages": MSGS}).encode()
    req = urllib.request.Request(f"{fake.url}/v1/messages?beta=true", data=data, method="POST")
    req.add_header("x-api-key", "sk-right")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.headers["content-type"] == "application/json"
        assert json.loads(resp.read())["content"][0]["text"] == "echo: Hello there"
    assert fake.requests[-1].query == "beta=true"
    assert fake.requests[-1].headers["x-api-key"] == "sk-right"


@pytest.mark.parametrize("kw", [{"hang_after": True}, {"delay_s": 0.2}])
def test_disconnect_detected(
    fake: FakeAnthropic, client: anthropic.Anthropic, kw: dict[str, Any]
) -> None:
    fake.enqueue(fixture_reply("text_stream.sse", **kw))
    assert not fake.wait_for_disconnect(0.05)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSGS) as stream:
        for event in stream:
            if event.type == "content_block_start":
                break  # leaving the block closes the HTTP response mid-stream
    assert fake.wait_for_disconnect(5)
    assert fake.disconnects == 1
    deadline = time.monotonic() + 5
    while fake.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.active_streams == 0


def test_stop_while_streams_hang() -> None:
    with FakeAnthropic() as fake:
        fake.enqueue(fixture_reply("message.json"), fixture_reply("text_stream.sse"))
        fake.enqueue(fixture_reply("text_stream.sse", hang_after=True))
        with anthropic.Anthropic(api_key="k", base_url=fake.url, max_retries=0) as c:
            assert c.messages.create(model=MODEL, max_tokens=8, messages=MSGS).id
            assert _stream_final(c).usage.output_tokens == 15  # FIFO order
            with c.messages.stream(model=MODEL, max_tokens=8, messages=MSGS) as stream:
                next(iter(stream))
                t0 = time.monotonic()
                fake.stop()  # must not wait for the hanging stream
                assert time.monotonic() - t0 < 3
    assert fake.disconnects == 0


def test_hang_and_slow_replies(fake: FakeAnthropic) -> None:
    fake.enqueue(hang_reply(), slow_reply(0.2, fixture_reply("message.json")))
    with anthropic.Anthropic(api_key="k", base_url=fake.url, max_retries=0, timeout=0.3) as c:
        with pytest.raises(anthropic.APITimeoutError):
            c.messages.create(model=MODEL, max_tokens=8, messages=MSGS)
        t0 = time.monotonic()
        msg = c.messages.create(model=MODEL, max_tokens=8, messages=MSGS)
        assert time.monotonic() - t0 >= 0.2 and msg.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert fake.wait_for_disconnect(5)  # the timed-out request's connection was dropped


def test_streams_run_concurrently(fake: FakeAnthropic) -> None:
    events = [("message_start", {"type": "message_start"})] * 2
    fake.enqueue(*(sse_reply(events, delay_s=0.3) for _ in range(3)))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with (
                anthropic.Anthropic(api_key="k", base_url=fake.url, max_retries=0) as c,
                c.messages.with_streaming_response.create(
                    model=MODEL, max_tokens=8, messages=MSGS, stream=True
                ) as resp,
            ):
                assert resp.read().count(b"event: message_start") == 2
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert fake.max_concurrent_streams == 3
    # The server closes its side just after the client has read the end: wait for it.
    deadline = time.monotonic() + 5
    while fake.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.active_streams == 0
