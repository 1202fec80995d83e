"""The native passthrough's provider side: one request in the provider's own API, any path.

A :class:`RawRequest` is what a client sent to ``/proxy/{account}/{path}`` (or to the
Anthropic SDK's batch and file paths): method, path relative to the account's base URL,
query, headers and body, all as received. A provider that implements :class:`Forwarder`
sends it to its API with its own credential swapped in (``x-api-key``, ``Bearer``, SigV4,
a Google token, Azure's ``api-key``) and returns the answer unchanged; nothing of the body is
parsed or rewritten. Providers without a native HTTP API (``mock``) do not implement it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast, runtime_checkable

import aiohttp
from yarl import URL

from ..errors import UpstreamTimeout, UpstreamUnreachable
from .http import HttpProviderResponse, mask_secrets

__all__ = ["Forwarder", "RawRequest", "RawResponse", "as_forwarder", "forward"]


@dataclass(slots=True, frozen=True)
class RawRequest:
    """One passthrough request.

    ``path`` is percent-encoded as the client sent it, relative to the account's base URL
    and without a leading ``/`` (``v1/messages/batches``); the surface has refused every
    form that could leave the account (``..``, ``%2f``, ``//``). ``query`` is the raw query
    string (no ``?``). ``headers`` are the client's headers that may go upstream
    (:mod:`llmrelay.providers.headers`: never the gateway key). ``credential`` is the
    caller's own ``Authorization`` value for a subscription-passthrough account, else None.
    ``content_type`` is the client's ``content-type`` for a body (a multipart upload keeps
    its boundary), sent as is.
    """

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes = field(repr=False)
    #: Kept out of ``repr``: a logged request never shows the caller's token.
    credential: str | None = field(default=None, repr=False)
    content_type: str | None = None

    def framing(self) -> list[tuple[str, str]]:
        """The ``content-type`` header to send with the body (none without one)."""
        return [("content-type", self.content_type)] if self.content_type else []

    def url(self, base: str) -> URL:
        """``base`` (an account's base URL, no trailing ``/``) joined with the path and query,
        kept encoded as they came."""
        target = f"{base}/{self.path}"
        if self.query:
            target = f"{target}?{self.query}"
        return URL(target, encoded=True)


@runtime_checkable
class Forwarder(Protocol):
    """A provider with a native HTTP API the passthrough can reach."""

    account: str

    async def forward(self, request: RawRequest) -> RawResponse:
        """Send ``request`` with this account's credential and return once the status and
        headers are in.

        Raises:
            AuthenticationError: a subscription-passthrough account got no caller credential.
            UpstreamUnreachable: the provider could not be connected to (502).
            UpstreamTimeout: no answer within the account's ``timeouts.read_s`` (504).
        """
        ...


def as_forwarder(provider: object) -> Forwarder | None:
    """``provider`` when it is a :class:`Forwarder` (what ``isinstance`` says), else None.
    Told by its attributes: ``isinstance`` against a runtime-checkable protocol walks the
    protocol's members each time (~12 µs a call, on every passthrough call)."""
    if hasattr(provider, "account") and callable(getattr(provider, "forward", None)):
        return cast(Forwarder, provider)
    return None


class RawResponse(HttpProviderResponse):
    """A provider's answer relayed byte for byte: unlike a Messages call's answer, a success
    body (a file's content, batch results) is never scanned for key shapes. An error body
    (status 400 or more) still has the credentials sent and key-shaped strings masked."""

    __slots__ = ()

    @property
    def length(self) -> int | None:
        """The body's length in bytes as it will be relayed: the provider's
        ``content-length`` when the body comes unencoded (aiohttp decodes a compressed one,
        whose length then differs), else None. An error body may be masked: None."""
        resp = self._resp
        if self.status >= 400 or "content-encoding" in resp.headers:
            return None
        return resp.content_length

    def arrived(self) -> bytes | None:
        """The whole body when all of it is in already (a short answer usually comes with
        its headers) and it relays as it came (:attr:`length` known: not compressed, not an
        error), else None. Never waits."""
        content = self._resp.content
        length = self.length
        if (
            length is None
            or not content.is_eof()
            or content.exception() is not None
            or content.total_bytes != length
        ):
            return None
        return content.read_nowait()

    async def read(self) -> bytes:
        if self.status >= 400:
            return await super().read()
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ClientError):
            raise self._broken() from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self.status >= 400:
            yield await self.read()
            return
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError):
            raise self._broken() from None

    def _broken(self) -> Exception:
        return UpstreamUnreachable(
            f"provider {self._account!r} closed the connection or stopped sending mid-response"
        )


async def forward(
    session: aiohttp.ClientSession,
    request: RawRequest,
    url: URL,
    headers: list[tuple[str, str]],
    *,
    client_timeout: aiohttp.ClientTimeout,
    account: str,
    secrets: Sequence[str] = (),
) -> RawResponse:
    """Send ``request``'s method and body to ``url`` with ``headers`` (the provider's own
    credential included; ``secrets`` are masked out of error bodies).

    Raises:
        UpstreamUnreachable: connection refused, reset, DNS failure or connect timeout (502).
        UpstreamTimeout: no response within ``client_timeout.sock_read`` seconds (504).
    """
    try:
        resp = await session.request(
            request.method,
            url,
            data=request.body if request.body else None,
            headers=headers,
            timeout=client_timeout,
            allow_redirects=False,
        )
    except aiohttp.ConnectionTimeoutError:
        raise UpstreamUnreachable(
            f"provider {account!r} could not be reached: connect timed out after "
            f"{client_timeout.connect:g}s"
        ) from None
    except TimeoutError:
        raise UpstreamTimeout(
            f"provider {account!r} did not answer within {client_timeout.sock_read:g}s"
        ) from None
    except aiohttp.ClientError as err:
        reason = mask_secrets(str(err).encode(), secrets).decode("utf-8", "replace")[:200]
        raise UpstreamUnreachable(f"provider {account!r} could not be reached: {reason}") from None
    return RawResponse(resp, account, client_timeout.sock_read or 0.0, secrets)
