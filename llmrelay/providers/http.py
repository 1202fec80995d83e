"""aiohttp plumbing shared by HTTP providers: one timeout policy, one response wrapper,
and credentials masked out of provider error bodies.

aiohttp's client was chosen by measurement (``../shared/bench/README.md``): httpx costs
5-10x more CPU under concurrency.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import aiohttp
from yarl import URL

from ..errors import UpstreamTimeout, UpstreamUnreachable

__all__ = ["HttpProviderResponse", "mask_secrets", "post", "relay_headers"]

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


# Credential shapes masked in provider error bodies, whoever's they are: Anthropic, this
# gateway's own and OpenAI-style keys, AWS access key ids, Google API keys and OAuth access
# tokens, bearer tokens. Each alternative has one group, the prefix that stays visible.
_KEY_SHAPES = re.compile(
    rb"(?<![A-Za-z0-9_-])(?:"
    rb"(sk-ant-)[A-Za-z0-9_-]{8,}"
    rb"|(sk-llmrelay-)[A-Za-z0-9_-]{8,}"
    rb"|(sk-)[A-Za-z0-9_-]{16,}"
    rb"|(AKIA|ASIA)[A-Z0-9]{16}"
    rb"|(AIza)[A-Za-z0-9_-]{30,}"
    rb"|(ya29\.)[A-Za-z0-9_.-]{8,}"
    rb"|([Bb]earer[ \t]+)(?=[A-Za-z0-9._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}"
    rb")"
)
# A JSON error inside a 200 event stream: Anthropic's ``event: error`` (its data has
# ``"error":``) and OpenAI-compatible servers' ``data: {"error": ...}``. Model text in a
# delta is a JSON string, where the quotes are escaped, so it never matches.
_STREAM_ERROR = b'"error":'
_MIN_SECRET = 8
#: Characters of a proxy's refusal (its status line) quoted in a 502's message.
MAX_PROXY_REASON_CHARS = 200


def _shape_mask(m: re.Match[bytes]) -> bytes:
    return m[m.lastindex or 0] + b"***"


def _secret_mask(secret: bytes) -> bytes:
    m = _KEY_SHAPES.match(secret)
    return m[m.lastindex or 0] + b"***" if m is not None and m.lastindex else b"***"


def mask_secrets(body: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``body`` with every credential in ``secrets`` (8 characters or more) and anything
    shaped like a known key format masked: ``sk-ant-api03-...`` becomes ``sk-ant-***``, a
    secret without a known shape ``***``.

    Meant for error bodies (a provider that echoes the key it was sent, or a client's):
    a handful of substring searches and one regex pass. A successful answer is never
    masked, only an error event inside a stream.
    """
    for secret in secrets:
        if len(secret) < _MIN_SECRET:
            continue
        raw = secret.encode()
        for form in (raw, raw.replace(b"/", b"\\/")):  # also as JSON may escape it
            if form in body:
                body = body.replace(form, _secret_mask(raw))
    return _KEY_SHAPES.sub(_shape_mask, body)


def _mask_error_events(chunk: bytes, secrets: Iterable[str]) -> bytes:
    """``chunk`` with its error events masked; the other events in it stay byte for byte."""
    return b"\n\n".join(
        mask_secrets(event, secrets) if _STREAM_ERROR in event else event
        for event in chunk.split(b"\n\n")
    )


def relay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's response headers that go to the client (``retry-after``, rate limits...)."""
    return {k: v for k, v in headers.items() if k.lower() not in _RESPONSE_DROP}


class HttpProviderResponse:
    """A :class:`~llmrelay.providers.base.ProviderResponse` over an aiohttp response.

    An error body (status 400 or more), and a JSON error inside a 200 event stream, come
    out with ``secrets`` (the credentials sent to the provider) and key-shaped strings
    masked (:func:`mask_secrets`), for the client and for the logs alike.
    """

    __slots__ = (
        "_account",
        "_read_s",
        "_resp",
        "_secrets",
        "headers",
        "status",
        "upstream_request_id",
    )

    status: int
    headers: Mapping[str, str]
    upstream_request_id: str | None

    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        account: str,
        read_s: float,
        secrets: Sequence[str] = (),
    ) -> None:
        self._resp = resp
        self._account = account
        self._read_s = read_s
        self._secrets = secrets
        self.status = resp.status
        self.headers = relay_headers(resp.headers)
        self.upstream_request_id = resp.headers.get("request-id") or resp.headers.get(
            "x-request-id"
        )

    @property
    def is_event_stream(self) -> bool:
        return self._resp.content_type == "text/event-stream"

    @property
    def content_type(self) -> str:
        """The response's media type, lower-cased, without parameters ("" when absent)."""
        return self._resp.content_type if "content-type" in self._resp.headers else ""

    async def read(self) -> bytes:
        try:
            body = await self._resp.read()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise _mid_body_error(err, self._account, self._read_s) from None
        if self.status >= 400:
            return mask_secrets(body, self._secrets)
        if _STREAM_ERROR in body and self.is_event_stream:
            # A stream read whole (sent to a request that did not ask for one, the gateway
            # then quotes it in a 502): its error events as iter_chunks gives them.
            return _mask_error_events(body, self._secrets)
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self.status >= 400:  # an error body is masked whole: a key may span chunks
            yield await self.read()
            return
        secrets = self._secrets
        try:
            async for chunk in self._resp.content.iter_any():
                yield _mask_error_events(chunk, secrets) if _STREAM_ERROR in chunk else chunk
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
    secrets: Sequence[str] = (),
) -> HttpProviderResponse:
    """POST and wait for the status line and headers. ``secrets`` are the credentials in
    ``headers`` (or signing them), masked in error bodies.

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
    return HttpProviderResponse(resp, account, client_timeout.sock_read or 0.0, secrets)


def _reason(err: aiohttp.ClientError) -> str:
    """What went wrong, for the 502's message; a proxy's failures name the proxy (its host
    and port, never its credentials)."""
    if isinstance(err, aiohttp.ClientProxyConnectionError):
        scheme = "https" if err._conn_key.is_ssl else "http"
        why = err.strerror or "connection failed"
        return f"{why} (via proxy {scheme}://{err.host}:{err.port})"
    if isinstance(err, aiohttp.ClientHttpProxyError):
        proxy = err.request_info.real_url
        status = f"{err.status} {err.message}"[:MAX_PROXY_REASON_CHARS]
        return f"the proxy refused the tunnel: {status} (via proxy {proxy.origin()})"
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
