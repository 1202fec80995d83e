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
from ...errors import AuthenticationError
from ..base import ProviderRequest, Wire
from ..headers import HeaderFilter
from ..http import HttpProviderResponse, post
from ..raw import RawRequest, RawResponse, forward

__all__ = ["DEFAULT_ANTHROPIC_VERSION", "AnthropicProvider"]

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
#: What a subscription-passthrough account tells a caller that sent no credential of its own.
_NO_CREDENTIAL = (
    "provider account {account!r} uses subscription passthrough (auth: passthrough): send "
    "your own Anthropic credential as 'Authorization: Bearer <token>' and the gateway key as "
    "the x-llmrelay-key header (Claude Code: log in with /login and set "
    "ANTHROPIC_CUSTOM_HEADERS='x-llmrelay-key: <gateway key>'); a gateway key in "
    "Authorization is never forwarded"
)


class AnthropicProvider:
    """Calls ``{base_url}/v1/messages`` and ``/v1/messages/count_tokens`` with ``x-api-key``
    (or, ``auth: passthrough``, the caller's own ``Authorization``); :meth:`forward` reaches
    any other path of the API."""

    def __init__(
        self, account: str, config: AnthropicProviderConfig, session: aiohttp.ClientSession
    ) -> None:
        self.account = account
        self.wire: Wire = "anthropic"
        self._session = session
        self._api_key = config.api_key
        self._secrets = (config.api_key,) if config.api_key is not None else ()
        self._base_url = config.base_url
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
        credential, secrets = self._credential(request.credential)
        headers.append(credential)
        headers.append(("content-type", "application/json"))
        return await post(
            self._session,
            url,
            data=wirejson.dumps(request.body),
            headers=headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=secrets,
        )

    async def forward(self, request: RawRequest) -> RawResponse:
        """Any path of the Anthropic API (``/v1/messages/batches``, ``/v1/files``...)."""
        headers = self._headers(request.headers)
        if not any(k == "anthropic-version" for k, _ in headers):
            headers.append(("anthropic-version", DEFAULT_ANTHROPIC_VERSION))
        credential, secrets = self._credential(request.credential)
        headers += [credential, *request.framing()]
        return await forward(
            self._session,
            request,
            request.url(self._base_url),
            headers,
            client_timeout=self._timeout,
            account=self.account,
            secrets=secrets,
        )

    def _credential(self, caller: str | None) -> tuple[tuple[str, str], tuple[str, ...]]:
        """The credential header and the secrets to mask: the account's ``x-api-key``, or
        (``auth: passthrough``) the caller's own ``Authorization``, never anyone else's.

        Raises:
            AuthenticationError: a passthrough account and no caller credential (401).
        """
        if self._api_key is not None:
            return ("x-api-key", self._api_key), self._secrets
        if caller is None:
            raise AuthenticationError(_NO_CREDENTIAL.format(account=self.account))
        return ("authorization", caller), (caller.partition(" ")[2].strip(),)

    async def start(self) -> None:
        """Nothing to prepare."""

    async def aclose(self) -> None:
        """The shared session is closed by the app."""
