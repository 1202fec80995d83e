"""Stream events <-> canonical events (``anthropic/types/raw_message_stream_event.py``)."""

from __future__ import annotations

import logging
from typing import Any

from ...core.events import (
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
from ...core.types import (
    JSON,
    JSONObject,
)
from .._shape import CodecError, index, obj, opt_str
from .blocks import decode_block, encode_block
from .response import decode_response, decode_usage, encode_response, encode_usage, stop_reason

log = logging.getLogger("llmrelay.codecs.anthropic")

# -- stream events ----------------------------------------------------------------------


def _decode_delta(d: dict[str, Any], where: str) -> Delta | None:
    kind = d.get("type")
    if kind == "text_delta":
        return TextDelta(text=_text(d, "text", where))
    if kind == "input_json_delta":
        return InputJSONDelta(partial_json=_text(d, "partial_json", where))
    if kind == "thinking_delta":
        return ThinkingDelta(thinking=_text(d, "thinking", where))
    if kind == "signature_delta":
        return SignatureDelta(signature=_text(d, "signature", where))
    if kind == "citations_delta":
        return CitationsDelta(citation=obj(d.get("citation"), f"{where}.citation"))
    if not isinstance(kind, str):
        raise CodecError(f"{where}.type: expected a string")
    # A delta type newer than this code: the SDK's accumulate_event skips it too, and the
    # only surface that reads a translated Anthropic stream (OpenAI's) has no field for it.
    log.debug("unknown delta type %r skipped", kind)
    return None


def _text(d: dict[str, Any], key: str, where: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise CodecError(f"{where}.{key}: expected a string")
    return value


def decode_event(data: dict[str, Any]) -> Event | None:
    """One parsed SSE ``data`` object -> an event; None for event (and delta) types this
    code does not know, and for an object without a ``type``.

    Field paths in errors start with the event type: ``content_block_delta.index: expected
    an integer index``.

    Raises:
        CodecError: a known event with a malformed body.
    """
    kind = data.get("type")
    if kind == "message_start":
        return MessageStart(message=decode_response(data.get("message"), "message_start.message."))
    if kind == "content_block_start":
        return BlockStart(
            index=index(data.get("index"), f"{kind}.index"),
            block=decode_block(data.get("content_block"), f"{kind}.content_block"),
        )
    if kind == "content_block_delta":
        at = index(data.get("index"), f"{kind}.index")
        delta = _decode_delta(obj(data.get("delta"), f"{kind}.delta"), f"{kind}.delta")
        return None if delta is None else BlockDelta(index=at, delta=delta)
    if kind == "content_block_stop":
        return BlockStop(index=index(data.get("index"), f"{kind}.index"))
    if kind == "message_delta":
        fields = obj(data.get("delta", {}), f"{kind}.delta")
        return MessageDelta(
            stop_reason=stop_reason(fields.get("stop_reason"), f"{kind}.delta.stop_reason"),
            stop_sequence=opt_str(fields.get("stop_sequence"), f"{kind}.delta.stop_sequence"),
            usage=decode_usage(data.get("usage"), f"{kind}.usage"),
        )
    if kind == "message_stop":
        return MessageStop()
    if kind == "ping":
        return Ping()
    if kind == "error":
        err = data.get("error")
        if not isinstance(err, dict):
            err = {}
        return StreamError(
            error_type=str(err.get("type") or "api_error"), message=str(err.get("message") or "")
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
