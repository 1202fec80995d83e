"""aiohttp plumbing shared by HTTP providers: one timeout policy, one response wrapper.

aiohttp's client was chosen by measurement (``../shared/bench/README.md``): httpx costs
5-10x more CPU under concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from ..errors import UpstreamTimeout, UpstreamUnreachable

__all__ = ["HttpProviderResponse", "post", "relay_headers"]

# Headers never relayed from a provider to the client: hop-by-hop, and the ones aiohttp's
# server sets itself for the body it actually sends (the body may have been decompressed).
_RESPONSE_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "date",
        "server",
        "request-id",
        "x-request-id",
        "proxy-authenticate",
        "trailer",
        "upgrade",
        "set-cookie",
    }
)


def relay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's response headers that go to the client (``retry-after``, rate limits...)."""
    return {k: v for k, v in headers.items() if k.lower() not in _RESPONSE_DROP}


class HttpProviderResponse:
    """A :class:`~llmrelay.providers.base.ProviderResponse` over an aiohttp response."""

    __slots__ = ("_account", "_read_s", "_resp", "headers", "status", "upstream_request_id")

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None

    def __init__(self, resp: aiohttp.ClientResponse, account: str, read_s: float) -> None:
        self._resp = resp
        self._account = account
        self._read_s = read_s
        self.status = resp.status
        self.headers = relay_headers(resp.headers)
        self.upstream_request_id = resp.headers.get("request-id") or resp.headers.get(
            "x-request-id"
        )

    @property
    def is_event_stream(self) -> bool:
        return self._resp.content_type == "text/event-stream"

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise _mid_body_error(err, self._account, self._read_s) from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as err:
            raise _mid_body_error(err, self._account, self._read_s) from None

    def close(self) -> None:
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


def _mid_body_error(err: BaseException, account: str, read_s: float) -> Exception:
    if isinstance(err, asyncio.TimeoutError):
        return UpstreamTimeout(f"provider {account!r} stopped sending for {read_s:g}s")
    return UpstreamUnreachable(f"provider {account!r} closed the connection mid-response")


async def post(
    session: aiohttp.ClientSession,
    url: str | URL,
    *,
    data: bytes,
    headers: list[tuple[str, str]],
    client_timeout: aiohttp.ClientTimeout,
    account: str,
) -> HttpProviderResponse:
    """POST and wait for the status line and headers.

    Raises:
        UpstreamUnreachable: connection refused, reset, DNS failure or connect timeout (502).
        UpstreamTimeout: no response within ``client_timeout.sock_read`` seconds (504).
    """
    try:
        resp = await session.post(url, data=data, headers=headers, timeout=client_timeout)
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
        raise UpstreamUnreachable(
            f"provider {account!r} could not be reached: {_reason(err)}"
        ) from None
    return HttpProviderResponse(resp, account, client_timeout.sock_read or 0.0)


def _reason(err: aiohttp.ClientError) -> str:
    if isinstance(err, aiohttp.ClientConnectorError):
        return err.strerror or "connection failed"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    return type(err).__name__


class StaticResponse:
    """A :class:`~llmrelay.providers.base.ProviderResponse` whose whole body is known, e.g.
    a provider error already rewritten into Anthropic's envelope."""

    __slots__ = ("_body", "headers", "status", "upstream_request_id")

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None

    def __init__(
        self, status: int, body: bytes, headers: Mapping[str, str], upstream_request_id: str | None
    ) -> None:
        self.status = status
        self.headers = headers
        self.upstream_request_id = upstream_request_id
        self._body = body

    @property
    def is_event_stream(self) -> bool:
        return False

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self._body

    def close(self) -> None:
        """Nothing is held."""
