"""The OpenAI Chat Completions codec: golden wire fixtures, request mapping rows, and both
SDKs' own stream accumulators as the judges of what the stream codecs produce."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from openai import ContentFilterFinishReasonError, LengthFinishReasonError
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from llmrelay.codecs.anthropic import CodecError, encode_event
from llmrelay.codecs.openai import (
    StreamDecoder,
    StreamEncoder,
    Untranslatable,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    error_from_openai,
    error_to_openai,
)
from llmrelay.core.accumulate import StreamFailed, accumulate
from llmrelay.core.events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from llmrelay.core.types import (
    Block,
    DocumentBlock,
    ImageBlock,
    JSONObject,
    Message,
    OpaqueBlock,
    RedactedThinkingBlock,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from llmrelay.core.usage import Usage

WIRE = Path(__file__).parent.parent / "wire" / "openai"
_ANTHROPIC_EVENT: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)

# -- helpers shared with test_openai_properties -----------------------------------------


def sse_chunks(name: str) -> list[dict[str, Any]]:
    """The ``data:`` objects of a fixture, ``[DONE]`` left out."""
    lines = (WIRE / name).read_text().splitlines()
    return [json.loads(x[6:]) for x in lines if x.startswith("data: ") and x[6:] != "[DONE]"]


def decode_stream(chunks: Iterable[dict[str, Any]], model: str = "m") -> list[Event]:
    d = StreamDecoder(model=model)
    events = [e for c in chunks for e in d.feed(c)]
    return events + d.finish()


def check_sequence(events: list[Event]) -> None:
    """Anthropic's ordering rules: message_start first; blocks numbered 0, 1, ... that never
    overlap; deltas only to the open block; message_delta after all blocks; message_stop last."""
    assert isinstance(events[0], MessageStart)
    assert not events[0].message.content
    assert isinstance(events[-1], MessageStop)
    assert isinstance(events[-2], MessageDelta)
    open_index: int | None = None
    next_index = 0
    for e in events[1:-2]:
        if isinstance(e, BlockStart):
            assert open_index is None, f"block {e.index} started while {open_index} is open"
            assert e.index == next_index
            open_index, next_index = e.index, next_index + 1
        elif isinstance(e, BlockDelta):
            assert e.index == open_index
        elif isinstance(e, BlockStop):
            assert e.index == open_index
            open_index = None
        else:
            raise AssertionError(f"unexpected {e.type} inside the message")
    assert open_index is None


def anthropic_sdk_message(events: list[Event]) -> Any:
    """Fold the events, as wire JSON, with the Anthropic SDK's own accumulator."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for e in events:
        raw = _ANTHROPIC_EVENT.validate_python(encode_event(e))
        snapshot = accumulate_event(event=raw, current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def openai_sdk_completion(chunks: list[dict[str, Any]]) -> Any:
    """Fold the chunks with the OpenAI SDK's ``ChatCompletionStreamState``."""
    state: ChatCompletionStreamState[object] = ChatCompletionStreamState()
    for c in chunks:
        assert "error" not in c
        list(state.handle_chunk(ChatCompletionChunk.model_validate(c)))
    try:
        return state.get_final_completion()
    except (LengthFinishReasonError, ContentFilterFinishReasonError):
        # the SDK refuses to parse these; the folded snapshot is still the message
        return state.current_completion_snapshot


def encode_stream(events: list[Event], include_usage: bool = True) -> list[dict[str, Any]]:
    enc = StreamEncoder(id="chatcmpl-x", model="gpt-x", created=1, include_usage=include_usage)
    return [c for e in events for c in enc.feed(e)]


def _tools(r: Response) -> list[ToolUseBlock]:
    return [b for b in r.content if isinstance(b, ToolUseBlock)]


def _text(r: Response) -> str:
    return "".join(b.text for b in r.content if isinstance(b, TextBlock))


# -- responses --------------------------------------------------------------------------


def test_text_completion_maps_usage_with_cached_tokens_split_out() -> None:
    r = decode_response(json.loads((WIRE / "chat_completion.json").read_text()))
    assert r.id == "chatcmpl-CkT3pQ8sV2mW9xYzA1bC4dE5fG6hJ"
    assert r.content == [TextBlock(text="Hello, world! How can I help today?")]
    assert r.stop_reason == "end_turn"
    assert r.usage == Usage(
        input_tokens=1250 - 1024, output_tokens=15, cache_read_input_tokens=1024
    )
    assert r.extra == {}  # Response.extra would reach Anthropic clients verbatim


def test_tool_calls_completion_parses_both_inputs() -> None:
    r = decode_response(json.loads((WIRE / "chat_completion_tool_calls.json").read_text()))
    assert r.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in _tools(r)] == [
        (
            "call_Wx1yZ2aB3cD4eF5gH6iJ7kL8",
            "get_weather",
            {"location": "Paris, France", "unit": "celsius"},
        ),
        ("call_Mn9oP0qR1sT2uV3wX4yZ5aB6", "get_time", {"timezone": "Europe/Paris"}),
    ]


