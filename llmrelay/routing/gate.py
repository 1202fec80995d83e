"""The first-chunk gate: hold a stream's preamble until its first content, then commit.

A provider can answer HTTP 200 and then fail before any content: Anthropic sends
``message_start`` and ``ping`` and then ``event: error`` / ``overloaded_error`` (Bifrost
#5395); an OpenAI-compatible provider sends a role-only first delta and then an error
chunk; a translated stream's first content event can be a
:class:`~llmrelay.core.events.StreamError`. The gate holds everything up to the first
*content-bearing* event, so such a stream falls back like an HTTP error status and the
client never sees the failed target's preamble. What it holds, the **preamble**:

* Anthropic wire (also Bedrock's event stream and Vertex, once framed as SSE):
  ``message_start``, ``ping`` and SSE comments (:func:`anthropic_preamble`);
* OpenAI wire: chunks whose every choice's ``delta`` carries no ``content``, ``refusal``,
  ``reasoning_content``/``reasoning``, ``tool_calls``, ``function_call`` or ``audio`` and
  no ``finish_reason`` (a role-only or empty first delta, Azure's ``choices: []`` chunk with
  ``prompt_filter_results``), and SSE comments (:func:`openai_preamble`);
* canonical events (translations): ``MessageStart`` and ``Ping`` (:func:`first_event`).

Any other event ends the preamble: content (a block start or delta, a choice delta with
content or tool calls), an error (the caller's :class:`Failure`), or the end of a message
(``message_delta``/``message_stop``, ``finish_reason``, a usage chunk, ``[DONE]``: an
empty answer is an answer). A stream that ends inside its preamble is a failure too.

Bounds: time is the executor's (``first_token_timeout_s``, else ``timeout_s`` and the
deadline, around the whole attempt, the preamble included). Bytes: the preamble's events
may add up to ``max_preamble_bytes`` (``server.max_stream_preamble_kb``, 64 KiB by default;
counted by event, so the outcome does not depend on how the network cut the bytes; the gate
holds at most that plus the rest of the chunk it is reading, and one event is bounded by
``server.max_sse_event_mb``); a translated stream at most :data:`MAX_PREAMBLE_EVENTS`
events. **When the cap is crossed the gate commits**: the held bytes go to the client and
the stream is relayed as it comes, as if content had arrived (no fallback is possible any
more; an error after that ends the stream as an error event), and a warning is logged
(:func:`log_capped`). A preamble that big is not a failure in itself, and dropping a stream
that may still answer would cost a whole new call.

Used for streams of virtual models only; ``account/model`` streams have nowhere to fall
back to and are relayed as they arrive, unheld.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from ..codecs.openai.errors import error_type_from_openai
from ..core.events import Event, MessageStart, Ping, StreamError
from ..core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent, parse_block

__all__ = [
    "DEFAULT_MAX_PREAMBLE_BYTES",
    "MAX_PREAMBLE_EVENTS",
    "Held",
    "HeldEvents",
    "aclose",
    "anthropic_event_error",
    "anthropic_preamble",
    "first_event",
    "hold_preamble",
    "log_capped",
    "openai_event_error",
    "openai_preamble",
    "stream_error",
]

log = logging.getLogger("llmrelay.routing")

#: ``server.max_stream_preamble_kb``'s default, in bytes.
DEFAULT_MAX_PREAMBLE_BYTES = 64 * 1024
#: Canonical events a translated stream's preamble may hold (a ``MessageStart`` and pings).
MAX_PREAMBLE_EVENTS = 256

_OPENAI_CONTENT = (
    "content",
    "refusal",
    "reasoning_content",
    "reasoning",
    "tool_calls",
    "function_call",
    "audio",
)


@dataclass(slots=True, frozen=True)
class Held:
    """What the gate read of an SSE stream: every byte (``head``, to be sent on unchanged
    before the rest), and the event that ended the preamble. ``first`` is None when the
    stream ended inside its preamble, or when ``capped``: the preamble outgrew its cap and
    the gate committed without content."""

    head: bytes
    first: SSEEvent | None
    capped: bool = False


def anthropic_preamble(event: SSEEvent) -> bool:
    """Whether an Anthropic stream event is preamble (``message_start``, ``ping``)."""
    return event.event in ("message_start", "ping")


def openai_preamble(event: SSEEvent) -> bool:
    """Whether a Chat Completions chunk is preamble: no content, tool calls, finish reason,
    usage or error in it (``openai/types/chat/chat_completion_chunk.py``)."""
    if event.data == b"[DONE]":
        return False
    try:
        chunk = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(chunk, dict) or chunk.get("error") or chunk.get("usage"):
        return False
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") is not None:
            return False
        delta = choice.get("delta")
        if not isinstance(delta, dict) or any(delta.get(k) for k in _OPENAI_CONTENT):
            return False
    return True


async def hold_preamble(
    chunks: AsyncIterator[bytes],
    is_preamble: Callable[[SSEEvent], bool],
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_preamble_bytes: int = DEFAULT_MAX_PREAMBLE_BYTES,
) -> Held:
    """Read ``chunks`` up to the first event ``is_preamble`` says is not preamble (comments
    are preamble), or until the preamble's events add up to more than ``max_preamble_bytes``
    (an event past the cap is not looked at: the gate has committed).

    Raises:
        SSEEventTooLarge: one event grew past ``max_event_bytes``.
        Provider errors propagate.
    """
    decoder = SSEDecoder(max_event_bytes)
    head: list[bytes] = []
    preamble = 0
    async for chunk in chunks:
        head.append(chunk)
        for block in decoder.blocks(chunk):
            event = parse_block(block)
            if event is not None and not is_preamble(event):
                return Held(b"".join(head), event)
            # Counted by event, not by network chunk: the outcome does not depend on how
            # the bytes were cut.
            preamble += len(block)
            if preamble > max_preamble_bytes:
                return Held(b"".join(head), None, capped=True)
    return Held(b"".join(head), None)


def log_capped(account: str, what: str) -> None:
    """Log (warning) that the gate committed to ``account``'s stream before its content
    because its preamble outgrew ``what`` (the cap, as the operator configures it)."""
    log.warning(
        "stream preamble past its cap: committed before content, no fallback",
        extra={"account": account, "limit": what},
    )


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
    return str(err.get("type") or "api_error"), str(err.get("message") or "")[:500]


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
    message = str(err.get("message") or "upstream stream error")[:500]
    return error_type_from_openai(None, err), message


@dataclass(slots=True, frozen=True)
class HeldEvents:
    """What the gate pulled of a canonical stream: the events (``head``, to be sent first)
    and the one that ended the preamble (None: the stream ended, or ``capped``)."""

    head: list[Event]
    first: Event | None
    capped: bool = False


async def first_event(
    events: AsyncIterator[Event], max_events: int = MAX_PREAMBLE_EVENTS
) -> HeldEvents:
    """Pull canonical events up to the first that is not ``MessageStart`` or ``Ping``, or
    until ``max_events`` were held."""
    head: list[Event] = []
    async for event in events:
        head.append(event)
        if not isinstance(event, MessageStart | Ping):
            return HeldEvents(head, event)
        if len(head) >= max_events:
            return HeldEvents(head, None, capped=True)
    return HeldEvents(head, None)


def stream_error(held: HeldEvents) -> tuple[str, str] | None:
    """(error type, message) when a translated stream failed inside its preamble."""
    if held.capped:
        return None
    event = held.first
    if event is None:
        return "api_error", "the provider's stream ended before its first content"
    if isinstance(event, StreamError):
        return event.error_type, event.message
    return None


async def aclose(iterator: AsyncIterator[object]) -> None:
    """Close an async generator (which releases its provider response); other iterators
    have nothing to close."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
