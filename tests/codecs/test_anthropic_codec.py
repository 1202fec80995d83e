"""The Anthropic wire codec round-trips requests, responses and streams."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from llmrelay.codecs._shape import CodecError
from llmrelay.codecs.anthropic import (
    decode_event,
    decode_request,
    decode_response,
    encode_event,
    encode_request,
    encode_response,
)
from llmrelay.core.accumulate import StreamFailed, accumulate
from llmrelay.core.events import Event
from llmrelay.core.types import OpaqueBlock, TextBlock
from tests.test_messages_passthrough import REQUESTS

WIRE = Path(__file__).parent.parent / "wire" / "anthropic"


def with_list_content(body: dict[str, Any]) -> dict[str, Any]:
    """A string ``content`` or ``system`` means one text block; normalise for comparison."""
    out = copy.deepcopy(body)
    if isinstance(out.get("system"), str):
        out["system"] = [{"type": "text", "text": out["system"]}]
    for m in out["messages"]:
        if isinstance(m["content"], str):
            m["content"] = [{"type": "text", "text": m["content"]}]
        for b in m["content"]:
            if b.get("type") == "tool_result" and isinstance(b.get("content"), str):
                b["content"] = [{"type": "text", "text": b["content"]}]
    return out


CLAUDE_CODE_LIKE = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1"},
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "system", "content": "env"},
    ],
    "tools": [
        {
            "name": "Bash",
            "description": "run",
            "input_schema": {"type": "object"},
            "defer_loading": True,
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ],
    "metadata": {"user_id": '{"session_id":"s"}'},
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    "output_config": {"effort": "high"},
    "future_field": [1, {"a": None}],
}


@pytest.mark.parametrize("name", [*sorted(REQUESTS), "claude_code_like"])
def test_request_round_trip(name: str) -> None:
    body = (
        CLAUDE_CODE_LIKE
        if name == "claude_code_like"
        else {"model": "m", "max_tokens": 10, **REQUESTS[name]}
    )
    assert encode_request(decode_request(copy.deepcopy(body))) == with_list_content(body)


def test_unknown_block_types_are_kept_verbatim() -> None:
    block = {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "q"},
    }
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [block]}]}
    req = decode_request(body)
    assert isinstance(req.messages[0].content[0], OpaqueBlock)
    assert encode_request(req)["messages"] == [{"role": "assistant", "content": [block]}]


@pytest.mark.parametrize("name", ["message.json", "tool_use_message.json", "thinking_message.json"])
def test_response_round_trip(name: str) -> None:
    body = json.loads((WIRE / name).read_text())
    encoded = encode_response(decode_response(body))
    assert encoded == body


def sse_events(name: str) -> list[Event]:
    out = []
    for block in (WIRE / name).read_text().strip().split("\n\n"):
        data = next(line[6:] for line in block.splitlines() if line.startswith("data: "))
        event = decode_event(json.loads(data))
        assert event is not None
        out.append(event)
    return out


@pytest.mark.parametrize("name", ["text_stream.sse", "tool_use_stream.sse", "thinking_stream.sse"])
def test_stream_events_round_trip_and_accumulate(name: str) -> None:
    raw = [
        json.loads(next(line[6:] for line in b.splitlines() if line.startswith("data: ")))
        for b in (WIRE / name).read_text().strip().split("\n\n")
    ]
    events = sse_events(name)
    for data, event in zip(raw, events, strict=True):
        assert decode_event(encode_event(event)) == event
        if data["type"] in ("content_block_delta", "content_block_stop", "ping", "message_stop"):
            assert encode_event(event) == data
    message = accumulate(events)
    assert message.stop_reason is not None
    assert message.usage.output_tokens > 1


def test_text_stream_accumulates_to_the_same_message_as_the_json() -> None:
    streamed = accumulate(sse_events("text_stream.sse"))
    whole = decode_response(json.loads((WIRE / "message.json").read_text()))
    assert next(b for b in streamed.content if isinstance(b, TextBlock)).text == (
        next(b for b in whole.content if isinstance(b, TextBlock)).text
    )
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (25, 15)


def test_error_event_fails_the_fold() -> None:
    with pytest.raises(StreamFailed) as e:
        accumulate(sse_events("error_midstream.sse"))
    assert e.value.error_type == "overloaded_error"


@pytest.mark.parametrize("max_tokens", ["64", 1.5, [64], {"n": 64}, True])
def test_a_max_tokens_that_is_not_an_integer_is_a_codec_error(max_tokens: object) -> None:
    # It reached the translation as it was, which compared it with a model's
    # max_output_tokens: a TypeError, answered 500 (found by the ingress fuzz).
    body = {"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(CodecError, match="max_tokens: expected an integer"):
        decode_request(body)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tools", 15236, "tools: expected a list"),
        ("tools", True, "tools: expected a list"),
        ("stop_sequences", 7, "stop_sequences: expected a list of strings"),
        ("stop_sequences", "STOP", "stop_sequences: expected a list of strings"),
        ("stop_sequences", ["STOP", 1], "stop_sequences: expected a list of strings"),
    ],
)
def test_tools_and_stop_sequences_of_the_wrong_shape_are_a_codec_error(
    field: str, value: object, message: str
) -> None:
    # Iterated as they came: a TypeError in the translation to OpenAI, answered 500 (found
    # by the ingress fuzz); a string of stop sequences became one per character.
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(CodecError, match=message):
        decode_request({**body, field: value})