def test_reasoning_content_becomes_a_leading_thinking_block() -> None:
    r = decode_response(json.loads((WIRE / "chat_completion_reasoning.json").read_text()))
    assert r.content == [
        ThinkingBlock(thinking="The user asks for 27 * 453. 27 * 453 = 12231.", signature=""),
        TextBlock(text="27 * 453 = 12,231"),
    ]


def test_content_filter_is_a_refusal() -> None:
    r = decode_response(json.loads((WIRE / "content_filter.json").read_text()))
    assert (r.stop_reason, r.content) == ("refusal", [])


def _completion(message: dict[str, Any], finish_reason: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "c",
        "model": "m",
        "choices": [{"message": message, "finish_reason": finish_reason}],
    }


@pytest.mark.parametrize(
    ("message", "finish_reason", "content", "stop"),
    [
        ({"content": None, "refusal": "I can't"}, "stop", [TextBlock(text="I can't")], "end_turn"),
        (
            {"reasoning": "hm", "content": "x"},
            "stop",
            [ThinkingBlock(thinking="hm"), TextBlock(text="x")],
            "end_turn",
        ),
        (
            {
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                ]
            },
            "stop",  # some servers say "stop" after tool calls
            [ToolUseBlock(id="a", name="f", input={"_raw": "{oops"})],
            "tool_use",
        ),
        (
            {
                "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            },
            "tool_calls",
            [ToolUseBlock(id="a", name="f", input={})],
            "tool_use",
        ),
        (
            {"function_call": {"name": "f", "arguments": '{"x": 1}'}},
            "function_call",
            [ToolUseBlock(id="call_c", name="f", input={"x": 1})],
            "tool_use",
        ),
        ({"content": "x"}, "length", [TextBlock(text="x")], "max_tokens"),
        ({"content": "x"}, "eos", [TextBlock(text="x")], "end_turn"),
    ],
)
def test_response_message_rows(
    message: dict[str, Any], finish_reason: str, content: list[Block], stop: str
) -> None:
    r = decode_response(_completion(message, finish_reason))
    assert (r.content, r.stop_reason) == (content, stop)


def test_deepseek_cache_hit_tokens_count_as_cache_reads() -> None:
    body = _completion({"content": "x"})
    body["usage"] = {"prompt_tokens": 100, "completion_tokens": 3, "prompt_cache_hit_tokens": 60}
    assert decode_response(body).usage == Usage(
        input_tokens=40, output_tokens=3, cache_read_input_tokens=60
    )


def test_encoded_response_validates_as_an_sdk_chat_completion() -> None:
    r = Response(
        id="msg_1",
        model="claude",
        content=[
            ThinkingBlock(thinking="think", signature="sig"),
            TextBlock(text="Hello "),
            TextBlock(text="there"),
            ToolUseBlock(id="toolu_1", name="f", input={"a": [1, 2]}),
            RedactedThinkingBlock(data="xx"),
        ],
        stop_reason="tool_use",
        usage=Usage(
            input_tokens=10,
            output_tokens=5,
            cache_read_input_tokens=7,
            cache_creation_input_tokens=3,
        ),
    )
    body = encode_response(r, model="gpt-x", created=5)
    c = ChatCompletion.model_validate(body)
    msg = c.choices[0].message
    assert (c.id, c.model, c.created, msg.content) == ("msg_1", "gpt-x", 5, "Hello there")
    assert c.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None
    assert [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [  # type: ignore[union-attr]
        ("toolu_1", "f", {"a": [1, 2]})
    ]
    assert body["choices"][0]["message"]["reasoning_content"] == "think"
    assert c.usage is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (20, 5, 25)
    assert c.usage.prompt_tokens_details is not None
    assert c.usage.prompt_tokens_details.cached_tokens == 7
    # and back: the cache write folds into input tokens, which is all OpenAI can say
    back = decode_response(body)
    assert back.usage == Usage(input_tokens=13, output_tokens=5, cache_read_input_tokens=7)
    assert _text(back) == "Hello there" and _tools(back)[0].input == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        (None, "stop"),
    ],
)
def test_stop_reason_to_finish_reason(stop: Any, finish: str) -> None:
    body = encode_response(Response(id="i", model="m", stop_reason=stop), model="m", created=0)
    assert body["choices"][0]["finish_reason"] == finish


