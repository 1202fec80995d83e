"""``POST /v1/chat/completions`` bodies -> :class:`~llmrelay.core.types.Request` (the OpenAI
surface in front of an Anthropic-wire provider). Rows in ``docs/translation.md``."""

from __future__ import annotations

from typing import Any

from ...core.types import (
    Block,
    DocumentBlock,
    ImageBlock,
    JSONObject,
    Message,
    Request,
    TextBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from ..anthropic import CodecError
from ._shared import log, parse_arguments
from .request import _DATA_URL

__all__ = ["decode_request"]

# -- OpenAI -> canonical ----------------------------------------------------------------

_DROPPED_FIELDS = (
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "service_tier",
    "store",
    "metadata",
    "prediction",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "verbosity",
    "stream_options",
    "top_logprobs",
)
_REJECTED_FIELDS = {
    "audio": "audio output is not available from Anthropic models",
    "web_search_options": "web search options have no Anthropic equivalent",
    "functions": "the deprecated functions parameter is not supported; use tools",
    "function_call": "the deprecated function_call parameter is not supported; use tool_choice",
}


def decode_request(body: dict[str, Any]) -> Request:
    """A ``POST /v1/chat/completions`` body -> canonical.

    Leading system/developer messages become ``system``; consecutive ``tool`` messages and
    the user message after them become one user turn with the tool results first.

    Raises:
        CodecError: a field has the wrong shape, or asks for something Anthropic models
            cannot do (``n`` > 1, ``logprobs``, audio); the message names the field.
    """
    _check_unsupported(body)
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise CodecError("messages: expected a list")
    system, messages = _decode_messages(raw_messages)
    tools = _decode_tools(body.get("tools"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and not _is_int(max_tokens):
        raise CodecError("max_completion_tokens: expected an integer")
    output_schema, schema_name = _decode_response_format(body.get("response_format"))
    user = body.get("user", body.get("safety_identifier"))
    return Request(
        model=str(body.get("model", "")),
        messages=messages,
        max_tokens=max_tokens,
        system=system,
        stop_sequences=_decode_stop(body.get("stop")),
        temperature=_decode_temperature(body.get("temperature")),
        top_p=_number(body.get("top_p"), "top_p"),
        stream=body.get("stream") is True,
        tools=tools,
        tool_choice=_decode_tool_choice(body) if tools else None,
        user=user if isinstance(user, str) else None,
        output_schema=output_schema,
        output_schema_name=schema_name,
    )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: object, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CodecError(f"{where}: expected a number")
    return v


def _decode_temperature(v: object) -> float | None:
    t = _number(v, "temperature")
    if t is not None and t > 1:
        # OpenAI's range is 0-2, Anthropic's 0-1.
        log.debug("temperature %s clamped to 1", t)
        return 1.0
    return t


def _check_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise CodecError("n: Anthropic models return one choice; n must be 1")
    if body.get("logprobs"):
        raise CodecError("logprobs: log probabilities are not available from Anthropic models")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise CodecError("modalities: Anthropic models answer in text only")
    for key, reason in _REJECTED_FIELDS.items():
        if body.get(key) is not None:
            raise CodecError(f"{key}: {reason}")
    for key in _DROPPED_FIELDS:
        if key in body:
            log.debug("request field %s has no Anthropic equivalent; dropped", key)


def _decode_stop(stop: object) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop) or None
    raise CodecError("stop: expected a string or a list of strings")


def _decode_messages(raw: list[Any]) -> tuple[list[TextBlock] | None, list[Message]]:
    system: list[TextBlock] | None = None
    out: list[Message] = []
    pending_results: list[Block] = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise CodecError(f"{where}: expected an object")
        role = m.get("role")
        if role == "tool":
            pending_results.append(_decode_tool_message(m, where))
            continue
        if role == "user":
            out.append(Message(role="user", content=[*pending_results, *_user_blocks(m, where)]))
            pending_results = []
            continue
        if pending_results:
            out.append(Message(role="user", content=pending_results))
            pending_results = []
        if role in ("system", "developer"):
            texts = [TextBlock(text=t) for t in _texts(m.get("content"), f"{where}.content")]
            if not out:
                system = [*(system or []), *texts]
            else:
                out.append(Message(role="system", content=list(texts)))
        elif role == "assistant":
            out.append(Message(role="assistant", content=_assistant_blocks(m, where)))
        else:
            raise CodecError(f"{where}.role: expected system, developer, user, assistant or tool")
    if pending_results:
        out.append(Message(role="user", content=pending_results))
    return system, out


def _texts(content: object, where: str) -> list[str]:
    """Text of a content that may hold only text parts; empty texts are skipped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    if not isinstance(content, list):
        raise CodecError(f"{where}: expected a string or a list of text parts")
    out = []
    for j, p in enumerate(content):
        if not isinstance(p, dict) or p.get("type") not in ("text", "refusal"):
            raise CodecError(f"{where}[{j}]: expected a text part")
        text = p.get("text", p.get("refusal"))
        if not isinstance(text, str):
            raise CodecError(f"{where}[{j}].text: expected a string")
        if text:
            out.append(text)
    return out


def _decode_tool_message(m: dict[str, Any], where: str) -> ToolResultBlock:
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str):
        raise CodecError(f"{where}.tool_call_id: expected a string")
    texts = _texts(m.get("content"), f"{where}.content")
    content: list[Block] = [TextBlock(text="".join(texts))] if texts else []
    return ToolResultBlock(tool_use_id=call_id, content=content)


def _user_blocks(m: dict[str, Any], where: str) -> list[Block]:
    content = m.get("content")
    if isinstance(content, str) or content is None:
        return [TextBlock(text=t) for t in _texts(content, f"{where}.content")]
    if not isinstance(content, list):
        raise CodecError(f"{where}.content: expected a string or a list of content parts")
    out: list[Block] = []
    for j, p in enumerate(content):
        w = f"{where}.content[{j}]"
        if not isinstance(p, dict):
            raise CodecError(f"{w}: expected an object")
        kind = p.get("type")
        if kind == "text":
            out.extend(TextBlock(text=t) for t in _texts([p], w))
        elif kind == "image_url":
            out.append(_decode_image(p.get("image_url"), w))
        elif kind == "file":
            out.append(_decode_file(p.get("file"), w))
        elif kind == "input_audio":
            raise CodecError(f"{w}: audio input cannot be sent to Anthropic models")
        else:
            raise CodecError(f"{w}.type: unknown content part type {kind!r}")
    return out


def _decode_image(raw: object, where: str) -> ImageBlock:
    url = raw.get("url") if isinstance(raw, dict) else raw
    if not isinstance(url, str):
        raise CodecError(f"{where}.image_url.url: expected a string")
    if isinstance(raw, dict) and "detail" in raw:
        log.debug("%s.image_url.detail dropped", where)
    found = _DATA_URL.match(url)
    if found:
        source: JSONObject = {
            "type": "base64",
            "media_type": found.group(1) or "image/png",
            "data": found.group(2),
        }
        return ImageBlock(source=source)
    return ImageBlock(source={"type": "url", "url": url})


def _decode_file(raw: object, where: str) -> DocumentBlock:
    data = raw.get("file_data") if isinstance(raw, dict) else None
    if not isinstance(data, str):
        raise CodecError(f"{where}.file: only inline file_data can be sent to Anthropic models")
    found = _DATA_URL.match(data)
    media_type = (found.group(1) if found else None) or "application/pdf"
    payload = found.group(2) if found else data
    return DocumentBlock(source={"type": "base64", "media_type": media_type, "data": payload})


def _assistant_blocks(m: dict[str, Any], where: str) -> list[Block]:
    if m.get("reasoning_content") or m.get("reasoning"):
        log.debug("%s: reasoning dropped (Anthropic needs its own thinking signatures)", where)
    out: list[Block] = [TextBlock(text=t) for t in _texts(m.get("content"), f"{where}.content")]
    refusal = m.get("refusal")
    if isinstance(refusal, str) and refusal:
        out.append(TextBlock(text=refusal))
    if m.get("function_call") is not None:
        raise CodecError(f"{where}.function_call: deprecated; send tool_calls")
    calls = m.get("tool_calls") or []
    if not isinstance(calls, list):
        raise CodecError(f"{where}.tool_calls: expected a list")
    for k, c in enumerate(calls):
        w = f"{where}.tool_calls[{k}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(c, dict) or not isinstance(fn, dict):
            raise CodecError(f"{w}.function: expected an object")
        out.append(
            ToolUseBlock(
                id=str(c.get("id", "")),
                name=str(fn.get("name", "")),
                input=parse_arguments(fn.get("arguments")),
            )
        )
    return out


def _decode_tools(raw: object) -> list[Tool] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise CodecError("tools: expected a list")
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise CodecError(f"tools[{i}]: only function tools can be sent to Anthropic models")
        if not isinstance(fn.get("name"), str):
            raise CodecError(f"tools[{i}].function.name: expected a string")
        if "strict" in fn:
            log.debug("tools[%d].function.strict dropped", i)
        params = fn.get("parameters")
        out.append(
            Tool(
                name=fn["name"],
                description=fn.get("description"),
                # Anthropic requires a schema; OpenAI's default is "no parameters".
                input_schema=params if isinstance(params, dict) else _empty_schema(),
            )
        )
    return out or None


def _empty_schema() -> JSONObject:
    return {"type": "object", "properties": {}}


def _decode_tool_choice(body: dict[str, Any]) -> ToolChoice | None:
    raw = body.get("tool_choice")
    no_parallel = True if body.get("parallel_tool_calls") is False else None
    if raw is None:
        return ToolChoice(type="auto", disable_parallel_tool_use=True) if no_parallel else None
    if raw in ("auto", "required", "none"):
        kind = {"auto": "auto", "required": "any", "none": "none"}[raw]
        return ToolChoice(type=kind, disable_parallel_tool_use=no_parallel)  # type: ignore[arg-type]
    fn = raw.get("function") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(fn, dict):
        name = fn.get("name")
        if isinstance(name, str):
            return ToolChoice(type="tool", name=name, disable_parallel_tool_use=no_parallel)
    raise CodecError("tool_choice: expected auto, required, none or a function choice")


def _decode_response_format(raw: object) -> tuple[JSONObject | None, str | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        raise CodecError("response_format: expected an object")
    kind = raw.get("type")
    if kind == "json_schema":
        js = raw.get("json_schema")
        schema = js.get("schema") if isinstance(js, dict) else None
        if not isinstance(js, dict) or not isinstance(schema, dict):
            raise CodecError("response_format.json_schema.schema: expected an object")
        name = js.get("name")
        return schema, name if isinstance(name, str) else None
    if kind == "json_object":
        log.debug("response_format json_object dropped: Anthropic has no schema-less JSON mode")
    elif kind != "text":
        raise CodecError(f"response_format.type: unknown type {kind!r}")
    return None, None
