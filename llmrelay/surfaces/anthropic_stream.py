"""Reading what usage accounting needs out of an Anthropic SSE stream, without changing it.

Usage comes from ``message_start.message.usage`` and the cumulative ``message_delta.usage``
(``anthropic/lib/streaming/_messages.py`` accumulates it the same way), and, for counts those
left at zero, from Bedrock's ``amazon-bedrock-invocationMetrics`` on ``message_stop``; an
``error`` event's ``error.type`` is kept. Every other event is only framed, never parsed.
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

    def _bedrock_metrics(self, data: dict[str, object] | None) -> None:
        """Bedrock's ``amazon-bedrock-invocationMetrics`` on ``message_stop``: the counts it
        has fill in what the stream's own usage did not carry."""
        metrics = data.get("amazon-bedrock-invocationMetrics") if data else None
        if not isinstance(metrics, dict):
            return
        u = self.usage
        pairs = (
            ("inputTokenCount", "input_tokens"),
            ("outputTokenCount", "output_tokens"),
            ("cacheReadInputTokenCount", "cache_read_input_tokens"),
            ("cacheWriteInputTokenCount", "cache_creation_input_tokens"),
        )
        for key, field in pairs:
            value = _int(metrics.get(key))
            if value is not None and not getattr(u, field):
                setattr(u, field, value)

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
            elif name == "message_stop" and ev.data.find(b"invocationMetrics") >= 0:
                self._bedrock_metrics(_loads(ev.data))
            elif name == "error":
                data = _loads(ev.data)
                err = data.get("error") if data else None
                self.error_type = str(err.get("type")) if isinstance(err, dict) else "api_error"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _loads(data: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