# -- streams: provider side (OpenAI chunks -> canonical) --------------------------------


@pytest.mark.parametrize(
    ("stream", "whole"),
    [
        ("text_stream.sse", "chat_completion.json"),
        ("reasoning_stream.sse", "chat_completion_reasoning.json"),
    ],
)
def test_stream_accumulates_to_the_same_message_as_the_json(stream: str, whole: str) -> None:
    events = decode_stream(sse_chunks(stream))
    check_sequence(events)
    streamed = accumulate(events)
    expected = decode_response(json.loads((WIRE / whole).read_text()))
    assert (streamed.content, streamed.stop_reason, streamed.usage) == (
        expected.content,
        expected.stop_reason,
        expected.usage,
    )


def test_interleaved_tool_call_stream_gives_both_inputs() -> None:
    events = decode_stream(sse_chunks("tool_calls_stream.sse"))
    check_sequence(events)
    r = accumulate(events)
    assert r.stop_reason == "tool_use"
    assert [(b.id, b.name, b.input) for b in _tools(r)] == [
        (
            "call_Wx1yZ2aB3cD4eF5gH6iJ7kL8",
            "get_weather",
            {"location": "Paris, France", "unit": "celsius"},
        ),
        ("call_Mn9oP0qR1sT2uV3wX4yZ5aB6", "get_time", {"timezone": "Europe/Paris"}),
    ]
    assert r.usage == Usage(input_tokens=54, output_tokens=48, cache_read_input_tokens=256)


def test_first_tool_call_arguments_stream_live_and_later_calls_flush_when_it_completes() -> None:
    chunks = sse_chunks("tool_calls_stream.sse")
    d = StreamDecoder(model="m")
    per_chunk = [d.feed(c) for c in chunks]
    # each chunk carrying a fragment of call 0 yields that fragment at once
    for chunk, events in zip(chunks, per_chunk, strict=True):
        for call in chunk["choices"][0]["delta"].get("tool_calls", []) if chunk["choices"] else []:
            fragment = call["function"]["arguments"]
            if call["index"] == 0 and fragment:
                assert InputJSONDelta(partial_json=fragment) in [
                    e.delta for e in events if isinstance(e, BlockDelta)
                ]
    # call 1 waits for call 0's closing brace, then comes out whole, in the same feed
    closing = next(i for i, c in enumerate(chunks) if '"elsius' in json.dumps(c))
    kinds = [e.type for e in per_chunk[closing]]
    assert kinds == [
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
    ]


def test_length_stream_stops_at_max_tokens() -> None:
    r = accumulate(decode_stream(sse_chunks("length_stream.sse")))
    assert (_text(r), r.stop_reason, r.usage.output_tokens) == (
        "Once upon a time, in a land far",
        "max_tokens",
        8,
    )


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **kw: Any
) -> dict[str, Any]:
    c: dict[str, Any] = {"id": "chatcmpl-1", "model": "up", "object": "chat.completion.chunk"}
    c["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    c.update(kw)
    return c


def test_stream_quirks_choices_null_no_done_usage_on_finish_chunk() -> None:
    chunks = [
        _chunk(choices=None),
        _chunk({"role": "assistant", "content": None, "tool_calls": None}),
        _chunk({"content": "hi"}),
        _chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 2}),
    ]
    events = decode_stream(chunks)
    check_sequence(events)
    r = accumulate(events)
    assert (_text(r), r.usage.input_tokens, r.usage.output_tokens) == ("hi", 9, 2)


