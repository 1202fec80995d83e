"""Anthropic Messages wire <-> the canonical model.

Pure functions over parsed JSON. Field names and shapes follow the Anthropic SDK:
``types/message_create_params.py`` (request), ``types/message.py`` (response),
``types/raw_message_stream_event.py`` (stream). Unknown fields go to ``extra`` on decode and
come back on encode, so ``encode(decode(x)) == x`` for every well-formed request (a string
``content`` comes back as one text block, which means the same).
"""

from __future__ import annotations

from typing import Any, cast

from ..core.events import (
    BlockDelta,
    BlockStart,
    BlockStop,
    CitationsDelta,
    Delta,
    Event,
    InputJSONDelta,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    SignatureDelta,
    StreamError,
    TextDelta,
    ThinkingDelta,
)
from ..core.types import (
    JSON,
    Block,
    DocumentBlock,
    ImageBlock,
    JSONObject,
    Message,
    OpaqueBlock,
    RedactedThinkingBlock,
    Request,
    Response,
    TextBlock,
    ThinkingBlock,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolResultBlock,
    ToolUseBlock,
)
from ..core.usage import Usage

__all__ = [
    "CodecError",
    "decode_block",
    "decode_event",
    "decode_request",
    "decode_response",
    "encode_block",
    "encode_event",
    "encode_request",
    "encode_response",
    "encode_usage",
]


class CodecError(ValueError):
    """A body that does not have the shape the wire format requires; says which field."""


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(f"{where}: expected an object")
    return value


def _rest(d: dict[str, Any], known: tuple[str, ...]) -> JSONObject:
    return {k: v for k, v in d.items() if k not in known}


# -- content blocks ---------------------------------------------------------------------


def decode_block(raw: Any, where: str = "content") -> Block:
    d = _obj(raw, where)
    kind = d.get("type")
    cc = d.get("cache_control")
    if kind == "text":
        if not isinstance(d.get("text"), str):
            raise CodecError(f"{where}.text: expected a string")
        return TextBlock(
            text=d["text"],
            cache_control=cc,
            citations=d.get("citations"),
            extra=_rest(d, ("type", "text", "cache_control", "citations")),
        )
    if kind == "image":
        return ImageBlock(
            source=_obj(d.get("source"), f"{where}.source"),
            cache_control=cc,
            extra=_rest(d, ("type", "source", "cache_control")),
        )
    if kind == "document":
        return DocumentBlock(
            source=_obj(d.get("source"), f"{where}.source"),
            cache_control=cc,
            extra=_rest(d, ("type", "source", "cache_control")),
        )
    if kind == "tool_use":
        return ToolUseBlock(
            id=str(d.get("id", "")),
            name=str(d.get("name", "")),
            input=_obj(d.get("input", {}), f"{where}.input"),
            cache_control=cc,
            extra=_rest(d, ("type", "id", "name", "input", "cache_control")),
        )
    if kind == "tool_result":
        content = d.get("content")
        if content is None:
            blocks: list[Block] = []
        elif isinstance(content, str):
            blocks = [TextBlock(text=content)]
        else:
            blocks = [decode_block(b, f"{where}.content[{i}]") for i, b in enumerate(content)]
        return ToolResultBlock(
            tool_use_id=str(d.get("tool_use_id", "")),
            content=blocks,
            is_error=d.get("is_error"),
            cache_control=cc,
            extra=_rest(d, ("type", "tool_use_id", "content", "is_error", "cache_control")),
        )
    if kind == "thinking":
        return ThinkingBlock(
            thinking=str(d.get("thinking", "")),
            signature=str(d.get("signature", "")),
            extra=_rest(d, ("type", "thinking", "signature")),
        )
    if kind == "redacted_thinking":
        return RedactedThinkingBlock(data=str(d.get("data", "")), extra=_rest(d, ("type", "data")))
    if not isinstance(kind, str):
        raise CodecError(f"{where}.type: expected a string")
    return OpaqueBlock(raw=d)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def encode_block(b: Block) -> JSONObject:
    if isinstance(b, OpaqueBlock):
        return dict(b.raw)
    out: dict[str, Any] = {"type": b.type}
    if isinstance(b, TextBlock):
        out["text"] = b.text
        _put(out, "citations", b.citations)
    elif isinstance(b, (ImageBlock, DocumentBlock)):
        out["source"] = b.source
    elif isinstance(b, ToolUseBlock):
        out.update(id=b.id, name=b.name, input=b.input)
    elif isinstance(b, ToolResultBlock):
        out["tool_use_id"] = b.tool_use_id
        out["content"] = [encode_block(c) for c in b.content]
        _put(out, "is_error", b.is_error)
    elif isinstance(b, ThinkingBlock):
        out.update(thinking=b.thinking, signature=b.signature)
    elif isinstance(b, RedactedThinkingBlock):
        out["data"] = b.data
    if not isinstance(b, (ThinkingBlock, RedactedThinkingBlock)):
        _put(out, "cache_control", b.cache_control)
    out.update(b.extra)
    return cast(JSONObject, out)


def _blocks(content: Any, where: str) -> list[Block]:
    if isinstance(content, str):
        return [TextBlock(text=content)]
    if not isinstance(content, list):
        raise CodecError(f"{where}: expected a string or a list of content blocks")
    return [decode_block(b, f"{where}[{i}]") for i, b in enumerate(content)]


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
        max_tokens=body.get("max_tokens"),
        system=sys_blocks,
        stop_sequences=body.get("stop_sequences"),
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


