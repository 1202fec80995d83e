"""Relaying an Anthropic SSE stream, and reading what usage accounting needs out of it
without changing it.

Usage comes from ``message_start.message.usage`` and the cumulative ``message_delta.usage``
(``anthropic/lib/streaming/_messages.py`` accumulates it the same way), and, for counts those
left at zero, from Bedrock's ``amazon-bedrock-invocationMetrics`` on ``message_stop``; an
``error`` event's ``error.type`` is kept. Every other event is only framed, never parsed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from ..core.sse import SSEDecoder, encode_event, parse_block
from ..core.usage import Usage
from ..errors import GatewayError, status_for_error_type
from ..providers.base import ProviderResponse
from ..routing.executor import Failure, Success
from ..routing.gate import anthropic_event_error, first_sse_event

if TYPE_CHECKING:
    from .call import AttemptResult, Call

_SKIP = (b"event: content_block", b"event: ping")
_ENDED = "the provider's stream ended before its first event"

__all__ = ["AnthropicRelay", "AnthropicStreamTap", "gated_stream"]


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


class AnthropicRelay:
    """A 200 SSE answer relayed as it arrives, bytes first and the usage tap after. ``head``
    is what the first-chunk gate already read from ``chunks``."""

    __slots__ = ("_chunks", "_head", "_up", "headers", "upstream_request_id")

    def __init__(
        self,
        up: ProviderResponse,
        headers: dict[str, str],
        head: bytes = b"",
        chunks: AsyncIterator[bytes] | None = None,
    ) -> None:
        self._up = up
        self._head = head
        self._chunks = chunks if chunks is not None else up.iter_chunks()
        self.headers = headers
        self.upstream_request_id = up.upstream_request_id

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        record = call.record
        tap = AnthropicStreamTap(call.usage)
        resp = web.StreamResponse(status=200, headers={**self.headers, **headers})
        try:
            await resp.prepare(call.request)
            try:
                if self._head:
                    record.ttft_s = time.perf_counter() - call.started
                    await resp.write(self._head)
                    tap.feed(self._head)
                async for chunk in self._chunks:
                    if record.ttft_s is None:
                        record.ttft_s = time.perf_counter() - call.started
                    # Bytes first, bookkeeping after: the tap's JSON parse of message_start
                    # must not hold the first event back.
                    await resp.write(chunk)
                    tap.feed(chunk)
            except GatewayError as err:
                # Headers are sent: end the stream the way Anthropic does, with an error event.
                tap.error_type = err.error_type
                error = {"type": "error", "error": {"type": err.error_type, "message": err.message}}
                await resp.write(encode_event("error", error))
            record.status = 200
            record.error_type = tap.error_type
            await resp.write_eof()
        except ConnectionResetError:
            record.status = 499
            record.error_type = "client_disconnected"
        finally:
            self._up.close()
        return resp


async def gated_stream(up: ProviderResponse, headers: dict[str, str]) -> AttemptResult:
    """Read a 200 stream's first event (the first-chunk gate): an ``error`` event, or no
    event at all, is a failure to fall back from; anything else is an answer to relay."""
    chunks = up.iter_chunks()
    try:
        head, first = await first_sse_event(chunks)
    except BaseException:
        up.close()
        raise
    error = ("api_error", _ENDED) if first is None else anthropic_event_error(first)
    if error is None:
        return Success(AnthropicRelay(up, headers, head, chunks))
    up.close()
    error_type, message = error
    return Failure(
        status_for_error_type(error_type),
        error_type,
        message,
        upstream_request_id=up.upstream_request_id,
    )
