"""Claude on Google Vertex AI as a provider: rawPredict / streamRawPredict.

Follows the Anthropic SDK's Vertex client (``anthropic/lib/vertex/_client.py``): the model
moves into the path, ``stream`` stays in the body, the body gains
``anthropic_version: "vertex-2023-10-16"``; ``count_tokens`` goes to
``.../models/count-tokens:rawPredict`` with the model in the body. The stream is Anthropic
SSE and is relayed as is. The access token comes from google-auth (a service-account file
or Application Default Credentials), fetched at start and refreshed in a worker thread
before it expires, never on the request path. Google-shaped errors
(``{"error": {"code", "message", "status"}}``) are rewritten into Anthropic's envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ...config import VertexProviderConfig
from ...core import wirejson
from ...errors import UpstreamUnreachable, anthropic_error_body, anthropic_error_type
from ..base import ProviderRequest, Wire
from ..betas import VERTEX_BETAS, filter_betas, split_betas
from ..http import HttpProviderResponse, StaticResponse, post
from ..raw import RawRequest, RawResponse, forward

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_COUNT_TOKENS_REGION",
    "VertexProvider",
    "api_base",
    "count_tokens_region",
    "error_from_google",
    "models_url",
]

log = logging.getLogger("llmrelay.providers.vertex")

ANTHROPIC_VERSION = "vertex-2023-10-16"
#: Where count-tokens goes for an account at ``global``: Vertex serves Claude's count-tokens
#: in ``us-east5``, ``europe-west1`` and ``asia-southeast1`` only (Google's "Count tokens for
#: Claude" page as cited in LiteLLM PR #23907, 2026-03; PR #20348: none at global).
DEFAULT_COUNT_TOKENS_REGION = "us-east5"
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_REFRESH_MARGIN_S = 300.0
_RETRY_S = 30.0
_JSON = {"content-type": "application/json"}
# Only these client headers go to Vertex (Claude Code's gateway guide names the first two),
# and the account's forward_headers.
_FORWARD = ("anthropic-version", "user-agent", "x-claude-code-session-id")


def error_from_google(status: int, body: bytes, request_id: str | None) -> bytes:
    """A Vertex error body -> Anthropic's envelope (kept as is if it already is one)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return anthropic_error_body(
            anthropic_error_type(status), body.decode("utf-8", "replace")[:500], request_id
        )
    if isinstance(data, dict) and data.get("type") == "error":
        return body
    err = data.get("error") if isinstance(data, dict) else None
    message = str(err.get("message", "")) if isinstance(err, dict) else str(data)[:500]
    code = str(err.get("status", "")) if isinstance(err, dict) else ""
    text = f"{code}: {message}" if code else message
    return anthropic_error_body(anthropic_error_type(status), text, request_id)


def api_base(config: VertexProviderConfig, region: str) -> str:
    """``https://aiplatform.googleapis.com/v1`` for ``global``,
    ``https://{region}-aiplatform.googleapis.com/v1`` otherwise, or ``base_url``."""
    host = (
        "aiplatform.googleapis.com" if region == "global" else f"{region}-aiplatform.googleapis.com"
    )
    return config.base_url or f"https://{host}/v1"


def models_url(config: VertexProviderConfig, region: str) -> str:
    """``{base}/projects/{project}/locations/{region}/publishers/anthropic/models``, the
    base as :func:`api_base` has it."""
    base = api_base(config, region)
    return (
        f"{base}/projects/{quote(config.project, safe='')}/locations/"
        f"{quote(region, safe='')}/publishers/anthropic/models"
    )


def count_tokens_region(config: VertexProviderConfig) -> str:
    """The region count-tokens goes to: ``count_tokens_region``, else ``region`` unless it is
    ``global``, else :data:`DEFAULT_COUNT_TOKENS_REGION`."""
    if config.count_tokens_region is not None:
        return config.count_tokens_region
    return DEFAULT_COUNT_TOKENS_REGION if config.region == "global" else config.region


