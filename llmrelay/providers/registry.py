"""Provider type name -> factory. Each factory imports its provider lazily, so heavy SDKs
(botocore, google-auth) load only when a config uses them."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from ..config import (
    AnthropicProviderConfig,
    AzureOpenAIProviderConfig,
    MockProviderConfig,
    OpenAIProviderConfig,
    ProviderConfig,
)
from .base import Provider

__all__ = ["build_provider"]


def _anthropic(account: str, cfg: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    from .anthropic.client import AnthropicProvider

    assert isinstance(cfg, AnthropicProviderConfig)
    return AnthropicProvider(account, cfg, session)


def _mock(account: str, cfg: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    from .mock.client import MockProvider

    assert isinstance(cfg, MockProviderConfig)
    return MockProvider(account, cfg)


def _openai(account: str, cfg: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    from .openai.client import OpenAIProvider

    assert isinstance(cfg, OpenAIProviderConfig)
    return OpenAIProvider(account, cfg, session)


def _azure_openai(account: str, cfg: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    from .openai.client import AzureOpenAIProvider

    assert isinstance(cfg, AzureOpenAIProviderConfig)
    return AzureOpenAIProvider(account, cfg, session)


_FACTORIES: dict[str, Callable[[str, ProviderConfig, aiohttp.ClientSession], Provider]] = {
    "anthropic": _anthropic,
    "mock": _mock,
    "openai": _openai,
    "azure_openai": _azure_openai,
}


def build_provider(account: str, cfg: ProviderConfig, session: aiohttp.ClientSession) -> Provider:
    """The provider for one configured account; ``cfg.type`` picks the factory."""
    return _FACTORIES[cfg.type](account, cfg, session)
