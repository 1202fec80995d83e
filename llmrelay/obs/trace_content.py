"""Prompts and answers as span attributes, for ``observability.tracing.capture_content``.

Shapes follow the OpenTelemetry GenAI semantic conventions v1.41.0
(``docs/gen-ai/gen-ai-input-messages.json``, ``gen-ai-output-messages.json``,
``gen-ai-system-instructions.json``): a message is ``{"role", "parts": [...]}`` (an output
message also has ``finish_reason``); a part is ``{"type": "text", "content"}``,
``{"type": "tool_call", "id", "name", "arguments"}``, ``{"type": "tool_call_response",
"id", "result"}``, ``{"type": "reasoning", "content"}``, or a generic ``{"type"}`` for
images, documents and other blocks (named, never their data). Spans take them as JSON
strings (the conventions' fallback where structured attributes are not supported), each cut
to a size limit with its JSON structure kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..codecs import anthropic as anthropic_codec
from ..codecs import openai as openai_codec
from ..core.types import (
    Block,
    Message,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

__all__ = ["bounded_json", "input_attributes", "output_messages"]

INPUT_MESSAGES = "gen_ai.input.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
OUTPUT_MESSAGES = "gen_ai.output.messages"

_CUT = "…[truncated]"


def input_attributes(surface: str, body: dict[str, Any], limit: int) -> dict[str, str]:
    """``gen_ai.input.messages`` (and ``gen_ai.system_instructions`` when the request has
    them) of a client's request ``body`` in ``surface``'s wire (``anthropic`` or
    ``openai``), each at most ``limit`` bytes; empty when the body cannot be decoded."""
    try:
        if surface == "openai":
            request: Request = openai_codec.decode_request(body)
        else:
            request = anthropic_codec.decode_request(body)
    except ValueError:
        return {}
    out = {INPUT_MESSAGES: bounded_json([_message(m) for m in request.messages], limit)}
    if request.system:
        out[SYSTEM_INSTRUCTIONS] = bounded_json([_part(b) for b in request.system], limit)
    return out


def output_messages(response: Response, finish_reason: str | None, limit: int) -> str:
    """``gen_ai.output.messages`` of an answer: one assistant message, at most ``limit``
    bytes."""
    message = {
        "role": "assistant",
        "parts": [_part(b) for b in response.content],
        "finish_reason": finish_reason or response.stop_reason or "",
    }
    return bounded_json([message], limit)


def bounded_json(items: Sequence[dict[str, Any]], limit: int) -> str:
    """``items`` as a JSON array of at most ``limit`` bytes: long strings are cut first
    (marked ``…[truncated]``), then the oldest items dropped; ``[]`` if even one is too big."""
    data = orjson.dumps(items)
    if len(data) <= limit:
        return data.decode()
    share = max(64, limit // (4 * max(1, _strings(items))))
    kept = [_cut(item, share) for item in items]
    data = orjson.dumps(kept)
    while len(data) > limit and len(kept) > 1:
        kept = kept[1:]
        data = orjson.dumps(kept)
    return data.decode() if len(data) <= limit else "[]"


def _message(m: Message) -> dict[str, Any]:
    return {"role": m.role, "parts": [_part(b) for b in m.content]}


def _part(b: Block) -> dict[str, Any]:
    if isinstance(b, TextBlock):
        return {"type": "text", "content": b.text}
    if isinstance(b, ToolUseBlock):
        return {"type": "tool_call", "id": b.id, "name": b.name, "arguments": b.input}
    if isinstance(b, ToolResultBlock):
        result = "".join(c.text for c in b.content if isinstance(c, TextBlock))
        return {"type": "tool_call_response", "id": b.tool_use_id, "result": result}
    if isinstance(b, ThinkingBlock):
        return {"type": "reasoning", "content": b.thinking}
    return {"type": b.type}


def _strings(value: object) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        return sum(_strings(v) for v in value.values())
    if isinstance(value, list):
        return sum(_strings(v) for v in value)
    return 0


def _cut(value: Any, share: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= share else value[:share] + _CUT
    if isinstance(value, dict):
        return {k: _cut(v, share) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v, share) for v in value]
    return value
