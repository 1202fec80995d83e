"""The answers an attempt can give, ready to send: a whole JSON body, a provider's stream
relayed as bytes (same wire as the client), or canonical events encoded in the client's
wire (a translation)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from ..core.events import Event
from ..core.usage import Usage
from ..errors import GatewayError
from ..providers.base import ProviderResponse
from .call import Call
from .relay import Tap, relay, relay_events

__all__ = ["ChunksAnswer", "EventsAnswer", "JSONAnswer"]


@dataclass(slots=True)
class JSONAnswer:
    """A whole response body. ``on_send`` reads its usage when it goes out."""

    status: int
    body: bytes
    headers: dict[str, str]
    upstream_request_id: str | None = None
    on_send: Callable[[Usage], None] | None = None

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        call.record.status = self.status
        if self.on_send is not None:
            self.on_send(call.usage)
        return web.Response(status=self.status, body=self.body, headers={**self.headers, **headers})


@dataclass(slots=True)
class ChunksAnswer:
    """A provider's 200 stream in the client's own wire, relayed byte for byte through a
    :class:`~llmrelay.pipeline.relay.Tap` made by ``tap`` for the call's usage. ``head`` is
    what the first-chunk gate already read from ``chunks``; ``encode_error`` ends the stream
    early (its bytes include whatever the wire needs after an error)."""

    up: ProviderResponse
    headers: dict[str, str]
    tap: Callable[[Usage], Tap]
    encode_error: Callable[[GatewayError], bytes]
    head: bytes = b""
    chunks: AsyncIterator[bytes] | None = None

    @property
    def upstream_request_id(self) -> str | None:
        return self.up.upstream_request_id

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        rest = self.chunks if self.chunks is not None else self.up.iter_chunks()
        chunks = _after(self.head, rest) if self.head else rest
        return await relay(
            call,
            {**self.headers, **headers},
            chunks,
            self.encode_error,
            tap=self.tap(call.usage),
            close=self.up.close,
        )


@dataclass(slots=True)
class EventsAnswer:
    """A canonical event stream to send in a surface's wire; ``head`` holds the events the
    gate already pulled; ``end`` closes the stream (also after an error)."""

    head: list[Event]
    events: AsyncIterator[Event]
    headers: dict[str, str]
    encode: Callable[[Event], bytes]
    encode_error: Callable[[GatewayError], bytes]
    end: bytes = b""
    upstream_request_id: str | None = None

    async def send(self, call: Call, headers: dict[str, str]) -> web.StreamResponse:
        events = _chain(self.head, self.events) if self.head else self.events
        return await relay_events(
            call, {**self.headers, **headers}, events, self.encode, self.encode_error, self.end
        )


async def _after(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        yield head
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def _chain(head: list[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    try:
        for event in head:
            yield event
        async for event in rest:
            yield event
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
