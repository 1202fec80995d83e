"""The Provider protocol: what the gateway needs from an upstream, and nothing more.

A provider speaks one wire family (``wire``): ``anthropic`` (Messages API JSON and SSE with
``event:`` lines) or ``openai`` (Chat Completions JSON and ``data:`` SSE). It receives a
request already in that wire (``model`` is the provider's own id) and answers with a
:class:`ProviderResponse` in the same wire. When the client's surface speaks another wire,
:mod:`llmrelay.translation` converts through the canonical model; shared code never
branches on a provider's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Endpoint", "Provider", "ProviderRequest", "ProviderResponse", "Wire", "WireBounds"]

#: ``messages`` is ``POST /v1/messages``; ``count_tokens`` is ``POST /v1/messages/count_tokens``
#: (both Anthropic wire); ``chat_completions`` is ``POST /v1/chat/completions`` (OpenAI wire).
Endpoint = Literal["messages", "count_tokens", "chat_completions"]
Wire = Literal["anthropic", "openai"]


@dataclass(slots=True, frozen=True)
class WireBounds:
    """Bounds on what a provider client decodes itself: ``max_event_bytes`` bytes in one
    stream event (``server.max_sse_event_mb``)."""

    max_event_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class ProviderRequest:
    """One call to a provider.

    ``body`` is the client's JSON object with ``model`` replaced; ``headers`` are the
    client's headers that may go upstream (never its gateway key, never hop-by-hop
    headers), repeated names kept; ``query`` is the client's raw query string
    (``beta=true``); ``stream`` is ``body["stream"] is True``. ``credential`` is the
    caller's own ``Authorization`` value when it authenticated with ``x-llmrelay-key``
    (subscription passthrough); only an ``auth: passthrough`` account ever sends it.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    headers: list[tuple[str, str]]
    query: str
    stream: bool
    #: Kept out of ``repr``: a logged request never shows the caller's token.
    credential: str | None = field(default=None, repr=False)


class ProviderResponse(Protocol):
    """A provider's answer. ``status`` and ``headers`` are known before the body is read.

    ``headers`` are the ones to relay to the client (no hop-by-hop, length or encoding
    headers). Exactly one of :meth:`read` or :meth:`iter_chunks` is used, then
    :meth:`close` (always, also after an error or a client disconnect).
    """

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None

    @property
    def is_event_stream(self) -> bool: ...

    async def read(self) -> bytes:
        """The whole body. Raises :class:`~llmrelay.errors.UpstreamTimeout` or
        :class:`~llmrelay.errors.UpstreamUnreachable` when the provider stalls or drops."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, unbuffered; same errors as :meth:`read`."""
        ...

    def close(self) -> None:
        """Release the connection; aborts it when the body was not read to the end."""
        ...


class Provider(Protocol):
    """One configured provider account."""

    account: str
    wire: Wire

    async def start(self) -> None:
        """Prepare what the hot path needs (credentials, tokens) before the first request.
        Failures are logged; requests then answer 502 naming the account."""
        ...

    async def send(self, request: ProviderRequest) -> ProviderResponse:
        """Start a call and return once the response status and headers are in.

        Raises:
            UpstreamUnreachable: the provider could not be connected to (502).
            UpstreamTimeout: it did not answer within its configured read timeout (504).
        """
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (connections, background tasks)."""
        ...
