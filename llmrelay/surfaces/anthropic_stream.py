"""The tap on a relayed Anthropic SSE stream: reads what usage accounting needs out of it
without changing it, and the first-chunk gate for such streams.

Usage comes from ``message_start.message.usage`` and the cumulative ``message_delta.usage``
(``anthropic/lib/streaming/_messages.py`` accumulates it the same way), and, for counts those
left at zero, from Bedrock's ``amazon-bedrock-invocationMetrics`` on ``message_stop``; an
``error`` event's ``error.type`` is kept. Each ``content_block_delta`` that went out is
counted (:class:`~llmrelay.core.delivered.Delivered`: what a client that leaves is charged).
Every other event is only framed, never parsed. A
stream that ends without ``message_stop`` (and without an ``error`` event) is incomplete:
the client gets an ``error`` event saying so. Only whole events go to the client
(:class:`~llmrelay.surfaces.common.WholeEvents`), so one that ends early ends between two.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from ..core.delivered import Delivered
from ..core.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    SSEDecoder,
    SSEEventTooLarge,
    encode_event,
    parse_block,
)
from ..core.usage import Usage
from ..errors import GatewayError, UpstreamProtocolError, status_for_error_type
from ..pipeline.answers import ChunksAnswer
from ..pipeline.surface import AttemptResult
from ..providers.base import ProviderResponse
from ..routing.executor import Failure, Success
from ..routing.gate import (
    DEFAULT_MAX_PREAMBLE_BYTES,
    anthropic_event_error,
    anthropic_preamble,
    hold_preamble,
    log_capped,
)
from .common import WholeEvents

_SKIP = (b"event: content_block_start", b"event: content_block_stop", b"event: ping")
_DELTA = b"event: content_block_delta"
#: The field of each delta type that carries generated text (signatures and citations do not).
_DELTA_TEXT = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
#: The keys of those fields as they appear in a delta's JSON (Anthropic sends no spaces),
#: looked for in this order: text first, the usual delta.
_TEXT_KEY = b'"text":"'
_OTHER_TEXT_KEYS = (b'"partial_json":"', b'"thinking":"')
_ENDED = "the provider's stream ended before its first content"

__all__ = ["AnthropicStreamTap", "error_event", "gated_stream", "relay_answer"]


class AnthropicStreamTap:
    """A :class:`~llmrelay.pipeline.relay.Tap` for an Anthropic-wire stream from ``account``."""

    __slots__ = ("_decoder", "_stopped", "_whole", "account", "delivered", "error_type", "usage")

    def __init__(
        self, usage: Usage, account: str = "", max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    ) -> None:
        self._decoder = SSEDecoder(max_event_bytes)
        self._whole = WholeEvents()
        self._stopped = False
        self.usage = usage
        self.account = account
        self.error_type: str | None = None
        self.delivered = Delivered()

    def filter(self, chunk: bytes) -> bytes:
        return self._whole.take(chunk)

    def finish(self) -> GatewayError | None:
        try:
            self._decoder.finish()
        except SSEEventTooLarge as err:
            return err.for_account(self.account)
        if self._stopped or self.error_type is not None:
            return None
        return UpstreamProtocolError(
            f"provider {self.account!r} ended the stream before message_stop"
        )

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

    def observe(self, chunk: bytes) -> None:
        try:
            blocks = self._decoder.blocks(chunk)
        except SSEEventTooLarge as err:
            raise err.for_account(self.account) from None
        delivered = self.delivered
        estimating = delivered.estimating
        for block in blocks:
            # Deltas are most of a stream: counted as they are (``_count_delta``). Block
            # starts/stops and pings carry no usage: skipped on their first bytes
            # (Anthropic puts the event: line first).
            if block.startswith(_DELTA):
                if not estimating:
                    self._count_delta(block)
                    continue
                # The estimate, inline (a delta is most of a stream): see _count_delta.
                at = block.find(_TEXT_KEY)
                if at >= 0:
                    delivered.delta_span(block, at + len(_TEXT_KEY), block.rfind(b'"'))
                else:
                    _estimate_other(block, delivered)
                continue
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
                    count = _int(usage.get("output_tokens"))
                    if count is not None:
                        self.delivered.provider_count(count)
            elif name == "message_stop":
                self._stopped = True
                if ev.data.find(b"invocationMetrics") >= 0:
                    self._bedrock_metrics(_loads(ev.data))
            elif name == "error":
                data = _loads(ev.data)
                error = data.get("error") if data else None
                self.error_type = str(error.get("type")) if isinstance(error, dict) else "api_error"

    def _count_delta(self, block: bytes) -> None:
        """Count one delivered ``content_block_delta`` (``core/delivered.py``). Without a
        tokenizer (Claude's text: the estimate, which :meth:`observe` makes inline) the
        text is found by its key and measured as the JSON bytes it is sent as, with no
        parse: a delta is most of a stream, and parsing each cost ~7 µs. The estimate
        reads an escape (``\\n``) as two bytes."""
        if self.delivered.estimating:
            at = block.find(_TEXT_KEY)
            if at >= 0:
                self.delivered.delta_span(block, at + len(_TEXT_KEY), block.rfind(b'"'))
            else:
                _estimate_other(block, self.delivered)
            return
        ev = parse_block(block)
        data = _loads(ev.data) if ev is not None else None
        delta = data.get("delta") if data else None
        if not isinstance(delta, dict):
            return
        field = _DELTA_TEXT.get(str(delta.get("type")))
        text = delta.get(field) if field is not None else None
        if isinstance(text, str):
            self.delivered.delta(text)


def _estimate_other(block: bytes, delivered: Delivered) -> None:
    """The estimate of a delta without ``"text":"``: tool input or thinking; a signature
    or a citation carries no generated text."""
    for key in _OTHER_TEXT_KEYS:
        at = block.find(key)
        if at >= 0:
            delivered.delta_span(block, at + len(key), block.rfind(b'"'))
            return


def _int(value: object) -> int | None:
    """A count: ints only; a negative one (a provider bug) is 0, as ``Usage`` reads them."""
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else None


def _loads(data: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def error_event(err: GatewayError) -> bytes:
    """``err`` as Anthropic's in-stream ``error`` event (the SDK raises it as an APIError)."""
    error = {"type": "error", "error": {"type": err.error_type, "message": err.message}}
    return encode_event("error", error)


def relay_answer(
    up: ProviderResponse,
    headers: dict[str, str],
    account: str,
    max_event_bytes: int,
    head: bytes = b"",
    chunks: AsyncIterator[bytes] | None = None,
) -> ChunksAnswer:
    """A 200 Anthropic SSE answer relayed as it arrives, through the usage tap."""

    def tap(usage: Usage) -> AnthropicStreamTap:
        return AnthropicStreamTap(usage, account, max_event_bytes)

    return ChunksAnswer(up, headers, tap, error_event, head, chunks)


async def gated_stream(
    up: ProviderResponse,
    headers: dict[str, str],
    account: str,
    max_event_bytes: int,
    max_preamble_bytes: int = DEFAULT_MAX_PREAMBLE_BYTES,
) -> AttemptResult:
    """Hold a 200 stream's preamble until its first content (the first-chunk gate,
    ``routing/gate.py``): an ``error`` event, or the end of the stream, before content is a
    failure to fall back from; content (or a preamble past ``max_preamble_bytes``) is an
    answer to relay, the held bytes first."""
    chunks = up.iter_chunks()
    try:
        held = await hold_preamble(chunks, anthropic_preamble, max_event_bytes, max_preamble_bytes)
    except SSEEventTooLarge as err:
        up.close()
        raise err.for_account(account) from None
    except BaseException:
        up.close()
        raise
    first = held.first
    if held.capped:
        log_capped(account, f"{max_preamble_bytes} bytes (server.max_stream_preamble_kb)")
        error = None
    else:
        error = ("api_error", _ENDED) if first is None else anthropic_event_error(first)
    if error is None:
        return Success(relay_answer(up, headers, account, max_event_bytes, held.head, chunks))
    up.close()
    error_type, message = error
    return Failure(
        status_for_error_type(error_type),
        error_type,
        message,
        upstream_request_id=up.upstream_request_id,
    )
