"""Stream events <-> canonical events (``anthropic/types/raw_message_stream_event.py``)."""

from __future__ import annotations

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
from .blocks import CodecError, _obj, decode_block, encode_block
from .response import decode_response, decode_usage, encode_response, encode_usage

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
