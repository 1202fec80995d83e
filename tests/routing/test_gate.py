"""The first-chunk gate reads up to a stream's first real event, and keeps every byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from llmrelay.core.events import MessageStart, Ping, StreamError
from llmrelay.core.types import Response
from llmrelay.routing.gate import (
    anthropic_event_error,
    first_event,
    first_sse_event,
    openai_event_error,
    stream_error,
)

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
START = b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n'
OVERLOADED = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
    b'"message":"Overloaded"}}\n\n'
)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def gate(*parts: bytes):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        it = chunks(*parts)
        head, first = await first_sse_event(it)
        rest = b"".join([c async for c in it])
        return head, first, rest

    return asyncio.run(run())


def test_pings_and_comments_are_held_with_the_first_event_and_bytes_kept() -> None:
    head, first, rest = gate(b": keep-alive\n\n", PING, START[:20], START[20:] + b"tail", b"more")
    assert first is not None and first.event == "message_start"
    assert anthropic_event_error(first) is None
    assert head == b": keep-alive\n\n" + PING + START + b"tail"
    assert rest == b"more"


def test_error_first_event_is_recognised() -> None:
    head, first, _ = gate(PING, OVERLOADED)
    assert first is not None
    assert anthropic_event_error(first) == ("overloaded_error", "Overloaded")
    assert head == PING + OVERLOADED


def test_stream_without_an_event_is_reported_as_none() -> None:
    head, first, _ = gate(PING, b"")
    assert first is None and head == PING


def test_openai_error_chunk_is_recognised() -> None:
    _, first, _ = gate(
        b'data: {"error": {"message": "busy", "type": "server_error", "code": 503}}\n\n'
    )
    assert first is not None
    assert openai_event_error(first) == ("overloaded_error", "busy")
    _, ok, _ = gate(b'data: {"id": "c", "choices": [{"delta": {"content": "error"}}]}\n\n')
    assert ok is not None and openai_event_error(ok) is None


def test_canonical_gate_skips_pings() -> None:
    start = MessageStart(message=Response(id="m", model="x", content=[]))

    async def run():  # type: ignore[no-untyped-def]
        async def events():  # type: ignore[no-untyped-def]
            yield Ping()
            yield start
            yield Ping()

        it = events()
        head, first = await first_event(it)
        return head, first, [e async for e in it]

    head, first, rest = asyncio.run(run())
    assert head == [Ping(), start] and first is start and rest == [Ping()]
    assert stream_error(first) is None
    assert stream_error(StreamError(error_type="rate_limit_error", message="m")) == (
        "rate_limit_error",
        "m",
    )
    assert stream_error(None) is not None