def test_usage_chunk_before_finish_reason_and_repeated_ids_names() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "{"},
    }
    again = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": "}"},
    }
    chunks = [
        _chunk({"tool_calls": [call]}),
        _chunk({"tool_calls": [again]}),
        _chunk(usage={"prompt_tokens": 4, "completion_tokens": 1}),
        _chunk({}, "tool_calls"),
    ]
    r = accumulate(decode_stream(chunks))
    assert [(b.id, b.name, b.input) for b in _tools(r)] == [("call_1", "f", {})]
    assert r.usage.input_tokens == 4


def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    chunks = [
        _chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x":1}'}}]}),
        _chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
        _chunk({}, "stop"),  # and "stop" after tool calls still means tool_use
    ]
    r = accumulate(decode_stream(chunks))
    assert [(b.id, b.name, b.input) for b in _tools(r)] == [("a", "f", {"x": 1}), ("b", "g", {})]
    assert r.stop_reason == "tool_use"


def test_text_arriving_while_a_tool_call_is_incomplete_waits_for_it() -> None:
    chunks = [
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x"'}}
                ]
            }
        ),
        _chunk({"content": "note", "reasoning_content": "why"}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        _chunk({"content": " more"}),
        _chunk({}, "tool_calls"),
    ]
    events = decode_stream(chunks)
    check_sequence(events)
    r = accumulate(events)
    assert [b.type for b in r.content] == ["tool_use", "thinking", "text"]
    assert _text(r) == "note more"


def test_error_chunk_mid_stream_is_a_stream_error() -> None:
    chunks = [
        *sse_chunks("text_stream.sse")[:3],
        {"error": {"message": "overloaded", "type": "server_error"}},
    ]
    events = decode_stream(chunks)
    assert events[-1] == StreamError(error_type="api_error", message="overloaded")
    with pytest.raises(StreamFailed):
        accumulate(events)


