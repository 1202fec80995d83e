"""Local token counts for models whose API has no count endpoint (OpenAI-compatible ones).

OpenAI models are counted with tiktoken and the model's own encoding
(``tiktoken.encoding_name_for_model``), using OpenAI's documented chat framing: three
tokens per message plus three to prime the reply (OpenAI cookbook, "How to count tokens
with tiktoken"); tool definitions are counted as their JSON. Vocabularies are fetched (or
read from tiktoken's cache) in a worker thread when the gateway starts, never on the request
path. Models tiktoken does not know, or a gateway that could not fetch the vocabulary, get
an upper-leaning estimate instead; the response header ``x-llmrelay-token-count`` says which.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import orjson

__all__ = ["TokenCounter", "estimate_tokens"]

log = logging.getLogger("llmrelay.tokens")

_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def estimate_tokens(body: dict[str, Any]) -> int:
    """An upper-leaning estimate of a Messages request's input tokens (system, messages, tools).

    One token per four ASCII bytes of its JSON (BPE tokenizers average about four characters
    of English per token, and JSON punctuation adds more) and one per two bytes of anything
    else (a CJK character is three UTF-8 bytes and usually one or two tokens).
    """
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    raw = orjson.dumps([p for p in parts if p])
    ascii_bytes = len(raw.decode("utf-8").encode("ascii", "ignore"))
    return max(1, ascii_bytes // 4 + (len(raw) - ascii_bytes) // 2)


class TokenCounter:
    """tiktoken encodings by name, loaded off the event loop."""

    def __init__(self) -> None:
        self._encodings: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self, model_ids: Iterable[str]) -> None:
        """Load the encodings these provider model ids use, in a background thread."""
        names = {n for n in (self._encoding_name(m) for m in model_ids) if n is not None}
        if names:
            self._task = asyncio.get_running_loop().create_task(self._load(sorted(names)))

    async def _load(self, names: list[str]) -> None:
        import tiktoken

        for name in names:
            try:
                self._encodings[name] = await asyncio.to_thread(tiktoken.get_encoding, name)
            except Exception as err:  # offline without a tiktoken cache: estimates it is
                log.warning(
                    "tokenizer unavailable, counting tokens by estimate",
                    extra={"encoding": name, "error": type(err).__name__},
                )

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    @staticmethod
    def _encoding_name(model_id: str) -> str | None:
        try:
            import tiktoken
        except ImportError:
            return None
        try:
            return str(tiktoken.encoding_name_for_model(model_id))
        except KeyError:
            return None

    def encoding_for(self, model_id: str) -> Any:
        """The loaded encoding for a provider model id, or None."""
        name = self._encoding_name(model_id)
        return self._encodings.get(name) if name is not None else None

    async def count(self, openai_body: dict[str, Any], model_id: str) -> tuple[int, str] | None:
        """(tokens, encoding name) for a Chat Completions body, or None without a tokenizer."""
        enc = self.encoding_for(model_id)
        if enc is None:
            return None
        return await asyncio.to_thread(_count, enc, openai_body), str(enc.name)


def _count(enc: Any, body: dict[str, Any]) -> int:
    total = _REPLY_PRIMING
    for message in body.get("messages") or []:
        total += _PER_MESSAGE
        for value in message.values():
            if isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
            elif value is not None:
                total += len(enc.encode(orjson.dumps(value).decode(), disallowed_special=()))
    tools = body.get("tools")
    if tools:
        total += len(enc.encode(orjson.dumps(tools).decode(), disallowed_special=()))
    return total
