"""Self-test: the official ``openai`` SDK, pointed directly at the fake, accepts its wire."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ParsedChatCompletion

from .openai_upstream import (
    CREATED,
    WIRE_DIR,
    FakeOpenAI,
    chunks_reply,
    count_tokens_for,
    error_reply,
    fixture_reply,
    hang_reply,
    openai_api_key,
    slow_reply,
)

MODEL = "gpt-4o-mini"
MSGS: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]
WEATHER = {"location": "Paris, France", "unit": "celsius"}
TIME = {"timezone": "Europe/Paris"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-test", base_url=fake.url + "/v1", max_retries=0) as c:
        yield c


def _stream_final(client: openai.OpenAI) -> ParsedChatCompletion[None]:
    with client.chat.completions.stream(model=MODEL, messages=MSGS) as stream:
        return stream.get_final_completion()


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def _chunks(raw: bytes) -> list[Any]:
    """Parse a data-only SSE body; asserts the OpenAI framing on the way."""
    blocks = [b for b in raw.decode().split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") and "\n" not in b for b in blocks), blocks
    assert blocks[-1] == "data: [DONE]"
    return [json.loads(b[6:]) for b in blocks[:-1]]


def test_fixture_files_are_wire_exact() -> None:
    for path in sorted(WIRE_DIR.glob("*.sse")):
        raw = path.read_bytes()
        assert raw.endswith(b"\n\ndata: [DONE]\n\n") and b"event:" not in raw, path.name
        chunks = _chunks(raw)
        assert {c["id"] for c in chunks} == {chunks[0]["id"]}
        assert chunks[0]["id"].startswith("chatcmpl-")
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        *body, last = chunks
        assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
        assert all(c["choices"] and c.get("usage") is None for c in body)
        finishes = [ch["finish_reason"] for c in body for ch in c["choices"]]
        assert all(f is None for f in finishes[:-1]) and finishes[-1] is not None
    for path in sorted(WIRE_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        if path.stem.startswith("error_"):
            assert set(data) == {"error"}
            assert set(data["error"]) == {"message", "type", "param", "code"}
        else:
            assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")


def test_json_text(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("chat_completion.json"))
    res = client.chat.completions.create(model=MODEL, messages=MSGS)
    assert res.object == "chat.completion" and res.id.startswith("chatcmpl-")
    choice = res.choices[0]
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert choice.message.content == "Hello, world! How can I help today?"
    assert choice.finish_reason == "stop" and choice.logprobs is None
    assert res.service_tier == "default" and res.system_fingerprint == "fp_560af6e559"
    u = res.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (
        1250,
        15,
        1265,
    )
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 1024
    assert u.completion_tokens_details is not None
    assert u.completion_tokens_details.reasoning_tokens == 0


def _check_tool_calls(message: Any) -> None:
    calls = message.tool_calls
    assert calls is not None and len(calls) == 2
    assert [(c.type, c.function.name) for c in calls] == [
        ("function", "get_weather"),
        ("function", "get_time"),
    ]
    assert [c.id for c in calls] == [
        "call_Wx1yZ2aB3cD4eF5gH6iJ7kL8",
        "call_Mn9oP0qR1sT2uV3wX4yZ5aB6",
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [WEATHER, TIME]


def test_json_tool_calls(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("chat_completion_tool_calls.json"))
    res = client.chat.completions.create(model=MODEL, messages=MSGS)
    assert res.choices[0].finish_reason == "tool_calls"
    assert res.choices[0].message.content is None
    _check_tool_calls(res.choices[0].message)


def test_json_reasoning_and_content_filter(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(
        fixture_reply("chat_completion_reasoning.json"), fixture_reply("content_filter.json")
    )
    res = client.chat.completions.create(model="deepseek-reasoner", messages=MSGS)
    msg = res.choices[0].message
    assert msg.content == "27 * 453 = 12,231"
    # not in the SDK's types: kept as a pydantic extra
    assert msg.model_extra == {"reasoning_content": "The user asks for 27 * 453. 27 * 453 = 12231."}
    assert res.usage is not None and res.usage.completion_tokens_details is not None
    assert res.usage.completion_tokens_details.reasoning_tokens == 28

    res = client.chat.completions.create(model=MODEL, messages=MSGS)
    assert res.choices[0].finish_reason == "content_filter"
    assert res.choices[0].message.content is None


def test_text_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("text_stream.sse"))
    with client.chat.completions.stream(model=MODEL, messages=MSGS) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert deltas == ["", "Hello", ", world!", " How can I", " help today?"]
    assert final.object == "chat.completion"  # the accumulator rewrites chunk -> completion
    assert final.id == "chatcmpl-CkT3sT1vY5pZ2aBcD4eF7gH8iJ9kM"
    assert final.choices[0].message.content == "Hello, world! How can I help today?"
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].finish_reason == "stop"
    assert final.system_fingerprint == "fp_560af6e559" and final.service_tier == "default"
    u = final.usage
    assert u is not None and (u.prompt_tokens, u.completion_tokens) == (1250, 15)
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 1024


def test_interleaved_tool_calls_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("tool_calls_stream.sse"))
    with client.chat.completions.stream(model=MODEL, messages=MSGS) as stream:
        arg_deltas = [
            (e.index, e.arguments_delta)
            for e in stream
            if e.type == "tool_calls.function.arguments.delta"
        ]
        final = stream.get_final_completion()
    assert [i for i, _ in arg_deltas] == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert json.loads("".join(d for i, d in arg_deltas if i == 0)) == WEATHER
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    _check_tool_calls(choice.message)
    u = final.usage
    assert u is not None and u.total_tokens == 358
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 256


def test_reasoning_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("reasoning_stream.sse"))
    final = _stream_final(client)
    msg = final.choices[0].message
    assert msg.content == "27 * 453 = 12,231"
    extra = msg.model_extra or {}
    assert extra["reasoning_content"] == "The user asks for 27 * 453. 27 * 453 = 12231."
    assert final.usage is not None and final.usage.completion_tokens_details is not None
    assert final.usage.completion_tokens_details.reasoning_tokens == 28


def test_length_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(fixture_reply("length_stream.sse"), fixture_reply("length_stream.sse"))
    # the SDK's stream helper refuses to finalise a truncated completion ...
    with pytest.raises(openai.LengthFinishReasonError) as info:
        _stream_final(client)
    snap = info.value.completion
    assert snap.choices[0].message.content == "Once upon a time, in a land far"
    assert snap.choices[0].finish_reason == "length"
    assert snap.usage is not None and snap.usage.completion_tokens == 8
    # ... while plain create(stream=True) just yields the chunks
    with client.chat.completions.create(model=MODEL, messages=MSGS, stream=True) as chunks:
        seen = list(chunks)
    assert [c.choices[0].finish_reason for c in seen if c.choices][-1] == "length"
    assert seen[-1].choices == [] and seen[-1].usage is not None


def test_error_midstream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    first = json.loads((WIRE_DIR / "text_stream.sse").read_text().split("\n\n")[0][6:])
    err = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}
    fake.enqueue(chunks_reply([first, err], done=False))
    with pytest.raises(openai.APIError) as info:
        _stream_final(client)
    assert info.value.message == "overloaded" and info.value.type == "server_error"


@pytest.mark.parametrize(
    ("status", "exc", "etype", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", "context_length_exceeded"),
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (429, openai.RateLimitError, "tokens", "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error", None),
    ],
)
def test_error_fixtures(
    fake: FakeOpenAI,
    client: openai.OpenAI,
    status: int,
    exc: type[openai.APIStatusError],
    etype: str,
    code: str | None,
) -> None:
    fake.enqueue(fixture_reply(f"error_{status}.json"))
    with pytest.raises(exc) as info:
        client.chat.completions.create(model=MODEL, messages=MSGS)
    err = info.value
    assert err.status_code == status and (err.type, err.code) == (etype, code)
    assert err.param == ("messages" if status == 400 else None)
    assert err.request_id is not None and err.request_id.startswith("req_")
    body: Any = err.body  # the SDK unwraps the "error" envelope
    assert set(body) == {"message", "type", "param", "code"}
    assert len(fake.requests) == 1  # max_retries=0


def test_other_errors(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.enqueue(error_reply(503, "The engine is currently overloaded, please try again later."))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MODEL, messages=MSGS)
    assert info.value.status_code == 503 and info.value.type == "server_error"
    with pytest.raises(openai.NotFoundError) as nf:
        client.models.retrieve("gpt-4o")  # the fake only serves the list
    assert nf.value.message.endswith("Invalid URL (GET /v1/models/gpt-4o)")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=MODEL, messages=MSGS, stream_options={"include_usage": True}
        )
    assert bad.value.param == "stream_options"


def test_default_create(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    res = client.chat.completions.create(
        model="gpt-x-test",
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "parts "}, {"type": "text", "text": "too"}],
            },
        ],
    )
    assert res.model == "gpt-x-test" and res.created == CREATED
    assert res.choices[0].message.content == "echo: parts too"
    assert res.choices[0].finish_reason == "stop"
    assert res.usage is not None
    assert res.usage.prompt_tokens == count_tokens_for(fake.requests[0].body)
    assert res.usage.completion_tokens == len("echo: parts too") // 4 + 1


@pytest.mark.parametrize("include_usage", [False, True])
def test_default_stream(fake: FakeOpenAI, client: openai.OpenAI, include_usage: bool) -> None:
    fake.default_stream_delay_s = 0.01
    opts: Any = {"include_usage": True} if include_usage else openai.omit
    with client.chat.completions.stream(
        model="gpt-y-test", messages=MSGS, stream_options=opts
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "echo: Hello there" and len(deltas) >= 4
    assert final.model == "gpt-y-test" and final.choices[0].finish_reason == "stop"
    if include_usage:
        assert final.usage is not None
        assert final.usage.prompt_tokens == count_tokens_for(fake.requests[0].body)
    else:
        assert final.usage is None

    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MSGS, stream=True, stream_options=opts
    ) as resp:
        assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert resp.headers["x-request-id"].startswith("req_")
        chunks = _chunks(resp.read())
    assert all("obfuscation" in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    if include_usage:
        assert all(c["usage"] is None for c in chunks[:-1])
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    else:
        assert all("usage" not in c and c["choices"] for c in chunks)
        assert chunks[-1]["choices"][0] == {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": "stop",
        }


def test_requests_recorded_and_models(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MSGS, extra_headers={"x-trace": "t1"})
    req = fake.chat_requests()[0]
    assert (req.method, req.path, req.query) == ("POST", "/v1/chat/completions", "")
    assert req.headers["authorization"] == "Bearer sk-test"
    assert openai_api_key(req.headers) == "sk-test"
    assert req.headers["user-agent"].startswith("OpenAI/Python")
    assert req.headers["x-trace"] == "t1"
    assert req.json() == {"model": MODEL, "messages": MSGS}
    models = list(client.models.list())
    assert [m.id for m in models][:2] == ["gpt-4o-mini", "gpt-4o"]
    assert all(m.object == "model" and m.owned_by == "system" for m in models)
    assert fake.requests[-1].path == "/v1/models"


def test_expected_api_key(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.expected_api_key = "sk-right-0123456789"
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=MODEL, messages=MSGS)
    assert info.value.code == "invalid_api_key"
    assert "Incorrect API key provided: sk-test." in info.value.message
    with openai.OpenAI(api_key="sk-right-0123456789", base_url=fake.url + "/v1") as ok:
        assert ok.chat.completions.create(model=MODEL, messages=MSGS).choices
    data = json.dumps({"model": MODEL, "messages": MSGS}).encode()
    raw = urllib.request.Request(f"{fake.url}/v1/chat/completions", data=data, method="POST")
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(raw, timeout=5)
    assert http.value.code == 401
    with http.value:
        assert json.loads(http.value.read())["error"]["code"] is None  # no key at all


def test_azure_client(fake: FakeOpenAI) -> None:
    fake.expected_api_key = "azure-key"
    with openai.AzureOpenAI(
        api_key="azure-key", azure_endpoint=fake.url, api_version="2024-10-21", max_retries=0
    ) as az:
        res = az.chat.completions.create(model="my-gpt4o", messages=MSGS)
        final = _stream_final_az(az)
    assert res.model == "my-gpt4o" and res.choices[0].message.content == "echo: Hello there"
    assert final.choices[0].message.content == "echo: Hello there"
    for req in fake.chat_requests():
        assert req.path == "/openai/deployments/my-gpt4o/chat/completions"
        assert req.query == "api-version=2024-10-21"
        assert req.headers["api-key"] == "azure-key" and "authorization" not in req.headers
    assert len(fake.chat_requests()) == 2


def _stream_final_az(az: openai.AzureOpenAI) -> ParsedChatCompletion[None]:
    with az.chat.completions.stream(model="my-gpt4o", messages=MSGS) as stream:
        return stream.get_final_completion()


@pytest.mark.parametrize("kw", [{"hang_after": True}, {"delay_s": 0.2}])
def test_disconnect_detected(fake: FakeOpenAI, client: openai.OpenAI, kw: dict[str, Any]) -> None:
    fake.enqueue(fixture_reply("text_stream.sse", **kw))
    assert not fake.wait_for_disconnect(0.05)
    with client.chat.completions.stream(model=MODEL, messages=MSGS) as stream:
        for event in stream:
            if event.type == "content.delta":
                break  # leaving the block closes the HTTP response mid-stream
    assert fake.wait_for_disconnect(5) and fake.disconnects == 1
    assert _eventually(lambda: fake.active_streams == 0)


def test_hang_and_slow_replies(fake: FakeOpenAI) -> None:
    fake.enqueue(hang_reply(), slow_reply(0.2, fixture_reply("chat_completion.json")))
    with openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0, timeout=0.3) as c:
        with pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model=MODEL, messages=MSGS)
        t0 = time.monotonic()
        res = c.chat.completions.create(model=MODEL, messages=MSGS)
        assert time.monotonic() - t0 >= 0.2 and res.id == "chatcmpl-CkT3pQ8sV2mW9xYzA1bC4dE5fG6hJ"
    assert fake.wait_for_disconnect(5)  # the timed-out request's connection was dropped


def test_streams_run_concurrently(fake: FakeOpenAI) -> None:
    fake.default_stream_delay_s = 0.15

    def one_stream(_: int) -> str | None:
        with openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0) as c:
            return _stream_final(c).choices[0].message.content

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(one_stream, range(3))) == ["echo: Hello there"] * 3
    assert fake.max_concurrent_streams == 3 and fake.active_streams == 0


def test_sdk_accumulator_pitfalls(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    """Why a translator must send role/id/name once and usage last (lib/streaming/_deltas.py)."""
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    usage = {
        **head,
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    fake.enqueue(
        chunks_reply(
            [
                chunk({"role": "assistant", "tool_calls": [call]}),
                usage,  # too early: later chunks overwrite usage with None
                chunk({"role": "assistant", "tool_calls": [call]}, "tool_calls"),
            ]
        )
    )
    final = _stream_final(client)
    msg = final.choices[0].message
    assert msg.role == "assistantassistant"  # type: ignore[comparison-overlap]
    assert msg.tool_calls is not None
    tool = msg.tool_calls[0]
    assert (tool.id, tool.function.name) == ("call_1call_1", "ff")  # strings are concatenated
    assert final.usage is None