def test_rate_limit_error_chunk_and_empty_stream() -> None:
    d = StreamDecoder(model="m")
    err = d.feed({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
    assert err == [StreamError(error_type="rate_limit_error", message="slow down")]
    assert d.finish() == []
    assert decode_stream([]) == [
        StreamError(error_type="api_error", message="upstream stream was empty")
    ]


def test_stream_without_finish_reason_still_ends_validly() -> None:
    events = decode_stream([_chunk({"content": "cut"})])
    check_sequence(events)
    assert accumulate(events).stop_reason == "end_turn"


@pytest.mark.parametrize(
    "name",
    ["text_stream.sse", "tool_calls_stream.sse", "reasoning_stream.sse", "length_stream.sse"],
)
def test_decoded_streams_satisfy_the_anthropic_sdk_accumulator(name: str) -> None:
    events = decode_stream(sse_chunks(name))
    message = anthropic_sdk_message(events)
    ours = accumulate(events)
    assert message.stop_reason == ours.stop_reason
    assert [b.type for b in message.content] == [b.type for b in ours.content]
    for sdk_block, block in zip(message.content, ours.content, strict=True):
        if isinstance(block, ToolUseBlock):
            assert (sdk_block.id, sdk_block.name, sdk_block.input) == (
                block.id,
                block.name,
                block.input,
            )
    assert message.usage.input_tokens == ours.usage.input_tokens
    assert message.usage.cache_read_input_tokens == ours.usage.cache_read_input_tokens


# -- streams: surface side (canonical -> OpenAI chunks) ---------------------------------


def _canonical_tool_stream() -> list[Event]:
    return [
        MessageStart(
            message=Response(
                id="msg_1", model="claude", usage=Usage(input_tokens=30, cache_read_input_tokens=5)
            )
        ),
        BlockStart(index=0, block=ThinkingBlock(thinking="")),
        BlockDelta(index=0, delta=ThinkingDelta(thinking="let me ")),
        BlockDelta(index=0, delta=ThinkingDelta(thinking="see")),
        BlockStop(index=0),
        BlockStart(index=1, block=TextBlock(text="")),
        BlockDelta(index=1, delta=TextDelta(text="Checking")),
        BlockStop(index=1),
        BlockStart(index=2, block=ToolUseBlock(id="toolu_a", name="weather", input={})),
        BlockDelta(index=2, delta=InputJSONDelta(partial_json='{"city": ')),
        BlockDelta(index=2, delta=InputJSONDelta(partial_json='"Paris"}')),
        BlockStop(index=2),
        BlockStart(index=3, block=ToolUseBlock(id="toolu_b", name="time", input={"tz": "UTC"})),
        BlockStop(index=3),  # input given whole at the start, no deltas
        MessageDelta(stop_reason="tool_use", usage=Usage(output_tokens=12)),
        MessageStop(),
    ]


def test_encoded_stream_folds_in_the_openai_sdk() -> None:
    chunks = encode_stream(_canonical_tool_stream())
    completion = openai_sdk_completion(chunks)
    msg = completion.choices[0].message
    assert msg.role == "assistant" and msg.content == "Checking"
    assert [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [
        ("toolu_a", "weather", {"city": "Paris"}),
        ("toolu_b", "time", {"tz": "UTC"}),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.prompt_tokens == 35 and completion.usage.completion_tokens == 12
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert msg.model_extra["reasoning_content"] == "let me see"


def test_encoded_stream_wire_shape() -> None:
    chunks = encode_stream(_canonical_tool_stream())
    roles = [c["choices"][0]["delta"].get("role") for c in chunks if c["choices"]]
    assert roles[0] == "assistant" and not any(roles[1:])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 47
    assert all(c["usage"] is None for c in chunks[:-1])
    calls = [
        t for c in chunks if c["choices"] for t in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert all("function" in t for t in calls)
    firsts = [t for t in calls if "id" in t]
    assert [t["index"] for t in firsts] == [0, 1] and all("name" in t["function"] for t in firsts)
    assert not any("name" in t["function"] for t in calls if "id" not in t)


def test_encoded_stream_without_usage_has_no_usage_chunk() -> None:
    chunks = encode_stream(_canonical_tool_stream(), include_usage=False)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_stream_through_both_codecs_keeps_text_and_tools() -> None:
    """provider OpenAI -> canonical -> surface OpenAI, judged by the OpenAI SDK."""
    for name in ("text_stream.sse", "tool_calls_stream.sse", "reasoning_stream.sse"):
        events = decode_stream(sse_chunks(name))
        completion = openai_sdk_completion(encode_stream(events))
        r = accumulate(events)
        assert (completion.choices[0].message.content or "") == _text(r)
        got = [
            (t.id, t.function.name, json.loads(t.function.arguments))
            for t in completion.choices[0].message.tool_calls or []
        ]
        assert got == [(b.id, b.name, b.input) for b in _tools(r)]


def test_stream_error_becomes_an_error_chunk() -> None:
    enc = StreamEncoder(id="i", model="m", created=0, include_usage=True)
    assert enc.feed(StreamError(error_type="overloaded_error", message="busy")) == [
        {
            "error": {
                "message": "busy",
                "type": "server_error",
                "param": None,
                "code": "overloaded_error",
            }
        }
    ]


# -- requests: canonical -> OpenAI ------------------------------------------------------


def _req(**kw: Any) -> Request:
    kw.setdefault("messages", [Message(role="user", content=[TextBlock(text="hi")])])
    return Request(model="claude", **kw)


_PNG: JSONObject = {"type": "base64", "media_type": "image/png", "data": "iVBOR"}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            _req(
                system=[
                    TextBlock(text="a"),
                    TextBlock(text="b", cache_control={"type": "ephemeral"}),
                ]
            ),
            {
                "messages": [
                    {"role": "system", "content": "a\n\nb"},
                    {"role": "user", "content": "hi"},
                ]
            },
            id="system-blocks-joined",
        ),
        pytest.param(
            _req(
                messages=[
                    Message(
                        role="user",
                        content=[
                            TextBlock(text="a"),
                            ImageBlock(source=_PNG),
                            ImageBlock(source={"type": "url", "url": "https://x/i.png"}),
                        ],
                    )
                ]
            ),
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "a"},
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,iVBOR"},
                            },
                            {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                        ],
                    }
                ]
            },
            id="images",
        ),
        pytest.param(
            _req(
                messages=[
                    Message(role="user", content=[TextBlock(text="go")]),
                    Message(
                        role="assistant",
                        content=[
                            ThinkingBlock(thinking="t", signature="s"),
                            TextBlock(text="ok"),
                            ToolUseBlock(id="t1", name="f", input={"a": 1}),
                            ToolUseBlock(id="t2", name="g", input={}),
                        ],
                    ),
                    Message(
                        role="user",
                        content=[
                            TextBlock(text="and then"),
                            ToolResultBlock(
                                tool_use_id="t1",
                                content=[TextBlock(text="r1"), TextBlock(text="r2")],
                            ),
                            ToolResultBlock(
                                tool_use_id="t2", content=[TextBlock(text="boom")], is_error=True
                            ),
                        ],
                    ),
                ]
            ),
            {
                "messages": [
                    {"role": "user", "content": "go"},
                    {
                        "role": "assistant",
                        "content": "ok",
                        "tool_calls": [
                            {
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"a":1}'},
                            },
                            {
                                "id": "t2",
                                "type": "function",
                                "function": {"name": "g", "arguments": "{}"},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": "t1", "content": "r1r2"},
                    {"role": "tool", "tool_call_id": "t2", "content": "Error: boom"},
                    {"role": "user", "content": "and then"},
                ]
            },
            id="tool-turns-thinking-dropped-results-first",
        ),
        pytest.param(
            _req(
                messages=[
                    Message(role="assistant", content=[ToolUseBlock(id="t", name="f", input={})])
                ]
            ),
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    }
                ]
            },
            id="assistant-tool-calls-only",
        ),
        pytest.param(
            _req(
                tools=[
                    Tool(
                        name="f",
                        description="d",
                        input_schema={"type": "object"},
                        extra={"strict": True},
                    ),
                    Tool(name="g", type="custom"),
                ]
            ),
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "description": "d",
                            "parameters": {"type": "object"},
                            "strict": True,
                        },
                    },
                    {"type": "function", "function": {"name": "g"}},
                ]
            },
            id="tools",
        ),
        pytest.param(
            _req(tools=[Tool(name="f")], tool_choice=ToolChoice(type="auto")),
            {"tool_choice": "auto"},
            id="choice-auto",
        ),
        pytest.param(
            _req(tools=[Tool(name="f")], tool_choice=ToolChoice(type="any")),
            {"tool_choice": "required"},
            id="choice-any",
        ),
        pytest.param(
            _req(tools=[Tool(name="f")], tool_choice=ToolChoice(type="none")),
            {"tool_choice": "none"},
            id="choice-none",
        ),
        pytest.param(
            _req(
                tools=[Tool(name="f")],
                tool_choice=ToolChoice(type="tool", name="f", disable_parallel_tool_use=True),
            ),
            {
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "parallel_tool_calls": False,
            },
            id="choice-tool-no-parallel",
        ),
        pytest.param(
            _req(tool_choice=ToolChoice(type="auto")),
            {"tool_choice": None, "tools": None},
            id="choice-without-tools-dropped",
        ),
        pytest.param(_req(stop_sequences=["END", "STOP"]), {"stop": ["END", "STOP"]}, id="stop"),
        pytest.param(
            _req(max_tokens=100),
            {"max_completion_tokens": 100, "max_tokens": None},
            id="max-tokens",
        ),
        pytest.param(
            _req(temperature=0.3, top_p=0.9, top_k=40),
            {"temperature": 0.3, "top_p": 0.9, "top_k": None},
            id="sampling",
        ),
        pytest.param(_req(user="u-1"), {"user": "u-1"}, id="user"),
        pytest.param(
            _req(thinking=ThinkingConfig(type="enabled", budget_tokens=2000)),
            {"thinking": None, "reasoning_effort": None},
            id="thinking-config-dropped",
        ),
        pytest.param(
            _req(output_schema={"type": "object"}, output_schema_name="answer"),
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": {"type": "object"}},
                }
            },
            id="output-schema",
        ),
        pytest.param(
            _req(
                extra={
                    "output_config": {
                        "format": {"type": "json_schema", "schema": {"type": "object"}}
                    },
                    "context_management": {},
                }
            ),
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "response", "schema": {"type": "object"}},
                },
                "output_config": None,
                "context_management": None,
            },
            id="output-config-format",
        ),
        pytest.param(
            _req(stream=True),
            {"stream": True, "stream_options": {"include_usage": True}},
            id="stream",
        ),
        pytest.param(
            _req(
                messages=[
                    Message(
                        role="user",
                        content=[
                            DocumentBlock(
                                source={"type": "text", "media_type": "text/plain", "data": "doc"}
                            )
                        ],
                    )
                ]
            ),
            {"messages": [{"role": "user", "content": "doc"}]},
            id="text-document",
        ),
        pytest.param(
            _req(
                messages=[
                    Message(role="system", content=[TextBlock(text="env")]),
                    Message(role="user", content=[TextBlock(text="hi")]),
                ]
            ),
            {"messages": [{"role": "system", "content": "env"}, {"role": "user", "content": "hi"}]},
            id="system-turn-in-messages",
        ),
    ],
)
def test_encode_request_rows(request_: Request, expected: dict[str, Any]) -> None:
    body = encode_request(request_, model="gpt-x")
    assert body["model"] == "gpt-x"
    for key, value in expected.items():
        assert body.get(key) == value, key


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_req(tools=[Tool(name="web_search", type="web_search_20250305")]), "tools[0]"),
        (
            _req(
                messages=[
                    Message(
                        role="user",
                        content=[
                            DocumentBlock(
                                source={
                                    "type": "base64",
                                    "media_type": "application/pdf",
                                    "data": "JVBER",
                                }
                            )
                        ],
                    )
                ]
            ),
            "messages[0].content[0]",
        ),
        (
            _req(
                messages=[
                    Message(
                        role="user",
                        content=[
                            ToolResultBlock(tool_use_id="t", content=[ImageBlock(source=_PNG)])
                        ],
                    )
                ]
            ),
            "messages[0].content[0].content[0]",
        ),
        (
            _req(messages=[Message(role="assistant", content=[ImageBlock(source=_PNG)])]),
            "messages[0].content[0]",
        ),
        (
            _req(
                messages=[
                    Message(
                        role="assistant",
                        content=[OpaqueBlock(raw={"type": "server_tool_use", "id": "s"})],
                    )
                ]
            ),
            "messages[0].content[0]",
        ),
        (
            _req(
                messages=[
                    Message(
                        role="user", content=[ImageBlock(source={"type": "file", "file_id": "f"})]
                    )
                ]
            ),
            "messages[0].content[0].source",
        ),
        (_req(extra={"mcp_servers": [{"type": "url"}]}), "mcp_servers"),
    ],
)
def test_untranslatable_requests_name_the_field(request_: Request, field: str) -> None:
    with pytest.raises(Untranslatable) as e:
        encode_request(request_, model="gpt-x")
    assert e.value.field == field
    assert str(e.value) == f"{field}: {e.value.reason}"
    assert isinstance(e.value, ValueError)


