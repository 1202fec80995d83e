"""What the OpenAI codec modules share: the error for untranslatable features, stop-reason and
usage mapping, and tool-argument parsing.

Usage follows ``openai/types/completion_usage.py``; finish reasons follow
``openai/types/chat/chat_completion.py`` (``Choice.finish_reason``).
"""

from __future__ import annotations

import logging
from typing import Any

from ...core import wirejson
from ...core.types import JSON, JSONObject, StopReason, ToolUseBlock
from ...core.usage import Usage
from .._shape import CodecError, count, obj, opt_obj, string

__all__ = [
    "MAX_ARGUMENTS_DEPTH",
    "Untranslatable",
    "decode_usage",
    "encode_tool_call",
    "encode_usage",
    "finish_reason_from_stop",
    "log",
    "message_text",
    "parse_arguments",
    "stop_from_finish_reason",
]

log = logging.getLogger("llmrelay.codecs.openai")


class Untranslatable(ValueError):
    """A request feature the target wire cannot express and that must not be dropped.

    ``field`` is the path in the client's request (``tools[1]``,
    ``messages[2].content[0]``); ``str(err)`` is ``"<field>: <reason>"``, ready for a 400.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_from_finish_reason(finish_reason: object, *, has_tool_calls: bool) -> StopReason | None:
    """OpenAI ``finish_reason`` -> Anthropic ``stop_reason``; None stays None.

    A message that carries tool calls ends in ``tool_use`` whatever the provider said: some
    OpenAI-compatible servers answer ``stop`` there, and Anthropic clients run tools only on
    ``tool_use``. Unknown reasons (``eos``, ``error``...) become ``end_turn``.
    """
    if finish_reason is None:
        return None
    if has_tool_calls and finish_reason in ("stop", "tool_calls", "function_call"):
        return "tool_use"
    mapped = _STOP.get(str(finish_reason))
    if mapped is None:
        log.debug("unknown OpenAI finish_reason %r read as end_turn", finish_reason)
        return "end_turn"
    return mapped


def finish_reason_from_stop(stop: StopReason | None) -> str:
    """Anthropic ``stop_reason`` -> OpenAI ``finish_reason`` (None -> ``stop``)."""
    return _FINISH.get(stop or "end_turn", "stop")


def decode_usage(raw: object, where: str = "usage") -> Usage:
    """OpenAI ``CompletionUsage`` -> :class:`Usage`; absent, null or negative counts are 0.

    OpenAI's ``prompt_tokens`` includes cached tokens; Anthropic's ``input_tokens`` does not,
    so ``input_tokens = prompt_tokens - cached_tokens``. Cached tokens come from
    ``prompt_tokens_details.cached_tokens``, or DeepSeek's ``prompt_cache_hit_tokens``.

    Raises:
        CodecError: not an object, or a count that is not an integer.
    """
    u = Usage()
    d = opt_obj(raw, where)
    if d is None:
        return u
    prompt = count(d.get("prompt_tokens"), f"{where}.prompt_tokens") or 0
    details = d.get("prompt_tokens_details")
    cached = 0
    if isinstance(details, dict):  # other shapes: details this code does not read
        cached = count(details.get("cached_tokens"), f"{where}.prompt_tokens_details") or 0
    if not cached:
        cached = count(d.get("prompt_cache_hit_tokens"), f"{where}.prompt_cache_hit_tokens") or 0
    cached = min(cached, prompt)
    u.input_tokens = prompt - cached
    u.cache_read_input_tokens = cached
    u.output_tokens = count(d.get("completion_tokens"), f"{where}.completion_tokens") or 0
    return u


def encode_usage(u: Usage) -> dict[str, Any]:
    """:class:`Usage` -> OpenAI ``CompletionUsage``; cache writes count as prompt tokens."""
    prompt = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    }


#: Deepest tool input kept as an object; deeper arguments are kept as their text, because
#: the object must still be written inside a message (orjson writes 254 levels).
MAX_ARGUMENTS_DEPTH = 128


def message_text(value: object, where: str) -> str | None:
    """A message's ``content`` (or ``refusal``): a string, or a list of parts whose text
    parts are joined (Mistral and others send ``[{"type": "text", "text": ...}]``);
    None when null or absent.

    Raises:
        CodecError: neither, or a part that is not an object.
    """
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise CodecError(f"{where}: expected a string or a list of content parts")
    texts = []
    for i, part in enumerate(value):
        part = obj(part, f"{where}[{i}]")
        if part.get("type") == "text":
            texts.append(string(part.get("text"), f"{where}[{i}].text"))
        else:
            log.debug(
                "%s[%d] of type %r has no canonical field; dropped", where, i, part.get("type")
            )
    return "".join(texts)


def parse_arguments(raw: object) -> JSONObject:
    """A tool call's ``function.arguments`` string -> a tool input object.

    Empty or missing arguments mean ``{}``. Arguments that are not a JSON object (models do
    emit broken JSON), or nest deeper than :data:`MAX_ARGUMENTS_DEPTH`, are kept, not
    dropped, as ``{"_raw": "<the string>"}`` so the client sees what the model said and can
    answer with an error tool result.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    text = raw if isinstance(raw, str) else str(raw)
    try:
        raw_bytes = text.encode("utf-8", "surrogatepass")  # lone surrogates: not JSON, kept
        parsed: JSON = wirejson.loads(raw_bytes, max_depth=MAX_ARGUMENTS_DEPTH)
    except wirejson.InvalidJSON:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    log.debug("tool arguments are not a JSON object; kept as _raw")
    return {"_raw": text}


def encode_tool_call(b: ToolUseBlock) -> dict[str, Any]:
    """A tool_use block -> an OpenAI ``ChatCompletionMessageFunctionToolCall`` (arguments as
    compact JSON text)."""
    arguments = wirejson.dumps(b.input).decode()
    return {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": arguments}}
