"""Reading a client's JSON body, bounded in size and in time.

Limits (``docs/limits.md``): ``server.max_request_body_mb`` (413), ``server.body_timeout_s``
for the whole body however it trickles (408), and the model name's length (a name longer
than :data:`MAX_MODEL_CHARS` cannot be routed and is refused before anything echoes it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..core import wirejson
from ..core.text import clip
from ..errors import InvalidRequestError, RequestTimeoutError, RequestTooLargeError

__all__ = ["MAX_MODEL_CHARS", "BodyLimits", "body_size", "read_json"]

#: Longest model name the gateway routes; longer ones are answered 404 unread.
MAX_MODEL_CHARS = 256


class BodyLimits:
    """A surface's body limits, from ``server:`` (bytes, seconds, levels of nesting)."""

    __slots__ = ("max_bytes", "max_depth", "timeout_s")

    def __init__(self, max_bytes: int, timeout_s: float, max_depth: int = 128) -> None:
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_depth = max_depth


async def read_json(request: web.Request, limits: BodyLimits) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        RequestTooLargeError: over ``limits.max_bytes`` (413).
        RequestTimeoutError: not all there within ``limits.timeout_s`` (408).
        InvalidRequestError: not JSON, nested deeper than ``limits.max_depth``, or not an
            object (400).
    """
    if request.content_length is not None and request.content_length > limits.max_bytes:
        raise _too_large(limits.max_bytes)
    try:
        async with asyncio.timeout(limits.timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limits.max_bytes) from None
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {limits.timeout_s:g}s (server.body_timeout_s)"
        ) from None
    try:
        body = wirejson.loads(raw, max_depth=limits.max_depth)
    except wirejson.TooDeep as err:
        raise InvalidRequestError(str(err)) from None
    except wirejson.InvalidJSON as err:
        raise InvalidRequestError(f"request body is not valid JSON: {clip(str(err))}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body


def _too_large(max_body: int) -> RequestTooLargeError:
    mb = max_body / (1024 * 1024)
    return RequestTooLargeError(
        f"request body exceeds this gateway's limit of {mb:g} MiB (server.max_request_body_mb)"
    )


async def body_size(request: web.Request) -> int:
    """The request body's size in bytes (aiohttp keeps the body once read)."""
    return request.content_length or len(await request.read())
