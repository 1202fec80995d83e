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
from ..errors import (
    BrokenFramingError,
    InvalidRequestError,
    RequestTimeoutError,
    RequestTooLargeError,
)

__all__ = ["MAX_MODEL_CHARS", "BodyLimits", "body_size", "read_body", "read_json"]

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
        InvalidRequestError: broken framing, not JSON, nested deeper than
            ``limits.max_depth``, or not an object (400).
    """
    raw = await read_body(request, limits.max_bytes, limits.timeout_s)
    try:
        body = wirejson.loads(raw, max_depth=limits.max_depth)
    except wirejson.TooDeep as err:
        raise InvalidRequestError(str(err)) from None
    except wirejson.InvalidJSON as err:
        raise InvalidRequestError(f"request body is not valid JSON: {clip(str(err))}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body


async def read_body(request: web.BaseRequest, max_bytes: int, timeout_s: float) -> bytes:
    """The request body, whole, within ``timeout_s`` seconds of the call.

    A body that trickles in, or a ``Content-Length`` larger than what is sent, runs out
    the clock. ``request.read()`` returns the same bytes afterwards. Reads in the chunks
    aiohttp hands over: no task, one timer.

    Raises:
        RequestTooLargeError: more than ``max_bytes`` (by ``Content-Length``, before
            reading, or as read) (413).
        RequestTimeoutError: not all there within ``timeout_s`` (408; the connection is
            closed).
        BrokenFramingError: the body's framing is broken (chunked encoding, a
            compressed body that does not decode) (400; the connection is closed).
    """
    length = request.content_length
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    content = request.content
    if content.is_eof():
        # All of it arrived with the headers (the common case): nothing to wait for, so no
        # timer either.
        if content.total_bytes > max_bytes:
            raise _too_large(max_bytes)
        return await request.read()
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(max_bytes)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout_s:g}s (server.body_timeout_s)"
        ) from None
    except web.RequestPayloadError:
        raise BrokenFramingError("malformed HTTP request: invalid body framing") from None
    data = bytes(body)
    # aiohttp's own cache of the body: request.read() and .json() return it from now on.
    request._read_bytes = data
    return data


def _too_large(max_bytes: int) -> RequestTooLargeError:
    mb = max_bytes / (1024 * 1024)
    return RequestTooLargeError(
        f"request body exceeds this gateway's limit of {mb:g} MiB (server.max_request_body_mb)"
    )


async def body_size(request: web.Request) -> int:
    """The request body's size in bytes (aiohttp keeps the body once read)."""
    return request.content_length or len(await request.read())
