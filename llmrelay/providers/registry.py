"""Provider type name -> factory. Each factory imports its provider lazily, so heavy SDKs
(botocore, google-auth) load only when a config uses them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import aiohttp

from ..config import (
    AnthropicProviderConfig,
    AzureOpenAIProviderConfig,
    BedrockProviderConfig,
    MockProviderConfig,
    OpenAIProviderConfig,
    ProviderConfig,
    VertexProviderConfig,
)
from .base import Provider, WireBounds
from .headers import HeaderFilter, client_filter

__all__ = [
    "build_provider",
    "client_header_filter",
    "gen_ai_provider_name",
    "missing_dependencies",
]


def _anthropic(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .anthropic.client import AnthropicProvider

    assert isinstance(cfg, AnthropicProviderConfig)
    return AnthropicProvider(account, cfg, session)


def _mock(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .mock.client import MockProvider

    assert isinstance(cfg, MockProviderConfig)
    return MockProvider(account, cfg)


def _openai(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .openai.client import OpenAIProvider

    assert isinstance(cfg, OpenAIProviderConfig)
    return OpenAIProvider(account, cfg, session)


def _azure_openai(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .openai.client import AzureOpenAIProvider

    assert isinstance(cfg, AzureOpenAIProviderConfig)
    return AzureOpenAIProvider(account, cfg, session)


def _bedrock(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .bedrock.client import BedrockProvider

    assert isinstance(cfg, BedrockProviderConfig)
    return BedrockProvider(account, cfg, session, limits.max_event_bytes)


def _vertex(
    account: str, cfg: ProviderConfig, session: aiohttp.ClientSession, limits: WireBounds
) -> Provider:
    from .vertex.client import VertexProvider

    assert isinstance(cfg, VertexProviderConfig)
    return VertexProvider(account, cfg, session)


_DEFAULT_BOUNDS = WireBounds()
_Factory = Callable[[str, ProviderConfig, aiohttp.ClientSession, WireBounds], Provider]
_FACTORIES: dict[str, _Factory] = {
    "anthropic": _anthropic,
    "mock": _mock,
    "openai": _openai,
    "azure_openai": _azure_openai,
    "bedrock": _bedrock,
    "vertex": _vertex,
}


#: Provider type -> the OpenTelemetry ``gen_ai.provider.name`` of its spans (GenAI semantic
#: conventions v1.41.0 well-known values; ``openai`` stands for any Chat Completions server).
_GEN_AI_PROVIDER = {
    "anthropic": "anthropic",
    "mock": "llmrelay.mock",
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
}


def gen_ai_provider_name(kind: str) -> str:
    """The ``gen_ai.provider.name`` for a provider ``type`` (the type itself if unknown)."""
    return _GEN_AI_PROVIDER.get(kind, kind)


#: Provider type -> (module it needs, the pip extra that brings it).
_NEEDS = {"bedrock": ("botocore", "bedrock"), "vertex": ("google.auth", "vertex")}


def missing_dependencies(types: set[str]) -> list[str]:
    """One message per configured provider type whose library is not installed."""
    import importlib.util

    out = []
    for kind in sorted(types):
        need = _NEEDS.get(kind)
        if need is not None and importlib.util.find_spec(need[0].split(".")[0]) is None:
            out.append(f"provider type {kind!r} needs {need[0]}: pip install 'llmrelay[{need[1]}]'")
    return out


def build_provider(
    account: str,
    cfg: ProviderConfig,
    session: aiohttp.ClientSession,
    limits: WireBounds = _DEFAULT_BOUNDS,
) -> Provider:
    """The provider for one configured account; ``cfg.type`` picks the factory. ``limits``
    bound what a provider client decodes itself (Bedrock's event stream)."""
    return _FACTORIES[cfg.type](account, cfg, session, limits)


def client_header_filter(configs: Iterable[ProviderConfig]) -> HeaderFilter:
    """The filter for :func:`~llmrelay.providers.headers.client_headers`: the default drop
    list, less what some account's ``forward_headers`` lets through (the other accounts'
    clients still drop it). Build once, at start-up."""
    return client_filter(getattr(cfg, "forward_headers", ()) for cfg in configs)
