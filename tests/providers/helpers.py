"""Calling a provider client directly (no gateway) against a fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from pydantic import TypeAdapter

from llmrelay.config import ProviderConfig
from llmrelay.providers.base import Provider, ProviderRequest
from llmrelay.providers.registry import build_provider

T = TypeVar("T")

_CONFIG: TypeAdapter[Any] = TypeAdapter(ProviderConfig)


def config(**fields: Any) -> Any:
    """A provider config from its YAML fields (``type`` picks the model)."""
    return _CONFIG.validate_python(fields)


def with_provider(cfg: Any, use: Callable[[Provider], Awaitable[T]]) -> T:
    """Start the provider ``cfg`` describes on a fresh session, run ``use`` on it, close."""

    async def run() -> T:
        async with aiohttp.ClientSession() as session:
            provider = build_provider("acct", cfg, session)
            await provider.start()
            try:
                return await use(provider)
            finally:
                await provider.aclose()

    return asyncio.run(run())


def messages(headers: list[tuple[str, str]] | None = None, stream: bool = False) -> ProviderRequest:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if stream:
        body["stream"] = True
    return ProviderRequest("messages", body, headers or [], "", stream)


def chat(headers: list[tuple[str, str]] | None = None, stream: bool = False) -> ProviderRequest:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    return ProviderRequest("chat_completions", body, headers or [], "", stream)


async def read_all(provider: Provider, request: ProviderRequest) -> tuple[int, bytes]:
    """Send, read the whole body (as chunks when it is a stream), close."""
    up = await provider.send(request)
    try:
        if request.stream and up.status == 200:
            return up.status, b"".join([c async for c in up.iter_chunks()])
        return up.status, await up.read()
    finally:
        up.close()
