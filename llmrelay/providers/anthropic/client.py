"""The Anthropic Messages API as a provider: a byte-faithful passthrough.

Only ``model`` (already replaced by the router) and the credential change; every other body
field and every ``anthropic-*`` header goes through (client headers as
:mod:`llmrelay.providers.headers` and the account's ``forward_headers``/``drop_headers``
allow). Wire reference:
``anthropic/_client.py`` (auth headers), ``resources/messages/messages.py`` (paths).
"""

from __future__ import annotations

import aiohttp

from ...config import AnthropicProviderConfig
from ...core import wirejson
from ..base import ProviderRequest, Wire
from ..headers import HeaderFilter
from ..http import HttpProviderResponse, post

__all__ = ["DEFAULT_ANTHROPIC_VERSION", "AnthropicProvider"]

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """Calls ``{base_url}/v1/messages`` and ``/v1/messages/count_tokens`` with ``x-api-key``."""

    def __init__(
        self, account: str, config: AnthropicProviderConfig, session: aiohttp.ClientSession
    ) -> None:
        self.account = account
        self.wire: Wire = "anthropic"
        self._session = session
        self._api_key = config.api_key
        self._secrets = (config.api_key,)
        self._headers = HeaderFilter(config.forward_headers, config.drop_headers)
        self._urls = {
            "messages": f"{config.base_url}/v1/messages",
            "count_tokens": f"{config.base_url}/v1/messages/count_tokens",
        }
        t = config.timeouts
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=t.connect_s, sock_connect=t.connect_s, sock_read=t.read_s
        )

    async def send(self, request: ProviderRequest) -> HttpProviderResponse:
        url = self._urls[request.endpoint]
        if request.query:
            url = f"{url}?{request.query}"
        headers = self._headers(request.headers)
        if not any(k == "anthropic-version" for k, _ in headers):
            headers.append(("anthropic-version", DEFAULT_ANTHROPIC_VERSION))
        headers.append(("x-api-key", self._api_key))
        headers.append(("content-type", "application/json"))
        return await post(
            self._session,
            url,
            data=wirejson.dumps(request.body),
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=self._secrets,
        )

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """The shared session is closed by the app."""
