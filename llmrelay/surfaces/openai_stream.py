"""Relaying an OpenAI Chat Completions SSE stream, reading usage out of it as it passes.

Usage arrives in the last chunk (``choices: []``) when ``stream_options.include_usage`` is
set (``openai/types/chat/chat_completion_chunk.py``); ``prompt_tokens`` counts cached
tokens too, so ``input_tokens = prompt_tokens - cached_tokens`` to match Anthropic's split.
When the gateway asked for usage on the client's behalf, that chunk is held back from the
client, who did not ask for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..codecs.openai.errors import error_to_openai
from ..core.sse import SSEDecoder
from ..core.usage import Usage
from ..errors import GatewayError, status_for_error_type
from ..providers.base import ProviderResponse
from ..routing.executor import Failure, Success
from ..routing.gate import first_sse_event, openai_event_error

if TYPE_CHECKING:
    from .call import AttemptResult, Call

__all__ = ["OpenAIRelay", "OpenAIStreamTap", "gated_stream", "usage_from_openai"]

_ENDED = "the provider's stream ended before its first chunk"


def usage_from_openai(raw: Any, usage: Usage) -> None:
    """Set ``usage`` from an OpenAI ``usage`` object (``openai/types/completion_usage.py``)."""
    if not isinstance(raw, dict):
        return
    prompt = raw.get("prompt_tokens")
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) else 0
    if isinstance(prompt, int):
        usage.input_tokens = max(0, prompt - cached)
        usage.cache_read_input_tokens = cached
    completion = raw.get("completion_tokens")
    if isinstance(completion, int):
        usage.output_tokens = completion


class OpenAIStreamTap:
    """Feed raw chunks; returns the bytes to send on (all of them, unless ``strip_usage``)."""

    __slots__ = ("_decoder", "error_type", "strip_usage", "usage")

    def __init__(self, usage: Usage, *, strip_usage: bool) -> None:
        self._decoder = SSEDecoder()
        self.usage = usage
        self.strip_usage = strip_usage
        self.error_type: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if not self.strip_usage:
            for ev in self._decoder.feed(chunk):
                self._inspect(ev.data)
            return chunk
        out = []
        for ev in self._decoder.feed(chunk):
            if not self._inspect(ev.data):
                out.append(b"data: " + ev.data + b"\n\n")
        return b"".join(out)

    def _inspect(self, data: bytes) -> bool:
        """Read usage or an error from one event; True if it is a usage-only chunk."""
        if b"prompt_tokens" not in data and b'"error"' not in data:
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
        usage_from_openai(obj.get("usage"), self.usage)
        return obj.get("choices") == [] and obj.get("usage") is not None


class OpenAIRelay:
    """A 200 Chat Completions stream relayed as it arrives through :class:`OpenAIStreamTap`;
    ``head`` is what the first-chunk gate already read from ``chunks``."""

    __slots__ = ("_chunks", "_head", "_strip_usage", "_up", "headers", "upstream_request_id")

    def __init__(
        self,
        up: ProviderResponse,
        headers: dict[str, str],
        strip_usage: bool,
        head: bytes = b"",
        chunks: AsyncIterator[bytes] | None = None,
    ) -> None:
        self._up = up
        self._head = head
        self._chunks = chunks if chunks is not None else up.iter_chunks()
        self._strip_usage = strip_usage
        self.headers = headers
        self.upstream_request_id = up.upstream_request_id

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        record = call.record
        tap = OpenAIStreamTap(call.usage, strip_usage=self._strip_usage)
        resp = web.StreamResponse(status=200, headers={**self.headers, **headers})
        try:
            await resp.prepare(call.request)
            try:
                if self._head:
                    record.ttft_s = time.perf_counter() - call.started
                    out = tap.feed(self._head)
                    if out:
                        await resp.write(out)
                async for chunk in self._chunks:
                    if record.ttft_s is None:
                        record.ttft_s = time.perf_counter() - call.started
                    out = tap.feed(chunk)
                    if out:
                        await resp.write(out)
            except GatewayError as err:
                tap.error_type = err.error_type
                error = error_to_openai(err.status, err.error_type, err.message)
                await resp.write(b"data: " + orjson.dumps(error) + b"\n\n")
            record.status = 200
            record.error_type = tap.error_type
            await resp.write_eof()
        except ConnectionResetError:
            record.status = 499
            record.error_type = "client_disconnected"
        finally:
            self._up.close()
        return resp


async def gated_stream(
    up: ProviderResponse, headers: dict[str, str], strip_usage: bool
) -> AttemptResult:
    """Read a 200 stream's first chunk (the first-chunk gate): an error chunk, or no chunk at
    all, is a failure to fall back from; anything else is an answer to relay."""
    chunks = up.iter_chunks()
    try:
        head, first = await first_sse_event(chunks)
    except BaseException:
        up.close()
        raise
    error = ("api_error", _ENDED) if first is None else openai_event_error(first)
    if error is None:
        return Success(OpenAIRelay(up, headers, strip_usage, head, chunks))
    up.close()
    error_type, message = error
    return Failure(
        status_for_error_type(error_type),
        error_type,
        message,
        upstream_request_id=up.upstream_request_id,
    )
