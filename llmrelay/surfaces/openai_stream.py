"""The tap on a relayed OpenAI Chat Completions SSE stream, reading usage out of it as it
passes, and the first-chunk gate for such streams.

Usage arrives in the last chunk (``choices: []``) when ``stream_options.include_usage`` is
set (``openai/types/chat/chat_completion_chunk.py``); ``prompt_tokens`` counts cached
tokens too, so ``input_tokens = prompt_tokens - cached_tokens`` to match Anthropic's split.
When the gateway asked for usage on the client's behalf, that chunk is held back from the
client, who did not ask for it. A stream that ends without ``data: [DONE]`` (and without an
error chunk) is incomplete: the client gets an error chunk and ``[DONE]``. Only whole events
go to the client, so one that ends early ends between two. Each delta's text that went out
is counted (:class:`~llmrelay.core.delivered.Delivered`: what a client that leaves is
charged).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..codecs.openai.errors import error_to_openai
from ..core.delivered import Delivered
from ..core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEventTooLarge
from ..core.usage import Usage
from ..errors import GatewayError, UpstreamProtocolError, status_for_error_type
from ..pipeline.answers import ChunksAnswer
from ..pipeline.surface import AttemptResult
from ..providers.base import ProviderResponse
from ..routing.executor import Failure, Success
from ..routing.gate import (
    DEFAULT_MAX_PREAMBLE_BYTES,
    hold_preamble,
    log_capped,
    openai_event_error,
    openai_preamble,
)
from .common import WholeEvents

__all__ = [
    "DONE",
    "OpenAIStreamTap",
    "delta_texts",
    "error_chunk",
    "gated_stream",
    "relay_answer",
    "usage_from_openai",
]

DONE = b"data: [DONE]\n\n"

_ENDED = "the provider's stream ended before its first content"


def usage_from_openai(raw: Any, usage: Usage) -> None:
    """Set ``usage`` from an OpenAI ``usage`` object (``openai/types/completion_usage.py``)."""
    if not isinstance(raw, dict):
        return
    prompt = raw.get("prompt_tokens")
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = max(0, cached) if isinstance(cached, int) else 0
    if isinstance(prompt, int):
        usage.input_tokens = max(0, prompt - cached)
        usage.cache_read_input_tokens = cached
    completion = raw.get("completion_tokens")
    if isinstance(completion, int):
        usage.output_tokens = max(0, completion)


class OpenAIStreamTap:
    """A :class:`~llmrelay.pipeline.relay.Tap` for an OpenAI-wire stream from ``account``:
    ``filter`` returns the bytes to send on (all of them, unless ``strip_usage``)."""

    __slots__ = (
        "_decoder",
        "_done",
        "_pending",
        "_whole",
        "account",
        "delivered",
        "error_type",
        "strip_usage",
        "usage",
    )

    def __init__(
        self,
        usage: Usage,
        *,
        strip_usage: bool,
        account: str = "",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._decoder = SSEDecoder(max_event_bytes)
        self._whole = WholeEvents()
        self._done = False
        self.usage = usage
        self.strip_usage = strip_usage
        self.account = account
        self.error_type: str | None = None
        self.delivered = Delivered()
        # Delta texts of the chunk being sent, counted once it went out (``observe``).
        self._pending: list[str] = []

    def filter(self, chunk: bytes) -> bytes:
        try:
            events = self._decoder.feed(chunk)
        except SSEEventTooLarge as err:
            raise err.for_account(self.account) from None
        if not self.strip_usage:
            for ev in events:
                self._inspect(ev.data)
            return self._whole.take(chunk)
        # Re-framed from the decoded events: whole ones only, by construction.
        out = []
        for ev in events:
            if not self._inspect(ev.data):
                out.append(b"data: " + ev.data + b"\n\n")
        return b"".join(out)

    def observe(self, chunk: bytes) -> None:
        """Count the deltas :meth:`filter` read, now that they went out."""
        for text in self._pending:
            self.delivered.delta(text)
        self._pending.clear()

    def finish(self) -> GatewayError | None:
        try:
            self._decoder.finish()
        except SSEEventTooLarge as err:
            return err.for_account(self.account)
        if self._done or self.error_type is not None:
            return None
        return UpstreamProtocolError(f"provider {self.account!r} ended the stream before [DONE]")

    def _inspect(self, data: bytes) -> bool:
        """Read usage or an error from one event; True if it is a usage-only chunk."""
        if data == b"[DONE]":
            self._done = True
            return False
        has_delta = b'"delta"' in data
        if not has_delta and b"prompt_tokens" not in data and b'"error"' not in data:
            return False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(obj, dict):
            return False
        if isinstance(obj.get("error"), dict):
            self.error_type = str(obj["error"].get("type") or "api_error")
            return False
        if has_delta:
            delta_texts(obj.get("choices"), self._pending)
        raw = obj.get("usage")
        usage_from_openai(raw, self.usage)
        completion = raw.get("completion_tokens") if isinstance(raw, dict) else None
        if isinstance(completion, int) and not isinstance(completion, bool):
            self.delivered.provider_count(max(0, completion))
        return obj.get("choices") == [] and obj.get("usage") is not None


def delta_texts(choices: object, out: list[str]) -> None:
    """Append the generated text of each choice's ``delta`` to ``out``: ``content``,
    ``refusal``, ``reasoning_content``/``reasoning`` and tool-call ``arguments``."""
    if not isinstance(choices, list):
        return
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        for key in ("content", "refusal", "reasoning_content", "reasoning"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                out.append(text)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str) and args:
                out.append(args)


def error_chunk(err: GatewayError) -> bytes:
    """``err`` as an OpenAI error chunk (``{"error": {...}}``, which the SDK raises)."""
    return (
        b"data: " + orjson.dumps(error_to_openai(err.status, err.error_type, err.message)) + b"\n\n"
    )


def _error_and_done(err: GatewayError) -> bytes:
    return error_chunk(err) + DONE


def relay_answer(
    up: ProviderResponse,
    headers: dict[str, str],
    account: str,
    strip_usage: bool,
    max_event_bytes: int,
    head: bytes = b"",
    chunks: AsyncIterator[bytes] | None = None,
) -> ChunksAnswer:
    """A 200 Chat Completions stream relayed as it arrives, through the usage tap; an error
    that ends it early is followed by ``[DONE]``."""

    def tap(usage: Usage) -> OpenAIStreamTap:
        return OpenAIStreamTap(
            usage, strip_usage=strip_usage, account=account, max_event_bytes=max_event_bytes
        )

    return ChunksAnswer(up, headers, tap, _error_and_done, head, chunks)


async def gated_stream(
    up: ProviderResponse,
    headers: dict[str, str],
    account: str,
    strip_usage: bool,
    max_event_bytes: int,
    max_preamble_bytes: int = DEFAULT_MAX_PREAMBLE_BYTES,
) -> AttemptResult:
    """Hold a 200 stream's preamble (role-only or empty deltas) until its first content (the
    first-chunk gate, ``routing/gate.py``): an error chunk, or the end of the stream, before
    content is a failure to fall back from; content (or a preamble past
    ``max_preamble_bytes``) is an answer to relay, the held bytes first."""
    chunks = up.iter_chunks()
    try:
        held = await hold_preamble(chunks, openai_preamble, max_event_bytes, max_preamble_bytes)
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
        error = ("api_error", _ENDED) if first is None else openai_event_error(first)
    if error is None:
        return Success(
            relay_answer(up, headers, account, strip_usage, max_event_bytes, held.head, chunks)
        )
    up.close()
    error_type, message = error
    return Failure(
        status_for_error_type(error_type),
        error_type,
        message,
        upstream_request_id=up.upstream_request_id,
    )
