"""``POST /v1/messages`` bodies <-> :class:`~llmrelay.core.types.Request`
(``anthropic/types/message_create_params.py``)."""

from __future__ import annotations

from typing import Any, cast

from ...core.types import (
    JSONObject,
    Message,
    Request,
    TextBlock,
    ThinkingConfig,
    Tool,
    ToolChoice,
)
from .blocks import CodecError, _blocks, _obj, _put, _rest, encode_block

# -- requests ---------------------------------------------------------------------------

_REQUEST_FIELDS = (
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
)


def decode_request(body: dict[str, Any]) -> Request:
    """A ``POST /v1/messages`` body -> :class:`Request`.

    Raises:
        CodecError: a field has the wrong shape (the message names it).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise CodecError("messages: expected a list")
    msgs = []
    for i, m in enumerate(messages):
        m = _obj(m, f"messages[{i}]")
        role = m.get("role")
        if role not in ("user", "assistant", "system"):
            raise CodecError(f"messages[{i}].role: expected 'user' or 'assistant'")
        msgs.append(
            Message(
                role=role,
                content=_blocks(m.get("content", ""), f"messages[{i}].content"),
                extra=_rest(m, ("role", "content")),
            )
        )
    system = body.get("system")
    sys_blocks: list[TextBlock] | None = None
    if system is not None:
        decoded = _blocks(system, "system")
        sys_blocks = [b for b in decoded if isinstance(b, TextBlock)]
        if len(sys_blocks) != len(decoded):
            raise CodecError("system: expected text blocks")
    tools = None
    if body.get("tools") is not None:
        if not isinstance(body["tools"], list):
            raise CodecError("tools: expected a list")
        tools = []
        for i, t in enumerate(body["tools"]):
            t = _obj(t, f"tools[{i}]")
            tools.append(
                Tool(
                    name=str(t.get("name", "")),
                    description=t.get("description"),
                    input_schema=t.get("input_schema"),
                    type=t.get("type"),
                    cache_control=t.get("cache_control"),
                    extra=_rest(
                        t, ("name", "description", "input_schema", "type", "cache_control")
                    ),
                )
            )
    tool_choice = None
    if body.get("tool_choice") is not None:
        tc = _obj(body["tool_choice"], "tool_choice")
        if tc.get("type") not in ("auto", "any", "tool", "none"):
            raise CodecError("tool_choice.type: expected auto, any, tool or none")
        tool_choice = ToolChoice(
            type=tc["type"],
            name=tc.get("name"),
            disable_parallel_tool_use=tc.get("disable_parallel_tool_use"),
        )
    thinking = None
    if body.get("thinking") is not None:
        th = _obj(body["thinking"], "thinking")
        if th.get("type") not in ("enabled", "disabled", "adaptive"):
            raise CodecError("thinking.type: expected enabled, disabled or adaptive")
        thinking = ThinkingConfig(
            type=th["type"],
            budget_tokens=th.get("budget_tokens"),
            extra=_rest(th, ("type", "budget_tokens")),
        )
    stop = body.get("stop_sequences")
    if stop is not None and (
        not isinstance(stop, list) or not all(isinstance(x, str) for x in stop)
    ):
        raise CodecError("stop_sequences: expected a list of strings")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        # Anthropic refuses it too; a translation compares and caps it as a number.
        raise CodecError("max_tokens: expected an integer")
    metadata = body.get("metadata")
    user = None
    extra = _rest(body, _REQUEST_FIELDS)
    if isinstance(metadata, dict):
        user = metadata.get("user_id")
        rest = _rest(metadata, ("user_id",))
        if rest:
            extra["metadata"] = rest
    return Request(
        model=str(body.get("model", "")),
        messages=msgs,
        max_tokens=max_tokens,
        system=sys_blocks,
        stop_sequences=stop,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stream=body.get("stream") is True,
        tools=tools,
        tool_choice=tool_choice,
        thinking=thinking,
        user=user if isinstance(user, str) else None,
        extra=extra,
    )


def encode_request(r: Request) -> JSONObject:
    """:class:`Request` -> a ``POST /v1/messages`` body."""
    out: dict[str, Any] = {
        "model": r.model,
        "messages": [
            {"role": m.role, "content": [encode_block(b) for b in m.content], **m.extra}
            for m in r.messages
        ],
    }
    _put(out, "max_tokens", r.max_tokens)
    if r.system is not None:
        out["system"] = [encode_block(b) for b in r.system]
    _put(out, "stop_sequences", r.stop_sequences)
    _put(out, "temperature", r.temperature)
    _put(out, "top_p", r.top_p)
    _put(out, "top_k", r.top_k)
    if r.stream:
        out["stream"] = True
    if r.tools is not None:
        out["tools"] = [_encode_tool(t) for t in r.tools]
    if r.tool_choice is not None:
        tc: dict[str, Any] = {"type": r.tool_choice.type}
        _put(tc, "name", r.tool_choice.name)
        _put(tc, "disable_parallel_tool_use", r.tool_choice.disable_parallel_tool_use)
        out["tool_choice"] = tc
    if r.thinking is not None:
        th: dict[str, Any] = {"type": r.thinking.type}
        _put(th, "budget_tokens", r.thinking.budget_tokens)
        out["thinking"] = {**th, **r.thinking.extra}
    extra = dict(r.extra)
    if r.user is not None:
        meta = extra.pop("metadata", {})
        out["metadata"] = {"user_id": r.user, **(meta if isinstance(meta, dict) else {})}
    if r.output_schema is not None and "output_config" not in extra:
        out["output_config"] = {"format": {"type": "json_schema", "schema": r.output_schema}}
    out.update(extra)
    return cast(JSONObject, out)


def _encode_tool(t: Tool) -> JSONObject:
    out: dict[str, Any] = {}
    _put(out, "type", t.type)
    out["name"] = t.name
    _put(out, "description", t.description)
    _put(out, "input_schema", t.input_schema)
    _put(out, "cache_control", t.cache_control)
    out.update(t.extra)
    return cast(JSONObject, out)
