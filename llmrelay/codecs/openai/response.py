"""Whole Chat Completions answers (``chat.completion``) <-> the canonical :class:`Response`.

The OpenAI side follows ``openai/types/chat/chat_completion.py`` and
``chat_completion_message.py`` (plus ``reasoning_content``/``reasoning``, which DeepSeek,
vLLM, OpenRouter and others add to the message). Ids are kept as the provider sent them
(``chatcmpl-...`` stays; tool call ids stay, because they must come back in tool results).
"""

from __future__ import annotations

from typing import Any

from ...core.types import Block, OpaqueBlock, Response, TextBlock, ThinkingBlock, ToolUseBlock
from ..anthropic import CodecError
from ._shared import (
    decode_usage,
    encode_tool_call,
    encode_usage,
    finish_reason_from_stop,
    log,
    parse_arguments,
    stop_from_finish_reason,
)

__all__ = ["decode_response", "encode_response"]


def decode_response(body: dict[str, Any]) -> Response:
    """A ``ChatCompletion`` -> canonical; only ``choices[0]`` is read (requests ask for one).

    Content order is thinking (from ``reasoning_content`` or ``reasoning``, with an empty
    signature), text, refusal text, then one tool_use block per tool call.

    Raises:
        CodecError: ``choices`` or the message is not the expected shape.
    """
    choices = body.get("choices")
    if choices is None:
        choices = []
    if not isinstance(choices, list):
        raise CodecError("choices: expected a list")
    content: list[Block] = []
    finish_reason = None
    if choices:
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(message, dict):
            raise CodecError("choices[0].message: expected an object")
        content = _blocks(message, str(body.get("id", "")))
        finish_reason = choice.get("finish_reason")
    has_calls = any(isinstance(b, ToolUseBlock) for b in content)
    return Response(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        content=content,
        stop_reason=stop_from_finish_reason(finish_reason, has_tool_calls=has_calls),
        usage=decode_usage(body.get("usage")),
    )


def _blocks(message: dict[str, Any], response_id: str) -> list[Block]:
    out: list[Block] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        out.append(ThinkingBlock(thinking=reasoning))
    for key in ("content", "refusal"):
        text = message.get(key)
        if isinstance(text, str) and text:
            out.append(TextBlock(text=text))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise CodecError("choices[0].message.tool_calls: expected a list")
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict):
            # A custom (free-form) tool call: this codec never declares those, keep it whole.
            out.append(OpaqueBlock(raw=call if isinstance(call, dict) else {"type": str(call)}))
            log.debug("choices[0].message.tool_calls[%d] is not a function call; kept opaque", k)
            continue
        out.append(
            ToolUseBlock(
                id=str(call.get("id", "")),
                name=str(fn.get("name", "")),
                input=parse_arguments(fn.get("arguments")),
            )
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        out.append(
            ToolUseBlock(
                id=f"call_{response_id}",
                name=str(legacy.get("name", "")),
                input=parse_arguments(legacy.get("arguments")),
            )
        )
    return out


def encode_response(r: Response, *, model: str, created: int) -> dict[str, Any]:
    """canonical -> a ``ChatCompletion`` (``object: "chat.completion"``), keeping ``r.id``.

    Text blocks join into ``content`` with nothing between (Anthropic splits one answer into
    blocks, e.g. around citations); thinking joins into ``reasoning_content``; tool_use
    blocks become ``tool_calls``. Redacted thinking and blocks OpenAI has no field for are
    dropped (debug log).
    """
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for b in r.content:
        if isinstance(b, TextBlock):
            texts.append(b.text)
        elif isinstance(b, ThinkingBlock):
            thinking.append(b.thinking)
        elif isinstance(b, ToolUseBlock):
            calls.append(encode_tool_call(b))
        else:
            log.debug("%s block has no chat.completion field; dropped", b.type)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": r.id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_from_stop(r.stop_reason),
            }
        ],
        "usage": encode_usage(r.usage),
    }
