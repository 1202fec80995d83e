"""Anthropic surface, provider of another wire: decode to canonical, call, encode back.

The client sees exactly the Anthropic wire: a ``Message`` JSON, or an SSE stream with
``event:`` lines that the Anthropic SDK accepts (``message_start`` first, one start/stop
pair per block with increasing indexes, cumulative usage in ``message_delta``). Provider
errors come back in Anthropic's envelope with the provider's status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..codecs import anthropic as codec
from ..core.events import MessageStart
from ..core.replay import aiter_events, response_events
from ..core.types import Request
from ..core.usage import Usage
from ..errors import GatewayError, InvalidRequestError, anthropic_error_body
from ..providers.base import Endpoint
from ..routing.table import Route
from ..stores.usage import UsageRecord
from ..tokens import estimate_tokens
from ..translation import call_translated, codec_for
from .common import usage_from_event, write_events
from .sse import encode_event

if TYPE_CHECKING:
    from ..app import Gateway

__all__ = ["serve_translated"]

_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


async def serve_translated(
    gateway: Gateway,
    request: web.Request,
    endpoint: Endpoint,
    body: dict[str, Any],
    route: Route,
    record: UsageRecord,
    usage: Usage,
    started: float,
) -> web.StreamResponse:
    rid = record.request_id
    try:
        canonical = codec.decode_request(body)
    except codec.CodecError as err:
        raise InvalidRequestError(str(err)) from None
    if endpoint == "count_tokens":
        record.status = 200
        return await _count_tokens(gateway, body, canonical, route, rid)
    result = await call_translated(
        route.provider, canonical, route.provider_model, route.max_output_tokens
    )
    record.upstream_request_id = result.upstream_request_id
    headers = {**result.headers, "request-id": rid}
    if result.error is not None:
        error_type, message = result.error
        record.status = result.status
        record.error_type = error_type
        return web.Response(
            status=result.status,
            body=anthropic_error_body(error_type, message, rid),
            content_type="application/json",
            headers=headers,
        )
    if result.response is not None and not canonical.stream:
        record.status = 200
        usage_from_event(MessageStart(message=result.response), usage)
        return web.Response(
            body=orjson.dumps(codec.encode_response(result.response)),
            content_type="application/json",
            headers=headers,
        )
    events = result.events
    if events is None:
        assert result.response is not None
        events = aiter_events(response_events(result.response))
    resp = web.StreamResponse(status=200, headers={**headers, **_SSE_HEADERS})
    return await write_events(
        request,
        resp,
        events,
        record,
        usage,
        started,
        encode=lambda event: encode_event(event.type, codec.encode_event(event)),
        encode_error=_error_event,
    )


def _error_event(err: GatewayError) -> bytes:
    error = {"type": "error", "error": {"type": err.error_type, "message": err.message}}
    return encode_event("error", error)


async def _count_tokens(
    gateway: Gateway, body: dict[str, Any], canonical: Request, route: Route, rid: str
) -> web.Response:
    """Counted with the provider model's tokenizer where one is known, else estimated."""
    counted = None
    if route.provider.wire == "openai":
        canonical.max_tokens = canonical.max_tokens or 1
        try:
            openai_body = codec_for("openai").encode_request(canonical, route.provider_model)
        except ValueError:
            openai_body = None
        if openai_body is not None:
            counted = await gateway.tokens.count(openai_body, route.provider_model)
    if counted is None:
        tokens, how = estimate_tokens(body), "estimate"
    else:
        tokens, how = counted[0], f"tiktoken:{counted[1]}"
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type="application/json",
        headers={"request-id": rid, "x-llmrelay-token-count": how},
    )
