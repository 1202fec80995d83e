"""``Message`` objects and usage <-> :class:`~llmrelay.core.types.Response`
(``anthropic/types/message.py``, ``usage.py``)."""

from __future__ import annotations

from typing import Any, cast

from ...core.types import (
    JSONObject,
    Response,
    StopReason,
)
from ...core.usage import Usage
from .._shape import count, obj, opt_obj, opt_str, seq, string
from .blocks import _rest, decode_block, encode_block

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


def decode_usage(raw: Any, where: str = "usage") -> Usage:
    """An Anthropic ``Usage`` (or a ``message_delta``'s) -> :class:`Usage`; absent or null
    counts are 0, negative ones 0.

    Raises:
        CodecError: not an object, or a count that is not an integer.
    """
    u = Usage()
    d = opt_obj(raw, where)
    if d is not None:
        u.update_from_anthropic({k: count(d.get(k), f"{where}.{k}") for k in _USAGE_COUNTS})
        u.extra = dict(_rest(d, _USAGE_COUNTS))
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


def stop_reason(value: Any, where: str) -> StopReason | None:
    """A ``stop_reason``: a string (kept even when newer than :data:`StopReason`) or null."""
    return cast(StopReason | None, opt_str(value, where))


def decode_response(body: Any, where: str = "") -> Response:
    """A ``Message`` object -> :class:`Response`; ``where`` prefixes the field paths in
    errors (``message_start.message.``). Unknown fields go to ``extra``; an unknown
    ``stop_reason`` string is kept as it is.

    Raises:
        CodecError: not an object, or a field of the wrong shape: ``content`` not a list of
            blocks, a block without a string ``type``, non-integer usage counts...
    """
    body = obj(body, where.rstrip(".") or "message")
    content = seq(body.get("content"), f"{where}content")
    return Response(
        id=string(body.get("id"), f"{where}id"),
        model=string(body.get("model"), f"{where}model"),
        content=[decode_block(b, f"{where}content[{i}]") for i, b in enumerate(content)],
        stop_reason=cast(
            StopReason | None, opt_str(body.get("stop_reason"), f"{where}stop_reason")
        ),
        stop_sequence=opt_str(body.get("stop_sequence"), f"{where}stop_sequence"),
        usage=decode_usage(body.get("usage"), f"{where}usage"),
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