class _Token:
    """An OAuth access token from google-auth, kept fresh off the event loop."""

    def __init__(self, config: VertexProviderConfig, account: str) -> None:
        self._config = config
        self._account = account
        self._credentials: Any = None
        self.value: str | None = None
        self._task: asyncio.Task[None] | None = None

    def _load(self) -> Any:
        if self._config.credentials_file:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                self._config.credentials_file, scopes=_SCOPES
            )
        import google.auth

        credentials, _ = google.auth.default(scopes=_SCOPES)
        return credentials

    def _refresh(self) -> tuple[str, float]:
        import requests
        from google.auth.transport.requests import Request

        # One session per refresh, closed after: google-auth's default Request() opens a
        # requests.Session that is never closed.
        with requests.Session() as http:
            # The account's proxy and CAs apply to the token fetch too; without them,
            # requests reads HTTPS_PROXY / NO_PROXY itself, and SSL_CERT_FILE is passed on
            # (requests would otherwise trust only certifi's bundle).
            config = self._config
            if config.proxy is not None:
                http.proxies = {"http": config.proxy, "https": config.proxy}
            ca_file = config.ca_file or os.environ.get("SSL_CERT_FILE")
            if ca_file:
                http.verify = ca_file
            self._credentials.refresh(Request(session=http))
        expiry = self._credentials.expiry
        seconds = (expiry.timestamp() - time.time()) if expiry is not None else 3600.0
        return str(self._credentials.token), seconds

    async def start(self) -> None:
        self._credentials = await asyncio.to_thread(self._load)
        self.value, seconds = await asyncio.to_thread(self._refresh)
        self._task = asyncio.get_running_loop().create_task(self._loop(seconds))

    async def _loop(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(max(_RETRY_S, seconds - _REFRESH_MARGIN_S))
            try:
                self.value, seconds = await asyncio.to_thread(self._refresh)
            except Exception as err:
                log.error(
                    "Google token refresh failed",
                    extra={"provider": self._account, "error": type(err).__name__},
                )
                seconds = _RETRY_S + _REFRESH_MARGIN_S

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class VertexProvider:
    def __init__(
        self, account: str, config: VertexProviderConfig, session: aiohttp.ClientSession
    ) -> None:
        self.account = account
        self.wire: Wire = "anthropic"
        self._session = session
        self._base_url = api_base(config, config.region)
        self._models_url = models_url(config, config.region)
        #: count-tokens is not served at ``locations/global``: a regional URL instead.
        self._count_tokens_url = (
            models_url(config, count_tokens_region(config)) + "/count-tokens:rawPredict"
        )
        self._betas = frozenset(config.betas if config.betas is not None else VERTEX_BETAS)
        self._forward = frozenset((*_FORWARD, *config.forward_headers)) - frozenset(
            config.drop_headers
        )
        self._token = _Token(config, account)
        t = config.timeouts
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=t.connect_s, sock_connect=t.connect_s, sock_read=t.read_s
        )

    async def start(self) -> None:
        await self._token.start()

    async def send(self, request: ProviderRequest) -> HttpProviderResponse | StaticResponse:
        if self._token.value is None:
            raise UpstreamUnreachable(f"provider {self.account!r} has no Google access token")
        body = dict(request.body)
        body["anthropic_version"] = ANTHROPIC_VERSION  # the platform's value, always
        if request.endpoint == "count_tokens":
            url = self._count_tokens_url
        else:
            model = quote(str(body.pop("model", "")), safe="@")
            method = "streamRawPredict" if request.stream else "rawPredict"
            url = f"{self._models_url}/{model}:{method}"
        forward = self._forward
        headers = [(k, v) for k, v in request.headers if k.lower() in forward]
        betas = filter_betas(split_betas(request.headers), self._betas, self.account)
        if betas:
            headers.append(("anthropic-beta", ",".join(betas)))
        token = self._token.value
        headers += [("authorization", f"Bearer {token}"), ("content-type", "application/json")]
        up = await post(
            self._session,
            url,
            data=wirejson.dumps(body),
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=(token,),
        )
        if up.status == 200:
            return up
        try:
            raw = await up.read()
        finally:
            up.close()
        out = error_from_google(up.status, raw, None)
        headers_out = {k: v for k, v in up.headers.items() if k.lower() != "content-type"}
        return StaticResponse(up.status, out, {**headers_out, **_JSON}, up.upstream_request_id)

    async def forward(self, request: RawRequest) -> RawResponse:
        """Any path under the Vertex AI API's ``/v1`` (``projects/{p}/locations/{r}/
        publishers/anthropic/models/{m}:rawPredict``...) with the account's access token;
        Google's own answers, errors included, come back as sent."""
        token = self._token.value
        if token is None:
            raise UpstreamUnreachable(f"provider {self.account!r} has no Google access token")
        forward_names = self._forward | {"accept"}
        headers = [(k, v) for k, v in request.headers if k.lower() in forward_names]
        headers += [("authorization", f"Bearer {token}"), *request.framing()]
        return await forward(
            self._session,
            request,
            request.url(self._base_url),
            headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=(token,),
        )

    async def aclose(self) -> None:
        await self._token.aclose()
