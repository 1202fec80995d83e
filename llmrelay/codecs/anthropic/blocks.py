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
from .._shape import CodecError, obj, seq, string

__all__ = ["CodecError", "decode_block", "encode_block"]

_obj = obj  # the name the request and response modules use


def _rest(d: dict[str, Any], known: tuple[str, ...]) -> JSONObject:
    return {k: v for k, v in d.items() if k not in known}


# -- content blocks ---------------------------------------------------------------------


def decode_block(raw: Any, where: str = "content") -> Block:
    """One content block -> its canonical block; an unknown ``type`` is kept whole.

    Raises:
        CodecError: not an object, no string ``type``, or a known type with a field of the
            wrong shape (the message names it).
    """
    d = obj(raw, where)
    kind = d.get("type")
    cc = d.get("cache_control")
    if kind == "text":
        citations = d.get("citations")
        if citations is not None and not isinstance(citations, list):
            raise CodecError(f"{where}.citations: expected a list")
        return TextBlock(
            text=_required_str(d, "text", where),
            cache_control=cc,
            citations=citations,
            extra=_rest(d, ("type", "text", "cache_control", "citations")),
        )
    if kind == "image":
        return ImageBlock(
            source=obj(d.get("source"), f"{where}.source"),
            cache_control=cc,
            extra=_rest(d, ("type", "source", "cache_control")),
        )
    if kind == "document":
        return DocumentBlock(
            source=obj(d.get("source"), f"{where}.source"),
            cache_control=cc,
            extra=_rest(d, ("type", "source", "cache_control")),
        )
    if kind == "tool_use":
        return ToolUseBlock(
            id=string(d.get("id"), f"{where}.id"),
            name=string(d.get("name"), f"{where}.name"),
            input=obj(d.get("input", {}), f"{where}.input"),
            cache_control=cc,
            extra=_rest(d, ("type", "id", "name", "input", "cache_control")),
        )
    if kind == "tool_result":
        content = d.get("content")
        if isinstance(content, str):
            blocks: list[Block] = [TextBlock(text=content)]
        else:
            items = seq(content, f"{where}.content")
            blocks = [decode_block(b, f"{where}.content[{i}]") for i, b in enumerate(items)]
        is_error = d.get("is_error")
        if is_error is not None and not isinstance(is_error, bool):
            raise CodecError(f"{where}.is_error: expected true or false")
        return ToolResultBlock(
            tool_use_id=string(d.get("tool_use_id"), f"{where}.tool_use_id"),
            content=blocks,
            is_error=is_error,
            cache_control=cc,
            extra=_rest(d, ("type", "tool_use_id", "content", "is_error", "cache_control")),
        )
    if kind == "thinking":
        return ThinkingBlock(
            thinking=string(d.get("thinking"), f"{where}.thinking"),
            signature=string(d.get("signature"), f"{where}.signature"),
            extra=_rest(d, ("type", "thinking", "signature")),
        )
    if kind == "redacted_thinking":
        return RedactedThinkingBlock(
            data=string(d.get("data"), f"{where}.data"), extra=_rest(d, ("type", "data"))
        )
    if not isinstance(kind, str):
        raise CodecError(f"{where}.type: expected a string")
    return OpaqueBlock(raw=d)


def _required_str(d: dict[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise CodecError(f"{where}.{key}: expected a string")
    return value


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
