"""OpenAI Chat Completions servers as providers: OpenAI, vLLM, Ollama, Groq... and Azure.

A passthrough in the OpenAI wire: the body goes to ``/chat/completions`` with only
``model`` replaced (by the caller) and the credential set. Paths and auth follow the
``openai`` SDK: ``Authorization: Bearer`` (``_client.py``); Azure's
``/openai/deployments/{deployment}/chat/completions?api-version=`` with ``api-key``
(``lib/azure.py``).
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from ...config import AzureOpenAIProviderConfig, OpenAIProviderConfig
from ...core import wirejson
from ...errors import NotFoundError
from ..base import ProviderRequest, Wire
from ..headers import HeaderFilter
from ..http import HttpProviderResponse, post
from ..raw import RawRequest, RawResponse, forward

__all__ = ["AzureOpenAIProvider", "OpenAIProvider"]


def _timeout(connect_s: float, read_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None, connect=connect_s, sock_connect=connect_s, sock_read=read_s
    )


class OpenAIProvider:
    """``POST {base_url}/chat/completions`` with ``Authorization: Bearer {api_key}``."""

    def __init__(
        self, account: str, config: OpenAIProviderConfig, session: aiohttp.ClientSession
    ) -> None:
        self.account = account
        self.wire: Wire = "openai"
        self._session = session
        self._base_url = config.base_url
        self._url = f"{config.base_url}/chat/completions"
        self._auth = [("authorization", f"Bearer {config.api_key}")] if config.api_key else []
        self._secrets = (config.api_key,) if config.api_key else ()
        self._headers = HeaderFilter(config.forward_headers, config.drop_headers)
        self._timeout = _timeout(config.timeouts.connect_s, config.timeouts.read_s)

    async def send(self, request: ProviderRequest) -> HttpProviderResponse:
        if request.endpoint != "chat_completions":
            raise NotFoundError(f"provider {self.account!r} has no {request.endpoint} endpoint")
        headers = self._headers(request.headers)
        headers += [*self._auth, ("content-type", "application/json")]
        return await post(
            self._session,
            self._url,
            data=wirejson.dumps(request.body),
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._secrets,
        )

    async def forward(self, request: RawRequest) -> RawResponse:
        """Any path under ``base_url`` (``files``, ``batches``, ``responses``...)."""
        return await forward(
            self._session,
            request,
            request.url(self._base_url),
            [*self._headers(request.headers), *self._auth, *request.framing()],
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._secrets,
        )

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """The shared session is closed by the app."""


class AzureOpenAIProvider:
    """Azure OpenAI: the provider model id is the deployment name."""

    def __init__(
        self, account: str, config: AzureOpenAIProviderConfig, session: aiohttp.ClientSession
    ) -> None:
        self.account = account
        self.wire: Wire = "openai"
        self._session = session
        self._endpoint = config.endpoint
        self._api_version = config.api_version
        self._auth = (
            [("api-key", config.api_key)]
            if config.api_key is not None
            else [("authorization", f"Bearer {config.entra_token}")]
        )
        self._secrets = tuple(c for c in (config.api_key, config.entra_token) if c)
        self._headers = HeaderFilter(config.forward_headers, config.drop_headers)
        self._timeout = _timeout(config.timeouts.connect_s, config.timeouts.read_s)

    async def send(self, request: ProviderRequest) -> HttpProviderResponse:
        if request.endpoint != "chat_completions":
            raise NotFoundError(f"provider {self.account!r} has no {request.endpoint} endpoint")
        deployment = quote(str(request.body.get("model", "")), safe="")
        url = (
            f"{self._endpoint}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={quote(self._api_version, safe='')}"
        )
        headers = self._headers(request.headers)
        headers += [*self._auth, ("content-type", "application/json")]
        return await post(
            self._session,
            url,
            data=wirejson.dumps(request.body),
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._secrets,
        )

    async def forward(self, request: RawRequest) -> RawResponse:
        """Any path under ``endpoint`` (``openai/deployments/{d}/...?api-version=``,
        ``openai/files``...); the client gives the ``api-version`` query itself."""
        return await forward(
            self._session,
            request,
            request.url(self._endpoint),
            [*self._headers(request.headers), *self._auth, *request.framing()],
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._secrets,
        )

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """The shared session is closed by the app."""
