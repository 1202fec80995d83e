"""Reading what usage accounting needs out of an Anthropic SSE stream, without changing it.

Usage comes from ``message_start.message.usage`` and the cumulative ``message_delta.usage``
(``anthropic/lib/streaming/_messages.py`` accumulates it the same way); an ``error`` event's
``error.type`` is kept. Every other event is only framed, never parsed.
"""

from __future__ import annotations

import orjson

from ..core.usage import Usage
from .sse import SSEDecoder, parse_block

_SKIP = (b"event: content_block", b"event: ping")

__all__ = ["AnthropicStreamTap"]


class AnthropicStreamTap:
    __slots__ = ("_decoder", "error_type", "usage")

    def __init__(self, usage: Usage) -> None:
        self._decoder = SSEDecoder()
        self.usage = usage
        self.error_type: str | None = None

    def feed(self, chunk: bytes) -> None:
        for block in self._decoder.blocks(chunk):
            # Deltas, block starts/stops and pings are most of a stream and carry no usage:
            # skip them on their first bytes (Anthropic puts the event: line first).
            if block.startswith(_SKIP):
                continue
            ev = parse_block(block)
            if ev is None:
                continue
            name = ev.event
            if name == "message_start":
                data = _loads(ev.data)
                message = data.get("message") if data else None
                usage = message.get("usage") if isinstance(message, dict) else None
                if isinstance(usage, dict):
                    self.usage.update_from_anthropic(usage)
            elif name == "message_delta":
                data = _loads(ev.data)
                usage = data.get("usage") if data else None
                if isinstance(usage, dict):
                    self.usage.update_from_anthropic(usage)
            elif name == "error":
                data = _loads(ev.data)
                err = data.get("error") if data else None
                self.error_type = str(err.get("type")) if isinstance(err, dict) else "api_error"


def _loads(data: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
