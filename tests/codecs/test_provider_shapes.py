"""What a provider sends is decoded or refused with one typed error that says what and where.

Wrong-shaped JSON from a provider used to escape the codecs as KeyError, TypeError or
AttributeError and become a plain-text 500. Every decode of a provider's answer (response
bodies and stream events, both wires) now either succeeds or raises ``CodecError``, and
translation turns that into an ``UpstreamProtocolError`` (502) naming the provider account.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs import anthropic as ac
from llmrelay.codecs import openai as oc
from llmrelay.codecs._shape import CodecError
from llmrelay.core.events import BlockDelta, InputJSONDelta, MessageDelta, TextDelta
from llmrelay.core.sse import SSEDecoder
from llmrelay.core.types import Message, OpaqueBlock, Request, TextBlock, ToolUseBlock
from llmrelay.core.usage import Usage
from llmrelay.errors import UpstreamProtocolError
from llmrelay.providers.base import ProviderRequest, Wire
from llmrelay.translation import WireLimits, call_translated

WIRE = Path(__file__).parent.parent / "wire"


def sse_objects(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes().rstrip(b"\n") + b"\n\n"
    return [
        json.loads(ev.data) for ev in SSEDecoder().feed(raw) if ev.data and ev.data != b"[DONE]"
    ]


# -- Anthropic wire --------------------------------------------------------------------

ANTHROPIC_RESPONSES = [
    ({"content": "hello"}, "content: expected a list"),
    ({"content": [{"text": "x"}]}, "content[0].type: expected a string"),
    ({"content": [{"type": 3}]}, "content[0].type: expected a string"),
    ({"content": [None]}, "content[0]: expected an object"),
    ({"content": [{"type": "text", "text": 5}]}, "content[0].text: expected a string"),
    ({"content": [{"type": "text", "text": "a", "citations": {}}]}, "citations: expected a list"),
    ({"content": [{"type": "tool_use", "name": "f", "input": "{}"}]}, "input: expected an object"),
    ({"content": [{"type": "tool_use", "name": ["f"], "input": {}}]}, "name: expected a string"),
    ({"content": [{"type": "tool_result", "content": 4}]}, "content[0].content: expected a list"),
    ({"content": [{"type": "thinking", "thinking": {}}]}, "thinking: expected a string"),
    ({"content": [{"type": "image", "source": "x"}]}, "source: expected an object"),
    ({"content": [], "usage": {"input_tokens": "12"}}, "usage.input_tokens: expected an integer"),
    ({"content": [], "usage": {"output_tokens": 1.5}}, "output_tokens: expected an integer"),
    ({"content": [], "usage": {"output_tokens": True}}, "output_tokens: expected an integer"),
    ({"content": [], "usage": [1, 2]}, "usage: expected an object"),
    ({"content": [], "stop_reason": 1}, "stop_reason: expected a string"),
    ({"content": [], "id": {"a": 1}}, "id: expected a string"),
    ([], "message: expected an object"),
]


@pytest.mark.parametrize(("body", "message"), ANTHROPIC_RESPONSES)
def test_anthropic_response_shapes(body: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ac.decode_response(body)


DELTA = {"type": "text_delta", "text": "a"}
ANTHROPIC_EVENTS = [
    ({"type": "message_start"}, "message_start.message: expected an object"),
    ({"type": "message_start", "message": {"content": {}}}, "message_start.message.content"),
    ({"type": "content_block_start", "content_block": {"type": "text", "text": ""}}, "index"),
    ({"type": "content_block_start", "index": 0}, "content_block_start.content_block"),
    ({"type": "content_block_delta", "delta": DELTA}, "content_block_delta.index: expected an"),
    ({"type": "content_block_delta", "index": "0", "delta": DELTA}, "integer index"),
    ({"type": "content_block_delta", "index": -1, "delta": DELTA}, "integer index"),
    ({"type": "content_block_delta", "index": True, "delta": DELTA}, "integer index"),
    ({"type": "content_block_delta", "index": 0}, "content_block_delta.delta: expected an obj"),
    ({"type": "content_block_delta", "index": 0, "delta": "a"}, "delta: expected an object"),
    ({"type": "content_block_delta", "index": 0, "delta": {"text": "a"}}, "delta.type"),
    (
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
        "content_block_delta.delta.text: expected a string",
    ),
    (
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta"}},
        "delta.partial_json: expected a string",
    ),
    (
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta"}},
        "delta.citation: expected an object",
    ),
    ({"type": "content_block_stop"}, "content_block_stop.index: expected an integer"),
    ({"type": "message_delta", "delta": []}, "message_delta.delta: expected an object"),
    ({"type": "message_delta", "delta": {"stop_reason": 3}}, "delta.stop_reason"),
    ({"type": "message_delta", "usage": {"output_tokens": "9"}}, "message_delta.usage.output"),
]


@pytest.mark.parametrize(("event", "message"), ANTHROPIC_EVENTS)
def test_anthropic_event_shapes(event: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError) as info:
        ac.decode_event(event)
    assert message in str(info.value)


def test_anthropic_lenient_in() -> None:
    # Unknown event types, unknown delta types and events without a type are skipped;
    # unknown fields and block types are kept.
    assert ac.decode_event({"type": "future_event", "x": 1}) is None
    assert ac.decode_event({"no": "type"}) is None
    unknown_delta = {"type": "compaction_delta", "data": "..."}
    assert (
        ac.decode_event({"type": "content_block_delta", "index": 0, "delta": unknown_delta}) is None
    )
    r = ac.decode_response(
        {"content": [{"type": "server_tool_use", "id": "s"}], "future": [1], "stop_reason": "new"}
    )
    assert isinstance(r.content[0], OpaqueBlock) and r.extra == {"future": [1]}
    assert r.stop_reason == "new"
    assert ac.decode_event({"type": "content_block_delta", "index": 2.0, "delta": DELTA}) == (
        BlockDelta(index=2, delta=TextDelta(text="a"))
    )
    # message_delta usage may carry only output_tokens, or nulls.
    event = ac.decode_event({"type": "message_delta", "usage": {"output_tokens": 7, "x": None}})
    assert isinstance(event, MessageDelta) and event.usage.output_tokens == 7


def test_negative_token_counts_read_as_zero() -> None:
    r = ac.decode_response({"content": [], "usage": {"input_tokens": -5, "output_tokens": 3}})
    assert (r.usage.input_tokens, r.usage.output_tokens) == (0, 3)
    u = Usage(input_tokens=9)
    u.update_from_anthropic({"input_tokens": -1, "output_tokens": -7, "cache_read_input_tokens": 2})
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens) == (0, 0, 2)
    o = oc.decode_response({"choices": [], "usage": {"prompt_tokens": -4, "completion_tokens": -2}})
    assert (o.usage.input_tokens, o.usage.output_tokens) == (0, 0)


# -- OpenAI wire -----------------------------------------------------------------------


def message(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", **fields}}]}


OPENAI_RESPONSES = [
    ({"choices": "x"}, "choices: expected a list"),
    ({"choices": [1]}, "choices[0]: expected an object"),
    ({"choices": [{"message": "hi"}]}, "choices[0].message: expected an object"),
    (message(content=5), "choices[0].message.content: expected a string or a list"),
    (message(content=[{"type": "text", "text": 1}]), "content[0].text: expected a string"),
    (message(tool_calls={"id": "x"}), "choices[0].message.tool_calls: expected a list"),
    (message(tool_calls=["call"]), "tool_calls[0]: expected an object"),
    (message(tool_calls=[{"function": "f"}]), "tool_calls[0].function: expected an object"),
    (message(tool_calls=[{"function": {"name": 1}}]), "tool_calls[0].function.name: expected"),
    (message(tool_calls=[{"function": {"name": "f", "arguments": 3}}]), "arguments: expected"),
    (message(function_call="f"), "function_call: expected an object"),
    ({"choices": [{"message": {}, "finish_reason": 1}]}, "finish_reason: expected a string"),
    ({"choices": [], "usage": {"prompt_tokens": "10"}}, "usage.prompt_tokens: expected an int"),
    ({"choices": [], "usage": "lots"}, "usage: expected an object"),
]


@pytest.mark.parametrize(("body", "message"), OPENAI_RESPONSES)
def test_openai_response_shapes(body: dict[str, Any], message: str) -> None:
    with pytest.raises(CodecError) as info:
        oc.decode_response(body)
    assert message in str(info.value)


def chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


OPENAI_CHUNKS = [
    ({"choices": 5}, "choices: expected a list"),
    ({"choices": "abc"}, "choices: expected a list"),
    ({"choices": [[]]}, "choices[0]: expected an object"),
    ({"choices": [{"index": "0", "delta": {}}]}, "choices[0].index: expected an integer"),
    ({"choices": [{"delta": []}]}, "choices[0].delta: expected an object"),
    ({"choices": [{"delta": "hi"}]}, "choices[0].delta: expected an object"),
    (chunk(content={"text": "a"}), "choices[0].delta.content: expected a string or a list"),
    (chunk(tool_calls=3), "choices[0].delta.tool_calls: expected a list"),
    (chunk(tool_calls=["x"]), "choices[0].delta.tool_calls[0]: expected an object"),
    (chunk(tool_calls=[{"index": "a"}]), "tool_calls[0].index: expected an integer"),
    (chunk(tool_calls=[{"index": 0, "id": 7}]), "tool_calls[0].id: expected a string"),
    (chunk(tool_calls=[{"index": 0, "function": []}]), "tool_calls[0].function: expected an"),
    (chunk(tool_calls=[{"index": 0, "function": {"name": 1}}]), "function.name: expected"),
    (chunk(tool_calls=[{"function": {"arguments": 12}}]), "function.arguments: expected"),
    (chunk(function_call="f"), "choices[0].delta.function_call: expected an object"),
    ({"choices": [{"delta": {}, "finish_reason": ["stop"]}]}, "finish_reason: expected a str"),
    ({"choices": [], "usage": {"completion_tokens": "3"}}, "usage.completion_tokens: expected"),
    ({"choices": [], "usage": 3}, "usage: expected an object"),
]


@pytest.mark.parametrize(("data", "message"), OPENAI_CHUNKS)
def test_openai_chunk_shapes(data: dict[str, Any], message: str) -> None:
    decoder = oc.StreamDecoder(model="m")
    decoder.feed({"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    with pytest.raises(CodecError) as info:
        decoder.feed(data)
    assert message in str(info.value)


def test_openai_first_chunk_id_must_be_a_string() -> None:
    with pytest.raises(CodecError, match="id: expected a string"):
        oc.StreamDecoder(model="m").feed({"id": 5, "choices": []})


def test_openai_lenient_in() -> None:
    r = oc.decode_response(
        message(
            content=[{"type": "text", "text": "a"}, {"type": "thinking", "x": 1}, {"type": "text"}],
            reasoning={"effort": "high"},  # a shape this code does not read: ignored
            tool_calls=[{"id": "c1", "type": "custom", "custom": {"name": "g", "input": "x"}}],
        )
    )
    assert isinstance(r.content[0], TextBlock) and r.content[0].text == "a"
    assert isinstance(r.content[1], OpaqueBlock)
    deep = '{"a":' * 200 + "1" + "}" * 200
    r = oc.decode_response(message(tool_calls=[{"id": "c", "function": {"arguments": deep}}]))
    assert isinstance(r.content[0], ToolUseBlock) and r.content[0].input == {"_raw": deep}
    decoder = oc.StreamDecoder(model="m")
    events = decoder.feed(
        chunk(tool_calls=[{"index": 0, "function": {"name": "f", "arguments": {"a": 1}}}])
    )
    events += decoder.finish()
    assert BlockDelta(index=0, delta=InputJSONDelta(partial_json='{"a":1}')) in events


# -- any corruption of a valid answer: decoded or CodecError, nothing else ---------------

_any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _corrupt(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    out = copy.deepcopy(value)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


ANTHROPIC_SAMPLES = [
    *sse_objects(WIRE / "anthropic" / "text_stream.sse"),
    *sse_objects(WIRE / "anthropic" / "thinking_stream.sse"),
    json.loads((WIRE / "anthropic" / "tool_use_message.json").read_text()),
]
OPENAI_CHUNK_SAMPLES = [
    *sse_objects(WIRE / "openai" / "tool_calls_stream.sse"),
    *sse_objects(WIRE / "openai" / "reasoning_stream.sse"),
]
OPENAI_RESPONSE_SAMPLES = [
    json.loads((WIRE / "openai" / name).read_text())
    for name in ("chat_completion.json", "chat_completion_tool_calls.json")
]


def _pick(data: st.DataObject, samples: list[Any]) -> Any:
    sample = data.draw(st.sampled_from(samples))
    path = data.draw(st.sampled_from(_paths(sample)))
    return _corrupt(sample, path, data.draw(_any_json))


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_corrupt_anthropic_answers_decode_or_raise_codec_error(data: st.DataObject) -> None:
    value = _pick(data, ANTHROPIC_SAMPLES)
    try:
        if isinstance(value, dict) and value.get("type") != "message":
            ac.decode_event(value)
        else:
            ac.decode_response(value)
    except CodecError:
        pass


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_corrupt_openai_answers_decode_or_raise_codec_error(data: st.DataObject) -> None:
    chunks = [_pick(data, OPENAI_CHUNK_SAMPLES) for _ in range(3)]
    decoder = oc.StreamDecoder(model="m")
    try:
        for c in chunks:
            if isinstance(c, dict):
                decoder.feed(c)
        decoder.finish()
    except CodecError:
        pass
    body = _pick(data, OPENAI_RESPONSE_SAMPLES)
    try:
        if isinstance(body, dict):
            oc.decode_response(body)
    except CodecError:
        pass


# -- through translation: a 502 naming the provider ------------------------------------


class _Answer:
    def __init__(self, body: bytes, chunks: list[bytes] | None) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {}
        self.upstream_request_id = None
        self._body = body
        self._chunks = chunks
        self.closed = False

    @property
    def is_event_stream(self) -> bool:
        return self._chunks is not None

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for c in self._chunks or []:
            yield c

    def close(self) -> None:
        self.closed = True


class _Provider:
    def __init__(self, wire: Wire, body: bytes = b"", chunks: list[bytes] | None = None):
        self.account = "acme"
        self.wire: Wire = wire
        self.answer = _Answer(body, chunks)

    async def send(self, request: ProviderRequest) -> _Answer:
        return self.answer

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


def _request(stream: bool) -> Request:
    return Request(
        model="m",
        messages=[Message(role="user", content=[TextBlock(text="hi")])],
        max_tokens=9,
        stream=stream,
    )


async def _translate(
    provider: _Provider, stream: bool, limits: WireLimits | None = None
) -> list[Any]:
    limits = limits or WireLimits()
    result = await call_translated(provider, _request(stream), "m", limits=limits)  # type: ignore[arg-type]
    if result.events is None:
        return [result.response]
    return [e async for e in result.events]


NON_STREAM = [
    (
        "anthropic",
        b'{"content": "x"}',
        "provider 'acme' sent a malformed response: content: expected a list",
    ),
    ("anthropic", b"[1, 2]", "provider 'acme' sent a 200 response whose body is not a JSON object"),
    ("anthropic", b"<html>oops", "provider 'acme' sent a 200 response whose body is not JSON"),
    (
        "openai",
        b'{"choices": {"a": 1}}',
        "provider 'acme' sent a malformed response: choices: expected a list",
    ),
    (
        "openai",
        b'{"choices": [], "x": ' + b"[" * 200 + b"]" * 200 + b"}",
        "provider 'acme' sent a response nested deeper than 128 levels",
    ),
]


@pytest.mark.parametrize(("wire", "body", "message"), NON_STREAM)
def test_translated_response_errors_name_the_provider(
    wire: Wire, body: bytes, message: str
) -> None:
    provider = _Provider(wire, body)
    with pytest.raises(UpstreamProtocolError) as info:
        asyncio.run(_translate(provider, stream=False))
    assert str(info.value).startswith(message)
    assert info.value.status == 502
    assert provider.answer.closed


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


START = sse(
    "message_start",
    {"type": "message_start", "message": {"id": "m", "content": [], "usage": {"input_tokens": 1}}},
)
NO_INDEX = sse("content_block_delta", {"type": "content_block_delta", "delta": DELTA})
STREAMS = [
    (
        "anthropic",
        [
            START,
            NO_INDEX,
        ],
        "provider 'acme' sent a malformed stream event: content_block_delta.index: expected an"
        " integer index",
    ),
    (
        "anthropic",
        [START, b"event: content_block_delta\ndata: {oops\n\n"],
        "provider 'acme' sent a stream event whose data is not JSON: '{oops'",
    ),
    (
        "anthropic",
        [START, b"event: x\ndata: 3\n\n"],
        "provider 'acme' sent a stream event whose data is not a JSON object",
    ),
    (
        "openai",
        [b'data: {"id":"c","choices":[{"index":0,"delta":[]}]}\n\n'],
        "provider 'acme' sent a malformed stream chunk: choices[0].delta: expected an object",
    ),
    (
        "openai",
        [b'data: {"id":"c","choices":[]}\n\n', b"data: " + b"x" * 2000],
        "provider 'acme' sent an SSE event larger than 1024 bytes",
    ),
]


@pytest.mark.parametrize(("wire", "chunks", "message"), STREAMS)
def test_translated_stream_errors_name_the_provider(
    wire: Wire, chunks: list[bytes], message: str
) -> None:
    provider = _Provider(wire, chunks=chunks)
    with pytest.raises(UpstreamProtocolError) as info:
        asyncio.run(_translate(provider, stream=True, limits=WireLimits(max_event_bytes=1024)))
    assert str(info.value).startswith(message)
    assert provider.answer.closed