# -- requests: OpenAI -> canonical ------------------------------------------------------


def test_decode_request_full_conversation() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "really"}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/", "detail": "low"},
                    },
                    {
                        "type": "file",
                        "file": {
                            "file_data": "data:application/pdf;base64,JVBER",
                            "filename": "a.pdf",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "hidden",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"q": 1}'},
                    },
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "thanks"},
            {"role": "system", "content": "late"},
        ],
        "max_tokens": 50,
        "max_completion_tokens": 60,
        "stop": "END",
        "temperature": 1.5,
        "top_p": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
            },
            {"type": "function", "function": {"name": "g"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u",
        "seed": 3,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}},
        },
    }
    r = decode_request(body)
    assert r.system == [TextBlock(text="be brief"), TextBlock(text="really")]
    assert [m.role for m in r.messages] == ["user", "assistant", "user", "system"]
    assert r.messages[0].content == [
        TextBlock(text="look"),
        ImageBlock(source={"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}),
        DocumentBlock(source={"type": "base64", "media_type": "application/pdf", "data": "JVBER"}),
    ]
    assert r.messages[1].content == [
        ToolUseBlock(id="c1", name="f", input={"q": 1}),
        ToolUseBlock(id="c2", name="g", input={}),
    ]
    assert r.messages[2].content == [
        ToolResultBlock(tool_use_id="c1", content=[TextBlock(text="one")]),
        ToolResultBlock(tool_use_id="c2", content=[TextBlock(text="two")]),
        TextBlock(text="thanks"),
    ]
    assert (r.max_tokens, r.stop_sequences, r.temperature, r.top_p, r.stream, r.user) == (
        60,
        ["END"],
        1.0,
        0.5,
        True,
        "u",
    )
    assert r.tools == [
        Tool(name="f", input_schema={"type": "object"}),
        Tool(name="g", input_schema={"type": "object", "properties": {}}),
    ]
    assert r.tool_choice == ToolChoice(type="any", disable_parallel_tool_use=True)
    assert (r.output_schema, r.output_schema_name) == ({"type": "object"}, "out")
    assert r.extra == {}  # nothing OpenAI-only may reach an Anthropic body


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}
                ]
            },
            "messages[0].content[0].file",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "allowed_tools"},
            },
            "tool_choice",
        ),
        ({"stop": 5}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"functions": [{"name": "f"}]}, "functions"),
    ],
)
def test_decode_request_errors_name_the_field(patch: dict[str, Any], field: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **patch}
    with pytest.raises(CodecError) as e:
        decode_request(body)
    assert str(e.value).startswith(f"{field}:")


