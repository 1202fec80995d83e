"""Properties of the OpenAI codec over generated inputs: any interleaving of stream chunks
decodes to a valid Anthropic stream with the same content; any request OpenAI can express
survives a round trip; any canonical stream encodes to chunks the OpenAI SDK folds back."""

from __future__ import annotations

import itertools
import json
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay.codecs.openai import decode_request, encode_request
from llmrelay.core.accumulate import accumulate
from llmrelay.core.events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    TextDelta,
    ThinkingDelta,
)
from llmrelay.core.types import (
    Block,
    ImageBlock,
    JSONObject,
    Message,
    Request,
    Response,
    StopReason,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from llmrelay.core.usage import Usage
from tests.codecs.test_openai_codec import (
    anthropic_sdk_message,
    check_sequence,
    decode_stream,
    encode_stream,
    openai_sdk_completion,
)

EXAMPLES = settings(max_examples=100, deadline=None)

texts = st.text(min_size=1, max_size=12)
names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects: st.SearchStrategy[JSONObject] = st.dictionaries(
    st.text(max_size=6), json_values, max_size=4
)


def _split(draw: st.DrawFn, s: str) -> list[str]:
    """``s`` cut at random places (empty pieces allowed, as servers send them)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(s)), max_size=6)))
    bounds = [0, *cuts, len(s)]
    return [s[a:b] for a, b in itertools.pairwise(bounds)]


# -- (1) any chunk interleaving -> a valid Anthropic stream with the same content ------


@st.composite
def openai_streams(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    reasoning = draw(st.lists(texts, max_size=3))
    text = draw(st.lists(texts, max_size=3))
    tools = []
    for i in range(draw(st.integers(0, 4))):
        args = draw(json_objects)
        raw = json.dumps(args, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
        tools.append(
            {"id": f"call_{i}", "name": draw(names), "input": args, "pieces": _split(draw, raw)}
        )
    # one queue per stream, merged in a random order that keeps each stream's own order
    queues: list[list[tuple[str, Any]]] = [
        [("reasoning", p) for p in reasoning],
        [("content", p) for p in text],
    ]
    for i, t in enumerate(tools):
        frags = []
        for k, piece in enumerate(t["pieces"]):
            call: dict[str, Any] = {"index": i, "function": {"arguments": piece}}
            if k == 0:
                call.update(id=t["id"], type="function")
                call["function"]["name"] = t["name"]
            frags.append(("tool", call))
        queues.append(frags)
    items = []
    while any(queues):
        q = draw(st.sampled_from([q for q in queues if q]))
        items.append(q.pop(0))
    base = {"id": "chatcmpl-p", "object": "chat.completion.chunk", "model": "up", "created": 1}
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    ]
    delta: dict[str, Any] = {}
    for kind, value in items:
        if (kind in delta and kind != "tool") or draw(st.booleans()):
            if delta:
                chunks.append({**base, "choices": [{"index": 0, "delta": delta}]})
            delta = {}
        if kind == "tool":
            delta.setdefault("tool_calls", []).append(value)
        else:
            delta[kind] = value
    if delta:
        chunks.append({**base, "choices": [{"index": 0, "delta": delta}]})
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 20},
    }
    finish = {"index": 0, "delta": {}, "finish_reason": "tool_calls" if tools else "stop"}
    where_usage = draw(st.sampled_from(["chunk", "finish", "none"]))
    chunks.append(
        {**base, "choices": [finish], **({"usage": usage} if where_usage == "finish" else {})}
    )
    if draw(st.booleans()):
        chunks.append({**base, "choices": None})
    if where_usage == "chunk":
        chunks.append({**base, "choices": [], "usage": usage})
    expected = {
        "thinking": "".join(reasoning),
        "text": "".join(text),
        "tools": [(t["id"], t["name"], t["input"]) for t in tools],
        "usage": where_usage != "none",
    }
    return chunks, expected


@EXAMPLES
@given(openai_streams())
def test_any_interleaving_decodes_to_a_valid_anthropic_stream(
    case: tuple[list[dict[str, Any]], dict[str, Any]],
) -> None:
    chunks, expected = case
    events = decode_stream(chunks)
    check_sequence(events)
    r = accumulate(events)
    assert (
        "".join(b.thinking for b in r.content if isinstance(b, ThinkingBlock))
        == expected["thinking"]
    )
    assert "".join(b.text for b in r.content if isinstance(b, TextBlock)) == expected["text"]
    got = sorted((b.id, b.name, b.input) for b in r.content if isinstance(b, ToolUseBlock))
    assert got == sorted(expected["tools"], key=lambda t: t[0])
    assert r.stop_reason == ("tool_use" if expected["tools"] else "end_turn")
    if expected["usage"]:
        assert (r.usage.input_tokens, r.usage.cache_read_input_tokens, r.usage.output_tokens) == (
            30,
            20,
            7,
        )
    sdk = anthropic_sdk_message(events)
    assert [b.type for b in sdk.content] == [b.type for b in r.content]
    assert [b.input for b in sdk.content if b.type == "tool_use"] == [
        b.input for b in r.content if isinstance(b, ToolUseBlock)
    ]


# -- (2) what OpenAI can express survives encode_request -> decode_request -------------


@st.composite
def requests(draw: st.DrawFn) -> Request:
    messages: list[Message] = []
    open_calls: list[str] = []
    for turn in range(draw(st.integers(1, 4))):
        if turn % 2 == 0:
            content: list[Block] = [
                ToolResultBlock(
                    tool_use_id=call_id,
                    content=draw(st.lists(texts.map(lambda t: TextBlock(text=t)), max_size=2)),
                    is_error=draw(st.sampled_from([None, False, True])),
                )
                for call_id in open_calls
            ]
            content += draw(
                st.lists(
                    texts.map(lambda t: TextBlock(text=t, cache_control={"type": "ephemeral"}))
                    | st.sampled_from(
                        [
                            ImageBlock(
                                source={
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "iVBOR",
                                }
                            ),
                            ImageBlock(source={"type": "url", "url": "https://e.com/a.jpg"}),
                        ]
                    ),
                    min_size=0 if open_calls else 1,
                    max_size=3,
                )
            )
            messages.append(Message(role="user", content=content))
            open_calls = []
        else:
            content = [ThinkingBlock(thinking="t", signature="s")] if draw(st.booleans()) else []
            content += draw(st.lists(texts.map(lambda t: TextBlock(text=t)), max_size=2))
            calls = draw(st.integers(0 if content else 1, 2))
            open_calls = [f"call_{turn}_{k}" for k in range(calls)]
            content += [
                ToolUseBlock(id=c, name=draw(names), input=draw(json_objects)) for c in open_calls
            ]
            messages.append(Message(role="assistant", content=content))
    tools = draw(
        st.none()
        | st.lists(
            st.builds(
                Tool,
                name=names,
                description=st.none() | texts,
                input_schema=st.just({"type": "object"}),
            ),
            min_size=1,
            max_size=3,
        )
    )
    choice = None
    if tools:
        choice = draw(
            st.none()
            | st.builds(
                ToolChoice,
                type=st.sampled_from(["auto", "any", "none"]),
                disable_parallel_tool_use=st.sampled_from([None, False, True]),
            )
            | st.just(ToolChoice(type="tool", name=tools[0].name))
        )
    return Request(
        model="claude",
        messages=messages,
        system=draw(
            st.none() | st.lists(texts.map(lambda t: TextBlock(text=t)), min_size=1, max_size=2)
        ),
        max_tokens=draw(st.none() | st.integers(1, 100_000)),
        stop_sequences=draw(st.none() | st.lists(texts, min_size=1, max_size=3)),
        temperature=draw(st.none() | st.floats(0, 1)),
        top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 50)),
        stream=draw(st.booleans()),
        tools=tools,
        tool_choice=choice,
        user=draw(st.none() | texts),
        output_schema=draw(st.none() | st.just(cast(JSONObject, {"type": "object"}))),
        output_schema_name=draw(st.none() | names),
    )


def expressible(r: Request) -> Request:
    """What of ``r`` OpenAI can carry: system text joined; tool results first in their turn,
    their text joined, ``is_error`` as a prefix; assistant text before tool calls; thinking,
    top_k, cache_control dropped; a schema named ``response`` when unnamed."""
    messages = []
    for m in r.messages:
        results: list[Block] = []
        rest: list[Block] = []
        for b in m.content:
            if isinstance(b, ToolResultBlock):
                text = ("Error: " if b.is_error else "") + "".join(
                    c.text for c in b.content if isinstance(c, TextBlock)
                )
                results.append(
                    ToolResultBlock(
                        tool_use_id=b.tool_use_id, content=[TextBlock(text=text)] if text else []
                    )
                )
            elif isinstance(b, TextBlock):
                rest.append(TextBlock(text=b.text))
            elif not isinstance(b, ThinkingBlock):
                rest.append(b)
        if m.role == "assistant":
            rest.sort(key=lambda b: isinstance(b, ToolUseBlock))
        messages.append(Message(role=m.role, content=results + rest))
    choice = r.tool_choice
    if choice is not None:
        choice = ToolChoice(
            type=choice.type,
            name=choice.name,
            disable_parallel_tool_use=choice.disable_parallel_tool_use or None,
        )
    return Request(
        model="gpt-x",
        messages=messages,
        system=[TextBlock(text="\n\n".join(b.text for b in r.system))] if r.system else None,
        max_tokens=r.max_tokens,
        stop_sequences=r.stop_sequences,
        temperature=r.temperature,
        top_p=r.top_p,
        stream=r.stream,
        tools=r.tools,
        tool_choice=choice if r.tools else None,
        user=r.user,
        output_schema=r.output_schema,
        output_schema_name=(r.output_schema_name or "response") if r.output_schema else None,
    )


@EXAMPLES
@given(requests())
def test_requests_survive_a_round_trip_through_openai(r: Request) -> None:
    body = json.loads(json.dumps(encode_request(r, model="gpt-x")))  # really JSON
    assert decode_request(body) == expressible(r)


# -- (3) any canonical stream -> chunks the OpenAI SDK folds to the same message --------


@st.composite
def canonical_streams(draw: st.DrawFn) -> tuple[list[Event], dict[str, Any]]:
    events: list[Event] = [
        MessageStart(message=Response(id="msg_1", model="c", usage=Usage(input_tokens=9)))
    ]
    text, thinking, tools = "", "", []
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "thinking", "tool"]))
        if kind == "tool":
            args = draw(json_objects)
            tools.append((f"toolu_{i}", draw(names), args))
            events.append(
                BlockStart(
                    index=i, block=ToolUseBlock(id=tools[-1][0], name=tools[-1][1], input={})
                )
            )
            for piece in _split(draw, json.dumps(args)):
                events.append(BlockDelta(index=i, delta=InputJSONDelta(partial_json=piece)))
        elif kind == "text":
            events.append(BlockStart(index=i, block=TextBlock(text="")))
            for piece in draw(st.lists(texts, max_size=3)):
                text += piece
                events.append(BlockDelta(index=i, delta=TextDelta(text=piece)))
        else:
            events.append(BlockStart(index=i, block=ThinkingBlock(thinking="")))
            for piece in draw(st.lists(texts, max_size=3)):
                thinking += piece
                events.append(BlockDelta(index=i, delta=ThinkingDelta(thinking=piece)))
        events.append(BlockStop(index=i))
    stop: StopReason = draw(
        st.sampled_from(["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"])
    )
    events += [MessageDelta(stop_reason=stop, usage=Usage(output_tokens=3)), MessageStop()]
    finish = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
    return events, {
        "text": text,
        "thinking": thinking,
        "tools": tools,
        "finish": finish.get(stop, "tool_calls" if stop == "tool_use" else "content_filter"),
    }


@EXAMPLES
@given(canonical_streams(), st.booleans())
def test_any_canonical_stream_folds_back_in_the_openai_sdk(
    case: tuple[list[Event], dict[str, Any]], include_usage: bool
) -> None:
    events, expected = case
    completion = openai_sdk_completion(encode_stream(events, include_usage=include_usage))
    msg = completion.choices[0].message
    assert (msg.content or "") == expected["text"]
    assert (msg.model_extra or {}).get("reasoning_content", "") == expected["thinking"]
    got = [(t.id, t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls or []]
    assert got == expected["tools"]
    assert completion.choices[0].finish_reason == expected["finish"]
    if include_usage:
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 3)
