"""The first-chunk gate holds a stream's preamble up to its first content, keeps every byte,
and commits when the preamble outgrows its cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from llmrelay.core.events import (
    BlockStart,
    MessageStart,
    Ping,
    StreamError,
)
from llmrelay.core.sse import SSEEvent
from llmrelay.core.types import Response, TextBlock
from llmrelay.routing.gate import (
    Held,
    anthropic_event_error,
    anthropic_preamble,
    first_event,
    hold_preamble,
    openai_event_error,
    openai_preamble,
    stream_error,
)

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
START = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
BLOCK = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
OVERLOADED = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"Overloaded"}}\n\n'
)
ROLE = b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
AZURE_FILTER = b'data: {"id":"","choices":[],"prompt_filter_results":[]}\n\n'
TEXT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
OPENAI_ERROR = b'data: {"error": {"message": "busy", "type": "server_error", "code": 503}}\n\n'


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def gate(
    *parts: bytes, preamble: Callable[[SSEEvent], bool] = anthropic_preamble, cap: int = 65536
) -> tuple[Held, bytes]:
    async def run() -> tuple[Held, bytes]:
        it = chunks(*parts)
        held = await hold_preamble(it, preamble, max_preamble_bytes=cap)
        rest = b"".join([c async for c in it])
        return held, rest

    return asyncio.run(run())


def test_message_start_pings_and_comments_are_held_until_content() -> None:
    held, rest = gate(b": keep-alive\n\n", START, PING, BLOCK[:20], BLOCK[20:] + b"tail", b"more")
    assert held.first is not None and held.first.event == "content_block_start"
    assert anthropic_event_error(held.first) is None and not held.capped
    assert held.head == b": keep-alive\n\n" + START + PING + BLOCK + b"tail"
    assert rest == b"more"


def test_an_error_after_message_start_and_ping_is_the_first_event() -> None:
    held, _ = gate(START, PING, OVERLOADED)
    assert held.first is not None
    assert anthropic_event_error(held.first) == ("overloaded_error", "Overloaded")
    assert held.head == START + PING + OVERLOADED


def test_a_stream_that_ends_in_its_preamble_has_no_first_event() -> None:
    held, _ = gate(START, PING, b"")
    assert held.first is None and not held.capped and held.head == START + PING


def test_an_empty_message_is_an_answer_not_a_preamble() -> None:
    stop = b'event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{}}\n\n'
    held, _ = gate(START, stop)
    assert held.first is not None and held.first.event == "message_delta"


def test_a_preamble_past_the_cap_commits_without_content() -> None:
    held, rest = gate(START, *([PING] * 10), OVERLOADED, cap=len(START) + 3 * len(PING))
    assert held.capped and held.first is None
    assert held.head == START + 4 * PING  # held up to the chunk that crossed the cap
    assert rest == 6 * PING + OVERLOADED
    # Counted by event: the same outcome when everything arrives in one network chunk.
    held, rest = gate(START + 10 * PING + OVERLOADED, cap=len(START) + 3 * len(PING))
    assert held.capped and held.first is None and rest == b""


def test_openai_role_only_and_filter_chunks_are_preamble() -> None:
    held, _ = gate(AZURE_FILTER, ROLE, OPENAI_ERROR, preamble=openai_preamble)
    assert held.first is not None
    assert openai_event_error(held.first) == ("overloaded_error", "busy")
    assert held.head == AZURE_FILTER + ROLE + OPENAI_ERROR
    held, _ = gate(ROLE, TEXT, preamble=openai_preamble)
    assert held.first is not None and openai_event_error(held.first) is None
    assert held.first.data == TEXT[6:-2]


def test_openai_content_tool_calls_finish_and_usage_end_the_preamble() -> None:
    ends = [
        b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t"}]}}]}',
        b'{"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}',
        b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0}}',
        b"[DONE]",
        b"not json",
    ]
    for data in ends:
        assert not openai_preamble(SSEEvent(None, data)), data
    assert openai_preamble(SSEEvent(None, b'{"choices":[{"index":0,"delta":{"content":null}}]}'))


def test_canonical_gate_holds_message_start_and_pings() -> None:
    start = MessageStart(message=Response(id="m", model="x", content=[]))
    block = BlockStart(index=0, block=TextBlock(text=""))

    async def run():  # type: ignore[no-untyped-def]
        async def events():  # type: ignore[no-untyped-def]
            yield Ping()
            yield start
            yield Ping()
            yield block
            yield Ping()

        it = events()
        held = await first_event(it)
        return held, [e async for e in it]

    held, rest = asyncio.run(run())
    assert held.head == [Ping(), start, Ping(), block] and held.first is block
    assert rest == [Ping()]
    assert stream_error(held) is None


def test_canonical_gate_reports_an_error_in_the_preamble_and_caps_events() -> None:
    start = MessageStart(message=Response(id="m", model="x", content=[]))
    error = StreamError(error_type="rate_limit_error", message="m")

    async def run(*items, cap=256):  # type: ignore[no-untyped-def]
        async def events():  # type: ignore[no-untyped-def]
            for item in items:
                yield item

        return await first_event(events(), cap)

    assert stream_error(asyncio.run(run(start, Ping(), error))) == ("rate_limit_error", "m")
    ended = asyncio.run(run(start))
    assert ended.first is None and stream_error(ended) is not None
    capped = asyncio.run(run(start, Ping(), Ping(), error, cap=3))
    assert capped.capped and stream_error(capped) is None and len(capped.head) == 3