def test_decode_request_small_rows() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert decode_request(
        {
            **base,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        }
    ).tool_choice == ToolChoice(type="tool", name="f")
    assert decode_request(
        {
            **base,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "parallel_tool_calls": False,
        }
    ).tool_choice == ToolChoice(type="auto", disable_parallel_tool_use=True)
    assert decode_request({**base, "tool_choice": "auto"}).tool_choice is None  # no tools
    assert (
        decode_request({**base, "response_format": {"type": "json_object"}}).output_schema is None
    )
    assert decode_request({**base, "safety_identifier": "s"}).user == "s"
    assert decode_request(
        {
            **base,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        }
    ).messages[0].content == [ImageBlock(source={"type": "url", "url": "https://x/y.png"})]
    trailing = decode_request(
        {
            **base,
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": ""},
            ],
        }
    )
    assert trailing.messages[1].content == [ToolResultBlock(tool_use_id="a", content=[])]


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "error_type"),
    [
        ("error_400.json", 400, "invalid_request_error"),
        ("error_401.json", 401, "authentication_error"),
        ("error_429.json", 429, "rate_limit_error"),
        ("error_500.json", 500, "api_error"),
    ],
)
def test_error_fixtures_map_to_anthropic_types(name: str, status: int, error_type: str) -> None:
    body = json.loads((WIRE / name).read_text())
    assert error_from_openai(status, body) == (error_type, body["error"]["message"])


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            503,
            {"error": {"message": "engine overloaded"}},
            ("overloaded_error", "engine overloaded"),
        ),
        (
            400,
            {"object": "error", "message": "bad", "type": "BadRequestError", "code": 400},
            ("invalid_request_error", "bad"),
        ),
        (422, {"detail": "nope"}, ("invalid_request_error", "nope")),
        (502, b"<html>bad gateway</html>", ("api_error", "<html>bad gateway</html>")),
        (500, {"error": "plain"}, ("api_error", "plain")),
        (504, None, ("timeout_error", "upstream answered HTTP 504")),
    ],
)
def test_error_bodies_of_any_shape(status: int, body: object, expected: tuple[str, str]) -> None:
    assert error_from_openai(status, body) == expected


def test_error_to_openai_envelope() -> None:
    assert error_to_openai(401, "authentication_error", "bad key") == {
        "error": {
            "message": "bad key",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert error_to_openai(429, "rate_limit_error", "slow")["error"]["type"] == "requests"
    assert error_to_openai(529, "overloaded_error", "busy")["error"]["type"] == "server_error"


def test_claude_code_billing_line_and_tool_references() -> None:
    from llmrelay.codecs.anthropic import decode_request as decode_anthropic

    req = decode_anthropic(
        {
            "model": "m",
            "max_tokens": 10,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.3.abc;"},
                {"type": "text", "text": "You are Claude Code."},
            ],
            "messages": [
                {"role": "user", "content": "load WebFetch"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {"q": "x"}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "tool_reference", "tool_name": "WebFetch"}],
                        }
                    ],
                },
            ],
        }
    )
    body = encode_request(req, model="gpt")
    assert body["messages"][0] == {"role": "system", "content": "You are Claude Code."}
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    assert tool == {"role": "tool", "tool_call_id": "t1", "content": "Tool loaded: WebFetch"}
