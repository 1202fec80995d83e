"""Chat Completions request bodies <-> the canonical :class:`Request`.

The OpenAI side follows ``openai/types/chat/completion_create_params.py`` and the message
params it names (``chat_completion_system_message_param.py``, ``..._user_message_param.py``,
``..._assistant_message_param.py``, ``..._tool_message_param.py``,
``chat_completion_content_part_*_param.py``, ``chat_completion_function_tool_param.py``,
``chat_completion_tool_choice_option_param.py``). Every mapping decision is a row of
``docs/translation.md``; what is dropped is logged at debug level, what cannot be expressed
and must not be dropped raises.
"""

from __future__ import annotations

import re
from typing import Any

from ...core.types import (
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    OpaqueBlock,
    RedactedThinkingBlock,
    Request,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from ._shared import Untranslatable, encode_tool_call, log

__all__ = ["TOOL_ERROR_PREFIX", "encode_request"]

#: Put before a tool result's text when Anthropic's ``is_error`` is set: OpenAI's tool
#: message has no error flag, and the model should still know the call failed.
TOOL_ERROR_PREFIX = "Error: "
#: Separator for system text blocks joined into one OpenAI system message.
SYSTEM_JOIN = "\n\n"
#: Claude Code's first system block is Anthropic billing metadata, not instructions; it
#: changes between sessions (defeating prompt caching) and means nothing to another provider.
_BILLING_LINE = "x-anthropic-billing-header:"
_DEFAULT_SCHEMA_NAME = "response"
_DATA_URL = re.compile(r"^data:([^;,]+)?(?:;[^,]*)?;base64,(.*)$", re.DOTALL)
# Anthropic request fields kept in Request.extra that OpenAI cannot honour and must not lose.
_REJECTED_EXTRA = {
    "mcp_servers": "remote MCP servers are an Anthropic server feature",
    "container": "code-execution containers are an Anthropic server feature",
}


# -- canonical -> OpenAI ----------------------------------------------------------------


def encode_request(r: Request, *, model: str) -> dict[str, Any]:
    """canonical -> a ``POST /v1/chat/completions`` body (``CompletionCreateParams``).

    ``model`` is the provider's model id. ``stream`` always asks for
    ``stream_options.include_usage`` so usage is known at the end of every stream.

    Raises:
        Untranslatable: a server tool, a PDF, an image outside a user turn or inside a tool
            result, a server-tool block in history, or an Anthropic-only server feature.
    """
    messages: list[dict[str, Any]] = []
    system = [b.text for b in r.system or () if not b.text.startswith(_BILLING_LINE)]
    if system:
        messages.append({"role": "system", "content": SYSTEM_JOIN.join(system)})
    for i, m in enumerate(r.messages):
        messages.extend(_encode_message(m, f"messages[{i}]"))
    out: dict[str, Any] = {"model": model, "messages": messages}
    if r.max_tokens is not None:
        # The current field: OpenAI's reasoning models reject the deprecated max_tokens.
        out["max_completion_tokens"] = r.max_tokens
    if r.stop_sequences:
        out["stop"] = list(r.stop_sequences)
    _put(out, "temperature", r.temperature)
    _put(out, "top_p", r.top_p)
    if r.top_k is not None:
        log.debug("top_k has no OpenAI equivalent; dropped")
    if r.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    if r.tools:
        out["tools"] = [_encode_tool(t, f"tools[{i}]") for i, t in enumerate(r.tools)]
        if r.tool_choice is not None:
            _encode_tool_choice(r.tool_choice, out)
    elif r.tool_choice is not None:
        log.debug("tool_choice without tools dropped (OpenAI rejects it)")
    if r.thinking is not None:
        log.debug("thinking config dropped: OpenAI-compatible models reason on their own terms")
    _put(out, "user", r.user)
    _encode_output_schema(r, out)
    for key in r.extra:
        if key in _REJECTED_EXTRA:
            raise Untranslatable(key, _REJECTED_EXTRA[key])
        if key != "output_config":
            log.debug("request field %s has no OpenAI equivalent; dropped", key)
    return out


def _put(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        out[key] = value


def _encode_output_schema(r: Request, out: dict[str, Any]) -> None:
    schema = r.output_schema
    config = r.extra.get("output_config")
    if schema is None and isinstance(config, dict):
        fmt = config.get("format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            found = fmt.get("schema")
            schema = found if isinstance(found, dict) else None
    if schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": r.output_schema_name or _DEFAULT_SCHEMA_NAME, "schema": schema},
        }


def _encode_tool(t: Tool, where: str) -> dict[str, Any]:
    if t.type not in (None, "custom"):
        raise Untranslatable(where, f"server tool {t.type!r} has no OpenAI equivalent")
    fn: dict[str, Any] = {"name": t.name}
    _put(fn, "description", t.description)
    _put(fn, "parameters", t.input_schema)
    if isinstance(t.extra.get("strict"), bool):
        fn["strict"] = t.extra["strict"]
    if t.cache_control is not None:
        log.debug("%s.cache_control dropped (a hint OpenAI does not take)", where)
    return {"type": "function", "function": fn}


def _encode_tool_choice(tc: ToolChoice, out: dict[str, Any]) -> None:
    if tc.type == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": tc.name or ""}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[tc.type]
    if tc.disable_parallel_tool_use:
        out["parallel_tool_calls"] = False


def _encode_message(m: Message, where: str) -> list[dict[str, Any]]:
    if m.role == "system":
        return [{"role": "system", "content": _system_text(m, where)}]
    if m.role == "assistant":
        return [_encode_assistant(m, where)]
    # Tool results answer the assistant turn just before, so they come first, as role
    # "tool" messages; the rest of the user's turn follows as one user message.
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, b in enumerate(m.content):
        w = f"{where}.content[{j}]"
        if isinstance(b, ToolResultBlock):
            out.append(_encode_tool_result(b, w))
        else:
            parts.append(_encode_user_part(b, w))
    if parts:
        out.append({"role": "user", "content": _content(parts)})
    return out


def _system_text(m: Message, where: str) -> str:
    texts = []
    for j, b in enumerate(m.content):
        if not isinstance(b, TextBlock):
            raise Untranslatable(f"{where}.content[{j}]", "system turns take text only")
        texts.append(b.text)
    return SYSTEM_JOIN.join(texts)


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One text part travels as a plain string, which every compatible server accepts."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        text: str = parts[0]["text"]
        return text
    return parts


def _encode_user_part(b: Block, where: str) -> dict[str, Any]:
    if isinstance(b, TextBlock):
        _note_hints(b.cache_control, b.citations, where)
        return {"type": "text", "text": b.text}
    if isinstance(b, ImageBlock):
        return {"type": "image_url", "image_url": {"url": _image_url(b, where)}}
    if isinstance(b, DocumentBlock):
        return {"type": "text", "text": _document_text(b, where)}
    if isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
        raise Untranslatable(where, f"a {b.type} block cannot be sent in a user turn")
    raise Untranslatable(where, f"{b.type!r} blocks have no OpenAI equivalent")


def _note_hints(cache_control: object, citations: object, where: str) -> None:
    if cache_control is not None:
        log.debug("%s.cache_control dropped (a hint OpenAI does not take)", where)
    if citations:
        log.debug("%s.citations dropped", where)


def _image_url(b: ImageBlock, where: str) -> str:
    src = b.source
    if src.get("type") == "base64":
        return f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return str(src["url"])
    raise Untranslatable(f"{where}.source", f"image source {src.get('type')!r} is Anthropic-only")


def _document_text(b: DocumentBlock, where: str) -> str:
    src = b.source
    if src.get("type") == "text" and isinstance(src.get("data"), str):
        return str(src["data"])
    content = src.get("content")
    if src.get("type") == "content" and isinstance(content, str):
        return content
    if src.get("type") == "content" and isinstance(content, list):
        texts = [c.get("text") for c in content if isinstance(c, dict)]
        if all(isinstance(t, str) for t in texts) and len(texts) == len(content):
            return "".join(str(t) for t in texts)
    raise Untranslatable(where, "documents other than plain text cannot be sent to OpenAI")


def _encode_tool_result(b: ToolResultBlock, where: str) -> dict[str, Any]:
    texts = []
    for k, c in enumerate(b.content):
        w = f"{where}.content[{k}]"
        if isinstance(c, TextBlock):
            _note_hints(c.cache_control, c.citations, w)
            texts.append(c.text)
        elif isinstance(c, DocumentBlock):
            texts.append(_document_text(c, w))
        elif isinstance(c, OpaqueBlock) and c.type == "tool_reference":
            # Tool search (Claude Code's ToolSearch) answers with references to deferred
            # tools; OpenAI gets every tool declared in full (defer_loading is dropped), so
            # the reference only needs to tell the model the tool is there.
            texts.append(f"Tool loaded: {c.raw.get('tool_name', '')}")
        else:
            raise Untranslatable(w, "OpenAI tool messages carry text only")
    text = "".join(texts)
    if b.is_error:
        text = TOOL_ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": b.tool_use_id, "content": text}


def _encode_assistant(m: Message, where: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, b in enumerate(m.content):
        w = f"{where}.content[{j}]"
        if isinstance(b, TextBlock):
            _note_hints(b.cache_control, b.citations, w)
            parts.append({"type": "text", "text": b.text})
        elif isinstance(b, ToolUseBlock):
            calls.append(encode_tool_call(b))
        elif isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
            # Signatures mean nothing to another provider, and servers that return
            # reasoning_content (DeepSeek) reject it in input.
            log.debug("%s: %s block dropped from history", w, b.type)
        else:
            raise Untranslatable(w, f"{b.type!r} blocks cannot be sent in an assistant turn")
    out: dict[str, Any] = {"role": "assistant", "content": _content(parts) if parts else None}
    if calls:
        out["tool_calls"] = calls
    return out
