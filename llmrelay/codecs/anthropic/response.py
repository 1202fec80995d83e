"""``Message`` objects and usage <-> :class:`~llmrelay.core.types.Response`
(``anthropic/types/message.py``, ``usage.py``)."""

from __future__ import annotations

from typing import Any, cast

from ...core.types import (
    JSONObject,
    Response,
)
from ...core.usage import Usage
from .blocks import CodecError, _rest, decode_block, encode_block

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
