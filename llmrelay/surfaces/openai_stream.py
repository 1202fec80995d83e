"""Reading usage out of an OpenAI Chat Completions SSE stream as it passes through.

Usage arrives in the last chunk (``choices: []``) when ``stream_options.include_usage`` is
set (``openai/types/chat/chat_completion_chunk.py``); ``prompt_tokens`` counts cached
tokens too, so ``input_tokens = prompt_tokens - cached_tokens`` to match Anthropic's split.
When the gateway asked for usage on the client's behalf, that chunk is held back from the
client, who did not ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..core.usage import Usage
from .sse import SSEDecoder

__all__ = ["OpenAIStreamTap", "usage_from_openai"]


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
