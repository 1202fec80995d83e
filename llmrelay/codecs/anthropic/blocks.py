"""Anthropic content blocks <-> canonical blocks (``anthropic/types/content_block*.py``)."""

from __future__ import annotations

from typing import Any, cast

from ...core.types import (
    Block,
    DocumentBlock,
    ImageBlock,
    JSONObject,
    OpaqueBlock,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)


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
