"""The Provider protocol: what the gateway needs from an upstream, and nothing more.

A provider receives an Anthropic Messages request (already routed: ``model`` is the
provider's own model id) and answers with a :class:`ProviderResponse` in Anthropic's wire
format: a JSON body, or an SSE byte stream with ``event:`` lines. Providers of another wire
family translate inside their own folder; shared code never branches on a provider's name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["Endpoint", "Provider", "ProviderRequest", "ProviderResponse"]

#: ``messages`` is ``POST /v1/messages``; ``count_tokens`` is ``POST /v1/messages/count_tokens``.
Endpoint = Literal["messages", "count_tokens"]


@dataclass(slots=True)
class ProviderRequest:
    """One call to a provider.

    ``body`` is the client's JSON object with ``model`` replaced; ``headers`` are the
    client's headers that may go upstream (never its gateway key, never hop-by-hop
    headers), repeated names kept; ``query`` is the client's raw query string
    (``beta=true``); ``stream`` is ``body["stream"] is True``.
    """

    endpoint: Endpoint
    body: dict[str, Any]
    headers: list[tuple[str, str]]
    query: str
    stream: bool


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
