"""Claude on AWS Bedrock as a provider: InvokeModel, signed with botocore's SigV4.

Credentials come from config or the standard AWS chain; they are resolved at start and
refreshed in a worker thread every minute, never on the request path. Streams are
re-framed from AWS event-stream to Anthropic SSE as each frame arrives; an exception frame
before the first event becomes an HTTP error, after it an ``event: error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from ...config import BedrockProviderConfig
from ...core import wirejson
from ...core.sse import DEFAULT_MAX_EVENT_BYTES
from ...errors import UpstreamUnreachable, anthropic_error_body
from ..base import ProviderRequest, Wire
from ..betas import BEDROCK_BETAS, filter_betas, split_betas
from ..http import HttpProviderResponse, StaticResponse, mask_secrets, post
from ..raw import RawRequest, RawResponse, forward
from . import codec
from .stream import FrameError, SSEFromEventStream, _exception_name, error_sse

__all__ = ["BedrockProvider"]

log = logging.getLogger("llmrelay.providers.bedrock")

_REFRESH_S = 60.0
_SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_JSON = {"content-type": "application/json"}
_EVENT_STREAM = "application/vnd.amazon.eventstream"
#: Largest passthrough body signed on the event loop (SHA-256 of 1 MiB: about 1 ms).
_SIGN_INLINE_BYTES = 1024 * 1024


class _Credentials:
    """AWS credentials resolved once, then refreshed off the event loop."""

    def __init__(self, config: BedrockProviderConfig, account: str) -> None:
        self._config = config
        self._account = account
        self._source: Any = None
        self.frozen: Any = None
        self._task: asyncio.Task[None] | None = None

    def _resolve(self) -> Any:
        import botocore.credentials  # type: ignore[import-untyped]
        import botocore.session  # type: ignore[import-untyped]

        c = self._config
        if c.access_key_id is not None:
            return botocore.credentials.Credentials(
                c.access_key_id, c.secret_access_key, c.session_token
            )
        session = botocore.session.Session(profile=c.profile)
        # The account's proxy and CAs for the credential chain's own calls (STS, SSO);
        # without them botocore reads HTTPS_PROXY / NO_PROXY and AWS_CA_BUNDLE itself.
        if c.proxy is not None:
            import botocore.config  # type: ignore[import-untyped]

            proxies = {"http": c.proxy, "https": c.proxy}
            session.set_default_client_config(botocore.config.Config(proxies=proxies))
        if c.ca_file is not None:
            session.set_config_variable("ca_bundle", c.ca_file)
        creds = session.get_credentials()
        if creds is None:
            raise RuntimeError("no AWS credentials found (config, environment, profile, role)")
        return creds

    async def start(self) -> None:
        self._source = await asyncio.to_thread(self._resolve)
        self.frozen = await asyncio.to_thread(self._source.get_frozen_credentials)
        if hasattr(self._source, "refresh_needed"):  # temporary credentials: keep them fresh
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_S)
            try:
                self.frozen = await asyncio.to_thread(self._source.get_frozen_credentials)
            except Exception as err:  # keep the last good credentials; say why once a minute
                log.error(
                    "AWS credential refresh failed",
                    extra={"provider": self._account, "error": f"{type(err).__name__}"},
                )

    def secrets(self) -> tuple[str, ...]:
        """The current key id, secret and session token, to mask in error bodies."""
        frozen = self.frozen
        if frozen is None:
            return ()
        return tuple(c for c in (frozen.access_key, frozen.secret_key, frozen.token) if c)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _BedrockStream:
    """A 200 event-stream response re-framed as Anthropic SSE."""

    __slots__ = (
        "_chunks",
        "_first",
        "_frames",
        "_secrets",
        "_up",
        "headers",
        "status",
        "upstream_request_id",
    )

    def __init__(
        self,
        up: HttpProviderResponse,
        chunks: AsyncIterator[bytes],
        frames: SSEFromEventStream,
        first: bytes,
        secrets: tuple[str, ...],
    ) -> None:
        self._up = up
        self._secrets = secrets
        self._chunks = chunks
        self._frames = frames
        self._first = first
        self.status = 200
        self.headers: Mapping[str, str] = {**_without_type(up.headers), **_SSE_HEADERS}
        self.upstream_request_id = up.upstream_request_id

    @property
    def is_event_stream(self) -> bool:
        return True

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for raw in self._chunks:
            out = b"".join(
                _error_sse(item, self._secrets) if isinstance(item, FrameError) else item
                for item in self._frames.feed(raw)
            )
            if out:
                yield out

    def close(self) -> None:
        self._up.close()


def _error_sse(err: FrameError, secrets: tuple[str, ...]) -> bytes:
    return mask_secrets(error_sse(err), secrets)


def _without_type(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "content-type"}


class BedrockProvider:
    """``POST {endpoint}/model/{id}/invoke[-with-response-stream]`` and ``/count-tokens``."""

    def __init__(
        self,
        account: str,
        config: BedrockProviderConfig,
        session: aiohttp.ClientSession,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.account = account
        self._max_event_bytes = max_event_bytes
        self.wire: Wire = "anthropic"
        self._session = session
        self._region = config.region
        self._endpoint = (
            config.endpoint_url or f"https://bedrock-runtime.{config.region}.amazonaws.com"
        )
        self._betas = frozenset(config.betas if config.betas is not None else BEDROCK_BETAS)
        # No client header goes to Bedrock but those the account's forward_headers name.
        self._forward = frozenset(config.forward_headers) - frozenset(config.drop_headers)
        self._credentials = _Credentials(config, account)
        t = config.timeouts
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=t.connect_s, sock_connect=t.connect_s, sock_read=t.read_s
        )

    async def start(self) -> None:
        await self._credentials.start()

    def _signed_headers(
        self,
        url: str,
        data: bytes,
        accept: str,
        client: list[tuple[str, str]],
        method: str = "POST",
        content_type: str | None = "application/json",
    ) -> list[tuple[str, str]]:
        from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
        from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

        if self._credentials.frozen is None:
            raise UpstreamUnreachable(f"provider {self.account!r} has no AWS credentials yet")
        forward = self._forward
        headers = {k.lower(): v for k, v in client if k.lower() in forward} if forward else {}
        if content_type is not None:
            headers["content-type"] = content_type
        headers["accept"] = accept
        req = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self._credentials.frozen, "bedrock", self._region).add_auth(req)
        return list(req.headers.items())

    async def forward(self, request: RawRequest) -> RawResponse:
        """Any Bedrock Runtime operation (``model/{id}/invoke``, ``converse``...), signed
        with SigV4 over the path as the client encoded it; the answer is relayed as AWS
        sent it (event streams stay event streams, errors stay AWS-shaped)."""
        url = request.url(self._endpoint)
        client = dict(request.headers)
        sign = functools.partial(
            self._signed_headers,
            str(url),
            request.body,
            client.get("accept", "application/json"),
            request.headers,
            request.method,
            request.content_type,
        )
        # SigV4 hashes the body: a large upload is hashed in a worker thread, not the loop.
        big = len(request.body) > _SIGN_INLINE_BYTES
        headers = await asyncio.to_thread(sign) if big else sign()
        return await forward(
            self._session,
            request,
            url,
            headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._credentials.secrets(),
        )

    async def send(
        self, request: ProviderRequest
    ) -> HttpProviderResponse | StaticResponse | _BedrockStream:
        model = str(request.body.get("model", ""))
        betas = filter_betas(split_betas(request.headers), self._betas, self.account)
        base = f"{self._endpoint}/model/{codec.model_path(model)}"
        if request.endpoint == "count_tokens":
            url, data = f"{base}/count-tokens", codec.count_tokens_body(request.body, betas)
            accept = "application/json"
        else:
            stream = request.stream
            url = f"{base}/invoke-with-response-stream" if stream else f"{base}/invoke"
            data = wirejson.dumps(codec.invoke_body(request.body, betas))
            accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = self._signed_headers(url, data, accept, request.headers)
        up = await post(
            self._session,
            URL(url, encoded=True),
            data=data,
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._credentials.secrets(),
        )
        if up.status != 200:
            return await self._error(up)
        if request.endpoint == "count_tokens":
            return await self._count_tokens(up)
        if request.stream:
            return await self._first_event(up)
        return up

    async def _error(self, up: HttpProviderResponse) -> StaticResponse:
        try:
            raw = await up.read()
        finally:
            up.close()
        error_type = next(
            (v for k, v in up.headers.items() if k.lower() == "x-amzn-errortype"), None
        )
        status, body = codec.error_from_bedrock(up.status, error_type, raw, None)
        return StaticResponse(
            status, body, {**_without_type(up.headers), **_JSON}, up.upstream_request_id
        )

    async def _not_event_stream(self, up: HttpProviderResponse) -> StaticResponse:
        try:
            raw = await up.read()
        finally:
            up.close()
        start = raw[:60].decode("utf-8", "replace")
        message = (
            f"provider {self.account!r} answered a stream request with a 200 that is not an "
            f"event stream ({up.content_type or 'no content type'}; body starts {start!r})"
        )
        body = anthropic_error_body("api_error", message, None)
        return StaticResponse(502, body, _JSON, up.upstream_request_id)

    async def _count_tokens(self, up: HttpProviderResponse) -> StaticResponse:
        try:
            raw = await up.read()
        finally:
            up.close()
        try:
            count = orjson.loads(raw).get("inputTokens")
        except (orjson.JSONDecodeError, AttributeError):
            count = None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            message = f"provider {self.account!r} answered count-tokens without inputTokens"
            body = anthropic_error_body("api_error", message, None)
            return StaticResponse(502, body, _JSON, up.upstream_request_id)
        return StaticResponse(
            200,
            orjson.dumps({"input_tokens": count}),
            {**_without_type(up.headers), **_JSON},
            up.upstream_request_id,
        )

    async def _first_event(self, up: HttpProviderResponse) -> _BedrockStream | StaticResponse:
        """Read frames until the first one, so an exception before any event is an HTTP error."""
        if up.content_type != _EVENT_STREAM:
            # A 200 that is not an event stream (an HTML page from a proxy): 502, falls back.
            return await self._not_event_stream(up)
        frames = SSEFromEventStream(self.account, self._max_event_bytes)
        chunks = up.iter_chunks()
        try:
            async for raw in chunks:
                items = frames.feed(raw)
                if not items:
                    continue
                first = items[0]
                secrets = self._credentials.secrets()
                if isinstance(first, FrameError):
                    up.close()
                    name = _exception_name(first.name)
                    status = codec.exception_status(name)
                    body = orjson.dumps(codec.exception_event(name, first.message))
                    body = mask_secrets(body, secrets)
                    return StaticResponse(status, body, _JSON, up.upstream_request_id)
                rest = b"".join(
                    _error_sse(i, secrets) if isinstance(i, FrameError) else i for i in items
                )
                return _BedrockStream(up, chunks, frames, rest, secrets)
        except BaseException:
            up.close()
            raise
        return _BedrockStream(up, chunks, frames, b"", self._credentials.secrets())

    async def aclose(self) -> None:
        await self._credentials.aclose()
