"""Whole Chat Completions answers (``chat.completion``) <-> the canonical :class:`Response`.

The OpenAI side follows ``openai/types/chat/chat_completion.py`` and
``chat_completion_message.py`` (plus ``reasoning_content``/``reasoning``, which DeepSeek,
vLLM, OpenRouter and others add to the message). Ids are kept as the provider sent them
(``chatcmpl-...`` stays; tool call ids stay, because they must come back in tool results).
"""

from __future__ import annotations

from typing import Any

from ...core.types import Block, OpaqueBlock, Response, TextBlock, ThinkingBlock, ToolUseBlock
from .._shape import CodecError, obj, opt_obj, opt_str, seq, string
from ._shared import (
    decode_usage,
    encode_tool_call,
    encode_usage,
    finish_reason_from_stop,
    log,
    message_text,
    parse_arguments,
    stop_from_finish_reason,
)

__all__ = ["decode_response", "encode_response"]


def decode_response(body: dict[str, Any]) -> Response:
    """A ``ChatCompletion`` -> canonical; only ``choices[0]`` is read (requests ask for one).

    Content order is thinking (from ``reasoning_content`` or ``reasoning``, with an empty
    signature), text, refusal text, then one tool_use block per tool call.

    Raises:
        CodecError: a field the canonical model needs has the wrong shape (``choices`` not
            a list, the message not an object, a tool call without a string name, usage
            counts that are not integers...); the message names it.
    """
    choices = seq(body.get("choices"), "choices")
    response_id = string(body.get("id"), "id")
    content: list[Block] = []
    finish_reason = None
    if choices:
        choice = obj(choices[0], "choices[0]")
        content = _blocks(obj(choice.get("message"), "choices[0].message"), response_id)
        finish_reason = opt_str(choice.get("finish_reason"), "choices[0].finish_reason")
    has_calls = any(isinstance(b, ToolUseBlock) for b in content)
    return Response(
        id=response_id,
        model=string(body.get("model"), "model"),
        content=content,
        stop_reason=stop_from_finish_reason(finish_reason, has_tool_calls=has_calls),
        usage=decode_usage(body.get("usage")),
    )


def _blocks(message: dict[str, Any], response_id: str) -> list[Block]:
    where = "choices[0].message"
    out: list[Block] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:  # other shapes: details with no field here
        out.append(ThinkingBlock(thinking=reasoning))
    for key in ("content", "refusal"):
        text = message_text(message.get(key), f"{where}.{key}")
        if text:
            out.append(TextBlock(text=text))
    calls = seq(message.get("tool_calls"), f"{where}.tool_calls")
    for k, call in enumerate(calls):
        w = f"{where}.tool_calls[{k}]"
        call = obj(call, w)
        fn = call.get("function")
        if fn is None:
            # A custom (free-form) tool call: this codec never declares those, keep it whole.
            out.append(OpaqueBlock(raw=call))
            log.debug("%s is not a function call; kept opaque", w)
            continue
        w_fn = f"{w}.function"
        out.append(_tool_use(string(call.get("id"), f"{w}.id"), obj(fn, w_fn), w_fn))
    legacy = opt_obj(message.get("function_call"), f"{where}.function_call")
    if legacy is not None:
        out.append(_tool_use(f"call_{response_id}", legacy, f"{where}.function_call"))
    return out


def _tool_use(call_id: str, fn: dict[str, Any], where: str) -> ToolUseBlock:
    arguments = fn.get("arguments")
    if arguments is not None and not isinstance(arguments, (str, dict)):
        raise CodecError(f"{where}.arguments: expected a string")
    return ToolUseBlock(
        id=call_id,
        name=string(fn.get("name"), f"{where}.name"),
        input=parse_arguments(arguments),
    )


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
