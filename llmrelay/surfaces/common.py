"""What every client surface does the same way: request ids, reading the JSON body,
headers that may go upstream, and closing a call's usage row."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..core import wirejson
from ..core.events import Event, MessageDelta, MessageStart, StreamError
from ..core.usage import Usage
from ..errors import GatewayError, InvalidRequestError, RequestTooLargeError
from ..routing.table import Route
from ..routing.virtual import VirtualModel
from ..stores.usage import UsageRecord

if TYPE_CHECKING:
    from ..app import Gateway
    from ..policy.admission import Admission

__all__ = [
    "body_size",
    "finish_record",
    "forward_headers",
    "json_content",
    "log_refused",
    "new_request_id",
    "provider_models",
    "read_json",
    "target_name",
    "usage_from_event",
    "write_events",
]

log = logging.getLogger("llmrelay.access")

# Request headers that never go upstream: the gateway key, hop-by-hop headers, and the ones
# the provider client sets itself.
_REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "authorization",
        "x-api-key",
        "api-key",
        "accept-encoding",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "cookie",
        "expect",
        "x-llmrelay-metadata",  # the gateway's own, for routing rules
    }
)


def new_request_id() -> str:
    """A ``req_`` id, the shape Anthropic's ``request-id`` header has. Unique, not secret:
    ``random`` is half the cost of ``secrets`` and ids are not credentials."""
    return f"req_{random.getrandbits(96):024x}"


def forward_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The client's headers that may go upstream, repeated names kept in order."""
    return [(k, v) for k, v in headers.items() if k.lower() not in _REQUEST_DROP]


def json_content(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with ``content-type: application/json`` (any other content type dropped)."""
    out = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    out["content-type"] = "application/json"
    return out


async def read_json(request: web.Request, max_body: int) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        RequestTooLargeError: over ``max_body`` bytes (413).
        InvalidRequestError: not JSON, or not an object (400).
    """
    if request.content_length is not None and request.content_length > max_body:
        raise _too_large(max_body)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_body) from None
    try:
        body = wirejson.loads(raw)
    except wirejson.InvalidJSON as err:
        raise InvalidRequestError(f"request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body


def _too_large(max_body: int) -> RequestTooLargeError:
    mb = max_body / (1024 * 1024)
    return RequestTooLargeError(
        f"request body exceeds this gateway's limit of {mb:g} MiB (server.max_request_body_mb)"
    )


def usage_from_event(event: Event, usage: Usage) -> None:
    """Fold a canonical event's usage into ``usage`` (``message_delta`` is cumulative)."""
    if isinstance(event, MessageStart):
        u = event.message.usage
        usage.input_tokens = u.input_tokens
        usage.output_tokens = u.output_tokens
        usage.cache_creation_input_tokens = u.cache_creation_input_tokens
        usage.cache_read_input_tokens = u.cache_read_input_tokens
    elif isinstance(event, MessageDelta):
        u = event.usage
        usage.output_tokens = u.output_tokens
        if u.input_tokens:
            usage.input_tokens = u.input_tokens
        if u.cache_creation_input_tokens:
            usage.cache_creation_input_tokens = u.cache_creation_input_tokens
        if u.cache_read_input_tokens:
            usage.cache_read_input_tokens = u.cache_read_input_tokens


def log_refused(request: web.Request, status: int, request_id: str) -> None:
    """One access-log line (info) for a call refused before it had a caller (401)."""
    if log.isEnabledFor(logging.INFO):
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": status,
                "request_id": request_id,
            },
        )


def finish_record(
    gateway: Gateway,
    request: web.Request,
    record: UsageRecord,
    usage: Usage,
    started: float,
    admission: Admission | None = None,
) -> None:
    """Close a call's usage row (tokens, cost) and queue it, settle what the policy step
    held for the call; one access-log line at info level."""
    record.latency_s = time.perf_counter() - started
    if record.status == 499 and record.error_type is None:
        record.error_type = "client_disconnected"
    record.input_tokens = usage.input_tokens
    record.output_tokens = usage.output_tokens
    record.cache_creation_input_tokens = usage.cache_creation_input_tokens
    record.cache_read_input_tokens = usage.cache_read_input_tokens
    if record.provider_model:
        record.cost_usd = gateway.policy.cost(record.provider_model, usage)
    if admission is not None:
        gateway.policy.settle_soon(admission, usage, record.cost_usd)
    gateway.record_usage(record)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": record.status,
                "key_name": record.key_name,
                "model": record.model,
                "provider": record.provider,
                "provider_model": record.provider_model,
                "attempts": record.attempts,
                "request_id": record.request_id,
                "latency_ms": round(record.latency_s * 1000, 2),
                "stream": record.stream,
                "error_type": record.error_type,
                "cost_usd": record.cost_usd,
            },
        )


def provider_models(target: Route | VirtualModel) -> tuple[str, ...]:
    """The provider model ids that may serve a call (one, or a virtual model's targets)."""
    if isinstance(target, Route):
        return (target.provider_model,)
    return tuple(t.route.provider_model for t in target.targets)


def target_name(target: Route | VirtualModel) -> str:
    """The public name of what serves a call (after routing rules)."""
    return target.public_model if isinstance(target, Route) else target.name


async def body_size(request: web.Request) -> int:
    """The request body's size in bytes (aiohttp keeps the body once read)."""
    return request.content_length or len(await request.read())


async def write_events(
    request: web.Request,
    resp: web.StreamResponse,
    events: AsyncIterator[Event],
    record: UsageRecord,
    usage: Usage,
    started: float,
    encode: Callable[[Event], bytes],
    encode_error: Callable[[GatewayError], bytes],
    end: bytes = b"",
) -> web.StreamResponse:
    """Send a canonical event stream in a surface's wire, as each event arrives.

    ``encode`` turns one event into wire bytes (maybe none); a provider failure after the
    stream started is sent as ``encode_error`` (the headers are gone); ``end`` closes a
    stream that finished (OpenAI's ``data: [DONE]``). A client that went away marks the row
    499; the provider stream is closed in every case.
    """
    await resp.prepare(request)
    try:
        try:
            async for event in events:
                if record.ttft_s is None:
                    record.ttft_s = time.perf_counter() - started
                usage_from_event(event, usage)
                if isinstance(event, StreamError):
                    record.error_type = event.error_type
                out = encode(event)
                if out:
                    await resp.write(out)
        except GatewayError as err:
            record.error_type = err.error_type
            await resp.write(encode_error(err))
        else:
            if end:
                await resp.write(end)
        record.status = 200
        await resp.write_eof()
    except ConnectionResetError:
        record.status = 499
        record.error_type = "client_disconnected"
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    return resp