# -- responses --------------------------------------------------------------------------

_RESPONSE_FIELDS = (
    "id",
    "type",
    "role",
    "model",
    "content",
    "stop_reason",
    "stop_sequence",
    "usage",
)


_USAGE_COUNTS = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


def decode_usage(raw: Any) -> Usage:
    u = Usage()
    if isinstance(raw, dict):
        u.update_from_anthropic(raw)
        u.extra = dict(_rest(raw, _USAGE_COUNTS))
    return u


def encode_usage(u: Usage) -> JSONObject:
    out: dict[str, Any] = {
        "input_tokens": u.input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "output_tokens": u.output_tokens,
    }
    out.update(u.extra)
    return cast(JSONObject, out)


def decode_response(body: dict[str, Any]) -> Response:
    """A ``Message`` object -> :class:`Response`.

    Raises:
        CodecError: ``content`` is not a list of blocks.
    """
    content = body.get("content", [])
    if not isinstance(content, list):
        raise CodecError("content: expected a list")
    return Response(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        content=[decode_block(b, f"content[{i}]") for i, b in enumerate(content)],
        stop_reason=body.get("stop_reason"),
        stop_sequence=body.get("stop_sequence"),
        usage=decode_usage(body.get("usage")),
        extra=_rest(body, _RESPONSE_FIELDS),
    )


def encode_response(r: Response) -> JSONObject:
    out: dict[str, Any] = {
        "id": r.id,
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": [encode_block(b) for b in r.content],
        "stop_reason": r.stop_reason,
        "stop_sequence": r.stop_sequence,
        "usage": encode_usage(r.usage),
    }
    out.update(r.extra)
    return cast(JSONObject, out)


# -- stream events ----------------------------------------------------------------------


def _decode_delta(d: dict[str, Any]) -> Delta:
    kind = d.get("type")
    if kind == "text_delta":
        return TextDelta(text=str(d.get("text", "")))
    if kind == "input_json_delta":
        return InputJSONDelta(partial_json=str(d.get("partial_json", "")))
    if kind == "thinking_delta":
        return ThinkingDelta(thinking=str(d.get("thinking", "")))
    if kind == "signature_delta":
        return SignatureDelta(signature=str(d.get("signature", "")))
    if kind == "citations_delta":
        return CitationsDelta(citation=_obj(d.get("citation"), "delta.citation"))
    raise CodecError(f"delta.type: unknown delta type {kind!r}")


def decode_event(data: dict[str, Any]) -> Event | None:
    """One parsed SSE ``data`` object -> an event; None for event types this code skips.

    Raises:
        CodecError: a known event with a malformed body.
    """
    kind = data.get("type")
    if kind == "message_start":
        return MessageStart(message=decode_response(_obj(data.get("message"), "message")))
    if kind == "content_block_start":
        return BlockStart(
            index=int(data["index"]), block=decode_block(data.get("content_block"), "content_block")
        )
    if kind == "content_block_delta":
        return BlockDelta(
            index=int(data["index"]), delta=_decode_delta(_obj(data.get("delta"), "delta"))
        )
    if kind == "content_block_stop":
        return BlockStop(index=int(data["index"]))
    if kind == "message_delta":
        delta = _obj(data.get("delta", {}), "delta")
        return MessageDelta(
            stop_reason=delta.get("stop_reason"),
            stop_sequence=delta.get("stop_sequence"),
            usage=decode_usage(data.get("usage")),
        )
    if kind == "message_stop":
        return MessageStop()
    if kind == "ping":
        return Ping()
    if kind == "error":
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        assert isinstance(err, dict)
        return StreamError(
            error_type=str(err.get("type", "api_error")), message=str(err.get("message", ""))
        )
    return None


def encode_event(e: Event) -> JSONObject:
    """An event -> the SSE ``data`` object (its ``type`` is also the SSE ``event:`` name)."""
    if isinstance(e, MessageStart):
        msg = encode_response(e.message)
        return {"type": e.type, "message": msg}
    if isinstance(e, BlockStart):
        return {"type": e.type, "index": e.index, "content_block": encode_block(e.block)}
    if isinstance(e, BlockDelta):
        delta: dict[str, JSON] = {"type": e.delta.type}
        delta.update(_delta_fields(e.delta))
        return {"type": e.type, "index": e.index, "delta": delta}
    if isinstance(e, BlockStop):
        return {"type": e.type, "index": e.index}
    if isinstance(e, MessageDelta):
        return {
            "type": e.type,
            "delta": {"stop_reason": e.stop_reason, "stop_sequence": e.stop_sequence},
            "usage": encode_usage(e.usage),
        }
    if isinstance(e, StreamError):
        return {"type": "error", "error": {"type": e.error_type, "message": e.message}}
    return {"type": e.type}


def _delta_fields(d: Delta) -> JSONObject:
    if isinstance(d, TextDelta):
        return {"text": d.text}
    if isinstance(d, InputJSONDelta):
        return {"partial_json": d.partial_json}
    if isinstance(d, ThinkingDelta):
        return {"thinking": d.thinking}
    if isinstance(d, SignatureDelta):
        return {"signature": d.signature}
    return {"citation": d.citation}
