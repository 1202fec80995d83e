"""The first-chunk gate: read a stream's first event before the client's response starts.

A provider can answer HTTP 200 and then fail at once (Anthropic's
``event: error`` / ``overloaded_error`` as the first event, an OpenAI error chunk, a
translated stream's first :class:`~llmrelay.core.events.StreamError`). Holding the client's
response headers until the first event has been read lets such a stream fall back like an
HTTP error. ``ping`` events and SSE comments are not a first event; they are held too and
forwarded with it. The bytes read are forwarded unchanged when the gate passes.

Used for streams of virtual models only; ``account/model`` streams are relayed as they
arrive. Time limits are the executor's (``first_token_timeout_s``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from ..codecs.openai.errors import error_type_from_openai
from ..core.events import Event, Ping, StreamError
from ..core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent, parse_block

__all__ = [
    "aclose",
    "anthropic_event_error",
    "first_event",
    "first_sse_event",
    "openai_event_error",
    "stream_error",
]


async def first_sse_event(
    chunks: AsyncIterator[bytes], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> tuple[bytes, SSEEvent | None]:
    """Read ``chunks`` up to the first SSE event that is not a ``ping`` or a comment.

    Returns every byte read (to be sent on as it is, before the rest of ``chunks``) and that
    event, or None when the stream ended without one. Provider errors propagate.
    """
    decoder = SSEDecoder(max_event_bytes)
    head: list[bytes] = []
    async for chunk in chunks:
        head.append(chunk)
        for block in decoder.blocks(chunk):
            event = parse_block(block)
            if event is None or event.event == "ping":
                continue
            return b"".join(head), event
    return b"".join(head), None


def anthropic_event_error(event: SSEEvent) -> tuple[str, str] | None:
    """(error type, message) when an Anthropic stream event is ``error``, else None."""
    if event.event != "error":
        return None
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return "api_error", event.data.decode("utf-8", "replace")[:500]
    return str(err.get("type") or "api_error"), str(err.get("message") or "")


def openai_event_error(event: SSEEvent) -> tuple[str, str] | None:
    """(Anthropic error type, message) when an OpenAI stream chunk is an error, else None."""
    if event.data.find(b'"error"') < 0:
        return None
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return None
    return error_type_from_openai(None, err), str(err.get("message") or "upstream stream error")


async def first_event(events: AsyncIterator[Event]) -> tuple[list[Event], Event | None]:
    """Pull canonical events up to the first one that is not a ``Ping``.

    Returns the events pulled (pings included, to be sent first) and that event, or None
    when the stream ended without one.
    """
    head: list[Event] = []
    async for event in events:
        head.append(event)
        if not isinstance(event, Ping):
            return head, event
    return head, None


def stream_error(event: Event | None) -> tuple[str, str] | None:
    """(error type, message) when a translated stream's first event is an error."""
    if event is None:
        return "api_error", "the provider's stream ended before its first event"
    if isinstance(event, StreamError):
        return event.error_type, event.message
    return None


async def aclose(iterator: AsyncIterator[object]) -> None:
    """Close an async generator (which releases its provider response); other iterators
    have nothing to close."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
